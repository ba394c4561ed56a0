"""The socket side of the daemon: listeners (``server.py``) and one ``IngestConnection``
per client (``connection.py``), speaking the protocol of ``traceforge_protocol.wire``.

May import ``storage`` (to submit batches to the Store), ``settings`` and ``limits`` (the
connection cap); never ``http``.
"""
