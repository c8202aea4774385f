"""Patrols (CONTRACT 1.3) through the ingest pipeline: a walk marks the segments walked."""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from roadwatch.ingest.messages import Inbound
from roadwatch.store import models

CST = dt.timezone(dt.timedelta(hours=8))


def walk_along(
    segments: list[Any], spacing_m: float, noise_m: float, seed: int
) -> list[tuple[float, float]]:
    """Points every spacing_m along the given segments in order, with GPS noise."""
    rng = random.Random(seed)
    pts = []
    for seg in segments:
        line = seg.geometry
        n = max(2, int(seg.length_m / spacing_m))
        for k in range(1, n):
            p = line.interpolate(k / n, normalized=True)
            lat0 = math.radians(p.y)
            pts.append(
                (
                    p.x + rng.gauss(0, noise_m) / (111_320 * math.cos(lat0)),
                    p.y + rng.gauss(0, noise_m) / 110_540,
                )
            )
    return pts


def chain_of_two(network: Any) -> list[Any]:
    """Two consecutive segments of one road (the end of one is the start of the next)."""
    by_road: dict[str, list[Any]] = {}
    for s in network.segments:
        by_road.setdefault(s.road, []).append(s)
    for segs in by_road.values():
        for a in segs:
            for b in segs:
                if a is b or a.length_m < 150 or b.length_m < 150:
                    continue
                if a.geometry.coords[-1] == b.geometry.coords[0]:
                    return [a, b]
    raise AssertionError("no chain of two segments in the network")


def patrol_msg(
    pid: str, reporter: str, state: str, pts: list[tuple[float, float]], start: dt.datetime
) -> Inbound:
    body = {
        "v": 1,
        "patrol_id": pid,
        "reporter_id": reporter,
        "state": state,
        "crs": "WGS84",
        "points": [
            {
                "t": (start + dt.timedelta(seconds=5 * i)).isoformat(),
                "lat": lat,
                "lon": lon,
                "accuracy_m": 8.0,
            }
            for i, (lon, lat) in pts
        ],
    }
    return Inbound(
        transport="mqtt",
        kind="patrol",
        payload=json.dumps(body).encode(),
        received_at=dt.datetime.now(dt.UTC),
        topic=f"roadwatch/v1/patrols/{reporter}",
        topic_reporter=reporter,
    )


def test_a_walk_along_two_segments_covers_exactly_those(runtime: Any) -> None:
    segs = chain_of_two(runtime.ctx.network)
    pts = list(enumerate(walk_along(segs, spacing_m=6, noise_m=6, seed=3)))
    pid = str(uuid.uuid4())
    start = dt.datetime.now(CST) - dt.timedelta(hours=1)
    half = len(pts) // 2
    p = runtime.pipeline
    (a,) = p.process([patrol_msg(pid, "zz-jinshui-0421", "start", pts[:half], start)])
    assert a.status == "accepted" and a.covered is None
    # a resend of the same points adds nothing; the second half arrives, then the end
    p.process([patrol_msg(pid, "zz-jinshui-0421", "track", pts[:half], start)])
    p.process([patrol_msg(pid, "zz-jinshui-0421", "track", pts[half:], start)])
    (end,) = p.process([patrol_msg(pid, "zz-jinshui-0421", "end", [], start)])
    assert end.status == "accepted"
    assert list(end.covered or ()) == [s.id for s in segs]
    assert end.ack_body()["covered_segments"] == [s.id for s in segs]
    with runtime.sessions() as s:
        n_points = len(
            s.scalars(select(models.PatrolPoint.t).where(models.PatrolPoint.patrol_id == pid)).all()
        )
        cov = s.scalars(
            select(models.PatrolCoverage).where(models.PatrolCoverage.patrol_id == pid)
        ).all()
    assert n_points == len(pts)
    assert {c.segment_id for c in cov} == {s.id for s in segs}
    assert all(c.first_at <= c.last_at for c in cov)


def test_bad_patrols_are_rejected(runtime: Any) -> None:
    start = dt.datetime.now(CST)
    bad_state = patrol_msg(str(uuid.uuid4()), "zz-jinshui-0421", "walking", [], start)
    (out,) = runtime.pipeline.process([bad_state])
    assert out.status == "rejected" and out.errors[0].field == "state"
    import dataclasses

    wrong_reporter = dataclasses.replace(
        patrol_msg(str(uuid.uuid4()), "zz-other-1", "start", [], start),
        topic_reporter="zz-jinshui-0421",
    )
    (out2,) = runtime.pipeline.process([wrong_reporter])
    assert out2.errors[0].code == "reporter_mismatch"


@pytest.mark.parametrize(
    "age", [dt.timedelta(days=8), dt.datetime.now(CST) - dt.datetime(1970, 1, 1, tzinfo=CST)]
)
def test_points_older_than_the_window_are_refused_in_words(runtime: Any, age: dt.timedelta) -> None:
    """A phone whose clock fell back to 1970 (a flat battery) sent its walk: every point was
    accepted and its coverage recorded in 1970, the walk lost for this week's ranking without
    a word, where a report that old is refused (too_old). Now the point is refused the same
    way (the reports' observed_window_days); a point within the window is taken as before."""
    start = dt.datetime.now(CST) - age
    stale = patrol_msg(str(uuid.uuid4()), "zz-jinshui-0421", "start", [(0, (113.68, 34.77))], start)
    (out,) = runtime.pipeline.process([stale])
    assert out.status == "rejected"
    assert [(e.field, e.code) for e in out.errors] == [("points.0.t", "too_old")]
    assert "7 days" in out.errors[0].message
    recent = dt.datetime.now(CST) - dt.timedelta(days=6)
    fresh = patrol_msg(
        str(uuid.uuid4()), "zz-jinshui-0421", "start", [(0, (113.68, 34.77))], recent
    )
    assert runtime.pipeline.process([fresh])[0].status == "accepted"


def _patrol(**changes: Any) -> dict[str, Any]:
    now = dt.datetime.now(CST)
    body: dict[str, Any] = {
        "v": 1,
        "patrol_id": str(uuid.uuid4()),
        "reporter_id": "zz-jinshui-0421",
        "state": "track",
        "crs": "WGS84",
        "points": [{"t": now.isoformat(), "lat": 34.77, "lon": 113.68, "accuracy_m": 5.0}],
    }
    body.update(changes)
    return body


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        # a point's accuracy is checked as a report's is
        (
            {
                "points": [
                    {"t": "2026-12-05T10:00:00+08:00", "lat": 34.7, "lon": 113.6, "accuracy_m": -5}
                ]
            },
            ("points.0.accuracy_m", "out_of_range"),
        ),
        # a point that is not an object is named, not "the payload"
        ({"points": [1]}, ("points.0", "invalid_type")),
        # a time a datetime cannot hold in UTC
        (
            {"points": [{"t": "0001-01-01T00:00:00+14:00", "lat": 34.7, "lon": 113.6}]},
            ("points.0.t", "out_of_range"),
        ),
    ],
)
def test_bad_points_are_named(changes: dict[str, Any], expected: tuple[str, str]) -> None:
    from roadwatch.cases.patrols import validate_patrol

    now = dt.datetime.now(dt.UTC)
    body = _patrol(**changes)
    if expected[0] == "points.0.accuracy_m":
        body["points"][0]["t"] = now.isoformat()
    patrol, errors = validate_patrol(body, now, "zz-jinshui-0421")
    assert patrol is None
    assert [(e.field, e.code) for e in errors] == [expected]
    assert errors[0].field in errors[0].message or errors[0].code == "out_of_range"


def test_null_crs_and_points_mean_not_given() -> None:
    from roadwatch.cases.patrols import validate_patrol

    now = dt.datetime.now(dt.UTC)
    patrol, errors = validate_patrol(_patrol(crs=None, points=None, state="start"), now, None)
    assert errors == [] and patrol is not None and patrol.points == ()


def test_a_version_written_as_1_0_is_version_1() -> None:
    """JSON (and the schema's "integer") does not tell 1 from 1.0."""
    from roadwatch.cases.patrols import validate_patrol

    now = dt.datetime.now(dt.UTC)
    patrol, errors = validate_patrol(_patrol(v=1.0, state="start"), now, None)
    assert errors == [] and patrol is not None
    patrol, errors = validate_patrol(_patrol(v=1.5, state="start"), now, None)
    assert [(e.field, e.code) for e in errors] == [("v", "invalid_type")]
