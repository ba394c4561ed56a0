"""One socket to the daemon: connect, preface and hello, then frames both ways.

Blocking I/O with timeouts; only the sender thread uses it.
"""

from __future__ import annotations

import select
import socket
import time
from typing import Optional

import msgspec

from traceforge_protocol import wire
from .config import Address

CONNECT_TIMEOUT = 1.0
IO_TIMEOUT = 5.0


class DaemonError(Exception):
    """The daemon answered with an error or something this client cannot read."""


class Connection:
    """One socket to the daemon, after the preface and hello exchange."""

    def __init__(self, address: Address, hello: wire.Hello) -> None:
        if address.kind == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target: object = address.path
        else:
            sock = socket.socket(socket.AF_INET6 if ":" in address.host else socket.AF_INET)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            target = (address.host, address.port)
        self.sock = sock
        self.buffer = bytearray()
        try:
            sock.settimeout(CONNECT_TIMEOUT)
            sock.connect(target)
            sock.settimeout(IO_TIMEOUT)
            sock.sendall(wire.PREFACE + wire.encode_frame(hello))
            reply = self.read_message(timeout=IO_TIMEOUT)
        except BaseException:
            sock.close()
            raise
        if isinstance(reply, wire.Error):
            sock.close()
            raise DaemonError(f"daemon refused the connection: {reply.code}: {reply.message}")
        if not isinstance(reply, wire.HelloOk):
            sock.close()
            raise DaemonError(f"expected hello_ok, got {type(reply).__name__}")
        self.hello_ok = reply

    def send(self, frame: bytes) -> None:
        self.sock.sendall(frame)

    def read_message(self, timeout: float) -> Optional[msgspec.Struct]:
        """The next server message, or None if none arrives within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            message = self._parse_one()
            if message is not None:
                return message
            remaining = deadline - time.monotonic()
            if remaining < 0 or not select.select([self.sock], [], [], max(remaining, 0))[0]:
                return None
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("daemon closed the connection")
            self.buffer += chunk

    def _parse_one(self) -> Optional[msgspec.Struct]:
        if len(self.buffer) < 4:
            return None
        (length,) = wire.FRAME_HEADER.unpack_from(self.buffer)
        if length > wire.MAX_FRAME_BYTES:
            raise DaemonError(f"daemon sent an oversized frame ({length} bytes)")
        if len(self.buffer) < 4 + length:
            return None
        body = bytes(self.buffer[4 : 4 + length])
        del self.buffer[: 4 + length]
        try:
            return wire.server_message_decoder.decode(body)
        except msgspec.DecodeError as exc:
            raise DaemonError(f"unreadable message from daemon: {exc}") from exc

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
