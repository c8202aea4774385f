"""roadwatch/health.py: the checks of a role, and the health port of roles without a web app."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from typing import Any

import pytest

from roadwatch.health import Check, Health, HealthServer, thread_check
from tests.support.ports import free_port


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as res:
            return int(res.status), bytes(res.read())
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_a_failing_or_raising_check_makes_the_process_unhealthy() -> None:
    health = Health("worker")
    state = {"ok": True}
    health.add("broker", lambda: Check(state["ok"], {"url": "mqtt://x"}))

    def broken() -> Check:
        raise TimeoutError("stuck")

    assert health.body(details=True) == (
        {"status": "ok", "role": "worker", "checks": {"broker": {"ok": True, "url": "mqtt://x"}}},
        200,
    )
    state["ok"] = False
    assert health.body(details=False) == ({"status": "degraded"}, 503)
    state["ok"] = True
    health.add("database", broken)
    body, status = health.body(details=True)
    assert status == 503
    assert body["checks"]["database"] == {"ok": False, "error": "TimeoutError"}


def test_thread_check_sees_a_dead_thread() -> None:
    done = threading.Event()
    t = threading.Thread(target=done.wait)
    t.start()
    check = thread_check(lambda: t, "the case clock")
    assert check().ok
    done.set()
    t.join()
    assert check() == Check(False, {"error": "the case clock is not running"})
    assert not thread_check(lambda: None, "x")().ok


def test_health_server_answers_healthz_and_metrics_on_its_port() -> None:
    state: dict[str, Any] = {"ok": True}
    health = Health("jobs")
    health.add("dispatcher", lambda: Check(state["ok"]))
    server = HealthServer(health, lambda: b"roadwatch_up 1\n").start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        status, body = _get(base + "/healthz")
        assert status == 200
        # loopback sees the details
        assert json.loads(body)["checks"] == {"dispatcher": {"ok": True}}
        state["ok"] = False
        status, body = _get(base + "/healthz")
        assert status == 503 and json.loads(body)["status"] == "degraded"
        assert _get(base + "/metrics") == (200, b"roadwatch_up 1\n")
        assert _get(base + "/other")[0] == 404
    finally:
        server.stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=2)


@pytest.mark.parametrize("role", ["jobs", "worker"])
def test_a_taken_health_port_stops_the_role_with_one_line(tmp_path: Any, role: str) -> None:
    """`roadwatch jobs|worker --health-port P` with P taken (a second instance, a typo in
    the unit) ended in a 30-line `OSError: [Errno 98] Address already in use` traceback,
    exit 1, after the jobs had started their threads or the worker its MQTT session. It
    stops start-up with one line naming the port, exit 2, like `roadwatch web`."""
    import os
    import socket
    import subprocess
    import sys
    from pathlib import Path

    from roadwatch.store import db

    url = f"sqlite:///{tmp_path / 'rw.sqlite3'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    engine.dispose()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ROADWATCH_")},
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        "ROADWATCH_DATABASE_URL": url,
        "ROADWATCH_PHOTO_DIR": str(tmp_path / "photos"),
        # Nothing listens here: the worker keeps trying in the background, the jobs role's
        # notices wait; neither matters to the health port.
        "ROADWATCH_MQTT_URL": f"mqtt://127.0.0.1:{free_port()}",
        "ROADWATCH_EMBEDDED_BROKER": "never",
        "ROADWATCH_RANKING_SCHEDULE_S": "0",
        "ROADWATCH_LEADERS_REFRESH_S": "0",
    }
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = ["--instance", "1"] if role == "worker" else []
        done = subprocess.run(
            [sys.executable, "-m", "roadwatch.cli", role, *args, "--health-port", str(port)],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert (
        f"roadwatch: configuration error: --health-port {port}: cannot listen on "
        f"127.0.0.1:{port}: the port is in use by another program"
    ) in done.stderr, done.stderr[-3000:]
    # Checked before the MQTT session: a second worker 1 by mistake took the running one's
    # session (the newer connection wins) and only then found the port taken.
    assert "MQTT" not in done.stderr, done.stderr[-3000:]
