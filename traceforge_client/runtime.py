"""This process's pipeline: where traced events go, from the first one to exit.

``configure()`` (``init()``) builds it: an EventQueue drained by a BatchProcessor into a
SocketLink to the daemon, or nothing at all when ``TRACEFORGE_DISABLED`` is set. It is
built lazily by the first traced event when ``init()`` was never called. The tracer hands
every event to ``runtime.emit``, a module attribute rebound to the pipeline's queue put, so
the hot path is one call. At exit the pipeline is flushed within ``shutdown_timeout`` (atexit,
and multiprocessing finalizers for forked children); a forked child gets its own.

``testing.capture()`` puts a pipeline of its own in front for a while (``push``/``pop``):
configure() then changes what is restored afterwards, not where events go meanwhile.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from typing import Callable, Optional, Protocol

import msgspec

from . import children, hot_path
from .batching import BatchProcessor
from .config import _env_disabled, load_config, switch
from .config import redactor as config_redactor
from .link import SocketLink
from .redact import Redactor

logger = logging.getLogger("traceforge")


class Pipeline(Protocol):
    """What the process sends its events through."""

    emit: Callable[[msgspec.Struct], None]
    """Takes one event; never blocks and never raises."""

    def flush(self, timeout: float = 5.0) -> bool:
        """True once every event emitted so far is delivered or counted as dropped."""

    def shutdown(self, timeout: Optional[float] = None) -> bool:
        """Flush within ``timeout``, then stop taking events; True if nothing was lost."""

    def stats(self) -> dict:
        """Delivery counters, and ``hot_path``: which form of the per-step code runs."""


class Disabled:
    """The pipeline when TRACEFORGE_DISABLED is set: every call does nothing."""

    def emit(self, event) -> None:
        pass

    def flush(self, timeout: float = 5.0) -> bool:
        return True

    def shutdown(self, timeout: Optional[float] = None) -> bool:
        return True

    def stats(self) -> dict:
        return {"disabled": True, "hot_path": hot_path.form}


_configured: Optional[Pipeline] = None
"""The pipeline configure() built, None until then."""
_in_front: list = []
"""Pipelines put in front of it by push(), innermost last: events go to the last one."""
_lock = threading.Lock()
_exit_hooks_registered = False


def configure(address: Optional[str] = None, **options) -> None:
    """Point this process at a daemon (see ``traceforge_client.init``)."""
    global _configured
    children.install()
    with _lock:
        old = _configured
        if _env_disabled():
            _configured = Disabled()
        else:
            config = load_config(address, **options)
            _configured = BatchProcessor(
                lambda: SocketLink(config.address, config.token),
                config.max_queue_events, config.shutdown_timeout,
                on_start=_register_exit_hooks, redactor=config.redactor,
            )
        _rebind()
    if old is not None:
        old.shutdown()


def active() -> Pipeline:
    """The pipeline events go to now, configured on first use."""
    if _in_front:
        return _in_front[-1]
    if _configured is None:
        configure()
    return _configured  # type: ignore[return-value]


def current_redactor() -> Optional[Redactor]:
    """The redaction the configured pipeline applies (as ``init()`` chose it, else as the
    environment says), for a capture that must see what the daemon would see."""
    if isinstance(_configured, BatchProcessor):
        return _configured.redactor
    return config_redactor()


def push(pipeline: Pipeline) -> None:
    """Send this process's events to ``pipeline`` until ``pop(pipeline)``."""
    with _lock:
        _in_front.append(pipeline)
        _rebind()


def pop(pipeline: Pipeline) -> None:
    """Undo ``push(pipeline)``: events go where they went before it."""
    with _lock:
        _in_front.remove(pipeline)
        _rebind()


def _rebind() -> None:
    """Point ``emit`` and the tracer's on/off switch at the pipeline in front."""
    global emit
    pipeline = _in_front[-1] if _in_front else _configured
    emit = pipeline.emit if pipeline is not None else _bind_and_emit
    # A pipeline pushed in front always takes events, even with TRACEFORGE_DISABLED set.
    switch.disabled = not _in_front and (
        isinstance(_configured, Disabled) if _configured is not None else _env_disabled())


def _bind_and_emit(event: msgspec.Struct) -> None:
    """``emit`` until there is a pipeline to bind it to (before the first event, and in a
    child after fork): build or find the pipeline, rebind, and hand it this event."""
    global emit
    pipeline = active()
    emit = pipeline.emit
    pipeline.emit(event)


emit: Callable[[msgspec.Struct], None] = _bind_and_emit
"""Hand one event to this process's pipeline. Rebound to its queue's ``put`` so the hot path
is a single call; read it as ``runtime.emit``, never import the name."""


def flush(timeout: float = 5.0) -> bool:
    """Block until everything traced so far is stored, or ``timeout`` passes."""
    if not _in_front and _configured is None:
        return True
    return active().flush(timeout)


def shutdown(timeout: Optional[float] = None) -> bool:
    """Flush (default deadline 2 s) and stop sending. Later events are dropped.

    While ``testing.capture()`` is in front this only flushes the capture: the capture
    ends with its ``with`` block."""
    if _in_front:
        return _in_front[-1].flush(5.0 if timeout is None else timeout)
    return _configured.shutdown(timeout) if _configured is not None else True


def stats() -> dict:
    """Delivery counters for this process: acked, queued, dropped by reason."""
    return active().stats()


def _shutdown_at_exit() -> None:
    try:
        if _configured is not None:
            _configured.shutdown()
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
    """The processor resets itself in the child (batching.py); bind to it afresh."""
    global _exit_hooks_registered, _lock, emit
    _lock = threading.Lock()
    _exit_hooks_registered = False
    emit = _bind_and_emit


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
