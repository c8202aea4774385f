"""Cases for the workbench's tests and benchmark: real reports through the pipeline."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from shapely.geometry import shape
from sqlalchemy import delete

from roadwatch.ingest.messages import Inbound
from roadwatch.store import models
from tests.support.examples import contract_example

_NEXT = 0


def point_in(runtime: Any, district: str, skip: int = 0) -> tuple[float, float, str]:
    """(lat, lon, segment id): the midpoint of a long segment of `district` (WGS84)."""
    feats = [
        f
        for f in runtime.ctx.features
        if f["properties"]["district"] == district and f["properties"]["length_m"] > 150
    ]
    f = feats[skip % len(feats)]
    mid = shape(f["geometry"]).interpolate(0.5, normalized=True)
    return mid.y, mid.x, f["properties"]["id"]


def make_case(
    runtime: Any,
    district: str = "JS",
    *,
    age: dt.timedelta = dt.timedelta(minutes=10),
    skip: int | None = None,
    **changes: Any,
) -> models.Report:
    """A report seen `age` ago in `district`, received then and dispatched as a case; each
    call takes another segment (`skip` picks one), so cases do not corroborate each other."""
    global _NEXT
    if skip is None:
        skip, _NEXT = _NEXT, _NEXT + 20
    now = dt.datetime.now(dt.UTC)
    for attempt in range(20):  # a point where two roads meet goes to review: take another
        lat, lon, _seg = point_in(runtime, district, skip + attempt)
        body = contract_example(
            observed_at=(now - age).isoformat(),
            lat=lat,
            lon=lon,
            crs="WGS84",
            accuracy_m=5.0,
            heading_deg=...,
            **changes,
        )
        saved = runtime.pipeline.clock
        runtime.pipeline.clock = lambda: now - age + dt.timedelta(minutes=1)
        try:
            (out,) = runtime.pipeline.process(
                [
                    Inbound(
                        transport="mqtt",
                        kind="report",
                        payload=json.dumps(body).encode(),
                        received_at=now - age + dt.timedelta(minutes=1),
                        topic=f"roadwatch/v1/reports/{body['reporter_id']}",
                        topic_reporter=body["reporter_id"],
                    )
                ]
            )
        finally:
            runtime.pipeline.clock = saved
        if out.status == "accepted" and out.case_status == "dispatched":
            with runtime.sessions() as s:
                row = s.get(models.Report, body["report_id"])
                assert row is not None
                return row
        with runtime.sessions.begin() as s:  # drop the attempt: tests count what they made
            t = models.ReportTransition
            s.execute(delete(t).where(t.report_id == body["report_id"]))
            s.execute(delete(models.Report).where(models.Report.id == body["report_id"]))
    raise AssertionError(f"no dispatched case in {district}: {out}")
