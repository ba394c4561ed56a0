"""Server-Sent Events: runs and steps starting and ending, pushed as they are committed.

The hub is one of the Store's commit listeners: after each SQLite commit it turns the
committed events into small SSE messages, each a step or run summary in the shape the
run detail lists it (``storage.records.live_summary``; no inputs or outputs, which can
be a megabyte each: fetch those from /api/steps/{id}), and offers them to every
subscriber, so a page can update a row in place.
With no subscribers it does nothing, so ingest pays nothing for the feature.

Each subscriber has a bounded buffer. A subscriber that reads too slowly loses the
newest messages rather than growing the daemon's memory; it is then sent a
``dropped`` event with the count, so a dashboard knows to refetch what it shows.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Optional

import msgspec
from aiohttp import web

from ..storage import records
from .operations import ApiRoutes, Stream
from .reads import STORE
from .schemas import EventsParams

QUEUE_MESSAGES = 10_000
"""Messages a subscriber may have waiting before newer ones are dropped."""

RETRY_MS = 2000

_encode = msgspec.json.Encoder().encode


class Subscriber:
    """One open /api/events stream: its filter, its bounded buffer, its drop count."""

    def __init__(self, run_id: Optional[str], limit: int) -> None:
        self.run_id = run_id
        self.limit = limit
        self.buffer: deque[bytes] = deque()
        self.dropped = 0
        self.unreported_drops = 0
        self.wakeup = asyncio.Event()

    def offer(self, messages: list[tuple[str, bytes]]) -> None:
        offered = False
        for run_id, message in messages:
            if self.run_id is not None and run_id != self.run_id:
                continue
            offered = True
            if len(self.buffer) >= self.limit:
                self.dropped += 1
                self.unreported_drops += 1
            else:
                self.buffer.append(message)
        if offered:
            self.wakeup.set()

    def take(self) -> bytes:
        parts = list(self.buffer)
        self.buffer.clear()
        if self.unreported_drops:
            notice = _encode({"dropped": self.unreported_drops, "total_dropped": self.dropped})
            parts.append(b"event: dropped\ndata: " + notice + b"\n\n")
            self.unreported_drops = 0
        self.wakeup.clear()
        return b"".join(parts)


class EventHub:
    """Fans committed events out to the subscribers; registered as a commit listener."""

    def __init__(self, queue_messages: int = QUEUE_MESSAGES) -> None:
        self.queue_messages = queue_messages
        self.subscribers: set[Subscriber] = set()
        self.sequence = 0
        self.sent = 0
        self.dropped = 0
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
        if messages:
            for subscriber in self.subscribers:
                subscriber.offer(messages)

    def subscribe(self, run_id: Optional[str]) -> Subscriber:
        subscriber = Subscriber(run_id, self.queue_messages)
        self.subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
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
            "dropped": self.dropped + sum(s.dropped for s in self.subscribers),
        }


HUB = web.AppKey("event_hub", EventHub)

routes = ApiRoutes("daemon")


@routes.get("/api/events", summary="Live events (Server-Sent Events)", params=EventsParams,
            answer=Stream("text/event-stream", "An endless event stream"))
async def events(request: web.Request, params: EventsParams) -> web.StreamResponse:
    """A text/event-stream of run_start, run_end, step_start and step_end events, pushed
    after each commit; each data line is JSON without inputs or outputs. A slow reader
    gets an event named dropped with the count it missed."""
    run_id, keepalive = params.run_id, params.keepalive
    hub = request.app[HUB]
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream",
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
    })
    await response.prepare(request)
    subscriber = hub.subscribe(run_id)
    try:
        await response.write(b"retry: %d\n: connected\n\n" % RETRY_MS)
        while not hub.closing:
            try:
                await asyncio.wait_for(subscriber.wakeup.wait(), keepalive)
            except asyncio.TimeoutError:
                await response.write(b": keep-alive %d\n\n" % int(time.time()))
                continue
            data = subscriber.take()
            if data:
                await response.write(data)
                hub.sent += data.count(b"\n\n")
    except ConnectionResetError:
        pass  # the subscriber went away
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
