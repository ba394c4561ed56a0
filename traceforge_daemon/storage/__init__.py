"""The database and everything that touches it, owned by one ``Store`` (``store.py``).

``schema.py`` (tables, indexes, migrations), ``writer.py`` (the single writer thread),
``upserts.py`` (the statements it runs), ``guard.py`` (what it checks before each
transaction: disk room, WAL length, the file still being ours), ``records.py`` (protocol
events to rows), ``checkpointer.py`` (WAL copies off the writer's thread), ``readers.py``
(read-only reader processes), ``health.py`` and ``store_health.py`` (status and reasons),
``sweeps.py`` (rows of vanished processes become incomplete), ``retention.py`` (chunked
deletes), ``faults.py`` (the tests' fault switch), ``rows.py`` (the API's row shapes and
totals), the queries (``runs_query``, ``steps_query``, ``stats_query``, ``compare``,
``export``) and ``jobs.py`` (the reads the HTTP API asks for).

May import ``traceforge_protocol`` and the standard library; never ``ingest``, ``http``
or the client.
"""
