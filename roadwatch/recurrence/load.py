"""The history as the database holds it: reports on segments, with their close times."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine, select

from geo.network import Network

from ..store import models
from .history import Finding, History, SegmentInfo, week_start

NOT_FINDINGS = ("duplicate", "invalid", "needs_review")  # not a problem on the road (yet)


def current_chiefs(engine: Engine) -> dict[str, str]:
    """segment id → the 三级路长 (level 3 road chief) in office now."""
    q = select(models.Assignment.segment_id, models.Assignment.reporter_id).where(
        models.Assignment.role == "road_chief",
        models.Assignment.level == 3,
        models.Assignment.valid_to.is_(None),
    )
    with engine.connect() as conn:
        return {seg: who for seg, who in conn.execute(q)}


def load_history(engine: Engine, network: Network, *, end: dt.datetime, weeks: int) -> History:
    """The `weeks` whole weeks before the week holding `end` (that week is not over)."""
    stop = week_start(end)
    start = stop - dt.timedelta(weeks=weeks)
    chiefs = current_chiefs(engine)
    segments = [SegmentInfo(s.id, s.district, chiefs.get(s.id)) for s in network.segments]
    r = models.Report
    q = select(r.segment_id, r.category, r.observed_at, r.closed_at).where(
        r.segment_id.is_not(None),
        r.observed_at >= start,
        r.observed_at < stop,
        r.case_status.is_(None) | r.case_status.not_in(NOT_FINDINGS),
    )
    with engine.connect() as conn:
        found = [Finding(str(seg), cat, at, closed) for seg, cat, at, closed in conn.execute(q)]
    return History.build(segments, found, start=start, weeks=weeks)
