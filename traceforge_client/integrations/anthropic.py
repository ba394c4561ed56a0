"""Trace the Anthropic SDK's Messages API calls as TraceForge steps.

    import anthropic
    from traceforge_client.integrations.anthropic import instrument

    client = instrument(anthropic.Anthropic())        # or anthropic.AsyncAnthropic()
    with trace_run("chat"):
        client.messages.create(model="claude-haiku-4-5", max_tokens=256, messages=[...])

Every ``messages.create`` (plain or ``stream=True``) and ``messages.stream`` of that
client, and of clients made from it with ``with_options``/``copy``, becomes a step
under whatever step is current. A step records the request (prompt and parameters)
as input, the response text and tool calls as output, the model requested and
served, the four kinds of token, the stop reason and the cost. API errors are
recorded on the step and re-raised unchanged.

A streamed call's step lasts until the stream is read to the end or closed, but it
is never the *current* step: code that runs between chunks is not inside the call.

Not traced: ``messages.with_raw_response``/``with_streaming_response``, ``beta``
and batches. This module does not import ``anthropic``, so it costs nothing when
the SDK is absent.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import json
import logging
import time
from typing import Any, Optional

from ..tracer import trace_step
from . import _anthropic_fields as fields

logger = logging.getLogger("traceforge")

CREATE_STEP = "anthropic.messages.create"
STREAM_STEP = "anthropic.messages.stream"


def instrument(client: Any) -> Any:
    """Trace ``client``'s Messages API calls (sync or async client); returns ``client``.

    Calling it again on the same client changes nothing.
    """
    messages = client.messages
    if getattr(messages.create, "_traceforge_original", None) is not None:
        return client
    # create() is wrapped by a sync decorator in the SDK: look through it
    is_async = inspect.iscoroutinefunction(inspect.unwrap(messages.create)) or type(
        messages).__name__.startswith("Async")
    messages.create = (_async_create if is_async else _sync_create)(messages.create)
    messages.stream = (_async_stream if is_async else _sync_stream)(messages.stream)
    for name in ("with_options", "copy"):
        original = getattr(client, name, None)
        if callable(original):
            setattr(client, name, _instrumenting(original))
    return client


def _instrumenting(make_client):
    @functools.wraps(make_client)
    def wrapper(*args, **kwargs):
        return instrument(make_client(*args, **kwargs))

    return wrapper


# ---- the wrapped methods ----


def _sync_create(original):
    @functools.wraps(original)
    def create(*args, **kwargs):
        request = fields.request_input(kwargs)
        if kwargs.get("stream") is True:
            call = _StreamCall(CREATE_STEP, request)
            try:
                stream = original(*args, **kwargs)
            except BaseException as exc:
                call.finish(exc)
                raise
            call.request_id = fields.response_header(stream, "request-id")
            return _TracedStream(stream, call)
        with trace_step(CREATE_STEP, input_data=request, model=request.get("model")) as record:
            try:
                message = original(*args, **kwargs)
            except Exception as exc:
                fields.record_error(record, request, exc)
                raise
            fields.record_message(record, request, message, stream=False,
                                  request_id=getattr(message, "_request_id", None))
            return message

    create._traceforge_original = original
    return create


def _async_create(original):
    @functools.wraps(original)
    async def create(*args, **kwargs):
        request = fields.request_input(kwargs)
        if kwargs.get("stream") is True:
            call = _StreamCall(CREATE_STEP, request)
            try:
                stream = await original(*args, **kwargs)
            except BaseException as exc:
                call.finish(exc)
                raise
            call.request_id = fields.response_header(stream, "request-id")
            return _TracedAsyncStream(stream, call)
        with trace_step(CREATE_STEP, input_data=request, model=request.get("model")) as record:
            try:
                message = await original(*args, **kwargs)
            except Exception as exc:
                fields.record_error(record, request, exc)
                raise
            fields.record_message(record, request, message, stream=False,
                                  request_id=getattr(message, "_request_id", None))
            return message

    create._traceforge_original = original
    return create


def _sync_stream(original):
    @functools.wraps(original)
    def stream(*args, **kwargs):
        return _TracedStreamManager(original(*args, **kwargs), fields.request_input(kwargs))

    stream._traceforge_original = original
    return stream


def _async_stream(original):
    @functools.wraps(original)
    def stream(*args, **kwargs):
        return _TracedAsyncStreamManager(original(*args, **kwargs), fields.request_input(kwargs))

    stream._traceforge_original = original
    return stream


# ---- streams ----


class _DetachedStep:
    """A trace_step entered and exited in a private copy of the caller's context, so it
    nests under the caller's step without becoming the current step itself."""

    def __init__(self, name: str, request: dict) -> None:
        self._context = contextvars.copy_context()
        self._step = trace_step(name, input_data=request, model=request.get("model"))
        self.record = self._context.run(self._step.__enter__)

    def exit(self, exc: Optional[BaseException]) -> None:
        exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else (None, None, None)
        self._context.run(self._step.__exit__, *exc_info)


_DELTAS = (  # delta type, its field, the block key it extends
    ("text_delta", "text", "text"),
    ("input_json_delta", "partial_json", "_json"),
    ("thinking_delta", "thinking", "thinking"),
)


class _StreamCall:
    """One streamed call: its step, and the message rebuilt from the stream's events."""

    def __init__(self, step_name: str, request: dict) -> None:
        self.request = request
        self.request_id: Optional[str] = None
        self.started = time.monotonic()
        self.first_token_at: Optional[float] = None
        self.message: dict = {}
        self.usage: dict = {}
        self.blocks: dict[int, dict] = {}
        self.done = False
        self.step = _DetachedStep(step_name, request)

    def observe(self, event: Any) -> None:
        try:
            self._accumulate(event)
        except Exception:  # a surprising event must not break the user's stream
            logger.debug("traceforge: could not read a stream event", exc_info=True)

    def _accumulate(self, event: Any) -> None:
        value_of, plain = fields.value_of, fields.plain
        kind = value_of(event, "type")
        if kind == "message_start":
            message = plain(value_of(event, "message")) or {}
            self.message.update(id=message.get("id"), model=message.get("model"))
            self._add_usage(message.get("usage"))
        elif kind == "content_block_start":
            block = plain(value_of(event, "content_block")) or {}
            self.blocks[value_of(event, "index")] = dict(block)
        elif kind == "content_block_delta":
            if self.first_token_at is None:
                self.first_token_at = time.monotonic()
            block = self.blocks.setdefault(value_of(event, "index"), {})
            delta = value_of(event, "delta")
            for delta_type, key, into in _DELTAS:
                if value_of(delta, "type") == delta_type:
                    block[into] = block.get(into, "") + (value_of(delta, key) or "")
        elif kind == "message_delta":
            delta = plain(value_of(event, "delta")) or {}
            self.message["stop_reason"] = delta.get("stop_reason")
            self.message["stop_sequence"] = delta.get("stop_sequence")
            self._add_usage(plain(value_of(event, "usage")))

    def _add_usage(self, usage: Any) -> None:
        # message_delta counts are running totals: they replace, never add to, earlier ones
        if isinstance(usage, dict):
            self.usage.update({k: v for k, v in usage.items() if v is not None})

    def finish(self, exc: Optional[BaseException] = None, *, complete: bool = True,
               final_message: Optional[dict] = None) -> None:
        if self.done:
            return
        self.done = True
        interrupted_by = None
        if exc is not None and not fields.is_api_error(exc):
            # The user's code failed while the stream was open; the call itself did not.
            interrupted_by, exc = type(exc).__name__, None
        try:
            if exc is not None:
                fields.record_error(self.step.record, self.request, exc)
            else:
                message = final_message or self._rebuilt_message()
                extra = {"complete": complete, "interrupted_by": interrupted_by}
                if self.first_token_at is not None:
                    extra["time_to_first_token_ms"] = round(
                        (self.first_token_at - self.started) * 1000, 1)
                fields.record_message(self.step.record, self.request, message, stream=True,
                                      request_id=self.request_id, extra=extra)
        except Exception:
            logger.debug("traceforge: could not record a stream", exc_info=True)
        self.step.exit(exc)

    def _rebuilt_message(self) -> dict:
        content = []
        for _, block in sorted(self.blocks.items(), key=lambda item: item[0] or 0):
            block = dict(block)
            partial_json = block.pop("_json", None)
            if partial_json is not None:
                try:
                    block["input"] = json.loads(partial_json)
                except ValueError:
                    block["input"] = partial_json
            content.append(block)
        return {**self.message, "content": content, "usage": self.usage}


class _TracedStream:
    """What ``create(stream=True)`` returns: the SDK's stream, watched as it is read."""

    def __init__(self, stream: Any, call: _StreamCall) -> None:
        self._stream = stream
        self._call = call
        self._iterator = None

    def __iter__(self):
        return self

    def __next__(self):
        if self._iterator is None:
            self._iterator = iter(self._stream)
        try:
            event = next(self._iterator)
        except StopIteration:
            self._call.finish()
            raise
        except BaseException as exc:
            self._call.finish(exc)
            raise
        self._call.observe(event)
        return event

    def close(self) -> None:
        self._call.finish(complete=False)
        self._stream.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._call.finish(exc, complete=False)  # a no-op if the stream was read to the end
        self._stream.close()

    def __getattr__(self, name: str) -> Any:
        stream = self.__dict__.get("_stream")
        if stream is None:
            raise AttributeError(name)
        return getattr(stream, name)

    def __del__(self) -> None:
        call = self.__dict__.get("_call")
        if call is not None and not call.done:
            try:
                call.finish(complete=False)
            except Exception:
                pass


class _TracedAsyncStream(_TracedStream):
    """What the async client's ``create(stream=True)`` returns."""

    def __aiter__(self):
        return self

    async def __anext__(self):
        if self._iterator is None:
            self._iterator = self._stream.__aiter__()
        try:
            event = await self._iterator.__anext__()
        except StopAsyncIteration:
            self._call.finish()
            raise
        except BaseException as exc:
            self._call.finish(exc)
            raise
        self._call.observe(event)
        return event

    async def close(self) -> None:
        self._call.finish(complete=False)
        await self._stream.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:
        self._call.finish(exc, complete=False)
        await self._stream.close()


class _TracedStreamManager:
    """What ``messages.stream()`` returns: the step runs from ``with`` to its end, and the
    SDK's own accumulated message supplies the output and usage."""

    def __init__(self, manager: Any, request: dict) -> None:
        self._manager = manager
        self._request = request
        self._call: Optional[_StreamCall] = None
        self._stream: Any = None

    def _begin(self) -> None:
        self._call = _StreamCall(STREAM_STEP, self._request)

    def _end(self, exc: Optional[BaseException]) -> None:
        call = self._call
        if call is None:
            return
        call.request_id = fields.response_header(self._stream, "request-id")
        snapshot = None
        try:
            snapshot = fields.plain(self._stream.current_message_snapshot)
        except Exception:  # nothing arrived before the block ended
            pass
        complete = bool(snapshot and snapshot.get("stop_reason"))
        call.finish(exc, complete=complete, final_message=snapshot)

    def __enter__(self):
        self._begin()
        try:
            self._stream = self._manager.__enter__()
        except BaseException as exc:
            self._call.finish(exc)
            raise
        return self._stream

    def __exit__(self, exc_type, exc, tb):
        try:
            return self._manager.__exit__(exc_type, exc, tb)
        finally:
            self._end(exc)

    def __getattr__(self, name: str) -> Any:
        manager = self.__dict__.get("_manager")
        if manager is None:
            raise AttributeError(name)
        return getattr(manager, name)


class _TracedAsyncStreamManager(_TracedStreamManager):
    async def __aenter__(self):
        self._begin()
        try:
            self._stream = await self._manager.__aenter__()
        except BaseException as exc:
            self._call.finish(exc)
            raise
        return self._stream

    async def __aexit__(self, exc_type, exc, tb):
        try:
            return await self._manager.__aexit__(exc_type, exc, tb)
        finally:
            self._end(exc)
