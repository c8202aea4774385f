"""A report waiting in the review queue beside a chosen segment (for review tests)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from roadwatch.store import models
from tests.support.examples import contract_example
from tests.test_pipeline import inbound

FAR = {"lat": 34.95, "lon": 113.60, "crs": "WGS84"}  # no segment near: needs_review


def in_review_beside(runtime: Any, segment_id: str, **body: Any) -> str:
    """A needs_review report, then moved (in the database) onto the middle of `segment_id`
    with that segment's district: the segment is then one of its review candidates."""
    report = contract_example(**{**FAR, **body})
    (out,) = runtime.pipeline.process([inbound(report)])
    assert out.status == "needs_review"
    seg = runtime.ctx.network.segments[runtime.ctx.position[segment_id]]
    mid = seg.geometry.interpolate(0.5, normalized=True)
    with runtime.sessions.begin() as session:
        session.execute(
            update(models.Report)
            .where(models.Report.id == report["report_id"])
            .values(lat=mid.y, lon=mid.x, district=seg.district)
        )
    return str(report["report_id"])
