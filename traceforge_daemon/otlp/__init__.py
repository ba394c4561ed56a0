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
it; ``storage`` and ``ingest`` never import it. The protobuf classes come from
``opentelemetry-proto``, a dependency of TraceForge; the modules that use them are
imported where they are first needed, so a daemon that never speaks OTLP, and its reader
processes, do not load protobuf.
"""
