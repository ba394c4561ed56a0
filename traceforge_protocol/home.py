"""Where a daemon lives on this machine, and how clients and tools find it.

A daemon keeps everything in one private directory, its *home* (``TRACEFORGE_HOME``,
default ``~/.traceforge``): the database, the Unix socket, the token, its log, and
``daemon.json``. The daemon writes ``daemon.json`` once it is listening and removes it
when it stops; clients, ``traceforge-daemon status`` and ``get_storage()`` read it to
learn the running daemon's addresses. Its format is ``DaemonState``; protocol.md
section 2 documents it for clients in other languages.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import msgspec

TRACEFORGE_HOME = "TRACEFORGE_HOME"
"""Directory holding the daemon's database, socket, token and logs. Default: ~/.traceforge"""

TRACEFORGE_TOKEN = "TRACEFORGE_TOKEN"
"""The daemon's token: required of clients and HTTP callers on listeners beyond loopback.
Read by clients (sent in the hello) and by the daemon (the token it requires). Default: none."""

DEFAULT_HTTP_PORT = 8742
"""The HTTP API and dashboard's default port, on 127.0.0.1."""


class DaemonState(msgspec.Struct, forbid_unknown_fields=False):
    """The contents of ``daemon.json``: a running daemon's process and addresses.

    Addresses are URLs: ``socket`` is ``unix:///path``, ``tcp`` is ``tcp://host:port``,
    ``http`` is ``http://host:port``; a listener that is off is null. Readers must
    ignore keys they do not know, so fields can be added.
    """

    pid: int
    version: str
    socket: str
    db: str
    started_at: float
    """Unix time in seconds."""
    http: Optional[str] = None
    tcp: Optional[str] = None


_state_decoder = msgspec.json.Decoder(DaemonState)


@dataclass(frozen=True)
class Home:
    """The layout of a daemon's home directory: every file's name is defined here."""

    path: Path

    @classmethod
    def from_env(cls) -> "Home":
        return cls(Path(os.environ.get(TRACEFORGE_HOME) or Path.home() / ".traceforge"))

    @property
    def database(self) -> Path:
        return self.path / "traceforge.db"

    @property
    def socket(self) -> Path:
        return self.path / "daemon.sock"

    @property
    def token_file(self) -> Path:
        return self.path / "token"

    @property
    def state_file(self) -> Path:
        return self.path / "daemon.json"

    @property
    def pid_file(self) -> Path:
        return self.path / "daemon.pid"

    @property
    def log_file(self) -> Path:
        return self.path / "daemon.log"

    def read_state(self) -> Optional[DaemonState]:
        """The running daemon's state, or None when there is no readable ``daemon.json``."""
        try:
            return _state_decoder.decode(self.state_file.read_bytes())
        except (OSError, msgspec.DecodeError):
            return None

    def running_state(self) -> Optional[DaemonState]:
        """Like ``read_state``, but None unless its process is still alive (a daemon killed
        with SIGKILL cannot remove its ``daemon.json``)."""
        state = self.read_state()
        return state if state is not None and process_alive(state.pid) else None

    def write_state(self, state: DaemonState) -> None:
        """Replace ``daemon.json`` atomically, readable by this user only."""
        temporary = self.state_file.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(msgspec.json.format(msgspec.json.encode(state)))
        os.replace(temporary, self.state_file)


def process_alive(pid: int) -> bool:
    """True if a process with this pid exists (ours or another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:  # not a pid at all
        return False
    return True


def unix_address(path: Path | str) -> str:
    """A Unix socket path as the address clients take: ``unix:///path``."""
    return f"unix://{path}"
