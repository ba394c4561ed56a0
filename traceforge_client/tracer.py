"""trace_run, trace_step and trace_step_decorator: the seed's API on contextvars.

Entering a step costs one id, one clock read, one small event on a deque and one
ContextVar set; serialising and sending happen on the sender thread.
"""

from __future__ import annotations

import functools
import inspect
import time
import traceback as traceback_module
from typing import Any, Callable, Optional

import msgspec

from . import pricing, protocol
from .config import switch
from .context import Current, RunState, _current, get_current
from .ids import new_run_id, new_step_id
from .transport import emit


def _fallback(value: Any) -> Any:
    return repr(value)


_json_encoder = msgspec.json.Encoder(enc_hook=_fallback)


def to_json(value: Any) -> Optional[str]:
    """``value`` as JSON text for the wire, never raising; None stays None."""
    if value is None:
        return None
    try:
        data = _json_encoder.encode(value)
    except Exception:  # e.g. dict keys JSON cannot hold, or a broken __repr__
        try:
            data = _json_encoder.encode(repr(value))
        except Exception:
            data = b'"<unserialisable>"'
    if len(data) > protocol.MAX_FIELD_BYTES:
        preview = data[: protocol.MAX_FIELD_BYTES // 4].decode("utf-8", "ignore")
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
        self.name = name
        self.metadata = metadata

    def __enter__(self) -> str:
        self.run_id = run_id = new_run_id()
        self._state = RunState(run_id)
        self._start_ns = time.time_ns()
        self._token = _current.set(Current(run_id, None, self._state, None))
        if not switch.disabled:
            emit(
                protocol.RunStart(
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
            emit(
                protocol.RunEnd(
                    run_id=self.run_id,
                    name=self.name,
                    start_ns=self._start_ns,
                    end_ns=time.time_ns(),
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
        "metadata", "record", "_step_id", "_parent", "_start_ns", "_token", "_auto_run",
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
        self.name = name
        self.input_data = input_data
        self.model = model
        self.cost_per_input_token = cost_per_input_token
        self.cost_per_output_token = cost_per_output_token
        self.metadata = metadata

    def __enter__(self) -> dict:
        self.record = record = {
            "output": None, "tokens_input": 0, "tokens_output": 0, "model": self.model,
        }
        if switch.disabled:
            self._token = None
            return record
        parent = get_current()
        self._auto_run = None
        if parent is None:  # a step outside any run gets a run of its own, as in the seed
            self._auto_run = trace_run(self.name)
            self._auto_run.__enter__()
            parent = _current.get()
        self._parent = parent
        self._step_id = step_id = new_step_id()
        self._start_ns = start_ns = time.time_ns()
        emit(
            protocol.StepStart(
                run_id=parent.run_id,
                step_id=step_id,
                name=self.name,
                start_ns=start_ns,
                parent_step_id=parent.step_id,
                model=self.model,
                input_json=to_json(self.input_data),
                metadata_json=to_json(self.metadata),
            )
        )
        self._token = _current.set(Current(parent.run_id, step_id, parent.run, record))
        return record

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self._token is None:
            return False
        end_ns = time.time_ns()
        _current.reset(self._token)
        record = self.record
        parent = self._parent
        status = "ok"
        error_type = error_message = trace_text = None
        if exc_type is not None and exc_type is not GeneratorExit:
            status = "error"
            error_type = exc_type.__name__
            error_message = str(exc)
            trace_text = "".join(traceback_module.format_exception(exc_type, exc, tb))
            if parent.run is not None:
                parent.run.errored = True
        model = record.get("model") or self.model
        tokens_input = _count(record.get("tokens_input"))
        tokens_output = _count(record.get("tokens_output"))
        cache_read = _count(record.get("tokens_cache_read"))
        cache_write = _count(record.get("tokens_cache_write"))
        cost = record.get("cost_usd")
        if cost is None:
            cost = pricing.step_cost(
                model, tokens_input, tokens_output, cache_read, cache_write,
                self.cost_per_input_token, self.cost_per_output_token,
            )
        metadata = record.get("metadata")
        emit(
            protocol.StepEnd(
                run_id=parent.run_id,
                step_id=self._step_id,
                name=self.name,
                start_ns=self._start_ns,
                end_ns=end_ns,
                parent_step_id=parent.step_id,
                status=status,
                model=model,
                output_json=to_json(record.get("output")),
                tokens_input=tokens_input,
                tokens_output=tokens_output,
                tokens_cache_read=cache_read,
                tokens_cache_write=cache_write,
                cost_usd=None if cost is None else max(float(cost), 0.0),
                error_type=error_type,
                error_message=error_message,
                traceback=trace_text,
                metadata_json=to_json(metadata) if metadata is not None else None,
            )
        )
        if self._auto_run is not None:
            self._auto_run.__exit__(exc_type, exc, tb)
        return False

    async def __aenter__(self) -> dict:
        return self.__enter__()

    async def __aexit__(self, exc_type, exc, tb) -> bool:
        return self.__exit__(exc_type, exc, tb)


def _count(value: Any) -> int:
    try:
        return max(int(value or 0), 0)
    except (TypeError, ValueError):
        return 0


def current_step() -> dict:
    """The dict of the innermost step, to set tokens or output from inside a decorated
    function. Outside any step it returns a throwaway dict."""
    current = _current.get()
    if current is None or current.record is None:
        return {}
    return current.record


def trace_step_decorator(
    step_name: Optional[str] | Callable = None,
    model: Optional[str] = None,
    cost_per_input_token: float = 0.0,
    cost_per_output_token: float = 0.0,
    metadata: Optional[dict] = None,
    capture_input: bool = True,
    capture_output: bool = True,
):
    """Trace every call of a function (plain or ``async def``) as a step.

    The step's input is the call's arguments by parameter name and its output is the
    return value. For ``async def`` the awaited coroutine is timed, not the call that
    creates it. Usable bare (``@trace_step_decorator``) or with arguments.
    """
    if callable(step_name):  # used bare: @trace_step_decorator
        return trace_step_decorator()(step_name)

    def decorate(fn: Callable) -> Callable:
        name = step_name or fn.__name__
        try:
            parameters = list(inspect.signature(fn).parameters.values())
        except (TypeError, ValueError):
            parameters = []
        positional = [
            p.name for p in parameters
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        var_positional = next((p.name for p in parameters if p.kind is p.VAR_POSITIONAL), None)

        def arguments(args: tuple, kwargs: dict) -> Optional[dict]:
            if not capture_input:
                return None
            bound = dict(zip(positional, args))
            if len(args) > len(positional):
                bound[var_positional or "args"] = list(args[len(positional):])
            bound.update(kwargs)
            bound.pop("self", None)
            bound.pop("cls", None)
            return bound

        def make_step(args: tuple, kwargs: dict) -> trace_step:
            return trace_step(
                name,
                input_data=arguments(args, kwargs),
                model=model,
                cost_per_input_token=cost_per_input_token,
                cost_per_output_token=cost_per_output_token,
                metadata=metadata,
            )

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args, **kwargs):
                with make_step(args, kwargs) as record:
                    result = await fn(*args, **kwargs)
                    if capture_output:
                        record["output"] = result
                    return result

            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with make_step(args, kwargs) as record:
                result = fn(*args, **kwargs)
                if capture_output:
                    record["output"] = result
                return result

        return wrapper

    return decorate
