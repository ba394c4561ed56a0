"""traceforge-daemon as a user drives it: start, status, stop, detach, refusals, TCP,
tokens, and databases written by older versions."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT, DaemonProcess, wait_until
from version0_schema import VERSION_0_SCHEMA
from traceforge_daemon.storage import schema

TOKEN = "a-test-token-of-32-characters-xx"
"""Long enough for a listener beyond loopback (settings.MIN_TOKEN_CHARS)."""

CLI = [sys.executable, "-m", "traceforge_daemon"]


def cli(env, *args, timeout=60):
    return subprocess.run([*CLI, *args], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_status_reports_health_as_json(daemon):
    daemon.run_python("import traceforge_client as tf\nwith tf.trace_run('r'):\n"
                      "    with tf.trace_step('s'):\n        pass\ntf.flush(10)")
    result = cli(daemon.env, "status")
    assert result.returncode == 0, result.stderr
    health = json.loads(result.stdout)
    assert health["status"] == "ok" and health["version"]
    assert health["events_received"] == health["events_committed"] == 4
    assert health["database"]["path"] == str(daemon.db)
    assert health["database"]["size_bytes"] > 0
    assert health["uptime_s"] >= 0 and "connections" in health and health["client_drops"] == {}


def test_status_and_stop_without_a_daemon_say_so(short_tmp):
    env = DaemonProcess(short_tmp / "empty").env
    status = cli(env, "status")
    assert status.returncode == 1 and json.loads(status.stdout)["status"] == "stopped"
    stop = cli(env, "stop")
    assert stop.returncode == 1 and "no traceforge daemon is running" in stop.stdout


def test_detach_then_stop(short_tmp):
    home = short_tmp / "bg"
    env = DaemonProcess(home).env
    started = cli(env, "start", "--detach", "--http", "127.0.0.1:0")
    assert started.returncode == 0, started.stderr
    assert "started in the background" in started.stdout
    pid = int((home / "daemon.pid").read_text())
    assert json.loads(cli(env, "status").stdout)["pid"] == pid
    stopped = cli(env, "stop")
    assert stopped.returncode == 0 and f"pid {pid}" in stopped.stdout
    assert not (home / "daemon.json").exists() and not (home / "daemon.sock").exists()
    assert "stopped" in (home / "daemon.log").read_text()


def test_a_second_daemon_on_the_same_database_or_socket_refuses(daemon, short_tmp):
    same_db = cli(daemon.env, "start", "--http", "127.0.0.1:0",
                  "--socket", str(short_tmp / "other.sock"))
    assert same_db.returncode == 1
    assert f"is already using the database {daemon.db}" in same_db.stderr
    assert f"pid {daemon.process.pid}" in same_db.stderr
    same_socket = cli(daemon.env, "start", "--http", "127.0.0.1:0",
                      "--db", str(short_tmp / "other.db"))
    assert same_socket.returncode == 1 and "the socket" in same_socket.stderr
    assert daemon.health()["status"] == "ok"  # the first one never noticed


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_commits_what_was_received_and_exits_0(daemon_factory, signum):
    daemon = daemon_factory().start()
    daemon.run_python("import traceforge_client as tf\nwith tf.trace_run('r'):\n"
                      "    for i in range(500):\n        with tf.trace_step('s'):\n"
                      "            pass\nassert tf.flush(10)")
    daemon.process.send_signal(signum)
    assert daemon.process.wait(30) == 0
    assert daemon.query("SELECT count(*) FROM steps WHERE status = 'ok'") == [(500,)]
    assert not daemon.socket.exists()
    assert daemon.query("PRAGMA journal_mode") == [("wal",)]


def test_socket_is_private_and_the_database_in_wal_mode(daemon):
    assert daemon.socket.stat().st_mode & 0o777 == 0o600
    assert daemon.home.stat().st_mode & 0o777 == 0o700
    assert daemon.query("PRAGMA journal_mode") == [("wal",)]
    assert daemon.query("PRAGMA user_version") == [(schema.SCHEMA_VERSION,)]


def test_tcp_listener_on_loopback_takes_clients(daemon_factory, short_tmp):
    daemon = daemon_factory(("--tcp", "127.0.0.1:0")).start()
    tcp = daemon.state().tcp
    assert tcp.startswith("tcp://127.0.0.1:")
    env = {**daemon.env, "TRACEFORGE_ADDRESS": tcp}
    daemon.run_python("import traceforge_client as tf\nwith tf.trace_run('over tcp'):\n"
                      "    pass\nassert tf.flush(10)", env=env)
    assert daemon.query("SELECT run_name FROM runs") == [("over tcp",)]


def test_beyond_loopback_the_token_is_required(daemon_factory):
    daemon = daemon_factory(("--tcp", "0.0.0.0:0", "--token", TOKEN)).start()
    port = daemon.state().tcp.rsplit(":", 1)[1]
    code = ("import json, traceforge_client as tf\nwith tf.trace_run('remote'):\n    pass\n"
            "print(tf.flush(3)); print(json.dumps(tf.stats()))")
    env = {**daemon.env, "TRACEFORGE_ADDRESS": f"tcp://127.0.0.1:{port}"}
    refused = daemon.run_python(code, env=env)
    assert refused.stdout.splitlines()[0] == "False"
    assert "auth_failed" in refused.stderr
    accepted = daemon.run_python(code, env={**env, "TRACEFORGE_TOKEN": TOKEN})
    assert accepted.stdout.splitlines()[0] == "True"
    assert daemon.query("SELECT run_name FROM runs") == [("remote",)]


VERSION_0_DB = VERSION_0_SCHEMA + """
INSERT INTO runs VALUES ('r1', 'old run', 1.0, 2.0, 'error', '{"v": 1}');
INSERT INTO steps VALUES ('s1', 'r1', NULL, 'search', NULL, '{}', '[]', 0, 0, 0.0, 5.0, 1.0, 1.1, NULL);
INSERT INTO steps VALUES ('s2', 'r1', 's1', 'llm', 'm', '{}', NULL, 10, 5, 0.01, 3.0, 1.2, 1.3,
  'ValueError: boom');
"""


def test_a_version_0_database_is_migrated_in_place(daemon_factory, short_tmp):
    daemon = daemon_factory()
    daemon.home.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(daemon.db) as conn:
        conn.executescript(VERSION_0_DB)
    daemon.start()
    assert daemon.query("PRAGMA user_version") == [(schema.SCHEMA_VERSION,)]
    assert daemon.query("SELECT step_id, status, error FROM steps ORDER BY step_id") == [
        ("s1", "ok", None), ("s2", "error", "ValueError: boom"),
    ]
    assert daemon.query("SELECT run_name, status, metadata FROM runs") == [
        ("old run", "error", '{"v": 1}')
    ]
    daemon.run_python("import traceforge_client as tf\nwith tf.trace_run('new run'):\n"
                      "    pass\nassert tf.flush(10)")
    assert len(daemon.query("SELECT * FROM runs")) == 2


def test_a_database_from_a_newer_traceforge_is_refused_clearly(daemon_factory):
    daemon = daemon_factory()
    daemon.home.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(daemon.db) as conn:
        conn.execute(f"PRAGMA user_version = {schema.SCHEMA_VERSION + 1}")
    result = cli(daemon.env, "start", "--http", "127.0.0.1:0")
    assert result.returncode == 1
    assert "newer than this TraceForge" in result.stderr and "Traceback" not in result.stderr


def test_bad_flags_get_a_clear_message(short_tmp):
    env = DaemonProcess(short_tmp / "flags").env
    result = cli(env, "start", "--http", "nonsense")
    assert result.returncode == 1
    assert "expected HOST:PORT" in result.stderr and "Traceback" not in result.stderr


def test_port_zero_prints_the_address_it_got(short_tmp):
    daemon = DaemonProcess(short_tmp / "port0")
    daemon.home.mkdir(parents=True)
    daemon.start()
    try:
        printed = wait_until(lambda: "http:" in daemon.log() and daemon.log())
        assert f"http:      {daemon.http_url}" in printed
        assert not daemon.http_url.endswith(":0")
    finally:
        assert daemon.stop() == 0


def _intact(daemon_env, home, pid) -> None:
    """What a running daemon owns is still there, and it still answers."""
    assert (home / "daemon.sock").exists() and (home / "daemon.json").exists()
    assert int((home / "daemon.pid").read_text()) == pid
    status = cli(daemon_env, "status")
    assert status.returncode == 0 and json.loads(status.stdout)["pid"] == pid


def test_a_refused_second_start_touches_nothing_of_the_running_daemon(short_tmp):
    home = short_tmp / "twice"
    env = DaemonProcess(home).env
    first = cli(env, "start", "--detach", "--http", "127.0.0.1:0")
    assert first.returncode == 0, first.stderr
    pid = int((home / "daemon.pid").read_text())
    try:
        for detach in (("--detach",), ()):
            again = cli(env, "start", *detach, "--http", "127.0.0.1:0")
            assert again.returncode == 1
            assert f"(pid {pid}) is already using the database" in again.stderr
            _intact(env, home, pid)
        log = (home / "daemon.log").read_text()
        assert "already using" not in log  # the refusal is the refused command's own output
        assert not list(home.glob("start-*.log"))
        result = subprocess.run(
            [sys.executable, "-c", "import traceforge_client as tf\n"
             "with tf.trace_run('still here'):\n    pass\nassert tf.flush(10)"],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
    finally:
        assert cli(env, "stop").returncode == 0
    with sqlite3.connect(home / "traceforge.db") as conn:
        assert conn.execute("SELECT run_name FROM runs").fetchall() == [("still here",)]


def test_sigterm_leaves_no_pid_file_behind(short_tmp):
    home = short_tmp / "term"
    env = DaemonProcess(home).env
    assert cli(env, "start", "--detach", "--http", "127.0.0.1:0").returncode == 0
    pid = int((home / "daemon.pid").read_text())
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not (home / "daemon.json").exists(), message="the daemon to stop")
    wait_until(lambda: not _running(pid), message="the process to exit")
    assert not (home / "daemon.pid").exists() and not (home / "daemon.sock").exists()


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True,
                          text=True).stdout.strip()[:1] not in ("Z", "")


def test_a_database_outside_the_home_and_its_wal_and_shm_are_private(daemon_factory,
                                                                     short_tmp):
    elsewhere = short_tmp / "shared"
    elsewhere.mkdir(mode=0o755)
    db = elsewhere / "traces.db"
    old = os.umask(0o022)
    try:
        daemon = daemon_factory(("--db", str(db))).start()
    finally:
        os.umask(old)
    daemon.db = db
    daemon.run_python("import traceforge_client as tf\nwith tf.trace_run('r'):\n"
                      "    pass\nassert tf.flush(10)")
    for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        assert path.stat().st_mode & 0o777 == 0o600, path
    assert daemon.stop() == 0


def test_an_overlong_url_gets_an_error_answer_and_one_log_line(daemon):
    url = daemon.http_url + "/api/runs?name=" + "x" * 9000
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    assert status in (400, 414)
    assert daemon.health()["status"] == "ok"
    log = daemon.log()
    assert "Traceback" not in log and "LineTooLong" in log


def test_status_exits_non_zero_when_the_daemon_is_not_ok(daemon, peers):
    from protocol_support import batch, frame

    assert cli(daemon.env, "status").returncode == 0
    daemon.db.unlink()  # from now on nothing can be stored: failing
    peer = peers(daemon.socket)
    peer.handshake()
    peer.send(frame(batch({"type": "run_start", "run_id": "c" * 32, "name": "r",
                           "start_ns": 1})))
    assert peer.read()["code"] == "storage_error"
    status = cli(daemon.env, "status")
    assert status.returncode == 1 and json.loads(status.stdout)["status"] == "failing"


def test_every_setting_is_a_start_flag_and_in_the_readme():
    from traceforge_daemon.cli import build_parser
    from traceforge_daemon.settings import SETTINGS

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## The daemon"):readme.index("## Client configuration")]
    start = build_parser()._subparsers._group_actions[0].choices["start"]
    flags = {option for action in start._actions for option in action.option_strings}
    for setting in SETTINGS:
        flag = "--" + setting.name.replace("_", "-")
        assert flag in flags, f"{setting.name} has no flag"
        assert f"`{flag}" in section, f"{flag} is not in the README's daemon section"
