"""The case workbench's API (issue 19): the case list's filters, paging and count, the case
page's data, and every staff action, each recorded under the logged-in user, in the audit
log and the case's transitions; district users act only inside their district."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from roadwatch.store import models
from tests.support.cases import make_case


def transitions(runtime: Any, rid: str) -> list[models.ReportTransition]:
    with runtime.sessions() as s:
        return list(
            s.scalars(
                select(models.ReportTransition)
                .where(models.ReportTransition.report_id == rid)
                .order_by(models.ReportTransition.id)
            )
        )


def audit_rows(runtime: Any, action: str) -> list[models.AuditEntry]:
    """This test's entries of `action`: the audit log is append-only and outlives the reports
    of earlier tests on the shared database, so only entries on reports that exist count."""
    a = models.AuditEntry
    with runtime.sessions() as s:
        return list(
            s.scalars(select(a).where(a.action == action, a.target.in_(select(models.Report.id))))
        )


def row(runtime: Any, rid: str) -> models.Report:
    with runtime.sessions() as s:
        r = s.get(models.Report, rid)
        assert r is not None
        return r


def ids(res: Any) -> set[str]:
    assert res.status_code == 200, res.get_json()
    return {x["id"] for x in res.get_json()["items"]}


# -- the list ----------------------------------------------------------------------------------
def test_list_filters_by_district_status_overdue_and_counts(runtime: Any, login_as: Any) -> None:
    late = make_case(runtime, "JS", age=dt.timedelta(days=12))
    fresh = make_case(runtime, "JS")
    other = make_case(runtime, "ZY", age=dt.timedelta(days=12))
    admin = login_as("admin")
    res = admin.get("/api/cases?district=JS&status=overdue")
    assert ids(res) == {late.id}
    assert res.get_json()["total"] == 1
    assert res.get_json()["items"][0]["overdue"] is True
    # the name and the code are the same district
    assert ids(admin.get("/api/cases?district=金水区&status=overdue")) == {late.id}
    assert ids(admin.get("/api/cases?status=overdue")) == {late.id, other.id}
    assert ids(admin.get("/api/cases?district=JS&status=dispatched")) == {late.id, fresh.id}
    assert admin.get("/api/cases?status=dispatched").get_json()["total"] == 3
    assert admin.get("/api/cases?status=bogus").status_code == 400
    assert admin.get("/api/cases?district=XX").status_code == 400
    # a district user sees their own district only, whatever they ask for
    zy = login_as("district_staff", "ZY")
    assert ids(zy.get("/api/cases")) == {other.id}
    assert ids(zy.get("/api/cases?district=JS")) == set()


def test_list_filters_category_severity_segment_assignee_source_period(
    runtime: Any, login_as: Any
) -> None:
    a = make_case(runtime, "JS", category="E0102", severity=3, age=dt.timedelta(days=3))
    b = make_case(runtime, "JS", category="E0504", severity=1)
    admin = login_as("admin")
    assert ids(admin.get("/api/cases?category=E0102")) == {a.id}
    assert ids(admin.get("/api/cases?category=E0102,E0504")) == {a.id, b.id}
    assert ids(admin.get("/api/cases?severity=1")) == {b.id}
    assert ids(admin.get(f"/api/cases?segment={a.segment_id}")) == {a.id}
    assert ids(admin.get(f"/api/cases?assignee={b.assignee_id}")) >= {b.id}
    assert ids(admin.get("/api/cases?source=person")) == {a.id, b.id}
    assert ids(admin.get("/api/cases?source=merchant")) == set()
    assert admin.get("/api/cases?source=robot").status_code == 400
    # a plain date is 00:00 of that day in the city's zone, like an ISO time
    tz = runtime.settings.tz
    today = dt.datetime.now(tz).date()
    assert ids(admin.get(f"/api/cases?since={today.isoformat()}")) == {b.id}
    assert ids(admin.get(f"/api/cases?until={today.isoformat()}")) == {a.id}
    since = dt.datetime.combine(today, dt.time(0), tzinfo=tz).isoformat()
    assert ids(admin.get("/api/cases", query_string={"since": since})) == {b.id}
    assert admin.get("/api/cases?since=2026-02-30").status_code == 400
    # the same rule on the older endpoint
    assert admin.get(f"/api/reports?since={today.isoformat()}").status_code == 200


def test_text_search_finds_a_two_character_chinese_term(runtime: Any, login_as: Any) -> None:
    a = make_case(runtime, "JS", note="门口占道经营，堆放货物")
    b = make_case(runtime, "JS", note="垃圾满溢")
    admin = login_as("admin")
    assert ids(admin.get("/api/cases", query_string={"q": "占道"})) == {a.id}
    assert ids(admin.get("/api/cases", query_string={"q": "垃圾"})) == {b.id}
    # % and _ are plain characters, not patterns
    assert ids(admin.get("/api/cases", query_string={"q": "%"})) == set()
    # a road's name finds the cases on its segments; a case id finds the case
    name = runtime.ctx.network.segments[runtime.ctx.position[a.segment_id]].road
    assert a.id in ids(admin.get("/api/cases", query_string={"q": name}))
    assert ids(admin.get("/api/cases", query_string={"q": b.id})) == {b.id}


def test_sort_and_offset_paging(runtime: Any, login_as: Any) -> None:
    made = [make_case(runtime, "JS", age=dt.timedelta(hours=h + 1)) for h in range(5)]
    admin = login_as("admin")
    first = admin.get("/api/cases?status=dispatched&limit=2&sort=-observed_at").get_json()
    assert first["total"] == 5 and [x["id"] for x in first["items"]] == [made[0].id, made[1].id]
    second = admin.get(first["next"].split("localhost", 1)[1]).get_json()
    assert [x["id"] for x in second["items"]] == [made[2].id, made[3].id]
    oldest = admin.get("/api/cases?status=dispatched&limit=1&sort=observed_at").get_json()
    oldest = oldest["items"][0]
    assert oldest["id"] == made[4].id
    assert admin.get("/api/cases?sort=nope").status_code == 400
    assert admin.get("/api/cases?limit=0").status_code == 400


# -- the case page's data ------------------------------------------------------------------------
def test_case_detail_has_timeline_people_segment_and_working_hours(
    runtime: Any, login_as: Any
) -> None:
    case = make_case(runtime, "JS", age=dt.timedelta(days=12))
    admin = login_as("admin")
    d = admin.get(f"/api/cases/{case.id}").get_json()
    assert [t["to"] for t in d["timeline"]][:2] == ["accepted", "dispatched"]
    assert d["segment"]["id"] == case.segment_id and d["segment"]["geometry"]["type"]
    assert any(p["person"]["id"] == case.assignee_id for p in d["responsible_then"])
    assert all(p["valid_from"].endswith("+08:00") for p in d["responsible_then"])
    assert d["deadline"]["overdue"] is True and d["deadline"]["working_hours_left"] < 0
    assert d["photos_before"] == case.photos
    assert "reassign" in d["actions"]
    assert login_as("district_staff", "ZY").get(f"/api/cases/{case.id}").status_code == 404


# -- actions --------------------------------------------------------------------------------------
def act(client: Any, rid: str, action: str, **body: Any) -> Any:
    return client.post(f"/api/cases/{rid}/{action}", json=body)


def test_reassign_records_the_staff_user_and_audits(runtime: Any, login_as: Any) -> None:
    case = make_case(runtime, "JS")
    staff = login_as("district_staff", "JS")
    with runtime.sessions() as s:
        other = s.scalars(
            select(models.Assignment.reporter_id).where(
                models.Assignment.segment_id == case.segment_id,
                models.Assignment.reporter_id != case.assignee_id,
                models.Assignment.valid_to.is_(None),
            )
        ).first()
    assert other
    res = act(staff, case.id, "reassign", assignee_id=other, reason="换人处理")
    assert res.status_code == 200, res.get_json()
    assert row(runtime, case.id).assignee_id == other
    last = transitions(runtime, case.id)[-1]
    assert last.by == staff.user.username and last.to_status == "dispatched"
    assert last.data is not None
    assert last.data["action"] == "reassign" and last.data["assignee_before"] == case.assignee_id
    (entry,) = audit_rows(runtime, "case.reassign")
    assert entry.actor == staff.user.username and entry.target == case.id
    # a `by` naming someone else is refused; an unknown person too
    assert act(staff, case.id, "reassign", assignee_id=other, by="someone").status_code == 400
    assert act(staff, case.id, "reassign", assignee_id="nobody").status_code == 422


def test_district_user_cannot_act_outside_their_district(runtime: Any, login_as: Any) -> None:
    case = make_case(runtime, "ZY")
    js = login_as("district_staff", "JS")
    for action, body in (
        ("comment", {"text": "x"}),
        ("close_invalid", {"reason": "x"}),
        ("extend", {"hours": 2, "reason": "x"}),
    ):
        res = act(js, case.id, action, **body)
        assert res.status_code == 403, res.get_json()
        assert "不在本区范围内" in res.get_json()["errors"][0]["message"]
    assert transitions(runtime, case.id)[-1].to_status == "dispatched"
    viewer = login_as("viewer")
    assert act(viewer, case.id, "comment", text="x").status_code == 403


def test_moving_to_a_segment_that_is_no_candidate_is_refused(runtime: Any, login_as: Any) -> None:
    case = make_case(runtime, "JS")
    staff = login_as("district_staff", "JS")
    far = next(
        s.id
        for s in runtime.ctx.network.segments
        if s.district == "JS"
        and s.id != case.segment_id
        and runtime.ctx.index.distance_to(runtime.ctx.position[s.id], case.lon, case.lat) > 500
    )
    res = act(staff, case.id, "reassign", segment_id=far)
    assert res.status_code == 422
    body = res.get_json()["errors"][0]
    assert body["code"] == "not_a_candidate" and "不在上报位置附近" in body["message"]
    assert row(runtime, case.id).segment_id == case.segment_id
    # a near segment in another district is refused for a district user too
    near = [
        runtime.ctx.network.segments[p]
        for p, _d in runtime.ctx.index.nearby(case.lon, case.lat, 50.0)
    ]
    assert near  # its own segment at least
    ok = next((s for s in near if s.id != case.segment_id and s.district == "JS"), None)
    if ok is not None:
        res = act(staff, case.id, "reassign", segment_id=ok.id)
        assert res.status_code == 200, res.get_json()
        assert row(runtime, case.id).segment_id == ok.id


def test_comment_extend_suspend_and_the_clock(runtime: Any, login_as: Any) -> None:
    case = make_case(runtime, "JS", age=dt.timedelta(days=12))
    staff = login_as("district_staff", "JS")
    assert act(staff, case.id, "comment", text="已电话联系路长").status_code == 200
    t = transitions(runtime, case.id)[-1]
    assert t.note == "已电话联系路长" and t.by == staff.user.username
    assert act(staff, case.id, "comment", text="  ").status_code == 400
    before = row(runtime, case.id).due_at
    res = act(staff, case.id, "extend", hours=8, reason="需协调施工方")
    assert res.status_code == 200, res.get_json()
    after = row(runtime, case.id)
    cal = runtime.pipeline.sla.calendar
    assert cal.working_between(before, after.due_at) == dt.timedelta(hours=8)
    assert after.next_escalation_at is not None
    assert act(staff, case.id, "extend", hours=0, reason="x").status_code == 400
    assert act(staff, case.id, "extend", hours=4).status_code == 400  # a reason is required
    # suspension: the deadline moves by the working time of the pause
    asked = dt.datetime.now(dt.UTC)
    until = asked + dt.timedelta(days=3)
    res = act(staff, case.id, "suspend", until=until.isoformat(), reason="等待天气")
    assert res.status_code == 200, res.get_json()
    moved = row(runtime, case.id).due_at
    assert moved is not None and after.due_at is not None
    paused = cal.working_between(asked, until)
    assert paused > dt.timedelta(hours=8)  # three days hold at least one working day
    assert abs(cal.working_between(after.due_at, moved) - paused) < dt.timedelta(minutes=1)
    assert {"case.comment", "case.extend", "case.suspend"} <= {
        a.action
        for a in audit_rows(runtime, "case.comment")
        + audit_rows(runtime, "case.extend")
        + audit_rows(runtime, "case.suspend")
    }


def test_extension_puts_off_the_clocks_escalation(runtime: Any, login_as: Any) -> None:
    from roadwatch.cases.clock import sweep

    case = make_case(runtime, "JS", age=dt.timedelta(hours=3), category="E0102")
    staff = login_as("admin")
    due = row(runtime, case.id).due_at
    assert due is not None
    assert act(staff, case.id, "extend", hours=40, reason="大件垃圾需专车").status_code == 200
    events, _ = sweep(runtime.engine, runtime.pipeline.sla, due + dt.timedelta(minutes=1))
    assert not [e for e in events if e.kind == "case"]  # the old deadline no longer escalates
    assert row(runtime, case.id).escalation_level == 0
    new_due = row(runtime, case.id).due_at
    assert new_due is not None
    events, _ = sweep(runtime.engine, runtime.pipeline.sla, new_due + dt.timedelta(minutes=1))
    assert [e.payload["id"] for e in events if e.kind == "case"] == [case.id]  # the new one does
    assert row(runtime, case.id).escalation_level == 1


def test_close_invalid_and_reopen(runtime: Any, login_as: Any) -> None:
    case = make_case(runtime, "JS")
    staff = login_as("district_staff", "JS")
    assert act(staff, case.id, "close_invalid", text="x").status_code == 400  # reason needed
    res = act(staff, case.id, "close_invalid", reason="重复上报的测试数据")
    assert res.status_code == 200, res.get_json()
    r = row(runtime, case.id)
    assert r.case_status == "invalid" and r.next_escalation_at is None
    t = transitions(runtime, case.id)[-1]
    assert (t.by, t.to_status, t.note) == (staff.user.username, "invalid", "重复上报的测试数据")
    assert act(staff, case.id, "close_invalid", reason="again").status_code == 409
    res = act(staff, case.id, "reopen", reason="误判")
    assert res.status_code == 200, res.get_json()
    r = row(runtime, case.id)
    assert r.case_status == "reopened" and r.due_at is not None and r.escalation_level == 0
    assert act(staff, case.id, "reopen", reason="x").status_code == 409


def test_merge_close_duplicate_and_split(runtime: Any, login_as: Any) -> None:
    keep = make_case(runtime, "JS")
    dup = make_case(runtime, "JS")
    third = make_case(runtime, "JS")
    staff = login_as("district_staff", "JS")
    assert act(staff, dup.id, "merge", into=dup.id).status_code == 400
    res = act(staff, dup.id, "merge", into=keep.id, reason="同一处")
    assert res.status_code == 200, res.get_json()
    r = row(runtime, dup.id)
    assert (r.case_status, r.parent_id) == ("duplicate", keep.id)
    # a duplicate cannot be the case kept
    assert act(staff, third.id, "close_duplicate", of=dup.id, reason="x").status_code == 409
    res = act(staff, third.id, "close_duplicate", of=keep.id, reason="同一处")
    assert res.status_code == 200
    res = act(staff, dup.id, "split", reason="不是同一处")
    assert res.status_code == 200, res.get_json()
    r = row(runtime, dup.id)
    assert r.case_status == "dispatched" and r.parent_id is None and r.due_at is not None
    assert transitions(runtime, dup.id)[-1].by == staff.user.username
    assert act(staff, keep.id, "split", reason="x").status_code == 409


def test_an_independent_finding_is_closed_or_merged_away_only_by_an_admin(
    runtime: Any, login_as: Any
) -> None:
    """An evaluator's finding counts in the district's flags: its own district staff may
    work it, not close it as invalid or merge it away (an audit found they could)."""
    with runtime.sessions() as s, s.begin():
        if s.get(models.Reporter, "eval-audit") is None:
            s.add(models.Reporter(id="eval-audit", name="第三方测评", kind="evaluator"))
    found = make_case(runtime, "JS", reporter_id="eval-audit")
    keep = make_case(runtime, "JS")
    staff, admin = login_as("district_staff", "JS"), login_as("admin")
    for action, body in (
        ("close_invalid", {"reason": "不是问题"}),
        ("merge", {"into": keep.id, "reason": "同一处"}),
        ("close_duplicate", {"of": keep.id, "reason": "同一处"}),
    ):
        res = act(staff, found.id, action, **body)
        assert res.status_code == 403, res.get_json()
        assert "admin" in res.get_json()["errors"][0]["message"]
        assert row(runtime, found.id).case_status == "dispatched"
    assert act(staff, found.id, "extend", hours=4, reason="等材料").status_code == 200
    res = act(admin, found.id, "close_invalid", reason="测评标准不适用")
    assert res.status_code == 200, res.get_json()
    assert row(runtime, found.id).case_status == "invalid"
    assert transitions(runtime, found.id)[-1].by == admin.user.username


def test_verify_pass_and_fail_by_staff(runtime: Any, login_as: Any) -> None:
    from tests.test_cases import msg, rectification

    staff = login_as("district_staff", "JS")
    cases = [make_case(runtime, "JS", category="E0102") for _ in range(2)]
    now = dt.datetime.now(dt.UTC)
    for c in cases:
        assert c.assignee_id is not None
        body = rectification(c.id, c.assignee_id, now)
        (out,) = runtime.pipeline.process([msg("rectification", body, c.assignee_id, now)])
        assert out.status == "accepted", out
    assert act(staff, cases[0].id, "verify", result="maybe").status_code == 400
    assert act(staff, cases[0].id, "verify", result="fail").status_code == 400  # reason needed
    assert act(staff, cases[0].id, "verify", result="pass").status_code == 200
    assert row(runtime, cases[0].id).case_status == "closed"
    res = act(staff, cases[1].id, "verify", result="fail", reason="仍有垃圾")
    assert res.status_code == 200
    assert row(runtime, cases[1].id).case_status == "reopened"
    t = transitions(runtime, cases[1].id)[-1]
    assert (t.by, t.note, (t.data or {}).get("result")) == (staff.user.username, "仍有垃圾", "fail")


@pytest.mark.parametrize("action", ["nope"])
def test_unknown_action_is_a_404(runtime: Any, login_as: Any, action: str) -> None:
    case = make_case(runtime, "JS")
    assert act(login_as("admin"), case.id, action).status_code == 404


def test_an_action_from_a_page_that_missed_a_change_is_refused(runtime: Any, login_as: Any) -> None:
    """`expect_last_change`: the case's `last_change` as the page loaded it. An action sent
    with one the case has moved past is refused (409 stale, naming the change); without
    the field the action goes through as before."""
    case = make_case(runtime, "JS")
    staff = login_as("admin")
    loaded = staff.get(f"/api/cases/{case.id}").get_json()["last_change"]
    first = act(staff, case.id, "extend", hours=4, reason="施工", expect_last_change=loaded)
    assert first.status_code == 200
    again = act(staff, case.id, "extend", hours=4, reason="施工", expect_last_change=loaded)
    assert again.status_code == 409
    err = again.get_json()["errors"][0]
    assert err["code"] == "stale" and "(dispatched by " in err["message"]
    now = staff.get(f"/api/cases/{case.id}").get_json()["last_change"]
    assert now != loaded
    assert act(staff, case.id, "comment", text="看过了", expect_last_change=now).status_code == 200
    assert act(staff, case.id, "comment", text="没有前提").status_code == 200
    bad = act(staff, case.id, "comment", text="x", expect_last_change="12")
    assert bad.status_code == 400 and bad.get_json()["errors"][0]["field"] == "expect_last_change"


def test_reassigning_a_case_not_yet_dispatched_dispatches_it(runtime: Any, login_as: Any) -> None:
    """A reassign of a `new` case recorded new -> dispatched but left the state `new`, so
    the dispatcher would dispatch it again and the case list showed it undispatched."""
    case = make_case(runtime, "JS")
    with runtime.sessions.begin() as s:
        row = s.get(models.Report, case.id)
        assert row is not None
        row.case_status, row.dispatched_at, row.due_at, row.next_escalation_at = (
            "new",
            None,
            None,
            None,
        )
    staff = login_as("admin")
    res = act(staff, case.id, "reassign", reason="先派给本段路长")
    assert res.status_code == 200, res.get_json()
    with runtime.sessions() as s:
        row = s.get(models.Report, case.id)
        assert row is not None
        assert row.case_status == "dispatched"
        assert row.dispatched_at is not None and row.due_at is not None
    timeline = staff.get(f"/api/cases/{case.id}").get_json()["timeline"]
    assert (timeline[-1]["from"], timeline[-1]["to"]) == ("new", "dispatched")
