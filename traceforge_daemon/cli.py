"""traceforge-daemon start | stop | status | prune (``maintenance.py``) | export
(``cli_export.py``)"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

import msgspec

from traceforge_protocol.home import TRACEFORGE_TOKEN, Home, process_alive
from traceforge_protocol.version import __version__

from . import maintenance
from .daemon import Daemon, StartupError
from .http.ui import DashboardMissing
from . import cli_export
from .settings import (
    DEFAULT_HTTP,
    OTLP_PROTOCOLS,
    SETTINGS,
    TRACEFORGE_ALLOW_HOSTS,
    Settings,
    allowed_host_names,
    check_token,
    otlp_header,
    otlp_url,
    parse_duration,
    parse_size,
    resolve_token,
    split_host_port,
)
from .storage import health, schema

logger = logging.getLogger("traceforge.daemon")


def build_parser() -> argparse.ArgumentParser:
    helps = {s.name: s.help for s in SETTINGS}
    defaults = {s.name: s.default for s in SETTINGS}
    parser = argparse.ArgumentParser(
        prog="traceforge-daemon",
        description="Collects traces from instrumented processes into one SQLite database "
        "and serves the API and dashboard. Data lives under $TRACEFORGE_HOME "
        "(default ~/.traceforge).",
    )
    parser.add_argument("--version", action="version", version=f"traceforge {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    start = commands.add_parser("start", help="run the daemon (in the foreground unless --detach)")
    start.add_argument("--db", type=Path, help=helps["db"])
    start.add_argument("--socket", type=Path, help=helps["socket"])
    start.add_argument("--tcp", metavar="HOST:PORT", help=helps["tcp"])
    start.add_argument("--http", metavar="HOST:PORT", default=DEFAULT_HTTP,
                       help=helps["http"] + " ('off' disables it)")
    start.add_argument("--token", help=helps["token"])
    start.add_argument("--allow-host", metavar="NAME", action="append", dest="allow_host",
                       default=list(defaults["allow_host"]), help=helps["allow_host"])
    start.add_argument("--detach", action="store_true",
                       help="run in the background, with a pid file and a log file under "
                       "$TRACEFORGE_HOME")
    for name, kind in (("hello_timeout", float), ("idle_timeout", float),
                       ("body_timeout", float), ("max_frame_bytes", int),
                       ("max_pending_events", int), ("max_pending_bytes", _size),
                       ("max_unacked_bytes", _size), ("max_connections", int),
                       ("max_http_connections", int), ("http_header_timeout", float),
                       ("incomplete_after", _duration), ("retention", _duration),
                       ("retention_size", _size), ("log_file", Path)):
        start.add_argument("--" + name.replace("_", "-"), type=kind, default=defaults[name],
                           help=helps[name])
    start.add_argument("--otlp-endpoint", metavar="URL", help=helps["otlp_endpoint"])
    start.add_argument("--otlp-header", metavar="NAME=VALUE", action="append", default=[],
                       help=helps["otlp_header"])
    start.add_argument("--otlp-protocol", default=defaults["otlp_protocol"],
                       help=helps["otlp_protocol"])
    start.add_argument("--otlp-batch-spans", type=int, default=defaults["otlp_batch_spans"],
                       help=helps["otlp_batch_spans"])
    start.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")

    commands.add_parser("stop", help="stop the running daemon gracefully")
    commands.add_parser("status", help="print the running daemon's health as JSON; exit 0 "
                        "when ok, 2 when degraded, 1 when failing or not running")
    prune = commands.add_parser(
        "prune", help="delete old traces: through the running daemon (ingest goes on), or "
        "directly in the database when none runs")
    prune.add_argument("--older-than", type=_duration, metavar="AGE",
                       help="delete runs that started more than AGE ago (e.g. 7d, 12h), "
                       "except running ones, with their steps")
    prune.add_argument("--max-size", type=_size, metavar="SIZE",
                       help="then delete the oldest runs until the data fits in SIZE "
                       "(e.g. 500MB, 2GiB)")
    prune.add_argument("--vacuum", action="store_true",
                       help="afterwards rewrite the database to give all free space back "
                       "(only with no daemon running; can take a while)")
    prune.add_argument("--db", type=Path, help="the database (default: the running "
                       "daemon's, else $TRACEFORGE_HOME/traceforge.db)")
    cli_export.add_parser(commands)
    return parser


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def settings_from_args(args: argparse.Namespace) -> Settings:
    home = Home.from_env()
    try:
        tcp = split_host_port(args.tcp) if args.tcp else None
        http = None if args.http == "off" else split_host_port(args.http)
    except ValueError as exc:
        raise StartupError(f"{exc} (for example 127.0.0.1:8742)") from None
    try:
        allow_hosts = allowed_host_names(args.allow_host, os.environ.get(TRACEFORGE_ALLOW_HOSTS))
    except ValueError as exc:
        raise StartupError(str(exc)) from None
    if not 64 * 1024 <= args.max_frame_bytes <= 64 * 1024 * 1024:
        raise StartupError("--max-frame-bytes must be between 65536 and 67108864")
    try:
        endpoint = otlp_url(args.otlp_endpoint) if args.otlp_endpoint else None
        headers = tuple(otlp_header(text) for text in args.otlp_header)
    except ValueError as exc:
        raise StartupError(str(exc)) from None
    if args.otlp_protocol not in OTLP_PROTOCOLS:
        raise StartupError(f"--otlp-protocol must be one of {', '.join(OTLP_PROTOCOLS)}")
    if not 1 <= args.otlp_batch_spans <= 100_000:
        raise StartupError("--otlp-batch-spans must be between 1 and 100000")
    settings = Settings(
        home=home.path,
        db=(args.db or home.database).expanduser().absolute(),
        socket=(args.socket or home.socket).expanduser().absolute(),
        http=http,
        tcp=tcp,
        allow_hosts=allow_hosts,
        hello_timeout=args.hello_timeout,
        idle_timeout=args.idle_timeout,
        body_timeout=args.body_timeout,
        max_frame_bytes=args.max_frame_bytes,
        max_pending_events=args.max_pending_events,
        max_pending_bytes=args.max_pending_bytes,
        max_unacked_bytes=args.max_unacked_bytes,
        max_connections=args.max_connections,
        max_http_connections=args.max_http_connections,
        http_header_timeout=args.http_header_timeout,
        incomplete_after=args.incomplete_after,
        retention=args.retention,
        retention_size=args.retention_size,
        log_file=args.log_file.expanduser().absolute() if args.log_file else None,
        otlp_endpoint=endpoint,
        otlp_headers=headers,
        otlp_protocol=args.otlp_protocol,
        otlp_batch_spans=args.otlp_batch_spans,
    )
    if settings.needs_token:
        home.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        token = resolve_token(home, args.token)
        try:
            check_token(token)
        except ValueError as exc:
            raise StartupError(str(exc)) from None
        settings = Settings(**{**settings.__dict__, "token": token})
    return settings


def _run_loop(main) -> None:
    try:
        import uvloop
    except ImportError:  # e.g. Windows: plain asyncio works, only slower
        asyncio.run(main)
        return
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main)
    else:
        uvloop.install()
        asyncio.run(main)


async def _serve(settings: Settings) -> Optional[str]:
    """Run until a signal (None) or until the daemon cannot go on (why, for exit 1)."""
    daemon = Daemon(settings)
    stop = asyncio.Event()
    daemon.on_fatal = stop.set
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await daemon.start()
    except BaseException:
        await daemon.stop()  # removes only what this daemon made: a refused start, nothing
        raise
    lines = [
        f"traceforge-daemon {__version__} running (pid {os.getpid()})",
        f"  socket:    unix://{settings.socket}",
    ]
    if daemon.tcp_address:
        lines.append(f"  tcp:       {daemon.tcp_address}")
    lines.append(f"  database:  {settings.db}")
    if daemon.http_url:
        lines.append(f"  http:      {daemon.http_url}")
        lines.append(f"  dashboard: {daemon.http_url}/")
        lines.append(f"  otlp in:   {daemon.http_url}/v1/traces")
    if settings.otlp_endpoint:
        lines.append(f"  otlp out:  {settings.otlp_endpoint} ({settings.otlp_protocol})")
    if settings.needs_token:
        lines.append(f"  token:     required beyond loopback; see "
                     f"{settings.home_layout.token_file} or TRACEFORGE_TOKEN")
    if settings.http_needs_token and daemon.http_url:
        lines.append(f"  login:     {daemon.http_url}/login (the dashboard asks for the token)")
    print("\n".join(lines), flush=True)
    await stop.wait()
    logger.info("stopping: committing what was received")
    await daemon.stop()
    logger.info("stopped" if daemon.fatal is None else f"stopped: {daemon.fatal}")
    return daemon.fatal


def cmd_start(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    if args.detach:
        return _start_detached(settings)
    outcome: list = []
    try:
        _run_loop(_keep(outcome, _serve(settings)))
    except (StartupError, schema.SchemaError, DashboardMissing) as exc:
        print(f"traceforge-daemon: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"traceforge-daemon: cannot listen: {exc}", file=sys.stderr)
        return 1
    if outcome and outcome[0] is not None:
        print(f"traceforge-daemon: exiting with an error: {outcome[0]}", file=sys.stderr)
        return 1
    return 0


async def _keep(outcome: list, main) -> None:
    outcome.append(await main)


def _start_detached(settings: Settings) -> int:
    """Start the daemon in the background. Until it holds its locks its output goes to a
    file of its own, so a refused start never writes into a running daemon's log; then it
    appends to daemon.log itself (``--log-file``) and writes daemon.pid."""
    home = settings.home_layout
    home.path.mkdir(mode=0o700, parents=True, exist_ok=True)
    log_path = settings.log_file or home.log_file
    argv = [a for a in sys.argv[1:] if a != "--detach"]
    if settings.log_file is None:
        argv += ["--log-file", str(log_path)]
    # PYTHONSAFEPATH (Python 3.11+): `-m` must not put the current directory first on
    # the path, or a source checkout there would run instead of the installed daemon.
    env = {**os.environ, "PYTHONSAFEPATH": "1"}
    fd, early_path = tempfile.mkstemp(prefix="start-", suffix=".log", dir=home.path)
    try:
        with os.fdopen(fd, "ab") as early:
            process = subprocess.Popen(
                [sys.executable, "-m", "traceforge_daemon", *argv],
                stdin=subprocess.DEVNULL, stdout=early, stderr=subprocess.STDOUT,
                start_new_session=True, env=env,
            )
        return _wait_for_detached(home, process, Path(early_path), log_path)
    finally:
        os.unlink(early_path)


def _wait_for_detached(home: Home, process: subprocess.Popen, early: Path,
                       log_path: Path) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = home.read_state()
        if state is not None and state.pid == process.pid:
            print(f"traceforge-daemon started in the background (pid {process.pid})")
            print(f"  log:       {log_path}")
            if state.http:
                print(f"  dashboard: {state.http}/")
            return 0
        if process.poll() is not None:
            tail = early.read_text(errors="replace").strip().splitlines()[-5:]
            print("traceforge-daemon failed to start:\n  " + "\n  ".join(tail), file=sys.stderr)
            return 1
        time.sleep(0.05)
    print(f"traceforge-daemon did not come up within 30 s; see {log_path}", file=sys.stderr)
    return 1


def cmd_stop(args: argparse.Namespace) -> int:
    home = Home.from_env()
    state = home.running_state()
    if state is None:
        print(f"no traceforge daemon is running (no live state file in {home.path})")
        return 1
    pid = state.pid
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process_alive(pid):
        time.sleep(0.05)
    if process_alive(pid):
        print(f"daemon (pid {pid}) did not stop within 60 s", file=sys.stderr)
        return 1
    print(f"traceforge daemon stopped (pid {pid})")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    home = Home.from_env()
    state = home.running_state()
    if state is None:
        print(json.dumps({"status": "stopped", "home": str(home.path)}, indent=2))
        return 1
    if not state.http:
        print(json.dumps({"status": "running", **msgspec.structs.asdict(state)}, indent=2))
        return 0
    request = urllib.request.Request(state.http + "/api/health")
    token = os.environ.get(TRACEFORGE_TOKEN) or _token_file(home)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            health = json.load(response)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(json.dumps({"status": "unreachable", "error": str(exc),
                          **msgspec.structs.asdict(state)}, indent=2))
        return 1
    print(json.dumps(health, indent=2))
    return STATUS_EXIT.get(health.get("status"), 1)


STATUS_EXIT = {health.OK: 0, health.DEGRADED: 2, health.FAILING: 1}
"""`traceforge-daemon status` exit codes; not running or unreachable is 1 too."""


def _token_file(home: Home) -> Optional[str]:
    """The daemon's generated token, which this user may read (mode 0600)."""
    try:
        return home.token_file.read_text().strip() or None
    except OSError:
        return None


def main(argv: Optional[list] = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # e.g. `traceforge-daemon status | head`: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _main(argv: Optional[list]) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "start":
        logging.basicConfig(
            level=getattr(logging, str(args.log_level).upper(), logging.INFO),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        try:
            return cmd_start(args)
        except StartupError as exc:
            print(f"traceforge-daemon: {exc}", file=sys.stderr)
            return 1
    if args.command == "stop":
        return cmd_stop(args)
    if args.command == "export":
        return cli_export.cmd_export(args)
    if args.command == "prune":
        return maintenance.cmd_prune(args)
    return cmd_status(args)
