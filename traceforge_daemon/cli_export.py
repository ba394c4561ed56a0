"""traceforge-daemon export: runs as OTLP/JSON lines (or the flat format), to a file or
stdout.

    traceforge-daemon export RUN_ID -o run.jsonl          # one run
    traceforge-daemon export --since 2h > recent.jsonl    # the runs of the last two hours
    traceforge-daemon export --since 2026-11-01 --until 2026-11-30 --name nightly -o nov.jsonl
    traceforge-daemon export -o everything.jsonl          # every run

It reads the database file directly, on a read-only connection, with the same code the
HTTP export runs, so it works whether or not a daemon is running (SQLite's WAL lets it
read beside the daemon's writer). On a terminal, a progress bar goes to stderr; the
data goes only to the file or stdout.
"""

from __future__ import annotations

import argparse
import datetime
import re
import sqlite3
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO, Optional

from traceforge_protocol.home import Home

from .storage import jobs, schema
from .storage.runs_query import RUN_STATUSES
from .storage.readers import open_reader_connection
from .storage.runs_query import RunFilter

_AGO = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class ExportError(Exception):
    """The export cannot run; the message says why."""


def parse_when(text: str, now: Optional[float] = None) -> float:
    """Epoch seconds from '1714000000', an ISO 8601 date or time (local time unless it
    names its zone), or a duration ago: '90s', '30m', '2h', '7d', '1w'."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    ago = _AGO.match(text)
    if ago:
        return (time.time() if now is None else now) - float(ago[1]) * _UNIT_SECONDS[ago[2]]
    try:
        return datetime.datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise ExportError(f"cannot read {text!r} as a time: give epoch seconds, an ISO 8601 "
                          "date or time (2026-11-30, 2026-11-30T08:00), or 30m, 2h, 7d") from None


def add_parser(commands) -> None:
    export = commands.add_parser(
        "export", help="write runs as OTLP/JSON lines (or the flat format) to a file or stdout",
        description="Export one run, the runs started in a time range or matching a name, "
        "or every run. The default format is OTLP/JSON as OpenTelemetry's file exporter "
        "writes it (one TracesData per line, ended steps only); 'flat' is TraceForge's "
        "older flat span per line, which is not OTLP.")
    export.add_argument("run_id", nargs="?", help="one run (default: every run the filters match)")
    export.add_argument("--since", metavar="WHEN", help="runs started at or after WHEN: epoch "
                        "seconds, an ISO 8601 date or time, or a duration ago (30m, 2h, 7d)")
    export.add_argument("--until", metavar="WHEN", help="runs started at or before WHEN")
    export.add_argument("--name", help="runs with exactly this name")
    export.add_argument("--name-contains", metavar="TEXT", help="runs whose name contains TEXT")
    export.add_argument("--status", choices=RUN_STATUSES,
                        help="runs in this state")
    export.add_argument("--format", choices=("otlp", "flat"), default="otlp",
                        help="otlp (default) or flat")
    export.add_argument("-o", "--output", metavar="FILE",
                        help="write here (default: stdout; '-' too)")
    export.add_argument("--db", type=Path, help="the database (default: "
                        "$TRACEFORGE_HOME/traceforge.db)")


def cmd_export(args: argparse.Namespace) -> int:
    try:
        return _export(args)
    except ExportError as exc:
        print(f"traceforge-daemon export: {exc}", file=sys.stderr)
        return 1


def _export(args: argparse.Namespace) -> int:
    if args.run_id and (args.since or args.until or args.name or args.name_contains
                        or args.status):
        raise ExportError("give a run id or filters, not both")
    run_filter = RunFilter(
        name=args.name, name_contains=args.name_contains, status=args.status,
        start_time=parse_when(args.since) if args.since else None,
        end_time=parse_when(args.until) if args.until else None,
    )
    conn = _open(args.db or Home.from_env().database)
    out = _output(args.output)
    progress = Progress.on_terminal()
    try:
        if args.run_id:
            return _one_run(conn, args.run_id, args.format, out)
        if args.format == "otlp":
            from .otlp import jobs as otlp_jobs
            page_job, count_job = otlp_jobs.export_page, otlp_jobs.count_spans
        else:
            page_job, count_job = jobs.export_page, jobs.count_steps
        if progress is not None:
            progress.total = count_job(conn, run_filter)
        cursor = None
        while True:
            body, cursor, spans = page_job(conn, replace(run_filter, cursor=cursor))
            out.write(body)
            if progress is not None:
                progress.add(spans)
            if cursor is None:
                break
    except BrokenPipeError:
        return 0  # `export | head`: the reader has what it wanted
    finally:
        if progress is not None:
            progress.finish()
        if out is not sys.stdout.buffer:
            out.close()
        else:
            try:
                out.flush()
            except BrokenPipeError:
                pass
        conn.close()
    return 0


def _one_run(conn: sqlite3.Connection, run_id: str, format: str, out: BinaryIO) -> int:
    if format == "otlp":
        from .otlp import jobs as otlp_jobs
        body = otlp_jobs.run_lines(conn, run_id)
        chunks = None if body is None else [body]
    else:
        chunks = jobs.export_chunks(conn, run_id)
    if chunks is None:
        raise ExportError(f"no run with id {run_id!r} in this database")
    for chunk in chunks:
        out.write(chunk)
    return 0


def _open(path: Path) -> sqlite3.Connection:
    path = path.expanduser()
    if not path.exists():
        raise ExportError(f"no database at {path}; pass --db or set TRACEFORGE_HOME")
    try:
        conn = open_reader_connection(path)
        (version,) = conn.execute("PRAGMA user_version").fetchone()
    except sqlite3.Error as exc:
        raise ExportError(f"cannot read {path}: {exc}") from None
    if not 1 <= version <= schema.SCHEMA_VERSION:
        conn.close()
        raise ExportError(f"{path} has schema version {version}; this TraceForge reads "
                          f"1 to {schema.SCHEMA_VERSION} (start the daemon on it once to "
                          "migrate an older one)")
    return conn


def _output(name: Optional[str]) -> BinaryIO:
    if name in (None, "-"):
        return sys.stdout.buffer
    try:
        return open(name, "wb")
    except OSError as exc:
        raise ExportError(f"cannot write {name}: {exc.strerror}") from None


class Progress:
    """A one-line progress bar on stderr, redrawn at most ten times a second."""

    WIDTH = 30

    def __init__(self, stream) -> None:
        self.stream = stream
        self.total = 0
        self.done = 0
        self.drawn_at = 0.0

    @classmethod
    def on_terminal(cls) -> Optional["Progress"]:
        return cls(sys.stderr) if sys.stderr.isatty() else None

    def add(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if now - self.drawn_at >= 0.1:
            self.drawn_at = now
            self._draw()

    def _draw(self) -> None:
        share = min(self.done / self.total, 1.0) if self.total else 1.0
        filled = round(share * self.WIDTH)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self.stream.write(f"\rexporting [{bar}] {self.done:,}/{self.total:,} spans "
                          f"{share:4.0%}")
        self.stream.flush()

    def finish(self) -> None:
        self._draw()
        self.stream.write("\n")
        self.stream.flush()
