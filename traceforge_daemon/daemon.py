"""The daemon's lifecycle: what starts in which order, and how it stops.

One process, one event loop, three parts and an optional fourth (each a subpackage):

- ``storage``: the Store, the only owner of the database (writer, checkpointer, readers);
- ``ingest``: the socket listeners, which submit batches to the Store;
- ``http``: the API, live events and dashboard, which read through the Store, and
  OTLP ingest (``POST /v1/traces``), which submits to it;
- ``otlp``, when ``--otlp-endpoint`` is set: the forwarder, which reads ended steps
  through the Store and sends them to an OpenTelemetry collector.

Start-up: take the locks (one daemon per database and per socket), open the Store
(migrating the database), listen for clients, start forwarding, serve HTTP, then
write ``daemon.json`` so clients and tools can find us. Shutdown runs the other way
round: stop forwarding (its cursor stays where its last commit left it), stop
accepting and reading, let the Store commit and ack everything received, say goodbye
to the clients, stop serving HTTP, close the Store's readers, release the locks.
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

from .http.app import create_app
from .ingest.server import IngestServer, ListenError
from .settings import Settings
from .storage.store import Store

logger = logging.getLogger("traceforge.daemon")


class StartupError(Exception):
    """The daemon cannot start; the message says why and what to do."""


class _Lock:
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
        self.store = Store(settings.db, settings.max_pending_events)
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
        self.http_url: Optional[str] = None
        self.locks: list[_Lock] = []

    @property
    def tcp_address(self) -> Optional[str]:
        return self.ingest.tcp_address

    async def start(self) -> None:
        settings = self.settings
        self.started_at = time.time()
        _private_dir(settings.home, tighten=True)
        _private_dir(settings.socket.parent)
        settings.db.parent.mkdir(parents=True, exist_ok=True)
        self.locks.append(_Lock(Path(f"{settings.db}.lock"), f"the database {settings.db}"))
        self.locks.append(_Lock(Path(f"{settings.socket}.lock"), f"the socket {settings.socket}"))
        self.store.open()
        try:
            await self.ingest.start()
        except ListenError as exc:
            raise StartupError(str(exc)) from None
        if self.forwarder is not None:
            await self.forwarder.start()
        if settings.http:
            self.http_runner = web.AppRunner(
                create_app(settings, self.store, self.health), access_log=None
            )
            await self.http_runner.setup()
            host, port = settings.http
            site = web.TCPSite(self.http_runner, host, port)
            await site.start()
            bound_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            shown_host = f"[{host}]" if ":" in host else host
            self.http_url = f"http://{shown_host}:{bound_port}"
        settings.home_layout.write_state(DaemonState(
            pid=os.getpid(), version=__version__, socket=unix_address(settings.socket),
            db=str(settings.db), started_at=self.started_at, http=self.http_url,
            tcp=self.tcp_address,
        ))

    async def stop(self) -> None:
        """Graceful stop: stop accepting and reading, commit and ack, then close."""
        if self.forwarder is not None:
            await self.forwarder.stop()
        self.ingest.stop_reading()
        await self.store.finish_writes()
        self.ingest.close()
        if self.http_runner is not None:
            await self.http_runner.cleanup()
        await self.store.close()
        for path in (self.settings.socket, self.settings.home_layout.state_file):
            try:
                path.unlink()
            except OSError:
                pass
        for lock in self.locks:
            lock.release()

    def health(self) -> dict:
        return {
            "status": "ok",
            "version": __version__,
            "pid": os.getpid(),
            "uptime_s": round(time.time() - self.started_at, 3),
            **self.ingest.health(),
            **self.store.health(),
            "forwarder": self.forwarder.health() if self.forwarder is not None else None,
            "socket": str(self.settings.socket),
            "tcp": self.tcp_address,
            "http": self.http_url,
        }


def _private_dir(path: Path, tighten: bool = False) -> None:
    """Create ``path`` as 0700 if missing. ``tighten`` also makes our own existing home
    0700, since the token and the traces live there; other directories are left alone."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if tighten:
        info = path.stat()
        if info.st_uid == os.getuid() and info.st_mode & 0o077:
            os.chmod(path, 0o700)
            logger.info("made %s private (mode 0700): it holds traces and the token", path)
