"""Deliver events to the daemon from a background thread, never blocking the app.

A traced call only appends an event to a bounded deque (``Sender.emit``). One daemon
thread takes events off in batches, sends them as frames, and keeps every batch until
the daemon acks it, which it does only after the SQLite commit. If the connection
breaks, unacked batches are resent after reconnecting (the daemon ignores duplicates).
When the deque is full new events are dropped and counted by reason; the counts go
to the daemon in the next hello.
"""

from __future__ import annotations

import atexit
import logging
import os
import random
import select
import socket
import sys
import threading
import time
import uuid
from collections import deque
from typing import Optional

import msgspec

from . import protocol
from .config import Address, ClientConfig, _env_disabled, load_config, switch
from .version import __version__

logger = logging.getLogger("traceforge")

BATCH_EVENTS = 1000
MAX_INFLIGHT_BATCHES = 16
IDLE_WAIT = 0.05
"""How long the sender sleeps when there is nothing to send; bounds live-view latency."""
CONNECT_TIMEOUT = 1.0
IO_TIMEOUT = 5.0
BACKOFF_MIN, BACKOFF_MAX = 0.05, 2.0


class DaemonError(Exception):
    """The daemon answered with an error or something this client cannot read."""


class Connection:
    """One socket to the daemon, after the preface and hello exchange."""

    def __init__(self, address: Address, hello: protocol.Hello) -> None:
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
            sock.sendall(protocol.PREFACE + protocol.encode_frame(hello))
            reply = self.read_message(timeout=IO_TIMEOUT)
        except BaseException:
            sock.close()
            raise
        if isinstance(reply, protocol.Error):
            sock.close()
            raise DaemonError(f"daemon refused the connection: {reply.code}: {reply.message}")
        if not isinstance(reply, protocol.HelloOk):
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
        (length,) = protocol.FRAME_HEADER.unpack_from(self.buffer)
        if length > protocol.MAX_FRAME_BYTES:
            raise DaemonError(f"daemon sent an oversized frame ({length} bytes)")
        if len(self.buffer) < 4 + length:
            return None
        body = bytes(self.buffer[4 : 4 + length])
        del self.buffer[: 4 + length]
        try:
            return protocol.server_message_decoder.decode(body)
        except msgspec.DecodeError as exc:
            raise DaemonError(f"unreadable message from daemon: {exc}") from exc

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class Sender:
    """The bounded queue and the thread that drains it. One per process."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.session = uuid.uuid4().hex
        self._init_state()

    def _init_state(self) -> None:
        self.queue: deque = deque()
        self.max_queue = self.config.max_queue_events
        self.dropped: dict[str, int] = {}
        self._reported_dropped: dict[str, int] = {}
        self.inflight: deque = deque()  # (seq, events, step_ends) awaiting ack
        self.seq = 0
        self.acked_events = 0
        self.acked_step_ends = 0
        self.sent_batches = 0
        self.connection: Optional[Connection] = None
        self.connected_once = False
        self.last_error: Optional[str] = None
        self._warned = False
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Condition(self._lock)
        self._closing = False
        self._closed = False
        self._give_up_at: Optional[float] = None

    # ---- called from the user's threads: must be cheap and must never raise ----

    def emit(self, event: msgspec.Struct) -> None:
        queue = self.queue
        if len(queue) >= self.max_queue or self._closed:
            self._count_drop("shutdown" if self._closed else "queue_full")
            return
        queue.append(event)
        if self._thread is None:
            self._start()
        elif len(queue) == BATCH_EVENTS:
            self._wake.set()

    def _count_drop(self, reason: str, count: int = 1) -> None:
        with self._lock:
            self.dropped[reason] = self.dropped.get(reason, 0) + count

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(
                target=self._run, name="traceforge-sender", daemon=True
            )
            self._thread.start()
        _register_exit_hooks()

    def pending(self) -> int:
        return len(self.queue) + sum(len(events) for _, events, _ in list(self.inflight))

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued event is acked. True if that happened in time."""
        if self._thread is None:
            return not self.queue
        deadline = time.monotonic() + timeout
        with self._idle:
            while self.pending():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._wake.set()
                self._idle.wait(min(remaining, 0.05))
        return True

    def shutdown(self, timeout: Optional[float] = None) -> bool:
        """Flush within ``timeout`` seconds, then stop the thread. Never hangs."""
        if self._closed:
            return True
        timeout = self.config.shutdown_timeout if timeout is None else timeout
        thread = self._thread
        if thread is None:
            self._closed = True
            return True
        self._give_up_at = time.monotonic() + timeout
        self._closing = True
        self._wake.set()
        thread.join(timeout + 0.2)
        self._closed = True
        lost = self.pending()
        if lost:
            self._count_drop("undelivered_at_exit", lost)
            logger.warning(
                "traceforge: %d events were not delivered before exit (%s). %s",
                lost,
                self.last_error or "timed out",
                _start_hint(self.config.address),
            )
        return lost == 0

    def stats(self) -> dict:
        with self._lock:
            dropped = dict(self.dropped)
        return {
            "queued": len(self.queue),
            "inflight_batches": len(self.inflight),
            "acked_events": self.acked_events,
            "acked_step_ends": self.acked_step_ends,
            "sent_batches": self.sent_batches,
            "dropped": dropped,
            "connected": self.connection is not None,
            "last_error": self.last_error,
        }

    # ---- the sender thread ----

    def _run(self) -> None:
        backoff = BACKOFF_MIN
        while True:
            try:
                if self.connection is None:
                    if not self._connect():
                        if self._closing:
                            return
                        self._wake.wait(backoff * random.uniform(0.8, 1.2))
                        self._wake.clear()
                        backoff = min(backoff * 2, BACKOFF_MAX)
                        continue
                    backoff = BACKOFF_MIN
                if not self._pump():
                    return
            except (OSError, ConnectionError, DaemonError) as exc:
                self._disconnect(exc)
            except Exception as exc:  # a bug in TraceForge: never take the app down
                logger.debug("traceforge sender error", exc_info=True)
                self._disconnect(exc)

    def _connect(self) -> bool:
        with self._lock:
            dropped = {k: v for k, v in self.dropped.items() if v}
        hello = protocol.Hello(
            versions=list(protocol.SUPPORTED_VERSIONS),
            token=self.config.token,
            client="traceforge-python",
            client_version=__version__,
            lang="python",
            pid=os.getpid(),
            host=socket.gethostname(),
            session=self.session,
            dropped=dropped,
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
                    self.max_queue,
                    _start_hint(self.config.address),
                )
            return False
        with self._lock:  # the daemon now holds these counts
            for reason, count in dropped.items():
                self.dropped[reason] -= count
                if not self.dropped[reason]:
                    del self.dropped[reason]
        self.connected_once = True
        self.last_error = None
        self._warned = False
        # Resend what the previous connection did not get acked, renumbered.
        pending = list(self.inflight)
        self.inflight.clear()
        for _, events, step_ends in pending:
            self._send_batch(events, step_ends)
        return True

    def _disconnect(self, exc: BaseException) -> None:
        self.last_error = f"lost the daemon at {self.config.address}: {exc}"
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def _send_batch(self, events: list, step_ends: int) -> None:
        self.seq += 1
        frame = protocol.encode_frame(protocol.Batch(seq=self.seq, events=events))
        self.inflight.append((self.seq, events, step_ends))
        self.connection.send(frame)
        self.sent_batches += 1

    def _pump(self) -> bool:
        """Send what is queued and read acks. False once shutdown is complete."""
        queue = self.queue
        connection = self.connection
        while queue and len(self.inflight) < MAX_INFLIGHT_BATCHES:
            events = []
            popleft = queue.popleft
            try:
                for _ in range(BATCH_EVENTS):
                    events.append(popleft())
            except IndexError:
                pass
            step_ends = sum(1 for e in events if type(e) is protocol.StepEnd)
            self._send_batch(events, step_ends)
        closing = self._closing
        if closing and time.monotonic() > (self._give_up_at or 0):
            return False
        if self.inflight:
            wait = 0 if (queue and len(self.inflight) < MAX_INFLIGHT_BATCHES) else IDLE_WAIT
            message = connection.read_message(timeout=wait)
            while message is not None:
                self._handle(message)
                message = connection.read_message(timeout=0)
        elif closing and not queue:
            try:
                connection.send(protocol.encode_frame(protocol.Bye()))
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
        if isinstance(message, protocol.Ack):
            inflight = self.inflight
            while inflight and inflight[0][0] <= message.seq:
                _, events, step_ends = inflight.popleft()
                self.acked_events += len(events)
                self.acked_step_ends += step_ends
            if not inflight and not self.queue:
                with self._idle:
                    self._idle.notify_all()
        elif isinstance(message, protocol.Error):
            if message.seq is not None and not message.retryable:
                # The daemon rejected that batch's events for good: count, do not resend.
                for index, (seq, events, _) in enumerate(self.inflight):
                    if seq == message.seq:
                        del self.inflight[index]
                        self._count_drop("rejected", len(events))
                        break
                logger.warning("traceforge: daemon rejected events: %s", message.message)
            if message.fatal:
                raise DaemonError(f"{message.code}: {message.message}")


def _start_hint(address: Address) -> str:
    if address.kind == "unix":
        return "Start the daemon with `traceforge-daemon start`."
    return f"Is a daemon listening on {address}?"


# ---- the process-wide sender ----

_sender: Optional[Sender] = None
_sender_lock = threading.Lock()
_exit_hooks_registered = False


class _DisabledSender:
    def emit(self, event) -> None:
        pass

    def flush(self, timeout: float = 5.0) -> bool:
        return True

    def shutdown(self, timeout: Optional[float] = None) -> bool:
        return True

    def stats(self) -> dict:
        return {"disabled": True}


def configure(address: Optional[str] = None, **options) -> None:
    """Point this process at a daemon (see ``traceforge_client.init``)."""
    global _sender, emit
    with _sender_lock:
        old = _sender
        switch.disabled = _env_disabled()
        if switch.disabled:
            _sender = _DisabledSender()  # type: ignore[assignment]
        else:
            _sender = Sender(load_config(address, **options))
        emit = _sender.emit
    if old is not None:
        old.shutdown()


def get_sender() -> Sender:
    sender = _sender
    if sender is None:
        configure()
        sender = _sender
    return sender  # type: ignore[return-value]


def _emit_first(event: msgspec.Struct) -> None:
    get_sender().emit(event)


emit = _emit_first
"""Hand one event to this process's sender. Rebound to the sender's own ``emit`` by
``configure`` so the hot path is a single call; read it as ``transport.emit``."""


def flush(timeout: float = 5.0) -> bool:
    """Block until everything traced so far is stored, or ``timeout`` passes."""
    return get_sender().flush(timeout) if _sender is not None else True


def shutdown(timeout: Optional[float] = None) -> bool:
    """Flush (default deadline 2 s) and stop sending. Later events are dropped."""
    return _sender.shutdown(timeout) if _sender is not None else True


def stats() -> dict:
    """Delivery counters for this process: acked, queued, dropped by reason."""
    return get_sender().stats()


def _shutdown_at_exit() -> None:
    try:
        shutdown()
    except Exception:  # never turn a clean exit into a traceback
        logger.debug("traceforge shutdown failed", exc_info=True)


def _register_exit_hooks() -> None:
    global _exit_hooks_registered
    if _exit_hooks_registered:
        return
    _exit_hooks_registered = True
    atexit.register(_shutdown_at_exit)
    # multiprocessing children started by fork leave through os._exit(), which skips
    # atexit; their finalizers do run, so flush there too.
    mp = sys.modules.get("multiprocessing")
    if mp is not None and mp.parent_process() is not None:
        import multiprocessing.util

        multiprocessing.util.Finalize(None, _shutdown_at_exit, exitpriority=-100)


def _after_fork_in_child() -> None:
    """The child gets its own sender; the parent's queue stays the parent's to deliver."""
    global _exit_hooks_registered, _sender_lock
    _sender_lock = threading.Lock()
    _exit_hooks_registered = False
    if isinstance(_sender, Sender):
        _sender.session = uuid.uuid4().hex
        _sender._init_state()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
