"""What the stored reports say of each phone's real accuracy (geo.phones), read back.

geo.phones learns from the reports a process places. Alone that would forget every phone
at a restart, split a phone's reports between workers, and leave the web role (which
answers the phone's "ask on the spot" query but places nothing) knowing nothing. So the
first time a process meets a reporter it reads their last ``WINDOW`` stored positions
(within ``HISTORY_DAYS``) and primes the learner with them: one query for all the
reporters a batch meets for the first time. The web role reads again after
``WEB_REFRESH_S``, since it never sees the reports themselves.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable
from typing import Any

import numpy as np
from sqlalchemy import bindparam, func, select
from sqlalchemy.engine import Connection, Engine

from geo.phones import WINDOW, distance_stat

from ..store import models
from .context import NetworkContext

log = logging.getLogger(__name__)

HISTORY_DAYS = 14  # older reports say little of the phone in the chief's hand today
WEB_REFRESH_S = 600.0
_IDS_PER_QUERY = 500

_r = models.Report.__table__
_rank = (
    func.row_number()
    .over(partition_by=_r.c.reporter_id, order_by=_r.c.received_at.desc())
    .label("rank")
)
_recent = (
    select(_r.c.reporter_id, _r.c.lat, _r.c.lon, _r.c.accuracy_m, _r.c.received_at, _rank)
    .where(
        _r.c.reporter_id.in_(bindparam("ids", expanding=True)),
        _r.c.received_at >= bindparam("since"),
        _r.c.lat.is_not(None),
        _r.c.lon.is_not(None),
    )
    .subquery()
)
HISTORY_SQL = (
    select(_recent.c.reporter_id, _recent.c.lat, _recent.c.lon, _recent.c.accuracy_m)
    .where(_recent.c.rank <= WINDOW)
    .order_by(_recent.c.reporter_id, _recent.c.received_at)
)


def prime_phones(
    db: Engine | Connection,
    ctx: NetworkContext,
    reporters: Iterable[str | None],
    *,
    refresh_s: float | None = None,
    now: dt.datetime | None = None,
) -> int:
    """Prime ctx.phones with the stored history of the reporters it has not read yet (or
    not within ``refresh_s``); returns how many were read. Best effort: a database error
    is logged and the reporters stay unread (tried again with the next batch)."""
    phones = ctx.phones
    if phones is None:
        return 0
    clock = time.monotonic()
    todo = phones.unprimed(reporters, clock, refresh_s)
    if not todo:
        return 0
    since = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=HISTORY_DAYS)
    rows: list[Any] = []
    try:
        if isinstance(db, Engine):
            with db.connect() as conn:
                rows = _read(conn, todo, since)
        else:
            rows = _read(db, todo, since)
    except Exception as exc:  # learning is an aid: placing goes on without it
        log.warning("could not read %d reporters' earlier fixes: %s", len(todo), exc)
        return 0
    if rows:
        who = [r[0] for r in rows]
        acc = np.array([np.nan if r[3] is None else r[3] for r in rows], dtype=float)
        stats = distance_stat(ctx.index, [r[2] for r in rows], [r[1] for r in rows], acc)
        history: dict[str, list[float]] = {}
        for w, v in zip(who, stats.tolist(), strict=True):
            history.setdefault(w, []).append(v)
    else:
        history = {}
    phones.prime(history, todo, clock)
    return len(todo)


def _read(conn: Connection, ids: list[str], since: dt.datetime) -> list[Any]:
    out: list[Any] = []
    for i in range(0, len(ids), _IDS_PER_QUERY):
        chunk = ids[i : i + _IDS_PER_QUERY]
        out.extend(conn.execute(HISTORY_SQL, {"ids": chunk, "since": since}).all())
    return out
