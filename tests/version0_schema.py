"""The tables and indexes of schema version 0, which TraceForge's single-process library
wrote before the daemon existed: the databases users bring from it, which the daemon must
migrate and serve."""

VERSION_0_SCHEMA = """
CREATE TABLE runs (run_id TEXT PRIMARY KEY, run_name TEXT NOT NULL, started_at REAL NOT NULL,
  ended_at REAL, status TEXT NOT NULL DEFAULT 'running', metadata TEXT NOT NULL DEFAULT '{}');
CREATE TABLE steps (step_id TEXT PRIMARY KEY, run_id TEXT NOT NULL REFERENCES runs,
  parent_step_id TEXT, step_name TEXT NOT NULL, model TEXT, input_data TEXT NOT NULL,
  output_data TEXT, tokens_input INTEGER NOT NULL DEFAULT 0,
  tokens_output INTEGER NOT NULL DEFAULT 0, cost_usd REAL NOT NULL DEFAULT 0.0,
  latency_ms REAL NOT NULL DEFAULT 0.0, started_at REAL NOT NULL, ended_at REAL, error TEXT);
CREATE INDEX idx_steps_run_id ON steps(run_id);
CREATE INDEX idx_steps_parent ON steps(parent_step_id);
CREATE INDEX idx_steps_name ON steps(step_name);
CREATE INDEX idx_steps_started ON steps(started_at);
CREATE INDEX idx_runs_started ON runs(started_at);
"""
