"""TraceForge client: trace nested steps of an LLM pipeline into the TraceForge daemon.

    import traceforge_client as traceforge
    from traceforge_client import trace_run, trace_step

    with trace_run("my pipeline") as run_id:
        with trace_step("summarize", input_data={"n": 3}, model="claude-sonnet-4-6") as r:
            r["output"] = "..."
            r["tokens_input"], r["tokens_output"] = 89, 95

Nothing here blocks on the network or raises into your program: events go to a
bounded queue that a background thread sends to the daemon. Importing the package
changes nothing in the process; the hooks that let child processes attach to the
current step (``children.py``) are installed when tracing is first used.
"""

from __future__ import annotations

from typing import Optional

from . import hot_path as _hot_path

_hot_path.load()  # before anything imports the per-step modules, compiled or not

from .context import child_env, current_run_id, current_step_id  # noqa: E402
from .propagation import TracedThreadPoolExecutor, propagate  # noqa: E402
from .storage import get_storage  # noqa: E402
from .decorator import trace_step_decorator  # noqa: E402
from .tracer import current_step, trace_run, trace_step  # noqa: E402
from .runtime import configure as _configure  # noqa: E402
from .runtime import flush, shutdown, stats  # noqa: E402
from traceforge_protocol.version import __version__  # noqa: E402


def init(address: Optional[str] = None, **options) -> None:
    """Choose the daemon to send to; optional, the default is the local daemon's socket.

    Args:
        address: ``unix:///path/to.sock`` or ``tcp://host:port``. Default:
            ``TRACEFORGE_ADDRESS``, else ``$TRACEFORGE_HOME/daemon.sock``.
        token: sent to the daemon; default ``TRACEFORGE_TOKEN``.
        max_queue_events: events buffered while the daemon is slow or away (100,000).
        shutdown_timeout: seconds the exit flush may take (2.0).
        redact: replace secrets (API keys, tokens, passwords, private keys) in inputs,
            outputs, metadata and errors with ``[redacted:<kind>]`` before they leave the
            process; default ``TRACEFORGE_REDACT``, else on (``redact.py``).
        redact_patterns: more patterns, ``{"name": r"regex"}`` (``None`` removes a
            built-in one); a bad regex raises ValueError here.
    """
    _configure(address, **options)


__all__ = [
    "TracedThreadPoolExecutor",
    "__version__",
    "child_env",
    "current_run_id",
    "current_step",
    "current_step_id",
    "flush",
    "get_storage",
    "init",
    "propagate",
    "shutdown",
    "stats",
    "trace_run",
    "trace_step",
    "trace_step_decorator",
]
