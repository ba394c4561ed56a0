"""The query benchmark's database: 1,000,000 steps across 10,000 runs, written directly.

Rows go in with executemany through the daemon's own writer connection
(``open_writer_connection``: same schema migration, pragmas and indexes), so the
database is exactly what the daemon would hold, only made fast. The shape imitates
agents tracing: runs every ~4 minutes over 30 days, each a series of turns (one outer
step holding nine, some nested a level deeper), a Zipf-like mix of step names, ~40%
LLM steps with tokens and costs (5% of those unpriced), 1% failures, and ten runs of
10,090 steps for the run-detail figure. Ids are made the way the client makes them.

    .venv/bin/python bench/query_data.py /tmp/tf-query-1m.db
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from traceforge_daemon.storage.writer import open_writer_connection  # noqa: E402

RUNS = 10_000
BIG_RUNS = 10
STEPS_PER_RUN = 90
STEPS_PER_BIG_RUN = 10_090  # 9,990 * 90 + 10 * 10,090 = 1,000,000
DAYS = 30
GROUP = 10
DATA_VERSION = "2"
"""Bump when the shape changes, so a cached database is made again."""

# (name, is_llm, weight): a long tail, so names differ widely in selectivity.
NAMES = [
    ("web_search", False, 30), ("llm.call", True, 20), ("retrieve", False, 14),
    ("extract_facts", True, 10), ("parse_output", False, 8), ("summarize", True, 6),
    ("tool.call", False, 5), ("rerank", False, 4), ("fact_check", True, 3),
    ("plan", True, 2.5), ("validate", False, 2), ("critique", True, 1.5),
    ("format_report", True, 1), ("cache_lookup", False, 1), ("classify", True, 0.5),
    ("translate", True, 0.1),
]
RUN_NAMES = [f"pipeline-{name}" for name in
             ("research", "support", "rag", "triage", "codegen", "eval", "extract", "chat")]
MODELS = ["claude-sonnet-4-6", "claude-haiku-4-5", "claude-opus-4-1", "mystery-model"]

INSERT_RUN = ("INSERT INTO runs (run_id, run_name, started_at, ended_at, status, metadata, "
              "pid, host) VALUES (?, ?, ?, ?, ?, ?, ?, 'bench')")
INSERT_STEP = (
    "INSERT INTO steps (step_id, run_id, parent_step_id, step_name, model, input_data, "
    "output_data, tokens_input, tokens_output, tokens_cache_read, tokens_cache_write, "
    "cost_usd, latency_ms, started_at, ended_at, status, error, error_type, metadata, pid, "
    "host) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, 'bench')"
)


def _payloads(rng: random.Random) -> tuple[list[str], list[str]]:
    words = "the of climate data model agent search answer source fact draft report".split()
    inputs, outputs = [], []
    for i in range(64):
        text = " ".join(rng.choice(words) for _ in range(40))
        inputs.append(json.dumps({"prompt": text, "top_k": i % 5 + 1, "temperature": 0.2}))
        outputs.append(json.dumps({"answer": text[: 120 + i], "confidence": 0.9}))
    return inputs, outputs


def _run_id(rng: random.Random, started: float) -> str:
    return f"{int(started * 1000) & 0xFFFF_FFFF_FFFF:012x}{rng.getrandbits(80):020x}"


def _run_steps(rng, run_id, count, start, inputs, outputs, running_tail, names, weights):
    """One run's step rows (a series of turns) and the run's end time."""
    prefix = f"{rng.getrandbits(32) | 1:08x}"
    counter = rng.getrandbits(31)
    rows = []
    clock = start
    parent_of_group = None
    previous_child = None
    for index in range(count):
        step_id = f"{prefix}{(counter + index) & 0xFFFF_FFFF:08x}"
        position = index % GROUP
        if position == 0:
            name, is_llm, parent = "turn", False, None
            parent_of_group = step_id
        else:
            name, is_llm = rng.choices(names, weights)[0]
            nested = position % 3 == 0 and previous_child is not None
            parent = previous_child if nested else parent_of_group
            previous_child = step_id
        latency = rng.uniform(5, 1500) if is_llm else rng.uniform(0.2, 80)
        clock += latency / 1000 * 0.6
        started = clock
        ended = started + latency / 1000
        status, error, error_type = "ok", None, None
        model = tokens_in = tokens_out = cost = None
        if is_llm:
            model = rng.choices(MODELS, (50, 35, 10, 5))[0]
            tokens_in = int(rng.lognormvariate(6.3, 0.9))
            tokens_out = int(rng.lognormvariate(5.0, 0.8))
            cost = None if model == "mystery-model" else (tokens_in * 3 + tokens_out * 15) / 1e6
            if rng.random() < 0.025:
                status, error_type = "error", "RateLimitError"
                error = "RateLimitError: 429 too many requests"
        if running_tail and index == count - 1:
            status, ended, latency = "running", None, None
        rows.append((
            step_id, run_id, parent, name, model, inputs[index % 64],
            None if status == "running" else outputs[index % 64],
            tokens_in or 0, tokens_out or 0, 0, 0, 0.0 if not is_llm else cost,
            latency, started, ended, status, error, error_type, os.getpid(),
        ))
    return rows, clock


def make(path: Path, seed: int = 7) -> dict:
    """Write the database at ``path`` (replacing it); return what was made."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    rng = random.Random(seed)
    inputs, outputs = _payloads(rng)
    names = [(name, llm) for name, llm, _ in NAMES]
    weights = [weight for _, _, weight in NAMES]
    conn = open_writer_connection(str(path))
    made = time.perf_counter()
    origin = time.time() - DAYS * 86400
    spacing = DAYS * 86400 / RUNS
    big = set(rng.sample(range(RUNS - 100), BIG_RUNS))
    steps = 0
    run_rows, step_rows = [], []
    for number in range(RUNS):
        start = origin + number * spacing + rng.uniform(0, spacing / 2)
        run_id = _run_id(rng, start)
        count = STEPS_PER_BIG_RUN if number in big else STEPS_PER_RUN
        running = number >= RUNS - 5
        rows, end = _run_steps(rng, run_id, count, start, inputs, outputs, running,
                               names, weights)
        failed = any(row[15] == "error" for row in rows)
        run_rows.append((run_id, rng.choice(RUN_NAMES), start, None if running else end,
                         "running" if running else ("error" if failed else "success"),
                         json.dumps({"big": number in big, "n": number}), os.getpid()))
        step_rows += rows
        steps += count
        if len(step_rows) >= 20_000 or number == RUNS - 1:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(INSERT_RUN, run_rows)
            conn.executemany(INSERT_STEP, step_rows)
            conn.execute("COMMIT")
            run_rows, step_rows = [], []
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("ANALYZE")
    conn.close()
    return {"runs": RUNS, "steps": steps, "seconds": round(time.perf_counter() - made, 1),
            "bytes": path.stat().st_size, "version": DATA_VERSION}


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/tf-query-1m.db")
    print(json.dumps(make(target)))
