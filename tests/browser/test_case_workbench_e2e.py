"""Issue 19 acceptance a, tasks 1–6, in headless Chromium on PostgreSQL: a district duty
officer finds the overdue cases of their district, opens a case's timeline and photos,
reassigns it, comments, extends its deadline and closes another case as invalid, all in the
browser; each result is checked in the database under the officer's name. Screenshots go to
test-artifacts/ (case_list_overdue, case_page, case_photo, case_after_actions)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select

from roadwatch.cases.actions import Env, act
from roadwatch.cases.permissions import Staff
from roadwatch.store import models, photos
from tests.support.auth import PASSWORD, make_user
from tests.support.cases import make_case
from tests.support.images import image_bytes
from tests.support.server import live_server

pytestmark = pytest.mark.browser


def _photo(runtime: Any) -> str:
    data = image_bytes("JPEG", size=(1280, 960))
    saved = photos.save_upload(
        runtime.sessions,
        Path(runtime.settings.photo_dir),
        data,
        "jpeg",
        ".jpg",
        "image/jpeg",
        runtime.settings.tz,
    )
    return str(saved.sha256)


def _last(runtime: Any, rid: str) -> models.ReportTransition:
    with runtime.sessions() as s:
        t = s.scalars(
            select(models.ReportTransition)
            .where(models.ReportTransition.report_id == rid)
            .order_by(models.ReportTransition.id.desc())
            .limit(1)
        ).one()
        return t


def _row(runtime: Any, rid: str) -> models.Report:
    with runtime.sessions() as s:
        r = s.get(models.Report, rid)
        assert r is not None
        return r


def _act(page: Any, action: str, fields: dict[str, str]) -> None:
    page.click(f"#cw-act-{action}")
    for name, value in fields.items():
        page.fill(f"#cw-f-{name}", value)
    before = page.get_attribute("body", "data-loaded")
    page.click("#cw-submit")
    page.wait_for_function(
        "([b]) => document.body.getAttribute('data-loaded') !== b", arg=[before], timeout=10_000
    )
    assert "完成" in page.inner_text("#cw-action-result"), page.inner_text("#cw-action-result")


def test_duty_officer_tasks_in_the_browser(runtime: Any, page: Any, screenshot: Any) -> None:
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("acceptance runs on PostgreSQL")
    sha = _photo(runtime)
    late = make_case(runtime, "JS", age=dt.timedelta(days=12), photos=[sha], note="门口占道经营")
    fresh = make_case(runtime, "JS", photos=[sha])
    make_case(runtime, "ZY", age=dt.timedelta(days=12))  # overdue, but another district's
    officer = make_user(runtime, "district_staff", "JS")
    with runtime.sessions() as s:
        other = s.scalars(
            select(models.Assignment.reporter_id).where(
                models.Assignment.segment_id == late.segment_id,
                models.Assignment.reporter_id != late.assignee_id,
                models.Assignment.valid_to.is_(None),
            )
        ).first()
    assert other
    with live_server(runtime) as server:
        # log in through the login page, landing on the case list
        page.goto(server.url + "/cases")
        page.wait_for_selector("#rw-login-form")
        page.fill("input[name=username]", officer.username)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("body[data-ready]")

        # 1. find the overdue cases of the district, through the filter form
        page.select_option("#f-district", "JS")
        page.select_option("#f-status", "overdue")
        page.click("#cw-filters button[type=submit]")
        page.wait_for_function("() => document.querySelector('#cw-total').textContent === '1'")
        assert "status=overdue" in page.url and "district=JS" in page.url
        links = page.locator("#cw-rows a")
        assert links.count() == 1
        assert links.first.get_attribute("href").endswith(f"/cases/{late.id}")
        screenshot(page, "case_list_overdue")
        # the English switch, and back (the choice is remembered, as on the live map)
        page.click("#cw-lang")
        assert "Cases" in page.inner_text("header") and "overdue" in page.inner_text("#cw-rows")
        screenshot(page, "case_list_overdue_en")
        page.click("#cw-lang")
        assert "案件" in page.inner_text("header")

        # 2. open its timeline and photos
        links.first.click()
        page.wait_for_selector("body[data-loaded]")
        assert page.locator("#cw-timeline tr").count() >= 2
        assert "已派遣" in page.inner_text("#cw-timeline")
        assert "超期" in page.inner_text("#cw-deadline")
        page.wait_for_selector("body[data-map=ready]", timeout=30_000)
        screenshot(page, "case_page")
        page.click("#cw-photos-before img")
        page.wait_for_selector("#cw-lightbox[open]")
        shown = page.locator("#cw-lightbox-img")
        page.wait_for_function("() => document.getElementById('cw-lightbox-img').naturalWidth > 0")
        assert shown.evaluate("img => img.naturalWidth") == 1280
        assert shown.bounding_box()["width"] > 600  # full size, not the 64×48 thumbnail
        screenshot(page, "case_photo")
        page.click("#cw-lightbox button")

        # 3. reassign to another responsible person of the segment
        _act(page, "reassign", {"assignee_id": other, "reason": "原责任人外出"})
        assert _row(runtime, late.id).assignee_id == other
        t = _last(runtime, late.id)
        assert (t.by, (t.data or {}).get("action")) == (officer.username, "reassign")

        # 4. comment
        _act(page, "comment", {"text": "已电话督促"})
        t = _last(runtime, late.id)
        want = (officer.username, "已电话督促", "comment")
        assert (t.by, t.note, (t.data or {}).get("action")) == want
        assert "已电话督促" in page.inner_text("#cw-timeline")

        # 5. extend the deadline by 8 working hours
        due = _row(runtime, late.id).due_at
        _act(page, "extend", {"hours": "8", "reason": "需协调城管执法"})
        moved = _row(runtime, late.id).due_at
        assert runtime.pipeline.sla.calendar.working_between(due, moved) == dt.timedelta(hours=8)
        assert _last(runtime, late.id).by == officer.username
        screenshot(page, "case_after_actions")

        # 6. close another case as invalid
        page.goto(f"{server.url}/cases/{fresh.id}")
        page.wait_for_selector("body[data-loaded]")
        _act(page, "close_invalid", {"reason": "测试数据"})
        r = _row(runtime, fresh.id)
        t = _last(runtime, fresh.id)
        assert r.case_status == "invalid"
        assert (t.by, t.to_status, t.note) == (officer.username, "invalid", "测试数据")
        assert "无效" in page.inner_text("#cw-status")

        # pushed live: another officer's comment appears on the open page without a reload
        from tests.support.auth import login

        api = server.app.test_client()
        login(api, runtime, "admin")
        res = api.post(f"/api/cases/{fresh.id}/comment", json={"text": "另一位值班员的备注"})
        assert res.status_code == 200, res.get_json()
        page.wait_for_function(
            "([w]) => document.getElementById('cw-timeline').textContent.includes(w)",
            arg=["另一位值班员的备注"],
            timeout=10_000,
        )

        # every action is in the audit log under the officer's name
        with runtime.sessions() as s:
            acts = {
                (a.actor, a.action)
                for a in s.scalars(
                    select(models.AuditEntry).where(models.AuditEntry.action.like("case.%"))
                )
            }
        assert {
            (officer.username, f"case.{a}")
            for a in ("reassign", "comment", "extend", "close_invalid")
        } <= acts


NOTIFY_SPY = """
window.__notified = [];
class SpyNotification {
  constructor(title, options) { window.__notified.push([title, (options || {}).body]); }
  static get permission() { return "granted"; }
  static requestPermission() { return Promise.resolve("granted"); }
}
window.Notification = SpyNotification;
"""


def test_staff_alerts_for_overdue_and_failed_verification(
    runtime: Any, browser: Any, screenshot: Any
) -> None:
    """Scope 6: an overdue case and a failed verification of the user's district raise an
    in-page alert and a desktop notification (consent granted); another district's do not."""
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("acceptance runs on PostgreSQL")
    from roadwatch.cases.clock import sweep
    from tests.support.auth import login
    from tests.test_cases import msg, rectification

    officer = make_user(runtime, "district_staff", "JS")
    js = make_case(runtime, "JS", age=dt.timedelta(hours=1), category="E0102")
    zy = make_case(runtime, "ZY", age=dt.timedelta(hours=1), category="E0102")
    fixed = make_case(runtime, "JS", category="E0102")
    now = dt.datetime.now(dt.UTC)
    assert fixed.assignee_id is not None
    body = rectification(fixed.id, fixed.assignee_id, now)
    (out,) = runtime.pipeline.process([msg("rectification", body, fixed.assignee_id, now)])
    assert out.status == "accepted"
    context = browser.new_context(
        viewport={"width": 1366, "height": 768}, locale="zh-CN", permissions=["notifications"]
    )
    context.add_init_script(NOTIFY_SPY)
    page = context.new_page()
    try:
        with live_server(runtime) as server:
            page.goto(server.url + "/cases")
            page.fill("input[name=username]", officer.username)
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_selector("html[data-alerts=live]", timeout=15_000)
            # the clock finds both cases overdue (their deadline is a day ahead of now)
            dues = [_row(runtime, c.id).due_at for c in (js, zy)]
            later = max(d for d in dues if d is not None)
            events, _ = sweep(runtime.engine, runtime.pipeline.sla, later)
            assert {e.payload["id"] for e in events if e.kind == "case"} >= {js.id, zy.id}
            runtime.broadcaster.publish(events)
            page.wait_for_selector(f".rw-alert[data-case='{js.id}'][data-kind=overdue]")
            # another staff user fails the rectification of a JS case
            api = server.app.test_client()
            login(api, runtime, "admin")
            res = api.post(
                f"/api/cases/{fixed.id}/verify", json={"result": "fail", "reason": "仍有垃圾"}
            )
            assert res.status_code == 200, res.get_json()
            page.wait_for_selector(f".rw-alert[data-case='{fixed.id}'][data-kind=failed]")
            page.wait_for_timeout(500)  # time for a ZY alert, were one wrongly sent
            assert page.locator(f".rw-alert[data-case='{zy.id}']").count() == 0
            notified = page.evaluate("() => window.__notified")
            assert [n[0] for n in notified] == ["案件超期", "核查未通过"], notified
            screenshot(page, "case_alerts")
            link = page.locator(f".rw-alert[data-case='{js.id}'] a")
            assert link.get_attribute("href").endswith(f"/cases/{js.id}")
    finally:
        context.close()


def test_action_that_cannot_reach_the_server_says_so_and_keeps_the_form(
    runtime: Any, page: Any, page_problems: Any
) -> None:
    """The network drops as the officer submits: the page says in plain words that nothing
    was submitted and keeps the typed form (it stayed at "…" with an uncaught "Failed to
    fetch"); once the network is back the same form goes through."""
    case = make_case(runtime, "JS", photos=[])
    officer = make_user(runtime, "admin")
    with live_server(runtime) as server:
        page.goto(server.url + f"/cases/{case.id}")
        page.fill("input[name=username]", officer.username)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("body[data-loaded]")
        page.click("#cw-act-comment")
        page.fill("#cw-f-text", "断网时提交")
        page_problems.allow(r"/comment|ERR_FAILED")
        page.route("**/api/cases/*/comment", lambda route: route.abort())
        page.click("#cw-submit")
        page.wait_for_function(
            "() => document.getElementById('cw-action-result').textContent !== '…'",
            timeout=5_000,
        )
        assert "未能连接服务器" in page.inner_text("#cw-action-result")
        assert page.get_attribute("#cw-action-result", "class") == "cw-error"
        assert page.is_visible("#cw-action-form")
        assert page.input_value("#cw-f-text") == "断网时提交"
        page.unroute("**/api/cases/*/comment")
        _act(page, "comment", {"text": "断网时提交"})
        assert _last(runtime, case.id).note == "断网时提交"


def test_case_list_sends_an_ended_login_to_the_login_page(
    runtime: Any, page: Any, page_problems: Any
) -> None:
    """The login ends while the case list is open: the next filter goes to the login page
    and back to the same filtered list after signing in (it showed the API's English
    message "log in to the command centre (or send … HTTP Basic authentication)")."""
    make_case(runtime, "JS", photos=[])
    officer = make_user(runtime, "admin")
    with live_server(runtime) as server:
        page.goto(server.url + "/login?next=/cases")
        page.fill("input[name=username]", officer.username)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("body[data-ready]")
        # The login ends on the server (an expiry, a sign-out elsewhere, an admin's reset).
        # Clearing the browser's cookies raced: a response still in flight (the list's
        # first load, the live feed) set the refreshed session cookie again, and the
        # filter went through.
        with runtime.sessions.begin() as s:
            s.execute(delete(models.StaffSession).where(models.StaffSession.user_id == officer.id))
        page_problems.allow(r"401|/login .*ERR_ABORTED")
        page.select_option("#f-district", "JS")
        page.click("#cw-filters button[type=submit]")
        page.wait_for_url("**/login?next=*")
        assert "district%3DJS" in page.url
        page.fill("input[name=username]", officer.username)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/cases?*district=JS*")
        page.wait_for_function("() => document.querySelector('#cw-total').textContent === '1'")


def test_a_double_click_or_a_stale_page_does_not_act_twice(
    runtime: Any, page: Any, page_problems: Any
) -> None:
    """A double click on 提交 extended a case twice (two transitions, two notices to the
    chief), and a page loaded before another officer's extension stacked its own on top.
    The button waits for the answer, and the page sends the case's last change as it
    loaded it: the server refuses the action if the case changed meanwhile (409 stale) and
    the page reloads the case."""
    case = make_case(runtime, "JS", photos=[])
    officer = make_user(runtime, "admin")

    def extensions() -> int:
        with runtime.sessions() as s:
            return len(
                s.scalars(
                    select(models.ReportTransition).where(
                        models.ReportTransition.report_id == case.id,
                        models.ReportTransition.note == "双击",
                    )
                ).all()
            )

    with live_server(runtime) as server:
        page.goto(server.url + f"/cases/{case.id}")
        page.fill("input[name=username]", officer.username)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("body[data-loaded]")
        page.click("#cw-act-extend")
        page.fill("#cw-f-hours", "4")
        page.fill("#cw-f-reason", "双击")
        before = page.get_attribute("body", "data-loaded")
        page.dblclick("#cw-submit")
        page.wait_for_function(
            "([b]) => document.body.getAttribute('data-loaded') !== b", arg=[before], timeout=10_000
        )
        assert extensions() == 1
        # another officer extends the case while this page shows it as it was
        with runtime.engine.begin() as conn:
            env = Env(runtime.pipeline.sla, runtime.ctx, models.utcnow())
            act(
                conn,
                Staff("other-officer", "admin"),
                "extend",
                case.id,
                {"hours": 2, "reason": "另一位"},
                env,
            )
        page_problems.allow(r"/extend|409")
        page.click("#cw-act-extend")
        page.fill("#cw-f-hours", "4")
        page.fill("#cw-f-reason", "双击")
        page.click("#cw-submit")
        page.wait_for_function(
            "() => document.getElementById('cw-action-result').className === 'cw-error'",
            timeout=10_000,
        )
        assert "案件已被更新" in page.inner_text("#cw-action-result")
        assert extensions() == 1
