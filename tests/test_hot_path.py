"""The per-step code in both forms (traceforge_client/hot_path.py): compiled when the
install compiled it from this version, plain Python otherwise or when asked.

The behaviour tests (tests/test_tracing.py and the rest) run once, in the form this
checkout has installed. Here one traced program runs in both forms from a wheel, as users
install TraceForge, against real daemons, and both must store the same trace.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from conftest import DaemonProcess
from test_tracing import README_EXAMPLE, stored_steps

import traceforge_client

ROOT = Path(__file__).resolve().parent.parent
REPORT = (
    "import traceforge_client.tracer as t, traceforge_client.event_queue as q\n"
    "from traceforge_client import hot_path\n"
    "print(hot_path.form, t.__file__.endswith('.py'), q.__file__.endswith('.py'))\n"
)


def can_compile() -> bool:
    include = Path(sysconfig.get_paths()["include"]) / "Python.h"
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(compiler) is not None and include.exists()


def clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "TRACEFORGE_PURE_PYTHON")}
    return {**env, **extra}


def report(python: str, pythonpath: Path, **env) -> tuple[str, list]:
    """What ``python`` loads with ``pythonpath`` first: the form and whether each module is
    a .py file, and the lines TraceForge wrote to stderr."""
    result = subprocess.run([python, "-c", REPORT], cwd=pythonpath, capture_output=True,
                            text=True, timeout=60, env=clean_env(PYTHONPATH=str(pythonpath), **env))
    assert result.returncode == 0, result.stderr
    ours = [line for line in result.stderr.splitlines() if "traceforge" in line]
    return result.stdout.strip(), ours


def stored_trace(daemon: DaemonProcess, run_id: str) -> dict:
    """A run's steps as comparable values: ids and times left out, parents by name."""
    steps = stored_steps(daemon, run_id)
    names = {step["step_id"]: step["name"] for step in steps}
    kept = ("model", "input", "output", "tin", "tout", "cost", "status", "error", "error_type")
    trace = {
        step["name"]: {**{key: step[key] for key in kept},
                       "parent": names.get(step["parent"]),
                       "traceback_ends": (step["traceback"] or "").splitlines()[-1:]}
        for step in steps
    }
    trace["run"] = daemon.query(
        "SELECT run_name, status, error, metadata FROM runs WHERE run_id = ?", (run_id,))
    return trace


@pytest.mark.skipif(not can_compile(), reason="no C compiler or Python headers here")
def test_compiled_and_plain_python_store_the_same_trace(wheel_install, short_tmp):
    program = README_EXAMPLE + "print(traceforge.stats()['hot_path'])\n"
    stored, forms = {}, {}
    for form, env in (("compiled", {}), ("python", {"TRACEFORGE_PURE_PYTHON": "1"})):
        daemon = DaemonProcess(short_tmp / form, python=wheel_install.python, checkout=False)
        daemon.home.mkdir(parents=True)
        daemon.start()
        try:
            environment = {k: v for k, v in daemon.env.items() if k != "TRACEFORGE_PURE_PYTHON"}
            run_id, forms[form] = daemon.run_python(
                program, env={**environment, **env}).stdout.split()
            stored[form] = stored_trace(daemon, run_id)
        finally:
            assert daemon.stop() == 0, daemon.log()
    assert forms == {"compiled": "compiled", "python": "python"}
    assert len(stored["compiled"]) == 7  # six steps and the run
    assert stored["compiled"] == stored["python"]


def test_pure_python_can_be_forced_and_its_modules_sit_where_imports_put_them():
    out, warnings = report(sys.executable, ROOT, TRACEFORGE_PURE_PYTHON="1")
    assert (out, warnings) == ("python True True", [])
    code = ("import traceforge_client, traceforge_client.tracer as t\n"
            "print(traceforge_client.tracer is t, t.__file__.endswith('.py'))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, env=clean_env(TRACEFORGE_PURE_PYTHON="1"))
    assert result.stdout.split() == ["True", "True"], result.stderr


def copy_checkout(where: Path) -> Path:
    for name in ("traceforge_client", "traceforge_protocol", "traceforge_daemon", "web"):
        shutil.copytree(ROOT / name, where / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.so", "compiled.json"))
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, where / name)
    return where


def test_an_editable_install_compiles_nothing_and_removes_an_old_build(short_tmp):
    # What `pip install -e .` runs: the PEP 660 hook. A build left in the tree from before
    # must not hide the sources from then on.
    pytest.importorskip("setuptools")
    checkout = copy_checkout(short_tmp)
    package = checkout / "traceforge_client"
    old = package / f"tracer{sysconfig.get_config_var('EXT_SUFFIX')}"
    old.write_bytes(b"an old build")
    (package / "compiled.json").write_text(json.dumps({"version": traceforge_client.__version__,
                                                       "modules": {"tracer": old.name}}))
    build = subprocess.run(
        [sys.executable, "-c",
         "from setuptools import build_meta; print(build_meta.build_editable('dist'))"],
        cwd=checkout, env=clean_env(), capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    assert list((checkout / "dist").glob("*.whl"))
    assert not list(package.glob("*.so")) and not (package / "compiled.json").exists()
    assert not (checkout / "build" / "cython").exists()  # not even translated to C
    assert report(sys.executable, checkout) == ("python True True", [])


def test_an_install_without_a_working_compiler_still_succeeds_as_plain_python(short_tmp):
    # The build step `pip install` runs, with a compiler that always fails.
    pytest.importorskip("Cython")
    pytest.importorskip("setuptools")
    checkout = copy_checkout(short_tmp)
    build = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace"], cwd=checkout,
        env=clean_env(CC="/bin/false"), capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    assert 'building extension "traceforge_client.tracer" failed' in build.stdout + build.stderr
    package = checkout / "traceforge_client"
    assert not list(package.glob("*.so")) and not (package / "compiled.json").exists()
    assert report(sys.executable, checkout) == ("python True True", [])


def damage_unloadable(package: Path) -> None:
    [built] = package.glob("tracer.*.so")
    built.write_bytes(b"not a shared object")


def damage_other_version(package: Path) -> None:
    stamp = json.loads((package / "compiled.json").read_text())
    (package / "compiled.json").write_text(json.dumps({**stamp, "version": "0.0.1"}))


def damage_other_python(package: Path) -> None:
    # What a build for another interpreter is called: here its files are renamed to match.
    stamp = json.loads((package / "compiled.json").read_text())
    for name, filename in stamp["modules"].items():
        other = f"{name}.cpython-30-x86_64-linux-gnu.so"
        (package / filename).rename(package / other)
        stamp["modules"][name] = other
    (package / "compiled.json").write_text(json.dumps(stamp))


@pytest.mark.skipif(not can_compile(), reason="no C compiler or Python headers here")
@pytest.mark.parametrize("damage", [damage_unloadable, damage_other_version, damage_other_python],
                         ids=["cannot load", "another version", "another Python"])
def test_a_compiled_build_that_does_not_fit_gives_way_to_plain_python_with_one_warning(
        damage, wheel_install, short_tmp):
    installed = wheel_install.package_dir("traceforge_client")
    package = short_tmp / "traceforge_client"
    shutil.copytree(installed, package, ignore=shutil.ignore_patterns("__pycache__"))
    assert report(wheel_install.python, short_tmp) == ("compiled False False", [])
    damage(package)
    out, warnings = report(wheel_install.python, short_tmp)
    assert out == "python True True"
    assert len(warnings) == 1 and "plain python" in warnings[0].lower(), warnings


def test_decorated_functions_keep_their_kind_and_signature():
    # The decorator stays plain Python, so frameworks that inspect wrappers see the truth.
    @traceforge_client.trace_step_decorator
    async def fetch(url: str, retries: int = 2) -> str:
        return url

    @traceforge_client.trace_step_decorator
    def parse(text: str) -> int:
        return len(text)

    assert inspect.iscoroutinefunction(fetch) and not inspect.iscoroutinefunction(parse)
    assert inspect.signature(fetch) == inspect.signature(fetch.__wrapped__)
    assert list(inspect.signature(fetch).parameters) == ["url", "retries"]
    assert fetch.__name__ == "fetch" and parse.__wrapped__.__name__ == "parse"


@pytest.mark.parametrize("bad", [0, -5, 1.5, "100", True, None, 10**20])
def test_a_queue_size_that_is_not_a_whole_number_is_refused_up_front(bad):
    # Both forms must take the same sizes: the compiled queue holds a C integer.
    from traceforge_client.config import load_config

    with pytest.raises(ValueError, match=r"max_queue_events=.*whole number"):
        load_config(max_queue_events=bad)
    assert load_config(max_queue_events=7).max_queue_events == 7
