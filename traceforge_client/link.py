"""The socket link to the daemon: connect, preface and hello, batch frames out, acks in.

A ``SocketLink`` is the ``Link`` (batching.py) that real processes send through. It numbers
the batches it sends (one counter for the process, across reconnects, as protocol.md
section 8 allows), remembers which batch each number stands for on the open connection,
and turns the daemon's acks and errors back into batches: ``Acked`` for every batch an
ack covers, ``Refused`` for one the daemon will never take. Blocking I/O with timeouts;
only the processor's thread uses it.
"""

from __future__ import annotations

import os
import select
import socket
import time
import uuid
from collections import deque
from typing import Optional

import msgspec

from traceforge_protocol import wire
from traceforge_protocol.version import __version__

from .batching import Acked, Batch, Link, LinkError, Refused
from .config import Address

CONNECT_TIMEOUT = 1.0
IO_TIMEOUT = 5.0
REFUSED_FRAME_CODES = (wire.INVALID_EVENT, wire.MALFORMED, wire.FRAME_TOO_LARGE)
"""Errors that refuse one frame for what it holds; without a seq, the oldest unacked."""


class SocketLink(Link):
    """Batches to the daemon at ``address``, over a Unix or TCP socket."""

    def __init__(self, address: Address, token: Optional[str] = None) -> None:
        self.address = address
        self.token = token
        self.session = uuid.uuid4().hex
        """Names this process to the daemon across its reconnects; a forked child makes
        its own link, so it gets its own session."""
        self.description = f"the daemon at {address}"
        self.advice = ("Start the daemon with `traceforge-daemon start`." if address.kind == "unix"
                       else f"Is a daemon listening on {address}?")
        self.seq = 0
        self.sock: Optional[socket.socket] = None
        self.buffer = bytearray()
        self.sent: deque[tuple[int, Batch]] = deque()  # on this connection, not yet acked
        self.replies: list = []  # read before the connection broke, not yet handed over
        self.broken: Optional[BaseException] = None

    def open(self) -> int:
        self.close()
        address = self.address
        if address.kind == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target: object = address.path
        else:
            sock = socket.socket(socket.AF_INET6 if ":" in address.host else socket.AF_INET)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            target = (address.host, address.port)
        hello = wire.Hello(
            versions=list(wire.SUPPORTED_VERSIONS), token=self.token, client="traceforge-python",
            client_version=__version__, lang="python", pid=os.getpid(),
            host=socket.gethostname(), session=self.session,
        )
        self.sock, self.buffer, self.sent, self.replies, self.broken = (
            sock, bytearray(), deque(), [], None)
        try:
            sock.settimeout(CONNECT_TIMEOUT)
            sock.connect(target)
            sock.settimeout(IO_TIMEOUT)
            sock.sendall(wire.PREFACE + wire.encode_frame(hello))
            reply = self._read_message(IO_TIMEOUT)
            if reply is None:
                raise LinkError("no hello_ok in time")
            if isinstance(reply, wire.Error):
                self._note_retry_after(reply)
                raise LinkError(f"daemon refused the connection: {reply.code}: {reply.message}")
            if not isinstance(reply, wire.HelloOk):
                raise LinkError(f"expected hello_ok, got {type(reply).__name__}")
        except BaseException:
            self.close()
            raise
        return reply.max_frame_bytes

    def send(self, batch: Batch) -> None:
        if self.broken is not None or self.sock is None:
            raise LinkError(f"the connection is gone ({self.broken})")
        self.seq += 1
        self.sent.append((self.seq, batch))
        frame = wire.encode_frame(wire.EncodedBatch(self.seq, batch.events, batch.dropped))
        try:
            self.sock.sendall(frame)
        except OSError as exc:
            # The daemon may have said why before it closed (protocol.md section 10): an
            # error naming a batch it refused must be read, or that batch is sent again.
            self._read_available()
            self.broken = exc
            raise

    def receive(self, timeout: float) -> list:
        replies, self.replies = self.replies, []
        if self.broken is None and self.sock is not None:
            try:
                message = self._read_message(0 if replies else timeout)
                while message is not None:
                    replies.extend(self._replies_to(message))
                    if self.broken is not None:
                        break
                    message = self._read_message(0)
            except (OSError, LinkError) as exc:
                self.broken = exc
        if replies:
            return replies
        if self.broken is not None or self.sock is None:
            raise self.broken if self.broken is not None else LinkError("not open")
        return replies

    def close(self, goodbye: bool = False) -> None:
        sock, self.sock = self.sock, None
        if sock is None:
            return
        if goodbye and self.broken is None:
            try:
                sock.sendall(wire.encode_frame(wire.Bye()))
            except OSError:
                pass
        try:
            sock.close()
        except OSError:
            pass

    # ---- reading ----

    def _replies_to(self, message: msgspec.Struct) -> list:
        if isinstance(message, wire.Ack):
            acked = []
            while self.sent and self.sent[0][0] <= message.seq:
                acked.append(self.sent.popleft()[1])
            return [Acked(tuple(acked))] if acked else []
        if isinstance(message, wire.Error):
            self._note_retry_after(message)
            replies = []
            reason = f"{message.code}: {message.message}"
            if message.seq is not None and not message.retryable:
                for index, (seq, batch) in enumerate(self.sent):
                    if seq == message.seq:
                        del self.sent[index]
                        replies.append(Refused(batch, reason))
                        break
            elif message.code in REFUSED_FRAME_CODES and not message.retryable and self.sent:
                # No seq: the daemon acked every batch before the frame it refused, so that
                # frame is the oldest one unacked (protocol.md section 8). Sent again, it
                # would be refused again, forever.
                replies.append(Refused(self.sent.popleft()[1], reason))
            if message.fatal:
                self.broken = LinkError(f"{message.code}: {message.message}")
            return replies
        return []

    def _note_retry_after(self, error: wire.Error) -> None:
        if error.retryable and error.retry_after_ms:
            self.retry_after = max(self.retry_after, error.retry_after_ms / 1000)

    def _read_available(self) -> None:
        """Keep the replies already waiting on a connection that broke while sending."""
        try:
            while (message := self._read_message(0)) is not None:
                self.replies.extend(self._replies_to(message))
                if self.broken is not None:
                    return
        except (OSError, LinkError):
            pass

    def _read_message(self, timeout: float) -> Optional[msgspec.Struct]:
        """The next message from the daemon, or None if none arrives within ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            message = self._parse_one()
            if message is not None:
                return message
            remaining = max(deadline - time.monotonic(), 0.0)  # 0: look, do not wait
            if not select.select([self.sock], [], [], remaining)[0]:
                return None
            chunk = self.sock.recv(65536)  # type: ignore[union-attr]
            if not chunk:
                raise ConnectionError("daemon closed the connection")
            self.buffer += chunk

    def _parse_one(self) -> Optional[msgspec.Struct]:
        if len(self.buffer) < 4:
            return None
        (length,) = wire.FRAME_HEADER.unpack_from(self.buffer)
        if length > wire.MAX_FRAME_BYTES:
            raise LinkError(f"daemon sent an oversized frame ({length} bytes)")
        if len(self.buffer) < 4 + length:
            return None
        body = bytes(self.buffer[4 : 4 + length])
        del self.buffer[: 4 + length]
        try:
            return wire.server_message_decoder.decode(body)
        except msgspec.DecodeError as exc:
            raise LinkError(f"unreadable message from daemon: {exc}") from exc
