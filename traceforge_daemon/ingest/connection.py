"""One client connection: the handshake, then frames until it closes or misbehaves.

A connection must open with the preface and a hello within ``hello_timeout``; then it
sends batches, which go to the writer queue, and gets an ack for each once it is
committed. Anything it should not send (bad preface, HTTP, oversized or undecodable
frames, wrong field types, unknown message types, silence) gets one error frame, after
the acks of the batches it sent before it, then the connection is closed; the daemon
logs one line and carries on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
from typing import Optional, Protocol

import msgspec

from traceforge_protocol import wire
from traceforge_protocol.version import __version__

from ..settings import Settings, tokens_match
from ..storage.guard import Problem
from ..storage.store import Store
from ..storage.writer import WriteBatch
from .stats import IngestStats

logger = logging.getLogger("traceforge.daemon")


class ProtocolViolation(Exception):
    def __init__(
        self, code: str, message: str, versions: Optional[list] = None, seq: Optional[int] = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.versions = versions
        self.seq = seq


def _decode(body: bytes) -> msgspec.Struct:
    try:
        return wire.decode_client_frame(body)
    except wire.Refused as refused:
        raise ProtocolViolation(refused.code, refused.message, seq=refused.seq) from None


def _describe_bad_preface(preface: bytes) -> str:
    if preface[:4] in (b"GET ", b"POST", b"PUT ", b"HEAD", b"PRI ", b"DELE", b"OPTI"):
        return (
            "this is the TraceForge ingest socket, not HTTP; the HTTP API is on the "
            "daemon's --http address"
        )
    return f"expected the preface {wire.PREFACE!r}, got {preface!r}"


class IngestHost(Protocol):
    """What a connection needs of the server that accepted it (``server.IngestServer``)."""

    settings: Settings
    store: Store
    stats: IngestStats
    stopping: bool

    def forget(self, connection: "IngestConnection") -> None:
        """The connection has closed."""


class IngestConnection:
    """One client connection: handshake, then frames until it closes or misbehaves."""

    def __init__(
        self,
        server: IngestHost,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        listener: str,
        require_token: bool,
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.listener = listener
        self.require_token = require_token
        self.pid = 0
        self.host = ""
        self.peer = self._describe_peer()
        self.acked = 0
        self.received_seq = 0
        self.closed = False
        self._all_acked: Optional[asyncio.Event] = None
        self.refused = False
        self.unacked_bytes = 0
        """Bytes of this connection's frames submitted and not yet committed or failed."""
        self._room = asyncio.Event()
        self._room.set()
        self._frame_bytes = 0
        self._greeted = False
        self._said_bye = False

    def _describe_peer(self) -> str:
        peer = self.writer.get_extra_info("peername")
        if self.listener == "unix":
            return "unix socket"
        return f"{peer[0]}:{peer[1]}" if peer else self.listener

    async def run(self) -> None:
        settings = self.server.settings
        try:
            self._check_peer_credentials()
            try:
                hello = await asyncio.wait_for(self._handshake(), settings.hello_timeout)
            except asyncio.TimeoutError:
                raise ProtocolViolation(
                    wire.HELLO_TIMEOUT,
                    f"no preface and hello within {settings.hello_timeout:g} s",
                ) from None
            self.pid, self.host = hello.pid, hello.host
            self.server.store.connection_opened(self.pid, self.host)
            self._greeted = True
            while True:
                await self._wait_for_room()
                message = await self._read_message(settings.idle_timeout)
                if isinstance(message, wire.Batch):
                    self._accept_batch(message, hello.session)
                elif isinstance(message, wire.Bye):
                    self._said_bye = True
                    await self._drain_acks(settings.hello_timeout)
                    return
                else:
                    raise ProtocolViolation(
                        wire.HELLO_REQUIRED, "a second hello on one connection"
                    )
        except ProtocolViolation as violation:
            self.refused = True
            self.server.stats.rejected_connections += 1
            logger.warning(
                "closed connection from %s%s: %s: %s",
                self.peer,
                f" (pid {self.pid})" if self.pid else "",
                violation.code,
                violation.message,
            )
            if not await self._acks_before_error():
                return
            self._send(
                wire.Error(
                    code=violation.code,
                    message=violation.message,
                    fatal=True,
                    seq=violation.seq,
                    versions=violation.versions,
                )
            )
        except (asyncio.IncompleteReadError, ConnectionError):
            if self.server.stopping:
                return  # the server closes us after the final commit's acks are out
        finally:
            if self._greeted:
                self.server.store.connection_closed(self.pid, self.host, self._said_bye)
            if not self.server.stopping:
                self.close()

    async def _handshake(self) -> wire.Hello:
        preface = await self.reader.readexactly(4)
        if preface != wire.PREFACE:
            raise ProtocolViolation(wire.BAD_PREFACE, _describe_bad_preface(preface))
        hello = await self._read_message(None)
        if not isinstance(hello, wire.Hello):
            raise ProtocolViolation(
                wire.HELLO_REQUIRED, f"the first frame must be a hello, got {_kind(hello)}"
            )
        version = self._negotiate(hello)
        self._send(
            wire.HelloOk(
                version=version,
                server_version=__version__,
                max_frame_bytes=self.server.settings.max_frame_bytes,
            )
        )
        return hello

    def _check_peer_credentials(self) -> None:
        """On Linux, accept only our own user (or root) on the Unix socket."""
        if self.listener != "unix" or not hasattr(socket, "SO_PEERCRED"):
            return
        sock = self.writer.get_extra_info("socket")
        if sock is None:
            return
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, uid, _ = struct.unpack("3i", creds)
        if uid not in (os.getuid(), 0):
            raise ProtocolViolation(
                wire.AUTH_FAILED, f"uid {uid} (pid {pid}) may not write to this daemon"
            )

    def _negotiate(self, hello: wire.Hello) -> int:
        if hello.proto != "traceforge":
            raise ProtocolViolation(
                wire.UNSUPPORTED_VERSION,
                f"unknown protocol {hello.proto!r}; expected 'traceforge'",
                versions=list(wire.SUPPORTED_VERSIONS),
            )
        common = set(hello.versions) & set(wire.SUPPORTED_VERSIONS)
        if not common:
            raise ProtocolViolation(
                wire.UNSUPPORTED_VERSION,
                f"client speaks versions {hello.versions}, daemon speaks "
                f"{list(wire.SUPPORTED_VERSIONS)}",
                versions=list(wire.SUPPORTED_VERSIONS),
            )
        if self.require_token:
            if not tokens_match(hello.token, self.server.settings.token):
                raise ProtocolViolation(
                    wire.AUTH_FAILED,
                    "this listener needs a token: set TRACEFORGE_TOKEN to the daemon's token",
                )
        return max(common)

    async def _read_message(self, idle_timeout: Optional[float]) -> msgspec.Struct:
        """One frame: wait up to ``idle_timeout`` for its length (None: the caller's
        deadline applies), check it, then give the body ``body_timeout`` to arrive."""
        settings = self.server.settings
        try:
            header = await asyncio.wait_for(self.reader.readexactly(4), idle_timeout)
        except asyncio.TimeoutError:
            raise ProtocolViolation(
                wire.IDLE_TIMEOUT, f"no frame for {idle_timeout:g} s; reconnect when needed"
            ) from None
        (length,) = wire.FRAME_HEADER.unpack(header)
        if length == 0 or length > settings.max_frame_bytes:
            raise ProtocolViolation(
                wire.FRAME_TOO_LARGE if length else wire.MALFORMED,
                f"frame length {length} is outside 1..{settings.max_frame_bytes} bytes",
            )
        try:
            body = await asyncio.wait_for(self.reader.readexactly(length), settings.body_timeout)
        except asyncio.TimeoutError:
            raise ProtocolViolation(
                wire.FRAME_TIMEOUT,
                f"a {length}-byte frame body did not arrive within {settings.body_timeout:g} s",
            ) from None
        self._frame_bytes = length
        return _decode(body)

    async def _wait_for_room(self) -> None:
        """Read no further while this connection, or the writer queue, holds too much: the
        client's writes back up in its socket. The idle timeout does not run meanwhile."""
        limit = self.server.settings.max_unacked_bytes
        while self.unacked_bytes >= limit:
            self._room.clear()
            await self._room.wait()
        await self.server.store.wait_for_room()

    def _accept_batch(self, batch: wire.Batch, session: str) -> None:
        if batch.seq <= self.received_seq:
            raise ProtocolViolation(
                wire.INVALID_EVENT,
                f"batch seq {batch.seq} is not above the previous {self.received_seq}",
            )  # no seq: that number belongs to an earlier batch, which must not be dropped
        bad_id = wire.invalid_id(batch.events)
        if bad_id:
            raise ProtocolViolation(wire.INVALID_EVENT, f"invalid message: {bad_id}", seq=batch.seq)
        self.received_seq = batch.seq
        self.server.stats.events_received += len(batch.events)
        self.unacked_bytes += self._frame_bytes
        self.server.store.submit(WriteBatch(
            self, batch.seq, batch.events, self.pid, self.host, session, batch.dropped,
            self._frame_bytes))

    def settled(self, size: int) -> None:
        """The Store is done with one of this connection's batches (committed or failed)."""
        self.unacked_bytes -= size
        if self.unacked_bytes < self.server.settings.max_unacked_bytes:
            self._room.set()

    async def _drain_acks(self, timeout: float) -> None:
        """After a bye, give the writer up to ``timeout`` to commit what this client sent."""
        if self.acked < self.received_seq:
            self._all_acked = asyncio.Event()
            try:
                await asyncio.wait_for(self._all_acked.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    async def _acks_before_error(self) -> bool:
        """Before an error frame, the acks of every batch accepted ahead of the refused
        frame, so the client knows the refused one is its oldest unacked batch. False if
        their commit did not end within ``hello_timeout`` (or failed, which sent its own
        error): the connection then closes with no error, as a broken one would, and the
        client resends."""
        if self.acked < self.received_seq:
            await self._drain_acks(self.server.settings.hello_timeout)
        return self.acked >= self.received_seq and not self.closed

    def ack(self, seq: int) -> None:
        if seq > self.acked:
            self.acked = seq
            self._send(wire.Ack(seq=seq))
            if self._all_acked is not None and seq >= self.received_seq:
                self._all_acked.set()

    def stop_reading(self) -> None:
        """Graceful stop: take no more frames, but keep the socket open for the acks."""
        transport = self.writer.transport
        if transport is not None and not transport.is_closing():
            transport.pause_reading()
        self.reader.feed_eof()

    def shutting_down(self) -> None:
        """The daemon is stopping: everything received is committed and acked."""
        if self.refused:
            return  # it already got its one error frame
        self._send(
            wire.Error(
                code=wire.SHUTTING_DOWN,
                message="the daemon is stopping; reconnect and send the rest later",
                fatal=True,
                retryable=True,
            )
        )

    def fail(self, seq: int, problem: Problem) -> None:
        """The writer did not commit batch ``seq``: tell the client why, whether to resend
        (and after how long), and close."""
        if problem.retryable:
            message = f"storage error, reconnect and resend: {problem.message}"
        else:
            message = f"batch refused, do not resend it: {problem.message}"
        self._send(wire.Error(
            code=problem.code, message=message, fatal=True, retryable=problem.retryable,
            seq=seq, retry_after_ms=problem.retry_after_ms))
        self.close()

    def _send(self, message: msgspec.Struct) -> None:
        if self.closed or self.writer.is_closing():
            return
        try:
            self.writer.write(wire.encode_frame(message))
        except (ConnectionError, RuntimeError):
            self.closed = True

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self.writer.close()
            except RuntimeError:
                pass
        self.server.forget(self)


def _kind(message: object) -> str:
    tag = getattr(type(message), "__struct_config__", None)
    return repr(tag.tag) if tag is not None else type(message).__name__
