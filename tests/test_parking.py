"""Parked case messages (roadwatch/ingest/park.py), on SQLite and PostgreSQL.

A rectification that arrives over MQTT before its report (another ingest worker holds the
report) waits in `parked_messages`, and is applied, with its ack, once the report is
stored and dispatched; one that waits too long gets the error it would have had.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from roadwatch.ingest.messages import Inbound, Outcome
from roadwatch.pipeline import PARKED
from roadwatch.store import models
from tests.test_cases import FRIDAY_1630, chief_of, msg, rectification, report


@pytest.fixture
def unparked(runtime: Any) -> Iterator[list[tuple[Inbound, Outcome]]]:
    """What the pipeline hands the transport to ack once parked messages are applied."""
    got: list[tuple[Inbound, Outcome]] = []
    p = runtime.pipeline
    p.on_unparked, clock = got.extend, p.clock
    yield got
    p.on_unparked, p.clock, p.parked_hint = None, clock, False


def parked(runtime: Any) -> list[tuple[str, str]]:
    with runtime.sessions() as s:
        return [
            (r.waits_for, r.reason)
            for r in s.scalars(select(models.ParkedMessage).order_by(models.ParkedMessage.id))
        ]


def test_a_rectification_before_its_report_waits_and_is_applied_after_it(
    runtime: Any, unparked: list[tuple[Inbound, Outcome]]
) -> None:
    t = FRIDAY_1630
    probe, _ = report(runtime, t, category="E0505")  # finds the segment and its chief
    chief = chief_of(runtime, probe.segment_id, 3)
    from tests.support.examples import contract_example

    body = contract_example(observed_at=(t - dt.timedelta(minutes=5)).isoformat())
    rid = body["report_id"]
    fix = rectification(rid, chief, t + dt.timedelta(minutes=30))
    p = runtime.pipeline
    p.clock = lambda: (t + dt.timedelta(minutes=31)).astimezone(dt.UTC)
    early = p.process([msg("rectification", fix, chief, t + dt.timedelta(minutes=31))])[0]
    assert early.status == PARKED and parked(runtime) == [(rid, "unknown_report")]
    resend = p.process([msg("rectification", fix, chief, t + dt.timedelta(minutes=32))])[0]
    assert resend.status == PARKED and len(parked(runtime)) == 1  # kept once
    assert unparked == []
    # The report arrives (the other worker committed it): stored, dispatched, and the
    # rectification applied right after, in order; its ack goes out now.
    (out,) = p.process([msg("report", body, body["reporter_id"], t + dt.timedelta(minutes=33))])
    assert out.status == "accepted"
    assert [(o.status, o.case_status) for _m, o in unparked] == [("accepted", "rectified")]
    assert unparked[0][0].topic_reporter == chief and parked(runtime) == []
    with runtime.sessions() as s:
        assert s.get(models.Report, rid).case_status == "rectified"  # type: ignore[union-attr]
    # Over HTTP nothing waits: the caller is answered at once.
    http = msg("rectification", rectification("0" * 8 + rid[8:], chief, t), chief, t)
    (now,) = p.process([Inbound(**{**_fields(http), "transport": "http"})])
    assert now.status == "rejected" and now.errors[0].code == "unknown_report"


def test_a_parked_message_past_the_maximum_age_gets_its_error(
    runtime: Any, unparked: list[tuple[Inbound, Outcome]]
) -> None:
    t = FRIDAY_1630
    p = runtime.pipeline
    p.clock = lambda: t.astimezone(dt.UTC)
    chief = "zz-jinshui-0421"
    fix = rectification("1e631119-c9aa-4c4b-9d6b-ec739590d3de", chief, t)
    assert p.process([msg("rectification", fix, chief, t)])[0].status == PARKED
    assert p.retry_parked() == []  # not due yet: waits its backoff
    p.clock = lambda: (t + dt.timedelta(seconds=5)).astimezone(dt.UTC)
    assert p.retry_parked() == [] and len(parked(runtime)) == 1  # due, still waiting
    late = t + p.park_max_age + dt.timedelta(seconds=1)
    p.clock = lambda: late.astimezone(dt.UTC)
    ((_m, out),) = p.retry_parked()
    assert out.status == "rejected" and out.errors[0].code == "unknown_report"
    assert parked(runtime) == []
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(models.RejectedMessage)) >= 1


def _fields(m: Inbound) -> dict[str, Any]:
    return {f: getattr(m, f) for f in m.__dataclass_fields__}


def test_a_patrol_ends_the_same_whatever_order_its_messages_arrive_in(runtime: Any) -> None:
    """Patrols need no parking: the end before the last track points (another worker held
    them) ends with the same coverage, state and start as in order."""
    from tests.test_patrols import CST, chain_of_two, patrol_msg, walk_along

    segs = chain_of_two(runtime.ctx.network)
    pts = list(enumerate(walk_along(segs, spacing_m=6, noise_m=6, seed=3)))
    start = dt.datetime.now(CST) - dt.timedelta(hours=1)
    half = len(pts) // 2
    who = "zz-jinshui-0421"
    p = runtime.pipeline

    def walk(order: list[str]) -> tuple[Any, ...]:
        pid = str(uuid.uuid4())
        parts = {"start": pts[:2], "track": pts[2:half], "more": pts[half:], "end": []}
        state = {"more": "track"}
        for part in order:
            p.process([patrol_msg(pid, who, state.get(part, part), parts[part], start)])
        with runtime.sessions() as s:
            row = s.get(models.Patrol, pid)
            assert row is not None
            cov = s.scalars(
                select(models.PatrolCoverage.segment_id).where(
                    models.PatrolCoverage.patrol_id == pid
                )
            ).all()
            return row.state, row.started_at, row.ended_at, sorted(cov)

    in_order = walk(["start", "track", "more", "end"])
    assert in_order[0] == "end" and in_order[3] == sorted(s.id for s in segs)
    assert walk(["end", "more", "start", "track"]) == in_order
    assert walk(["track", "end", "start", "more"]) == in_order
