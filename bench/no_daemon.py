"""A traced program with no daemon anywhere: does it run and exit as fast as untraced?

Times whole interpreter runs (start to exit) of one small pipeline program three ways,
interleaved: untraced (TRACEFORGE_DISABLED=1), traced with no daemon listening, and, for
scale, traced into a running daemon. Reports medians and the difference to untraced.

    .venv/bin/python bench/no_daemon.py            # 15 runs of each
    .venv/bin/python bench/no_daemon.py --runs 5 --steps 200
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from _common import ROOT, Daemon, machine, remove, short_tmp

PROGRAM = r"""
import sys, time, traceforge_client as tf
steps = int(sys.argv[1])
with tf.trace_run("pipeline"):
    for i in range(steps):
        with tf.trace_step("llm_call", input_data={"prompt": "question %d" % i}) as r:
            time.sleep(0.0005)              # stands for real work
            r["output"] = "answer"
            r["tokens_input"], r["tokens_output"] = 120, 40
"""


def run_once(env: dict, steps: int) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", PROGRAM, str(steps)], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args()
    print("machine:", machine())
    base = dict(os.environ, PYTHONPATH=str(ROOT))
    base.pop("TRACEFORGE_ADDRESS", None)
    with tempfile.TemporaryDirectory(prefix="tfnd", dir="/tmp") as empty:
        variants = {
            "untraced (TRACEFORGE_DISABLED=1)": dict(base, TRACEFORGE_HOME=empty,
                                                     TRACEFORGE_DISABLED="1"),
            "traced, no daemon": dict(base, TRACEFORGE_HOME=empty),
        }
        daemon = Daemon(short_tmp("tfndd")).start()
        try:
            variants["traced, daemon running"] = dict(base, TRACEFORGE_HOME=str(daemon.home))
            times: dict[str, list[float]] = {name: [] for name in variants}
            for _ in range(args.runs):
                for name, env in variants.items():
                    times[name].append(run_once(env, args.steps))
        finally:
            daemon.stop()
            remove(daemon.home)
    untraced = statistics.median(times["untraced (TRACEFORGE_DISABLED=1)"])
    spread = statistics.pstdev(times["untraced (TRACEFORGE_DISABLED=1)"])
    print(f"{args.steps} steps of ~0.5 ms work per run, {args.runs} runs each, whole-process wall time")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:36s} median {median * 1000:8.1f} ms  min {min(values) * 1000:8.1f}"
              f"  max {max(values) * 1000:8.1f}  vs untraced {(median - untraced) * 1000:+7.1f} ms")
    print(f"noise: standard deviation of the untraced runs {spread * 1000:.1f} ms")


if __name__ == "__main__":
    main()
