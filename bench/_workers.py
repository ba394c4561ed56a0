"""Worker processes started together: each prints 'ready', then all are released at once."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import _common


def run_workers(script: str, argv_list: list[list[str]], env: dict, timeout: float = 3600,
                on_go=None) -> tuple[float, list[dict], float]:
    """Start ``script`` once per argv, wait until each prints 'ready', then release them all.

    Returns (time.time() at release, each worker's final JSON line, result of on_go()).
    ``on_go`` runs right after the release, while the workers work.
    """
    procs = [
        subprocess.Popen([sys.executable, script, *argv], env=env, cwd=_common.ROOT,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
        for argv in argv_list
    ]
    for proc in procs:
        line = proc.stdout.readline()
        if line.strip() != "ready":
            proc.kill()
            raise RuntimeError(f"worker did not get ready: {line!r} {proc.stderr.read()}")
    released = time.time()
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    extra = on_go() if on_go else None
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"worker failed ({proc.returncode}):\n{out}\n{err}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return released, results, extra


def wait_for_go() -> None:
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        sys.exit("no go")
