"""Reading a request body that carries events: OTLP ingest and ``POST /api/ingest``.

These take bodies as large as an ingest frame (``--max-frame-bytes``), beyond the API's
1 MiB for everything else, so they read the stream themselves instead of
``request.read()``. The limit holds for the body once decompressed (aiohttp undoes
``Content-Encoding: gzip`` or ``deflate`` as it reads), so a small compressed body
cannot inflate without bound.
"""

from __future__ import annotations

import zlib

from aiohttp import web


class TooLarge(Exception):
    """The body is over the limit."""


class Unreadable(Exception):
    """The body cannot be read as sent (a broken compressed stream, a cut connection)."""


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, decompressed, at most ``limit`` bytes; raises TooLarge or
    Unreadable. After Unreadable the connection must be closed once answered."""
    parts, size = [], 0
    try:
        while True:
            chunk = await request.content.readany()
            if not chunk:
                return b"".join(parts)
            size += len(chunk)
            if size > limit:
                raise TooLarge()
            parts.append(chunk)
    except (web.RequestPayloadError, zlib.error, ValueError, EOFError) as exc:
        # The rest cannot be read either: end it here (aiohttp would try to read it out
        # after the answer).
        request.content.feed_eof()
        raise Unreadable(type(exc).__name__) from None
