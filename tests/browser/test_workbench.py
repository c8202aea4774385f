"""The duty officer's workbench in headless Chromium on PostgreSQL (issue 19 acceptance a,
tasks 7-10): settle the review queue, export this week's cases to XLSX, create a district
user who then sees only their district, replay the last hour; each result checked in the
database and the audit log under the person who did it. Screenshots in test-artifacts/."""

from __future__ import annotations

import datetime as dt
import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from playwright.sync_api import Page
from sqlalchemy import delete, select, update
from sqlalchemy import text as sa_text

from roadwatch.ranking.week import Week
from roadwatch.store import audit, models
from roadwatch.web.exports import HEADER, LABELS
from tests.support.auth import PASSWORD, make_user
from tests.support.examples import CST, contract_example
from tests.support.review import in_review_beside
from tests.support.server import LiveServer, live_server
from tests.test_pipeline import inbound

pytestmark = [pytest.mark.browser, pytest.mark.integration]


@pytest.fixture
def pg(runtime: Any) -> Iterator[Any]:
    """The PostgreSQL runtime only (the acceptance asks for real PostgreSQL)."""
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("the workbench's acceptance runs on PostgreSQL")
    yield runtime


@pytest.fixture
def server(pg: Any) -> Iterator[LiveServer]:
    with live_server(pg) as s:
        yield s


def log_in(
    page: Page, server: LiveServer, username: str, path: str, password: str = PASSWORD
) -> None:
    """Through the real login form, then on to `path`."""
    page.goto(f"{server.url}/login?next={path}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}{path}*")


def segment_of(rt: Any, district: str, skip: int = 0) -> str:
    return [s.id for s in rt.ctx.network.segments if s.district == district][skip * 40]


def audit_rows(rt: Any, action: str) -> list[dict[str, Any]]:
    with rt.sessions() as session:
        return audit.entries(session, action=action, limit=100)


def test_settle_the_review_queue(pg: Any, server: LiveServer, page: Page, screenshot: Any) -> None:
    js_a = in_review_beside(pg, segment_of(pg, "JS", 0))
    js_b = in_review_beside(pg, segment_of(pg, "JS", 1))
    zy = in_review_beside(pg, segment_of(pg, "ZY", 0))
    user = make_user(pg, "district_staff", "JS")
    log_in(page, server, user.username, "/review")
    page.wait_for_function("window.roadwatch && window.roadwatch.review.ready")
    # scoped to the user's district: the ZY report is not there
    ids = page.locator("#rw-review-items li").evaluate_all("els => els.map(e => e.dataset.id)")
    assert sorted(ids) == sorted([js_a, js_b])
    assert page.inner_text("#rw-review-count") == "2"
    assert page.locator("#rw-review-map canvas").count() == 1
    first = ids[0]
    candidate = page.locator("#rw-review-choices button[data-segment]").first
    chosen = candidate.get_attribute("data-segment")
    screenshot(page, "workbench_review_queue")
    page.keyboard.press("1")  # one key settles onto the first candidate
    page.wait_for_function("window.roadwatch.review.settled === 1")
    page.fill("#rw-review-note", "照片看不出路段")
    page.click("#rw-review-invalid")
    page.wait_for_function("window.roadwatch.review.settled === 2")
    assert page.inner_text("#rw-review-count") == "0"
    screenshot(page, "workbench_review_done")

    with pg.sessions() as session:
        a = session.get(models.Report, first)
        b = session.get(models.Report, ids[1])
        z = session.get(models.Report, zy)
        assert a is not None and b is not None and z is not None
        assert (a.status, a.segment_id) == ("accepted", chosen)
        assert (b.status, b.case_status) == ("invalid", "invalid")
        assert z.status == "needs_review"
        moves = session.scalars(
            select(models.ReportTransition)
            .where(models.ReportTransition.report_id.in_([first, ids[1]]))
            .where(models.ReportTransition.from_status == "needs_review")
        ).all()
    assert {(m.report_id, m.to_status, m.by) for m in moves} == {
        (first, "accepted", user.username),
        (ids[1], "invalid", user.username),
    }
    settled = {r["target"]: r for r in audit_rows(pg, "review.settle")}
    assert settled[first]["actor"] == user.username and settled[ids[1]]["actor"] == user.username
    assert settled[ids[1]]["detail"]["note"] == "照片看不出路段"


def test_create_a_district_user_who_then_sees_only_their_district(
    pg: Any, server: LiveServer, page: Page, browser: Any, screenshot: Any
) -> None:
    admin = make_user(pg, "admin")
    name = f"zy-duty-{uuid.uuid4().hex[:6]}"
    js_report = in_review_beside(pg, segment_of(pg, "JS", 2))
    zy_report = in_review_beside(pg, segment_of(pg, "ZY", 2))
    log_in(page, server, admin.username, "/admin/users")
    page.wait_for_function("window.roadwatch && window.roadwatch.users.ready")
    form = page.locator("#rw-user-add")
    form.get_by_label("用户名", exact=True).fill(name)
    form.get_by_label("密码", exact=True).fill("zy-duty-password")
    form.locator("select[name=role]").select_option("district_staff")
    form.locator("select[name=district]").select_option("ZY")
    form.locator("button[type=submit]").click()
    row = page.locator(f'#rw-users tr[data-user="{name}"]')
    row.wait_for()
    assert "中原区" in row.inner_text()
    screenshot(page, "workbench_users")
    with pg.sessions() as session:
        made = session.scalar(select(models.User).where(models.User.username == name))
        assert made is not None and (made.role, made.district, made.active) == (
            "district_staff",
            "ZY",
            True,
        )
    (added,) = [r for r in audit_rows(pg, "user.add") if r["target"] == name]
    assert added["actor"] == admin.username

    # the new user logs in (a browser of their own) and sees their district only
    context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN")
    other = context.new_page()
    try:
        log_in(other, server, name, "/review", password="zy-duty-password")
        other.wait_for_function("window.roadwatch && window.roadwatch.review.ready")
        ids = other.locator("#rw-review-items li").evaluate_all("els => els.map(e => e.dataset.id)")
        assert ids == [zy_report] and js_report not in ids
        listed = other.request.get(f"{server.url}/api/review?district=JS").json()
        assert listed["items"] == []  # asking for another district gives nothing
        other.goto(f"{server.url}/")
        other.wait_for_function("window.roadwatch && window.roadwatch.ready", timeout=30_000)
        in_zy = sum(1 for s in pg.ctx.network.segments if s.district == "ZY")
        assert other.evaluate("window.roadwatch.segmentCount") == in_zy
        screenshot(other, "workbench_district_user_live")
    finally:
        context.close()
    logins = [r for r in audit_rows(pg, "login") if r["target"] == name]
    assert logins and logins[0]["actor"] == name


def test_export_this_weeks_cases_to_xlsx(
    pg: Any, server: LiveServer, page: Page, screenshot: Any
) -> None:
    now = dt.datetime.now(CST)
    recent = [
        contract_example(observed_at=(now - dt.timedelta(minutes=1 + i)).isoformat())
        for i in range(3)
    ]
    old = contract_example()
    outs = pg.pipeline.process([inbound(b) for b in [*recent, old]])
    assert [o.status for o in outs] == ["accepted"] * 4
    with pg.sessions.begin() as session:  # older than intake takes: dated back in place
        session.execute(
            update(models.Report)
            .where(models.Report.id == old["report_id"])
            .values(observed_at=now - dt.timedelta(days=10))
        )
    monday = (now - dt.timedelta(days=now.weekday())).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    with pg.sessions() as session:
        expected = set(
            session.scalars(select(models.Report.id).where(models.Report.observed_at >= monday))
        )
    assert {b["report_id"] for b in recent} <= expected and old["report_id"] not in expected
    user = make_user(pg, "admin")
    log_in(page, server, user.username, "/")
    page.wait_for_function("window.roadwatch && window.roadwatch.ready", timeout=30_000)
    page.click("#rw-export-open")
    dialog = page.locator("#rw-export")
    assert dialog.is_visible()
    assert page.input_value("#rw-export-period") == "week"
    assert page.input_value("#rw-export-since") == monday.date().isoformat()
    page.check("#rw-export-form input[value=xlsx]")
    screenshot(page, "workbench_export_dialog")
    with page.expect_download() as info:
        page.click("#rw-export-go")
    assert info.value.suggested_filename.endswith(".xlsx")
    wb = load_workbook(io.BytesIO(Path(info.value.path()).read_bytes()), read_only=True)
    rows = list(wb["cases"].iter_rows(values_only=True))
    wb.close()
    assert rows[0] == LABELS and rows[0][0] == "编号 (id)"
    got = [dict(zip(HEADER, r, strict=True)) for r in rows[1:]]
    assert {r["id"] for r in got} == expected
    assert all(r["observed_at"] >= monday.replace(tzinfo=None) for r in got)
    (entry,) = [r for r in audit_rows(pg, "export") if r["actor"] == user.username]
    assert entry["target"] == "cases.xlsx" and "since" in entry["detail"]["args"]


def test_replay_the_last_hour(pg: Any, server: LiveServer, page: Page, screenshot: Any) -> None:
    earlier = contract_example()
    assert pg.pipeline.process([inbound(earlier)])[0].status == "accepted"
    two_hours_ago = models.utcnow() - dt.timedelta(hours=2)
    with pg.sessions.begin() as session:  # the first report's events: two hours ago
        session.execute(update(models.Event).values(created_at=two_hours_ago))
    recent = [contract_example() for _ in range(2)]
    for body in recent:  # one at a time: the event log's order is theirs
        assert pg.pipeline.process([inbound(body)])[0].status == "accepted"
    user = make_user(pg, "viewer")  # watching needs no more than a viewer
    log_in(page, server, user.username, "/")
    page.wait_for_function("window.roadwatch && window.roadwatch.ready", timeout=30_000)
    page.click("#rw-replay-open")
    page.select_option("#rw-replay-span", "hour")
    assert page.locator("#rw-replay-day").is_disabled()
    page.select_option("#rw-replay-speed", "14400")
    page.click("#rw-replay-play")  # loads the last hour, then plays it
    page.wait_for_function(
        "window.roadwatch._player.end > 0 && !window.roadwatch._player.playing"
        " && window.roadwatch.replay.applied === window.roadwatch.replay.loaded",
        timeout=30_000,
    )
    player = page.evaluate(
        "({start: window.roadwatch._player.start, end: window.roadwatch._player.end,"
        " t: window.roadwatch._player.t, now: Date.now(),"
        " order: window.roadwatch.replay.reportOrder, loaded: window.roadwatch.replay.loaded})"
    )
    assert player["end"] - player["start"] == 3_600_000
    assert player["end"] <= player["now"] and player["t"] == player["end"]  # stopped at now
    assert player["order"] == [b["report_id"] for b in recent]  # not the one 2 h ago
    since = dt.datetime.fromtimestamp(player["start"] / 1000, dt.UTC)
    until = dt.datetime.fromtimestamp(player["end"] / 1000, dt.UTC)
    with pg.sessions() as session:
        logged = session.scalars(
            select(models.Event.seq).where(
                models.Event.created_at >= since, models.Event.created_at < until
            )
        ).all()
    assert player["loaded"] == len(logged) > 0
    assert page.inner_text("#rw-count-reports") == "2"
    screenshot(page, "workbench_replay_last_hour")


def test_file_and_decide_a_dispute_on_the_ranking_page(
    pg: Any, server: LiveServer, page: Page, browser: Any, screenshot: Any
) -> None:
    body = contract_example()
    assert pg.pipeline.process([inbound(body)])[0].status == "accepted"
    rid = body["report_id"]
    week = Week.containing(models.utcnow(), pg.settings.tz).label
    staff = make_user(pg, "district_staff", "JS")
    admin = make_user(pg, "admin")
    try:
        log_in(page, server, staff.username, f"/rankings/{week}")
        page.wait_for_function("window.roadwatch && window.roadwatch.ranking.disputes === 0")
        form = page.locator("#rw-dispute-form")
        form.locator("input[name=report_id]").fill(rid)
        form.locator("input[name=reason]").fill("该处已于当日整改")
        form.locator("input[name=evidence]").fill("https://example.invalid/after.jpg")
        form.locator("button[type=submit]").click()
        page.wait_for_function("window.roadwatch.ranking.disputes === 1")
        row = page.locator(f'#rw-disputes-table a[href$="/cases/{rid}"]')
        assert row.count() == 1 and "待裁决" in page.inner_text("#rw-disputes-table")
        assert page.locator(f"#rw-disputes-table tr:has(a[href$='{rid}']) button").count() == 0

        context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN")
        other = context.new_page()
        try:
            log_in(other, server, admin.username, f"/rankings/{week}")
            other.wait_for_function("window.roadwatch && window.roadwatch.ranking.disputes === 1")
            other.locator("#rw-disputes-table input").fill("照片证实已整改")
            other.click("#rw-disputes-table button[data-decision=upheld]")
            other.wait_for_selector(f"#rw-disputes-table del:text('{rid}')")
            assert "成立" in other.inner_text("#rw-disputes-table")
            screenshot(other, "workbench_dispute_decided")
        finally:
            context.close()
        with pg.sessions() as session:
            d = session.scalars(
                select(models.RankingDispute).where(models.RankingDispute.report_id == rid)
            ).one()
            assert (d.filed_by, d.decision, d.decided_by) == (
                staff.username,
                "upheld",
                admin.username,
            )
        (filed,) = [r for r in audit_rows(pg, "dispute.file") if r["actor"] == staff.username]
        (decided,) = [r for r in audit_rows(pg, "dispute.decide") if r["actor"] == admin.username]
        assert filed and decided
    finally:
        with pg.sessions.begin() as session:  # disputes point at reports the next test drops
            session.execute(delete(models.RankingDispute))


def test_live_map_leads_to_cases(pg: Any, server: LiveServer, page: Page, screenshot: Any) -> None:
    # three kinds of problem at one place: three cases (the same kind would be duplicates)
    before = [contract_example(category=c) for c in ("E0504", "E0505", "E0201")]
    outs = pg.pipeline.process([inbound(b) for b in before])
    assert [o.status for o in outs] == ["accepted"] * 3
    with pg.sessions() as session:
        open_ids = set(
            session.scalars(select(models.Report.id).where(sa_text(models.OPEN_CASE_SQL))).all()
        )
    assert {b["report_id"] for b in before} <= open_ids
    # the case pages are the case list helper's: here they only need to answer
    page.route("**/cases/*", lambda route: route.fulfill(status=200, body="case page"))
    user = make_user(pg, "admin")
    log_in(page, server, user.username, "/")
    page.wait_for_function("window.roadwatch && window.roadwatch.ready", timeout=30_000)
    # markers for every open case from the start, not only those that come later
    page.wait_for_function(f"window.roadwatch.openCasesLoaded === {len(open_ids)}")
    assert page.locator("a.rw-counter-link[href$='/cases?status=overdue']").count() == 1
    assert "since=" in (page.get_attribute("#rw-link-reports", "href") or "")
    # a report that comes now: its ticker entry opens its case
    live = contract_example(category="E0102")
    assert pg.pipeline.process([inbound(live)])[0].status == "accepted"
    tick = page.locator(f"#rw-ticker-track a[href$='/cases/{live['report_id']}']")
    tick.wait_for(timeout=15_000)
    # a report that goes to review: the header's pending count follows, live
    assert page.inner_text("#rw-count-review") == "0"
    in_review_beside(pg, segment_of(pg, "JS", 3))
    page.wait_for_function("document.getElementById('rw-count-review').textContent === '1'")
    # search by segment id: the segment is pinned, its open cases listed as links
    seg = outs[0].segment_id
    page.fill("#rw-search-q", seg)
    page.locator("#rw-search-results button").first.click()
    page.wait_for_function(
        f"document.querySelector('#rw-segment [data-field=id]').textContent === '{seg}'"
    )
    link = page.locator(f"#rw-segment-detail .rw-cases a[href$='/cases/{before[0]['report_id']}']")
    link.wait_for(timeout=10_000)
    screenshot(page, "workbench_live_navigation")
    # by road name too
    name = pg.ctx.network.segments[pg.ctx.position[seg]].road
    page.fill("#rw-search-q", name)
    assert page.locator("#rw-search-results button").count() >= 1
    assert name in page.inner_text("#rw-search-results")
    # a case id opens its case page
    page.fill("#rw-search-q", before[1]["report_id"])
    page.press("#rw-search-q", "Enter")
    page.wait_for_url(f"**/cases/{before[1]['report_id']}")
