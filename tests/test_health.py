"""roadwatch/health.py: the checks of a role, and the health port of roles without a web app."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from typing import Any

import pytest

from roadwatch.health import Check, Health, HealthServer, thread_check


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
