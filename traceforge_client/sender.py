"""The Sender: the background thread that drains this process's EventQueue.

A traced call only puts an event on the bounded queue (``EventQueue.put``). The thread takes
events off in batches, sends them as frames, and keeps every batch until the daemon
acks it, which it does only after the SQLite commit. If the connection breaks,
unacked batches are resent after reconnecting (the daemon ignores duplicates). When
the deque is full new events are dropped and counted by reason; the counts ride on
the next batch and count as reported once that batch is acked.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Callable, Optional

import msgspec

from traceforge_protocol import wire

from . import hot_path
from .config import Address, ClientConfig
from .connection import Connection, DaemonError
from .event_queue import EventQueue
from traceforge_protocol.version import __version__

logger = logging.getLogger("traceforge")

BATCH_EVENTS = 1000
MAX_INFLIGHT_BATCHES = 16
IDLE_WAIT = 0.05
"""How long the sender sleeps when there is nothing to send; bounds live-view latency."""
BACKOFF_MIN, BACKOFF_MAX = 0.05, 2.0


@dataclass
class InflightBatch:
    """A batch sent and not yet acked; resent (renumbered) after a reconnect. Kept as
    encoded bytes, so the event objects are freed as soon as they are sent."""

    seq: int
    events: msgspec.Raw  # the msgpack array of events
    count: int
    step_ends: int
    dropped: dict  # drop counts this batch reports; confirmed by its ack


class Sender:
    """The thread that drains the bounded queue. One per process."""

    def __init__(self, config: ClientConfig, on_start: Callable[[], None] = lambda: None) -> None:
        self.config = config
        self.on_start = on_start  # e.g. register exit hooks, once the thread exists
        self._init_state()

    def _init_state(self) -> None:
        self.session = uuid.uuid4().hex
        self.events = EventQueue(self.config.max_queue_events, BATCH_EVENTS, self._start)
        self.inflight: deque[InflightBatch] = deque()
        self.seq = 0
        self.acked_events = 0
        self.acked_step_ends = 0
        self.sent_batches = 0
        self.reconnects = 0
        self.connection: Optional[Connection] = None
        self.max_frame_bytes = wire.MAX_FRAME_BYTES
        self.last_error: Optional[str] = None
        self._warned = False
        self._backoff = BACKOFF_MIN
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self._wake = self.events.wake
        self._idle = threading.Condition(self._lock)
        self._closing = False
        self._give_up_at = 0.0

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            thread = threading.Thread(target=self._run, name="traceforge-sender", daemon=True)
            try:
                thread.start()
            except RuntimeError:  # e.g. interpreter shutdown: the events stay queued
                logger.debug("traceforge: cannot start the sender thread", exc_info=True)
                self.events.on_first_event = self._start  # try again with the next event
                return
            self._thread = thread
        self.on_start()

    def pending(self) -> int:
        """Events queued or sent but not yet acked."""
        return len(self.events.items) + sum(batch.count for batch in list(self.inflight))

    def _settled(self) -> bool:
        return not self.events.items and not self.inflight and not self.events.dropped

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued event (and drop count) is acked. True if in time."""
        if self._thread is None:
            return not self.events.items
        deadline = time.monotonic() + timeout
        with self._idle:
            while not self._settled():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._wake.set()
                self._idle.wait(min(remaining, 0.05))
        return True

    def shutdown(self, timeout: Optional[float] = None) -> bool:
        """Flush within ``timeout`` seconds, then stop the thread. Never hangs."""
        if self.events.closed:
            return True
        timeout = self.config.shutdown_timeout if timeout is None else timeout
        thread = self._thread
        if thread is None:  # nothing was traced, or the thread could never start
            self.events.closed = True
            lost = len(self.events.items)
            if lost:
                self.events.count_drop("undelivered_at_exit", lost)
            return lost == 0
        self._give_up_at = time.monotonic() + timeout
        self._closing = True
        self._wake.set()
        thread.join(timeout + 0.2)
        self.events.closed = True
        lost = self.pending()
        if lost:
            self.events.count_drop("undelivered_at_exit", lost)
            logger.warning(
                "traceforge: %d events were not delivered before exit (%s). %s",
                lost,
                self.last_error or "timed out",
                _start_hint(self.config.address),
            )
        return lost == 0

    def stats(self) -> dict:
        dropped, dropped_total = self.events.drop_counts()
        return {
            "queued": len(self.events.items),
            "inflight_batches": len(self.inflight),
            "acked_events": self.acked_events,
            "acked_step_ends": self.acked_step_ends,
            "sent_batches": self.sent_batches,
            "reconnects": self.reconnects,
            "dropped": dropped,
            "dropped_total": dropped_total,
            "connected": self.connection is not None,
            "last_error": self.last_error,
            "hot_path": hot_path.form,
        }

    # ---- the sender thread ----

    def _run(self) -> None:
        while True:
            try:
                if self.connection is None and not self._connect():
                    if self._closing:
                        return
                    self._wake.wait(self._backoff * random.uniform(0.8, 1.2))
                    self._wake.clear()
                    self._backoff = min(self._backoff * 2, BACKOFF_MAX)
                    continue
                if not self._pump():
                    return
            except (OSError, ConnectionError, DaemonError) as exc:
                self._disconnect(exc)
            except Exception as exc:  # a bug in TraceForge: never take the app down
                logger.debug("traceforge sender error", exc_info=True)
                self._disconnect(exc)

    def _connect(self) -> bool:
        hello = wire.Hello(
            versions=list(wire.SUPPORTED_VERSIONS),
            token=self.config.token,
            client="traceforge-python",
            client_version=__version__,
            lang="python",
            pid=os.getpid(),
            host=socket.gethostname(),
            session=self.session,
        )
        try:
            self.connection = Connection(self.config.address, hello)
        except (OSError, ConnectionError, DaemonError) as exc:
            self.last_error = f"cannot reach the daemon at {self.config.address}: {exc}"
            if not self._warned:
                self._warned = True
                logger.warning(
                    "traceforge: %s; buffering up to %d events until it is up. %s",
                    self.last_error,
                    self.events.limit,
                    _start_hint(self.config.address),
                )
            return False
        self.max_frame_bytes = self.connection.hello_ok.max_frame_bytes
        self.last_error = None
        self._warned = False
        # Resend what the previous connection did not get acked, renumbered.
        pending = list(self.inflight)
        self.inflight.clear()
        if pending:
            self.reconnects += 1
        for batch in pending:
            self._send_encoded(batch.events, batch.count, batch.step_ends, batch.dropped)
        return True

    def _disconnect(self, exc: BaseException) -> None:
        self.last_error = f"lost the daemon at {self.config.address}: {exc}"
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def _send_events(self, events: list, dropped: dict) -> None:
        """Send ``events`` as one batch, or several if one frame would be too large."""
        try:
            encoded = _event_encoder.encode(events)
        except Exception:  # e.g. a lone surrogate in a string: drop only the bad events
            events = self._encodable(events)
            encoded = _event_encoder.encode(events)
        if len(encoded) + FRAME_OVERHEAD > self.max_frame_bytes:
            if len(events) > 1:
                half = len(events) // 2
                self._send_events(events[:half], dropped)
                self._send_events(events[half:], {})
                return
            self.events.count_drop("too_large", 1)
            events = []
            encoded = _event_encoder.encode(events)
        step_ends = sum(1 for e in events if type(e) is wire.StepEnd)
        self._send_encoded(msgspec.Raw(encoded), len(events), step_ends, dropped)

    def _send_encoded(self, events: msgspec.Raw, count: int, step_ends: int, dropped: dict) -> None:
        self.seq += 1
        frame = wire.encode_frame(wire.EncodedBatch(self.seq, events, dropped))
        self.inflight.append(InflightBatch(self.seq, events, count, step_ends, dropped))
        self.connection.send(frame)  # type: ignore[union-attr]
        self.sent_batches += 1

    def _encodable(self, events: list) -> list:
        good = []
        for event in events:
            try:
                _event_encoder.encode(event)
            except Exception:
                self.events.count_drop("encode_error", 1)
            else:
                good.append(event)
        return good

    def _pump(self) -> bool:
        """Send what is queued and read acks. False once shutdown is complete."""
        queue = self.events.items
        connection = self.connection
        while (queue or self.events.dropped) and len(self.inflight) < MAX_INFLIGHT_BATCHES:
            events = []
            popleft = queue.popleft
            try:
                for _ in range(BATCH_EVENTS):
                    events.append(popleft())
            except IndexError:
                pass
            self._send_events(events, self.events.take_drops())
        closing = self._closing
        if closing and time.monotonic() > self._give_up_at:
            return False
        if self.inflight:
            room = queue and len(self.inflight) < MAX_INFLIGHT_BATCHES
            message = connection.read_message(timeout=0 if room else IDLE_WAIT)
            while message is not None:
                self._handle(message)
                message = connection.read_message(timeout=0)
        elif closing and not queue:
            try:
                connection.send(wire.encode_frame(wire.Bye()))
            except OSError:
                pass
            connection.close()
            self.connection = None
            return False
        else:
            self._wake.wait(IDLE_WAIT)
            self._wake.clear()
        return True

    def _handle(self, message: msgspec.Struct) -> None:
        if isinstance(message, wire.Ack):
            self._backoff = BACKOFF_MIN  # this connection works: reconnect fast next time
            inflight = self.inflight
            while inflight and inflight[0].seq <= message.seq:
                batch = inflight.popleft()
                self.acked_events += batch.count
                self.acked_step_ends += batch.step_ends
            if self._settled():
                with self._idle:
                    self._idle.notify_all()
        elif isinstance(message, wire.Error):
            if message.seq is not None and not message.retryable:
                # The daemon refused that batch for good: count it, never resend it.
                for batch in list(self.inflight):
                    if batch.seq == message.seq:
                        self.inflight.remove(batch)
                        self.events.count_drop("rejected", batch.count)
                        # Its drop report still has to reach the daemon.
                        self.events.return_drops(batch.dropped)
                        break
                logger.warning("traceforge: the daemon rejected events: %s", message.message)
            if message.fatal:
                raise DaemonError(f"{message.code}: {message.message}")


_event_encoder = msgspec.msgpack.Encoder()
FRAME_OVERHEAD = 128
"""Room in a frame for everything but the events: type, seq and the drop counts."""


def _start_hint(address: Address) -> str:
    if address.kind == "unix":
        return "Start the daemon with `traceforge-daemon start`."
    return f"Is a daemon listening on {address}?"
