"""The chiefs' stored patrol tracks, read back into ``ctx.recent`` (issue 21, scope 3).

The segments a chief's patrol track was on in the last minutes are a signal for placing
their next report (geolocate.prior_of). A process learns them from the patrol messages it
stores itself, and under separate roles the process that needs them is often not that
one: the web role answers the phone's "ask on the spot" query and places a report again
when its photo arrives late, while the workers store the patrols sent over MQTT; and
workers sharing one subscription each store only some of a chief's patrol messages. So
these read the chief's stored points of the window when they need them (the pipeline: for
a report it could not place for certain): one indexed query (the chiefs' patrols, then
their points in the window), the points snapped as ingest snaps them (only certain ones
count), at most once per REFRESH_S a chief for the nearby query and the pipeline (one
query a batch). Points this process already holds are not added twice
(RecentSegments.note), so a process that stored the whole track places nothing again.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.engine import Engine

from ..geolocate import note_patrol
from ..store import models
from .context import NetworkContext, RecentSegments

log = logging.getLogger(__name__)

# The nearby query and the pipeline read a chief's track at most this often: a chief asks
# and reports a few times a minute at most, and a patrol message comes every minute or so.
REFRESH_S = 30.0
AHEAD = dt.timedelta(seconds=60)  # as RecentSegments.of: clocks differ

_p, _pp = models.Patrol.__table__, models.PatrolPoint.__table__


def read_tracks(
    engine: Engine,
    ctx: NetworkContext,
    around: Mapping[str, Sequence[dt.datetime]],
    *,
    refresh_s: float = 0.0,
) -> set[str]:
    """Read each reporter's stored patrol points within RecentSegments.WINDOW before the
    times ``around[reporter]`` (or a minute after) into ``ctx.recent``; returns the
    reporters whose track gained points this process did not hold. With ``refresh_s`` a
    reporter is read at most once in that many seconds. Best effort: a database error is
    logged, and reports are placed without the track."""
    if ctx.robust is None:
        return set()
    clock = time.monotonic()
    todo = {
        r: (min(times) - RecentSegments.WINDOW, max(times) + AHEAD)
        for r, times in sorted(around.items())
        if r and times and ctx.recent.due_for_reading(r, clock, refresh_s)
    }
    if not todo:
        return set()
    # One query for them all (the pipeline asks once a batch), over the union of their
    # windows; each reporter keeps the points of their own window.
    query = (
        select(_p.c.reporter_id, _pp.c.t, _pp.c.lon, _pp.c.lat, _pp.c.accuracy_m)
        .join(_p, _p.c.id == _pp.c.patrol_id)
        .where(
            _p.c.reporter_id.in_(list(todo)),
            _pp.c.t.between(min(a for a, _ in todo.values()), max(b for _, b in todo.values())),
        )
        .order_by(_pp.c.t.desc())
        .limit(RecentSegments.KEEP * len(todo))
    )
    try:
        with engine.connect() as conn:
            rows = conn.execute(query).all()
    except Exception:
        log.exception("reading the patrol tracks of %d chiefs failed; placing without", len(todo))
        return set()
    tracks: dict[str, list[tuple[dt.datetime, float, float, float | None]]] = {}
    for reporter, t, lon, lat, acc in rows:
        since, until = todo[reporter]
        if since <= t <= until:
            tracks.setdefault(reporter, []).append((t, lon, lat, acc))
    return {r for r, points in tracks.items() if note_patrol(ctx, r, points)}
