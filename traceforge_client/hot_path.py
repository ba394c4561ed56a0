"""Which form of the per-step code runs: compiled by Cython at install, or plain Python.

``tracer.py`` and ``event_queue.py`` run on every traced step. ``pip install`` compiles
them with Cython when a C compiler is available (``setup.py``; their ``.pxd`` files hold
the C types), which makes a step about a third cheaper (bench/RESULTS.md). Without a
compiler the same ``.py`` files run as they are, and behave the same (tests/test_hot_path.py).

A compiled module is used only if it is newer than its source, so an edit to a source
file in an editable checkout takes effect at once, with a warning to rebuild, instead
of being hidden by a stale build. ``TRACEFORGE_PURE_PYTHON=1`` forces plain Python.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import logging
import os
import sys

logger = logging.getLogger("traceforge")

MODULES = ("traceforge_client.event_queue", "traceforge_client.tracer")
"""In import order: the tracer imports the sender, which imports the event queue."""
FORCE_PURE = "TRACEFORGE_PURE_PYTHON"
CLOCK_SLACK_S = 2.0
"""An installer writes a package's files one after another; a source written this soon
after its compiled module is not an edit."""

form = "python"
""""compiled", "python" or "partly compiled": what ``load()`` chose; in ``stats()``."""


def load() -> str:
    """Import the hot-path modules, each compiled or from source; call before any other
    part of the package imports them."""
    global form
    compiled = 0
    for name in MODULES:
        if name in sys.modules:
            module = sys.modules[name]
        else:
            module = _import(name)
        if (getattr(module, "__file__", None) or "").endswith(_EXTENSION_SUFFIXES):
            compiled += 1
    form = "compiled" if compiled == len(MODULES) else "partly compiled" if compiled else "python"
    return form


_EXTENSION_SUFFIXES = tuple(importlib.machinery.EXTENSION_SUFFIXES)


def _import(name: str):
    spec = importlib.util.find_spec(name)
    origin = spec.origin if spec is not None else None
    if origin is None or not origin.endswith(_EXTENSION_SUFFIXES):
        return importlib.import_module(name)
    directory, base = os.path.dirname(origin), name.rpartition(".")[2]
    source = os.path.join(directory, base + ".py")
    if not os.path.exists(source):
        return importlib.import_module(name)
    if os.environ.get(FORCE_PURE, "") not in ("", "0"):
        return _import_source(name, source)
    built = os.path.getmtime(origin) + CLOCK_SLACK_S
    newer = [
        path for path in (source, os.path.join(directory, base + ".pxd"))
        if os.path.exists(path) and os.path.getmtime(path) > built
    ]
    if newer:
        logger.warning(
            "traceforge: %s changed after %s was compiled, so the source runs (slower per "
            "step). Reinstall to compile it again (in a checkout: `pip install -e .`).",
            " and ".join(os.path.basename(path) for path in newer), os.path.basename(origin),
        )
        return _import_source(name, source)
    try:
        return importlib.import_module(name)
    except ImportError as exc:  # e.g. built for another Python: the source still works
        logger.warning(
            "traceforge: cannot load %s (%s), so the source runs (slower per step). "
            "Reinstall to compile it again.", os.path.basename(origin), exc,
        )
        sys.modules.pop(name, None)
        return _import_source(name, source)


def _import_source(name: str, source: str):
    loader = importlib.machinery.SourceFileLoader(name, source)
    spec = importlib.util.spec_from_file_location(name, source, loader=loader)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[name] = module
    try:
        loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    package, _, attribute = name.rpartition(".")
    setattr(sys.modules[package], attribute, module)  # as the import system would
    return module
