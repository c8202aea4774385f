"""Ingest and web in separate processes: `roadwatch worker` → Redis → web → browser client.

README, Configuration: ROADWATCH_SOCKETIO_QUEUE lets several processes share the live feed. Here a
real `roadwatch worker` process ingests from the real Mosquitto into PostgreSQL and emits
through the real Redis; a web process (in this test process) delivers to a Socket.IO client.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import socketio

from roadwatch.runtime import Runtime
from tests.conftest import MOSQUITTO, make_settings, need_service
from tests.support.auth import session_cookie
from tests.support.examples import contract_example
from tests.support.server import AckListener, live_server

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent
REDIS = "redis://127.0.0.1:6379/0"


def test_worker_process_reaches_browser_through_redis(
    tmp_path: Path, fresh_pg: str, network_ctx: Any
) -> None:
    need_service("Redis", "127.0.0.1", 6379)
    need_service("Mosquitto", *MOSQUITTO)
    root = f"mp{uuid.uuid4().hex[:6]}/v1"
    settings = make_settings(
        tmp_path, database_url=fresh_pg, socketio_queue=REDIS, mqtt_topic_root=root
    )
    web = Runtime.build(settings, ctx=network_ctx)
    env = {
        **os.environ,
        "ROADWATCH_DATABASE_URL": fresh_pg,
        "ROADWATCH_SOCKETIO_QUEUE": REDIS,
        "ROADWATCH_MQTT_TOPIC_ROOT": root,
        "ROADWATCH_MQTT_CLIENT_ID": f"mp-{uuid.uuid4().hex[:6]}",
        "ROADWATCH_EMBEDDED_BROKER": "never",
    }
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "roadwatch.cli", "worker"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    events: queue.Queue[dict[str, Any]] = queue.Queue()
    sio = socketio.Client()
    sio.on("report", events.put, namespace="/live")
    device = None
    try:
        with live_server(web) as server:
            sio.connect(
                server.url,
                namespaces=["/live"],
                transports=["websocket"],
                headers={"Cookie": session_cookie(server.app, web)},
            )
            deadline = time.monotonic() + 60
            while "MQTT: subscribed" not in (tmp_path / "worker.log").read_text(errors="replace"):
                assert worker.poll() is None, (tmp_path / "worker.log").read_text()
                assert time.monotonic() < deadline, "worker did not connect"
                time.sleep(0.1)
            device = AckListener("127.0.0.1", 1883, root)
            body = contract_example()
            device.publish("zz-jinshui-0421", body)
            try:
                acks = device.collect(1, timeout=30)
            except AssertionError as e:  # say what the worker was doing
                text = (tmp_path / "worker.log").read_text(errors="replace")
                raise AssertionError(f"{e}; worker log:\n{text[-3000:]}") from e
            assert acks[0]["status"] == "accepted"
            ev = events.get(timeout=10)
            assert ev["id"] == body["report_id"] and ev["seq"] >= 1
            # The web process answers resync from the database the worker wrote.
            answer = sio.call("resync", {"since": 0}, namespace="/live", timeout=5)
            assert answer["ok"] is True and answer["seq"] >= ev["seq"]
            sio.disconnect()
    finally:
        if device is not None:
            device.close()
        worker.terminate()
        worker.wait(20)
        log.close()
        web.stop()
    assert worker.returncode == 0
