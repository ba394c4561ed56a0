"""OTLP test helpers: a real OTLP/HTTP receiver (an aiohttp server in a thread that
decodes every request with the official opentelemetry-proto classes), and OTLP/JSON
parsing with protobuf's ``json_format``, which rejects unknown fields."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

from aiohttp import web
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2


def hex_ids_to_base64(data: dict) -> dict:
    """OTLP/JSON ids are hex; proto3 JSON (json_format) reads bytes as base64."""
    for resource_spans in data.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        value = span[key]
                        assert value == value.lower() and len(value) in (16, 32), value
                        span[key] = base64.b64encode(bytes.fromhex(value)).decode()
                for link in span.get("links", []):
                    for key in ("traceId", "spanId"):
                        link[key] = base64.b64encode(bytes.fromhex(link[key])).decode()
    return data


def parse_line(line: str) -> trace_pb2.TracesData:
    """One exported line as TracesData; fails on any field OTLP does not have."""
    return json_format.ParseDict(hex_ids_to_base64(json.loads(line)), trace_pb2.TracesData())


def spans_of(message) -> list[trace_pb2.Span]:
    return [span for resource_spans in message.resource_spans
            for scope_spans in resource_spans.scope_spans for span in scope_spans.spans]


def attributes(span_or_resource) -> dict:
    """Key -> Python value of an attribute list."""
    found = {}
    for item in span_or_resource.attributes:
        kind = item.value.WhichOneof("value")
        found[item.key] = getattr(item.value, kind) if kind else None
    return found


@dataclass
class Received:
    at: float
    status: int
    content_type: str
    encoding: str
    headers: dict
    spans: list = field(default_factory=list)


class OtlpReceiver:
    """An OTLP/HTTP traces endpoint on 127.0.0.1 that a test can take down, bring back
    (on the same port) and script: ``answers`` is a list of (status, headers) to give,
    in order, before it goes back to accepting."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.port = 0
        self.runner: Optional[web.AppRunner] = None
        self.answers: list[tuple[int, dict]] = []
        self.requests: list[Received] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/traces"

    def _call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    def up(self) -> "OtlpReceiver":
        self._call(self._up())
        return self

    async def _up(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/traces", self._traces)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    def down(self) -> None:
        """Stop listening: connections are refused until ``up`` again."""
        if self.runner is not None:
            self._call(self.runner.cleanup())
            self.runner = None

    def close(self) -> None:
        self.down()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    async def _traces(self, request: web.Request) -> web.Response:
        raw = await request.read()  # aiohttp has undone Content-Encoding: gzip
        record = Received(time.monotonic(), 200, request.content_type,
                          request.headers.get("Content-Encoding", ""), dict(request.headers))
        with self.lock:
            if self.answers:
                status, headers = self.answers.pop(0)
                record.status = status
                self.requests.append(record)
                return web.Response(status=status, headers=headers)
        message = trace_service_pb2.ExportTraceServiceRequest()
        if request.content_type == "application/json":
            json_format.ParseDict(hex_ids_to_base64(json.loads(raw)), message)
        else:
            message.ParseFromString(raw)
        record.spans = [span for resource_spans in message.resource_spans
                        for scope_spans in resource_spans.scope_spans
                        for span in scope_spans.spans]
        record.resources = [attributes(rs.resource) for rs in message.resource_spans]
        with self.lock:
            self.requests.append(record)
        return web.Response(body=trace_service_pb2.ExportTraceServiceResponse()
                            .SerializeToString(), content_type="application/x-protobuf")

    def spans(self) -> list[trace_pb2.Span]:
        with self.lock:
            return [span for record in self.requests for span in record.spans]


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data)
