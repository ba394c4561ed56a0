"""End-to-end ingest: steps per second fully committed, next to two references (issue 2).

A step counts once both its start and its end are committed. Every part traces the
same shape of work: inside one run per process, groups of one outer step holding
GROUP - 1 inner steps, each with the same small input and output (bench/_common.py).

(a) direct The commit-per-write design: each process writes each step straight into SQLite
           with the single-process library's schema, an INSERT + commit at start and an UPDATE + commit at
           end (uuid4 ids, stdlib sqlite3 defaults). Measured as shipped (rollback
           journal, that library never set WAL) and in WAL mode.
(b) raw    SQLite's limit for our schema: complete step rows, executemany'd 1,000 per
           transaction, into a fresh database made by the daemon's own
           open_writer_connection (same pragmas, schema.migrate), ids made by
           traceforge_client.ids, with 1 and with N id sources (one per process).
(c) tf     A real daemon (python -m traceforge_daemon start) and 1, 4, 8 client
           processes each tracing K steps; from the first step to the moment
           /api/health says every event (2 per step + 2 per run) is committed.
(d) tf@1M  (c) into a copy of a database that already holds 1,000,000 steps (made once
           with direct executemany, ids like the client's: one id source per 1,000-step
           run, as if from 1,000 earlier processes).

Targets: tf >= 60x direct; tf >= 0.5x raw; tf@1M >= 0.7x tf.

    .venv/bin/python bench/ingest.py                 # full: K=100,000, 3 repeats
    .venv/bin/python bench/ingest.py --quick         # smoke test, about a minute
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from _common import GROUP, INPUT_JSON, OUTPUT_JSON, SMALL_INPUT, SMALL_OUTPUT  # noqa: E402
from _workers import run_workers, wait_for_go  # noqa: E402
from direct_writes import bench_direct, direct_worker  # noqa: E402

sys.path.insert(0, str(_common.ROOT))

STEP_COLUMNS = (
    "step_id, run_id, parent_step_id, step_name, model, input_data, output_data, "
    "tokens_input, tokens_output, tokens_cache_read, tokens_cache_write, cost_usd, "
    "latency_ms, started_at, ended_at, status, error, error_type, traceback, metadata, "
    "pid, host"
)
INSERT_STEP = f"INSERT INTO steps ({STEP_COLUMNS}) VALUES ({', '.join('?' * 22)})"
INSERT_RUN = (
    "INSERT INTO runs (run_id, run_name, started_at, ended_at, status, metadata, pid, host) "
    "VALUES (?, ?, ?, ?, 'success', '{}', ?, ?)"
)



# ---- (b) raw SQLite limit of our schema, and the prefill ----

def make_rows(sources: int, steps_per_source: int, start_time: float, host: str = "bench"):
    """Complete step rows as the daemon would store them, ids made by the client's code.

    Yields lists of rows, one list per source-run block of up to 1,000 steps, round-robin
    over the sources, as transactions would see them with ``sources`` clients sending.
    """
    from traceforge_client import ids

    runs = []
    generators = []
    for index in range(sources):
        run_id = ids.new_run_id()
        next_step_id = ids.step_id_source()  # what a fresh process gets: its own prefix
        runs.append((run_id, "ingest-bench", start_time, start_time + 60, 10_000 + index, host))
        generators.append(_rows_for(next_step_id, run_id, steps_per_source, start_time,
                                    10_000 + index, host))
    blocks = []
    live = list(generators)
    while live:
        for generator in list(live):
            block = next(generator, None)
            if block is None:
                live.remove(generator)
            else:
                blocks.append(block)
    return runs, blocks


def _rows_for(next_id, run_id: str, steps: int, t0: float, pid: int, host: str):
    block: list = []
    done = 0
    t = t0
    while done < steps:
        outer = next_id()
        outer_row_index = len(block)
        block.append(None)  # filled at its end, like the daemon's upsert
        outer_start = t
        done += 1
        for _ in range(min(GROUP - 1, steps - done)):
            t += 0.00001
            block.append((next_id(), run_id, outer, "inner", None, INPUT_JSON, OUTPUT_JSON,
                          0, 0, 0, 0, 0.0, 0.01, t, t + 0.00001, "ok", None, None, None, None,
                          pid, host))
            done += 1
        t += 0.00001
        block[outer_row_index] = (outer, run_id, None, "outer", None, INPUT_JSON, OUTPUT_JSON,
                                  0, 0, 0, 0, 0.0, (t - outer_start) * 1000, outer_start, t,
                                  "ok", None, None, None, None, pid, host)
        if len(block) >= 1000:
            yield block
            block = []
    if block:
        yield block


def open_ours(path: Path) -> sqlite3.Connection:
    from traceforge_daemon.storage.writer import open_writer_connection

    return open_writer_connection(str(path))


def bench_raw(path: Path, sources: int, rows: int) -> dict:
    """rows/s for complete rows executemany'd 1,000 per transaction (rows prebuilt)."""
    conn = open_ours(path)
    (before,) = conn.execute("SELECT count(*) FROM steps").fetchone()
    runs, blocks = make_rows(sources, rows // sources, time.time())
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(INSERT_RUN, runs)
    conn.execute("COMMIT")
    started = time.perf_counter()
    inserted = 0
    for block in blocks:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(INSERT_STEP, block)
        conn.execute("COMMIT")
        inserted += len(block)
    seconds = time.perf_counter() - started
    conn.close()
    return {"rows": inserted, "rows_before": before, "seconds": seconds,
            "rows_per_s": inserted / seconds}


def make_prefill(path: Path, steps: int, per_run: int = 1000) -> dict:
    """A database holding ``steps`` complete steps from steps/per_run earlier processes."""
    started = time.perf_counter()
    conn = open_ours(path)
    t0 = time.time() - 86_400  # yesterday
    made = 0
    while made < steps:
        chunk_sources = min(100, -(-(steps - made) // per_run))
        runs, blocks = make_rows(chunk_sources, per_run, t0 + made * 0.001, host="prefill")
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(INSERT_RUN, runs)
        for block in blocks:
            conn.executemany(INSERT_STEP, block)
        conn.execute("COMMIT")
        made += chunk_sources * per_run
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return {"steps": made, "seconds": time.perf_counter() - started,
            "bytes": path.stat().st_size}


# ---- (c), (d) TraceForge end to end ----

def client_worker(steps: int) -> None:
    import traceforge_client
    from traceforge_client import trace_run, trace_step

    # Room for everything: a producer this fast would otherwise overrun the default
    # 100,000-event queue while the daemon catches up, and drops are not ingest.
    traceforge_client.init(max_queue_events=2 * steps + 1000)
    wait_for_go()
    cpu0 = time.process_time()
    first = time.time()
    done = 0
    with trace_run("ingest-bench"):
        while done < steps:
            with trace_step("outer", input_data=SMALL_INPUT) as outer:
                done += 1
                for _ in range(min(GROUP - 1, steps - done)):
                    with trace_step("inner", input_data=SMALL_INPUT) as r:
                        r["output"] = SMALL_OUTPUT
                    done += 1
                outer["output"] = SMALL_OUTPUT
    produced = time.time()
    flushed = traceforge_client.flush(timeout=1800)
    print(json.dumps({"first": first, "produced": produced, "flushed_at": time.time(),
                      "flushed": flushed, "steps": done, "cpu": time.process_time() - cpu0,
                      "stats": traceforge_client.stats()}))


def bench_tf(tmp: Path, procs: int, steps_per_process: int, prefill: Path | None,
             label: str, poll: float, profile_dir: Path | None = None,
             whatif: str | None = None) -> dict:
    home = tmp / label
    home.mkdir()
    if prefill is not None:
        shutil.copyfile(prefill, home / "traceforge.db")
    daemon = _common.Daemon(home, whatif).start()
    spy = None
    try:
        expected = daemon.health()["events_committed"] + procs * (2 * steps_per_process + 2)
        if profile_dir is not None:  # sample the daemon's threads while it ingests
            profile_dir.mkdir(parents=True, exist_ok=True)
            spy = subprocess.Popen(
                [str(Path(sys.executable).parent / "py-spy"), "record", "--pid",
                 str(daemon.process.pid), "--rate", "200", "--format", "raw", "--threads",
                 "--output", str(profile_dir / f"{label}.txt")],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(1.0)  # let it attach
        cpu_before = daemon.cpu()
        load_before = _common.load()
        released, results, (committed_at, cpu_after, health) = run_workers(
            __file__,
            [["--client-worker", str(steps_per_process)]] * procs, daemon.env,
            on_go=lambda: (daemon.wait_committed(expected, timeout=1800, interval=poll),
                           daemon.cpu(), daemon.health()),
        )
    finally:
        if spy is not None:
            spy.send_signal(2)  # SIGINT: py-spy writes its file and exits
            spy.wait(60)
        daemon.stop()
    conn = sqlite3.connect(f"file:{home / 'traceforge.db'}?mode=ro", uri=True)
    (stored,) = conn.execute(
        "SELECT count(*) FROM steps WHERE host != 'prefill' AND status = 'ok' "
        "AND output_data IS NOT NULL AND input_data IS NOT NULL").fetchone()
    conn.close()
    _common.remove(home)
    first = min(r["first"] for r in results)
    steps = sum(r["steps"] for r in results)
    seconds = committed_at - first
    return {
        "procs": procs, "steps": steps, "stored_complete": stored, "seconds": seconds,
        "steps_per_s": steps / seconds,
        "produce_seconds": max(r["produced"] for r in results) - first,
        "daemon_cpu_us_per_step": (cpu_after - cpu_before) / steps * 1e6,
        "client_cpu_us_per_step": sum(r["cpu"] for r in results) / steps * 1e6,
        "transactions": health["transactions"],
        "dropped": [r["stats"].get("dropped_total", r["stats"].get("dropped"))
                    for r in results],
        "release_to_first_ms": (first - released) * 1000,
        "load_before": load_before, "load_after": _common.load(),
    }


# ---- the parent ----

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--procs", default="1,4,8", help="client process counts (1,4,8)")
    parser.add_argument("--steps-per-process", type=int, default=100_000,
                        help="steps each TraceForge client traces (100,000)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="times each TraceForge configuration runs; medians are reported")
    parser.add_argument("--direct-steps", type=int, default=3_000,
                        help="steps in total per direct measurement, split among processes")
    parser.add_argument("--raw-rows", type=int, default=200_000,
                        help="rows per raw SQLite measurement (200,000)")
    parser.add_argument("--prefill", type=int, default=1_000_000,
                        help="steps already in the database for (d) (1,000,000)")
    parser.add_argument("--prefill-db", type=Path,
                        help="keep the prefilled database here and reuse it if present")
    parser.add_argument("--skip-direct", action="store_true")
    parser.add_argument("--skip-prefilled", action="store_true")
    parser.add_argument("--poll", type=float, default=0.02, help="seconds between health polls")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke test: K=4,000, 1 repeat, 100,000-step prefill")
    parser.add_argument("--py-spy", type=Path, metavar="DIR",
                        help="sample the daemon with py-spy (pip install py-spy) during each "
                        "TraceForge run; raw stacks go to DIR/<run>.txt")
    parser.add_argument("--whatif", metavar="CHANGES",
                        help="also run (c) with bench/whatif_daemon.py CHANGES (e.g. "
                        "no-id-regex,decode-in-writer), interleaved with the real daemon")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--direct-worker", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--client-worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.direct_worker:
        direct_worker(args.direct_worker[0], int(args.direct_worker[1]))
        return 0
    if args.client_worker:
        client_worker(args.client_worker)
        return 0
    if args.quick:
        args.steps_per_process, args.repeats = 4_000, 1
        args.direct_steps, args.raw_rows, args.prefill = 1_000, 50_000, 100_000
    procs_list = [int(p) for p in args.procs.split(",")]

    facts = _common.machine()
    print("machine:", json.dumps(facts), flush=True)
    tmp = _common.short_tmp("tfbi-")
    results: dict = {"machine": facts, "args": {k: str(v) for k, v in vars(args).items()}}
    try:
        # (a) direct
        direct: dict = {}
        if not args.skip_direct:
            for journal in ("delete", "wal"):
                for procs in procs_list:
                    r = bench_direct(tmp, journal, procs, args.direct_steps)
                    direct[f"{journal}/{procs}"] = r
                    print(f"(a) direct {journal:<6} {procs} procs: {r['steps_per_s']:8.0f} steps/s "
                          f"({r['steps']} steps in {r['seconds']:.2f} s, "
                          f"busy retries {r['busy_retries']}) load {_common.load()}", flush=True)
        results["direct"] = direct

        # the prefill for (d), and the raw rate into it
        raw: dict = {}
        prefill_path = None
        if not args.skip_prefilled:
            prefill_path = args.prefill_db or tmp / "prefill.db"
            if prefill_path.exists():
                conn = sqlite3.connect(prefill_path)
                (have,) = conn.execute("SELECT count(*) FROM steps").fetchone()
                conn.close()
                info = {"steps": have, "reused": True, "bytes": prefill_path.stat().st_size}
            else:
                info = make_prefill(prefill_path, args.prefill)
            results["prefill"] = info
            print(f"prefill: {info} load {_common.load()}", flush=True)
            db = tmp / "raw-prefilled.db"
            shutil.copyfile(prefill_path, db)
            r = bench_raw(db, max(procs_list), args.raw_rows)
            raw[f"prefilled/{max(procs_list)}"] = [r]
            print(f"(b) raw executemany x1000, db at {r['rows_before']:,} steps, "
                  f"{max(procs_list)} id sources: {r['rows_per_s']:8.0f} rows/s "
                  f"load {_common.load()}", flush=True)
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db}{suffix}").unlink(missing_ok=True)

        # Each repeat measures (b) raw then (c) and (d) back to back, so that every
        # ratio compares figures taken minutes apart at most, under the same load.
        tf: dict = {}
        kinds = ["empty"] + (["prefilled"] if prefill_path is not None else [])
        kinds += ["whatif"] if args.whatif else []
        for repeat in range(args.repeats):
            for sources in sorted({1, max(procs_list)}):
                db = tmp / "raw.db"
                r = bench_raw(db, sources, args.raw_rows)
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{db}{suffix}").unlink(missing_ok=True)
                raw.setdefault(f"empty/{sources}", []).append(r)
                print(f"(b) raw executemany x1000, empty db, {sources} id source(s): "
                      f"{r['rows_per_s']:8.0f} rows/s load {_common.load()}", flush=True)
            for procs in procs_list:
                for kind in kinds:
                    r = bench_tf(tmp, procs, args.steps_per_process,
                                 prefill_path if kind == "prefilled" else None,
                                 f"{kind}-{procs}-{repeat}", args.poll, args.py_spy,
                                 args.whatif if kind == "whatif" else None)
                    r["raw_1_same_repeat"] = raw["empty/1"][-1]["rows_per_s"]
                    tf.setdefault(f"{kind}/{procs}", []).append(r)
                    print(f"({'d' if kind == 'prefilled' else 'c'}) tf {kind:<9} {procs} procs: "
                          f"{r['steps_per_s']:8.0f} steps/s ({r['steps']} steps in "
                          f"{r['seconds']:.2f} s; produced in {r['produce_seconds']:.2f} s; "
                          f"daemon {r['daemon_cpu_us_per_step']:.1f} µs CPU/step, clients "
                          f"{r['client_cpu_us_per_step']:.1f}; {r['transactions']} txns; "
                          f"stored {r['stored_complete']}) load {r['load_after']}", flush=True)
        results["raw"] = raw
        results["tf"] = tf
    finally:
        _common.remove(tmp)  # a --prefill-db lives outside it and is kept

    print()
    print_table(args, procs_list, direct, raw, tf, results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


def print_table(args, procs_list, direct, raw, tf, results) -> None:
    """Medians over the repeats; each ratio is the median of per-repeat ratios."""
    med = _common.median
    nan = float("nan")
    raw1 = med([r["rows_per_s"] for r in raw["empty/1"]])
    rawn = med([r["rows_per_s"] for r in raw.get(f"empty/{max(procs_list)}", raw["empty/1"])])
    raw_pre = med([r["rows_per_s"] for r in raw.get(f"prefilled/{max(procs_list)}", [])])
    print(f"raw limit of our schema: {raw1:,.0f} rows/s with 1 id source "
          f"{[round(r['rows_per_s']) for r in raw['empty/1']]}, {rawn:,.0f} with "
          f"{max(procs_list)}; {raw_pre:,.0f} into the prefilled db")
    header = (f"{'procs':>5} {'direct':>7} {'direct WAL':>8} {'tf':>8} {'tf/direct':>8} {'60x?':>5} "
              f"{'tf/raw':>7} {'0.5x?':>5} {'tf@1M':>8} {'@1M/tf':>7} {'0.7x?':>5}")
    print(header)
    print("-" * len(header))

    def yn(ok: bool, ratio: float) -> str:
        return "n/a" if ratio != ratio else ("PASS" if ok else "FAIL")  # NaN: not run

    verdicts = {}
    for procs in procs_list:
        runs = tf.get(f"empty/{procs}", [])
        pre_runs = tf.get(f"prefilled/{procs}", [])
        rates = [r["steps_per_s"] for r in runs]
        pre = [r["steps_per_s"] for r in pre_runs]
        rate = med(rates)
        s = direct.get(f"delete/{procs}", {}).get("steps_per_s", nan)
        sw = direct.get(f"wal/{procs}", {}).get("steps_per_s", nan)
        v = {
            "tf": rate, "tf_runs": rates, "tf_prefilled": med(pre) if pre else nan,
            "tf_prefilled_runs": pre, "direct": s, "direct_wal": sw,
            "vs_direct": rate / s, "vs_direct_wal": rate / sw,
            "vs_raw": med([r["steps_per_s"] / r["raw_1_same_repeat"] for r in runs]),
            "prefilled_vs_empty": med([p / e for p, e in zip(pre, rates)]) if pre else nan,
        }
        whatif = [r["steps_per_s"] for r in tf.get(f"whatif/{procs}", [])]
        if whatif:
            v["whatif"] = med(whatif)
            v["whatif_runs"] = whatif
            v["whatif_vs_tf"] = med([w / e for w, e in zip(whatif, rates)])
            v["whatif_vs_raw"] = med([r["steps_per_s"] / r["raw_1_same_repeat"]
                                      for r in tf[f"whatif/{procs}"]])
        v["pass_direct"] = v["vs_direct"] >= 60
        v["pass_raw"] = v["vs_raw"] >= 0.5
        v["pass_prefilled"] = v["prefilled_vs_empty"] >= 0.7
        verdicts[procs] = v
        print(f"{procs:>5} {s:7.0f} {sw:8.0f} {rate:8.0f} {v['vs_direct']:7.1f}x "
              f"{yn(v['pass_direct'], v['vs_direct']):>5} {v['vs_raw']:7.2f} "
              f"{yn(v['pass_raw'], v['vs_raw']):>5} {v['tf_prefilled']:8.0f} "
              f"{v['prefilled_vs_empty']:7.2f} "
              f"{yn(v['pass_prefilled'], v['prefilled_vs_empty']):>5}")
        if whatif:
            print(f"{'':>5} what-if {args.whatif}: {v['whatif']:.0f} steps/s = "
                  f"{v['whatif_vs_tf']:.2f}x tf, {v['whatif_vs_raw']:.2f}x raw; runs "
                  f"{[round(x) for x in whatif]} vs tf {[round(x) for x in rates]}")
    print("(steps/s fully committed, medians of the repeats; direct = commit per write, as the single-process library shipped, "
          "rollback journal; tf/raw and @1M/tf are medians of per-repeat ratios, raw = 1 id "
          "source measured in the same repeat)")
    print(f"load at the end: {_common.load()}")
    results["verdicts"] = verdicts


if __name__ == "__main__":
    sys.exit(main())
