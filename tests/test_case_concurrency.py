"""Two officers on the same case at once, a page loaded before someone else's change, and
what the chief's phone hears of a staff action (the concurrency audit of the workbench).

The races are made deterministic on PostgreSQL by holding a case's row lock in a second
connection while a request runs, as another officer's transaction would."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select

from roadwatch.store import models
from tests.support.cases import make_case


def _outbox(runtime: Any, rid: str) -> list[tuple[str, str]]:
    o = models.NoticeOutbox
    with runtime.sessions() as s:
        return [
            (p, b["kind"])
            for p, b in s.execute(select(o.person_id, o.body).order_by(o.created_at))
            if b.get("case_id") == rid
        ]


def test_a_staff_action_puts_the_chiefs_notice_in_the_outbox(
    runtime: Any, login_as: Callable[..., FlaskClient]
) -> None:
    """The outbox replaced direct sending, but the staff actions' notices were only
    'woken for': none was written, so a reassigned, extended or reopened case never
    reached the chief's phone."""
    case = make_case(runtime, "JS")
    admin = login_as("admin")
    before = _outbox(runtime, case.id)
    res = admin.post(f"/api/cases/{case.id}/extend", json={"hours": 2, "reason": "雨天"})
    assert res.status_code == 200, res.get_json()
    assert _outbox(runtime, case.id)[len(before) :] == [(case.assignee_id, "extend")]
    res = admin.post(
        f"/api/cases/{case.id}/reassign", json={"assignee_id": case.assignee_id, "reason": "再派"}
    )
    assert res.status_code == 200, res.get_json()
    assert _outbox(runtime, case.id)[len(before) + 1 :] == [(case.assignee_id, "dispatch")]


def test_a_failed_check_from_a_stale_page_does_not_reopen_a_closed_case(
    runtime: Any, login_as: Callable[..., FlaskClient]
) -> None:
    """A page loaded while the case was rectified; meanwhile a check passed and closed it.
    `verify fail` went through the staff-only closed -> reopened edge (meant for `reopen`)."""
    case = make_case(runtime, "JS")
    with runtime.sessions.begin() as s:
        s.get(models.Report, case.id).case_status = "rectified"
    a, b = login_as("admin"), login_as("admin")
    assert a.post(f"/api/cases/{case.id}/verify", json={"result": "pass"}).status_code == 200
    late = b.post(f"/api/cases/{case.id}/verify", json={"result": "fail", "reason": "没修好"})
    assert late.status_code == 409, late.get_json()
    with runtime.sessions() as s:
        assert s.get(models.Report, case.id).case_status == "closed"
    # reopening stays what `reopen` does
    res = b.post(f"/api/cases/{case.id}/reopen", json={"reason": "又坏了"})
    assert res.status_code == 200, res.get_json()
