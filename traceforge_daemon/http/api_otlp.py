"""``POST /v1/traces``: OTLP/HTTP ingest, for apps instrumented with OpenTelemetry.

Point an exporter at the daemon's HTTP address (``OTEL_EXPORTER_OTLP_ENDPOINT=
http://127.0.0.1:8742``). It takes protobuf (``application/x-protobuf``) and OTLP/JSON
(``application/json``), gzip-compressed or not, up to the ingest's ``max_frame_bytes``
once decompressed. The answers are the OTLP/HTTP specification's, not the API's JSON
errors: 200 with an ``ExportTraceServiceResponse`` (a partial success counts the
rejected spans and says why), 400 for a payload that does not decode, 413 past the
size limit, 415 for another content type, 503 while the daemon stops (retryable), each
body in the request's own encoding. The app's
middlewares (the token beyond loopback, and whatever else guards the API) apply here
as to every route.
"""

from __future__ import annotations

import logging
from typing import Optional

import msgspec
from aiohttp import web

from .bodies import TooLarge, Unreadable, read_body
from .guard import SETTINGS
from .reads import STORE

logger = logging.getLogger("traceforge.daemon")

PATH = "/v1/traces"
PROTOBUF_TYPES = frozenset({"application/x-protobuf", "application/protobuf"})
JSON_TYPE = "application/json"

class _Slot:
    """Holds the ``otlp.receiver.Receiver``, made on the first request: it needs
    opentelemetry-proto, which a daemon that never gets OTLP need not have."""

    receiver = None


RECEIVER = web.AppKey("otlp_receiver", _Slot)


def receiver_health(app: web.Application) -> dict:
    receiver = app[RECEIVER].receiver
    if receiver is None:
        return {"requests": 0, "spans_accepted": 0, "spans_rejected": 0}
    return receiver.health()


def _answer(status: int, body: bytes, json: bool, retry_after: Optional[int] = None,
            ) -> web.Response:
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    return web.Response(status=status, body=body, headers=headers,
                        content_type=JSON_TYPE if json else "application/x-protobuf")


async def traces(request: web.Request) -> web.Response:
    media = request.content_type
    json = media == JSON_TYPE
    if not json and media not in PROTOBUF_TYPES:
        message = (f"Content-Type {media!r} is not OTLP/HTTP: send application/x-protobuf "
                   "or application/json")
        return web.json_response({"code": 3, "message": message}, status=415)
    from ..otlp import answers
    from ..otlp.receiver import Receiver
    from ..storage.commits import NotStored
    from ..otlp.values import from_json_dict
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

    limit = request.app[SETTINGS].max_frame_bytes
    try:
        body = await read_body(request, limit)
    except TooLarge:
        return _answer(413, answers.status(answers.INVALID_ARGUMENT, (
            f"the request is over {limit} bytes decompressed; send smaller batches"), json),
            json)
    except Unreadable as exc:
        answer = _answer(400, answers.status(answers.INVALID_ARGUMENT, (
            f"the body could not be read (is its Content-Encoding right?): {exc}"), json), json)
        answer.force_close()
        return answer
    message = trace_service_pb2.ExportTraceServiceRequest()
    try:
        if json:
            from_json_dict(msgspec.json.decode(body or b"{}"), message)
        else:
            message.ParseFromString(body)
    except Exception as exc:  # protobuf's DecodeError/ParseError, msgspec's, ValueError
        what = "OTLP/JSON" if json else "an OTLP protobuf ExportTraceServiceRequest"
        return _answer(400, answers.status(
            answers.INVALID_ARGUMENT, f"the body is not {what}: {type(exc).__name__}", json),
            json)
    slot = request.app[RECEIVER]
    if slot.receiver is None:
        slot.receiver = Receiver(request.app[STORE])
    receiver = slot.receiver
    try:
        rejected, why = await receiver.accept(message)
    except NotStored as exc:
        if not exc.retryable:  # SQLite refused these spans' rows: sending them again cannot help
            return _answer(400, answers.status(answers.INVALID_ARGUMENT, exc.message, json),
                           json)
        retry_after = max(1, (exc.retry_after_ms or 5000) // 1000)
        return _answer(503, answers.status(answers.UNAVAILABLE, exc.message, json), json,
                       retry_after=retry_after)
    if rejected:
        logger.info("OTLP ingest rejected %d spans: %s", rejected, why)
    return _answer(200, answers.success(rejected, why, json), json)


def setup(app: web.Application) -> None:
    app[RECEIVER] = _Slot()
    app.router.add_post(PATH, traces)
