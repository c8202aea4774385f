"""Issue 21.4 / acceptance d, the phone's part: before a report goes out the app asks the
platform whether it is certain of the segment; when not (on a good fix too), the chief taps
one of its 2-3 candidates drawn on a small map and that segment is the one stored; when
certain, the report goes at once with no extra tap. Real Chromium on an emulated phone,
geolocation emulated by Playwright, the real server and Mosquitto."""

from __future__ import annotations

import re
from typing import Any

import pytest
import shapely
from playwright.sync_api import BrowserContext, expect
from sqlalchemy import select

from roadwatch.geolocate import ask_on_the_spot
from roadwatch.store import models
from tests.browser import test_phone_app as phone_app
from tests.browser.conftest import save_screenshot
from tests.browser.test_phone_app import (
    Problems,
    Stack,
    _segment_midpoint,
    pick_category,
    sign_in,
    wait_for_fix,
)

# The phone tests' fixtures (a server, Mosquitto, chiefs; an emulated phone), this module's own.
stack = phone_app.stack
phone = phone_app.phone

pytestmark = [pytest.mark.browser, pytest.mark.integration]

CATEGORY = "E0504"
ACCURACY_M = 10.0  # a good fix: the old pick-list (poor fix only) stays hidden


def _uncertain_spot(ctx: Any, chief: str) -> tuple[float, float, dict[str, Any]]:
    """A point between segments (near a junction) where the platform, asked as the app
    asks, is not certain and offers at least two candidates."""
    for seg in ctx.network.segments:
        line = seg.geometry if seg.geometry.geom_type == "LineString" else None
        if line is None or line.length == 0:
            continue
        for f in (0.02, 0.98):
            p = line.interpolate(f, normalized=True)
            offer = ask_on_the_spot(
                ctx, p.x, p.y, accuracy_m=ACCURACY_M, reporter_id=chief, category=CATEGORY
            )
            cands = offer["candidates"]
            if offer["certain"] is False and len(cands) >= 2 and cands[1]["distance_m"] < 60:
                return p.y, p.x, offer
    pytest.fail("no uncertain spot on the demo network")


def _reports(stack: Stack, chief: str) -> list[models.Report]:
    with stack.runtime.sessions() as s:
        return list(
            s.scalars(select(models.Report).where(models.Report.reporter_id == chief)).all()
        )


def test_candidates_offered_only_when_uncertain_and_the_pick_is_stored(
    phone: tuple[BrowserContext, Problems], stack: Stack
) -> None:
    context, _ = phone
    chief, own = stack.chiefs[0]
    ctx = stack.runtime.ctx
    lat, lon, offer = _uncertain_spot(ctx, chief)
    picked = offer["candidates"][1]  # not the platform's best: the chief knows better
    context.set_geolocation({"latitude": lat, "longitude": lon, "accuracy": ACCURACY_M})
    page = context.new_page()
    sign_in(page, stack, chief)
    wait_for_fix(page)
    expect(page.locator("#near")).to_be_hidden()  # a good fix: no pick-list up front
    pick_category(page, CATEGORY)
    page.fill("#note", "路口")
    page.click("#report-send")

    spot = page.locator("#spot")
    expect(spot).to_be_visible()
    picks = page.locator("#spot-list button.spot-pick")
    expect(picks).to_have_count(len(offer["candidates"]))
    for i, c in enumerate(offer["candidates"]):
        expect(picks.nth(i)).to_have_attribute("data-segment", c["id"])
        expect(picks.nth(i)).to_contain_text(f"约 {round(c['distance_m'])} 米")
        if c["name"]:
            expect(picks.nth(i)).to_contain_text(c["name"])
    # the small map: one line per candidate at least, and "you are here"
    assert page.locator("#spot-map polyline").count() >= len(offer["candidates"])
    expect(page.locator("#spot-map circle.me")).to_have_count(1)
    expect(page.locator("#report-send")).to_be_disabled()  # nothing sent before the tap
    assert _reports(stack, chief) == []
    # the question takes the focus and is announced (a keyboard, a screen reader)
    first = offer["candidates"][0]["id"]
    page.wait_for_function(f"document.activeElement.dataset.segment === '{first}'")
    expect(page.locator("#spot-ask")).to_have_attribute("role", "alert")
    save_screenshot(page, "phone-spot-candidates")

    page.locator(f"#spot-list button[data-segment='{picked['id']}']").click()
    expect(spot).to_be_hidden()
    expect(page.locator("#report-done")).to_have_attribute(
        "data-receipt", "accepted", timeout=20000
    )
    (report,) = _reports(stack, chief)
    assert report.segment_hint == picked["id"] and report.segment_id == picked["id"]
    assert report.status == "accepted"

    # Mid-block on the chief's own segment the platform is certain: sent at once, no tap.
    lat2, lon2 = _segment_midpoint(stack.runtime, own)
    sure = ask_on_the_spot(
        ctx, lon2, lat2, accuracy_m=ACCURACY_M, reporter_id=chief, category=CATEGORY
    )
    assert sure["certain"] is True
    context.set_geolocation({"latitude": lat2, "longitude": lon2, "accuracy": ACCURACY_M})
    expect(page.locator("#gps")).to_contain_text("刚刚")
    page.wait_for_function(
        f"Math.abs(window.rwApp.fix.lat - {lat2}) < 1e-9"
        f" && Math.abs(window.rwApp.fix.lon - {lon2}) < 1e-9"
    )
    pick_category(page, CATEGORY)
    with page.expect_response(lambda r: "/m/api/segments/near" in r.url) as asked:
        page.click("#report-send")
    assert asked.value.json()["certain"] is True  # it did ask, and was told certain
    expect(page.locator("#report-done")).to_have_attribute(
        "data-receipt", "accepted", timeout=20000
    )
    expect(spot).to_be_hidden()
    rows = {r.id: r for r in _reports(stack, chief)}
    assert len(rows) == 2
    (second,) = [r for r in rows.values() if r.id != report.id]
    assert second.segment_hint is None and second.segment_id == own


def test_candidate_lines_come_with_the_answer(stack: Stack) -> None:
    """The map's geometry: each candidate's lines, near the point asked about."""
    import requests

    chief, _ = stack.chiefs[1]
    lat, lon, offer = _uncertain_spot(stack.runtime.ctx, chief)
    s = requests.Session()
    res = s.post(
        stack.url + "/m/api/session",
        json={"reporter_id": chief, "password": stack.passwords[chief]},
        timeout=10,
    )
    assert res.status_code == 200
    body = s.get(
        stack.url + "/m/api/segments/near",
        params={
            "lat": str(lat),
            "lon": str(lon),
            "accuracy": str(ACCURACY_M),
            "category": CATEGORY,
        },
        timeout=10,
    ).json()
    assert [c["id"] for c in body["candidates"]] == [c["id"] for c in offer["candidates"]]
    here = shapely.Point(lon, lat)
    for c in body["candidates"]:
        line = shapely.MultiLineString(c["lines"])
        assert line.distance(here) * 111_000 < c["distance_m"] + 30


def test_report_tapped_as_the_sign_in_ends_is_kept_and_sent_after_signing_in_again(
    phone: tuple[BrowserContext, Problems], stack: Stack
) -> None:
    """The device credential is revoked (or expires) while the chief fills in a report: the
    platform's 401 to the on-the-spot question signs the app out, and the report tapped
    must stay in the outbox and go once after the next sign-in (it was lost: the payload
    read the chief's id after the question, from a sign-in no longer there)."""
    from roadwatch.accounts import chiefs as ca

    context, problems = phone
    chief, own = stack.chiefs[2]
    lat, lon = _segment_midpoint(stack.runtime, own)
    context.set_geolocation({"latitude": lat, "longitude": lon, "accuracy": ACCURACY_M})
    page = context.new_page()
    sign_in(page, stack, chief)
    wait_for_fix(page)
    pick_category(page, CATEGORY)
    page.fill("#note", "登录失效时上报")
    with stack.runtime.sessions.begin() as s:
        assert ca.revoke_devices(s, chief)
    problems.expected = re.compile(r"status of 401")
    page.click("#report-send")
    expect(page.locator("#view-signin")).to_be_visible()
    expect(page.locator("#signin-error")).to_contain_text("请重新登录")
    page.wait_for_function(
        "() => rwStore.all('outbox').then(items => items.length === 1)", timeout=5000
    )
    assert _reports(stack, chief) == []

    page.fill("#signin-id", chief)
    page.fill("#signin-pw", stack.passwords[chief])
    page.click("#signin-form button[type=submit]")
    expect(page.locator("#tabs")).to_be_visible()
    page.click("#tabs [data-view=outbox]")
    expect(page.locator("#outbox-list li[data-state=accepted]")).to_have_count(1, timeout=20000)
    (report,) = _reports(stack, chief)
    assert report.note == "登录失效时上报" and report.reporter_id == chief


def test_the_heading_the_platform_was_asked_with_goes_with_the_report(
    phone: tuple[BrowserContext, Problems], stack: Stack
) -> None:
    """A moving phone knows its direction of travel: the app asked the platform with it
    (certain: no question) but sent the report without it, so the report was placed by the
    bars without a direction and went to review (3 of 4 such spots on Monaco) though the
    chief had been told nothing was in doubt. The report carries the same heading."""
    context, _ = phone
    chief, own = stack.chiefs[3]
    lat, lon = _segment_midpoint(stack.runtime, own)
    page = context.new_page()
    sign_in(page, stack, chief)
    # Playwright's geolocation has no heading: the DevTools protocol's override does.
    cdp = context.new_cdp_session(page)
    cdp.send(
        "Emulation.setGeolocationOverride",
        {"latitude": lat, "longitude": lon, "accuracy": ACCURACY_M, "heading": 87.6, "speed": 1.4},
    )
    wait_for_fix(page)
    page.wait_for_function("window.rwApp.fix && window.rwApp.fix.heading !== null")
    pick_category(page, CATEGORY)
    with page.expect_response(lambda r: "/m/api/segments/near" in r.url) as asked:
        page.click("#report-send")
    assert "heading=88" in asked.value.url
    expect(page.locator("#report-done")).to_have_attribute(
        "data-receipt", re.compile("accepted|review"), timeout=20000
    )
    (report,) = _reports(stack, chief)
    assert report.heading_deg == 88.0


def test_candidates_keep_their_names_in_english(
    phone: tuple[BrowserContext, Problems], stack: Stack
) -> None:
    """In English the candidates' labels were translated twice (the page's observer saw its
    own change): "路名（甲至乙） (about 14 m)" still has Chinese and a Latin bracket, so the
    platform-error rule cut it to "about 14 m" and the chief saw no names, only letters."""
    context, _ = phone
    chief, _own = stack.chiefs[1]
    lat, lon, offer = _uncertain_spot(stack.runtime.ctx, chief)
    context.set_geolocation({"latitude": lat, "longitude": lon, "accuracy": ACCURACY_M})
    page = context.new_page()
    sign_in(page, stack, chief)
    page.click("#lang")  # English: the page reloads, still signed in
    expect(page.locator("#tabs")).to_be_visible()
    expect(page.locator("#lang")).to_have_text("中文")
    wait_for_fix(page)
    pick_category(page, CATEGORY)
    page.click("#report-send")
    picks = page.locator("#spot-list button.spot-pick")
    expect(picks).to_have_count(len(offer["candidates"]))
    for i, c in enumerate(offer["candidates"]):
        expect(picks.nth(i)).to_contain_text(f"(about {round(c['distance_m'])} m)")
        expect(picks.nth(i)).to_contain_text(c["name"] or c["id"])
    expect(page.locator("#spot .hint")).to_have_text(
        "The platform is not sure which segment you are on. Tap one:"
    )
    page.locator("#spot-skip").click()
    expect(page.locator("#report-done")).to_have_attribute(
        "data-receipt", re.compile("accepted|review"), timeout=20000
    )


def test_a_pick_tapped_offline_is_kept_and_not_called_unasked(
    phone: tuple[BrowserContext, Problems], stack: Stack
) -> None:
    """The network drops while the candidates are shown: the tap is kept with the report
    and sent once online; the form must not say the segment could not be asked (it said
    so after every offline tap, although the chief had just chosen one)."""
    context, problems = phone
    chief, _own = stack.chiefs[4]
    lat, lon, offer = _uncertain_spot(stack.runtime.ctx, chief)
    picked = offer["candidates"][1]
    context.set_geolocation({"latitude": lat, "longitude": lon, "accuracy": ACCURACY_M})
    page = context.new_page()
    sign_in(page, stack, chief)
    page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=10000)
    wait_for_fix(page)
    pick_category(page, CATEGORY)
    page.click("#report-send")
    expect(page.locator("#spot")).to_be_visible()
    context.set_offline(True)
    problems.offline = True
    expect(page.locator("#net")).to_have_attribute("data-state", "offline")
    page.locator(f"#spot-list button[data-segment='{picked['id']}']").click()
    expect(page.locator("#report-done")).to_contain_text("已保存在手机上")
    expect(page.locator("#report-done")).not_to_contain_text("不能询问所在路段")
    assert _reports(stack, chief) == []
    context.set_offline(False)
    problems.offline = False
    expect(page.locator("#report-done")).to_have_attribute(
        "data-receipt", "accepted", timeout=30000
    )
    (report,) = _reports(stack, chief)
    assert report.segment_hint == picked["id"] and report.segment_id == picked["id"]


def test_a_report_is_kept_when_the_app_reloads_while_its_chief_is_asked(
    phone: tuple[BrowserContext, Problems], stack: Stack
) -> None:
    """The report went to the phone's outbox only after the tap: a reload (or a closed
    app) while the candidates showed lost it and its photos. It is kept first, held while
    the chief is asked, and a page that finds it held by another (reloaded) page sends it
    as it is, for staff to place where the platform is not sure."""
    context, _ = phone
    chief, _own = stack.chiefs[3]
    before = {r.id for r in _reports(stack, chief)}
    lat, lon, _offer = _uncertain_spot(stack.runtime.ctx, chief)
    context.set_geolocation({"latitude": lat, "longitude": lon, "accuracy": ACCURACY_M})
    page = context.new_page()
    sign_in(page, stack, chief)
    wait_for_fix(page)
    pick_category(page, CATEGORY)
    page.fill("#note", "问路段时刷新")
    page.click("#report-send")
    expect(page.locator("#spot")).to_be_visible()
    expect(page.locator("#outbox-count")).to_have_text("1")  # kept, held for the answer
    assert {r.id for r in _reports(stack, chief)} == before  # nothing sent yet
    page.reload()
    page.wait_for_function(
        f"() => window.rwApp && window.rwApp.auth && window.rwApp.auth.reporter_id === '{chief}'"
    )

    def sent() -> list[models.Report]:
        return [r for r in _reports(stack, chief) if r.id not in before]

    page.wait_for_function(
        "() => document.querySelector('#outbox-count').textContent === ''", timeout=30_000
    )
    (report,) = sent()
    assert report.note == "问路段时刷新" and report.segment_hint is None
