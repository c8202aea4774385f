"""Issue 15, scope 3: who may do what in a case, and when a fix was done.

Each attack goes through the real case-message path (validation → permission table →
workflow) on SQLite and PostgreSQL, as an MQTT message from the attacker's own topic.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import delete, select

from roadwatch.store import models
from tests.test_cases import (  # noqa: F401  (`at` is a fixture)
    CST,
    FRIDAY_1630,
    at,
    case_row,
    chief_of,
    msg,
    rectification,
    report,
    verification,
)

SAT_1000 = dt.datetime(2026, 11, 21, 10, 0, tzinfo=CST)


def send(runtime: Any, kind: str, body: dict[str, Any], when: dt.datetime) -> Any:
    runtime.pipeline.clock = lambda: when.astimezone(dt.UTC)
    (out,) = runtime.pipeline.process([msg(kind, body, body["reporter_id"], when)])
    return out


def holders_now(runtime: Any, segment_id: str) -> set[str]:
    with runtime.sessions() as s:
        return set(
            s.scalars(
                select(models.Assignment.reporter_id).where(
                    models.Assignment.segment_id == segment_id
                )
            )
        )


def unrelated_chief(runtime: Any, segment_id: str, level: int) -> str:
    """A road chief of `level` on other segments, holding nothing on `segment_id`."""
    mine = holders_now(runtime, segment_id)
    with runtime.sessions() as s:
        for person in s.scalars(
            select(models.Assignment.reporter_id)
            .where(
                models.Assignment.level == level,
                models.Assignment.segment_id != segment_id,
                models.Assignment.valid_to.is_(None),
            )
            .order_by(models.Assignment.reporter_id)
        ):
            if person not in mine:
                return str(person)
    raise AssertionError(f"no level-{level} chief outside {segment_id}")


def transitions(runtime: Any, rid: str) -> list[models.ReportTransition]:
    with runtime.sessions() as s:
        return list(
            s.scalars(
                select(models.ReportTransition)
                .where(models.ReportTransition.report_id == rid)
                .order_by(models.ReportTransition.id)
            )
        )


def rejected(runtime: Any) -> list[models.RejectedMessage]:
    with runtime.sessions() as s:
        return list(s.scalars(select(models.RejectedMessage)))


@pytest.fixture
def rectified(runtime: Any, at: Any) -> Iterator[tuple[str, str, str]]:  # noqa: F811
    """A case dispatched Friday 16:30 and rectified by its chief Saturday 10:00:
    (report id, segment id, the chief who fixed it)."""
    at(FRIDAY_1630)
    out, body = report(runtime, FRIDAY_1630, category="E0102")
    rid = body["report_id"]
    chief = case_row(runtime, rid).assignee_id
    assert chief
    done = send(runtime, "rectification", rectification(rid, chief, SAT_1000), SAT_1000)
    assert (done.status, done.case_status) == ("accepted", "rectified")
    yield rid, out.segment_id, chief


def test_unrelated_chief_cannot_fail_a_rival_case(runtime: Any, rectified: Any) -> None:
    rid, seg, _ = rectified
    before = case_row(runtime, rid)
    t = SAT_1000 + dt.timedelta(hours=1)
    for level in (3, 2, 1):  # chiefs of other segments, whatever their rank
        rival = unrelated_chief(runtime, seg, level)
        out = send(runtime, "verification", verification(rid, rival, t, "fail"), t)
        assert out.status == "rejected"
        assert out.errors[0].code == "not_permitted", out.errors
        assert rival in out.errors[0].message
    after = case_row(runtime, rid)
    assert after.case_status == "rectified"  # not reopened
    assert after.escalation_level == before.escalation_level == 0
    assert after.next_escalation_at is None and after.closed_at is None
    assert [x.to_status for x in transitions(runtime, rid)] == ["dispatched", "rectified"]
    kept = rejected(runtime)
    assert len(kept) == 3
    assert all(k.errors[0]["code"] == "not_permitted" and k.reason for k in kept)


def test_unrelated_chief_cannot_pass_a_case_either(runtime: Any, rectified: Any) -> None:
    rid, seg, _ = rectified
    rival = unrelated_chief(runtime, seg, 2)
    out = send(runtime, "verification", verification(rid, rival, SAT_1000, "pass"), SAT_1000)
    assert (out.status, out.errors[0].code) == ("rejected", "not_permitted")
    assert case_row(runtime, rid).case_status == "rectified"


def test_fixer_cannot_verify_their_own_fix(runtime: Any, rectified: Any) -> None:
    rid, _, chief = rectified
    out = send(runtime, "verification", verification(rid, chief, SAT_1000, "pass"), SAT_1000)
    assert (out.status, out.errors[0].code) == ("rejected", "same_person")
    assert case_row(runtime, rid).case_status == "rectified"


def test_responsible_chief_cannot_verify_a_fix_on_their_own_case(runtime: Any, at: Any) -> None:  # noqa: F811
    """The level-3 chief's case is fixed by the level-2 chief (who holds the segment too):
    the level-3 chief is not the fixer but is not above them either, so may not sign it off."""
    at(FRIDAY_1630)
    out, body = report(runtime, FRIDAY_1630, category="E0102")
    rid = body["report_id"]
    assignee = case_row(runtime, rid).assignee_id
    level2 = chief_of(runtime, out.segment_id, 2)
    assert assignee == chief_of(runtime, out.segment_id, 3)
    fix = send(runtime, "rectification", rectification(rid, level2, SAT_1000), SAT_1000)
    assert fix.case_status == "rectified"
    assert assignee is not None
    own = send(runtime, "verification", verification(rid, assignee, SAT_1000, "pass"), SAT_1000)
    assert (own.status, own.errors[0].code) == ("rejected", "not_permitted")
    assert case_row(runtime, rid).case_status == "rectified"
    level1 = chief_of(runtime, out.segment_id, 1)
    ok = send(runtime, "verification", verification(rid, level1, SAT_1000, "pass"), SAT_1000)
    assert (ok.status, ok.case_status) == ("accepted", "closed")


def test_superior_chief_may_verify(runtime: Any, rectified: Any) -> None:
    rid, seg, _ = rectified
    superior = chief_of(runtime, seg, 2)
    t = SAT_1000 + dt.timedelta(hours=1)
    failed = send(runtime, "verification", verification(rid, superior, t, "fail"), t)
    assert (failed.status, failed.case_status) == ("accepted", "reopened")
    chief = case_row(runtime, rid).assignee_id
    assert chief
    send(runtime, "rectification", rectification(rid, chief, t), t)
    top = chief_of(runtime, seg, 0)  # 总路长: above everyone
    closed = send(runtime, "verification", verification(rid, top, t, "pass"), t)
    assert (closed.status, closed.case_status) == ("accepted", "closed")


def test_registered_evaluator_may_verify_anywhere(runtime: Any, rectified: Any) -> None:
    rid, _, _ = rectified
    with runtime.sessions.begin() as s:
        s.add(models.Reporter(id="zz-eval-perm", name="第三方测评", kind="evaluator"))
        s.add(models.Reporter(id="zz-covert-perm", name="暗访", kind="covert"))
    runtime.pipeline.reporters.reload()  # registered just now: known at once, not within 1 s
    try:
        covert = send(
            runtime,
            "verification",
            verification(rid, "zz-covert-perm", SAT_1000, "fail"),
            SAT_1000,
        )
        assert (covert.status, covert.errors[0].code) == ("rejected", "not_permitted")
        ok = send(
            runtime, "verification", verification(rid, "zz-eval-perm", SAT_1000, "pass"), SAT_1000
        )
        assert (ok.status, ok.case_status) == ("accepted", "closed")
    finally:
        with runtime.sessions.begin() as s:
            s.execute(
                delete(models.Reporter).where(
                    models.Reporter.id.in_(("zz-eval-perm", "zz-covert-perm"))
                )
            )


def test_backdated_done_at_before_dispatch_is_clamped_to_dispatch(runtime: Any, at: Any) -> None:  # noqa: F811
    at(FRIDAY_1630)
    _, body = report(runtime, FRIDAY_1630, category="E0102")
    rid = body["report_id"]
    case = case_row(runtime, rid)
    chief, dispatched = case.assignee_id, case.dispatched_at
    assert chief and dispatched
    claimed = FRIDAY_1630 - dt.timedelta(days=3)  # days before anyone was told of it
    out = send(runtime, "rectification", rectification(rid, chief, claimed), SAT_1000)
    assert (out.status, out.case_status) == ("accepted", "rectified")
    assert case_row(runtime, rid).rectified_at == dispatched
    step = transitions(runtime, rid)[-1]
    assert step.to_status == "rectified" and step.data is not None
    assert dt.datetime.fromisoformat(step.data["done_at"]["claimed"]) == claimed
    assert dt.datetime.fromisoformat(step.data["done_at"]["used"]) == dispatched
    assert step.data["done_at"]["clamped"] == "earliest"
    with runtime.sessions() as s:
        kept = s.scalars(
            select(models.CaseMessage.done_at).where(models.CaseMessage.report_id == rid)
        ).one()
    assert kept == dispatched


def test_done_at_after_receipt_is_clamped_to_receipt(runtime: Any, at: Any) -> None:  # noqa: F811
    at(FRIDAY_1630)
    _, body = report(runtime, FRIDAY_1630, category="E0102")
    rid = body["report_id"]
    chief = case_row(runtime, rid).assignee_id
    assert chief
    claimed = SAT_1000 + dt.timedelta(minutes=9)  # inside the clock-skew tolerance
    out = send(runtime, "rectification", rectification(rid, chief, claimed), SAT_1000)
    assert out.status == "accepted"
    assert case_row(runtime, rid).rectified_at == SAT_1000.astimezone(dt.UTC)
    data = transitions(runtime, rid)[-1].data
    assert data is not None and data["done_at"]["clamped"] == "latest"


def test_backdated_fix_after_a_failed_verification_does_not_count_as_on_time(
    runtime: Any,
    rectified: Any,
) -> None:
    """Fixed on time, failed on inspection after the deadline, fixed again late: the second
    fix's done_at, backdated to before the deadline, is clamped to the reopening, so the
    ranking judges the case late."""
    from roadwatch.ranking.formula import load_formula
    from roadwatch.ranking.gather import findings_of
    from roadwatch.ranking.week import Week

    rid, seg, chief = rectified
    due = case_row(runtime, rid).due_at
    assert due is not None  # Monday 11:30
    tuesday = due + dt.timedelta(days=1)
    superior = chief_of(runtime, seg, 2)
    fail = send(runtime, "verification", verification(rid, superior, tuesday, "fail"), tuesday)
    assert fail.case_status == "reopened"
    later = tuesday + dt.timedelta(hours=5)
    backdated = due - dt.timedelta(hours=2)
    out = send(runtime, "rectification", rectification(rid, chief, backdated), later)
    assert (out.status, out.case_status) == ("accepted", "rectified")
    row = case_row(runtime, rid)
    assert row.rectified_at == tuesday.astimezone(dt.UTC)  # the reopening, not the claim
    assert row.rectified_at > due
    data = transitions(runtime, rid)[-1].data
    assert data is not None and data["done_at"]["clamped"] == "earliest"

    formula = load_formula(None, runtime.categories.codes)
    week = Week.containing(FRIDAY_1630, runtime.settings.tz)
    with runtime.engine.connect() as conn:
        found = findings_of(conn, formula, week, later + dt.timedelta(hours=1), "segment", [seg])
    (finding,) = [f for f, _ in found[seg] if f.id == rid]
    assert finding.on_time is False and finding.overdue is True


def test_former_chief_cannot_rectify_by_backdating_into_their_term(
    runtime: Any,
    at: Any,  # noqa: F811
) -> None:
    """Someone who held the segment until last month sends a fix dated in their term: the
    clamp moves it to the dispatch, when they no longer answer for the segment."""
    at(FRIDAY_1630)
    out, body = report(runtime, FRIDAY_1630, category="E0102")
    rid, seg = body["report_id"], out.segment_id
    former = "zz-former-chief"
    term_end = FRIDAY_1630 - dt.timedelta(days=30)
    with runtime.sessions.begin() as s:
        s.add(models.Reporter(id=former, name="前任路段长", kind="person", level=3))
        s.flush()
        s.add(
            models.Assignment(
                segment_id=seg,
                reporter_id=former,
                level=3,
                role="road_chief",
                valid_from=term_end - dt.timedelta(days=365),
                valid_to=term_end,
            )
        )
    runtime.pipeline.reporters.reload()  # registered just now: known at once, not within 1 s
    try:
        claimed = term_end - dt.timedelta(days=1)
        refused = send(runtime, "rectification", rectification(rid, former, claimed), SAT_1000)
        assert (refused.status, refused.errors[0].code) == ("rejected", "not_responsible")
        assert case_row(runtime, rid).case_status == "dispatched"
        stranger = unrelated_chief(runtime, seg, 3)
        other = send(runtime, "rectification", rectification(rid, stranger, SAT_1000), SAT_1000)
        assert (other.status, other.errors[0].code) == ("rejected", "not_responsible")
        assert len(rejected(runtime)) == 2
    finally:
        with runtime.sessions.begin() as s:
            s.execute(delete(models.Assignment).where(models.Assignment.reporter_id == former))
            s.execute(delete(models.Reporter).where(models.Reporter.id == former))
