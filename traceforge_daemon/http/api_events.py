"""Server-Sent Events: runs and steps starting and ending, pushed as they are committed.

The hub is one of the Store's commit listeners: after each SQLite commit it turns the
committed events into small SSE messages, each a step or run summary in the shape the
run detail lists it (``storage.records.live_summary``; no inputs or outputs, which can
be a megabyte each: fetch those from /api/steps/{id}), and offers them to every
subscriber, so a page can update a row in place.
With no subscribers it does nothing, so ingest pays nothing for the feature.

Each committed transaction becomes one chunk of bytes, shared by every subscriber that
wants all of it (one more per run for the filtered ones), so the cost of a commit is
one encoding of its events plus one append per subscriber, however many there are.
Every subscriber may have at most SUBSCRIBER_MAX_BYTES waiting (in its buffer or being
written); one that falls further behind, because it reads too slowly or not at all, is
disconnected, and the bytes it held are freed. Its EventSource reconnects after
RETRY_MS; it should then refetch what it shows, since it missed events.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import deque
from typing import Optional

import msgspec
from aiohttp import web

from ..storage import records
from .operations import ApiRoutes, Stream
from .reads import STORE
from .schemas import EventsParams

SUBSCRIBER_MAX_BYTES = 4 * 1024 * 1024
"""Bytes one subscriber may have waiting before it is disconnected as too slow."""
WRITE_SLICE = 64 * 1024
"""Bytes handed to one subscriber's socket at a time, so its transport buffer stays small."""
SEND_BUFFER = 64 * 1024
"""The kernel send buffer of a subscriber's socket (SO_SNDBUF). Left to autotuning it grows
to megabytes, and a subscriber that never reads would make the daemon copy that much
into it, for every such subscriber, before being found out."""

RETRY_MS = 2000

_encode = msgspec.json.Encoder().encode


class Subscriber:
    """One open /api/events stream: its filter and the shared chunks waiting for it."""

    def __init__(self, run_id: Optional[str], limit: int) -> None:
        self.run_id = run_id
        self.limit = limit
        self.buffer: deque[tuple[bytes, int]] = deque()  # (chunk, messages in it)
        self.waiting_bytes = 0  # buffered or being written
        self.dropped = 0
        self.overflowed = False
        self.wakeup = asyncio.Event()
        self.transport: Optional[asyncio.BaseTransport] = None

    def offer(self, chunk: bytes, messages: int) -> None:
        if self.overflowed:
            return
        if self.waiting_bytes + len(chunk) > self.limit:
            self.overflowed = True  # too slow: disconnected, its buffer freed
            self.dropped += messages + sum(n for _, n in self.buffer)
            self.buffer.clear()
            self.wakeup.set()
            if self.transport is not None:
                self.transport.abort()  # wakes a write stuck on a reader that never reads
            return
        self.buffer.append((chunk, messages))
        self.waiting_bytes += len(chunk)
        self.wakeup.set()

    def take(self) -> list[tuple[bytes, int]]:
        chunks = list(self.buffer)
        self.buffer.clear()
        self.wakeup.clear()
        return chunks

    def written(self, size: int) -> None:
        self.waiting_bytes -= size


class EventHub:
    """Fans committed events out to the subscribers; registered as a commit listener."""

    def __init__(self, max_bytes: int = SUBSCRIBER_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.subscribers: set[Subscriber] = set()
        self.sequence = 0
        self.sent = 0
        self.dropped = 0
        self.disconnected = 0
        self.closing = False

    def on_commit(self, items: list) -> None:
        if not self.subscribers:
            return
        messages = []
        for item in items:
            for event in getattr(item, "events", ()):
                described = records.live_summary(event)
                if described is None:
                    continue
                name, payload = described
                self.sequence += 1
                payload["type"] = name
                messages.append((event.run_id, b"id: %d\nevent: %s\ndata: %s\n\n" % (
                    self.sequence, name.encode(), _encode(payload))))
        if not messages:
            return
        everything: Optional[bytes] = None
        by_run: dict[str, list[bytes]] = {}
        wanted = {s.run_id for s in self.subscribers if s.run_id is not None}
        if wanted:
            for run_id, message in messages:
                if run_id in wanted:
                    by_run.setdefault(run_id, []).append(message)
        for subscriber in list(self.subscribers):
            if subscriber.run_id is None:
                if everything is None:
                    everything = b"".join(message for _, message in messages)
                subscriber.offer(everything, len(messages))
            elif subscriber.run_id in by_run:
                mine = by_run[subscriber.run_id]
                subscriber.offer(b"".join(mine), len(mine))
            if subscriber.overflowed and subscriber in self.subscribers:
                self.unsubscribe(subscriber)
                self.disconnected += 1

    def subscribe(self, run_id: Optional[str]) -> Subscriber:
        subscriber = Subscriber(run_id, self.max_bytes)
        self.subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        if subscriber in self.subscribers:
            self.subscribers.discard(subscriber)
            self.dropped += subscriber.dropped

    def close(self) -> None:
        """Ask every stream to end, so shutdown does not wait on open connections."""
        self.closing = True
        for subscriber in self.subscribers:
            subscriber.wakeup.set()

    def stats(self) -> dict:
        return {
            "subscribers": len(self.subscribers),
            "messages_sent": self.sent,
            "dropped": self.dropped,
            "disconnected_slow": self.disconnected,
        }


HUB = web.AppKey("event_hub", EventHub)

routes = ApiRoutes("daemon")


@routes.get("/api/events", summary="Live events (Server-Sent Events)", params=EventsParams,
            answer=Stream("text/event-stream", "An endless event stream"))
async def events(request: web.Request, params: EventsParams) -> web.StreamResponse:
    """A text/event-stream of run_start, run_end, step_start and step_end events, pushed
    after each commit, and step_incomplete and run_incomplete when the daemon marks the
    rows of a vanished process; each data line is JSON without inputs or outputs. A
    subscriber more than 4 MiB behind is disconnected; on reconnecting it should refetch."""
    run_id, keepalive = params.run_id, params.keepalive
    hub = request.app[HUB]
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream",
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
    })
    await response.prepare(request)
    subscriber = hub.subscribe(run_id)
    subscriber.transport = request.transport
    sock = request.transport.get_extra_info("socket") if request.transport else None
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        except OSError:
            pass
    try:
        await response.write(b"retry: %d\n: connected\n\n" % RETRY_MS)
        while not hub.closing and not subscriber.overflowed:
            try:
                await asyncio.wait_for(subscriber.wakeup.wait(), keepalive)
            except asyncio.TimeoutError:
                await response.write(b": keep-alive %d\n\n" % int(time.time()))
                continue
            for chunk, messages in subscriber.take():
                view = memoryview(chunk)
                for offset in range(0, len(chunk), WRITE_SLICE):
                    piece = view[offset:offset + WRITE_SLICE]
                    await response.write(piece)
                    subscriber.written(len(piece))
                hub.sent += messages
    except (ConnectionResetError, ConnectionError):
        pass  # the subscriber went away, or was disconnected as too slow
    finally:
        hub.unsubscribe(subscriber)
    return response


def setup(app: web.Application) -> None:
    hub = EventHub()
    app[HUB] = hub

    async def start(app: web.Application) -> None:
        app[STORE].commit_listeners.append(hub.on_commit)

    async def shutdown(app: web.Application) -> None:
        hub.close()

    async def cleanup(app: web.Application) -> None:
        listeners = app[STORE].commit_listeners
        if hub.on_commit in listeners:
            listeners.remove(hub.on_commit)

    app.on_startup.append(start)
    app.on_shutdown.append(shutdown)
    app.on_cleanup.append(cleanup)
    app.router.add_routes(routes)
