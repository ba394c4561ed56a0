"""``traceforge-daemon prune``: delete old traces, through the daemon or without one.

With a daemon running on the database, the command asks it (``POST /api/prune``): its
writer deletes a chunk at a time between ingest transactions, so tracing goes on. With
none, the command takes the database's lock itself (so no daemon starts meanwhile) and
runs the same job (``storage.retention.Prune``) on its own connection; only then can it
also ``--vacuum``, rewriting the file to give every free page back.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

from traceforge_protocol.home import TRACEFORGE_TOKEN, Home

from .daemon import StartupError, Lock
from .storage import retention, schema
from .storage.writer import open_writer_connection


def cmd_prune(args: argparse.Namespace) -> int:
    if args.older_than is None and args.max_size is None and not args.vacuum:
        print("traceforge-daemon prune: say what to delete: --older-than AGE and/or "
              "--max-size SIZE (and/or --vacuum)", file=sys.stderr)
        return 2
    home = Home.from_env()
    state = home.running_state()
    running = state is not None
    db = (args.db or (Path(state.db) if running else home.database)).expanduser().absolute()
    if running and Path(state.db) == db:  # type: ignore[union-attr]
        if args.vacuum:
            print(f"traceforge-daemon prune: --vacuum needs the daemon stopped (pid "
                  f"{state.pid} is running on {db})", file=sys.stderr)  # type: ignore
            return 1
        if not state.http:  # type: ignore[union-attr]
            print("traceforge-daemon prune: the running daemon has no HTTP listener "
                  "(--http off); stop it to prune the file directly", file=sys.stderr)
            return 1
        return _through_daemon(state.http, args)  # type: ignore[union-attr]
    return _offline(db, args)


def _through_daemon(url: str, args: argparse.Namespace) -> int:
    body = json.dumps({"older_than_s": args.older_than, "max_bytes": args.max_size}).encode()
    request = urllib.request.Request(url + "/api/prune", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    token = os.environ.get(TRACEFORGE_TOKEN)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=3600) as response:
            result = json.load(response)
    except urllib.error.HTTPError as exc:
        print(f"traceforge-daemon prune: the daemon answered {exc.code}: "
              f"{exc.read().decode(errors='replace')}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"traceforge-daemon prune: cannot reach the daemon at {url}: {exc}",
              file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


def _offline(db: Path, args: argparse.Namespace) -> int:
    if not db.exists():
        print(f"traceforge-daemon prune: no database at {db}", file=sys.stderr)
        return 1
    try:
        lock = Lock(Path(f"{db}.lock"), f"the database {db}")
    except StartupError as exc:
        print(f"traceforge-daemon prune: {exc}", file=sys.stderr)
        return 1
    try:
        conn = open_writer_connection(str(db))
        try:
            result = _run(conn, args.older_than, args.max_size) if (
                args.older_than is not None or args.max_size is not None) else {}
            if args.vacuum:
                retention.vacuum(conn)
                used, total = retention.database_bytes(conn)
                result.update(bytes_after=used, free_bytes_after=total - used)
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
    except (schema.SchemaError, Exception) as exc:  # one line, never a traceback
        print(f"traceforge-daemon prune: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        lock.release()
    print(json.dumps(result, indent=2))
    return 0


def _run(conn, older_than: Optional[float], max_bytes: Optional[int]) -> dict:
    outcome: list = []
    job = retention.Prune(older_than, max_bytes, lambda result, error: outcome.append(
        (result, error)))
    while True:
        try:
            done = job.step(conn)
        except Exception as exc:
            job.settle(exc)
            raise
        if done:
            job.settle(None)
            break
    result, _ = outcome[0]
    return result.as_dict()
