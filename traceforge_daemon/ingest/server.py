"""The ingest listeners: the Unix socket and the optional TCP port, and the connections
they accept.

Each accepted connection becomes an ``IngestConnection`` that submits its batches to the
Store and is told by the Store when they commit (it is the batch's ``origin``). This
object only keeps the set of live connections and the counts health reports, and stops
them in the order a graceful stop needs: no new connections, no more frames read, then
(after the Store's final commit has acked everything) a goodbye and close.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from pathlib import Path
from typing import Optional

from traceforge_protocol import wire

from ..limits import OVERLOADED_RETRY_AFTER_MS, ConnectionCap
from ..settings import Settings, is_loopback
from ..storage.store import Store
from .connection import IngestConnection
from .stats import IngestStats

logger = logging.getLogger("traceforge.daemon")

MAX_UNIX_PATH_BYTES = 100
"""A Unix socket path must fit ``sun_path``: 108 bytes on Linux, 104 on macOS and the BSDs."""


class ListenError(Exception):
    """A listener cannot be opened; the message says why and what to do."""


class IngestServer:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.stats = IngestStats()
        self.connections: set[IngestConnection] = set()
        self.servers: list[asyncio.AbstractServer] = []
        self.tcp_address: Optional[str] = None
        self.stopping = False
        self.unix_bound = False
        """True once this server has bound the socket path: only then is it ours to remove."""
        self.caps = {listener: ConnectionCap(listener, settings.max_connections,
                                             "--max-connections")
                     for listener in ("unix", "tcp")}

    async def start(self) -> None:
        await self._listen_unix(self.settings.socket)
        if self.settings.tcp:
            host, port = self.settings.tcp
            server = await asyncio.start_server(
                lambda r, w: self._serve(r, w, "tcp"), host, port, reuse_address=True
            )
            self.servers.append(server)
            bound = server.sockets[0].getsockname()
            shown = f"[{host}]" if ":" in host else host
            self.tcp_address = f"tcp://{shown}:{bound[1]}"

    async def _listen_unix(self, path: Path) -> None:
        if len(str(path).encode()) > MAX_UNIX_PATH_BYTES:
            raise ListenError(
                f"socket path {path} is too long for a Unix socket (max about "
                f"{MAX_UNIX_PATH_BYTES} bytes); pass a shorter --socket or TRACEFORGE_HOME"
            )
        if path.exists() or path.is_symlink():
            if not stat.S_ISSOCK(path.lstat().st_mode):
                raise ListenError(f"{path} exists and is not a socket; move it or pass --socket")
            path.unlink()  # stale: the daemon holds the socket's lock, so no daemon owns it
        server = await asyncio.start_unix_server(
            lambda r, w: self._serve(r, w, "unix"), path=str(path)
        )
        self.unix_bound = True
        os.chmod(path, 0o600)
        self.servers.append(server)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     listener: str) -> None:
        cap = self.caps[listener]
        if not cap.admit():
            self.stats.rejected_connections += 1
            _refuse(writer, cap)
            return
        try:
            require_token = listener == "tcp" and not is_loopback(self.settings.tcp[0])
            connection = IngestConnection(self, reader, writer, listener, require_token)
            self.connections.add(connection)
            self.stats.connections_total += 1
            await connection.run()
        finally:
            cap.release()

    def forget(self, connection: IngestConnection) -> None:
        """A connection closed: it is no longer one of ours."""
        self.connections.discard(connection)

    def stop_reading(self) -> None:
        """First step of a graceful stop: accept nothing, read nothing more."""
        self.stopping = True
        for server in self.servers:
            server.close()
        for connection in list(self.connections):
            connection.stop_reading()

    def close(self) -> None:
        """Last step: everything received is committed and acked; say goodbye and close."""
        for connection in list(self.connections):
            connection.shutting_down()
            connection.close()

    def health(self) -> dict:
        return {
            "connections": len(self.connections),
            "connections_total": self.stats.connections_total,
            "rejected_connections": self.stats.rejected_connections,
            "refused_at_limit": sum(cap.refused for cap in self.caps.values()),
            "max_connections": self.settings.max_connections,
            "events_received": self.stats.events_received,
        }



def _refuse(writer: asyncio.StreamWriter, cap: ConnectionCap) -> None:
    """At the cap: one retryable error frame, then close, before reading anything."""
    try:
        writer.write(wire.encode_frame(wire.Error(
            code=wire.OVERLOADED, fatal=True, retryable=True,
            message=f"the daemon holds its maximum of {cap.limit} connections on this "
                    "listener; retry later",
            retry_after_ms=OVERLOADED_RETRY_AFTER_MS)))
        writer.close()
    except (ConnectionError, RuntimeError):
        pass
