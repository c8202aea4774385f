"""The case workflow on SQLite and PostgreSQL: dispatch, corroboration, rectification,
verification, time limits and escalation with a controlled clock."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func as sa_func
from sqlalchemy import select

from roadwatch.cases.clock import sweep
from roadwatch.cases.workflow import CLOCK_RUNNING
from roadwatch.ingest.messages import Inbound
from roadwatch.store import models
from tests.support.examples import contract_example

CST = dt.timezone(dt.timedelta(hours=8))
FRIDAY_1630 = dt.datetime(2026, 11, 20, 16, 30, tzinfo=CST)  # a Friday
PHOTO = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


@pytest.fixture
def at(runtime: Any) -> Iterator[Any]:
    """Set the pipeline's clock: `at(datetime)`."""
    original = runtime.pipeline.clock

    def set_clock(when: dt.datetime) -> None:
        runtime.pipeline.clock = lambda: when.astimezone(dt.UTC)

    yield set_clock
    runtime.pipeline.clock = original


def msg(kind: str, body: dict[str, Any], reporter: str, when: dt.datetime) -> Inbound:
    word = {
        "report": "reports",
        "rectification": "rectifications",
        "verification": "verifications",
    }[kind]
    return Inbound(
        transport="mqtt",
        kind=kind,
        payload=json.dumps(body).encode(),
        received_at=when.astimezone(dt.UTC),
        topic=f"roadwatch/v1/{word}/{reporter}",
        topic_reporter=reporter,
    )


def report(runtime: Any, when: dt.datetime, **changes: Any) -> tuple[Any, dict[str, Any]]:
    """A report received at `when` (the pipeline's clock is set to it)."""
    runtime.pipeline.clock = lambda: when.astimezone(dt.UTC)
    body = contract_example(observed_at=(when - dt.timedelta(minutes=5)).isoformat(), **changes)
    (out,) = runtime.pipeline.process([msg("report", body, body["reporter_id"], when)])
    return out, body


def case_row(runtime: Any, rid: str) -> models.Report:
    with runtime.sessions() as s:
        row = s.get(models.Report, rid)
        assert row is not None
        return row


def chief_of(runtime: Any, segment_id: str, level: int) -> str:
    with runtime.sessions() as s:
        return s.scalars(
            select(models.Assignment.reporter_id).where(
                models.Assignment.segment_id == segment_id,
                models.Assignment.level == level,
                models.Assignment.valid_to.is_(None),
            )
        ).one()


def rectification(
    report_id: str, reporter: str, when: dt.datetime, photos: Any = None, **kw: Any
) -> dict[str, Any]:
    return {
        "v": 1,
        "rectification_id": kw.get("rid", str(uuid.uuid4())),
        "report_id": report_id,
        "reporter_id": reporter,
        "done_at": when.isoformat(),
        "note": "已清理",
        "photos": [PHOTO] if photos is None else photos,
    }


def verification(report_id: str, reporter: str, when: dt.datetime, result: str) -> dict[str, Any]:
    return {
        "v": 1,
        "verification_id": str(uuid.uuid4()),
        "report_id": report_id,
        "reporter_id": reporter,
        "result": result,
        "done_at": when.isoformat(),
    }


def test_dispatch_to_the_segment_chief_with_a_working_time_deadline(runtime: Any, at: Any) -> None:
    at(FRIDAY_1630)
    out, body = report(runtime, FRIDAY_1630, category="E0102")  # exposed rubbish: 4 working h
    assert out.status == "accepted" and out.case_status == "dispatched"
    row = case_row(runtime, body["report_id"])
    assert row.assignee_id == chief_of(runtime, out.segment_id, 3)
    assert row.due_at == runtime.pipeline.sla.deadline("E0102", 2, FRIDAY_1630)
    # 4 working hours from Friday 16:30 under the city calendar: Monday 11:30
    assert row.due_at.astimezone(CST) == dt.datetime(2026, 11, 23, 11, 30, tzinfo=CST)
    assert row.escalation_level == 0 and row.overdue is False


def test_corroborating_report_is_linked_not_counted_twice(runtime: Any, at: Any) -> None:
    at(FRIDAY_1630)
    first, b1 = report(runtime, FRIDAY_1630)
    second, b2 = report(runtime, FRIDAY_1630 + dt.timedelta(minutes=20), lat=34.77285)
    other, _ = report(runtime, FRIDAY_1630, category="E0505")  # another problem: its own case
    assert first.segment_id == second.segment_id == other.segment_id
    assert second.case_status == "duplicate" and other.case_status == "dispatched"
    assert case_row(runtime, b2["report_id"]).parent_id == b1["report_id"]
    from roadwatch.store.segments import segment_states

    with runtime.sessions() as s:
        (state,) = segment_states(s, [first.segment_id])
    assert state["open"] == 2  # two cases, not three reports


def test_rectify_verify_close_and_the_refusals(runtime: Any, at: Any) -> None:
    at(FRIDAY_1630)
    out, body = report(runtime, FRIDAY_1630)
    rid = body["report_id"]
    chief = case_row(runtime, rid).assignee_id
    assert chief
    t = FRIDAY_1630 + dt.timedelta(hours=1)
    p = runtime.pipeline
    p.clock = lambda: t.astimezone(dt.UTC)
    # A registered chief of another district (an unregistered one is refused before this).
    other = "zz-zhongyuan-0001"
    stranger = p.process([msg("rectification", rectification(rid, other, t), other, t)])[0]
    assert stranger.status == "rejected" and stranger.errors[0].code == "not_responsible"
    assert stranger.case_status is None  # a case's state is not told to whoever asks
    no_photo = p.process([msg("rectification", rectification(rid, chief, t, photos=[]), chief, t)])[
        0
    ]
    assert no_photo.errors[0].code == "photo_required"
    assert no_photo.case_status == "dispatched"  # the state the refusal left as it was
    unknown = p.process(
        [msg("rectification", rectification(str(uuid.uuid4()), chief, t), chief, t)]
    )[0]
    # over MQTT it waits for its report (several workers: tests/test_parking.py)
    assert unknown.status == "parked"
    body_r = rectification(rid, chief, t)
    done = p.process([msg("rectification", body_r, chief, t)])[0]
    assert (done.status, done.case_status) == ("accepted", "rectified")
    again = p.process([msg("rectification", body_r, chief, t)])[0]
    assert again.status == "duplicate"
    self_check = p.process([msg("verification", verification(rid, chief, t, "pass"), chief, t)])[0]
    assert self_check.status == "rejected" and self_check.errors[0].code == "same_person"
    supervisor = chief_of(runtime, out.segment_id, 2)
    failed = p.process(
        [msg("verification", verification(rid, supervisor, t, "fail"), supervisor, t)]
    )[0]
    assert failed.case_status == "reopened"
    p.process([msg("rectification", rectification(rid, chief, t), chief, t)])
    closed = p.process(
        [msg("verification", verification(rid, supervisor, t, "pass"), supervisor, t)]
    )[0]
    assert closed.case_status == "closed"
    late = p.process([msg("rectification", rectification(rid, chief, t), chief, t)])[0]
    assert late.errors[0].code == "illegal_transition"
    assert late.case_status == "closed"
    assert "closed cannot become rectified" in late.errors[0].message
    with runtime.sessions() as s:
        steps = s.scalars(
            select(models.ReportTransition.to_status)
            .where(models.ReportTransition.report_id == rid)
            .order_by(models.ReportTransition.id)
        ).all()
        rejected = s.scalars(select(models.RejectedMessage.reason)).all()
    assert steps == ["dispatched", "rectified", "reopened", "rectified", "closed"]
    assert len(rejected) == 4  # every refusal is kept with its reason (the parked one waits)


def test_another_reporters_message_id_is_rejected_not_a_duplicate(runtime: Any, at: Any) -> None:
    """A rectification or verification under an id another reporter already used is not a
    resend of it: rejected not_yours and kept, never a silent "duplicate"."""
    at(FRIDAY_1630)
    out, body = report(runtime, FRIDAY_1630)
    rid = body["report_id"]
    chief = case_row(runtime, rid).assignee_id
    t = FRIDAY_1630 + dt.timedelta(hours=1)
    p = runtime.pipeline
    p.clock = lambda: t.astimezone(dt.UTC)
    body_r = rectification(rid, chief, t)
    assert p.process([msg("rectification", body_r, chief, t)])[0].status == "accepted"
    supervisor = chief_of(runtime, out.segment_id, 2)
    theirs = {**verification(rid, supervisor, t, "fail")}
    theirs["verification_id"] = body_r["rectification_id"]
    (got,) = p.process([msg("verification", theirs, supervisor, t)])
    assert got.status == "rejected"
    assert [(e.field, e.code) for e in got.errors] == [("verification_id", "not_yours")]
    assert case_row(runtime, rid).case_status == "rectified"  # nothing changed
    (again,) = p.process([msg("rectification", body_r, chief, t)])
    assert again.status == "duplicate"  # the owner's own resend still is one
    with runtime.sessions() as s:
        kept = s.scalars(select(models.RejectedMessage.reporter_id)).all()
    assert kept == [supervisor]


def test_escalation_level_by_level_each_notified_once(runtime: Any, at: Any) -> None:
    at(FRIDAY_1630)
    out, body = report(runtime, FRIDAY_1630, category="E0102")
    rid = body["report_id"]
    due = case_row(runtime, rid).due_at.astimezone(CST)
    sla = runtime.pipeline.sla
    levels = {lvl: chief_of(runtime, out.segment_id, lvl) for lvl in (0, 1, 2)}

    def run(when: dt.datetime) -> list[Any]:
        events, notices = sweep(runtime.engine, sla, when.astimezone(dt.UTC))
        return notices

    assert run(due - dt.timedelta(minutes=1)) == []
    first = run(due + dt.timedelta(minutes=1))
    assert {n.person_id for n in first} == {levels[2], case_row(runtime, rid).assignee_id}
    assert run(due + dt.timedelta(minutes=2)) == []  # once per level
    row = case_row(runtime, rid)
    assert row.overdue is True and row.escalation_level == 1
    step2 = sla.escalation_at(due, 2)
    step3 = sla.escalation_at(due, 3)
    assert step2 is not None and step3 is not None and step2 < step3
    assert [n.person_id for n in run(step2 + dt.timedelta(seconds=1))] == [levels[1]]
    assert [n.person_id for n in run(step3 + dt.timedelta(seconds=1))] == [levels[0]]
    assert run(step3 + dt.timedelta(days=30)) == []  # the top of the ladder
    from roadwatch.store.segments import segment_states

    with runtime.sessions() as s:
        (state,) = segment_states(s, [out.segment_id])
    assert state["overdue"] == 1


@pytest.mark.parametrize("held_at", [2, 1])
def test_escalation_starts_above_the_level_that_holds_the_case(
    runtime: Any, at: Any, network_ctx: Any, held_at: int
) -> None:
    """Districts without 三级路长 give a case to a 二级 (or higher) chief: the ladder starts
    one level above them at the deadline (config/sla.toml: "superior"), never at their own
    level or below, and skips the steps naming a level already told."""
    from sqlalchemy import update

    seg = network_ctx.network.segments[1234 + held_at]
    a = models.Assignment.__table__.c
    with runtime.sessions.begin() as s:  # the posts below `held_at` are vacant
        vacated = (
            s.execute(
                update(models.Assignment.__table__)
                .where(a.segment_id == seg.id, a.level > held_at, a.valid_to.is_(None))
                .values(valid_to=FRIDAY_1630 - dt.timedelta(days=30))
                .returning(a.id)
            )
            .scalars()
            .all()
        )
    assert vacated
    try:
        at(FRIDAY_1630)
        mid = seg.geometry.interpolate(0.5, normalized=True)
        out, body = report(
            runtime,
            FRIDAY_1630,
            lat=mid.y,
            lon=mid.x,
            crs="WGS84",
            heading_deg=None,
            category="E0102",
        )
        rid = body["report_id"]
        row = case_row(runtime, rid)
        levels = {lvl: chief_of(runtime, seg.id, lvl) for lvl in range(held_at + 1)}
        assert out.segment_id == seg.id and row.assignee_id == levels[held_at]
        due = row.due_at.astimezone(CST)
        sla = runtime.pipeline.sla

        def run(when: dt.datetime) -> list[tuple[str, str, int]]:
            _, notices = sweep(runtime.engine, sla, when.astimezone(dt.UTC))
            return sorted((n.person_id, n.body["kind"], n.body["level"]) for n in notices)

        step2, step3 = sla.escalation_at(due, 2), sla.escalation_at(due, 3)
        assert step2 is not None and step3 is not None
        first, second, third = (
            run(due + dt.timedelta(minutes=1)),
            run(step2 + dt.timedelta(seconds=1)),
            run(step3 + dt.timedelta(seconds=1)),
        )
        told = sorted(
            [
                (levels[held_at - 1], "escalation", held_at - 1),
                (levels[held_at], "overdue", held_at - 1),
            ]
        )
        assert first == told  # the superior at the deadline, the holder told it is overdue
        assert second == []  # 一级 again (or 一级 below a 一级 holder): skipped
        assert third == ([(levels[0], "escalation", 0)] if held_at == 2 else [])
        assert run(step3 + dt.timedelta(days=30)) == []
        assert case_row(runtime, rid).overdue is True
    finally:
        with runtime.sessions.begin() as s:
            s.execute(
                update(models.Assignment.__table__).where(a.id.in_(vacated)).values(valid_to=None)
            )


def test_two_schedulers_escalate_each_case_once(runtime: Any, at: Any, network_ctx: Any) -> None:
    at(FRIDAY_1630)
    segs = network_ctx.network.segments
    ids = []
    for i in range(40):  # forty cases on forty segments
        mid = segs[i * 50].geometry.interpolate(0.5, normalized=True)
        out, body = report(
            runtime,
            FRIDAY_1630,
            lat=mid.y,
            lon=mid.x,
            crs="WGS84",
            heading_deg=None,
            category="E0102",
        )
        if out.case_status == "dispatched":
            ids.append(body["report_id"])
    assert len(ids) > 30
    when = (FRIDAY_1630 + dt.timedelta(days=4)).astimezone(dt.UTC)  # long overdue
    from roadwatch.store import db

    engines = [db.make_engine(runtime.settings.database_url) for _ in range(2)]
    results: list[list[Any]] = [[], []]
    barrier = threading.Barrier(2)

    r = models.Report.__table__.c
    still_due = (
        select(sa_func.count())
        .select_from(models.Report.__table__)
        .where(r.case_status.in_(CLOCK_RUNNING), r.next_escalation_at <= when)
    )

    def worker(k: int) -> None:
        # Each sweeps again and again, as a real scheduler would, until nothing is due. A
        # fixed number of sweeps each is not enough: one sweeper's sweeps may all come up
        # empty while the other holds the rows (SKIP LOCKED, or SQLite's single writer).
        barrier.wait()
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            try:
                results[k] += sweep(engines[k], runtime.pipeline.sla, when)[1]
            except Exception as exc:  # SQLite may refuse the second writer: retried
                if "locked" not in str(exc):
                    raise
            with engines[k].connect() as conn:
                if conn.execute(still_due).scalar_one() == 0:
                    return

    threads = [threading.Thread(target=worker, args=(k,)) for k in (0, 1)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    for e in engines:
        e.dispose()
    escalations = [
        (n.body["case_id"], n.body["step"])
        for n in results[0] + results[1]
        if n.body["kind"] == "escalation"
    ]
    assert len(escalations) == len(set(escalations))  # nobody notified twice
    # four days late: every case has climbed the whole ladder (steps 1, 2, 3)
    assert {(c, s) for c, s in escalations} == {(c, s) for c in ids for s in (1, 2, 3)}


def test_a_large_batch_is_dispatched_in_one_pass(runtime: Any, at: Any, network_ctx: Any) -> None:
    """Thirty reports at once (the bulk path): each a dispatched case with its deadline."""
    when = FRIDAY_1630
    at(when)
    segs = network_ctx.network.segments
    bodies = []
    for i in range(30):
        mid = segs[i * 70].geometry.interpolate(0.5, normalized=True)
        bodies.append(
            contract_example(
                lat=mid.y,
                lon=mid.x,
                crs="WGS84",
                heading_deg=None,
                category="E0104",
                observed_at=(when - dt.timedelta(minutes=3)).isoformat(),
            )
        )
    outs = runtime.pipeline.process([msg("report", b, b["reporter_id"], when) for b in bodies])
    placed = [(o, b) for o, b in zip(outs, bodies, strict=True) if o.segment_id]
    assert len(placed) >= 25
    due = runtime.pipeline.sla.deadline("E0104", 2, when)
    for out, body in placed:
        assert out.case_status == "dispatched"
        row = case_row(runtime, body["report_id"])
        assert row.case_status == "dispatched" and row.due_at == due
        assert row.assignee_id == chief_of(runtime, out.segment_id, 3)


def _rectification(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "v": 1,
        "rectification_id": str(uuid.uuid4()),
        "report_id": str(uuid.uuid4()),
        "reporter_id": "zz-jinshui-0421",
        "done_at": dt.datetime.now(dt.UTC).isoformat(),
        "lat": 34.77,
        "lon": 113.68,
        "crs": "GCJ02",
        "note": "done",
        "photos": ["a" * 64],
    }
    body.update(changes)
    return body


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"lat": 99.0}, [("lat", "out_of_range")]),
        ({"lon": -181}, [("lon", "out_of_range")]),
        ({"crs": "EPSG:3857"}, [("crs", "unknown_crs")]),
        ({"done_at": "0001-01-01T00:00:00+14:00"}, [("done_at", "out_of_range")]),
        ({"photos": ["xyz"]}, [("photos.0", "invalid")]),
        # null is "not given", and hex is hex in capitals too
        ({"crs": None, "photos": None, "note": None}, []),
        ({"photos": ["A" * 64]}, []),
    ],
)
def test_rectification_fields_are_checked_like_a_reports(
    changes: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    from roadwatch.cases.intake import validate_case_message

    now = dt.datetime.now(dt.UTC)
    msg, errors = validate_case_message("rectification", _rectification(**changes), now, None)
    assert [(e.field, e.code) for e in errors] == expected
    if not expected:
        assert msg is not None and all(p == p.lower() for p in msg.photos)


def test_staff_actions_ask_the_same_permission_table(runtime: Any, at: Any) -> None:
    """The command centre's actions judge a stored case with `case_facts` + `may`."""
    from roadwatch.cases.permissions import Reporter, Staff, may
    from roadwatch.cases.workflow import case_facts

    at(FRIDAY_1630)
    out, body = report(runtime, FRIDAY_1630)
    rid = body["report_id"]
    row = case_row(runtime, rid)
    chief, district = row.assignee_id, row.district
    assert chief and district
    t = FRIDAY_1630 + dt.timedelta(hours=1)
    runtime.pipeline.clock = lambda: t.astimezone(dt.UTC)
    runtime.pipeline.process([msg("rectification", rectification(rid, chief, t), chief, t)])
    with runtime.engine.connect() as conn:
        facts = case_facts(conn, rid, t.astimezone(dt.UTC))
        assert case_facts(conn, str(uuid.uuid4()), t) is None
    assert facts is not None and facts.fixer_id == chief and facts.district == district
    own = Staff("js", "district_staff", district)
    other = Staff("eq", "district_staff", "another-district")
    for action in ("verify", "reassign", "extend", "close_invalid", "reopen"):
        assert may(own, action, facts).allowed
        assert may(Staff("admin", "admin"), action, facts).allowed
        assert not may(other, action, facts).allowed
        assert not may(Staff("v", "viewer"), action, facts).allowed
    assert may(Reporter(chief), "verify", facts).code == "same_person"
    assert may(Reporter(chief_of(runtime, out.segment_id, 2)), "verify", facts).allowed
