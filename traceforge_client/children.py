"""Make child processes attach to the step that started them.

- ``subprocess.Popen`` started inside a step gets ``TRACEFORGE_TRACEPARENT`` in its
  environment (added to ``env=`` when one is passed, unless it already sets it).
- ``multiprocessing.Process.start()`` records the current step on the process object;
  with the spawn and forkserver start methods that object is pickled to the child,
  and unpickling it there sets the child's root parent. With fork the child inherits
  the parent's context directly.

Both hooks do nothing outside a step, so untraced code starts processes exactly as
before. Installed once, when this process first traces something or calls ``init()``:
importing TraceForge alone leaves ``subprocess`` and ``multiprocessing`` as they are.
"""

from __future__ import annotations

import functools
import multiprocessing.process
import subprocess

from . import context
from .config import TRACEFORGE_TRACEPARENT

_installed = False


def _restore_parent(traceparent: str) -> "_ParentCarrier":
    context.set_process_parent(traceparent)
    return _ParentCarrier(traceparent)


class _ParentCarrier:
    """Rides on a Process object to the child; unpickling it sets the child's parent."""

    def __init__(self, traceparent: str) -> None:
        self.traceparent = traceparent

    def __reduce__(self):
        return (_restore_parent, (self.traceparent,))


def install() -> None:
    global _installed
    if _installed:
        return
    _installed = True

    original_popen_init = subprocess.Popen.__init__

    @functools.wraps(original_popen_init)
    def popen_init(self, *args, **kwargs):
        traceparent = context.current_traceparent()
        # env is the 11th positional parameter of Popen; only rewrite the keyword form
        # or the default, and leave an explicit positional env untouched.
        if traceparent and len(args) < 11:
            env = kwargs.get("env")
            if env is None or TRACEFORGE_TRACEPARENT not in env:
                kwargs["env"] = context.child_env(env)
        original_popen_init(self, *args, **kwargs)

    subprocess.Popen.__init__ = popen_init  # type: ignore[method-assign]

    original_start = multiprocessing.process.BaseProcess.start

    @functools.wraps(original_start)
    def start(self):
        traceparent = context.current_traceparent()
        if traceparent:
            self._traceforge_parent = _ParentCarrier(traceparent)
        return original_start(self)

    multiprocessing.process.BaseProcess.start = start  # type: ignore[method-assign]
