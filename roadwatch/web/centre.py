"""Command-centre data beyond the snapshot: headline counters, and the event log for replay.

GET /api/stats                      today's counters (city's day), top categories, per district
GET /api/events?since=&until=       stored live events in a time range, oldest first, paged
GET /api/replay/state?at=           every segment's live state as it was at a moment
GET /api/categories                 problem codes with Chinese and English names

All are staff-only and scoped to a district user's district.
"""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import func, select

from .. import models
from .api import _decode_cursor, _encode_cursor, _next_url, _rt, _time_arg, day_stats
from .auth import scope_district
from .errors import ApiError

bp = Blueprint("centre", __name__, url_prefix="/api")
EVENTS_DEFAULT, EVENTS_MAX = 1000, 5000


@bp.get("/categories")
def categories() -> Response:
    cats = _rt().categories.by_code
    return jsonify({code: {"name": c.name, "name_en": c.name_en} for code, c in cats.items()})


@bp.get("/stats")
def stats() -> Response:
    rt = _rt()
    with rt.sessions() as session:
        return jsonify(day_stats(session, scope_district()))


def _limit() -> int:
    raw = request.args.get("limit", str(EVENTS_DEFAULT))
    try:
        limit = int(raw)
    except ValueError:
        raise ApiError(400, "limit", "invalid", "limit must be a whole number") from None
    if not 1 <= limit <= EVENTS_MAX:
        raise ApiError(400, "limit", "out_of_range", f"limit must be between 1 and {EVENTS_MAX}")
    return limit


@bp.get("/events")
def events() -> Response:
    """The event log by time (when each change was stored), for replay; paged by seq."""
    rt = _rt()
    e = models.Event
    since, until = _time_arg("since"), _time_arg("until")
    if since is None:
        raise ApiError(400, "since", "required", "since (an ISO 8601 time) is required")
    if until is not None and until <= since:
        raise ApiError(400, "until", "invalid", "until must be after since")
    if until is not None and until - since > dt.timedelta(days=31):
        raise ApiError(400, "until", "out_of_range", "replay at most 31 days at once")
    limit = _limit()
    q = select(e.seq, e.kind, e.payload, e.created_at).where(e.created_at >= since)
    if until is not None:
        q = q.where(e.created_at < until)
    if "cursor" in request.args:
        (after,) = _decode_cursor(request.args["cursor"])
        if not isinstance(after, int):
            raise ApiError(400, "cursor", "invalid", "cursor is not one this server gave out")
        q = q.where(e.seq > after)
    with rt.sessions() as session:
        rows = session.execute(q.order_by(e.seq).limit(limit + 1)).all()
    nxt = None
    if len(rows) > limit:
        rows = rows[:limit]
        nxt = _next_url("centre.events", _encode_cursor(rows[-1].seq))
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
    rt = _rt()
    e = models.Event
    at = _time_arg("at")
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
