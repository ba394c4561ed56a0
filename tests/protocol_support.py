"""Shared by the protocol tests: messages as plain dicts, and a raw socket peer that speaks
the protocol from protocol.md by hand, with no TraceForge code on the client side."""

from __future__ import annotations

import socket
import struct
from typing import Optional

import msgspec

from traceforge_protocol import wire as protocol

RUN_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
STEP_ID = "00f067aa0ba902b7"
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z in nanoseconds

HELLO = {"type": "hello", "versions": [1]}
RUN_START = {"type": "run_start", "run_id": RUN_ID, "name": "summarize", "start_ns": T0}
STEP_START = {
    "type": "step_start", "run_id": RUN_ID, "step_id": STEP_ID, "name": "call_llm",
    "start_ns": T0 + 1_000_000,
}
STEP_END = {**STEP_START, "type": "step_end", "end_ns": T0 + 251_000_000}


def packed(message: object) -> bytes:
    return msgspec.msgpack.encode(message)


def client_decode(message: object) -> msgspec.Struct:
    return protocol.client_message_decoder.decode(packed(message))


def without(message: dict, key: str) -> dict:
    return {k: v for k, v in message.items() if k != key}


def batch(*events: dict, seq: int = 1) -> dict:
    return {"type": "batch", "seq": seq, "events": list(events)}



BAD_STEP = {**STEP_START, "step_id": "x"}

# ---- a real daemon, spoken to by hand ----

PREFACE = bytes.fromhex("54 46 52 01")


def frame(message: object) -> bytes:
    body = packed(message)
    return struct.pack(">I", len(body)) + body


class Peer:
    """A raw socket to the daemon. Every read waits at most ``timeout`` seconds."""

    def __init__(self, address, timeout: float = 10.0) -> None:
        family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(address)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def handshake(self, **hello) -> dict:
        self.send(PREFACE + frame({**HELLO, **hello}))
        reply = self.read()
        assert reply is not None and reply["type"] == "hello_ok", reply
        return reply

    def _fill(self) -> bool:
        """Read more bytes; False once the daemon has closed (EOF or reset)."""
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            return False
        self.buffer += chunk
        return bool(chunk)

    def read(self) -> Optional[dict]:
        """The next frame as a plain dict, or None if the connection closed first."""
        while len(self.buffer) < 4:
            if not self._fill():
                assert self.buffer == b"", f"connection closed inside a frame: {self.buffer!r}"
                return None
        (length,) = struct.unpack(">I", self.buffer[:4])
        while len(self.buffer) < 4 + length:
            assert self._fill(), "connection closed inside a frame"
        body, self.buffer = self.buffer[4 : 4 + length], self.buffer[4 + length :]
        return msgspec.msgpack.decode(body)

    def read_until_closed(self) -> list[dict]:
        frames = []
        while (message := self.read()) is not None:
            frames.append(message)
        return frames

    def close(self) -> None:
        self.sock.close()


def ack_covering(peer: Peer, seq: int) -> int:
    """Read acks until one covers ``seq``. Acks are cumulative, so the daemon may skip some."""
    last = 0
    while last < seq:
        message = peer.read()
        assert message is not None and message["type"] == "ack", message
        assert message["seq"] > last, f"ack went from {last} to {message['seq']}"
        last = message["seq"]
    return last


def one_row(daemon, sql: str, params: tuple = ()) -> tuple:
    rows = daemon.query(sql, params)
    assert len(rows) == 1, rows
    return rows[0]


