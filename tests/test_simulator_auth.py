"""Issue 20: `roadwatch serve --simulate` against a broker that wants logins. The simulated
chiefs have no broker passwords (only hashes are kept) and the platform's login may not
publish reports (the ACL), so the simulator is not started: one clear line, no retries
filling the log, and the platform itself runs on."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from roadwatch.accounts import chiefs as ca
from roadwatch.simulate import Simulator
from tests.browser.served import Served
from tests.support.mosquitto import MosquittoProcess, free_port

pytestmark = pytest.mark.integration

PLATFORM = "roadwatch-platform"
SECRET = "sim-auth-test-secret"


def _auth_broker(tmp: Path) -> MosquittoProcess:
    passwd, acl = tmp / "passwd", tmp / "acl"
    ca.write_private(passwd, ca.render_passwd({}, platform={PLATFORM: ca.hash_password(SECRET)}))
    ca.write_private(acl, ca.render_acl("roadwatch/v1", PLATFORM))
    return MosquittoProcess(
        tmp,
        port=free_port(),
        allow_anonymous=False,
        extra_conf=f"password_file {passwd}\nacl_file {acl}\n",
    )


def _sim(network_ctx: Any, port: int) -> Simulator:
    from roadwatch.categories import load_categories

    return Simulator(
        network_ctx.network, load_categories(), host="127.0.0.1", port=port, chiefs=3, rate=50
    )


def test_login_refused_says_why_and_lets_an_open_broker_be(
    tmp_path: Path, network_ctx: Any
) -> None:
    with _auth_broker(tmp_path / "auth") as broker:
        t0 = time.monotonic()
        why = _sim(network_ctx, broker.port).login_refused()
        assert why is not None and "broker said" in why, why
        assert time.monotonic() - t0 < 5
    with MosquittoProcess(tmp_path / "open") as broker:
        assert _sim(network_ctx, broker.port).login_refused() is None
    assert "cannot reach" in (_sim(network_ctx, free_port()).login_refused() or "")


def test_serve_simulate_on_an_authenticated_broker_says_so_once(tmp_path: Path) -> None:
    (tmp_path / "broker").mkdir()
    with _auth_broker(tmp_path / "broker") as broker:
        srv = Served(
            tmp_path,
            mqtt_port=broker.port,
            ROADWATCH_MQTT_URL=f"mqtt://{PLATFORM}:{SECRET}@127.0.0.1:{broker.port}",
        )
        srv.args = ["--simulate", "5"]
        srv.start()
        try:
            time.sleep(4)  # a retrying client would have written its lines by now
            assert srv.proc is not None and srv.proc.poll() is None  # the platform runs on
            logs = srv.logs()
        finally:
            srv.stop()
    logs = logs.replace(str(tmp_path), "<tmp>")  # the test's own name says "simulate"
    lines = [ln for ln in logs.splitlines() if "simulat" in ln.lower()]
    assert len(lines) == 1, lines
    assert "simulator not started" in lines[0] and f"127.0.0.1:{broker.port}" in lines[0]
    assert "anonymous" in lines[0]
    assert "ERROR" in lines[0]
    assert logs.lower().count("not authori") <= 1  # the refusal is told once, not retried
