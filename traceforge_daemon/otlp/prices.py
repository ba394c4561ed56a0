"""The price table, for spans that arrive over OTLP without a cost.

There is one price table, ``traceforge_client/pricing.py``, and the client computes
each traced step's cost from it. The daemon never imports the client package: that
would run its ``__init__`` (the tracer and its process hooks; tests/test_layout.py).
``pricing.py`` imports only the standard library, so this module loads that one file
on its own, under a name of ours, from the installed ``traceforge_client`` directory.
(A move of the table into ``traceforge_protocol`` would let both sides import it.)
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Optional

_NAME = "traceforge_daemon.otlp._price_table"


def _load() -> Optional[ModuleType]:
    if _NAME in sys.modules:
        return sys.modules[_NAME]
    client = importlib.util.find_spec("traceforge_client")  # finds it without importing it
    if client is None or not client.submodule_search_locations:
        return None
    path = Path(list(client.submodule_search_locations)[0]) / "pricing.py"
    spec = importlib.util.spec_from_file_location(_NAME, path)
    if spec is None or spec.loader is None or not path.exists():
        return None
    module = importlib.util.module_from_spec(spec)
    sys.modules[_NAME] = module  # dataclasses look their module up while the file runs
    try:
        spec.loader.exec_module(module)
    except Exception:
        del sys.modules[_NAME]
        raise
    return module


def step_cost(model: Optional[str], tokens_input: int, tokens_output: int,
              cache_read: int, cache_write: int) -> Optional[float]:
    """USD from the table, 0.0 for no tokens, None (unpriced) for an unknown model."""
    if not (tokens_input or tokens_output or cache_read or cache_write):
        return 0.0
    table = _load()
    if table is None:
        return None
    return table.step_cost(model, tokens_input, tokens_output, cache_read, cache_write)
