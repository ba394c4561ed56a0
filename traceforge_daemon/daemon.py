"""The daemon's lifecycle: what starts in which order, and how it stops.

One process, one event loop, three parts and an optional fourth (each a subpackage):

- ``storage``: the Store, the only owner of the database (writer, checkpointer, readers);
- ``ingest``: the socket listeners, which submit batches to the Store;
- ``http``: the API, live events and dashboard, which read through the Store, and
  OTLP ingest (``POST /v1/traces``), which submits to it;
- ``otlp``, when ``--otlp-endpoint`` is set: the forwarder, which reads ended steps
  through the Store and sends them to an OpenTelemetry collector.

Start-up: take the locks (one daemon per database and per socket), then (and only then)
write ``daemon.pid`` and switch the log to ``--log-file``, open the Store (checking and
migrating the database), listen for clients, start forwarding, serve HTTP, then write
``daemon.json`` so clients and tools can find us. Shutdown runs the other way round: stop
forwarding (its cursor stays where its last commit left it), stop accepting and reading,
let the Store commit and ack everything received, say goodbye to the clients, stop
serving HTTP, close the Store's readers, remove what we made, release the locks. A start
refused at the locks touches nothing: the socket, ``daemon.json``, ``daemon.pid`` and the
log belong to the daemon that holds them.

Every file the daemon creates is private to its user (umask 077): the database and its
WAL and shared-memory files (SQLite gives those the database's mode), wherever ``--db``
puts them, hold the traces' prompts.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from pathlib import Path
from typing import Optional

from aiohttp import web

from traceforge_protocol.home import DaemonState, unix_address
from traceforge_protocol.version import __version__

from . import limits
from .http.app import create_app
from .http.serving import HttpListener, quiet_bad_requests
from .ingest.server import IngestServer, ListenError
from .settings import Settings
from .storage import health as health_words
from .storage.store import Store

logger = logging.getLogger("traceforge.daemon")


class StartupError(Exception):
    """The daemon cannot start; the message says why and what to do."""


class Lock:
    """An exclusive flock on a file beside the resource, holding the owner's pid."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(self.fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(self.fd)
            raise StartupError(
                f"another traceforge daemon (pid {owner}) is already using {what}; "
                "stop it with `traceforge-daemon stop` or pass a different --db/--socket"
            ) from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, str(os.getpid()).encode())

    def release(self) -> None:
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(self.fd)


class Daemon:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.started_at = 0.0
        self.store = Store(
            settings.db, settings.max_pending_events, settings.max_pending_bytes,
            incomplete_after=settings.incomplete_after, retention=settings.retention,
            retention_bytes=settings.retention_size, on_fatal=self._fatal)
        self.ingest = IngestServer(settings, self.store)
        self.forwarder = None
        if settings.otlp_endpoint:
            from .otlp.forwarder import Forwarder
            self.forwarder = Forwarder(
                self.store, settings.otlp_endpoint, settings.otlp_headers,
                json=settings.otlp_protocol == "http/json",
                batch_spans=settings.otlp_batch_spans,
            )
        self.http_runner: Optional[web.AppRunner] = None
        self.http_listener: Optional[HttpListener] = None
        self.http_url: Optional[str] = None
        self.locks: list[Lock] = []
        self.made: list[Path] = []
        """Files this daemon created and removes at stop: never another daemon's."""
        self.fatal: Optional[str] = None
        """Why the daemon must stop and exit non-zero (set by ``_fatal``)."""
        self.on_fatal = lambda: None
        """Set by the command line: ask the running daemon to stop."""
        self.http_cap = settings.max_http_connections

    @property
    def tcp_address(self) -> Optional[str]:
        return self.ingest.tcp_address

    async def start(self) -> None:
        settings = self.settings
        self.started_at = time.time()
        os.umask(0o077)
        _private_dir(settings.home, tighten=True)
        _private_dir(settings.socket.parent)
        settings.db.parent.mkdir(parents=True, exist_ok=True)
        self.locks.append(Lock(Path(f"{settings.db}.lock"), f"the database {settings.db}"))
        self.locks.append(Lock(Path(f"{settings.socket}.lock"), f"the socket {settings.socket}"))
        # From here on the database and the socket are ours.
        if settings.log_file is not None:
            _log_to(settings.log_file)
        layout = settings.home_layout
        layout.pid_file.write_text(f"{os.getpid()}\n")
        self.made.append(layout.pid_file)
        self._fit_connection_caps()
        _private_database(settings.db)
        self.store.open()
        try:
            await self.ingest.start()
        except ListenError as exc:
            raise StartupError(str(exc)) from None
        if self.forwarder is not None:
            await self.forwarder.start()
        if settings.http:
            quiet_bad_requests()
            self.http_runner = web.AppRunner(
                create_app(settings, self.store, self.health), access_log=None,
                keepalive_timeout=settings.http_header_timeout,
            )
            await self.http_runner.setup()
            host, port = settings.http
            self.http_listener = HttpListener(self.http_runner, self.http_cap,
                                              settings.http_header_timeout)
            await self.http_listener.start(host, port)
            shown_host = f"[{host}]" if ":" in host else host
            self.http_url = f"http://{shown_host}:{self.http_listener.port}"
        self.made.append(layout.state_file)
        layout.write_state(DaemonState(
            pid=os.getpid(), version=__version__, socket=unix_address(settings.socket),
            db=str(settings.db), started_at=self.started_at, http=self.http_url,
            tcp=self.tcp_address,
        ))

    def _fit_connection_caps(self) -> None:
        settings = self.settings
        limit = limits.raise_soft_limit()
        listeners = 2 if settings.tcp else 1
        caps = limits.fit(limit, settings.max_connections, listeners,
                           settings.max_http_connections)
        for cap in self.ingest.caps.values():
            cap.limit = caps.ingest
        self.http_cap = caps.http

    async def stop(self) -> None:
        """Graceful stop: stop accepting and reading, commit and ack, then close."""
        if self.forwarder is not None:
            await self.forwarder.stop()
        self.ingest.stop_reading()
        await self.store.finish_writes()
        self.ingest.close()
        if self.http_listener is not None:
            self.http_listener.close()
        if self.http_runner is not None:
            await self.http_runner.cleanup()
        await self.store.close()
        if self.ingest.unix_bound:
            self.made.append(self.settings.socket)
        for path in reversed(self.made):  # only what this daemon created
            try:
                path.unlink()
            except OSError:
                pass
        for lock in self.locks:
            lock.release()

    def _fatal(self, reason: str) -> None:
        """The Store cannot go on: stop, and exit non-zero so a supervisor restarts us."""
        logger.error("stopping: %s", reason)
        self.fatal = reason
        self.on_fatal()

    def health(self) -> dict:
        caps = list(self.ingest.caps.values())
        if self.http_listener is not None:
            caps.append(self.http_listener.cap)
        verdict = health_words.summarize(self.store.reasons() + limits.reasons(caps))
        return {
            **verdict,
            "version": __version__,
            "pid": os.getpid(),
            "uptime_s": round(time.time() - self.started_at, 3),
            **self.ingest.health(),
            **self.store.health(),
            "forwarder": self.forwarder.health() if self.forwarder is not None else None,
            "socket": str(self.settings.socket),
            "tcp": self.tcp_address,
            "http": self.http_url,
            "token_required": self.settings.http_needs_token,
        }


def _private_database(path: Path) -> None:
    """The database file is created 0600 (its WAL and shm files follow its mode); an
    existing one of ours that others can read is made private."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        info = os.fstat(fd)
        if info.st_uid == os.getuid() and info.st_mode & 0o077:
            os.fchmod(fd, 0o600)
            logger.info("made %s private (mode 0600): it holds traces", path)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm"):
        side = Path(f"{path}{suffix}")
        try:
            if side.stat().st_mode & 0o077 and side.stat().st_uid == os.getuid():
                os.chmod(side, 0o600)
        except OSError:
            pass


def _log_to(path: Path) -> None:
    """Send this process's stdout and stderr (and so the log) to the end of ``path``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    for target in (1, 2):
        os.dup2(fd, target)
    os.close(fd)


def _private_dir(path: Path, tighten: bool = False) -> None:
    """Create ``path`` as 0700 if missing. ``tighten`` also makes our own existing home
    0700, since the token and the traces live there; other directories are left alone."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if tighten:
        info = path.stat()
        if info.st_uid == os.getuid() and info.st_mode & 0o077:
            os.chmod(path, 0o700)
            logger.info("made %s private (mode 0700): it holds traces and the token", path)
