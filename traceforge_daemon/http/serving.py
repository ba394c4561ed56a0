"""The HTTP listener: aiohttp's request handling behind a cap on connections.

aiohttp serves any number of connections and lets one that never finishes its request
headers hold its descriptor. Here:

- at most ``max_http_connections`` are open at once; one more gets a plain ``503`` with
  ``Retry-After`` and is closed, with a rate-limited line in the log;
- a connection that has not sent its first request's headers ``http_header_timeout``
  seconds after it opened is closed, however slowly it trickles bytes in
  (``HeaderDeadline``). aiohttp's own keep-alive timer covers the first request in some
  of its releases and not in others, so TraceForge does not rely on it for that;
- the runner is made with ``keepalive_timeout = http_header_timeout``: aiohttp closes a
  connection that has not sent its next request that long after its previous response;
- a request line or header over aiohttp's 8 KiB limits gets its 400 and one log line,
  not a traceback per request (``QuietBadRequests``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Optional

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from ..limits import ConnectionCap

logger = logging.getLogger("traceforge.daemon")

BUSY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Retry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
)
HEADERS_END = b"\r\n\r\n"  # the blank line after an HTTP request's headers
BUSY_BODY = b'{"ok": false, "error": "too many open connections; retry", "status": 503}'


class QuietBadRequests(logging.Filter):
    """aiohttp logs every malformed request (a URL over 8 KiB, say) with a traceback at
    ERROR; keep one line at INFO, without the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg = f"{record.getMessage()}: {type(exc).__name__}: {exc.message}"
            record.args, record.exc_info, record.exc_text = (), None, None
        return True


class _Busy(asyncio.Protocol):
    """Answers one connection over the cap with a 503 and closes it."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(BUSY_RESPONSE % (len(BUSY_BODY), BUSY_BODY))  # type: ignore
        transport.close()


class HeaderDeadline(asyncio.Protocol):
    """Stands in front of aiohttp's handler for one connection and passes everything on;
    if the end of the first request's headers (a blank line) has not arrived ``timeout``
    seconds after the connection opened, it aborts the connection, freeing its descriptor."""

    def __init__(self, handler: asyncio.Protocol, timeout: float) -> None:
        self.handler = handler
        self.timeout = timeout
        self._transport: Optional[asyncio.Transport] = None
        self._timer: Optional[asyncio.TimerHandle] = None
        self._tail = b""  # the last bytes seen, for a blank line split across two reads

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._timer = asyncio.get_running_loop().call_later(self.timeout, self._expire)
        self.handler.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._timer is not None:
            seen = self._tail + data
            if HEADERS_END in seen:
                self._stop_timer()
            else:
                self._tail = seen[-(len(HEADERS_END) - 1):]
        self.handler.data_received(data)

    def eof_received(self) -> Optional[bool]:
        return self.handler.eof_received()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self._stop_timer()
        self.handler.connection_lost(exc)

    def pause_writing(self) -> None:
        self.handler.pause_writing()

    def resume_writing(self) -> None:
        self.handler.resume_writing()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._tail = b""

    def _expire(self) -> None:
        self._timer = None
        if self._transport is not None and not self._transport.is_closing():
            self._transport.abort()


class HttpListener:
    """A TCP listener for ``runner`` (set up already) holding at most ``limit`` connections,
    each of which must send its first request's headers within ``header_timeout`` seconds."""

    def __init__(self, runner: web.AppRunner, limit: int, header_timeout: float) -> None:
        self.runner = runner
        self.cap = ConnectionCap("HTTP", limit, "--max-http-connections")
        self.header_timeout = header_timeout
        self.server: Optional[asyncio.AbstractServer] = None
        self.port = 0

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(self._protocol, host, port, reuse_address=True)
        self.port = self.server.sockets[0].getsockname()[1]

    def _protocol(self) -> asyncio.BaseProtocol:
        server = self.runner.server
        assert server is not None
        if len(server.connections) < self.cap.limit:  # aiohttp counts them as they close
            return HeaderDeadline(server(), self.header_timeout)
        self.cap.refuse()
        return _Busy()

    def close(self) -> None:
        """Stop accepting; the runner's cleanup ends the open connections."""
        if self.server is not None:
            self.server.close()


def quiet_bad_requests() -> None:
    """Install the filter once on aiohttp's server logger."""
    server_logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, QuietBadRequests) for f in server_logger.filters):
        server_logger.addFilter(QuietBadRequests())
