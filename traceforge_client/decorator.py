"""trace_step_decorator: trace every call of a function, plain or ``async def``, as a step.

Kept apart from the compiled tracer (``hot_path.py``) so that its wrappers stay plain
Python functions: ``inspect.iscoroutinefunction`` and frameworks that look at a
wrapper's signature see exactly what they would see on the undecorated function.
"""

from __future__ import annotations

import functools
import inspect
from typing import Callable, Optional

from .tracer import trace_step


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
