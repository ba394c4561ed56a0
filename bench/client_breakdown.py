"""Where a traced step's time goes in the client, and what cheaper variants would cost.

Runs in one process with no daemon (events stay in the pipeline's queue, sized so that
nothing is dropped), so it prices the code on the caller's thread only.

1. Pieces: each call a step makes, timed alone with timeit (best of 5).
2. Steps: the real nested step timed one by one as in client_overhead.py (median, p90),
   then the same real code with one helper swapped in memory (what-ifs, nothing on disk
   changes: events released instead of held until acked).

The per-step code runs in the form hot_path.py chose (printed first); compare both with

    .venv/bin/python bench/client_breakdown.py [--steps 50000]
    TRACEFORGE_PURE_PYTHON=1 .venv/bin/python bench/client_breakdown.py
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time  # noqa: F401 (timeit globals)
import timeit
from array import array
from pathlib import Path

os.environ["TRACEFORGE_ADDRESS"] = "unix:///tmp/tfb-nobody-listens.sock"
os.environ.pop("TRACEFORGE_DISABLED", None)
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from _common import SMALL_INPUT  # noqa: E402,F401 (timeit globals)
from client_overhead import loop_tf  # noqa: E402

sys.path.insert(0, str(_common.ROOT))
import logging  # noqa: E402

import msgspec  # noqa: E402

import traceforge_client  # noqa: E402
from traceforge_client import ids, pricing, runtime, tracer  # noqa: E402,F401 (timeit globals)
from traceforge_protocol import wire as protocol  # noqa: E402,F401 (timeit globals)
from traceforge_client.context import Current, RunState, _current, get_current  # noqa: E402,F401

logging.getLogger("traceforge").setLevel(logging.ERROR)  # "cannot reach the daemon" is expected
traceforge_client.init(max_queue_events=20_000_000)


def piece(label: str, stmt: str, env: dict, number: int = 200_000) -> float:
    best = min(timeit.repeat(stmt, number=number, repeat=5, globals=env)) / number * 1e9
    print(f"  {label:<52} {best:7.0f} ns")
    runtime.active().events.items.clear()
    return best


def pieces() -> None:
    print("1. pieces (best of 5, ns per call)")
    run = RunState("0" * 32)
    token = _current.set(Current("0" * 32, "1" * 16, run, {}))
    start = protocol.StepStart(run_id="a" * 32, step_id="b" * 16, name="inner", start_ns=1)
    env = dict(globals(), start=start, run=run)
    piece("trace_step('inner', input_data=SMALL_INPUT)  (construct)",
          "tracer.trace_step('inner', input_data=SMALL_INPUT)", env)
    piece("get_current()", "get_current()", env)
    piece("a step id: '%016x' % next(numbers)", "'%016x' % next(numbers)",
          dict(env, numbers=ids.step_numbers()))
    piece("time.time_ns()", "time.time_ns()", env)
    piece("tracer.to_json(SMALL_INPUT)", "tracer.to_json(SMALL_INPUT)", env)
    piece("tracer.to_json(None)", "tracer.to_json(None)", env)
    piece("msgspec.json encode alone", "enc(SMALL_INPUT)",
          dict(env, enc=msgspec.json.Encoder().encode))
    piece("protocol.StepStart(8 keyword args)",
          "protocol.StepStart(run_id='a', step_id='b', name='inner', start_ns=1, "
          "parent_step_id='c', model=None, input_json='{}', metadata_json=None)", env)
    piece("protocol.StepEnd(18 keyword args)",
          "protocol.StepEnd(run_id='a', step_id='b', name='inner', start_ns=1, end_ns=2, "
          "parent_step_id='c', status='ok', model=None, output_json='{}', tokens_input=0, "
          "tokens_output=0, tokens_cache_read=0, tokens_cache_write=0, cost_usd=0.0, "
          "error_type=None, error_message=None, traceback=None, metadata_json=None)", env)
    piece("runtime.emit(event)  (EventQueue.put)", "runtime.emit(start)", env)
    piece("_current.set(Current(...)) + _current.reset()",
          "_current.reset(_current.set(Current('a', 'b', run, None)))", env)
    piece("pricing.step_cost(None, 0, 0, 0, 0, 0.0, 0.0)",
          "pricing.step_cost(None, 0, 0, 0, 0, 0.0, 0.0)", env)
    _current.reset(token)


# ---- per-step timing: client_overhead.py's loop ----

def time_steps(n: int) -> tuple[float, float]:
    samples = array("q", bytes(8 * n))
    loop_tf(samples, n)
    runtime.active().events.items.clear()
    ordered = sorted(samples)
    return _common.percentile(ordered, 0.5) / 1000, _common.percentile(ordered, 0.9) / 1000


def steps(n: int) -> None:
    print(f"\n2. one nested step, enter+exit, timed one by one ({n:,} steps each; µs)")

    def report(label: str) -> None:
        median, p90 = time_steps(n)
        print(f"  {label:<52} median {median:5.2f}  p90 {p90:5.2f}   load {_common.load()}",
              flush=True)

    report("real trace_step")
    # Holding every event until it is acked means fresh memory for each step; a sender
    # that let go of events sooner would reuse warm memory. Price that with an emit that
    # keeps at most 1,000 events.
    real_emit, recent = runtime.emit, collections.deque()

    def bounded_emit(event):
        recent.append(event)
        if len(recent) >= 1000:
            recent.clear()

    runtime.emit = bounded_emit
    report("what-if: events released after 1,000 (not held)")
    runtime.emit = real_emit
    report("real trace_step again (drift check)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=50_000)
    args = parser.parse_args()
    print("machine:", json.dumps(_common.machine()))
    print("per-step code:", runtime.stats()["hot_path"])
    pieces()
    steps(args.steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
