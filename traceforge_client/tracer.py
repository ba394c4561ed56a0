"""trace_run and trace_step: TraceForge's tracing API, on contextvars.

Entering a step costs one id, one clock read, the input's JSON, one small event on the
queue and one ContextVar set; batching, encoding and sending happen on the sender thread
(batching.py). This module is plain Python that also compiles with Cython (``tracer.pxd``
declares its types; ``hot_path.py`` says which form is running).
"""

from __future__ import annotations

import os
import time
import traceback as traceback_module
from typing import Any, Optional

import msgspec

from traceforge_protocol import wire

from . import context, ids, pricing, runtime
from .config import switch
from .context import Current, RunState, _current
from .ids import new_run_id

_time_ns = time.time_ns
_step_numbers = ids.step_numbers()


def _new_step_numbers() -> None:
    global _step_numbers
    _step_numbers = ids.step_numbers()


if hasattr(os, "register_at_fork"):  # a forked child must not repeat its parent's step ids
    os.register_at_fork(after_in_child=_new_step_numbers)


def _fallback(value: Any) -> Any:
    return repr(value)


_json_encoder = msgspec.json.Encoder(enc_hook=_fallback)
_encode_json = _json_encoder.encode
StepStart, StepEnd = wire.StepStart, wire.StepEnd


def to_json(value: Any) -> Optional[str]:
    """``value`` as JSON text for the wire, never raising; None stays None."""
    if value is None:
        return None
    try:
        data = _encode_json(value)
    except Exception:  # e.g. dict keys JSON cannot hold, or a broken __repr__
        try:
            data = _json_encoder.encode(repr(value))
        except Exception:
            data = b'"<unserialisable>"'
    if len(data) > wire.MAX_FIELD_BYTES:
        preview = data[: wire.MAX_FIELD_BYTES // 4].decode("utf-8", "ignore")
        data = _json_encoder.encode(
            {"_traceforge_truncated": True, "original_bytes": len(data), "preview": preview}
        )
    return data.decode()


class trace_run:
    """Context manager for one pipeline run; ``as`` gives the run id (32 hex characters).

    Steps inside it, in this thread, its asyncio tasks and child processes, belong to
    this run. If the body raises, or any step in it fails, the run is marked as an error.
    """

    __slots__ = ("name", "metadata", "run_id", "_start_ns", "_state", "_token")

    def __init__(self, name: str, metadata: Optional[dict] = None) -> None:
        self.name = _clean_name(name)
        self.metadata = metadata

    def __enter__(self) -> str:
        self.run_id = run_id = new_run_id()
        self._state = RunState(run_id)
        self._start_ns = _time_ns()
        self._token = _current.set(Current(run_id, None, self._state, None))
        if not switch.disabled:
            runtime.emit(
                wire.RunStart(
                    run_id=run_id,
                    name=self.name,
                    start_ns=self._start_ns,
                    metadata_json=to_json(self.metadata or {}),
                )
            )
        return run_id

    def __exit__(self, exc_type, exc, tb) -> bool:
        _current.reset(self._token)
        failed = (exc_type is not None and issubclass(exc_type, Exception)) or self._state.errored
        if not switch.disabled:
            runtime.emit(
                wire.RunEnd(
                    run_id=self.run_id,
                    name=self.name,
                    start_ns=self._start_ns,
                    end_ns=_time_ns(),
                    status="error" if failed else "success",
                    error=f"{exc_type.__name__}: {exc}" if exc_type is not None else None,
                    metadata_json=to_json(self.metadata or {}),
                )
            )
        return False

    async def __aenter__(self) -> str:
        return self.__enter__()

    async def __aexit__(self, exc_type, exc, tb) -> bool:
        return self.__exit__(exc_type, exc, tb)


class trace_step:
    """Context manager for one step; ``as`` gives a dict to fill in.

    Keys read at exit: ``output``, ``tokens_input``, ``tokens_output``,
    ``tokens_cache_read``, ``tokens_cache_write``, ``model``, ``cost_usd`` (overrides
    the computed cost) and ``metadata``. The parent is whatever step is current.
    Exceptions are recorded on the step and re-raised unchanged.
    """

    __slots__ = (
        "name", "input_data", "model", "cost_per_input_token", "cost_per_output_token",
        "metadata", "_record", "_step_id", "_parent", "_start_ns", "_token", "_auto_run",
    )

    def __init__(
        self,
        name: str,
        input_data: Any = None,
        model: Optional[str] = None,
        cost_per_input_token: float = 0.0,
        cost_per_output_token: float = 0.0,
        metadata: Optional[dict] = None,
    ) -> None:
        self.name = name if type(name) is str and 0 < len(name) <= MAX_NAME else _clean_name(name)
        self.input_data = input_data
        self.model = model
        self.cost_per_input_token = cost_per_input_token
        self.cost_per_output_token = cost_per_output_token
        self.metadata = metadata

    # The two methods below are the per-step hot path (bench/client_overhead.py): events
    # are built positionally, in protocol field order, and globals are read once.

    def __enter__(self) -> dict:
        self._record = record = {
            "output": None, "tokens_input": 0, "tokens_output": 0, "model": self.model,
        }
        if switch.disabled:
            self._token = None
            return record
        parent = _current.get() or context._process_parent
        self._auto_run = None
        if parent is None:  # a step outside any run gets a run of its own
            self._auto_run = trace_run(self.name)
            self._auto_run.__enter__()
            parent = _current.get()
        self._parent = parent
        self._step_id = step_id = "%016x" % next(_step_numbers)
        self._start_ns = start_ns = _time_ns()
        input_data = self.input_data
        metadata = self.metadata
        runtime.emit(StepStart(
            parent.run_id, step_id, self.name, start_ns, parent.step_id, self.model,
            None if input_data is None else to_json(input_data),
            None if metadata is None else to_json(metadata),
        ))
        self._token = _current.set(Current(parent.run_id, step_id, parent.run, record))
        return record

    def __exit__(self, exc_type, exc, tb) -> bool:
        token = self._token
        if token is None:
            return False
        end_ns = _time_ns()
        _current.reset(token)
        record = self._record
        parent = self._parent
        if exc_type is None or exc_type is GeneratorExit:
            status = "ok"
            error_type = error_message = trace_text = None
        else:
            status = "error"
            error_type = exc_type.__name__
            error_message = _clip(_safe_str(exc))
            trace_text = _clip("".join(traceback_module.format_exception(exc_type, exc, tb)))
            if parent.run is not None:
                parent.run.errored = True
        tokens_input = record.get("tokens_input", 0)
        tokens_output = record.get("tokens_output", 0)
        cache_read = record.get("tokens_cache_read", 0)
        cache_write = record.get("tokens_cache_write", 0)
        # The common case in one test: four ints in 0 .. 2**63 - 1 (negative ones shift
        # to -1, too large ones to 1 or more); anything else is made safe by _count.
        if not (type(tokens_input) is type(tokens_output) is type(cache_read)
                is type(cache_write) is int) \
                or (tokens_input | tokens_output | cache_read | cache_write) >> 63:
            tokens_input, tokens_output = _count(tokens_input), _count(tokens_output)
            cache_read, cache_write = _count(cache_read), _count(cache_write)
        model = record.get("model") or self.model
        if model is not None and type(model) is not str:
            model = _safe_str(model)
        cost = record.get("cost_usd")
        if cost is not None:
            cost = _price(cost)
        elif tokens_input or tokens_output or cache_read or cache_write:
            cost = pricing.step_cost(
                model, tokens_input, tokens_output, cache_read, cache_write,
                self.cost_per_input_token, self.cost_per_output_token,
            )
        else:
            cost = 0.0
        output = record.get("output")
        metadata = record.get("metadata")
        runtime.emit(StepEnd(
            parent.run_id, self._step_id, self.name, self._start_ns, end_ns, parent.step_id,
            status, model,
            None if output is None else to_json(output),
            tokens_input, tokens_output, cache_read, cache_write, cost,
            error_type, error_message, trace_text,
            None if metadata is None else to_json(metadata),
        ))
        if self._auto_run is not None:
            self._auto_run.__exit__(exc_type, exc, tb)
        return False

    async def __aenter__(self) -> dict:
        return self.__enter__()

    async def __aexit__(self, exc_type, exc, tb) -> bool:
        return self.__exit__(exc_type, exc, tb)


MAX_NAME = wire.MAX_NAME_CHARS
MAX_ERROR_CHARS = 64 * 1024
"""Error messages and tracebacks are clipped to this, so one event always fits a frame."""


def _clean_name(name: Any) -> str:
    """A run or step name the protocol accepts: a non-empty str of at most 512 chars."""
    text = name if isinstance(name, str) else _safe_str(name)
    return text[:MAX_NAME] or "unnamed"


def _safe_str(value: Any) -> str:
    try:
        return str(value)
    except Exception:
        return f"<{type(value).__name__} with a broken __str__>"


def _clip(text: str) -> str:
    """Error text that always fits a frame and encodes: clipped, lone surrogates replaced."""
    text = text.encode("utf-8", "replace").decode("utf-8")
    if len(text) <= MAX_ERROR_CHARS:
        return text
    half = MAX_ERROR_CHARS // 2
    return f"{text[:half]}\n... [{len(text) - MAX_ERROR_CHARS} characters cut] ...\n{text[-half:]}"


def _count(value: Any) -> int:
    """A token count the user set, made safe: not a number or negative becomes 0, and one
    beyond what the daemon stores (2**63 - 1) becomes that, so one value never costs the
    batch that carries it."""
    try:
        return min(max(int(value or 0), 0), wire.INT64_MAX)
    except (TypeError, ValueError, OverflowError):
        return 0


def _price(value: Any) -> Optional[float]:
    """A cost the user set, made safe: not a number becomes unpriced, negative becomes 0."""
    try:
        cost = float(value)
    except (TypeError, ValueError):
        return None
    if cost != cost or cost == float("inf"):  # NaN or infinite: unpriced
        return None
    return max(cost, 0.0)


def current_step() -> dict:
    """The dict of the innermost step, to set tokens or output from inside a decorated
    function. Outside any step it returns a throwaway dict."""
    current = _current.get()
    if current is None or current.record is None:
        return {}
    return current.record
