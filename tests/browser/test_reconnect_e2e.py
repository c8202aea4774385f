"""Issue 7 acceptance b: cut the connection, publish 50 reports, reconnect: all 50, none twice.

The connection is cut the hard way: the server process is stopped (the page shows its
"server down" state), 50 reports are published to Mosquitto meanwhile (the project's
configuration; the platform's persistent session keeps them queued), and the server is
started again on the same port and database. The page reconnects by itself, resyncs from
its last seq and must then show each of the 50 exactly once.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.conftest import REQUIRE_SERVICES
from tests.support.mosquitto import MOSQUITTO_BIN, run_mosquitto

from .conftest import PageProblems
from .served import Phone, Served, login, reports_on_segments, strip

pytestmark = [pytest.mark.browser, pytest.mark.integration]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[object]:
    if not MOSQUITTO_BIN.exists() and not shutil.which("mosquitto"):
        message = "mosquitto is not installed (apt-get install mosquitto)"
        if REQUIRE_SERVICES:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    with run_mosquitto(tmp_path) as b:
        yield b


def test_b_server_restart_loses_and_doubles_nothing(
    tmp_path: Path,
    broker: object,
    page: Page,
    page_problems: PageProblems,
    screenshot: Callable[[Page, str], Path],
) -> None:
    port = broker.port  # type: ignore[attr-defined]
    served = Served(tmp_path, mqtt_port=port).start()
    phone = Phone(port)
    try:
        login(page, served)
        page.evaluate(
            """(() => { window.__conn = [];
                new MutationObserver(() => window.__conn.push(
                    document.querySelector('#rw-conn').dataset.state))
                  .observe(document.querySelector('#rw-conn'), {attributes: true}); })()"""
        )
        before = page.evaluate("window.roadwatch.reportsSeen")
        seq_before = page.evaluate("window.roadwatch.lastSeq")

        served.stop()
        # While the server is away the page's requests fail; that is the point here.
        page_problems.allow(r"socket\.io|ERR_CONNECTION_REFUSED|WebSocket")
        page.wait_for_function("!window.roadwatch.connected", timeout=10_000)
        page.wait_for_selector("#rw-down:not([hidden])", timeout=10_000)
        screenshot(page, "server-down")

        bodies = [strip(b) for b in reports_on_segments(50, seed=99)]
        for b in bodies:
            phone.publish(b)  # queued by Mosquitto for the platform's session
        time.sleep(1.0)
        assert phone.acks.empty()  # nobody has processed them yet

        served.start()
        acks = phone.collect(50, timeout=60)
        assert sorted(a["id"] for a in acks) == sorted(b["report_id"] for b in bodies)
        assert {a["status"] for a in acks} <= {"accepted", "needs_review"}

        page.wait_for_function(
            f"window.roadwatch.connected && window.roadwatch.reportsSeen >= {before + 50}",
            timeout=30_000,
        )
        page.wait_for_timeout(1500)  # anything doubled would have arrived by now
        assert page.evaluate("window.roadwatch.reportsSeen") == before + 50
        for b in bodies:
            assert page.evaluate(f"window.roadwatch.hasReport('{b['report_id']}')")
        assert page.evaluate("window.roadwatch.lastSeq") > seq_before
        assert page.locator("#rw-down").is_hidden()
        states = page.evaluate("window.__conn")
        assert "down" in states and states[-1] == "live"
        # every recoloured segment agrees with the database
        for b in bodies[:10]:
            ack = next(a for a in acks if a["id"] == b["report_id"])
            if ack.get("segment_id"):
                state = page.evaluate(f"window.roadwatch.featureState('{ack['segment_id']}')")
                assert state.get("open", 0) >= 1, (ack, state)
    finally:
        phone.close()
        served.stop()
    assert "Traceback" not in served.logs()
    assert "first start" not in served.log_path.read_text()  # the admin was made only once
