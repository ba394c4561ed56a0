"""Compiles the per-step code with Cython where a C compiler is available.

Everything else about the package is in pyproject.toml. The compiled modules are
optional: if Cython or a compiler is missing, or TRACEFORGE_PURE_PYTHON=1 is set, the
same .py files run as plain Python. An editable install (``pip install -e .``) compiles
nothing, so an edit to a source file always takes effect. A build that compiled every
module writes ``compiled.json`` next to them, with the version it was built from;
traceforge_client/hot_path.py uses the compiled form only when that version is its own.
"""

import glob
import json
import os
from importlib.machinery import EXTENSION_SUFFIXES

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

PACKAGE = "traceforge_client"
HOT_PATH = ("traceforge_client/event_queue.py", "traceforge_client/tracer.py")
STAMP = "compiled.json"


def hot_path_extensions() -> list:
    """The per-step modules as extensions, compiled by build_hot_path below. Optional: one
    that fails to compile (no compiler, no Python headers) is skipped with a warning
    instead of failing the install."""
    if os.environ.get("TRACEFORGE_PURE_PYTHON", "") not in ("", "0"):
        return []
    return [Extension(path[:-3].replace("/", "."), [path], optional=True) for path in HOT_PATH]


def cythonized(extensions: list) -> list:
    """``extensions`` translated to C by Cython (as new Extension objects), or [] if that
    cannot be done here."""
    try:
        from Cython.Build import cythonize
    except ImportError:
        print("traceforge: Cython is not installed; the per-step code stays plain Python")
        return []
    try:
        translated = cythonize(
            extensions,
            build_dir="build/cython",
            compiler_directives={
                "language_level": "3",
                "annotation_typing": False,  # the .pxd files hold the C types
                "embedsignature": True,
                "embedsignature.format": "python",  # inspect.signature() works compiled
            },
            quiet=True,
        )
    except Exception as exc:  # never let the optional speed-up break an install
        print(f"traceforge: not compiling the per-step code ({exc}); it stays plain Python")
        return []
    return translated


class build_hot_path(build_ext):
    """build_ext that compiles nothing for an editable install, and stamps a full build."""

    def finalize_options(self) -> None:
        super().finalize_options()
        if self.editable_mode:  # set by setuptools for PEP 660 builds (`pip install -e .`)
            self.extensions = []

    def run(self) -> None:
        source_dir = self.get_finalized_command("build_py").get_package_dir(PACKAGE)
        if self.editable_mode:
            removed = remove_builds(source_dir)
            print("traceforge: editable install, the per-step code runs as plain Python"
                  + (f" (removed the old build: {', '.join(removed)})" if removed else ""))
            return
        # Translated to C only now, when something is to be compiled: not for an editable
        # install, nor for the file lists other commands ask build_ext for.
        translated = {ext.name: ext for ext in cythonized(self.extensions)}
        self.extensions = [ext for ext in self.extensions if ext.name in translated]
        for ext in self.extensions:
            ext.sources = translated[ext.name].sources
        self.built: dict = {}
        super().run()
        targets = [os.path.join(self.build_lib, PACKAGE)]
        if self.inplace:
            targets.append(source_dir)
        complete = len(self.built) == len(HOT_PATH)
        for target in targets:
            stamp = os.path.join(target, STAMP)
            if complete:
                os.makedirs(target, exist_ok=True)
                with open(stamp, "w") as handle:
                    json.dump({"version": self.distribution.get_version(),
                               "modules": self.built}, handle)
            elif os.path.exists(stamp):
                os.remove(stamp)

    def build_extension(self, ext) -> None:
        super().build_extension(ext)  # raises if it failed; optional ones are then skipped
        filename = self.get_ext_filename(self.get_ext_fullname(ext.name))
        self.built[ext.name.rpartition(".")[2]] = os.path.basename(filename)


def remove_builds(directory: str) -> list:
    """Delete compiled hot-path modules and their stamp from ``directory``; their names."""
    removed = []
    for path in HOT_PATH:
        base = os.path.join(directory, os.path.basename(path)[:-3])
        for suffix in EXTENSION_SUFFIXES:
            removed += glob.glob(glob.escape(base) + suffix)
    stamp = os.path.join(directory, STAMP)
    if os.path.exists(stamp):
        removed.append(stamp)
    for path in removed:
        os.remove(path)
    return [os.path.basename(path) for path in removed]


setup(ext_modules=hot_path_extensions(), cmdclass={"build_ext": build_hot_path})
