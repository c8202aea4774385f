"""Issue 22 acceptance e in headless Chromium, on a seeded demo city served as the README
starts it: the hot-spot (recurrence) layer on the command-centre map, a chief's patrol plan
on the phone's work tab, and the monthly review pack page (test-artifacts/leaders-*.png)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect

from roadwatch import clock
from roadwatch.accounts import chiefs as ca
from roadwatch.demo.seed import Seeder
from roadwatch.monthly.pack import Month
from roadwatch.store import db
from tests.conftest import make_settings

from .served import Served, login

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("leaders-serve")
    srv = Served(tmp)
    settings = make_settings(tmp, database_url=f"sqlite:///{srv.db}", photo_dir=str(tmp / "photos"))
    Seeder(
        settings, weeks=5, seed=4, districts=["EQ"], findings_per_week=1500.0, progress=None
    ).run()
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
    assert "Traceback" not in srv.logs()


def test_hot_spots_plan_on_the_phone_and_the_monthly_pack(
    served: Served,
    page: Page,
    browser: Browser,
    playwright_session: Playwright,
    screenshot: Callable[[Page, str], Path],
) -> None:
    login(page, served)
    page.click("#rw-hotspots-toggle")
    expect(page.locator("#rw-hotspots-list li").first).to_be_visible(timeout=60_000)
    rows = page.locator("#rw-hotspots-list li").count()
    assert rows > 0
    assert page.evaluate("() => !!window.roadwatch._map.getLayer('hotspots')")
    page.wait_for_timeout(1500)
    screenshot(page, "leaders-recurrence-layer")

    plans: dict[str, Any] = page.evaluate(
        "() => fetch('/api/leaders/plans?district=EQ').then(r => r.json())"
    )
    chief = max(
        (p for p in plans["plans"] if p["basis"] == "forecast" and p["visits"]),
        key=lambda p: p["expected_findings"],
    )
    engine = db.make_engine(f"sqlite:///{served.db}")
    try:
        with db.make_sessionmaker(engine).begin() as s:
            password = ca.provision(s, only=[chief["chief"]]).created[chief["chief"]]
    finally:
        engine.dispose()
    device = dict(playwright_session.devices["Pixel 7"])
    device.pop("default_browser_type", None)
    context = browser.new_context(**device, locale="zh-CN")
    try:
        phone = context.new_page()
        phone.goto(served.url + "/m/")
        phone.fill("#signin-id", chief["chief"])
        phone.fill("#signin-pw", password)
        phone.click("#signin-form button[type=submit]")
        phone.click("#tabs [data-view=work]")
        items = phone.locator("#plan-list li")
        expect(items).to_have_count(len(chief["visits"]), timeout=30_000)
        expect(items.first).to_contain_text(chief["visits"][0]["when"])
        phone.locator("#plan-list").scroll_into_view_if_needed()
        screenshot(phone, "leaders-phone-plan")
    finally:
        context.close()

    label = _last_month()  # the seed's five weeks reach into it
    page.goto(served.url + f"/reviews/{label}")
    expect(page.locator("#rw-review-table")).to_be_visible()
    assert page.locator("svg.rw-chart").count() == 2
    assert int(page.locator("tr[data-area=city] td").nth(1).inner_text()) > 0
    screenshot(page, "leaders-monthly-pack")
    page.set_viewport_size({"width": 390, "height": 844})  # read on a phone: fits its width
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert (
        max(
            page.locator("svg.rw-chart").evaluate_all(
                "els => els.map(e => e.getBoundingClientRect().width)"
            )
        )
        <= 390
    )


def _tz() -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo("Asia/Shanghai")


def _last_month() -> str:
    now = clock.now().astimezone(_tz())
    return Month(now.year, now.month, _tz()).shift(-1).label


def test_a_site_visit_route_sent_to_the_phones(
    served: Served,
    page: Page,
    browser: Browser,
    playwright_session: Playwright,
    screenshot: Callable[[Page, str], Path],
) -> None:
    """The route page's 发送到手机 to one chief, who finds it on the work tab; another chief
    opens its short URL after signing in: ordered stops, length, time, the sketch map."""
    login(page, served)
    hot: dict[str, Any] = page.evaluate(
        "() => fetch('/api/leaders/hotspots?district=EQ&top=5').then(r => r.json())"
    )
    stops = [r["segment"] for r in hot["segments"]][:5]
    plans: dict[str, Any] = page.evaluate(
        "() => fetch('/api/leaders/plans?district=EQ').then(r => r.json())"
    )
    sent_to, other = sorted(p["chief"] for p in plans["plans"])[:2]
    engine = db.make_engine(f"sqlite:///{served.db}")
    try:
        with db.make_sessionmaker(engine).begin() as s:
            made = ca.provision(s, only=[sent_to, other], reset=[sent_to, other])
            passwords = {**made.created, **made.reset}
    finally:
        engine.dispose()

    page.goto(served.url + "/leaders/route?segments=" + ",".join(stops))
    page.check(f"#rw-route-chiefs input[value='{sent_to}']")
    page.fill("#rw-route-title", "十一月观摩")
    page.click("#rw-route-send")
    link = page.locator("#rw-route-link a")
    expect(link).to_be_visible(timeout=15_000)
    short = link.get_attribute("href") or ""
    assert "/m/?route=" in short
    total_km = page.locator("#rw-route-km").inner_text()
    screenshot(page, "leaders-route-send")

    device = dict(playwright_session.devices["Pixel 7"])
    device.pop("default_browser_type", None)
    for who, url in ((sent_to, served.url + "/m/"), (other, short)):
        context = browser.new_context(**device, locale="zh-CN")
        try:
            phone = context.new_page()
            phone.goto(url)
            phone.fill("#signin-id", who)
            phone.fill("#signin-pw", passwords[who])
            phone.click("#signin-form button[type=submit]")
            if who == sent_to:
                phone.click("#tabs [data-view=work]")
                entry = phone.locator("#route-list li[data-route] button")
                expect(entry).to_have_text("十一月观摩", timeout=30_000)
                entry.click()
            expect(phone.locator("#route-title")).to_have_text("十一月观摩", timeout=30_000)
            expect(phone.locator("#route-stops li")).to_have_count(len(stops))
            assert phone.locator("#route-map circle").count() == len(stops)
            assert phone.locator("#route-map polyline").count() > 0
            expect(phone.locator("#route-totals")).to_contain_text(f"{float(total_km):.2f} 公里")
            phone.locator("#route-view").scroll_into_view_if_needed()
            screenshot(phone, f"leaders-phone-route-{'sent' if who == sent_to else 'link'}")
        finally:
            context.close()
