"""Which run and step is current, without the user passing a context object around.

One ``ContextVar`` holds an immutable ``Current`` for the innermost step. asyncio
tasks copy the context when they are created, so tasks started inside a step see that
step as their parent. Threads do not inherit context: hand work to threads through
``TracedThreadPoolExecutor`` or ``propagate()``. Child processes get the current run
and step from the ``TRACEFORGE_TRACEPARENT`` environment variable (subprocess, spawn)
or from the forked memory image (fork), and use it as their root parent.
"""

from __future__ import annotations

import contextvars
import functools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Optional

import msgspec

from traceforge_protocol import ids

from .config import TRACEFORGE_TRACEPARENT


class RunState:
    """Mutable state shared by every step of one run inside one process."""

    __slots__ = ("run_id", "errored")

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.errored = False


class Current(msgspec.Struct, frozen=True):
    """The innermost step (or run, when step_id is None). Never mutated: a new one is set.
    A frozen msgspec Struct because it is built on every step and is 4x cheaper than a
    NamedTuple to construct."""

    run_id: str
    step_id: Optional[str]
    run: Optional[RunState]  # None when the run belongs to a parent process
    record: Optional[dict]  # the dict yielded by trace_step, for current_step()


_current: contextvars.ContextVar[Optional[Current]] = contextvars.ContextVar(
    "traceforge_current", default=None
)

def parse_traceparent(value: str) -> Optional[Current]:
    parsed = ids.parse_traceparent(value)
    return None if parsed is None else Current(parsed[0], parsed[1], None, None)


_process_parent: Optional[Current] = parse_traceparent(os.environ.get(TRACEFORGE_TRACEPARENT, ""))
"""The run and step that started this process, if a traced parent did."""


def get_current() -> Optional[Current]:
    return _current.get() or _process_parent


def set_process_parent(traceparent: str) -> None:
    global _process_parent
    _process_parent = parse_traceparent(traceparent)


def current_traceparent() -> Optional[str]:
    current = get_current()
    return ids.format_traceparent(current.run_id, current.step_id) if current else None


def current_run_id() -> Optional[str]:
    current = get_current()
    return current.run_id if current else None


def current_step_id() -> Optional[str]:
    current = get_current()
    return current.step_id if current else None


def child_env(env: Optional[dict] = None) -> dict:
    """A copy of ``env`` (default ``os.environ``) that makes a child process attach here."""
    result = dict(os.environ if env is None else env)
    traceparent = current_traceparent()
    if traceparent:
        result[TRACEFORGE_TRACEPARENT] = traceparent
    return result


class propagate:
    """Wrap ``fn`` so it runs under the current run and step wherever it is called.

    Use it for work handed to a process pool (the wrapper pickles if ``fn`` does) or to
    any thread you start yourself::

        with trace_step("search_all"):
            results = pool.map(propagate(search), queries)

    In another process the wrapper flushes that process's events before it returns,
    so a pool that is terminated right after ``map`` loses nothing.
    """

    def __init__(self, fn: Callable[..., Any]) -> None:
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.captured = get_current()
        self.origin_pid = os.getpid()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        token = _current.set(self.captured)
        try:
            return self.fn(*args, **kwargs)
        finally:
            _current.reset(token)
            if os.getpid() != self.origin_pid:
                from .runtime import flush

                flush(timeout=2.0)

    def __getstate__(self) -> dict:
        captured = self.captured
        if captured is not None:  # run state and record do not cross processes
            captured = Current(captured.run_id, captured.step_id, None, None)
        return {"fn": self.fn, "captured": captured, "origin_pid": self.origin_pid}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)


class TracedThreadPoolExecutor(ThreadPoolExecutor):
    """A ThreadPoolExecutor whose tasks run under the run and step that submitted them."""

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[override]
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)
