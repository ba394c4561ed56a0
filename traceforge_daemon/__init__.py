"""The TraceForge daemon: collects events from traced processes into one SQLite database
and serves the HTTP API and the dashboard.

The tree follows the data (see ``daemon.py`` for the start and stop order):

- ``ingest/``: the socket listeners and one connection per client process;
- ``storage/``: the Store, the one owner of the database: schema, the single writer,
  the checkpointer, the reader processes and every query;
- ``http/``: the aiohttp application: API, live events, OpenAPI docs, dashboard files,
  and OTLP ingest (``POST /v1/traces``);
- ``otlp/``: OpenTelemetry interop: steps as OTLP spans and back (export, ingest), and
  the forwarder to an OTLP endpoint;
- ``daemon.py`` (lifecycle), ``cli.py`` and ``cli_export.py`` (the ``traceforge-daemon``
  command), ``maintenance.py`` (``prune``), ``limits.py`` (connection caps, file
  descriptors) and ``settings.py`` (the settings table) on top.

Imports point one way: ``http -> otlp -> storage <- ingest`` (``http`` also reads
``storage`` directly), the lifecycle above them all, and everything on
``traceforge_protocol``. Nothing here imports ``traceforge_client``: the
daemon and its reader processes never load the tracer or its process hooks.
"""

from traceforge_protocol.version import __version__

__all__ = ["__version__"]
