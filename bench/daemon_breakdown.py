"""Where the daemon's time per step goes, measured piece by piece without sockets.

Builds the events 1, 4 or 8 clients would send (the same shape as bench/ingest.py: one
outer step per GROUP - 1 inner ones, small input and output, ids from
traceforge_client.ids), encodes them as the client's 1,000-event Batch frames, then times:

  decode      protocol.client_message_decoder on every frame body (what ingest.py does)
  decode-len  the same Structs with ids checked by length instead of Meta(pattern=...)
  decode-np   the same Structs with no constraints at all
  apply-py    writer.apply() against a connection whose executemany does nothing:
              the Python work of turning events into rows
  apply       writer.apply() inside BEGIN IMMEDIATE .. COMMIT, MAX_EVENTS_PER_TRANSACTION
              events per transaction, into a fresh database from open_writer_connection
  raw         plain INSERT of the complete rows, 1,000 per transaction (bench/ingest.py (b))
  pipeline-1  decode then apply, one thread
  pipeline-2  decode in one thread feeding apply in another through a queue, as the
              daemon does (event loop thread + writer thread)

    .venv/bin/python bench/daemon_breakdown.py [--steps 200000] [--sources 8]
"""

from __future__ import annotations

import argparse
import json
import queue
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Union, get_args, get_origin, get_type_hints

import msgspec
from msgspec import Meta

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from _common import GROUP, INPUT_JSON, OUTPUT_JSON  # noqa: E402

sys.path.insert(0, str(_common.ROOT))
from traceforge_client import ids  # noqa: E402
from traceforge_protocol import wire as protocol  # noqa: E402
from traceforge_daemon.storage import writer  # noqa: E402


# The wire Structs rebuilt with other constraints, to price the id regexes:
#   "np":  no constraints at all (plain str / int)
#   "len": ids checked by length only (32 / 16 characters), the other constraints kept
def _variant(kind: str):
    strip = {protocol.RunId: str, protocol.StepId: str}
    if kind == "len":
        strip = {protocol.RunId: Annotated[str, Meta(min_length=32, max_length=32)],
                 protocol.StepId: Annotated[str, Meta(min_length=16, max_length=16)]}
    else:
        strip.update({protocol.Name: str, protocol.Nanos: int, protocol.Count: int})

    def relax(tp):
        if tp in strip:
            return strip[tp]
        if get_origin(tp) is Union:
            return Union[tuple(relax(a) for a in get_args(tp))]
        if get_origin(tp) is Annotated and kind == "np":
            return relax(get_args(tp)[0])
        return tp

    def rebuild(cls, **overrides):
        hints = get_type_hints(cls, include_extras=True)
        names = cls.__struct_fields__
        defaults = cls.__struct_defaults__
        first_default = len(names) - len(defaults)
        fields = []
        for index, name in enumerate(names):
            tp = overrides.get(name, relax(hints[name]))
            if index >= first_default:
                fields.append((name, tp, defaults[index - first_default]))
            else:
                fields.append((name, tp))
        return msgspec.defstruct(f"{cls.__name__}_{kind}", fields,
                                 tag=cls.__struct_config__.tag)

    events = Union[tuple(rebuild(c) for c in (protocol.RunStart, protocol.RunEnd,
                                              protocol.StepStart, protocol.StepEnd))]
    batch = rebuild(protocol.Batch, events=list[events], seq=int)
    return msgspec.msgpack.Decoder(Union[protocol.Hello, batch, protocol.Bye])


decoder_np = _variant("np")
decoder_len = _variant("len")


def make_frames(sources: int, steps: int) -> list[bytes]:
    """Frame bodies as the clients' senders would send them, sources interleaved."""
    per_source = []
    for _ in range(sources):
        run_id, next_step_id = ids.new_run_id(), ids.step_id_source()
        t = time.time_ns()
        events: list = [protocol.RunStart(run_id=run_id, name="ingest-bench", start_ns=t)]
        done = 0
        while done < steps // sources:
            outer = next_step_id()
            outer_start = t
            events.append(protocol.StepStart(run_id=run_id, step_id=outer, name="outer",
                                             start_ns=t, input_json=INPUT_JSON))
            done += 1
            for _ in range(min(GROUP - 1, steps // sources - done)):
                inner = next_step_id()
                events.append(protocol.StepStart(run_id=run_id, step_id=inner, name="inner",
                                                 start_ns=t, parent_step_id=outer,
                                                 input_json=INPUT_JSON))
                events.append(protocol.StepEnd(run_id=run_id, step_id=inner, name="inner",
                                               start_ns=t, end_ns=t + 1000,
                                               parent_step_id=outer, output_json=OUTPUT_JSON,
                                               cost_usd=0.0))
                t += 2000
                done += 1
            events.append(protocol.StepEnd(run_id=run_id, step_id=outer, name="outer",
                                           start_ns=outer_start, end_ns=t,
                                           output_json=OUTPUT_JSON, cost_usd=0.0))
        events.append(protocol.RunEnd(run_id=run_id, name="ingest-bench", start_ns=events[0].start_ns,
                                      end_ns=t))
        per_source.append([events[i:i + 1000] for i in range(0, len(events), 1000)])
    encoder = msgspec.msgpack.Encoder()
    bodies, seq = [], 0
    while any(per_source):
        for chunks in per_source:
            if chunks:
                seq += 1
                bodies.append(encoder.encode(protocol.Batch(seq=seq, events=chunks.pop(0))))
    return bodies


class NullConn:
    def executemany(self, sql, rows):
        if not isinstance(rows, list):
            list(rows)


def transactions(batches: list) -> list[list]:
    """Group batches the way Writer._run does: up to MAX_EVENTS_PER_TRANSACTION events."""
    groups, current, count = [], [], 0
    for batch in batches:
        current.append(batch)
        count += len(batch.events)
        if count >= writer.MAX_EVENTS_PER_TRANSACTION:
            groups.append(current)
            current, count = [], 0
    if current:
        groups.append(current)
    return groups


def as_items(decoded: list) -> list:
    return [writer.WriteBatch(None, b.seq, b.events, 4242, "bench") for b in decoded]


_open: list = []


def fresh_db(tmp: Path, name: str) -> sqlite3.Connection:
    """A database as the daemon opens it; closed at the end, outside the clock (closing
    the last connection checkpoints the WAL, which the daemon does not do per batch)."""
    conn = writer.open_writer_connection(str(tmp / name))
    _open.append(conn)
    return conn


def commit_all(conn, groups) -> None:
    for group in groups:
        conn.execute("BEGIN IMMEDIATE")
        writer.apply(conn, group)
        conn.execute("COMMIT")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--sources", type=int, default=8, help="client processes simulated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--switch-interval", type=float,
                        help="sys.setswitchinterval() for this run (Python's default 0.005 s)")
    args = parser.parse_args()
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    print("machine:", json.dumps(_common.machine()), "switch interval", sys.getswitchinterval())
    bodies = make_frames(args.sources, args.steps)
    events = sum(len(protocol.client_message_decoder.decode(b).events) for b in bodies)
    steps = args.steps
    print(f"{steps:,} steps = {events:,} events in {len(bodies)} frames of up to 1,000 "
          f"({sum(map(len, bodies)) / events:.0f} B/event), {args.sources} sources")
    tmp = _common.short_tmp("tfbd-")
    results: dict = {}

    def timed(name: str, fn, per: str = "step") -> None:
        values = []
        for repeat in range(args.repeats):
            setup = fn()  # returns a callable to time (setup outside the clock)
            t0 = time.perf_counter()
            setup()
            values.append(time.perf_counter() - t0)
        best = _common.median(values)
        results[name] = best
        print(f"{name:<12} {best / steps * 1e6:7.2f} µs per step  "
              f"({steps / best:9,.0f} steps/s; runs {[round(v, 3) for v in values]} s) "
              f"load {_common.load()}", flush=True)

    timed("decode", lambda: lambda: [protocol.client_message_decoder.decode(b) for b in bodies])
    timed("decode-len", lambda: lambda: [decoder_len.decode(b) for b in bodies])
    timed("decode-np", lambda: lambda: [decoder_np.decode(b) for b in bodies])
    decoded = [protocol.client_message_decoder.decode(b) for b in bodies]
    groups = transactions(as_items(decoded))
    timed("apply-py", lambda: lambda: [writer.apply(NullConn(), g) for g in groups])

    counter = iter(range(10_000))

    def apply_setup():
        conn = fresh_db(tmp, f"apply-{next(counter)}.db")
        return lambda: commit_all(conn, groups)

    timed("apply", apply_setup)

    def raw_setup():
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import ingest

        conn = fresh_db(tmp, f"raw-{next(counter)}.db")
        runs, blocks = ingest.make_rows(args.sources, steps // args.sources, time.time())
        conn.executemany(ingest.INSERT_RUN, runs)

        def go():
            for block in blocks:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(ingest.INSERT_STEP, block)
                conn.execute("COMMIT")
        return go

    timed("raw", raw_setup)

    def pipeline_1_setup():
        conn = fresh_db(tmp, f"p1-{next(counter)}.db")

        def go():
            pending, count = [], 0
            for body in bodies:
                batch = protocol.client_message_decoder.decode(body)
                pending.append(writer.WriteBatch(None, batch.seq, batch.events, 4242, "bench"))
                count += len(batch.events)
                if count >= writer.MAX_EVENTS_PER_TRANSACTION:
                    commit_all(conn, [pending])
                    pending, count = [], 0
            if pending:
                commit_all(conn, [pending])
        return go

    timed("pipeline-1", pipeline_1_setup)

    def pipeline_2_setup():
        conn = fresh_db(tmp, f"p2-{next(counter)}.db")

        def go():
            q: queue.Queue = queue.Queue()

            def write():  # Writer._run's loop, minus the acks
                while True:
                    items = [q.get()]
                    count = len(items[0].events) if items[0] is not None else 0
                    while count < writer.MAX_EVENTS_PER_TRANSACTION:
                        try:
                            item = q.get_nowait()
                        except queue.Empty:
                            break
                        items.append(item)
                        count += len(item.events) if item is not None else 0
                    stop = None in items
                    items = [i for i in items if i is not None]
                    if items:
                        commit_all(conn, [items])
                    if stop:
                        return

            thread = threading.Thread(target=write)
            thread.start()
            for body in bodies:
                batch = protocol.client_message_decoder.decode(body)
                q.put(writer.WriteBatch(None, batch.seq, batch.events, 4242, "bench"))
            q.put(None)
            thread.join()
        return go

    timed("pipeline-2", pipeline_2_setup)
    for conn in _open:
        conn.close()
    _common.remove(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
