"""Traced processes that each send one run of steps at a steady pace
(tests/programs/steady_sender.py), for the tests that hurt the daemon under them: each
writes its client stats to a file as it goes and prints its final stats at exit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, wait_until

STEADY_SENDER = ROOT / "tests" / "programs" / "steady_sender.py"


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):  # not written yet, or being replaced
        return None


class SteadySenders:
    """``count`` senders of ``steps`` steps each, runs named sender-0, sender-1, ...; as a
    context manager, any sender still running at the end is killed."""

    def __init__(self, daemon, count: int, steps: int, folder: Path) -> None:
        self.steps = steps
        self.stats_files = [folder / f"stats-{i}.json" for i in range(count)]
        self.processes = [subprocess.Popen(
            [sys.executable, str(STEADY_SENDER), str(i), str(steps), str(path)],
            env=daemon.env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for i, path in enumerate(self.stats_files)]

    def __enter__(self) -> "SteadySenders":
        return self

    def __exit__(self, *exc) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()

    def acked(self) -> list[int]:
        """Each sender's step ends acked so far, as its last stats file says."""
        return [(_read_json(path) or {}).get("acked_step_ends", 0) for path in self.stats_files]

    def wait_acked(self, at_least: int, timeout: float) -> None:
        wait_until(lambda: all(acked >= at_least for acked in self.acked()), timeout=timeout,
                   message=f"every sender to have {at_least} steps acked")

    def finish(self, timeout: float = 180) -> list[dict]:
        """Wait for every sender to exit, which must be with 0; their final stats."""
        outputs = [process.communicate(timeout=timeout) for process in self.processes]
        finals = []
        for process, (stdout, stderr) in zip(self.processes, outputs):
            assert process.returncode == 0, stderr
            finals.append(json.loads(stdout.strip().splitlines()[-1]))
        return finals
