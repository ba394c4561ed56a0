"""The Python library over the HTTP API: get_storage() with its query methods, replay
recorded as a run linked to its original, and the JSONL export."""

from __future__ import annotations

import json
import socket

import pytest

from otlp_support import parse_line, spans_of
from traceforge_client import get_storage
from traceforge_client.export import export_jsonl, export_run_jsonl
from traceforge_client.replay import get_step_inputs
from traceforge_client.storage import DaemonUnavailable, NotFound, Storage, default_url
from traceforge_protocol.home import DaemonState, Home


@pytest.fixture(scope="module")
def storage(demo):
    return get_storage(demo.url)


def test_query_steps_takes_every_filter(demo, storage):
    failed = storage.query_steps(has_error=True)
    assert [s["step_id"] for s in failed] == [demo.ids["failed_step"]]
    assert failed[0]["input_data"] == {"url": "https://example.invalid"}
    by_name = storage.query_steps(step_name="extract_facts", min_tokens=200)
    assert [s["run_id"] for s in by_name] == [demo.ids["b"]]  # 210 tokens; a's has 160
    assert len(storage.query_steps(step_name="web_search", limit=2)) == 2
    assert storage.query_steps(run_id=demo.ids["a"], has_error=True) == []
    recent = storage.query_steps(start_time=0, end_time=2**40, limit=100)
    assert len(recent) == 19


def test_get_steps_is_the_whole_run_in_start_order_with_payloads(demo, storage):
    steps = storage.get_steps(demo.ids["a"])
    assert [s["step_name"] for s in steps][:4] == ["web_search"] * 3 + ["extract_facts"]
    assert steps[0]["input_data"] == {"query": "climate change"}
    assert storage.get_steps("0" * 32) == []


def test_get_run_list_runs_and_get_step(demo, storage):
    run = storage.get_run(demo.ids["a"])
    assert run["run"]["step_count"] == 8 and len(run["roots"]) == 6
    assert storage.get_run("0" * 32) is None
    names = [r["run_name"] for r in storage.list_runs()]
    assert names == ["unpriced", "error-demo", "research: climate", "research: climate"]
    assert [r["run_id"] for r in storage.list_runs(status="error")] == [demo.ids["errors"]]
    assert len(storage.list_runs(limit=1, offset=1)) == 1
    assert storage.list_runs(name_contains="climate", limit=1)[0]["run_id"] == demo.ids["b"]
    assert storage.get_step(demo.ids["failed_step"])["status"] == "error"
    assert storage.get_step("0" * 16) is None


def test_errors_from_the_daemon_and_from_no_daemon_are_clear(storage):
    with pytest.raises(NotFound) as raised:
        get_step_inputs(storage, "0" * 16)
    assert raised.value.status == 404 and "0" * 16 in str(raised.value)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once closed
    with pytest.raises(DaemonUnavailable, match="traceforge-daemon start"):
        Storage(f"http://127.0.0.1:{port}", timeout=5).list_runs()


def test_the_url_comes_from_env_then_the_state_file_then_the_default(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACEFORGE_HOME", str(tmp_path))
    monkeypatch.delenv("TRACEFORGE_HTTP", raising=False)
    assert default_url() == "http://127.0.0.1:8742"
    Home(tmp_path).write_state(DaemonState(pid=1, version="0", socket="unix:///x.sock",
                                           db="x.db", started_at=0.0,
                                           http="http://127.0.0.1:9999"))
    assert default_url() == "http://127.0.0.1:9999"
    monkeypatch.setenv("TRACEFORGE_HTTP", "http://127.0.0.2:1234/")
    assert get_storage().url == "http://127.0.0.2:1234"


def test_export_run_jsonl_is_the_daemons_otlp_export_or_the_flat_one(demo, storage, tmp_path):
    target = tmp_path / "run.jsonl"
    text = export_run_jsonl(storage, demo.ids["a"], path=target)
    assert target.read_text() == text
    spans = [span for line in text.splitlines() for span in spans_of(parse_line(line))]
    assert len(spans) == 8 and {s.trace_id.hex() for s in spans} == {demo.ids["a"]}
    flat = [json.loads(line) for line in export_run_jsonl(
        storage, demo.ids["a"], format="flat").splitlines()]
    assert len(flat) == 8 and {s["traceId"] for s in flat} == {demo.ids["a"]}
    with pytest.raises(NotFound):
        export_run_jsonl(storage, "9" * 32)


def test_export_jsonl_takes_a_time_range_and_a_name(demo, storage, tmp_path):
    everything = export_jsonl(storage)
    traces = {span.trace_id.hex() for line in everything.splitlines()
              for span in spans_of(parse_line(line))}
    assert {demo.ids[key] for key in ("a", "b", "errors", "unpriced")} <= traces
    run_b = storage.get_run(demo.ids["b"])["run"]
    target = tmp_path / "range.jsonl"
    text = export_jsonl(storage, target, start_time=run_b["started_at"],
                        name_contains="research")
    assert target.read_text() == text
    assert {span.trace_id.hex() for line in text.splitlines()
            for span in spans_of(parse_line(line))} == {demo.ids["b"]}


REPLAY = r'''
import json, sys
import traceforge_client as tf
from traceforge_client.replay import get_step_inputs, replay_step

storage = tf.get_storage()
step_id = sys.argv[1]
seen = []

def executor(input_data):
    seen.append(input_data)
    tf.current_step()["tokens_input"] = 7
    return {"results": ["fresh"], "count": 1}

inputs = get_step_inputs(storage, step_id)
result = replay_step(storage, step_id, executor, override_input={"query": "revised"})
plain = replay_step(None, step_id, lambda data: data)
print(json.dumps({"inputs": inputs, "seen": seen, "run_id": result.run_id,
                  "step_id": result.step_id, "output": result.output,
                  "original_run_id": result.original_run_id, "recorded": result.recorded,
                  "plain_output": plain.output, "plain_run_id": plain.run_id}))
'''


def test_a_replay_is_recorded_as_a_run_linked_to_its_original_and_compares_to_it(
        demo, storage):
    original_step = demo.ids["a_searches"][1]  # the second of three same-named steps
    out = json.loads(demo.daemon.run_python(REPLAY, args=(original_step,)).stdout)
    assert out["inputs"]["input_data"] == {"query": "recent data"}
    assert out["seen"] == [{"query": "revised"}]
    assert out["output"] == {"results": ["fresh"], "count": 1}
    assert out["plain_output"] == {"query": "recent data"}  # no override: recorded input
    assert out["recorded"] is True and out["original_run_id"] == demo.ids["a"]

    replay = storage.get_run(out["run_id"], payloads=True)
    assert replay["run"]["run_name"] == "replay: web_search"
    assert replay["run"]["replay_of_run_id"] == demo.ids["a"]
    assert replay["run"]["replay_of_step_id"] == original_step
    [step] = replay["steps"]
    assert step["step_id"] == out["step_id"]
    assert step["input_data"] == {"query": "revised"} and step["tokens_input"] == 7
    assert step["output_data"] == {"results": ["fresh"], "count": 1}

    assert storage.get_step(original_step)["replay_run_ids"] == [out["run_id"],
                                                                 out["plain_run_id"]]
    linked = [r["run_id"] for r in storage.list_runs(replay_of=demo.ids["a"])]
    assert linked == [out["plain_run_id"], out["run_id"]]

    diff = storage.compare(demo.ids["a"], out["run_id"])
    [paired] = [row for row in diff["steps"] if row["a"] and row["b"]]
    assert paired["match"] == "replay"
    assert paired["a"]["step_id"] == original_step  # not the first web_search
    assert paired["b"]["step_id"] == out["step_id"]
    assert paired["delta"]["tokens_input"] == 7
    assert len(diff["only_in_a"]) == 7
