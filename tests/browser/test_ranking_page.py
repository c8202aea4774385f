"""The week's ranking page in headless Chromium (issue 6 c), with a screenshot."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from roadwatch.ranking import publish as pub
from roadwatch.ranking.week import Week
from tests.support.server import live_server
from tests.test_ranking_jobs import formula, golden_fixture, rank_rt, rt  # noqa: F401


@pytest.mark.browser
def test_ranking_page_in_chromium(rt: Any, formula: Any, page: Any, screenshot: Any) -> None:  # noqa: F811
    if rt.engine.dialect.name != "sqlite":
        pytest.skip("one backend is enough for the page")
    tz = rt.settings.tz
    ids = golden_fixture(rt, tz)
    for label in ("2026-W46", "2026-W47"):
        w = Week.parse(label, tz)
        pub.publish(
            rt.engine, formula, w, pub.default_as_of(w, 8), "t", w.end + dt.timedelta(hours=9)
        )
    with live_server(rt) as server:
        page.goto(f"{server.url}/rankings/2026-W47")
        eq = page.locator('section[data-district="EQ"][data-kind="segment"]')
        rows = eq.locator("tr.flag-black")
        assert rows.count() == 2
        worst = rows.filter(has_text=ids["segments"][0])
        assert worst.count() == 1 and "黄牌警告" in worst.inner_text()
        why = eq.locator(f'details[data-unit="{ids["segments"][0]}"]')
        why.locator("summary").click()
        assert why.locator("code").nth(0).inner_text() == sorted(ids["s1"])[0]
        svg = page.locator("svg.rw-rank-map")
        assert svg.is_visible() and svg.bounding_box()["width"] > 400
        assert "示意图" in page.inner_text("body")
        assert (
            page.locator("#rw-hash").inner_text()
            == pub.ranking_row(rt.engine.connect(), "2026-W47").content_sha256
        )
        path = screenshot(page, "ranking_2026-W47")
        assert path.stat().st_size > 10_000
        # on a phone the page fits the screen's width: wide tables scroll inside themselves
        page.set_viewport_size({"width": 390, "height": 844})
        page.reload()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        assert page.locator("svg.rw-rank-map").bounding_box()["width"] <= 390
        screenshot(page, "ranking_2026-W47_phone")
        page.set_viewport_size({"width": 1280, "height": 900})
        page.goto(f"{server.url}/rankings/")
        assert page.locator("#rw-weeks tr").count() == 3
        screenshot(page, "rankings_index")
