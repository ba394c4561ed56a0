"""Read stored traces from Python: ``get_storage()`` over the daemon's HTTP API.

    storage = traceforge_client.get_storage()
    failed = storage.query_steps(has_error=True, start_time=time.time() - 3600, limit=50)
    steps = storage.get_steps(run_id)

It talks HTTP with the standard library only, so it works from any machine that can
reach the daemon and adds no dependency. The address comes from, in order: the
``url`` argument, ``TRACEFORGE_HTTP``, the running daemon's state file
(``$TRACEFORGE_HOME/daemon.json``), then ``http://127.0.0.1:8742``.

Exceptions: ``APIError`` (the daemon answered with an error; ``.status`` and the
daemon's message), with ``NotFound`` for unknown ids; ``DaemonUnavailable`` when no
daemon answers. Both derive from ``StorageError``.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from typing import Any, Optional

from traceforge_protocol.home import DEFAULT_HTTP_PORT, TRACEFORGE_TOKEN, Home

from . import config

DEFAULT_TIMEOUT = 30.0


class StorageError(Exception):
    """Reading traces failed."""


class DaemonUnavailable(StorageError):
    """No TraceForge daemon answered at the configured address."""


class APIError(StorageError):
    """The daemon answered with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class NotFound(APIError, LookupError):
    """No run or step has the given id."""


def default_url() -> str:
    """The daemon's HTTP base URL, by the precedence in the module docstring."""
    url = os.environ.get(config.TRACEFORGE_HTTP, "").strip()
    if url:
        return url.rstrip("/")
    state = Home.from_env().read_state()
    if state is not None and state.http:
        return state.http.rstrip("/")
    return f"http://127.0.0.1:{DEFAULT_HTTP_PORT}"


class Storage:
    """Stored runs and steps, read through the daemon's HTTP API."""

    def __init__(self, url: Optional[str] = None, token: Optional[str] = None,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.url = (url or default_url()).rstrip("/")
        self.token = token or os.environ.get(TRACEFORGE_TOKEN) or None
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"Storage({self.url!r})"

    # ---- the long-standing query methods ----

    def query_steps(self, run_id: Optional[str] = None, step_name: Optional[str] = None,
                    start_time: Optional[float] = None, end_time: Optional[float] = None,
                    min_tokens: Optional[int] = None, has_error: Optional[bool] = None,
                    limit: int = 100) -> list[dict]:
        """Steps matching every given filter, newest first, with inputs and outputs."""
        result = self._get("/api/search", run_id=run_id, step_name=step_name,
                           start_time=start_time, end_time=end_time, min_tokens=min_tokens,
                           has_error=has_error, limit=limit)
        return result["steps"]

    def get_steps(self, run_id: str) -> list[dict]:
        """Every step of a run in start order, with inputs and outputs; [] if unknown."""
        try:
            detail = self._get(f"/api/runs/{_segment(run_id)}", payloads=True)
        except NotFound:
            return []
        return detail["steps"]

    # ---- the rest of the API ----

    def get_run(self, run_id: str, payloads: bool = False) -> Optional[dict]:
        """The run detail (``run``, ``steps`` as a tree, ``roots``), or None if unknown."""
        try:
            return self._get(f"/api/runs/{_segment(run_id)}", payloads=payloads)
        except NotFound:
            return None

    def list_runs(self, limit: int = 50, offset: int = 0, name: Optional[str] = None,
                  name_contains: Optional[str] = None, status: Optional[str] = None,
                  start_time: Optional[float] = None, end_time: Optional[float] = None,
                  replay_of: Optional[str] = None) -> list[dict]:
        """Runs with their totals, newest first."""
        result = self._get("/api/runs", limit=limit, offset=offset or None, name=name,
                           q=name_contains, status=status, start_time=start_time,
                           end_time=end_time, replay_of=replay_of)
        return result["runs"]

    def get_step(self, step_id: str) -> Optional[dict]:
        """One step with payloads, children and replays, or None if unknown."""
        try:
            return self._get(f"/api/steps/{_segment(step_id)}")
        except NotFound:
            return None

    def get_step_inputs(self, step_id: str) -> dict:
        """What re-running a step needs; raises NotFound for an unknown step."""
        return self._get(f"/api/steps/{_segment(step_id)}/inputs")

    def replay_inputs(self, step_id: str, override_input: Any = None) -> dict:
        """The step's inputs with ``override_input`` (if not None) in place of its input."""
        body = {"step_id": step_id}
        if override_input is not None:
            body["override_input"] = override_input
        return self._request("POST", "/api/replay", body=body)

    def compare(self, run_id_a: str, run_id_b: str) -> dict:
        return self._get("/api/compare", run_id_a=run_id_a, run_id_b=run_id_b)

    def export_run_jsonl(self, run_id: str, format: str = "otlp") -> str:
        """One run as JSON Lines: OTLP/JSON (``otlp``) or the flat format (``flat``)."""
        return self._request("GET", f"/api/runs/{_segment(run_id)}/export",
                             params={"format": format}, raw=True)

    def export_jsonl(self, format: str = "otlp", **filters: Any) -> str:
        """The runs matching ``filters`` (``name``, ``q``, ``status``, ``start_time``,
        ``end_time``; none: every run) as JSON Lines, like ``export_run_jsonl``."""
        return self._request("GET", "/api/export", params={"format": format, **filters},
                             raw=True)

    def stats(self, **filters: Any) -> dict:
        return self._get("/api/stats", **filters)

    def health(self) -> dict:
        return self._get("/api/health")

    # ---- HTTP ----

    def _get(self, path: str, **params: Any) -> Any:
        return self._request("GET", path, params=params)

    def _request(self, method: str, path: str, params: Optional[dict] = None,
                 body: Any = None, raw: bool = False) -> Any:
        import urllib.error  # here: keeps `import traceforge_client` light for tracing
        import urllib.request

        query = {key: _param(value) for key, value in (params or {}).items() if value is not None}
        url = self.url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            raise _api_error(exc) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DaemonUnavailable(
                f"no TraceForge daemon answers at {self.url} ({reason}); start one with "
                "`traceforge-daemon start`, or set TRACEFORGE_HTTP to its URL"
            ) from None
        return payload.decode() if raw else json.loads(payload)


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _segment(identifier: str) -> str:
    return urllib.parse.quote(str(identifier), safe="")


def _api_error(exc) -> APIError:
    try:
        message = json.loads(exc.read()).get("error") or exc.reason
    except (ValueError, AttributeError, OSError):
        message = str(exc.reason)
    kind = NotFound if exc.code == 404 else APIError
    return kind(exc.code, str(message))


def get_storage(url: Optional[str] = None, token: Optional[str] = None,
                timeout: float = DEFAULT_TIMEOUT) -> Storage:
    """A ``Storage`` reading from the daemon at ``url`` (default: see module docstring)."""
    return Storage(url, token, timeout)
