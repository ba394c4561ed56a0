"""A wheel built from this checkout and installed in a fresh virtual environment.

This is how users get TraceForge (``pip install``, not an editable checkout), so tests
that must see exactly what an install ships (the dashboard's files, the compiled per-step
code) run against it. Commands run outside the checkout with no PYTHONPATH, so nothing
of the source tree can stand in for what the wheel lacks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(command: list, cwd: Path, timeout: float = 600) -> str:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def source_copy(where: Path) -> Path:
    """The checkout's files, without what git ignores: a build in the checkout itself
    would reuse its build/ directory, where files deleted from the source live on."""
    listed = _run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                  cwd=ROOT)
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():
            (where / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, where / name)
    return where


@dataclass
class WheelInstall:
    wheel: Path
    venv: Path

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")

    @classmethod
    def build(cls, where: Path) -> "WheelInstall":
        dist = where / "dist"
        _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir",
              str(dist), str(source_copy(where / "source"))], cwd=where)
        [wheel] = dist.glob("traceforge-*.whl")
        venv = where / "venv"
        _run([sys.executable, "-m", "venv", str(venv)], cwd=where)
        _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)],
             cwd=where)
        return cls(wheel, venv)

    def package_dir(self, package: str) -> Path:
        """Where the installed ``package`` lives in the venv's site-packages."""
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        return Path(self.run_python(
            f"import os, {package}; print(os.path.dirname({package}.__file__))", env=env).strip())

    def run_python(self, code: str, env: dict | None = None, cwd: Path | None = None) -> str:
        result = subprocess.run([self.python, "-c", code], cwd=cwd or self.venv, env=env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
        return result.stdout
