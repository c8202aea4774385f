"""The chiefs' stored patrol tracks, read back into ``ctx.recent`` (issue 21, scope 3).

The segments a chief's patrol track was on in the last minutes are a signal for placing
their next report (geolocate.prior_of). A process learns them from the patrol messages it
stores itself, and under separate roles the process that needs them is often not that
one: the web role answers the phone's "ask on the spot" query and places a report again
when its photo arrives late, while the workers store the patrols sent over MQTT. So those
two read the chief's stored points of the window when they need them: one indexed query
(the chief's patrols, then their points in the window), the points snapped as ingest
snaps them (only certain ones count), at most once per ``refresh_s`` for the nearby query.
Points this process already holds are not added twice (RecentSegments.note).
"""

from __future__ import annotations

import datetime as dt
import logging
import time

from sqlalchemy import select
from sqlalchemy.engine import Engine

from ..geolocate import note_patrol
from ..store import models
from .context import NetworkContext, RecentSegments

log = logging.getLogger(__name__)

NEAR_REFRESH_S = 30.0  # the nearby query: a chief asks a few times a minute at most
AHEAD = dt.timedelta(seconds=60)  # as RecentSegments.of: clocks differ

_p, _pp = models.Patrol.__table__, models.PatrolPoint.__table__


def read_track(
    engine: Engine,
    ctx: NetworkContext,
    reporter: str | None,
    at: dt.datetime,
    *,
    refresh_s: float = 0.0,
) -> int:
    """Read ``reporter``'s stored patrol points within RecentSegments.WINDOW before ``at``
    (or a minute after) into ``ctx.recent``; returns how many points were read. With
    ``refresh_s`` it reads at most once in that many seconds per reporter. Best effort: a
    database error is logged, and the report is placed without the track."""
    if ctx.robust is None or not reporter:
        return 0
    if not ctx.recent.due_for_reading(reporter, time.monotonic(), refresh_s):
        return 0
    query = (
        select(_pp.c.t, _pp.c.lon, _pp.c.lat, _pp.c.accuracy_m)
        .join(_p, _p.c.id == _pp.c.patrol_id)
        .where(
            _p.c.reporter_id == reporter,
            _pp.c.t >= at - RecentSegments.WINDOW,
            _pp.c.t <= at + AHEAD,
        )
        .order_by(_pp.c.t.desc())
        .limit(RecentSegments.KEEP)
    )
    try:
        with engine.connect() as conn:
            rows = conn.execute(query).all()
    except Exception:
        log.exception("reading the patrol track of %s failed; placing without it", reporter)
        return 0
    note_patrol(ctx, reporter, [(t, lon, lat, acc) for t, lon, lat, acc in rows])
    return len(rows)
