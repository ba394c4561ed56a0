"""Client overhead per traced step, next to the OpenTelemetry SDK (issue 2).

One traced step is one enter and one exit of ``trace_step("inner", input_data=SMALL_INPUT)``
whose body sets ``r["output"] = SMALL_OUTPUT``, nested inside an outer step (one outer step
per GROUP - 1 inner steps, inside one run). Each inner step is timed on its own with
``perf_counter_ns`` around the ``with`` block, so the figure covers building the step,
its ids, clock reads, JSON of input and output, both events and the deque appends.

Variants, each in fresh worker processes, interleaved round by round so that load
drifts hit them alike:

- bare:        the same loop and body with no tracing (the timer's own cost);
- tf-daemon:   TraceForge with a daemon running and acking (the realistic case), with
               the per-step code as installed: compiled by Cython where a C compiler was
               found (traceforge_client/hot_path.py; the figure says which form ran);
- tf-nodaemon: the same with nobody listening (events wait in the bounded queue);
- tf-python:   tf-daemon with TRACEFORGE_PURE_PYTHON=1: what a machine without a C
               compiler gets;
- tf-noredact: tf-daemon with TRACEFORGE_REDACT=0: secrets are redacted on the sender
               thread (traceforge_client/redact.py), so the traced step itself must cost
               the same with it on (tf-daemon) or off; bench/client_sender.py measures the
               sender's side;
- otel:        OpenTelemetry SDK, TracerProvider + BatchSpanProcessor with an exporter
               that discards, a nested span with a few attributes. Its input and output
               JSON strings are built once outside the loop, which flatters OpenTelemetry
               (TraceForge encodes them per step).

Net cost = median(variant) - median(bare). Target: TraceForge net <= OpenTelemetry net / 8.

    .venv/bin/python bench/client_overhead.py            # 100,000 timed steps per variant
    .venv/bin/python bench/client_overhead.py --quick    # 10,000, a smoke test
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from array import array
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from _common import GROUP, INPUT_JSON, OUTPUT_JSON, SMALL_INPUT, SMALL_OUTPUT  # noqa: E402

VARIANTS = ("bare", "tf-daemon", "tf-nodaemon", "tf-python", "tf-noredact", "otel")
TRACEFORGE_VARIANTS = tuple(v for v in VARIANTS if v.startswith("tf"))
INNER = GROUP - 1


# ---- workers: one process per variant per round ----

def loop_bare(samples: array, n: int) -> None:
    pc = time.perf_counter_ns
    i = 0
    while i < n:
        outer = {}
        for _ in range(min(INNER, n - i)):
            t0 = pc()
            r = {}
            r["output"] = SMALL_OUTPUT
            samples[i] = pc() - t0
            i += 1
        outer["output"] = SMALL_OUTPUT


def loop_tf(samples: array, n: int) -> None:
    from traceforge_client import trace_run, trace_step

    pc = time.perf_counter_ns
    i = 0
    with trace_run("client-overhead"):
        while i < n:
            with trace_step("outer", input_data=SMALL_INPUT) as outer:
                for _ in range(min(INNER, n - i)):
                    t0 = pc()
                    with trace_step("inner", input_data=SMALL_INPUT) as r:
                        r["output"] = SMALL_OUTPUT
                    samples[i] = pc() - t0
                    i += 1
                outer["output"] = SMALL_OUTPUT


def make_otel():
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Discard(SpanExporter):
        exported = 0

        def export(self, spans):
            Discard.exported += len(spans)
            return SpanExportResult.SUCCESS

        def shutdown(self):
            pass

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return True

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Discard()))  # SDK defaults
    return provider, Discard


def loop_otel(samples: array, n: int, tracer) -> None:
    pc = time.perf_counter_ns
    i = 0
    with tracer.start_as_current_span("run", attributes={"run.name": "client-overhead"}):
        while i < n:
            with tracer.start_as_current_span(
                "outer", attributes={"input.value": INPUT_JSON, "step.kind": "chain"}
            ) as outer:
                for _ in range(min(INNER, n - i)):
                    t0 = pc()
                    with tracer.start_as_current_span(
                        "inner", attributes={"input.value": INPUT_JSON, "step.kind": "tool"}
                    ) as span:
                        span.set_attribute("output.value", OUTPUT_JSON)
                    samples[i] = pc() - t0
                    i += 1
                outer.set_attribute("output.value", OUTPUT_JSON)


def worker(variant: str, steps: int, warmup: int, out: Path) -> None:
    samples = array("q", bytes(8 * steps))
    scratch = array("q", bytes(8 * max(warmup, 1)))
    result: dict = {"variant": variant, "steps": steps}
    if variant == "bare":
        run = loop_bare
        done = lambda: True  # noqa: E731
    elif variant.startswith("tf"):
        import traceforge_client

        # Room for every event, so no variant measures the drop path instead.
        traceforge_client.init(max_queue_events=2 * (steps + warmup) * GROUP // INNER + 1000)
        run = loop_tf
        if variant in ("tf-daemon", "tf-python", "tf-noredact"):
            done = lambda: traceforge_client.flush(timeout=120)  # noqa: E731
        else:
            done = lambda: False  # noqa: E731  (nobody listens: nothing to wait for)
    else:
        provider, exporter = make_otel()
        tracer = provider.get_tracer("bench")
        run = lambda s, n: loop_otel(s, n, tracer)  # noqa: E731
        done = lambda: provider.force_flush(120_000)  # noqa: E731
    run(scratch, warmup)
    cpu0, wall0 = time.process_time_ns(), time.perf_counter_ns()
    run(samples, steps)
    wall1 = time.perf_counter_ns()
    result["flushed"] = bool(done())
    cpu1 = time.process_time_ns()
    result["loop_wall_ns_per_step"] = (wall1 - wall0) / steps
    result["cpu_ns_per_step_incl_flush"] = (cpu1 - cpu0) / steps
    if variant.startswith("tf"):
        import traceforge_client

        result["client_stats"] = traceforge_client.stats()
        result["hot_path"] = result["client_stats"]["hot_path"]
        if variant == "tf-nodaemon":
            traceforge_client.shutdown(timeout=0)  # nothing will ever ack: exit now
    elif variant == "otel":
        created = steps + warmup + -(-steps // INNER) + -(-warmup // INNER) + 2
        result["otel_spans_exported"] = exporter.exported
        result["otel_spans_created"] = created
        provider.shutdown()
    out.write_bytes(samples.tobytes())
    print(json.dumps(result))


# ---- the parent: run the rounds, pool the samples, judge ----

def run_round(variant: str, steps: int, warmup: int, daemon: _common.Daemon, tmp: Path,
              round_no: int) -> tuple[array, dict]:
    env = daemon.env
    env["TRACEFORGE_PURE_PYTHON"] = "1" if variant == "tf-python" else ""
    env["TRACEFORGE_REDACT"] = "0" if variant == "tf-noredact" else "1"
    if variant == "tf-nodaemon":
        env["TRACEFORGE_ADDRESS"] = f"unix://{tmp}/nobody.sock"
        env["TRACEFORGE_HOME"] = str(tmp / "nohome")
    out = tmp / f"{variant}-{round_no}.bin"
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", variant, "--steps", str(steps),
         "--warmup", str(warmup), "--out", str(out)],
        env=env, cwd=_common.ROOT, capture_output=True, text=True, timeout=1800,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{variant} worker failed:\n{proc.stdout}\n{proc.stderr}")
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    samples = array("q")
    samples.frombytes(out.read_bytes())
    out.unlink()
    return samples, info


def summarize(values: array) -> dict:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "median_us": _common.percentile(ordered, 0.5) / 1000,
        "p90_us": _common.percentile(ordered, 0.9) / 1000,
        "p99_us": _common.percentile(ordered, 0.99) / 1000,
        "mean_us": sum(ordered) / len(ordered) / 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100_000,
                        help="timed steps per variant, over all rounds (default 100,000)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="worker processes per variant; steps are split among them")
    parser.add_argument("--warmup", type=int, default=2_000, help="untimed steps per worker")
    parser.add_argument("--quick", action="store_true", help="10,000 steps in 2 rounds")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.steps, args.warmup, args.out)
        return 0
    if args.quick:
        args.steps, args.rounds = 10_000, 2
    per_round = -(-args.steps // args.rounds)

    facts = _common.machine()
    print("machine:", json.dumps(facts))
    tmp = _common.short_tmp("tfbo-")
    daemon = _common.Daemon(tmp / "home").start()
    pooled = {v: array("q") for v in VARIANTS}
    infos: dict = {v: [] for v in VARIANTS}
    round_medians: dict = {v: [] for v in VARIANTS}
    loads = [_common.load()]
    try:
        for round_no in range(args.rounds):
            # Rotate the order so no variant always runs first or last in a round.
            shift = round_no % len(VARIANTS)
            order = VARIANTS[shift:] + VARIANTS[:shift]
            for variant in order:
                samples, info = run_round(variant, per_round, args.warmup, daemon, tmp, round_no)
                pooled[variant].extend(samples)
                infos[variant].append(info)
                round_medians[variant].append(_common.median(samples) / 1000)
            loads.append(_common.load())
            print(f"round {round_no + 1}/{args.rounds} done, load {loads[-1]}", flush=True)
        health = daemon.health()
    finally:
        daemon.stop()
        _common.remove(tmp)

    summary = {v: summarize(pooled[v]) for v in VARIANTS}
    bare = summary["bare"]
    for v in VARIANTS:
        s = summary[v]
        s["net_median_us"] = s["median_us"] - bare["median_us"]
        s["net_p90_us"] = s["p90_us"] - bare["p90_us"]
        s["round_medians_us"] = [round(x, 3) for x in round_medians[v]]
        s["loop_wall_us_per_step"] = _common.median(
            [i["loop_wall_ns_per_step"] / 1000 for i in infos[v]])
        s["cpu_us_per_step_incl_flush"] = _common.median(
            [i["cpu_ns_per_step_incl_flush"] / 1000 for i in infos[v]])
    otel_net = summary["otel"]["net_median_us"]

    print()
    print(f"one traced step = enter+exit of a step with small input and output, nested in an "
          f"outer step; {per_round * args.rounds:,} timed steps per variant in "
          f"{args.rounds} rounds; load during the run {' -> '.join(loads)}")
    header = (f"{'variant':<12} {'median':>8} {'p90':>8} {'p99':>8} {'net med':>8} "
              f"{'net p90':>8} {'wall/step':>9} {'cpu/step':>9}  round medians (µs)")
    print(header)
    print("-" * len(header))
    for v in VARIANTS:
        s = summary[v]
        print(f"{v:<12} {s['median_us']:8.2f} {s['p90_us']:8.2f} {s['p99_us']:8.2f} "
              f"{s['net_median_us']:8.2f} {s['net_p90_us']:8.2f} "
              f"{s['loop_wall_us_per_step']:9.2f} {s['cpu_us_per_step_incl_flush']:9.2f}  "
              f"{s['round_medians_us']}")
    print("(µs; net = minus bare; wall/step = loop time / steps; cpu/step = process CPU incl. "
          "the sender or exporter thread and the final flush)")
    verdicts = {}
    for v in TRACEFORGE_VARIANTS:
        net = summary[v]["net_median_us"]
        ratio = otel_net / net if net > 0 else float("inf")
        verdicts[v] = {"ratio_otel_over_tf": ratio, "pass": net <= otel_net / 8}
        forms = sorted({i.get("hot_path") for i in infos[v]})
        print(f"{v} ({'/'.join(forms)}): net median {net:.2f} µs vs OpenTelemetry {otel_net:.2f} µs -> "
              f"OpenTelemetry costs {ratio:.1f}x; target <= 1/8 ({otel_net / 8:.2f} µs): "
              f"{'PASS' if verdicts[v]['pass'] else 'FAIL'}")
    for v in TRACEFORGE_VARIANTS:
        stats = [i.get("client_stats", {}) for i in infos[v]]
        print(f"{v} client stats per worker: "
              + "; ".join(f"acked={s.get('acked_events')} "
                          f"dropped={s.get('dropped_total', s.get('dropped'))}"
                          for s in stats))
    print("otel spans exported/created per worker: "
          + "; ".join(f"{i['otel_spans_exported']}/{i['otel_spans_created']}"
                      for i in infos["otel"]))
    print(f"daemon health at the end: events_committed={health['events_committed']} "
          f"transactions={health['transactions']}")
    if args.json:
        args.json.write_text(json.dumps(
            {"machine": facts, "loads": loads, "args": vars(args) | {"json": str(args.json)},
             "summary": summary, "verdicts": verdicts, "workers": infos}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
