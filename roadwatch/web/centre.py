"""Command-centre data: the map's, headline counters, and the event log for replay.

GET /api/centre/state               the live state now: segments with something open, the
                                    seq it is exact at, and today's counters (what the map
                                    is coloured by before the live feed takes over)
GET /api/centre/segments/KEY.json   the segments' attributes as columns (cacheable)
GET /api/centre/tiles/KEY/Z/X/Y.pbf the network as vector tiles (cacheable)
GET /api/centre/basemap/V/Z/X/Y  the city's own basemap (ROADWATCH_BASEMAP, a PMTiles file)
GET /api/centre/chiefs              each segment's road chief now
GET /api/stats                      today's counters (city's day), top categories, per district
GET /api/events?since=&until=       stored live events in a time range, oldest first, paged
GET /api/replay/state?at=           every segment's live state as it was at a moment
GET /api/categories                 problem codes with Chinese and English names

All are staff-only and scoped to a district user's district. KEY names the network file
and the scope (see mapdata.py); a KEY that is not the viewer's current one is a 404, so a
cached copy can never be another network's or another scope's.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import func, select

from ..network.responsibility import current_chiefs
from ..store import models
from ..store.segments import segment_states
from .auth import scope_district
from .context import runtime
from .errors import ApiError
from .mapdata import (
    ScopedMap,
    basemap_tile_response,
    map_data_of,
    state_doc,
    table_response,
    tile_response,
)
from .params import decode_cursor, encode_cursor, limit_arg, next_url, time_arg
from .stats import day_stats

log = logging.getLogger(__name__)
bp = Blueprint("centre", __name__, url_prefix="/api")
EVENTS_DEFAULT, EVENTS_MAX = 1000, 5000


def _scoped_map(key: str) -> ScopedMap:
    scoped = map_data_of(runtime()).scoped(scope_district())
    if key != scoped.key:
        raise ApiError(404, "key", "not_found", "no such map data (a newer network or scope?)")
    return scoped


@bp.get("/centre/tiles/<key>/<int:z>/<int:x>/<int:y>.pbf")
def centre_tile(key: str, z: int, x: int, y: int) -> Response:
    scoped = _scoped_map(key)
    if not (0 <= z <= 30 and 0 <= x < (1 << z) and 0 <= y < (1 << z)):
        raise ApiError(404, "tile", "not_found", "no such tile")
    return tile_response(scoped, z, x, y)


@bp.get("/centre/basemap/<version>/<int:z>/<int:x>/<int:y>")
def centre_basemap(version: str, z: int, x: int, y: int) -> Response:
    return basemap_tile_response(runtime(), version, z, x, y)


@bp.get("/centre/segments/<key>.json")
def centre_segments(key: str) -> Response:
    return table_response(_scoped_map(key))


def live_state(only: str | None) -> dict[str, Any]:
    """Every visible segment's live state (absent: calm), exact as of event `seq`."""
    rt = runtime()
    now = models.utcnow()
    with rt.sessions() as session:
        # One consistent snapshot: the states are exactly those after event `seq`, so a
        # client that resyncs from `seq` neither misses nor repeats anything.
        if session.get_bind().dialect.name == "postgresql":
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        seq = session.scalar(select(func.max(models.Event.seq))) or 0
        states = segment_states(session, None)
        stats = day_stats(session, only, now, states)
    pos, segs = rt.ctx.position, rt.ctx.network.segments

    def visible(sid: str) -> bool:
        p = pos.get(sid)
        return p is not None and (only is None or segs[p].district == only)

    return state_doc(states, seq, stats, visible)


@bp.get("/centre/state")
def centre_state() -> Response:
    res = jsonify(live_state(scope_district()))
    res.headers["Cache-Control"] = "no-store"
    return res


@bp.get("/centre/chiefs")
def centre_chiefs() -> Response:
    """{segment id: [person id, name]} of each visible segment's road chief (level 3) now."""
    rt = runtime()
    only = scope_district()
    with rt.sessions() as session:
        chiefs = current_chiefs(session, models.utcnow())
    pos, segs = rt.ctx.position, rt.ctx.network.segments
    out = {
        sid: [c["id"], c["name"]]
        for sid, c in chiefs.items()
        if sid in pos and (only is None or segs[pos[sid]].district == only)
    }
    return jsonify(out)


@bp.get("/categories")
def categories() -> Response:
    cats = runtime().categories.by_code
    return jsonify({code: {"name": c.name, "name_en": c.name_en} for code, c in cats.items()})


@bp.get("/stats")
def stats() -> Response:
    rt = runtime()
    with rt.sessions() as session:
        return jsonify(day_stats(session, scope_district()))


@bp.get("/events")
def events() -> Response:
    """The event log by time (when each change was stored), for replay; paged by seq."""
    rt = runtime()
    e = models.Event
    since, until = time_arg("since"), time_arg("until")
    if since is None:
        raise ApiError(400, "since", "required", "since (an ISO 8601 time) is required")
    if until is not None and until <= since:
        raise ApiError(400, "until", "invalid", "until must be after since")
    if until is not None and until - since > dt.timedelta(days=31):
        raise ApiError(400, "until", "out_of_range", "replay at most 31 days at once")
    limit = limit_arg(EVENTS_DEFAULT, EVENTS_MAX)
    q = select(e.seq, e.kind, e.payload, e.created_at).where(e.created_at >= since)
    if until is not None:
        q = q.where(e.created_at < until)
    if "cursor" in request.args:
        (after,) = decode_cursor(request.args["cursor"], int)
        q = q.where(e.seq > after)
    with rt.sessions() as session:
        rows = session.execute(q.order_by(e.seq).limit(limit + 1)).all()
    nxt = None
    if len(rows) > limit:
        rows = rows[:limit]
        nxt = next_url("centre.events", encode_cursor(rows[-1].seq))
    only = scope_district()
    district_of = rt.broadcaster.district_of
    tz = rt.settings.tz
    items = [
        {
            "seq": seq,
            "kind": kind,
            "at": at.astimezone(tz).isoformat(),
            "payload": {**payload, "seq": seq},
        }
        for seq, kind, payload, at in rows
        if only is None or district_of(payload) == only
    ]
    return jsonify({"items": items, "next": nxt})


@bp.get("/replay/state")
def replay_state() -> Response:
    """Each segment's last recorded live state before `at` (absent: nothing open then)."""
    rt = runtime()
    e = models.Event
    at = time_arg("at")
    if at is None:
        raise ApiError(400, "at", "required", "at (an ISO 8601 time) is required")
    seg = e.payload["segment_id"].as_string()
    with rt.sessions() as session:
        last = (
            select(func.max(e.seq).label("seq"))
            .where(e.kind == "segment", e.created_at < at)
            .group_by(seg)
            .subquery()
        )
        rows = session.execute(select(e.payload).join(last, last.c.seq == e.seq)).scalars()
        seq_at = session.scalar(select(func.max(e.seq)).where(e.created_at < at)) or 0
        only = scope_district()
        pos = rt.ctx.position
        states = [
            {k: p.get(k) for k in ("segment_id", "open", "overdue", "score")}
            for p in rows
            if p.get("segment_id") in pos and (only is None or rt.ctx.district_of_event(p) == only)
        ]
    return jsonify(
        {"at": at.astimezone(rt.settings.tz).isoformat(), "seq": seq_at, "states": states}
    )
