"""Batching: the background thread between this process's EventQueue and a Link.

Traced code only puts events on the bounded queue (``event_queue.py``). One thread takes
them off in batches, encodes each batch once, hands it to a ``Link`` and keeps it until the
link reports it acked; a link is where batches go (``link.py`` sends them to the daemon
over a socket, ``testing.py`` keeps them in memory). Nothing here knows about sockets.

Every event traced ends in exactly one of two ways: acked, or counted as dropped, by reason
(``queue_full``, ``rejected``, ``undelivered_at_exit``, ...). A batch leaves the list of
unacked batches only when the link reports it acked or refused, never because a link broke:
after a break, the next link gets every unacked batch again, oldest first, before anything
new. So however often a link breaks, and wherever, nothing is forgotten uncounted, and
``flush()`` is True only once everything not counted as dropped is acked.
"""

from __future__ import annotations

import abc
import logging
import os
import random
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass
from typing import Callable, Optional

import msgspec

from traceforge_protocol import wire

from . import hot_path
from .event_queue import EventQueue
from .redact import Redactor

logger = logging.getLogger("traceforge")

BATCH_EVENTS = wire.MAX_BATCH_EVENTS
MAX_UNACKED_BATCHES = 16
IDLE_WAIT = 0.05
"""How long the thread sleeps when there is nothing to send; bounds live-view latency."""
BACKOFF_MIN, BACKOFF_MAX = 0.05, 2.0
"""Wait before opening a link again after a failure: doubles, reset by the next ack."""
RETRY_AFTER_MAX = 60.0
"""The longest wait a link's ``retry_after`` (the daemon's ``retry_after_ms``) can impose."""
BATCH_OVERHEAD = 128
"""Room in a batch for everything but its events: type, seq and the drop counts."""


class LinkError(Exception):
    """The other end refused the link, or sent something this client cannot read."""


@dataclass(eq=False)  # batches are told apart by identity, never by value
class Batch:
    """Events encoded once, as a msgpack array, kept until the link reports them acked."""

    events: msgspec.Raw
    count: int
    step_ends: int
    dropped: dict  # drop counts this batch reports; confirmed by its ack


@dataclass(frozen=True)
class Acked:
    """The other end has stored these batches."""

    batches: tuple


@dataclass(frozen=True)
class Refused:
    """The other end will never take this batch: it is dropped, not sent again."""

    batch: Batch
    reason: str


class Link(abc.ABC):
    """Where the processor's batches go. Opened again after every break.

    Only the processor's thread calls these methods. Any of them may raise ``OSError`` or
    ``LinkError`` when the link is broken; the processor then closes it and opens it again
    later, and sends every batch not yet acked once more.
    """

    description = "the link"
    """Named in messages: "cannot reach <description>"."""
    advice = ""
    """Said once when it cannot be reached: what the user can do about it."""
    retry_after = 0.0
    """Seconds the other end asked this client to wait before opening the link again
    (protocol.md's ``retry_after_ms``), set when it broke; the processor waits at least
    that long, and clears it."""

    @abc.abstractmethod
    def open(self) -> int:
        """Connect and greet the other end; return the largest batch it takes, in bytes."""

    @abc.abstractmethod
    def send(self, batch: Batch) -> None:
        """Send one batch on the open link; return once it is written."""

    @abc.abstractmethod
    def receive(self, timeout: float) -> list:
        """Acked and Refused replies that arrived, waiting up to ``timeout`` for a first;
        what arrived before a break is returned once before the break is raised."""

    @abc.abstractmethod
    def close(self, goodbye: bool = False) -> None:
        """Release the link, saying goodbye first if asked and possible; never raises."""


class BatchProcessor:
    """Drains one EventQueue into a Link on one background thread, started lazily."""

    def __init__(self, make_link: Callable[[], Link], max_queue_events: int,
                 shutdown_timeout: float, on_start: Callable[[], None] = lambda: None,
                 redactor: Optional[Redactor] = None) -> None:
        self.make_link = make_link
        """Called once per process: a forked child makes its own link."""
        self.redactor = redactor
        """Takes secrets out of each batch's events before they are encoded (redact.py);
        None: they are sent as traced."""
        self.max_queue_events = max_queue_events
        self.shutdown_timeout = shutdown_timeout
        self.on_start = on_start  # e.g. register exit hooks, once the thread exists
        self._reset()
        if hasattr(os, "register_at_fork"):
            # Weakly, so that registering does not keep a replaced processor alive.
            after_fork = weakref.WeakMethod(self._after_fork_in_child)
            os.register_at_fork(after_in_child=lambda: (method := after_fork()) and method())

    def _reset(self) -> None:
        self.events = EventQueue(self.max_queue_events, BATCH_EVENTS, self._start)
        self.emit = self.events.put
        """Hand over one event; never blocks, never raises (``EventQueue.put``)."""
        self.link = self.make_link()
        self.unacked: deque[Batch] = deque()  # oldest first
        self._sent = 0  # how many of them, from the front, went out on the open link
        self.is_open = False
        self.max_batch_bytes = wire.MAX_FRAME_BYTES
        self.acked_events = 0
        self.acked_step_ends = 0
        self.sent_batches = 0
        self.reconnects = 0
        self.last_error: Optional[str] = None
        self._warned = False
        self._backoff = BACKOFF_MIN
        self._retry_at = 0.0
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        """Held to move events out of the queue into batches, and batches out of
        ``unacked``; so shutdown's final count sees every event exactly once."""
        self._idle = threading.Condition(self._lock)
        self._wake = self.events.wake
        self._closing = False
        self._final = False  # shutdown has counted what is left: nothing changes after
        self._give_up_at = 0.0

    def _after_fork_in_child(self) -> None:
        """The child starts empty, with its own link; the parent's events are the parent's."""
        if not self.events.closed:
            self._reset()

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

    # ---- what the process asks of it ----

    def pending(self) -> int:
        """Events queued or batched but not yet acked."""
        return len(self.events.items) + sum(batch.count for batch in list(self.unacked))

    def _settled(self) -> bool:
        return not self.events.items and not self.unacked and not self.events.dropped

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every event so far is acked or counted as dropped, and every drop
        count is reported. True if that happened within ``timeout`` seconds."""
        if self._thread is None or self._final:
            return not self.events.items and not self.unacked
        deadline = time.monotonic() + timeout
        with self._idle:
            while not self._settled():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._wake.set()
                self._idle.wait(min(remaining, IDLE_WAIT))
        return True

    def shutdown(self, timeout: Optional[float] = None) -> bool:
        """Flush within ``timeout`` seconds, then stop; what is still unacked is counted as
        ``undelivered_at_exit``. Later events are dropped as ``shutdown``. Never hangs."""
        if self.events.closed:
            return True
        timeout = self.shutdown_timeout if timeout is None else timeout
        thread = self._thread
        if thread is not None:
            self._give_up_at = time.monotonic() + timeout
            self._closing = True
            self._wake.set()
            thread.join(timeout + 0.2)
        with self._lock:
            self._final = True
            self.events.closed = True
            lost = self.pending()
        if lost:
            self.events.count_drop("undelivered_at_exit", lost)
            if thread is not None:
                logger.warning("traceforge: %d events were not delivered before exit (%s). %s",
                               lost, self.last_error or "timed out", self.link.advice)
        return lost == 0

    def stats(self) -> dict:
        dropped, dropped_total = self.events.drop_counts()
        return {
            "queued": len(self.events.items),
            "inflight_batches": len(self.unacked),
            "acked_events": self.acked_events,
            "acked_step_ends": self.acked_step_ends,
            "sent_batches": self.sent_batches,
            "reconnects": self.reconnects,
            "dropped": dropped,
            "dropped_total": dropped_total,
            "connected": self.is_open,
            "last_error": self.last_error,
            "hot_path": hot_path.form,
        }

    # ---- the thread ----

    def _run(self) -> None:
        while True:
            try:
                if not self.is_open and not self._open():
                    if self._closing:
                        return
                    continue
                if not self._pump():
                    return
            except (OSError, LinkError) as exc:
                self._broken(exc)
            except Exception as exc:  # a bug in TraceForge: never take the app down
                logger.debug("traceforge sender error", exc_info=True)
                self._broken(exc)

    def _open(self) -> bool:
        """Open the link once the backoff allows; False if it is not open."""
        wait = self._retry_at - time.monotonic()
        if wait > 0 and not self._closing:
            self._wake.wait(wait)
            self._wake.clear()
            if time.monotonic() < self._retry_at and not self._closing:
                return False  # woken early by new events: keep waiting
        try:
            self.max_batch_bytes = self.link.open()
        except (OSError, LinkError) as exc:
            self.last_error = f"cannot reach {self.link.description}: {exc}"
            if not self._warned:
                self._warned = True
                logger.warning("traceforge: %s; buffering up to %d events until it is up. %s",
                               self.last_error, self.events.limit, self.link.advice)
            self._back_off()
            return False
        self.is_open = True
        self.last_error = None
        self._warned = False
        self._sent = 0  # everything unacked goes out again, oldest first
        if self.unacked:
            self.reconnects += 1
        return True

    def _broken(self, exc: BaseException) -> None:
        if self.is_open:
            try:  # replies that arrived before the break still count
                self._handle(self.link.receive(0))
            except Exception:
                pass
        self.last_error = f"lost {self.link.description}: {exc}"
        self.link.close()
        self.is_open = False
        self._back_off()

    def _back_off(self) -> None:
        wait = self._backoff * random.uniform(0.8, 1.2)
        asked, self.link.retry_after = min(self.link.retry_after, RETRY_AFTER_MAX), 0.0
        if asked > 0:  # the daemon's storage is failing, or it is full of connections
            wait = max(wait, asked * random.uniform(1.0, 1.2))
        self._retry_at = time.monotonic() + wait
        self._backoff = min(self._backoff * 2, BACKOFF_MAX)

    def _pump(self) -> bool:
        """Batch what is queued, send what the link has not had, read replies. False once
        shutdown is complete."""
        self._fill()
        unacked = self.unacked
        while self._sent < len(unacked):
            self.link.send(unacked[self._sent])
            self._sent += 1
            self.sent_batches += 1
        closing = self._closing
        if closing and time.monotonic() > self._give_up_at:
            return False
        queue = self.events.items
        if unacked:
            room = queue and len(unacked) < MAX_UNACKED_BATCHES
            self._handle(self.link.receive(0 if room else IDLE_WAIT))
        elif closing and not queue:
            self.link.close(goodbye=True)
            self.is_open = False
            return False
        else:
            self._wake.wait(IDLE_WAIT)
            self._wake.clear()
        return True

    def _fill(self) -> None:
        """Move queued events (and unreported drop counts) into new unacked batches."""
        queue = self.events.items
        while (queue or self.events.dropped) and len(self.unacked) < MAX_UNACKED_BATCHES:
            with self._lock:
                if self._final:
                    return
                events = []
                popleft = queue.popleft
                try:
                    for _ in range(BATCH_EVENTS):
                        events.append(popleft())
                except IndexError:
                    pass
                if self.redactor is not None and events:
                    events = self.redactor.batch(events, self.events.count_drop)
                self.unacked.extend(self._batches(events, self.events.take_drops()))

    def _batches(self, events: list, dropped: dict) -> list:
        """``events`` as one batch, or several if one would be larger than the link takes."""
        try:
            encoded = _event_encoder.encode(events)
        except Exception:  # e.g. a lone surrogate in a string: drop only the bad events
            events = self._encodable(events)
            encoded = _event_encoder.encode(events)
        if len(encoded) + BATCH_OVERHEAD > self.max_batch_bytes:
            if len(events) > 1:
                half = len(events) // 2  # the drop counts travel with the first part
                return self._batches(events[:half], dropped) + self._batches(events[half:], {})
            self.events.count_drop("too_large", 1)
            events = []
            encoded = _event_encoder.encode(events)
        step_ends = sum(1 for event in events if type(event) is wire.StepEnd)
        return [Batch(msgspec.Raw(encoded), len(events), step_ends, dropped)]

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

    def _handle(self, replies: list) -> None:
        for reply in replies:
            with self._lock:
                if self._final:
                    return
                if isinstance(reply, Acked):
                    self._backoff = BACKOFF_MIN  # this link works: open it fast next time
                    for batch in reply.batches:
                        if self._forget(batch):
                            self.acked_events += batch.count
                            self.acked_step_ends += batch.step_ends
                elif isinstance(reply, Refused) and self._forget(reply.batch):
                    self.events.count_drop("rejected", reply.batch.count)
                    self.events.return_drops(reply.batch.dropped)  # still to be reported
                    logger.warning("traceforge: %s rejected %d events: %s",
                                   self.link.description, reply.batch.count, reply.reason)
                if self._settled():
                    self._idle.notify_all()

    def _forget(self, batch: Batch) -> bool:
        """Take ``batch`` out of the unacked ones it was sent as; False if it is not there
        (a reply about it came already): then it must not be counted again."""
        for index in range(self._sent):
            if self.unacked[index] is batch:
                del self.unacked[index]
                self._sent -= 1
                return True
        return False


_event_encoder = msgspec.msgpack.Encoder()
