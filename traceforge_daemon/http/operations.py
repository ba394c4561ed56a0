"""Each API route declared once: its path, what it reads and what it answers.

``ApiRoutes`` is a route table whose entries carry their own description. A handler is
declared with the Struct of its parameters (path and query, from ``schemas``), of its
JSON body if it takes one, and of its answer (from ``responses``); it is called with
those already parsed and checked::

    @routes.get("/api/runs", summary="List runs", params=RunListParams, answer=RunList,
                errors=(503,))
    async def get_runs(request: web.Request, params: RunListParams) -> web.Response:
        \"\"\"Runs with totals over their steps, newest first.\"\"\"
        return await read_json(request, jobs.runs_page, params.run_filter())

The handler's docstring is the operation's description. ``openapi`` builds the
description from these same entries; app.py serves them with
``app.router.add_routes(routes)``.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterator, NamedTuple, Optional, Union

from aiohttp import web

from .params import Input, fields, parse_body, parse_query
from .schemas import NoParams

Handler = Callable[..., Awaitable[web.StreamResponse]]


class Stream(NamedTuple):
    """An answer that is not one JSON document: its media type, in words."""

    media_type: str
    description: str


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    params: Optional[type[Input]]
    """Passed to the handler when declared; without it any query parameter is refused."""
    body: Optional[type[Input]]
    answer: Union[type, Stream]
    errors: tuple[int, ...]
    """Statuses besides 200; 400 always (every route checks its query string), 413 with
    a body."""
    events_body: Optional[type] = None
    """A body of events (``POST /api/ingest``): documented from this Struct, but read by
    the handler itself, which holds it to the socket protocol's rules and answers with
    the protocol's error codes."""

    @property
    def description(self) -> str:
        """The handler's docstring, its lines joined."""
        return " ".join((inspect.getdoc(self.handler) or "").split())

    async def serve(self, request: web.Request) -> web.StreamResponse:
        inputs: list[Any] = []
        params = parse_query(request, self.params or NoParams)
        if self.params is not None:
            inputs.append(params)
        if self.body is not None:
            inputs.append(await parse_body(request, self.body))
        return await self.handler(request, *inputs)


class ApiRoutes:
    """A route table of Operations for one tag of the API; iterate it for aiohttp."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.operations: list[Operation] = []

    def get(self, path: str, **declared: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **declared)

    def post(self, path: str, **declared: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **declared)

    def route(self, method: str, path: str, *, summary: str, answer: Union[type, Stream],
              params: Optional[type[Input]] = None, body: Optional[type[Input]] = None,
              events_body: Optional[type] = None,
              errors: tuple[int, ...] = ()) -> Callable[[Handler], Handler]:
        # Reading the Structs now finds a mistake in one at import, not at a first request.
        if body is not None:
            fields(body)
        missing = set(re.findall(r"{(\w+)}", path)) - set(fields(params or NoParams))
        if missing:
            raise TypeError(f"{path}: {params} has no field for {sorted(missing)}")
        statuses = {400, *errors} | ({413} if body is not None or events_body else set())

        def register(handler: Handler) -> Handler:
            self.operations.append(Operation(
                method, path, handler, summary, self.tag, params, body, answer,
                tuple(sorted(statuses)), events_body,
            ))
            return handler

        return register

    def __iter__(self) -> Iterator[web.RouteDef]:
        for operation in self.operations:
            yield web.route(operation.method, operation.path, operation.serve)
