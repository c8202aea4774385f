"""Extension requests (issue 19, scope 2): a responsible road chief asks from the phone, as
the chief its device credential signed in; staff approve (the deadline moves by working
hours and the clock honours it) or refuse with a reason; each step is on the timeline, in
the audit log under the right name, pushed live, and the chief gets a notice."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from roadwatch.accounts import chiefs as ca
from roadwatch.store import models
from tests.support.cases import make_case
from tests.test_case_workbench import audit_rows, row, transitions


def chief_headers(runtime: Any, app: Any, rid: str) -> dict[str, str]:
    """Sign `rid` in on a phone (a fresh password, then the device credential it gets)."""
    with runtime.sessions.begin() as s:
        made = ca.provision(s, only=[rid], reset=[rid])
        password = {**made.created, **made.reset}[rid]
    res = app.test_client().post("/m/api/session", json={"reporter_id": rid, "password": password})
    assert res.status_code == 200, res.get_json()
    return {"Authorization": f"Bearer {res.get_json()['device']['token']}"}


def ask(app: Any, headers: dict[str, str], case_id: str, **body: Any) -> Any:
    return app.test_client().post(
        f"/m/api/cases/{case_id}/request_extension", json=body, headers=headers
    )


def stranger(runtime: Any, segment_id: str) -> str:
    """A road chief who holds none of `segment_id`'s posts."""
    a = models.Assignment
    with runtime.sessions() as s:
        holders = set(s.scalars(select(a.reporter_id).where(a.segment_id == segment_id)))
        chiefs = s.scalars(
            select(a.reporter_id).where(a.level == 3, a.valid_to.is_(None)).order_by(a.reporter_id)
        ).all()
    return next(c for c in chiefs if c not in holders)


def sent(runtime: Any, monkeypatch: Any) -> tuple[list[Any], list[Any]]:
    """What the runtime pushes live and sends as notices from now on."""
    events: list[Any] = []
    notices: list[Any] = []
    monkeypatch.setattr(runtime.broadcaster, "publish", events.extend)
    monkeypatch.setattr(runtime, "send_notices", notices.extend)
    return events, notices


def test_only_a_responsible_chief_may_ask_as_themselves(
    runtime: Any, app: Any, login_as: Any, monkeypatch: Any
) -> None:
    case = make_case(runtime, "JS")
    assert case.assignee_id and case.segment_id
    mine = chief_headers(runtime, app, case.assignee_id)
    other_id = stranger(runtime, case.segment_id)
    other = chief_headers(runtime, app, other_id)
    events, _ = sent(runtime, monkeypatch)

    assert ask(app, {}, case.id, hours=8, reason="x").status_code == 401
    res = ask(app, other, case.id, hours=8, reason="想帮忙")
    assert res.status_code == 403 and res.get_json()["errors"][0]["code"] == "not_responsible"
    assert ask(app, mine, case.id, hours=8).status_code == 400  # a reason is required
    assert ask(app, mine, case.id, hours=0, reason="x").status_code == 400
    assert ask(app, mine, "not-a-case", hours=8, reason="x").status_code == 404

    # a body naming someone else changes nothing: the device's chief is the one who asks
    res = ask(app, mine, case.id, hours=8, reason="需协调施工方", by=other_id, reporter_id=other_id)
    assert res.status_code == 201, res.get_json()
    request_id = res.get_json()["request_id"]
    last = transitions(runtime, case.id)[-1]
    assert (last.by, last.note, last.to_status) == (case.assignee_id, "需协调施工方", "dispatched")
    assert last.data == {"action": "request_extension", "request_id": request_id, "hours": 8}
    assert row(runtime, case.id).due_at == case.due_at  # asking moves nothing
    (entry,) = audit_rows(runtime, "case.request_extension")
    assert (entry.actor, entry.target) == (f"chief:{case.assignee_id}", case.id)
    live = [e.payload for e in events if e.kind == "case"]
    assert [(p["id"], p["action"], p["by"]) for p in live] == [
        (case.id, "request_extension", case.assignee_id)
    ]
    # one pending request at a time; staff see it on the case page
    assert ask(app, mine, case.id, hours=4, reason="again").status_code == 409
    (pending,) = (
        login_as("district_staff", "JS")
        .get(f"/api/cases/{case.id}")
        .get_json()["extension_requests"]
    )
    assert (pending["id"], pending["status"], pending["hours"]) == (request_id, "pending", 8)
    assert pending["requested_by"] == case.assignee_id


def test_staff_approve_moves_the_deadline_and_the_clock_honours_it(
    runtime: Any, app: Any, login_as: Any, monkeypatch: Any
) -> None:
    from roadwatch.cases.clock import sweep

    case = make_case(runtime, "JS", age=dt.timedelta(hours=3), category="E0102")
    assert case.assignee_id and case.due_at
    res = ask(app, chief_headers(runtime, app, case.assignee_id), case.id, hours=40, reason="专车")
    request_id = res.get_json()["request_id"]
    _, notices = sent(runtime, monkeypatch)
    # another district's officer may not decide it
    zy = login_as("district_staff", "ZY")
    res = zy.post(f"/api/cases/{case.id}/approve_extension", json={"request_id": request_id})
    assert res.status_code == 403
    staff = login_as("district_staff", "JS")
    url = f"/api/cases/{case.id}/approve_extension"
    assert staff.post(url, json={"request_id": "nope"}).status_code == 404
    res = staff.post(url, json={"request_id": request_id, "reason": "同意"})
    assert res.status_code == 200, res.get_json()

    due = row(runtime, case.id).due_at
    assert due is not None
    cal = runtime.pipeline.sla.calendar
    assert cal.working_between(case.due_at, due) == dt.timedelta(hours=40)
    with runtime.sessions() as s:
        req = s.get(models.ExtensionRequest, request_id)
        assert req is not None
        assert (req.status, req.decided_by, req.granted_hours) == (
            "approved",
            staff.user.username,
            40,
        )
    last = transitions(runtime, case.id)[-1]
    assert last.by == staff.user.username and last.data is not None
    assert (last.data["action"], last.data["request_id"]) == ("extend", request_id)
    (entry,) = audit_rows(runtime, "case.approve_extension")
    assert (entry.actor, entry.target) == (staff.user.username, case.id)
    ((person, body),) = [(n.person_id, n.body) for n in notices]
    assert person == case.assignee_id
    assert (body["kind"], body["decision"], body["due_at"]) == (
        "extension",
        "approved",
        due.isoformat(),
    )
    assert staff.post(url, json={"request_id": request_id}).status_code == 409  # decided

    # the old deadline no longer escalates; the new one does
    events, _ = sweep(runtime.engine, runtime.pipeline.sla, case.due_at + dt.timedelta(minutes=1))
    assert not [e for e in events if e.kind == "case"]
    events, _ = sweep(runtime.engine, runtime.pipeline.sla, due + dt.timedelta(minutes=1))
    assert [e.payload["id"] for e in events if e.kind == "case"] == [case.id]


def test_staff_refuse_is_recorded_with_its_reason(
    runtime: Any, app: Any, login_as: Any, monkeypatch: Any
) -> None:
    case = make_case(runtime, "JS")
    assert case.assignee_id
    mine = chief_headers(runtime, app, case.assignee_id)
    request_id = ask(app, mine, case.id, hours=16, reason="材料未到").get_json()["request_id"]
    _, notices = sent(runtime, monkeypatch)
    staff = login_as("district_staff", "JS")
    url = f"/api/cases/{case.id}/refuse_extension"
    assert staff.post(url, json={"request_id": request_id}).status_code == 400  # reason needed
    res = staff.post(url, json={"request_id": request_id, "reason": "可先临时处置"})
    assert res.status_code == 200, res.get_json()
    assert row(runtime, case.id).due_at == case.due_at
    with runtime.sessions() as s:
        req = s.get(models.ExtensionRequest, request_id)
        assert req is not None
        assert (req.status, req.decided_by, req.decision_note) == (
            "refused",
            staff.user.username,
            "可先临时处置",
        )
    last = transitions(runtime, case.id)[-1]
    assert (last.by, last.note) == (staff.user.username, "可先临时处置")
    assert last.data is not None and last.data["action"] == "refuse_extension"
    (entry,) = audit_rows(runtime, "case.refuse_extension")
    assert entry.actor == staff.user.username
    ((person, body),) = [(n.person_id, n.body) for n in notices]
    assert (person, body["decision"], body["note"]) == (case.assignee_id, "refused", "可先临时处置")
    # decided: no second decision; the chief may ask again
    res = staff.post(f"/api/cases/{case.id}/approve_extension", json={"request_id": request_id})
    assert res.status_code == 409
    assert ask(app, mine, case.id, hours=8, reason="再次申请").status_code == 201


def test_a_holder_who_is_not_the_assignee_may_ask_and_both_hear(
    runtime: Any, app: Any, login_as: Any, monkeypatch: Any
) -> None:
    """RESPONSIBLE is also whoever holds the segment now: such a chief may ask; on approval
    the assignee hears of the new deadline and the asker of the decision."""
    case = make_case(runtime, "JS")
    a = models.Assignment
    with runtime.sessions() as s:
        holder = s.scalars(
            select(a.reporter_id).where(
                a.segment_id == case.segment_id,
                a.reporter_id != case.assignee_id,
                a.role == "road_chief",
                a.valid_to.is_(None),
            )
        ).first()
    assert holder
    res = ask(app, chief_headers(runtime, app, holder), case.id, hours=4, reason="协助处理")
    assert res.status_code == 201, res.get_json()
    _, notices = sent(runtime, monkeypatch)
    staff = login_as("admin")
    body = {"request_id": res.get_json()["request_id"]}  # no note: the officer said nothing
    assert staff.post(f"/api/cases/{case.id}/approve_extension", json=body).status_code == 200
    kinds = {n.person_id: n.body["kind"] for n in notices}
    assert kinds == {case.assignee_id: "extend", holder: "extension"}
    with runtime.sessions() as s:
        req = s.get(models.ExtensionRequest, body["request_id"])
        assert req is not None and (req.status, req.decision_note) == ("approved", None)
    assert transitions(runtime, case.id)[-1].note == "协助处理"  # the extension's reason
