"""OpenTelemetry interop: TraceForge runs and steps as OTLP traces and spans, both ways.

- ``attributes``: every attribute name, in the GenAI, OpenInference and TraceForge
  vocabularies, defined once;
- ``values``: attribute values and ids between Python and OTLP, and the OTLP/JSON rules;
- ``encode``: stored steps as OTLP spans (the export and the forwarder);
- ``decode``: OTLP spans as the protocol's events (``POST /v1/traces``);
- ``jobs``: the export and forwarding reads, run in reader processes;
- ``receiver``: submits decoded spans through the Store and waits for their commit;
- ``forwarder``: sends every ended step to an OTLP/HTTP endpoint, with a durable cursor.

Imports point one way: this package may use ``storage``; ``http`` and the lifecycle use
it; ``storage`` and ``ingest`` never import it. The protobuf classes come from the
optional ``opentelemetry-proto`` (``pip install 'traceforge[otlp]'``): only this module
and ``attributes`` import without it, so the rest is imported where it is used, after
``require()``.
"""

from __future__ import annotations

INSTALL_HINT = "pip install 'traceforge[otlp]'"
MISSING = (
    "OpenTelemetry support needs the opentelemetry-proto package, which is not "
    f"installed: {INSTALL_HINT}"
)


class OtlpMissing(Exception):
    """opentelemetry-proto is not installed; the message says what to install."""

    def __init__(self) -> None:
        super().__init__(MISSING)


def available() -> bool:
    """True if the opentelemetry-proto classes (and protobuf under them) import."""
    try:
        import opentelemetry.proto.collector.trace.v1.trace_service_pb2  # noqa: F401
    except ImportError:
        return False
    return True


def require() -> None:
    """Raise ``OtlpMissing`` unless opentelemetry-proto is installed."""
    if not available():
        raise OtlpMissing()
