"""The version of the ``traceforge`` distribution: pyproject.toml reads it from here, and
both ends of a connection send it in the hello (``client_version``, ``server_version``)."""

__version__ = "0.1.0"
