"""The demo city in headless Chromium (issue 17 acceptance a): a seeded database served as
the README starts it; screenshots of the live map, a published week and a case's history
(test-artifacts/demo-*.png)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

from roadwatch.demo.seed import Seeder
from tests.conftest import make_settings

from .served import Served, login

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("demo-serve")
    srv = Served(tmp)
    settings = make_settings(tmp, database_url=f"sqlite:///{srv.db}", photo_dir=str(tmp / "photos"))
    # a reduced city (one district) up to now: four published weeks, open cases today
    result = Seeder(
        settings, weeks=4, seed=3, districts=["EQ"], findings_per_week=1500.0, progress=None
    ).run()
    assert len(result.weeks) == 4
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
    assert "Traceback" not in srv.logs()


def test_demo_map_week_and_case_history(
    served: Served, page: Page, page_problems: Any, screenshot: Callable[[Page, str], Path]
) -> None:
    login(page, served)
    state = page.evaluate("fetch('/api/centre/state').then(r => r.json())")
    states = state["states"].values()
    assert any(s[0] > 0 for s in states), "no segment with open cases on the map"
    assert any(s[1] > 0 for s in states), "no overdue segment on the map"
    page.wait_for_timeout(1500)
    screenshot(page, "demo-map")

    page.goto(served.url + "/rankings/")
    text = page.text_content("body") or ""
    with sqlite3.connect(served.db) as conn:
        weeks = [w for (w,) in conn.execute("SELECT week FROM rankings ORDER BY week")]
        flagged = [
            w
            for w, content in conn.execute("SELECT week, content FROM rankings ORDER BY week")
            if {"red", "black"}
            <= {s["flag"] for lg in json.loads(content)["leagues"] for s in lg["scores"]}
        ]
        case = conn.execute(
            "SELECT r.id FROM reports r WHERE r.case_status = 'closed' AND EXISTS (SELECT 1 "
            "FROM report_transitions t WHERE t.report_id = r.id AND t.to_status = 'reopened') "
            "AND r.overdue ORDER BY r.id LIMIT 1"
        ).fetchone()[0]
    assert len(weeks) >= 4 and all(w in text for w in weeks)
    screenshot(page, "demo-rankings-index")
    assert flagged, "no published week with both a red and a black flag"
    page.goto(served.url + f"/rankings/{flagged[-1]}")
    page.wait_for_load_state("networkidle")
    screenshot(page, "demo-ranking-week")

    page_problems.allow(r"favicon\.ico")  # Chromium asks for one beside a JSON document
    page.goto(served.url + f"/api/reports/{case}")
    body = json.loads(page.text_content("body") or "{}")
    steps = [h["status"] for h in body["history"]]
    assert "dispatched" in steps and "reopened" in steps and steps[-1] == "closed", steps
    screenshot(page, "demo-case-history")
