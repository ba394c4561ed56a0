"""The tree shows the architecture: no import cycles, imports point one way, and importing
the daemon (or the client) changes nothing in the process.

The import graph is read from the source with ``ast``, counting every import a module
makes anywhere (at the top, inside functions, under ``TYPE_CHECKING``), so a cycle cannot
hide behind a function-local import.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("traceforge_protocol", "traceforge_client", "traceforge_daemon")


def product_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The product modules ``name`` imports, resolved to module names."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import mod` imports pkg.mod when that is a module
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = product_modules()
    known = set(modules)
    return {name: imports_of(name, path, known) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as a list of modules, or [] when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            # A package's __init__ importing its own submodules is how packages re-export;
            # the submodule importing a sibling goes through the package object, not back
            # into __init__'s code, so that edge cannot close a cycle.
            if node.startswith(target + "."):
                continue
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return []


def test_there_is_no_import_cycle_among_the_product_modules():
    cycle = find_cycle(import_graph())
    assert not cycle, " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle_through_a_function_local_import(tmp_path):
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []


LAYERS = {
    # module prefix: prefixes it must never import
    "traceforge_protocol": ("traceforge_client", "traceforge_daemon"),
    "traceforge_daemon": ("traceforge_client",),
    "traceforge_daemon.storage": ("traceforge_daemon.ingest", "traceforge_daemon.http",
                                  "traceforge_daemon.otlp", "traceforge_daemon.daemon",
                                  "traceforge_daemon.cli"),
    "traceforge_daemon.ingest": ("traceforge_daemon.http", "traceforge_daemon.otlp",
                                 "traceforge_daemon.daemon", "traceforge_daemon.cli"),
    "traceforge_daemon.otlp": ("traceforge_daemon.ingest", "traceforge_daemon.http",
                               "traceforge_daemon.daemon", "traceforge_daemon.cli"),
    "traceforge_daemon.http": ("traceforge_daemon.ingest", "traceforge_daemon.daemon",
                               "traceforge_daemon.cli"),
    "traceforge_client": ("traceforge_daemon",),
}


def test_imports_point_one_way():
    wrong = []
    for module, targets in import_graph().items():
        for layer, forbidden in LAYERS.items():
            if module == layer or module.startswith(layer + "."):
                wrong += [f"{module} imports {target}" for target in targets
                          if any(target == f or target.startswith(f + ".") for f in forbidden)]
    assert not wrong, "\n".join(wrong)


PROCESS_HOOKS = """
import multiprocessing.process, subprocess, sys
before = (subprocess.Popen.__init__, multiprocessing.process.BaseProcess.start)
{imports}
after = (subprocess.Popen.__init__, multiprocessing.process.BaseProcess.start)
print(before == after, "traceforge_client.tracer" in sys.modules,
      "traceforge_client" in sys.modules)
"""


def run_python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_importing_every_daemon_module_patches_nothing_and_loads_no_tracer():
    daemon_modules = [name for name in product_modules() if name.startswith("traceforge_daemon")]
    imports = "\n".join(f"import {name}" for name in daemon_modules + ["traceforge_protocol.wire"])
    untouched, tracer_loaded, client_loaded = run_python(PROCESS_HOOKS.format(imports=imports))
    assert (untouched, tracer_loaded, client_loaded) == ("True", "False", "False")


def test_a_reader_process_starts_without_the_client():
    code = f"""
import asyncio, sys, tempfile, pathlib, sqlite3
sys.path.insert(0, {str(ROOT / "tests" / "programs")!r})
from reader_probe import loaded
from traceforge_daemon.storage.readers import Readers
path = pathlib.Path(tempfile.mkdtemp()) / "x.db"
sqlite3.connect(path).execute("CREATE TABLE t (x)")
readers = Readers(path, processes=1)
print(*asyncio.run(readers.run(loaded)))
readers.close()
"""
    client_loaded, popen_module = run_python(code)
    assert (client_loaded, popen_module) == ("False", "subprocess")


def test_importing_the_client_installs_its_process_hooks_only_when_tracing_starts():
    code = PROCESS_HOOKS.format(imports="import traceforge_client") + """
import os
os.environ["TRACEFORGE_ADDRESS"] = "unix:///nonexistent/traceforge.sock"
traceforge_client.init(shutdown_timeout=0)
print(subprocess.Popen.__init__ is not before[0])
"""
    untouched, _, _, installed = run_python(code)
    assert (untouched, installed) == ("True", "True")


@pytest.mark.parametrize("package", PACKAGES)
def test_every_package_says_what_it_owns(package):
    for init in (ROOT / package).rglob("__init__.py"):
        assert ast.get_docstring(ast.parse(init.read_text())), init
