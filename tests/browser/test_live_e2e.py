"""Issue #3 acceptance a, end to end: `roadwatch serve` on embedded defaults, a browser, MQTT.

The server runs as a separate process exactly as the README's run command starts it (a
SQLite file, the embedded broker because nothing listens on its MQTT address, the
bundled demo network). Chromium opens the page; CONTRACT.md's example report is
published over MQTT; its ack must be `accepted` with a segment, and the page must show it
and recolour that segment without reloading.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from playwright.sync_api import Page

from tests.support.examples import contract_example
from tests.support.server import free_port

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[dict[str, Any]]:
    http_port, mqtt_port = free_port(), free_port()
    env = {
        **os.environ,
        "ROADWATCH_PORT": str(http_port),
        "ROADWATCH_MQTT_URL": f"mqtt://127.0.0.1:{mqtt_port}",
        "ROADWATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'rw.sqlite3'}",
        "ROADWATCH_PHOTO_DIR": str(tmp_path / "photos"),
    }
    env.pop("ROADWATCH_CONFIG", None)
    log = (tmp_path / "serve.log").open("wb")
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{http_port}"
    try:
        while True:
            if proc.poll() is not None:
                raise AssertionError((tmp_path / "serve.log").read_text(errors="replace"))
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=1) as res:
                    if json.loads(res.read())["status"] == "ok":
                        break
            except OSError:
                pass
            if time.monotonic() - t0 > 120:
                raise AssertionError("roadwatch serve was not healthy within 120 s")
            time.sleep(0.2)
        startup = time.monotonic() - t0
        print(f"\nroadwatch serve healthy after {startup:.1f} s")
        yield {"url": url, "mqtt_port": mqtt_port, "startup_s": startup, "log": tmp_path}
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()
    served_log = (tmp_path / "serve.log").read_text(errors="replace")
    assert "EMBEDDED broker" in served_log  # the log says which broker it used
    assert "Traceback" not in served_log


def publish_and_wait_for_ack(port: int, body: dict[str, Any]) -> dict[str, Any]:
    acks: queue.Queue[dict[str, Any]] = queue.Queue()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"phone-{uuid.uuid4().hex[:6]}")
    client.on_message = lambda _c, _u, m: acks.put(json.loads(m.payload))
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.subscribe(f"roadwatch/v1/acks/{body['reporter_id']}", qos=1)
        time.sleep(0.3)  # the embedded broker answers SUBACK quickly; be sure it is set
        client.publish(
            f"roadwatch/v1/reports/{body['reporter_id']}", json.dumps(body), qos=1
        ).wait_for_publish(5)
        return acks.get(timeout=10)
    finally:
        client.disconnect()
        client.loop_stop()


def test_fresh_start_shows_segments_and_a_live_report(
    served: dict[str, Any], page: Page, screenshot: Callable[[Page, str], Path]
) -> None:
    assert served["startup_s"] < 180
    t0 = time.monotonic()
    page.goto(served["url"] + "/")
    page.wait_for_function("window.roadwatch && window.roadwatch.ready", timeout=30_000)
    print(f"page ready (2,495 segments drawn, live feed synced) in {time.monotonic() - t0:.2f} s")
    assert page.evaluate("window.roadwatch.segmentCount") == 2495
    drawn = page.evaluate(
        "new Set(window.roadwatch._map.querySourceFeatures('segments').map(f => f.id)).size"
    )
    assert drawn == 2495
    assert page.evaluate("window.roadwatch.reportsSeen") == 0

    body = contract_example()
    ack = publish_and_wait_for_ack(served["mqtt_port"], body)
    t_ack = time.monotonic()
    assert ack["status"] == "accepted", ack
    assert ack["id"] == body["report_id"]
    assert ack["segment_id"] and ack["segment_name"].startswith("花园路（")
    assert ack["district"] == "金水区"

    page.wait_for_function("window.roadwatch.reportsSeen === 1", timeout=5_000)
    print(f"report on the page {1000 * (time.monotonic() - t_ack):.0f} ms after its ack")
    state = page.evaluate(f"window.roadwatch.featureState({json.dumps(ack['segment_id'])})")
    assert state.get("open") == 1
    assert page.locator("#rw-conn").get_attribute("data-state") == "live"
    screenshot(page, "live-map-fresh-start")

    # The page and the database agree.
    with urllib.request.urlopen(served["url"] + f"/api/reports/{body['report_id']}") as res:
        stored = json.loads(res.read())
    assert stored["segment_id"] == ack["segment_id"] and stored["crs_in"] == "GCJ02"
