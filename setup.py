"""Compiles the per-step code with Cython where a C compiler is available.

Everything else about the package is in pyproject.toml. The compiled modules are
optional: if Cython or a compiler is missing, or TRACEFORGE_PURE_PYTHON=1 is set, the
same .py files run as plain Python (traceforge_client/hot_path.py).
"""

import os

from setuptools import Extension, setup

HOT_PATH = ("traceforge_client/event_queue.py", "traceforge_client/tracer.py")


def hot_path_extensions() -> list:
    if os.environ.get("TRACEFORGE_PURE_PYTHON", "") not in ("", "0"):
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        print("traceforge: Cython is not installed; the per-step code stays plain Python")
        return []
    modules = [Extension(path[:-3].replace("/", "."), [path]) for path in HOT_PATH]
    try:
        extensions = cythonize(
            modules,
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
    for extension in extensions:
        # On cythonize's output, not its input: it returns new Extension objects. An
        # optional extension that fails to compile (no compiler, no Python headers) is
        # skipped with a warning instead of failing the install.
        extension.optional = True
    return extensions


setup(ext_modules=hot_path_extensions())
