"""Which form of the per-step code runs: compiled by Cython at install, or plain Python.

``tracer.py`` and ``event_queue.py`` run on every traced step. A regular ``pip install``
compiles them with Cython when a C compiler is available (``setup.py``; their ``.pxd``
files hold the C types), which makes a step about a third cheaper (bench/RESULTS.md).
Without a compiler the same ``.py`` files run as they are, and behave the same
(tests/test_hot_path.py).

The rule: the compiled form runs when it is installed and was built from this version of
TraceForge; otherwise the plain form runs. ``stats()["hot_path"]`` says which ("compiled"
or "python"). A build records what it made in ``compiled.json`` next to the modules,
written by setup.py's build_ext only when every module compiled::

    {"version": "0.1.0", "modules": {"event_queue": "event_queue.cpython-311-x86_64-linux-gnu.so",
                                     "tracer": "tracer.cpython-311-x86_64-linux-gnu.so"}}

No stamp means plain Python. A stamp from another version, or naming files this Python
cannot load (built for another Python, or damaged), also means plain Python, with one
warning. An editable install (``pip install -e .``) compiles nothing and deletes an earlier
in-tree build, so an edit to a source file always takes effect.
``TRACEFORGE_PURE_PYTHON=1`` forces plain Python (and skips compiling at install).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import logging
import os
import sys
from typing import Optional

import msgspec

from traceforge_protocol.version import __version__

logger = logging.getLogger("traceforge")

PACKAGE = "traceforge_client"
MODULES = ("event_queue", "tracer")
"""In import order: the tracer imports the queue (through the runtime)."""
STAMP = "compiled.json"
FORCE_PURE = "TRACEFORGE_PURE_PYTHON"

form = "python"
""""compiled" or "python": what ``load()`` chose; in ``stats()``."""

_DIRECTORY = os.path.dirname(os.path.abspath(__file__))


def load() -> str:
    """Import the hot-path modules, compiled or from source; call before any other part of
    the package imports them."""
    global form
    if all(f"{PACKAGE}.{name}" in sys.modules for name in MODULES):
        return form
    files = _compiled_files()
    if files is not None:
        before = set(sys.modules)
        try:
            for name in MODULES:
                _load(name, files[name], importlib.machinery.ExtensionFileLoader)
        except ImportError as exc:
            # Forget what the failed attempt imported, so nothing keeps a compiled class.
            for module in set(sys.modules) - before:
                if module.startswith(PACKAGE + "."):
                    del sys.modules[module]
            _warn(f"cannot load it ({exc})")
        else:
            form = "compiled"
            return form
    for name in MODULES:
        _load(name, os.path.join(_DIRECTORY, name + ".py"), importlib.machinery.SourceFileLoader)
    form = "python"
    return form


def _compiled_files() -> Optional[dict]:
    """Paths of the compiled modules to load, or None for plain Python."""
    if os.environ.get(FORCE_PURE, "") not in ("", "0"):
        return None
    try:
        with open(os.path.join(_DIRECTORY, STAMP), "rb") as handle:
            stamp = msgspec.json.decode(handle.read(), type=dict)
    except FileNotFoundError:
        return None
    except (OSError, msgspec.DecodeError) as exc:
        _warn(f"its {STAMP} is unreadable ({exc})")
        return None
    if stamp.get("version") != __version__:
        _warn(f"it was built from TraceForge {stamp.get('version')}, this is {__version__}")
        return None
    modules = stamp.get("modules")
    if not isinstance(modules, dict) or set(modules) != set(MODULES):
        _warn(f"its {STAMP} does not name {' and '.join(MODULES)}")
        return None
    files = {}
    for name in MODULES:
        filename = str(modules[name])
        suffix = filename[len(name):] if filename.startswith(name) else ""
        if suffix not in importlib.machinery.EXTENSION_SUFFIXES:
            _warn(f"{filename} was built for another Python")
            return None
        files[name] = os.path.join(_DIRECTORY, filename)
        if not os.path.exists(files[name]):
            _warn(f"{filename} is missing")
            return None
    return files


def _warn(reason: str) -> None:
    logger.warning("traceforge: not using the compiled per-step code: %s. Plain Python runs "
                   "instead (slower per step); reinstall TraceForge to compile it again.", reason)


def _load(name: str, path: str, loader_class) -> None:
    """Import ``PACKAGE.name`` from ``path``, as the import system would."""
    fullname = f"{PACKAGE}.{name}"
    loader = loader_class(fullname, path)
    spec = importlib.util.spec_from_file_location(fullname, path, loader=loader)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[fullname] = module
    try:
        loader.exec_module(module)
    except BaseException:
        sys.modules.pop(fullname, None)
        raise
    setattr(sys.modules[PACKAGE], name, module)
