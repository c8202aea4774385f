"""Issue 18 scope 1: when the Socket.IO Redis queue restarts, browsers resync.

The web role (`roadwatch web`, gunicorn) and an ingest worker (`roadwatch worker`) on
PostgreSQL, a private Mosquitto and a private Redis as the Socket.IO queue: the worker's
live events reach the page only through Redis. Redis is stopped; reports published meanwhile
are stored and acked but their live events are lost on the way (python-socketio drops what
it cannot publish), so the open page does not show them. Redis is started again on the same
port: the web process's queue listener subscribes again and tells its browsers
`resync_needed`; the page resyncs on its open connection (no reconnect) and then shows every
report exactly once. /healthz names Redis while it is down.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

from tests.conftest import REQUIRE_SERVICES
from tests.support.mosquitto import MOSQUITTO_BIN, run_mosquitto
from tests.support.roles import ADMIN, Roles
from tests.support.services import PrivateRedis

from .conftest import PageProblems
from .served import Phone, login, reports_on_segments, strip

pytestmark = [pytest.mark.browser, pytest.mark.integration]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Any]:
    if not MOSQUITTO_BIN.exists() and not shutil.which("mosquitto"):
        message = "mosquitto is not installed (apt-get install mosquitto)"
        if REQUIRE_SERVICES:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    with run_mosquitto(tmp_path) as b:
        yield b


def health(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=5) as res:
            return int(res.status), json.loads(res.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def wait_health(url: str, status: int, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        code, body = health(url)
        if code == status or time.monotonic() > deadline:
            assert code == status, body
            return body
        time.sleep(0.2)


def test_browsers_resync_when_the_redis_queue_comes_back(
    tmp_path: Path,
    broker: Any,
    fresh_pg: str,
    page: Page,
    page_problems: PageProblems,
    screenshot: Callable[[Page, str], Path],
) -> None:
    redis = PrivateRedis()
    redis.start()
    roles = Roles(tmp_path, fresh_pg, broker.port, redis.url)
    phone = Phone(broker.port)
    try:
        served = roles.web()
        roles.worker()
        login(page, served, user=ADMIN)
        page.evaluate(
            """(() => { window.__conn = [];
                new MutationObserver(() => window.__conn.push(
                    document.querySelector('#rw-conn').dataset.state))
                  .observe(document.querySelector('#rw-conn'), {attributes: true}); })()"""
        )
        bodies = [strip(b) for b in reports_on_segments(40, seed=1818)]
        before = page.evaluate("window.roadwatch.reportsSeen")

        # 1. through Redis, as usual
        for b in bodies[:10]:
            phone.publish(b)
        phone.collect(10, timeout=30)
        page.wait_for_function(f"window.roadwatch.reportsSeen >= {before + 10}", timeout=20_000)

        # 2. Redis down: reports are stored and acked, their live events go nowhere
        redis.stop()
        body = wait_health(served.url, 503)
        assert body["checks"]["redis"]["ok"] is False
        assert body["checks"]["database"]["ok"] is True
        for b in bodies[10:30]:
            phone.publish(b)
        acks = phone.collect(20, timeout=30)
        assert sorted(a["id"] for a in acks) == sorted(b["report_id"] for b in bodies[10:30])
        time.sleep(1.0)
        assert page.evaluate("window.roadwatch.reportsSeen") == before + 10, "not lost?"
        assert page.evaluate("window.roadwatch.queueResyncs") == 0

        # 3. Redis back on the same port: the page resyncs on its open connection
        t0 = time.monotonic()
        redis.start()
        page.wait_for_function(f"window.roadwatch.reportsSeen >= {before + 30}", timeout=30_000)
        recovered = time.monotonic() - t0
        wait_health(served.url, 200)
        assert page.evaluate("window.roadwatch.queueResyncs") == 1
        assert page.evaluate("window.roadwatch.connected")
        assert "down" not in page.evaluate("window.__conn")  # no reconnect did it

        # 4. and live again through the new Redis
        for b in bodies[30:]:
            phone.publish(b)
        phone.collect(10, timeout=30)
        page.wait_for_function(f"window.roadwatch.reportsSeen >= {before + 40}", timeout=20_000)
        page.wait_for_timeout(1500)  # anything doubled would have arrived by now
        assert page.evaluate("window.roadwatch.reportsSeen") == before + 40
        for b in bodies:
            assert page.evaluate(f"window.roadwatch.hasReport('{b['report_id']}')")
        screenshot(page, "redis-resync")
        print(f"Redis restart: page complete {recovered:.1f} s after Redis started again")
    except BaseException:
        for role in roles.running:
            print(f"--- {role.name}\n{role.text()[-5000:]}")
        raise
    finally:
        phone.close()
        codes = roles.stop_all()
        redis.close()
    assert codes == {"worker": 0, "web": 0}, codes
    assert "Redis is back; the browsers resync" in served.text()
    for role in roles.running:
        assert "Traceback" not in role.text(), role.text()[-3000:]
