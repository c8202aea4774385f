"""Two officers on the same case at once, a page loaded before someone else's change, and
what the chief's phone hears of a staff action (the concurrency audit of the workbench).

The races are made deterministic on PostgreSQL by holding a case's row lock in a second
connection while a request runs, as another officer's transaction would."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import bindparam, select, text

from roadwatch.cases.actions import ActionRefused, Env, act
from roadwatch.cases.permissions import Staff
from roadwatch.store import models
from tests.support.cases import make_case
from tests.test_review_similar import _pending


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


def _hold(runtime: Any, *ids: str) -> Any:
    """Another officer's transaction: these cases' rows locked until `.rollback()`."""
    conn = runtime.engine.connect()
    conn.execute(
        text("SELECT id FROM reports WHERE id IN :ids ORDER BY id FOR UPDATE").bindparams(
            bindparam("ids", expanding=True)
        ),
        {"ids": list(ids)},
    )
    return conn


@pytest.mark.integration
def test_crossed_merges_leave_one_case_kept(runtime: Any) -> None:
    """Merge A into B while B is merged into A: each locked only its own row and read the
    other unlocked, so both were done and each became the other's duplicate."""
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("SQLite writes one transaction at a time")
    a, b = make_case(runtime, "JS"), make_case(runtime, "JS")
    staff = Staff(username="t-one", role="admin", district=None)
    env = Env(runtime.pipeline.sla, runtime.ctx, models.utcnow())
    first = runtime.engine.connect()
    trans = first.begin()
    act(first, staff, "merge", a.id, {"into": b.id}, env)  # not committed yet
    out: dict[str, Any] = {}

    def other() -> None:
        with runtime.engine.begin() as conn:
            try:
                act(conn, staff, "merge", b.id, {"into": a.id}, env)
                out["done"] = True
            except ActionRefused as exc:
                out["refused"] = exc

    t = threading.Thread(target=other)
    t.start()
    t.join(1.0)  # it waits for the first merge's locks
    trans.commit()
    first.close()
    t.join(10)
    assert not t.is_alive()
    assert "done" not in out, "both merges were done"
    assert out["refused"].status == 409 and out["refused"].code == "not_a_case"
    with runtime.sessions() as s:
        ra, rb = s.get(models.Report, a.id), s.get(models.Report, b.id)
        assert ra is not None and rb is not None
        assert (ra.case_status, ra.parent_id) == ("duplicate", b.id)
        assert rb.case_status != "duplicate" and rb.parent_id is None


@pytest.mark.integration
def test_an_action_that_waited_is_timed_after_the_one_it_waited_for(
    runtime: Any, login_as: Callable[..., FlaskClient]
) -> None:
    """The time of an action was taken before its lock: a reassign that waited for another
    officer's transaction was recorded before it on the case's timeline."""
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("SQLite writes one transaction at a time")
    case = make_case(runtime, "JS")
    admin = login_as("admin")
    held = _hold(runtime, case.id)
    out: dict[str, Any] = {}
    body = {"assignee_id": case.assignee_id, "reason": "r"}
    t = threading.Thread(
        target=lambda: out.update(res=admin.post(f"/api/cases/{case.id}/reassign", json=body))
    )
    t.start()
    time.sleep(0.5)
    released = models.utcnow()
    held.rollback()
    held.close()
    t.join(10)
    assert out["res"].status_code == 200, out["res"].get_json()
    tr = models.ReportTransition
    with runtime.sessions() as s:
        at = s.scalar(select(tr.at).where(tr.report_id == case.id, tr.by == admin.user.username))  # type: ignore[attr-defined]
    assert at is not None and at >= released


@pytest.mark.integration
def test_settling_a_group_locks_its_reports_in_one_order(
    runtime: Any, login_as: Callable[..., FlaskClient]
) -> None:
    """Two reviewers settling the same similar group from two of its reports locked them in
    two orders (the one asked about first) and deadlocked: one got 503 'database
    unavailable'. Now the rows are locked in id order: a settle from the group's highest id
    waits on the lowest first, holding nothing another reviewer could wait on."""
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("SQLite writes one transaction at a time")
    group = sorted(_pending(runtime, 2))
    low, high = group
    client = login_as("admin")
    target = runtime.ctx.network.segments[3].id
    held = _hold(runtime, low)  # another reviewer, settling from the low one, has it
    out: dict[str, Any] = {}
    t = threading.Thread(
        target=lambda: out.update(
            res=client.post(f"/api/review/{high}/similar", json={"segment_id": target})
        )
    )
    t.start()
    time.sleep(0.5)
    try:
        # that other reviewer now wants the high one: free, since the request waits on low
        held.execute(text("SELECT id FROM reports WHERE id = :id FOR UPDATE NOWAIT"), {"id": high})
    finally:
        held.rollback()
        held.close()
        t.join(10)
    assert out["res"].status_code == 200, out["res"].get_json()
    assert sorted(out["res"].get_json()["settled"]) == group
