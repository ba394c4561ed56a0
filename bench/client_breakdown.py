"""Where a traced step's time goes in the client, and what cheaper variants would cost.

Runs in one process with no daemon (events stay in the sender's queue, sized so that
nothing is dropped), so it prices the code on the caller's thread only.

1. Pieces: each call a step makes, timed alone with timeit (best of 5).
2. Steps: the real nested step timed one by one as in client_overhead.py (median, p90),
   then the same real code with one helper swapped in memory (what-ifs, nothing on disk
   changes: a cheaper step id; events released instead of held until acked), then LeanStep, a sketch of a leaner trace_step that emits the same two
   events with the same JSON for the happy path, to show what a redesign can reach.

    .venv/bin/python bench/client_breakdown.py [--steps 50000]
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import os
import sys
import time
import timeit
from array import array
from pathlib import Path

os.environ["TRACEFORGE_ADDRESS"] = "unix:///tmp/tfb-nobody-listens.sock"
os.environ.pop("TRACEFORGE_DISABLED", None)
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from _common import GROUP, SMALL_INPUT, SMALL_OUTPUT  # noqa: E402

sys.path.insert(0, str(_common.ROOT))
import logging  # noqa: E402

import msgspec  # noqa: E402

import traceforge_client  # noqa: E402
from traceforge_client import ids, pricing, protocol, tracer, transport  # noqa: E402,F401 (timeit globals)
from traceforge_client.context import Current, RunState, _current, get_current  # noqa: E402,F401

logging.getLogger("traceforge").setLevel(logging.ERROR)  # "cannot reach the daemon" is expected
traceforge_client.init(max_queue_events=20_000_000)


def piece(label: str, stmt: str, env: dict, number: int = 200_000) -> float:
    best = min(timeit.repeat(stmt, number=number, repeat=5, globals=env)) / number * 1e9
    print(f"  {label:<52} {best:7.0f} ns")
    transport.get_sender().queue.clear()
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
    piece("ids.new_step_id()", "ids.new_step_id()", env)
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
    piece("transport.emit(event)  (append to the sender's deque)", "transport.emit(start)", env)
    piece("_current.set(Current(...)) + _current.reset()",
          "_current.reset(_current.set(Current('a', 'b', run, None)))", env)
    piece("pricing.step_cost(None, 0, 0, 0, 0, 0.0, 0.0)",
          "pricing.step_cost(None, 0, 0, 0, 0, 0.0, 0.0)", env)
    _current.reset(token)


# ---- per-step timing, as in client_overhead.py ----

def time_steps(step_class, n: int) -> tuple[float, float]:
    samples = array("q", bytes(8 * n))
    pc = time.perf_counter_ns
    i = 0
    with traceforge_client.trace_run("breakdown"):
        while i < n:
            with step_class("outer", input_data=SMALL_INPUT) as outer:
                for _ in range(min(GROUP - 1, n - i)):
                    t0 = pc()
                    with step_class("inner", input_data=SMALL_INPUT) as r:
                        r["output"] = SMALL_OUTPUT
                    samples[i] = pc() - t0
                    i += 1
                outer["output"] = SMALL_OUTPUT
    transport.get_sender().queue.clear()
    ordered = sorted(samples)
    return _common.percentile(ordered, 0.5) / 1000, _common.percentile(ordered, 0.9) / 1000


def fast_step_ids():
    """What-if for ids.new_step_id: one %-format of prefix+counter as a 64-bit number."""
    base = int.from_bytes(os.urandom(4), "big") << 32 | (int.from_bytes(os.urandom(4), "big") >> 1)
    counter = itertools.count(base)
    return lambda: "%016x" % next(counter)


_json = msgspec.json.Encoder(enc_hook=repr).encode
_ZERO = (0, 0)


class LeanStep:
    """A sketch, not a drop-in: the happy path of trace_step with the same two events.

    Differences from tracer.trace_step: Structs built positionally; JSON encoded inline
    (the size cap check kept); tokens read with one dict lookup each and priced only
    when non-zero; no work for fields left unset. Errors, auto-runs and disabled mode
    fall back to the real trace_step.
    """

    __slots__ = ("name", "input_data", "model", "record", "_sid", "_parent", "_start",
                 "_token", "_slow")
    emit_start = True

    def __init__(self, name, input_data=None, model=None):
        self.name = name
        self.input_data = input_data
        self.model = model

    def __enter__(self):
        parent = _current.get()
        if parent is None:
            self._slow = tracer.trace_step(self.name, self.input_data, self.model)
            return self._slow.__enter__()
        self._slow = None
        self._parent = parent
        self._sid = sid = ids.new_step_id()
        self._start = start = time.time_ns()
        data = self.input_data
        if data is not None:
            data = _json(data)
            data = data.decode() if len(data) <= protocol.MAX_FIELD_BYTES else tracer.to_json(
                self.input_data)
        if self.emit_start:
            transport.emit(protocol.StepStart(parent.run_id, sid, self.name, start,
                                              parent.step_id, self.model, data))
        self.record = record = {"output": None, "tokens_input": 0, "tokens_output": 0,
                                "model": self.model}
        self._token = _current.set(Current(parent.run_id, sid, parent.run, record))
        return record

    def __exit__(self, exc_type, exc, tb):
        if self._slow is not None:
            return self._slow.__exit__(exc_type, exc, tb)
        end = time.time_ns()
        _current.reset(self._token)
        if exc_type is not None:
            raise NotImplementedError("the sketch only covers the happy path")
        record = self.record
        tokens = (record["tokens_input"], record["tokens_output"])
        cost = 0.0
        if tokens != _ZERO or len(record) > 4:  # tokens, cache tokens, cost or metadata set
            raise NotImplementedError("the sketch only covers steps without tokens")
        output = record["output"]
        if output is not None:
            output = _json(output)
            output = output.decode() if len(output) <= protocol.MAX_FIELD_BYTES else \
                tracer.to_json(record["output"])
        parent = self._parent
        transport.emit(protocol.StepEnd(parent.run_id, self._sid, self.name, self._start, end,
                                        parent.step_id, "ok", record["model"], output, 0, 0, 0,
                                        0, cost))
        return False


class LeanStepNoStart(LeanStep):
    """Lower bound for a design that sends one event per short step (the protocol has no
    such event today: the input JSON is built and dropped here)."""

    __slots__ = ()
    emit_start = False


def check_lean_matches() -> None:
    """The sketch must emit the same events as the real step (ids and times aside)."""
    queue = transport.get_sender().queue
    queue.clear()
    with traceforge_client.trace_run("check"):
        with tracer.trace_step("outer"):
            with tracer.trace_step("inner", input_data=SMALL_INPUT) as r:
                r["output"] = SMALL_OUTPUT
            with LeanStep("inner", input_data=SMALL_INPUT) as r:
                r["output"] = SMALL_OUTPUT
    events = list(queue)
    queue.clear()
    real = [msgspec.structs.asdict(e) for e in events[2:4]]
    lean = [msgspec.structs.asdict(e) for e in events[4:6]]
    for a, b in zip(real, lean):
        for key in ("step_id", "start_ns", "end_ns"):
            a.pop(key, None), b.pop(key, None)
    assert [type(e) for e in events[2:4]] == [type(e) for e in events[4:6]], events
    assert real == lean, (real, lean)


def steps(n: int) -> None:
    print(f"\n2. one nested step, enter+exit, timed one by one ({n:,} steps each; µs)")
    results = {}

    def report(label: str, step_class) -> None:
        median, p90 = time_steps(step_class, n)
        results[label] = median
        print(f"  {label:<52} median {median:5.2f}  p90 {p90:5.2f}   load {_common.load()}",
              flush=True)

    report("real trace_step", tracer.trace_step)
    original_ids = tracer.new_step_id
    tracer.new_step_id = fast_step_ids()
    report("what-if: step id as one '%016x' % counter", tracer.trace_step)
    tracer.new_step_id = original_ids
    check_lean_matches()
    report("LeanStep sketch (same events, happy path)", LeanStep)
    report("LeanStep without its start event (one event/step)", LeanStepNoStart)
    # Holding every event until it is acked means fresh memory for each step; a sender
    # that let go of events sooner would reuse warm memory. Price that with an emit that
    # keeps at most 1,000 events.
    real_emit, recent = transport.emit, collections.deque()

    def bounded_emit(event):
        recent.append(event)
        if len(recent) >= 1000:
            recent.clear()

    transport.emit = bounded_emit
    report("what-if: events released after 1,000 (not held)", tracer.trace_step)
    transport.emit = real_emit
    report("real trace_step again (drift check)", tracer.trace_step)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=50_000)
    args = parser.parse_args()
    print("machine:", json.dumps(_common.machine()))
    pieces()
    steps(args.steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
