"""This process's sender: created lazily, replaced by init(), reset after fork, and
flushed at exit (atexit, and multiprocessing finalizers for forked children)."""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from typing import Optional

import msgspec

from . import children, hot_path
from .config import _env_disabled, load_config, switch
from .sender import Sender

logger = logging.getLogger("traceforge")

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
        return {"disabled": True, "hot_path": hot_path.form}


def configure(address: Optional[str] = None, **options) -> None:
    """Point this process at a daemon (see ``traceforge_client.init``)."""
    global _sender, emit
    children.install()
    with _sender_lock:
        old = _sender
        switch.disabled = _env_disabled()
        if switch.disabled:
            _sender = _DisabledSender()  # type: ignore[assignment]
            emit = _sender.emit
        else:
            _sender = Sender(load_config(address, **options), on_start=_register_exit_hooks)
            emit = _sender.events.put
    if old is not None:
        old.shutdown()


def get_sender() -> Sender:
    sender = _sender
    if sender is None:
        configure()
        sender = _sender
    return sender  # type: ignore[return-value]


def _emit_first(event: msgspec.Struct) -> None:
    get_sender()
    emit(event)


emit = _emit_first
"""Hand one event to this process's sender. Rebound to its queue's ``put`` by
``configure`` (and after a fork) so the hot path is a single call; read it as
``transport.emit``."""


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
    global _exit_hooks_registered, _sender_lock, emit
    _sender_lock = threading.Lock()
    _exit_hooks_registered = False
    if isinstance(_sender, Sender):
        _sender._init_state()
        emit = _sender.events.put


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
