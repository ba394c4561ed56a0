"""Carry the current run and step to work that runs elsewhere: other threads, pools.

asyncio tasks inherit the current step by themselves (context.py); threads do not, and
pool workers outlive the step that started them. ``propagate(fn)`` captures the current
step when it is made and restores it around every call; ``TracedThreadPoolExecutor``
does the same for each task it is given.
"""

from __future__ import annotations

import contextvars
import functools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from . import runtime
from .context import Current, _current, get_current


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
                runtime.flush(timeout=2.0)

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
