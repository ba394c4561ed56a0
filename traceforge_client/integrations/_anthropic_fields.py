"""How one Anthropic Messages call becomes a step's fields: request to input, Message
to output, tokens, cost and metadata. Pure functions over plain data; none raises
into the caller."""

from __future__ import annotations

import logging
from typing import Any, Optional

from .. import pricing

logger = logging.getLogger("traceforge")

_TRANSPORT_OPTIONS = frozenset({"extra_headers", "extra_query", "extra_body", "timeout"})


def request_input(kwargs: dict) -> dict:
    """The call's arguments as JSON-ready data: the prompt and every parameter."""
    try:
        return {
            key: plain(value) for key, value in kwargs.items()
            if key not in _TRANSPORT_OPTIONS and not _omitted(value)
        }
    except Exception:
        logger.debug("traceforge: could not capture a request", exc_info=True)
        return {"model": kwargs.get("model")} if isinstance(kwargs.get("model"), str) else {}


def record_message(record: dict, request: dict, message: Any, *, stream: bool,
                   request_id: Optional[str] = None, extra: Optional[dict] = None) -> None:
    """Fill a step's record from a Message (an SDK object or plain data). Never raises."""
    try:
        message = plain(message)
        if not isinstance(message, dict):
            message = {}
        usage = message.get("usage") if isinstance(message.get("usage"), dict) else {}
        requested = request.get("model")
        served = message.get("model")
        model = served or requested
        tokens_input = _int(usage.get("input_tokens"))
        tokens_output = _int(usage.get("output_tokens"))
        cache_read = _int(usage.get("cache_read_input_tokens"))
        cache_write = _int(usage.get("cache_creation_input_tokens"))
        record.update(
            model=model,
            tokens_input=tokens_input,
            tokens_output=tokens_output,
            tokens_cache_read=cache_read,
            tokens_cache_write=cache_write,
            output=_output(message.get("content") or []),
        )
        metadata = {
            "provider": "anthropic",
            "stream": stream,
            "model_requested": requested,
            "model_served": served,
            "message_id": message.get("id"),
            "stop_reason": message.get("stop_reason"),
            "stop_sequence": message.get("stop_sequence"),
            "usage": usage,
            "request_id": request_id,
            "prices_checked": pricing.PRICES_CHECKED,
            **(extra or {}),
        }
        if usage.get("speed") == "fast":
            # Fast mode bills at a premium the price table does not hold: say "unpriced"
            # rather than report the standard price.
            metadata["unpriced_reason"] = "fast mode is not in the price table"
            record["cost_usd"] = pricing.UNPRICED
        else:
            one_hour = _int((usage.get("cache_creation") or {}).get("ephemeral_1h_input_tokens"))
            cost = pricing.step_cost(model, tokens_input, tokens_output, cache_read, cache_write,
                                     tokens_cache_write_1h=one_hour)
            if cost is not None:
                record["cost_usd"] = cost
        record["metadata"] = {k: v for k, v in metadata.items() if v is not None}
    except Exception:
        logger.debug("traceforge: could not record an Anthropic response", exc_info=True)


def record_error(record: dict, request: dict, exc: BaseException) -> None:
    """Details of a failed call for the step's metadata; the tracer records the error."""
    metadata: dict = {"provider": "anthropic", "model_requested": request.get("model")}
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        metadata["status_code"] = status
    request_id = getattr(exc, "request_id", None)
    if isinstance(request_id, str):
        metadata["request_id"] = request_id
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        metadata["error_type"] = body["error"].get("type")
    record["metadata"] = metadata


def _output(content: list) -> dict:
    """The response as a reader wants it: the text, then any tool calls and thinking."""
    text, tool_calls, thinking, other = [], [], [], []
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            text.append(block.get("text") or "")
        elif kind in ("tool_use", "server_tool_use"):
            tool_calls.append({k: block.get(k) for k in ("id", "name", "input")})
        elif kind == "thinking":
            thinking.append(block.get("thinking") or "")
        else:
            other.append(block)
    output: dict = {"text": "".join(text)}
    if tool_calls:
        output["tool_calls"] = tool_calls
    if thinking:
        output["thinking"] = "".join(thinking)
    if other:
        output["other_blocks"] = other
    return output


def plain(value: Any, depth: int = 0) -> Any:
    """SDK objects as JSON-ready data. Iterators are not read: the SDK needs them."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if depth > 32:
        return repr(value)
    if isinstance(value, dict):
        return {str(k): plain(v, depth + 1) for k, v in value.items() if not _omitted(v)}
    if isinstance(value, (list, tuple)):
        return [plain(v, depth + 1) for v in value]
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        try:
            return dump(mode="json", exclude_none=True)
        except Exception:
            pass
    if isinstance(value, type):
        return value.__name__
    if hasattr(value, "__iter__") and not isinstance(value, (bytes, bytearray)):
        return f"<{type(value).__name__}: not captured, it can be read only once>"
    return repr(value)


def _omitted(value: Any) -> bool:
    return type(value).__name__ in ("NotGiven", "Omit")


def value_of(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def is_api_error(exc: BaseException) -> bool:
    """Raised by the SDK (an API or connection error), not by the code reading the stream."""
    return type(exc).__module__.split(".", 1)[0] in ("anthropic", "httpx", "httpx2", "httpcore")


def response_header(stream: Any, name: str) -> Optional[str]:
    try:
        value = stream.response.headers.get(name)
    except Exception:
        return None
    return value if isinstance(value, str) else None
