"""Issue 19 scope 2 in headless Chromium on PostgreSQL: a road chief asks for more time from
the phone's HTTP API; the duty officer, with the case page open, gets a 延期申请 alert and the
request in the page without a reload, approves it with a note, and the database shows the
decision and the moved deadline under the officer's name. Screenshots: extension_pending,
extension_approved (test-artifacts/)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from roadwatch.store import models
from tests.support.auth import PASSWORD, make_user
from tests.support.cases import make_case
from tests.support.server import live_server
from tests.test_extension_requests import ask, chief_headers

pytestmark = pytest.mark.browser


def test_officer_approves_a_chiefs_request_on_the_case_page(
    runtime: Any, page: Any, screenshot: Any
) -> None:
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("acceptance runs on PostgreSQL")
    case = make_case(runtime, "JS", age=dt.timedelta(hours=2), category="E0102", photos=[])
    assert case.assignee_id and case.due_at
    officer = make_user(runtime, "district_staff", "JS")
    with live_server(runtime) as server:
        page.goto(f"{server.url}/cases/{case.id}")
        page.fill("input[name=username]", officer.username)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("body[data-loaded]")
        page.wait_for_selector("html[data-alerts=live]", timeout=15_000)
        assert page.locator("#cw-extensions-box").is_hidden()  # nothing asked yet

        # the chief asks from the phone: the open page shows the alert and the request live
        headers = chief_headers(runtime, server.app, case.assignee_id)
        res = ask(server.app, headers, case.id, hours=16, reason="材料未到")
        assert res.status_code == 201, res.get_json()
        request_id = res.get_json()["request_id"]
        page.wait_for_selector(f".rw-alert[data-case='{case.id}'][data-kind=extension]")
        assert "延期申请" in page.inner_text(".rw-alert[data-kind=extension]")
        item = page.locator(f"li[data-request='{request_id}'][data-status=pending]")
        item.wait_for(timeout=10_000)
        assert "材料未到" in item.inner_text() and "16" in item.inner_text()
        assert "申请延期" in page.inner_text("#cw-timeline")
        screenshot(page, "extension_pending")

        page.fill("#cw-ext-reason", "同意，请抓紧")
        page.click("#cw-ext-approve")
        page.locator(f"li[data-request='{request_id}'][data-status=approved]").wait_for(
            timeout=10_000
        )
        assert officer.username in page.inner_text(f"li[data-request='{request_id}']")
        screenshot(page, "extension_approved")

    with runtime.sessions() as s:
        req = s.get(models.ExtensionRequest, request_id)
        assert req is not None
        assert (req.status, req.decided_by, req.decision_note, req.granted_hours) == (
            "approved",
            officer.username,
            "同意，请抓紧",
            16,
        )
        r = s.get(models.Report, case.id)
        assert r is not None and r.due_at is not None
        cal = runtime.pipeline.sla.calendar
        assert cal.working_between(case.due_at, r.due_at) == dt.timedelta(hours=16)
        t = s.scalars(
            select(models.ReportTransition)
            .where(models.ReportTransition.report_id == case.id)
            .order_by(models.ReportTransition.id.desc())
            .limit(1)
        ).one()
        assert (t.by, (t.data or {}).get("request_id")) == (officer.username, request_id)
        actors = {
            (a.actor, a.action)
            for a in s.scalars(
                select(models.AuditEntry).where(models.AuditEntry.action.like("case.%"))
            )
        }
    assert (f"chief:{case.assignee_id}", "case.request_extension") in actors
    assert (officer.username, "case.approve_extension") in actors


def test_chief_asks_from_the_phone_apps_case_card(
    runtime: Any, browser: Any, playwright_session: Any, screenshot: Any, monkeypatch: Any
) -> None:
    """The phone app's 申请延期 (m/extension.js): on a case card, hours and a reason, sent
    over HTTPS as the signed-in chief; the platform holds it pending under the chief's id."""
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("acceptance runs on PostgreSQL")
    from roadwatch.accounts import chiefs as ca
    from roadwatch.runtime import Runtime

    case = make_case(runtime, "JS", category="E0102", photos=[])
    assert case.assignee_id
    with runtime.sessions.begin() as s:
        made = ca.provision(s, only=[case.assignee_id], reset=[case.assignee_id])
        password = {**made.created, **made.reset}[case.assignee_id]
    # no broker in this test: the app works over HTTP alone (no WebSocket to fail on)
    monkeypatch.setattr(Runtime, "phone_ws_url", property(lambda self: ""))
    device = dict(playwright_session.devices["Pixel 7"])
    device.pop("default_browser_type", None)
    context = browser.new_context(**device, locale="zh-CN", service_workers="block")
    try:
        with live_server(runtime) as server:
            phone = context.new_page()
            phone.goto(server.url + "/m/")
            phone.fill("#signin-id", case.assignee_id)
            phone.fill("#signin-pw", password)
            phone.click("#signin-form button[type=submit]")
            phone.click("#tabs [data-view=work]")
            card = phone.locator(f"#case-list li[data-case='{case.id}']")
            card.locator(".ext-open").click()
            card.locator("input[name=hours]").fill("12")
            card.locator("textarea[name=reason]").fill("需要等待配件")
            card.locator(".ext-form button[type=submit]").click()
            phone.wait_for_selector("#toast:not([hidden])")
            assert "延期申请已提交" in phone.inner_text("#toast")
            screenshot(phone, "extension_phone")
            # a second request while one is pending: the platform's reason on the card
            card.locator(".ext-open").click()
            card.locator(".ext-form button[type=submit]").click()
            card.locator(".ext-form p.hint").filter(has_text="待审批").wait_for(timeout=10_000)
    finally:
        context.close()
    with runtime.sessions() as s:
        (req,) = s.scalars(
            select(models.ExtensionRequest).where(models.ExtensionRequest.report_id == case.id)
        ).all()
    assert (req.requested_by, req.hours, req.reason, req.status) == (
        case.assignee_id,
        12,
        "需要等待配件",
        "pending",
    )
