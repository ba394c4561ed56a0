"""A fake daemon for delivery tests: a real Unix socket that speaks the wire protocol
(traceforge_protocol.wire) and breaks each connection at the point its script says.

Connection k follows ``script[k]``; once the script is used up, every connection is served
well: each batch is acked as soon as it is read. The daemon records what it read and what
it acked, by event, so a test can compare the client's counters with what really happened.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Optional

import msgspec

from traceforge_protocol import wire


def event_key(event: msgspec.Struct) -> tuple:
    """What identifies one traced event: its type and its step (or run) id."""
    tag = type(event).__struct_config__.tag
    return (tag, getattr(event, "step_id", None) or event.run_id)


@dataclass
class Seen:
    """What one connection carried."""

    batches: list = field(default_factory=list)  # per batch read: (seq, [event keys])
    resent: int = 0  # batches read whose every event an earlier connection had read
    acked_seq: int = 0
    problems: list = field(default_factory=list)  # protocol rules the client broke
    opened_at: float = 0.0  # time.monotonic() when accepted
    closed_at: float = 0.0  # ... and when the daemon closed it


class Conversation:
    """One accepted connection, as a script step drives it."""

    def __init__(self, sock: socket.socket, daemon: "ScriptedDaemon") -> None:
        self.sock, self.daemon, self.buffer = sock, daemon, b""
        self.seen = Seen(opened_at=time.monotonic())
        daemon.connections.append(self.seen)

    def _read_exactly(self, n: int) -> Optional[bytes]:
        while len(self.buffer) < n:
            try:
                chunk = self.sock.recv(1 << 16)
            except OSError:
                return None
            if not chunk:
                return None
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def _read_message(self) -> Optional[msgspec.Struct]:
        header = self._read_exactly(4)
        if header is None:
            return None
        (length,) = wire.FRAME_HEADER.unpack(header)
        body = self._read_exactly(length)
        return None if body is None else wire.client_message_decoder.decode(body)

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError:
            pass

    def read_hello(self) -> bool:
        if self._read_exactly(len(wire.PREFACE)) != wire.PREFACE:
            return False
        return isinstance(self._read_message(), wire.Hello)

    def hello_ok(self) -> None:
        self.send(wire.encode_frame(wire.HelloOk(version=1)))

    def read_batch(self) -> Optional[wire.Batch]:
        """The next batch, or None once the client says bye or the connection ends."""
        message = self._read_message()
        if not isinstance(message, wire.Batch):
            return None
        keys = [event_key(event) for event in message.events]
        previous = self.seen.batches[-1][0] if self.seen.batches else 0
        if message.seq <= previous:
            self.seen.problems.append(f"seq {message.seq} after {previous}")
        if keys and all(key in self.daemon.read_keys for key in keys):
            self.seen.resent += 1
        self.daemon.read_keys.update(keys)
        self.seen.batches.append((message.seq, keys))
        return message

    def ack(self, seq: int) -> None:
        """Ack every batch up to ``seq``; recorded as acked once the frame is written."""
        self.send(wire.encode_frame(wire.Ack(seq)))
        for batch_seq, keys in self.seen.batches:
            if self.seen.acked_seq < batch_seq <= seq:
                self.daemon.acked.update(keys)
        self.seen.acked_seq = max(self.seen.acked_seq, seq)

    def refuse(self, batch: wire.Batch) -> None:
        """Refuse ``batch`` for good, as the daemon refuses an invalid one, and close."""
        self.daemon.refused.update(event_key(event) for event in batch.events)
        self.send(wire.encode_frame(wire.Error(
            wire.INVALID_EVENT, "refused by the script", fatal=True, retryable=False,
            seq=batch.seq)))

    def refuse_unnamed(self, batch: wire.Batch) -> None:
        """Refuse ``batch`` as the daemon refuses a frame whose seq it cannot read: every
        earlier batch is acked first, then an error with no seq, then close."""
        if batch.seq > 1:
            self.ack(batch.seq - 1)
        self.daemon.refused.update(event_key(event) for event in batch.events)
        self.send(wire.encode_frame(wire.Error(
            wire.MALFORMED, "refused by the script", fatal=True, retryable=False, seq=None)))

    def close(self) -> None:
        self.seen.closed_at = time.monotonic()
        try:
            self.sock.close()
        except OSError:
            pass


Step = Callable[[Conversation], None]


def serve_well(conversation: Conversation) -> None:
    if not conversation.read_hello():
        return
    conversation.hello_ok()
    while (batch := conversation.read_batch()) is not None:
        conversation.ack(batch.seq)


def step(hello_ok: bool = True, batches: int = 0, ack: bool = False,
         then: Optional[Callable[[Conversation, Optional[wire.Batch]], None]] = None) -> Step:
    """A connection that answers the hello (or not), reads ``batches`` batches (acking each
    if ``ack``), does ``then`` with the last batch read, and closes."""

    def run(conversation: Conversation) -> None:
        if not conversation.read_hello() or not hello_ok:
            return
        conversation.hello_ok()
        last = None
        for _ in range(batches):
            batch = conversation.read_batch()
            if batch is None:
                return
            if ack:
                conversation.ack(batch.seq)
            last = batch
        if then is not None:
            then(conversation, last)

    return run


def half_an_ack(conversation: Conversation, last: Optional[wire.Batch]) -> None:
    conversation.send(wire.encode_frame(wire.Ack(last.seq))[:3])


def stale_acks(conversation: Conversation, last: Optional[wire.Batch]) -> None:
    """The same ack again, then one going backwards: both must change nothing."""
    conversation.send(wire.encode_frame(wire.Ack(last.seq)) + wire.encode_frame(wire.Ack(1)))
    serve_well_after_hello(conversation)


def serve_well_after_hello(conversation: Conversation) -> None:
    for _ in range(2):  # two more batches, acked, then the connection breaks
        batch = conversation.read_batch()
        if batch is None:
            return
        conversation.ack(batch.seq)


def storage_error(conversation: Conversation, last: Optional[wire.Batch]) -> None:
    conversation.send(wire.encode_frame(wire.Error(
        wire.STORAGE_ERROR, "disk full", fatal=True, retryable=True, seq=last.seq)))


def storage_error_wait(milliseconds: int):
    """A storage error that asks the client to wait ``milliseconds`` before reconnecting."""

    def then(conversation: Conversation, last: Optional[wire.Batch]) -> None:
        conversation.send(wire.encode_frame(wire.Error(
            wire.STORAGE_ERROR, "disk full", fatal=True, retryable=True, seq=last.seq,
            retry_after_ms=milliseconds)))

    return then


def overloaded(milliseconds: int) -> "Step":
    """A connection refused at once, as at the daemon's connection limit."""

    def run(conversation: Conversation) -> None:
        conversation.send(wire.encode_frame(wire.Error(
            wire.OVERLOADED, "too many connections", fatal=True, retryable=True,
            retry_after_ms=milliseconds)))

    return run


def shutting_down(conversation: Conversation, last: Optional[wire.Batch]) -> None:
    conversation.send(wire.encode_frame(wire.Error(
        wire.SHUTTING_DOWN, "daemon stopping", fatal=True, retryable=True)))


def refuse_last(conversation: Conversation, last: Optional[wire.Batch]) -> None:
    conversation.refuse(last)


def refuse_last_unnamed(conversation: Conversation, last: Optional[wire.Batch]) -> None:
    conversation.refuse_unnamed(last)


class ScriptedDaemon:
    """Listens on ``path`` and runs one script step per connection, on its own thread."""

    def __init__(self, path: str, script: list[Step]) -> None:
        self.path, self.script = path, list(script)
        self.connections: list[Seen] = []
        self.read_keys: set = set()
        self.acked: Counter = Counter()  # event key -> how many acks covered it
        self.refused: set = set()
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(path)
        self._listener.listen(8)
        self._listener.settimeout(0.1)  # lets the thread see stop() promptly
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="scripted-daemon", daemon=True)

    def __enter__(self) -> "ScriptedDaemon":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            sock.settimeout(30)
            conversation = Conversation(sock, self)
            run = self.script.pop(0) if self.script else serve_well
            try:
                run(conversation)
            finally:
                conversation.close()

    @property
    def script_done(self) -> bool:
        return not self.script
