"""TraceForge daemon: collects events from traced processes into one SQLite database."""

from traceforge_client.version import __version__

__all__ = ["__version__"]
