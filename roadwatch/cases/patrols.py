"""Patrols (docs/protocol.md 2.4): track points from a road chief's walk, turned into coverage.

Points are stored as they come (a resend of the same instant adds nothing); when the
patrol ends, the whole track is matched as a path on the network (geo.match, an HMM), and
the segments walked are recorded with when they were first and last walked.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError
from sqlalchemy import Connection, Table, delete, select

from geo.crs import to_wgs84
from geo.match import covered_segments, match_track

from ..ingest.errors import FieldError
from ..ingest.payloads import Number, WholeNumber, parse_time, pydantic_errors
from ..network.context import NetworkContext
from ..store import models

PATROLS: Table = models.Patrol.__table__  # type: ignore[assignment]
POINTS: Table = models.PatrolPoint.__table__  # type: ignore[assignment]
COVERAGE: Table = models.PatrolCoverage.__table__  # type: ignore[assignment]
MAX_POINTS = 2000  # per message
_STATE_ORDER = {"start": 0, "track": 1, "end": 2}


class _Point(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    t: StrictStr
    lat: Number
    lon: Number
    accuracy_m: Number | None = None


class _Patrol(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    v: WholeNumber
    patrol_id: StrictStr
    reporter_id: StrictStr
    state: StrictStr
    crs: StrictStr | None = None  # null = not given: WGS84
    points: list[_Point] | None = Field(default=None, max_length=MAX_POINTS)


@dataclass(frozen=True, slots=True)
class PatrolIn:
    patrol_id: str
    reporter_id: str
    state: str
    points: tuple[tuple[dt.datetime, float, float, float | None], ...]  # t, lon, lat (WGS84)


def validate_patrol(
    data: Any,
    now: dt.datetime,
    topic_reporter: str | None,
    window: dt.timedelta | None = None,
) -> tuple[PatrolIn | None, list[FieldError]]:
    """The patrol message, or why not. ``window``: how old a point may be (the reports'
    observed_window_days); an older one is a phone's clock gone wrong, refused as too_old."""
    try:
        m = _Patrol.model_validate(data)
    except ValidationError as exc:
        return None, pydantic_errors(exc)
    errors: list[FieldError] = []
    try:
        pid = str(uuid.UUID(m.patrol_id))
    except ValueError:
        pid = ""
        errors.append(FieldError("patrol_id", "invalid_uuid", "patrol_id must be a UUID"))
    if m.v != 1:
        errors.append(FieldError("v", "unsupported_version", f"v must be 1, not {m.v}"))
    if topic_reporter is not None and m.reporter_id != topic_reporter:
        errors.append(
            FieldError(
                "reporter_id",
                "reporter_mismatch",
                "reporter_id does not match the topic's reporter",
            )
        )
    if m.state not in ("start", "track", "end"):
        errors.append(FieldError("state", "invalid", "state must be start, track or end"))
    crs = (m.crs or "WGS84").upper()
    if crs not in ("WGS84", "GCJ02", "BD09"):
        errors.append(FieldError("crs", "unknown_crs", "crs must be WGS84, GCJ02 or BD09"))
    pts: list[tuple[dt.datetime, float, float, float | None]] = []
    for i, p in enumerate(m.points or ()):
        t, terr = parse_time(p.t, f"points.{i}.t")
        if terr:
            errors.append(terr)
            continue
        assert t is not None
        if (
            not (-90 <= p.lat <= 90 and -180 <= p.lon <= 180)
            or not np.isfinite([p.lat, p.lon]).all()
        ):
            errors.append(FieldError(f"points.{i}", "out_of_range", "lat/lon out of range"))
            continue
        if t > now + dt.timedelta(minutes=10):
            errors.append(FieldError(f"points.{i}.t", "in_future", "a point is in the future"))
            continue
        if window is not None and t < now - window:
            errors.append(
                FieldError(
                    f"points.{i}.t",
                    "too_old",
                    f"points.{i}.t is older than {window.days} days; check the phone's clock",
                )
            )
            continue
        if p.accuracy_m is not None and not 0 <= p.accuracy_m <= 10_000:
            errors.append(
                FieldError(
                    f"points.{i}.accuracy_m",
                    "out_of_range",
                    f"points.{i}.accuracy_m must be between 0 and 10000",
                )
            )
            continue
        if errors:
            continue  # refused anyway (an unknown crs among them): check, convert nothing
        lon, lat = (
            (float(v) for v in to_wgs84(p.lon, p.lat, crs))
            if crs != "WGS84"
            else (float(p.lon), float(p.lat))
        )
        pts.append((t, lon, lat, None if p.accuracy_m is None else float(p.accuracy_m)))
    if errors:
        return None, errors
    return PatrolIn(pid, m.reporter_id, m.state, tuple(sorted(pts))), []


def belongs_to_another(conn: Connection, p: PatrolIn) -> bool:
    """Whether this patrol id is already another reporter's patrol: a chief may only add to
    their own walks (a reused id must not slip points into a rival's coverage)."""
    owner = conn.execute(select(PATROLS.c.reporter_id).where(PATROLS.c.id == p.patrol_id)).scalar()
    return owner is not None and owner != p.reporter_id


def store_patrol(conn: Connection, p: PatrolIn, ctx: NetworkContext, now: dt.datetime) -> list[str]:
    """Store a patrol message; on `end`, (re)compute its coverage. Returns covered segment ids."""
    row = conn.execute(
        select(PATROLS.c.state, PATROLS.c.started_at).where(PATROLS.c.id == p.patrol_id)
    ).first()
    first_t = p.points[0][0] if p.points else now
    if row is None:
        conn.execute(
            PATROLS.insert(),
            {
                "id": p.patrol_id,
                "reporter_id": p.reporter_id,
                "started_at": first_t,
                "ended_at": None,
                "state": p.state,
            },
        )
    else:
        # Several ingest workers may apply a walk's messages out of order: the state only
        # moves forward (start < track < end) and the start is the earliest point seen,
        # so the result does not depend on the order they arrived in.
        values: dict[str, Any] = {}
        if _STATE_ORDER.get(p.state, 0) > _STATE_ORDER.get(row.state, 0):
            values["state"] = p.state
        started = row.started_at if row.started_at.tzinfo else row.started_at.replace(tzinfo=dt.UTC)
        if p.points and first_t < started:
            values["started_at"] = first_t
        if values:
            conn.execute(PATROLS.update().where(PATROLS.c.id == p.patrol_id).values(**values))
    fresh_points = False
    if p.points:
        known = set(
            conn.execute(
                select(POINTS.c.t).where(
                    POINTS.c.patrol_id == p.patrol_id, POINTS.c.t.in_([x[0] for x in p.points])
                )
            ).scalars()
        )
        known = {k if k.tzinfo else k.replace(tzinfo=dt.UTC) for k in known}
        fresh: list[dict[str, Any]] = []
        for t, lon, lat, acc in p.points:  # sorted by t; one point per instant
            if t in known:
                continue
            known.add(t)
            fresh.append(
                {"patrol_id": p.patrol_id, "t": t, "lon": lon, "lat": lat, "accuracy_m": acc}
            )
        if fresh:
            conn.execute(POINTS.insert(), fresh)
        fresh_points = bool(fresh)
    # Points that arrive after the end (another worker held them) are matched again.
    if p.state != "end" and not (row is not None and row.state == "end" and fresh_points):
        return []
    track = [
        (t, lon, lat, a)
        for t, lon, lat, a in conn.execute(
            select(POINTS.c.t, POINTS.c.lon, POINTS.c.lat, POINTS.c.accuracy_m)
            .where(POINTS.c.patrol_id == p.patrol_id)
            .order_by(POINTS.c.t)
        )
    ]
    conn.execute(
        PATROLS.update()
        .where(PATROLS.c.id == p.patrol_id)
        .values(state="end", ended_at=track[-1][0] if track else now)
    )
    # A walk matched again (points that came after its end) keeps, per segment, when the
    # platform first had it: a frozen week's recomputation still counts what it knew then.
    recorded = {
        sid: at if at.tzinfo else at.replace(tzinfo=dt.UTC)
        for sid, at in conn.execute(
            select(COVERAGE.c.segment_id, COVERAGE.c.recorded_at).where(
                COVERAGE.c.patrol_id == p.patrol_id, COVERAGE.c.recorded_at.is_not(None)
            )
        )
    }
    conn.execute(delete(COVERAGE).where(COVERAGE.c.patrol_id == p.patrol_id))
    if len(track) < 2:
        return []
    times = [(t if t.tzinfo else t.replace(tzinfo=dt.UTC)) for t, *_ in track]
    accuracy = np.array([a if a is not None else np.nan for *_, a in track], dtype=float)
    steps = match_track(
        ctx.index,
        [x[1] for x in track],
        [x[2] for x in track],
        times=times,
        accuracy_m=None if np.isnan(accuracy).all() else np.nan_to_num(accuracy, nan=10.0),
    )
    covered = covered_segments(steps, min_points=2)
    rows = []
    for pos, first, last in covered:
        sid = ctx.network.segments[pos].id
        rows.append(
            {
                "patrol_id": p.patrol_id,
                "segment_id": sid,
                "reporter_id": p.reporter_id,
                "first_at": times[first],
                "last_at": times[last],
                "recorded_at": min(recorded.get(sid, now), now),
            }
        )
    merged: dict[str, dict[str, Any]] = {}
    for r in rows:  # a segment walked twice is one coverage row, first to last
        m = merged.setdefault(r["segment_id"], r)
        m["first_at"] = min(m["first_at"], r["first_at"])
        m["last_at"] = max(m["last_at"], r["last_at"])
    if merged:
        conn.execute(COVERAGE.insert(), list(merged.values()))
    return list(merged)
