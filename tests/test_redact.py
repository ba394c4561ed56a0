"""Secrets are redacted in the client, on the sender thread, before events leave the
process (traceforge_client/redact.py), and never reach the daemon's database file.

The secrets below are built at run time from fake parts, so no scanner mistakes this file
for a leak; each has the shape of the real thing.
"""

from __future__ import annotations

import json
import threading

import pytest

import traceforge_client as tf
from traceforge_client import config, redact, runtime, testing

ANTHROPIC = "sk-ant-api03-" + "Zx9_" * 23 + "AA"
OPENAI = "sk-proj-" + "Ab3d" * 12
AWS_ID = "AKIA" + "IOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY"
GITHUB = "ghp_" + "a1B2" * 9
GITHUB_PAT = "github_pat_" + "11ABCDEFG0" + "x" * 40
SLACK = "xoxb-" + "123456789012-1234567890123-" + "AbCdEf" * 4
GOOGLE = "AIza" + "SyA-" + "b" * 31
HUGGINGFACE = "hf_" + "AbCdEfGh" * 5
JWT = "eyJhbGciOiJIUzI1NiJ9." + "eyJzdWIiOiIxMjM0NTY3ODkwIn0." + "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9Pl"
PRIVATE_KEY = ("-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\nq83v\n"
               "-----END RSA PRIVATE KEY-----")

# (text that holds a secret, the secret, what the redacted text must be)
SHAPES = [
    (f"key {ANTHROPIC} here", ANTHROPIC, "key [redacted:anthropic_api_key] here"),
    (f"OPENAI_API_KEY {OPENAI}", OPENAI, "OPENAI_API_KEY [redacted:openai_api_key]"),
    (f"{AWS_ID} {AWS_SECRET}", AWS_SECRET,
     "[redacted:aws_access_key_id] [redacted:aws_secret_access_key]"),
    (f"id={AWS_ID}", AWS_ID, "id=[redacted:aws_access_key_id]"),
    (f"aws_secret_access_key = {AWS_SECRET}", AWS_SECRET,
     "aws_secret_access_key = [redacted:secret_assignment]"),
    (f"push with {GITHUB}", GITHUB, "push with [redacted:github_token]"),
    (f"push with {GITHUB_PAT}", GITHUB_PAT, "push with [redacted:github_token]"),
    (f"slack {SLACK}", SLACK, "slack [redacted:slack_token]"),
    (f"maps {GOOGLE}", GOOGLE, "maps [redacted:google_api_key]"),
    (f"hub {HUGGINGFACE}", HUGGINGFACE, "hub [redacted:huggingface_token]"),
    (f"session {JWT}", JWT, "session [redacted:jwt]"),
    (f"key:\n{PRIVATE_KEY}\n", "MIIEpAIBAAKCAQEA", "key:\n[redacted:private_key]\n"),
    ("Authorization: Bearer abc.DEF-123_xyz", "abc.DEF-123_xyz",
     "Authorization: Bearer [redacted:bearer_token]"),
    ("Authorization: Basic dXNlcjpodW50ZXIy", "dXNlcjpodW50ZXIy",
     "Authorization: Basic [redacted:secret_assignment]"),
    ("postgresql://app:hunter2@db:5432/main", "hunter2",
     "postgresql://app:[redacted:url_password]@db:5432/main"),
    ("login failed: password=hunter2; retry", "hunter2",
     "login failed: password=[redacted:secret_assignment]; retry"),
    ("GET /cb?access_token=abc123xyz&x=1", "abc123xyz",
     "GET /cb?access_token=[redacted:secret_assignment]&x=1"),
]

HARMLESS = [
    "Summarise the article about climate policy; the passage passed review.",
    "claude-sonnet-4-6 used 1024 max_tokens at https://api.anthropic.com/v1/messages",
    "run 0af7651916cd43dd8448eb211c80319c step b7ad6b7169203331",
    "task-2024-summary-of-results-and-next-steps",
    "the secret to good soup is time",
]


@pytest.fixture
def redactor():
    return redact.redactor()


@pytest.mark.parametrize("text,secret,expected", SHAPES, ids=[s[2] for s in SHAPES])
def test_each_built_in_pattern_replaces_its_secret_with_a_marker_naming_it(
        redactor, text, secret, expected):
    assert redactor.text(text) == expected
    as_json = redactor.json(json.dumps({"note": text, "list": [text]}))
    assert secret not in as_json
    assert json.loads(as_json) == {"note": expected, "list": [expected]}


@pytest.mark.parametrize("text", HARMLESS)
def test_text_without_secrets_is_left_alone(redactor, text):
    assert redactor.text(text) is text
    as_json = json.dumps({"prompt": text, "max_tokens": 1024, "eos_token": "</s>"})
    assert redactor.json(as_json) is as_json


def test_values_under_secret_keys_are_redacted_whatever_they_look_like(redactor):
    traced = {
        "api_key": "plain-value", "Password": "hunter2", "client_secret": "c",
        "token": "t0k", "X-API-Key": "k", "headers": {"Authorization": "Basic dXNlcg=="},
        "config": {"openaiApiKey": "abc", "db_passwd": "pw", "refresh_token": "r"},
        "max_tokens": 5, "eos_token": "</s>", "tokens": ["a"], "password": "",
        "pin": 1234, "secret_number": 7, "anthropic": {"api_key": ANTHROPIC},
    }
    out = json.loads(redactor.json(json.dumps(traced)))
    field = "[redacted:secret_field]"
    assert out == {
        "api_key": field, "Password": field, "client_secret": field, "token": field,
        "X-API-Key": field, "headers": {"Authorization": field},
        "config": {"openaiApiKey": field, "db_passwd": field, "refresh_token": field},
        "max_tokens": 5, "eos_token": "</s>", "tokens": ["a"], "password": "",
        "pin": 1234, "secret_number": 7,
        # a known shape keeps its more telling marker
        "anthropic": {"api_key": "[redacted:anthropic_api_key]"},
    }


def test_redacted_json_stays_valid_json_with_quotes_and_escapes_around_secrets(redactor):
    tricky = {"a": f'say "{ANTHROPIC}"\\n', "b": f"\\{OPENAI}\\", f"k{ANTHROPIC}": 1,
              "c": "é ✓ \u2028", "n": [1.5, None, True]}
    out = redactor.json(json.dumps(tricky))
    assert ANTHROPIC not in out.split('"k')[0] and OPENAI not in out
    decoded = json.loads(out)
    assert decoded["a"] == 'say "[redacted:anthropic_api_key]"\\n'
    assert decoded["c"] == "é ✓ \u2028" and decoded["n"] == [1.5, None, True]


def test_patterns_can_be_added_and_removed_and_a_bad_one_is_refused_at_init():
    custom = redact.redactor({"employee_id": r"EMP-\d{6}", "slack_token": None})
    assert custom.text("EMP-123456 and xoxb-1234567890-abc") == (
        "[redacted:employee_id] and xoxb-1234567890-abc")
    assert redact.redactor({"secret_field": None}).json('{"password": "pw"}') == (
        '{"password": "pw"}')
    for bad in ({"x": "("}, {"x": "a*"}, {"Bad Name": "x"}, {"x": 5}):
        with pytest.raises(ValueError):
            tf.init(redact_patterns=bad)


def trace_secrets():
    with tf.trace_run("secrets", metadata={"api_key": "run-level-secret"}):
        with tf.trace_step("call", input_data={"api_key": "plain-value", "prompt": ANTHROPIC},
                           metadata={"headers": {"Authorization": f"Bearer {OPENAI}"}}) as r:
            r["output"] = {"echo": AWS_ID}
        with pytest.raises(RuntimeError):
            with tf.trace_step("fails"):
                raise RuntimeError(f"cannot connect to postgres://app:hunter2@db with {GITHUB}")


def test_the_testing_sink_sees_what_the_daemon_would_see_redacted():
    with testing.capture() as traced:
        trace_secrets()
    text = json.dumps([repr(event) for event in traced.events])
    for secret in ("run-level-secret", "plain-value", ANTHROPIC, OPENAI, AWS_ID, "hunter2",
                   GITHUB):
        assert secret not in text
    call = traced.step("call")
    assert call.input == {"api_key": "[redacted:secret_field]",
                          "prompt": "[redacted:anthropic_api_key]"}
    assert call.output == {"echo": "[redacted:aws_access_key_id]"}
    assert traced.run().metadata == {"api_key": "[redacted:secret_field]"}
    fails = traced.step("fails")
    assert "[redacted:url_password]" in fails.error_message
    assert "[redacted:github_token]" in fails.traceback


def test_redaction_runs_on_the_sender_thread_not_the_traced_one(monkeypatch):
    threads = set()
    original = redact.Redactor.events

    def spy(self, events):
        threads.add(threading.current_thread().name)
        return original(self, events)

    monkeypatch.setattr(redact.Redactor, "events", spy)
    with testing.capture() as traced:
        trace_secrets()
        assert traced.step("call").input["api_key"] == "[redacted:secret_field]"
    assert threads == {"traceforge-sender"}


def test_redaction_can_be_turned_off_by_init_or_environment(monkeypatch):
    monkeypatch.setattr(runtime, "_configured", None)  # as in a process that never traced
    monkeypatch.setenv("TRACEFORGE_REDACT", "0")
    assert runtime.current_redactor() is None
    monkeypatch.setenv("TRACEFORGE_REDACT", "1")
    assert runtime.current_redactor() is not None
    assert config.load_config(redact=False).redactor is None
    monkeypatch.setenv("TRACEFORGE_REDACT", "off")
    assert config.load_config(redact=True).redactor is not None


def test_a_planted_key_and_an_api_key_value_never_reach_the_database_file(daemon):
    code = (
        "import traceforge_client as tf\n"
        "with tf.trace_run('leak check'):\n"
        f"    with tf.trace_step('llm', input_data={{'api_key': 'value-under-api-key',"
        f" 'prompt': 'use {ANTHROPIC}'}}) as r:\n"
        f"        r['output'] = 'done'\n"
        "assert tf.flush(10)\n"
    )
    daemon.run_python(code)
    [(stored,)] = daemon.query("SELECT input_data FROM steps WHERE step_name = 'llm'")
    assert json.loads(stored) == {"api_key": "[redacted:secret_field]",
                                  "prompt": "use [redacted:anthropic_api_key]"}
    assert daemon.stop() == 0
    files = [path for path in daemon.home.iterdir() if path.name.startswith("traceforge.db")]
    assert files
    for path in files:  # the database and any WAL left behind, byte by byte
        data = path.read_bytes()
        assert ANTHROPIC.encode() not in data and b"value-under-api-key" not in data


def test_with_redaction_off_values_are_stored_as_traced(daemon):
    env = {**daemon.env, "TRACEFORGE_REDACT": "0"}
    daemon.run_python("import traceforge_client as tf\nwith tf.trace_run('raw'):\n"
                      "    with tf.trace_step('s', input_data={'api_key': 'kept'}):\n"
                      "        pass\nassert tf.flush(10)\n", env=env)
    assert daemon.query("SELECT input_data FROM steps") == [('{"api_key":"kept"}',)]
