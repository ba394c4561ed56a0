"""The daemon process: one event loop running ingest servers, the HTTP app and the writer.

Start-up order: take the locks (one daemon per database and per socket), open the
database (migrating it), start the writer thread, then listen. Shutdown runs the
other way round: stop accepting, stop reading, let the writer commit and ack
everything received, close the connections, release the locks.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from aiohttp import web

from traceforge_client.version import __version__

from .ingest import IngestConnection
from .settings import Settings, is_loopback
from .writer import WriteBatch, Writer

logger = logging.getLogger("traceforge.daemon")


class StartupError(Exception):
    """The daemon cannot start; the message says why and what to do."""


@dataclass
class DaemonStats:
    started_at: float = 0.0
    events_received: int = 0
    connections_total: int = 0
    rejected_connections: int = 0


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
        self.stats = DaemonStats()
        self.connections: set[IngestConnection] = set()
        self.servers: list[asyncio.AbstractServer] = []
        self.http_runner: Optional[web.AppRunner] = None
        self.http_url: Optional[str] = None
        self.tcp_address: Optional[str] = None
        self.writer: Optional[Writer] = None
        self.locks: list[_Lock] = []
        self.pending_events = 0
        self._last_batch_at = float("-inf")
        self.stopping = False
        self.commit_listeners: list = []
        self._room = asyncio.Event()
        self._room.set()
        self._stopped = asyncio.Event()
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    # ---- lifecycle ----

    async def start(self) -> None:
        settings = self.settings
        self._loop = asyncio.get_running_loop()
        self.stats.started_at = time.time()
        _private_dir(settings.home, tighten=True)
        _private_dir(settings.socket.parent)
        settings.db.parent.mkdir(parents=True, exist_ok=True)
        self.locks.append(_Lock(Path(f"{settings.db}.lock"), f"the database {settings.db}"))
        self.locks.append(_Lock(Path(f"{settings.socket}.lock"), f"the socket {settings.socket}"))
        self.writer = Writer(str(settings.db), self._committed_threadsafe, self._failed_threadsafe)
        self.writer.start()
        await self._listen_unix()
        if settings.tcp:
            host, port = settings.tcp
            server = await asyncio.start_server(
                lambda r, w: self._serve(r, w, "tcp"), host, port, reuse_address=True
            )
            self.servers.append(server)
            bound = server.sockets[0].getsockname()
            self.tcp_address = f"tcp://{host}:{bound[1]}"
        if settings.http:
            from .app import create_app

            self.http_runner = web.AppRunner(create_app(self), access_log=None)
            await self.http_runner.setup()
            host, port = settings.http
            site = web.TCPSite(self.http_runner, host, port)
            await site.start()
            bound_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            shown_host = f"[{host}]" if ":" in host else host
            self.http_url = f"http://{shown_host}:{bound_port}"
        self._write_state_file()

    async def _listen_unix(self) -> None:
        path = self.settings.socket
        if len(str(path).encode()) > 100:
            raise StartupError(
                f"socket path {path} is too long for a Unix socket (max about 100 bytes); "
                "pass a shorter --socket or TRACEFORGE_HOME"
            )
        if path.exists() or path.is_symlink():
            if not stat.S_ISSOCK(path.lstat().st_mode):
                raise StartupError(f"{path} exists and is not a socket; move it or pass --socket")
            path.unlink()  # stale: we hold the socket's lock, so no daemon owns it
        server = await asyncio.start_unix_server(
            lambda r, w: self._serve(r, w, "unix"), path=str(path)
        )
        os.chmod(path, 0o600)
        self.servers.append(server)

    async def _serve(self, reader, writer, listener: str) -> None:
        require_token = listener == "tcp" and not is_loopback(self.settings.tcp[0])
        connection = IngestConnection(self, reader, writer, listener, require_token)
        self.connections.add(connection)
        self.stats.connections_total += 1
        await connection.run()

    async def stop(self) -> None:
        """Graceful stop: stop accepting and reading, commit and ack, then close."""
        self.stopping = True
        for server in self.servers:
            server.close()
        for connection in list(self.connections):
            connection.stop_reading()
        if self.writer is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.writer.stop)
            await asyncio.sleep(0)  # deliver the acks queued by the final commit
        for connection in list(self.connections):
            connection.shutting_down()
            connection.close()
        if self.http_runner is not None:
            await self.http_runner.cleanup()
        try:
            self.settings.socket.unlink()
        except OSError:
            pass
        try:
            self.settings.state_file.unlink()
        except OSError:
            pass
        for lock in self.locks:
            lock.release()
        self._stopped.set()

    # ---- ingest -> writer -> acks ----

    async def wait_for_room(self) -> None:
        """Backpressure: pause reading while the writer is too far behind."""
        while self.pending_events >= self.settings.max_pending_events:
            self._room.clear()
            await self._room.wait()

    def ingest_busy(self) -> bool:
        """Batches arrived within the last second, or are still waiting to be written."""
        return self.pending_events > 0 or time.monotonic() - self._last_batch_at < 1.0

    def submit(self, batch: WriteBatch) -> None:
        self._last_batch_at = time.monotonic()
        self.pending_events += len(batch.events)
        self.stats.events_received += len(batch.events)
        self.writer.submit(batch)  # type: ignore[union-attr]

    def _committed_threadsafe(self, items: list) -> None:
        self._loop.call_soon_threadsafe(self._committed, items)  # type: ignore[union-attr]

    def _failed_threadsafe(self, items: list, message: str) -> None:
        self._loop.call_soon_threadsafe(self._failed, items, message)  # type: ignore[union-attr]

    def _committed(self, items: list) -> None:
        for item in items:
            self.pending_events -= len(item.events)
            item.origin.ack(item.seq)
        if self.pending_events < self.settings.max_pending_events:
            self._room.set()
        for listener in self.commit_listeners:
            try:
                listener(items)
            except Exception:
                logger.exception("commit listener failed")

    def _failed(self, items: list, message: str) -> None:
        for item in items:
            self.pending_events -= len(item.events)
            item.origin.fail(item.seq, f"storage error, reconnect and resend: {message}")
        self._room.set()

    # ---- health ----

    def health(self) -> dict:
        writer = self.writer
        db = self.settings.db
        sizes = [p.stat().st_size if p.exists() else 0 for p in (db, Path(f"{db}-wal"))]
        return {
            "status": "ok",
            "version": __version__,
            "pid": os.getpid(),
            "uptime_s": round(time.time() - self.stats.started_at, 3),
            "connections": len(self.connections),
            "connections_total": self.stats.connections_total,
            "rejected_connections": self.stats.rejected_connections,
            "events_received": self.stats.events_received,
            "events_committed": writer.stats.events_committed if writer else 0,
            "events_pending": self.pending_events,
            "transactions": writer.stats.transactions if writer else 0,
            "storage_errors": writer.stats.storage_errors if writer else 0,
            "client_drops": dict(writer.stats.drops_reported) if writer else {},
            "database": {
                "path": str(db),
                "size_bytes": sum(sizes),
                "wal_bytes": sizes[1],
                "checkpoints": writer.checkpointer.checkpoints if writer else 0,
            },
            "socket": str(self.settings.socket),
            "tcp": self.tcp_address,
            "http": self.http_url,
        }

    def _write_state_file(self) -> None:
        state = {
            "pid": os.getpid(),
            "version": __version__,
            "http": self.http_url,
            "socket": str(self.settings.socket),
            "tcp": self.tcp_address,
            "db": str(self.settings.db),
            "started_at": self.stats.started_at,
        }
        path = self.settings.state_file
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(state, indent=2))
        os.replace(temporary, path)


def _private_dir(path: Path, tighten: bool = False) -> None:
    """Create ``path`` as 0700 if missing. ``tighten`` also makes our own existing home
    0700, since the token and the traces live there; other directories are left alone."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if tighten:
        info = path.stat()
        if info.st_uid == os.getuid() and info.st_mode & 0o077:
            os.chmod(path, 0o700)
            logger.info("made %s private (mode 0700): it holds traces and the token", path)

