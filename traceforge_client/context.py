"""Which run and step is current, without the user passing a context object around.

One ``ContextVar`` holds an immutable ``Current`` for the innermost step. asyncio
tasks copy the context when they are created, so tasks started inside a step see that
step as their parent. Threads do not inherit context: hand work to threads through
``TracedThreadPoolExecutor`` or ``propagate()`` (propagation.py). Child processes get the
current run and step from the ``TRACEFORGE_TRACEPARENT`` environment variable (subprocess,
spawn) or from the forked memory image (fork), and use it as their root parent.
"""

from __future__ import annotations

import contextvars
import os
from typing import Optional

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
