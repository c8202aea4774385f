"""The headline counters of the city's day (or one district's): the map's panel, /api/stats."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..store import models
from ..store.segments import segment_states
from .context import runtime


def day_stats(
    session: Session,
    only: str | None,
    now: dt.datetime | None = None,
    states: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The headline counters of the city's day so far (one district's with `only`).

    `states`: segment_states(session, None) if the caller has it already.
    """
    rt = runtime()
    r = models.Report
    local = (now or models.utcnow()).astimezone(rt.settings.tz)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)

    def scoped(q: Any) -> Any:
        return q.where(r.district == only) if only is not None else q

    today = r.received_at >= midnight
    by_cat = session.execute(
        scoped(select(r.category, func.count()).where(today).group_by(r.category))
    ).all()
    by_district = session.execute(
        scoped(select(r.district, func.count()).where(today).group_by(r.district))
    ).all()
    rectified = session.scalar(
        scoped(
            select(func.count())
            .select_from(r)
            .where(r.rectified_at >= midnight, r.case_status.in_(("rectified", "closed")))
        )
    )
    position, segments = rt.ctx.position, rt.ctx.network.segments
    open_n = overdue_n = 0
    per: dict[str, dict[str, int]] = {}

    def row(code: str) -> dict[str, int]:
        return per.setdefault(code, {"reports_today": 0, "open": 0, "overdue": 0})

    for st in states if states is not None else segment_states(session, None):
        pos = position.get(st["segment_id"])
        d = segments[pos].district if pos is not None else None
        if d is None or (only is not None and d != only):
            continue
        open_n += st["open"]
        overdue_n += st["overdue"]
        row(d)["open"] += st["open"]
        row(d)["overdue"] += st["overdue"]
    for d, n in by_district:
        if d:
            row(d)["reports_today"] = n
    cats = rt.categories.by_code
    return {
        "day": midnight.date().isoformat(),
        "reports_today": sum(n for _, n in by_cat),
        "open": open_n,
        "overdue": overdue_n,
        "rectified_today": rectified or 0,
        "categories": {code: n for code, n in by_cat},
        "top_categories": [
            {
                "code": code,
                "name": cats[code].name if code in cats else code,
                "name_en": cats[code].name_en if code in cats else code,
                "count": n,
            }
            for code, n in sorted(by_cat, key=lambda x: (-x[1], x[0]))[:5]
        ],
        "districts": per,
    }
