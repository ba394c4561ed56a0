"""The sender thread's throughput with secret redaction on and off (issue 10, finding 12).

Redaction (traceforge_client/redact.py) runs on the sender thread, so a traced step costs
the same with it on or off (client_overhead.py, tf-daemon vs tf-noredact); what it costs
is sender CPU, which also competes for the GIL with the traced program. This measures that
thread alone: a BatchProcessor whose link acks every batch at once and keeps nothing, fed
steps that were built before the clock starts, timed from the first event handed over to
the flush that sees the last one acked. No socket and no daemon: their cost is the same
either way (ingest.py measures them).

Payloads, per step (a StepStart and a StepEnd):

- ``small``: client_overhead.py's input and output (about 60 bytes each);
- ``llm``: an LLM call as traced: messages with a system and a user prompt, parameters,
  the answer and its usage, about 1.6 KB of JSON per step, no secret in it;
- ``llm+secret``: the same with an ``api_key`` value and an ``sk-ant-`` key in the input,
  so every batch takes the redacting path.

Each payload runs with redaction on and off, in fresh processes, rounds interleaved.

    .venv/bin/python bench/client_sender.py            # 20,000 steps x 5 rounds
    .venv/bin/python bench/client_sender.py --quick    # 5,000 x 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from _common import SMALL_INPUT, SMALL_OUTPUT  # noqa: E402

PAYLOADS = ("small", "llm", "llm+secret")
PROMPT = ("You are a careful research assistant. Answer from the sources given, cite them by "
          "number, and say when they disagree or do not answer the question. ") * 2
QUESTION = ("Summarise what the three attached reports say about heat pumps in cold "
            "climates: running costs, installation problems, and how the findings differ "
            "between the 2019 and the 2023 field studies. ") * 2
ANSWER = ("The reports agree that modern cold-climate heat pumps keep most of their "
          "efficiency down to about -15 C [1][2]; running costs depend mostly on the "
          "electricity price ratio [3]. ") * 3


def payload(kind: str) -> tuple[dict, dict, dict]:
    """(input, output, metadata) of one step."""
    if kind == "small":
        return SMALL_INPUT, SMALL_OUTPUT, {}
    step_input = {"model": "claude-sonnet-4-6", "max_tokens": 1024, "temperature": 0.2,
                  "system": PROMPT, "messages": [{"role": "user", "content": QUESTION}]}
    if kind == "llm+secret":
        step_input = {**step_input, "api_key": "plain-key-value",
                      "note": "key sk-ant-api03-" + "x" * 90 + "AA"}
    output = {"content": [{"type": "text", "text": ANSWER}], "stop_reason": "end_turn"}
    metadata = {"usage": {"input_tokens": 812, "output_tokens": 164}, "provider": "anthropic"}
    return step_input, output, metadata


def worker(kind: str, redact_on: bool, steps: int) -> dict:
    from traceforge_client import batching, redact, tracer
    from traceforge_client.ids import new_run_id, step_id_source
    from traceforge_protocol import wire

    class Discard(batching.Link):
        def open(self) -> int:
            return wire.MAX_FRAME_BYTES

        def send(self, batch) -> None:
            self.replies.append(batching.Acked((batch,)))

        def receive(self, timeout: float) -> list:
            replies, self.replies = self.replies, []
            return replies

        def close(self, goodbye: bool = False) -> None:
            pass

        replies: list = []

    step_input, output, metadata = payload(kind)
    input_json, output_json = tracer.to_json(step_input), tracer.to_json(output)
    metadata_json = tracer.to_json(metadata)
    run_id, new_step_id = new_run_id(), step_id_source()
    events = []
    for i in range(steps):  # distinct objects: redaction changes events in place
        step_id = new_step_id()
        events.append(wire.StepStart(run_id, step_id, "llm", i, input_json=input_json))
        events.append(wire.StepEnd(run_id, step_id, "llm", i, i + 1, output_json=output_json,
                                   metadata_json=metadata_json))
    processor = batching.BatchProcessor(
        Discard, 2 * steps + 10, 5.0, redactor=redact.redactor() if redact_on else None)
    processor.emit(wire.RunStart(run_id, "warm-up", 0))  # start the thread first
    assert processor.flush(10)
    emit = processor.emit
    cpu0, wall0 = time.thread_time_ns(), time.perf_counter_ns()
    for event in events:
        emit(event)
    assert processor.flush(600)
    wall = time.perf_counter_ns() - wall0
    stats = processor.stats()
    assert stats["acked_events"] == 2 * steps + 1 and not stats["dropped_total"], stats
    if redact_on and kind == "llm+secret":
        assert "[redacted:" in events[0].input_json
    return {"kind": kind, "redact": redact_on, "steps": steps,
            "us_per_step": wall / steps / 1000,
            "emit_cpu_us_per_step": (time.thread_time_ns() - cpu0) / steps / 1000,
            "bytes_per_step": len(input_json) + len(output_json) + len(metadata_json)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20_000, help="steps per worker")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="5,000 steps, 2 rounds")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--worker", nargs=2, metavar=("PAYLOAD", "REDACT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.worker[1] == "on", args.steps)))
        return 0
    if args.quick:
        args.steps, args.rounds = 5_000, 2
    print("machine:", json.dumps(_common.machine()))
    cases = [(kind, state) for kind in PAYLOADS for state in ("on", "off")]
    results: dict = {case: [] for case in cases}
    loads = [_common.load()]
    for round_no in range(args.rounds):
        shift = round_no % len(cases)
        for kind, state in cases[shift:] + cases[:shift]:
            proc = subprocess.run(
                [sys.executable, __file__, "--worker", kind, state, "--steps", str(args.steps)],
                cwd=_common.ROOT, capture_output=True, text=True, timeout=1800)
            if proc.returncode != 0:
                raise RuntimeError(f"{kind} {state} failed:\n{proc.stdout}\n{proc.stderr}")
            results[(kind, state)].append(json.loads(proc.stdout.strip().splitlines()[-1]))
        loads.append(_common.load())
        print(f"round {round_no + 1}/{args.rounds} done, load {loads[-1]}", flush=True)
    print(f"\nsender thread alone, {args.steps:,} steps x {args.rounds} rounds per case; "
          f"load {' -> '.join(loads)}")
    header = (f"{'payload':<11} {'bytes':>6} {'redact':>6} {'µs/step':>8} {'steps/s':>9} "
              f"{'vs off':>7}  round figures (µs/step)")
    print(header)
    print("-" * len(header))
    summary = {}
    for kind in PAYLOADS:
        medians = {state: _common.median([r["us_per_step"] for r in results[(kind, state)]])
                   for state in ("off", "on")}
        for state in ("off", "on"):
            rounds = [round(r["us_per_step"], 2) for r in results[(kind, state)]]
            median = medians[state]
            summary[f"{kind} {state}"] = {"us_per_step": median, "rounds": rounds}
            print(f"{kind:<11} {results[(kind, state)][0]['bytes_per_step']:6d} {state:>6} "
                  f"{median:8.2f} {1e6 / median:9,.0f} {median / medians['off']:6.2f}x  {rounds}")
    if args.json:
        args.json.write_text(json.dumps({"loads": loads, "summary": summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
