"""Helpers for the ranking tests: rows of a week written straight into the tables."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import Connection, delete, insert

from roadwatch.store import models

CLEAN = (
    models.RankingDispute,
    models.Ranking,
    models.RankingJob,
    models.PatrolCoverage,
    models.PatrolPoint,
    models.Patrol,
    models.Assignment,
    models.Event,
    models.ReportTransition,
    models.ReportVersion,
    models.CaseMessage,
    models.Report,
    models.Reporter,
)


def clean(conn: Connection) -> None:
    for table in CLEAN:
        conn.execute(delete(table))


def add_person(conn: Connection, pid: str, kind: str = "person", name: str | None = None) -> None:
    conn.execute(insert(models.Reporter).values(id=pid, name=name or pid, kind=kind))


def add_assignment(
    conn: Connection,
    segment_id: str,
    person: str,
    role: str = "road_chief",
    level: int | None = 3,
    valid_from: dt.datetime = dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    **extra: Any,
) -> None:
    conn.execute(
        insert(models.Assignment).values(
            segment_id=segment_id,
            reporter_id=person,
            role=role,
            level=level if role == "road_chief" else None,
            valid_from=valid_from,
            **extra,
        )
    )


def add_report(
    conn: Connection,
    segment_id: str,
    district: str,
    observed_at: dt.datetime,
    *,
    category: str = "E0504",
    severity: int = 1,
    reporter: str = "someone",
    rid: str | None = None,
    case_status: str = "dispatched",
    due_at: dt.datetime | None = None,
    rectified_at: dt.datetime | None = None,
    closed_at: dt.datetime | None = None,
    chainage_m: float | None = None,
    received_at: dt.datetime | None = None,
) -> str:
    rid = rid or str(uuid.uuid4())
    conn.execute(
        insert(models.Report).values(
            id=rid,
            reporter_id=reporter,
            category=category,
            scheme="GB/T30428.2-2013",
            severity=severity,
            note=None,
            photos=[],
            observed_at=observed_at,
            received_at=received_at or observed_at,
            crs="WGS84",
            lat=34.75,
            lon=113.65,
            segment_id=segment_id,
            segment_version=1,
            district=district,
            snap={"chainage_m": chainage_m} if chainage_m is not None else {},
            status="accepted",
            transport="http",
            raw=b"{}",
            case_status=case_status,
            due_at=due_at,
            rectified_at=rectified_at,
            closed_at=closed_at,
        )
    )
    return rid


def add_transition(conn: Connection, rid: str, at: dt.datetime, to: str, frm: str) -> None:
    conn.execute(
        insert(models.ReportTransition).values(
            report_id=rid, at=at, from_status=frm, to_status=to, by="test"
        )
    )
