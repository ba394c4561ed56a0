"""The per-step code in both forms (traceforge_client/hot_path.py): compiled where it
can be, plain Python when asked or when the build is older than its source.

tests/test_tracing.py runs the client's behaviour in both forms against a real daemon.
"""

from __future__ import annotations

import inspect
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

import traceforge_client
from traceforge_client import hot_path

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


def report(env_extra: dict, cwd: Path = ROOT, pythonpath: Path = ROOT) -> tuple[str, str]:
    env = {**os.environ, **env_extra, "PYTHONPATH": str(pythonpath)}
    result = subprocess.run([sys.executable, "-c", REPORT], env=env, cwd=cwd,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip(), result.stderr


@pytest.mark.skipif(not can_compile(), reason="no C compiler or Python headers here")
def test_the_install_compiled_the_per_step_code():
    # `pip install -e .` with a compiler must give the fast form (bench/RESULTS.md).
    out, _ = report({"TRACEFORGE_PURE_PYTHON": ""})
    assert out == "compiled False False"
    assert traceforge_client.stats()["hot_path"] == hot_path.form


def test_pure_python_can_be_forced():
    out, _ = report({"TRACEFORGE_PURE_PYTHON": "1"})
    assert out == "python True True"
    # and the modules are where the import system would put them, so patching works
    code = ("import traceforge_client, traceforge_client.tracer as t\n"
            "print(traceforge_client.tracer is t, t.__file__.endswith('.py'))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=60,
                            env={**os.environ, "TRACEFORGE_PURE_PYTHON": "1"})
    assert result.stdout.split() == ["True", "True"], result.stderr


def test_an_install_without_a_working_compiler_still_succeeds_as_plain_python(short_tmp):
    # The build step `pip install` runs, with a compiler that always fails.
    pytest.importorskip("Cython")
    pytest.importorskip("setuptools")
    shutil.copytree(ROOT / "traceforge_client", short_tmp / "traceforge_client",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, short_tmp / name)
    build = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace"], cwd=short_tmp,
        env={**os.environ, "CC": "/bin/false", "TRACEFORGE_PURE_PYTHON": ""},
        capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    assert 'building extension "traceforge_client.tracer" failed' in build.stdout + build.stderr
    assert not list((short_tmp / "traceforge_client").glob("*.so"))
    out, _ = report({"TRACEFORGE_PURE_PYTHON": ""}, cwd=short_tmp, pythonpath=short_tmp)
    assert out == "python True True"


@pytest.mark.skipif(hot_path.form != "compiled", reason="needs the compiled build")
def test_an_edited_source_runs_instead_of_its_older_build(short_tmp):
    # An editable checkout after a `git pull` or an edit: the newer source must win.
    package = short_tmp / "traceforge_client"
    shutil.copytree(ROOT / "traceforge_client", package,
                    ignore=shutil.ignore_patterns("__pycache__"))
    source = package / "tracer.py"
    source.write_text(source.read_text() + "\nEDITED = True\n")
    later = time.time() + 60
    os.utime(source, (later, later))
    out, err = report({"TRACEFORGE_PURE_PYTHON": ""}, cwd=short_tmp, pythonpath=short_tmp)
    assert out == "partly compiled True False"
    assert "tracer.py changed after tracer." in err and "the source runs" in err
    assert "pip install -e ." in err
    check = subprocess.run(
        [sys.executable, "-c", "import traceforge_client.tracer as t; print(t.EDITED)"],
        env={**os.environ, "PYTHONPATH": str(short_tmp)}, cwd=short_tmp,
        capture_output=True, text=True, timeout=60,
    )
    assert check.stdout.strip() == "True", check.stderr


@pytest.mark.skipif(hot_path.form != "compiled", reason="needs the compiled build")
def test_a_build_that_cannot_load_gives_way_to_its_source(short_tmp):
    # e.g. a venv whose Python was upgraded under it: tracing must still work.
    package = short_tmp / "traceforge_client"
    shutil.copytree(ROOT / "traceforge_client", package,
                    ignore=shutil.ignore_patterns("__pycache__"))
    [built] = package.glob("tracer.*.so")
    built.write_bytes(b"not a shared object")
    os.utime(built, (time.time() + 60,) * 2)  # newer than its source: only loading fails
    out, err = report({"TRACEFORGE_PURE_PYTHON": ""}, cwd=short_tmp, pythonpath=short_tmp)
    assert out == "partly compiled True False"
    assert f"cannot load {built.name}" in err and "the source runs" in err


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
