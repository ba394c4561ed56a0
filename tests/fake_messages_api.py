"""A local stand-in for the Anthropic Messages API, for tests that drive the real SDK.

Point ``anthropic.Anthropic(base_url=server.url, api_key="test")`` (or the
ANTHROPIC_BASE_URL environment variable) at it: the SDK's own request and
stream-parsing code runs, and nothing reaches the internet.
"""

from __future__ import annotations

import contextlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SERVED_MODEL = "claude-haiku-4-5-20251001"
USAGE = {
    "input_tokens": 25,
    "output_tokens": 12,
    "cache_read_input_tokens": 1000,
    "cache_creation_input_tokens": 200,
    "cache_creation": {"ephemeral_5m_input_tokens": 200, "ephemeral_1h_input_tokens": 0},
}
# Haiku 4.5: $1 input, $5 output, $0.10 cache read, $1.25 5-minute cache write per MTok.
# Each token is priced once, at the price of its kind.
EXPECTED_COST = (25 * 1.0 + 12 * 5.0 + 1000 * 0.10 + 200 * 1.25) / 1_000_000


def _message(model: str, usage: dict) -> dict:
    return {
        "id": "msg_test_1",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [
            {"type": "text", "text": "Paris is the capital of France."},
            {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"city": "Paris"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": usage,
    }


def _stream_events(model: str, fail_midway: bool) -> list[tuple[str, dict]]:
    start = {**_message(model, {**USAGE, "output_tokens": 1}), "content": [],
             "stop_reason": None}
    events = [
        ("message_start", {"type": "message_start", "message": start}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("ping", {"type": "ping"}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "Paris is "}}),
    ]
    if fail_midway:
        return events + [("error", {"type": "error", "error": {
            "type": "overloaded_error", "message": "Overloaded"}})]
    return events + [
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "the capital."}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {
            "type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {}}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {
            "type": "input_json_delta", "partial_json": '{"city": "Pa'}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {
            "type": "input_json_delta", "partial_json": 'ris"}'}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        # Usage on message_delta is cumulative: 12 output tokens in all, not 1 + 12.
        ("message_delta", {"type": "message_delta",
                           "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                           "usage": {"output_tokens": 12}}),
        ("message_stop", {"type": "message_stop"}),
    ]


class _MessagesAPI(BaseHTTPRequestHandler):
    """POST /v1/messages. The requested model picks the behaviour:
    ``claude-overloaded`` answers 529, a model with ``unavailable`` in its name 404,
    ``claude-stream-fails`` breaks off a stream with an error event, ``claude-fast``
    reports fast-mode usage; others succeed. A model
    without ``haiku`` in its name is served as given, else as SERVED_MODEL."""

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(body)
        model = body["model"]
        served = SERVED_MODEL if "haiku" in model else model
        usage = {**USAGE, "speed": "fast"} if model == "claude-fast" else USAGE
        if model == "claude-overloaded":
            self._json(529, {"type": "error", "error": {
                "type": "overloaded_error", "message": "Overloaded"}})
        elif "unavailable" in model:
            self._json(404, {"type": "error", "error": {
                "type": "not_found_error", "message": f"model: {model}"}})
        elif body.get("stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("request-id", "req_stream_1")
            self.end_headers()
            for name, data in _stream_events(served, model == "claude-stream-fails"):
                self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
                self.wfile.flush()
        else:
            self._json(200, _message(served, usage))

    def _json(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", "req_test_1")
        self.end_headers()
        self.wfile.write(data)


@contextlib.contextmanager
def serve():
    """Run the fake API on a free port; yields the server (``url``, ``requests``)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _MessagesAPI)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
