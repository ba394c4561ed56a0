"""The database and everything that touches it, owned by one ``Store`` (``store.py``).

``schema.py`` (tables, indexes, migrations), ``writer.py`` (the single writer thread),
``records.py`` (protocol events to rows), ``checkpointer.py`` (WAL copies off the
writer's thread), ``readers.py`` (read-only reader processes), ``rows.py`` (the API's
row shapes and totals), the queries (``runs_query``, ``steps_query``, ``stats_query``,
``compare``, ``export``) and ``jobs.py`` (the reads the HTTP API asks for).

May import ``traceforge_protocol`` and the standard library; never ``ingest``, ``http``
or the client.
"""
