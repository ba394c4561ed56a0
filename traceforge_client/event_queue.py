"""The bounded queue between traced code and the sender thread, with its drop counts.

``put`` is called twice for every traced step, on the user's thread, so it is part of
the hot path and is compiled with the tracer when a C compiler is available (see
``hot_path.py``). It never blocks and never raises: when the queue is full, or the
sender has shut down, the event is dropped and counted by reason, and the counts reach
the daemon on the next batch.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Callable, Optional


class EventQueue:
    """Events waiting for the sender thread, at most ``limit`` of them."""

    __slots__ = ("items", "limit", "wake_at", "closed", "wake", "on_first_event",
                 "dropped", "dropped_total", "lock")

    def __init__(self, limit: int, wake_at: int, on_first_event: Optional[Callable[[], None]]):
        self.items: deque = deque()
        self.limit = limit
        self.wake_at = wake_at
        """Queue length at which the sender is woken instead of waiting for its timer."""
        self.closed = False
        self.wake = threading.Event()
        self.on_first_event = on_first_event
        """Called once, with the first event: starts the sender thread lazily."""
        self.dropped: dict = {}  # counted, not yet reported to the daemon
        self.dropped_total: dict = {}
        self.lock = threading.Lock()

    def put(self, event: object) -> None:
        items = self.items
        if len(items) >= self.limit or self.closed:
            self.count_drop("shutdown" if self.closed else "queue_full", 1)
            return
        items.append(event)
        if self.on_first_event is not None:
            start, self.on_first_event = self.on_first_event, None
            start()
        elif len(items) == self.wake_at:
            self.wake.set()

    def count_drop(self, reason: str, count: int) -> None:
        with self.lock:
            self.dropped[reason] = self.dropped.get(reason, 0) + count
            self.dropped_total[reason] = self.dropped_total.get(reason, 0) + count

    def take_drops(self) -> dict:
        """The counts not yet reported, handed to a batch that will report them."""
        with self.lock:
            dropped, self.dropped = self.dropped, {}
        return dropped

    def return_drops(self, dropped: dict) -> None:
        """Counts a batch carried but the daemon refused: report them again later."""
        with self.lock:
            for reason, count in dropped.items():
                self.dropped[reason] = self.dropped.get(reason, 0) + count

    def drop_counts(self) -> tuple[dict, dict]:
        """(not yet reported, all since start), as copies."""
        with self.lock:
            return dict(self.dropped), dict(self.dropped_total)
