"""HTTP API (CONTRACT.md 3): segments, reports, rejected messages, report intake, photos."""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import re
import uuid
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request, url_for
from shapely.geometry import mapping
from sqlalchemy import and_, func, or_, select, text
from sqlalchemy.orm import Session

from ..cases.public import photo_is_public
from ..cases.workflow import ALLOWED
from ..ingest.errors import FieldError
from ..ingest.messages import Inbound
from ..ingest.payloads import parse_time
from ..network.responsibility import assignment_json, responsible_at
from ..pipeline import StorageError
from ..runtime import Runtime
from ..store import models, photos
from ..store.segments import segment_states
from .auth import current_user, scope_district
from .errors import ApiError, error_response

bp = Blueprint("api", __name__, url_prefix="/api")

DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
STATUS_CODES = {"accepted": 201, "needs_review": 202, "duplicate": 200}
REJECT_CODES = {
    "too_large": 413,
    "invalid_json": 400,
    "not_utf8": 400,
    "invalid_text": 400,
    "unsupported_media_type": 415,
}


def _rt() -> Runtime:
    rt: Runtime = current_app.extensions["roadwatch"]
    return rt


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(_rt().settings.tz).isoformat() if value else None


# -- segments -----------------------------------------------------------------------
@bp.get("/districts")
def districts() -> Response:
    only = scope_district()  # a district user's map outlines their district alone
    feats = [
        {
            "type": "Feature",
            "id": d.code,
            "properties": {"code": d.code, "name": d.name, "kind": d.kind},
            "geometry": mapping(d.geometry),
        }
        for d in _rt().ctx.network.districts
        if only is None or d.code == only
    ]
    return jsonify({"type": "FeatureCollection", "features": feats})


def _current_chiefs(session: Session, now: dt.datetime) -> dict[str, dict[str, str]]:
    a, p = models.Assignment, models.Reporter
    rows = session.execute(
        select(a.segment_id, p.id, p.name)
        .join(p, p.id == a.reporter_id)
        .where(
            a.level == 3,
            a.valid_from <= now,
            or_(a.valid_to.is_(None), a.valid_to > now),
        )
    )
    return {sid: {"id": pid, "name": name} for sid, pid, name in rows}


def _all_states(session: Session) -> dict[str, dict[str, Any]]:
    return {s["segment_id"]: s for s in segment_states(session, None)}


@bp.get("/segments")
def segments() -> Response:
    rt = _rt()
    now = models.utcnow()
    with rt.sessions() as session:
        # One consistent snapshot: the states are exactly those after event `seq`, so a
        # client that resyncs from `seq` neither misses nor repeats anything.
        if session.get_bind().dialect.name == "postgresql":
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        seq = session.scalar(select(func.max(models.Event.seq))) or 0
        chiefs = _current_chiefs(session, now)
        states = _all_states(session)
        stats = day_stats(session, scope_district(), now)
    feats = []
    only = scope_district()
    for feature in rt.ctx.features:
        if only is not None and feature["properties"].get("district") != only:
            continue
        sid = feature["id"]
        st = states.get(sid)
        state = {
            "open": st["open"] if st else 0,
            "overdue": st["overdue"] if st else 0,
            "score": st["score"] if st else 100,
        }
        props = {**feature["properties"], "chief": chiefs.get(sid), "state": state}
        feats.append({**feature, "properties": props})
    return jsonify({"type": "FeatureCollection", "seq": seq, "stats": stats, "features": feats})


def day_stats(
    session: Session,
    only: str | None,
    now: dt.datetime | None = None,
    states: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The headline counters of the city's day so far (one district's with `only`).

    `states`: segment_states(session, None) if the caller has it already.
    """
    rt = _rt()
    r = models.Report
    local = (now or models.utcnow()).astimezone(rt.settings.tz)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)

    def scoped(q: Any) -> Any:
        return q.where(r.district == only) if only else q

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
        if d is None or (only and d != only):
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


@bp.get("/segments/<segment_id>")
def segment(segment_id: str) -> Response:
    """One segment (retired ones too), its versions and its responsibility history."""
    rt = _rt()
    a, p, v = models.Assignment, models.Reporter, models.SegmentVersion
    with rt.sessions() as session:
        row = session.get(models.Segment, segment_id)
        if row is None or scope_district() not in (None, row.district):
            raise ApiError(404, "segment_id", "not_found", f"no segment with id {segment_id}")
        people = session.execute(
            select(a, p)
            .join(p, p.id == a.reporter_id)
            .where(a.segment_id == segment_id)
            .order_by(a.role, a.level, a.valid_from)
        ).all()
        versions = session.scalars(
            select(v).where(v.segment_id == segment_id).order_by(v.version)
        ).all()
        state = segment_states(session, [segment_id])[0]
        r = models.Report
        open_rows = session.scalars(
            select(r)
            .where(r.segment_id == segment_id, text(models.OPEN_CASE_SQL))
            .order_by(r.due_at, r.received_at)
            .limit(50)
        ).all()
        recent_rows = session.scalars(
            select(r).where(r.segment_id == segment_id).order_by(r.received_at.desc()).limit(10)
        ).all()
        open_cases = [_case_brief(x) for x in open_rows]
        recent = [_case_brief(x) for x in recent_rows]
    now = models.utcnow()
    tz = rt.settings.tz
    history = [assignment_json(aa, pp, tz) for aa, pp in people]
    current = [
        h
        for (aa, _), h in zip(people, history, strict=True)
        if aa.valid_from <= now and (aa.valid_to is None or aa.valid_to > now)
    ]
    props = {
        "id": row.id,
        "name": row.name,
        "road": row.road,
        "from": row.from_road,
        "to": row.to_road,
        "district": row.district,
        "subdistrict": row.subdistrict,
        "road_class": row.road_class,
        "length_m": row.length_m,
        "version": row.version,
        "retired_at": _iso(row.retired_at),
        "chief": next(
            (h["person"] for h in current if h["role"] == "road_chief" and h["level"] == 3), None
        ),
        "state": {k: state[k] for k in ("open", "overdue", "score")},
        "responsible_now": current,
        "open_cases": open_cases,  # soonest deadline first
        "recent": recent,  # the last 10 reports, newest first
        "responsibility": history,
        "versions": [
            {
                "version": x.version,
                "name": x.name,
                "valid_from": _iso(x.valid_from),
                "valid_to": _iso(x.valid_to),
                "length_m": x.length_m,
                "geometry": x.geometry,
            }
            for x in versions
        ],
    }
    return jsonify({"type": "Feature", "id": row.id, "properties": props, "geometry": row.geometry})


def _case_brief(r: models.Report) -> dict[str, Any]:
    """A report as the segment panel lists it: what, how bad, its deadline, its photos."""
    cat = _rt().categories.by_code.get(r.category)
    hashes = [h for h in (r.photos or []) if isinstance(h, str)]
    return {
        "id": r.id,
        "category": r.category,
        "category_name": cat.name if cat else r.category,
        "category_name_en": cat.name_en if cat else r.category,
        "severity": r.severity,
        "status": r.case_status or r.status,
        "observed_at": _iso(r.observed_at),
        "due_at": _iso(r.due_at),
        "overdue": bool(r.overdue),
        "assignee_id": r.assignee_id,
        "note": r.note,
        # only photos already uploaded (a report may arrive before its photos)
        "photos": [url_for("api.get_photo", sha256=h) for h in hashes if _photo_path(h)],
        "photos_pending": sum(1 for h in hashes if not _photo_path(h)),
    }


# -- paging ------------------------------------------------------------------------
def _limit() -> int:
    raw = request.args.get("limit", str(DEFAULT_LIMIT))
    try:
        limit = int(raw)
    except ValueError:
        raise ApiError(400, "limit", "invalid", "limit must be a whole number") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiError(400, "limit", "out_of_range", f"limit must be between 1 and {MAX_LIMIT}")
    return limit


def _encode_cursor(*parts: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode().rstrip("=")


def _decode_cursor(raw: str, *kinds: type) -> list[Any]:
    """The parts of a cursor this server gave out, of these types; anything else is a 400."""
    try:
        value = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        if not isinstance(value, list) or len(value) != len(kinds):
            raise ValueError
        for part, kind in zip(value, kinds, strict=True):
            if not isinstance(part, kind) or isinstance(part, bool):
                raise ValueError
        return value
    except ValueError:
        raise ApiError(400, "cursor", "invalid", "cursor is not one this server gave out") from None


def _next_url(endpoint: str, cursor: str) -> str:
    args = {k: v for k, v in request.args.items() if k != "cursor"}
    return url_for(endpoint, _external=True, cursor=cursor, **args)


# An unescaped '+' in a query arrives as a space: `?since=2026-11-23T09:15:02+08:00`.
_SPACE_FOR_PLUS = re.compile(r" (\d{2}(?::?\d{2})?)$")


def _time_arg(name: str) -> dt.datetime | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    value, err = parse_time(_SPACE_FOR_PLUS.sub(r"+\1", raw), name)
    if err:
        raise ApiError(400, err.field, err.code, err.message)
    return value


def _bbox_arg() -> tuple[float, float, float, float] | None:
    """`bbox=minLon,minLat,maxLon,maxLat` (WGS84), or a 400 naming what is wrong."""
    raw = request.args.get("bbox")
    if raw is None:
        return None
    try:
        w, s, e, n = (float(x) for x in raw.split(","))
    except ValueError:
        raise ApiError(
            400, "bbox", "invalid", "bbox must be minLon,minLat,maxLon,maxLat in WGS84"
        ) from None
    if not all(math.isfinite(v) for v in (w, s, e, n)):
        raise ApiError(400, "bbox", "invalid", "bbox must be four finite numbers")
    if not (-180 <= w <= e <= 180 and -90 <= s <= n <= 90):
        raise ApiError(
            400,
            "bbox",
            "out_of_range",
            "bbox must be minLon,minLat,maxLon,maxLat with minLon <= maxLon within -180..180 "
            "and minLat <= maxLat within -90..90",
        )
    return w, s, e, n


def district_arg(raw: str) -> str:
    """A district by its code (JS) or by the name acks and events give (金水区)."""
    names = _rt().ctx.district_names
    if raw in names:
        return raw
    code = next((code for code, name in names.items() if name == raw), None)
    if code is None:  # a typo would otherwise look like a district without reports
        example = next(iter(names.items()), ("JS", "金水区"))
        raise ApiError(
            400,
            "district",
            "unknown_district",
            f"unknown district {raw!r}; use a code such as {example[0]} or a name such as "
            f"{example[1]}",
        )
    return code


# A report's own status (its intake) and its case's (the workflow), as `status` filters.
REPORT_STATUSES = ("accepted", "needs_review")
CASE_STATUSES = tuple(s for s in ALLOWED if s is not None)  # the workflow's, new first


def status_list(raw: str, known: tuple[str, ...]) -> list[str]:
    """`status=dispatched,rectified` as a list, every one of them in `known`."""
    wanted = [x.strip() for x in raw.split(",") if x.strip()]
    if not wanted or any(x not in known for x in wanted):
        raise ApiError(
            400, "status", "invalid", f"status must be one or more of {', '.join(known)}"
        )
    return wanted


def _status_filter(raw: str) -> Any:
    """Reports whose own or case status is one of those asked for."""
    wanted = status_list(raw, tuple(dict.fromkeys(REPORT_STATUSES + CASE_STATUSES)))
    r = models.Report
    return or_(
        r.status.in_([x for x in wanted if x in REPORT_STATUSES]),
        r.case_status.in_([x for x in wanted if x in CASE_STATUSES]),
    )


# -- reports -----------------------------------------------------------------------
def _report_json(r: models.Report, full: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": r.id,
        "reporter_id": r.reporter_id,
        "category": r.category,
        "scheme": r.scheme,
        "severity": r.severity,
        "status": r.status,
        "segment_id": r.segment_id,
        "district": r.district,
        "lat": r.lat,
        "lon": r.lon,
        "crs_in": r.crs,
        "lat_in": r.lat_in,
        "lon_in": r.lon_in,
        "accuracy_m": r.accuracy_m,
        "heading_deg": r.heading_deg,
        "observed_at": _iso(r.observed_at),
        "received_at": _iso(r.received_at),
        "note": r.note,
        "photos": r.photos,
        "segment_hint": r.segment_hint,
        "snap": r.snap,
        "transport": r.transport,
    }
    out["case"] = {
        "status": r.case_status,
        "assignee_id": r.assignee_id,
        "dispatched_at": _iso(r.dispatched_at),
        "due_at": _iso(r.due_at),
        "overdue": r.overdue,
        "escalation_level": r.escalation_level,
        "rectified_at": _iso(r.rectified_at),
        "closed_at": _iso(r.closed_at),
        "parent_id": r.parent_id,
    }
    if full:
        out["raw"] = r.raw.decode("utf-8", errors="replace")
        out["topic"] = r.topic
    return out


@bp.get("/reports")
def reports() -> Response:
    rt = _rt()
    r = models.Report
    limit = _limit()
    q = select(r)
    since, until = _time_arg("since"), _time_arg("until")
    if since:
        q = q.where(r.observed_at >= since)
    if until:
        q = q.where(r.observed_at < until)
    for arg, col in (
        ("reporter", r.reporter_id),
        ("segment", r.segment_id),
        ("district", r.district),
        ("category", r.category),
    ):
        if arg in request.args:
            value = request.args[arg]
            q = q.where(col == (district_arg(value) if arg == "district" else value))
    if "status" in request.args:
        q = q.where(_status_filter(request.args["status"]))
    if scope_district() is not None:
        q = q.where(r.district == scope_district())
    box = _bbox_arg()
    if box is not None:
        w, s, e, n = box
        q = q.where(r.lon >= w, r.lon <= e, r.lat >= s, r.lat <= n)
    if "cursor" in request.args:
        t_raw, last_id = _decode_cursor(request.args["cursor"], str, str)
        t, err = parse_time(t_raw, "cursor")
        if err or t is None:
            raise ApiError(400, "cursor", "invalid", "cursor is not one this server gave out")
        q = q.where(or_(r.observed_at > t, and_(r.observed_at == t, r.id > last_id)))
    q = q.order_by(r.observed_at, r.id).limit(limit + 1)
    with rt.sessions() as session:
        rows = list(session.scalars(q))
    nxt = None
    if len(rows) > limit:
        rows = rows[:limit]
        nxt = _next_url(
            "api.reports", _encode_cursor(rows[-1].observed_at.isoformat(), rows[-1].id)
        )
    return jsonify({"items": [_report_json(x) for x in rows], "next": nxt})


@bp.get("/reports/<report_id>")
def report(report_id: str) -> Response:
    rt = _rt()
    try:
        canonical = str(uuid.UUID(report_id))
    except ValueError:
        raise ApiError(404, "report_id", "not_found", f"no report with id {report_id}") from None
    with rt.sessions() as session:
        row = session.get(models.Report, canonical)
        if row is None or scope_district() not in (None, row.district):
            raise ApiError(404, "report_id", "not_found", f"no report with id {report_id}")
        out = _report_json(row, full=True)
        transitions = session.scalars(
            select(models.ReportTransition)
            .where(models.ReportTransition.report_id == row.id)
            .order_by(models.ReportTransition.id)
        ).all()
        # The report's first state is where its first transition started from.
        first = (transitions[0].from_status or "accepted") if transitions else row.status
        out["history"] = [
            {
                "at": _iso(row.received_at),
                "status": first,
                "by": row.reporter_id,
                "via": row.transport,
                "note": None,
            }
        ] + [
            {"at": _iso(t.at), "status": t.to_status, "by": t.by, "via": "review", "note": t.note}
            for t in transitions
        ]
        if row.segment_id:
            # The segment as it was when the report was snapped to it, even if it has
            # changed or been retired since, and who answered for it when it was seen.
            ver = session.scalar(
                select(models.SegmentVersion).where(
                    models.SegmentVersion.segment_id == row.segment_id,
                    models.SegmentVersion.version == (row.segment_version or 1),
                )
            )
            if ver is not None:
                out["segment"] = {
                    "id": row.segment_id,
                    "version": ver.version,
                    "name": ver.name,
                    "geometry": ver.geometry,
                }
            chainage = (row.snap or {}).get("chainage_m")
            out["responsible"] = responsible_at(session, row.segment_id, row.observed_at, chainage)
    return jsonify(out)


def _not_json() -> tuple[FieldError, ...]:
    """Why a POST body is refused for its declared type (none declared: read as JSON)."""
    mimetype = request.mimetype
    if not mimetype or mimetype == "application/json" or mimetype.endswith("+json"):
        return ()
    return (
        FieldError(
            "content_type",
            "unsupported_media_type",
            f"send the report as JSON with the header Content-Type: application/json "
            f"(it came as {mimetype})",
        ),
    )


@bp.post("/reports")
def post_report() -> tuple[Response, int]:
    rt = _rt()
    msg = Inbound(
        transport="http",
        kind="report",
        payload=request.get_data(cache=False),
        received_at=models.utcnow(),
        topic=None,
        topic_reporter=None,
        refused=_not_json(),
    )
    try:
        (outcome,) = rt.pipeline.process([msg])
    except StorageError:
        return error_response(503, "server", "unavailable", "the database is unavailable; retry")
    body = outcome.ack_body()
    if outcome.status == "rejected":
        code = 422
        for e in outcome.errors:
            code = REJECT_CODES.get(e.code, code)
        return jsonify(body), code
    return jsonify(body), STATUS_CODES.get(outcome.status, 200)


@bp.get("/rejected")
def rejected() -> Response:
    rt = _rt()
    m = models.RejectedMessage
    limit = _limit()
    q = select(m)
    since, until = _time_arg("since"), _time_arg("until")
    if since:
        q = q.where(m.received_at >= since)
    if until:
        q = q.where(m.received_at < until)
    if "reporter" in request.args:
        q = q.where(m.reporter_id == request.args["reporter"])
    only = scope_district()
    if only is not None:
        q = q.where(_sender_in_district(m, only))
    if "cursor" in request.args:
        (last_id,) = _decode_cursor(request.args["cursor"], int)
        q = q.where(m.id > last_id)
    q = q.order_by(m.id).limit(limit + 1)
    with rt.sessions() as session:
        rows = list(session.scalars(q))
    nxt = None
    if len(rows) > limit:
        rows = rows[:limit]
        nxt = _next_url("api.rejected", _encode_cursor(rows[-1].id))
    items = [
        {
            "id": x.id,
            "received_at": _iso(x.received_at),
            "transport": x.transport,
            "topic": x.topic,
            "reporter_id": x.reporter_id,
            "message_id": x.message_id,
            "reason": x.reason,
            "errors": x.errors,
            "raw": x.raw.decode("utf-8", errors="replace"),
            "raw_base64": base64.b64encode(x.raw).decode(),
            "raw_size": x.raw_size,
            "raw_truncated": x.raw_size > len(x.raw),
        }
        for x in rows
    ]
    return jsonify({"items": items, "next": nxt})


def _sender_in_district(m: Any, only: str) -> Any:
    """A refused message is a district's when its sender answered for a segment of the
    district when it arrived (or is registered in it). It has no segment of its own, and
    its payload is what was refused. Unknown senders' messages are for admins and viewers.
    """
    a, s, p = models.Assignment, models.Segment, models.Reporter
    assigned = (
        select(a.id)
        .join(s, s.id == a.segment_id)
        .where(
            a.reporter_id == m.reporter_id,
            s.district == only,
            a.valid_from <= m.received_at,
            or_(a.valid_to.is_(None), a.valid_to > m.received_at),
        )
        .exists()
    )
    registered = m.reporter_id.in_(select(p.id).where(p.district == only))
    return or_(assigned, registered)


# -- photos ------------------------------------------------------------------------
# Every type a photo may be stored as (setting photo_types picks which uploads are taken):
# name -> (MIME type, file extension, how it is written in messages).
PHOTO_KINDS = {
    "jpeg": ("image/jpeg", ".jpg", "JPEG"),
    "png": ("image/png", ".png", "PNG"),
    "webp": ("image/webp", ".webp", "WebP"),
    "gif": ("image/gif", ".gif", "GIF"),
    "heic": ("image/heic", ".heic", "HEIC"),
}
HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}


def _sniff(data: bytes) -> str | None:
    """The photo's type by its first bytes (never by its name or declared type)."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS:
        return "heic"
    return None


def _type_words(kinds: list[str]) -> str:
    words = [PHOTO_KINDS[k][2] for k in kinds]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


@bp.post("/photos")
def post_photo() -> tuple[Response, int]:
    rt = _rt()
    upload = request.files.get("photo") or next(iter(request.files.values()), None)
    if upload is None:
        raise ApiError(400, "photo", "required", "send the photo as multipart field 'photo'")
    data = upload.read(rt.settings.max_photo_bytes + 1)
    if len(data) > rt.settings.max_photo_bytes:
        raise ApiError(
            413,
            "photo",
            "too_large",
            f"the photo is larger than {rt.settings.max_photo_bytes:,} bytes",
        )
    if not data:
        raise ApiError(400, "photo", "empty", "the photo is empty")
    allowed = rt.settings.photo_kinds
    kind = _sniff(data)
    if kind not in allowed:
        raise ApiError(
            415, "photo", "not_an_image", f"the photo must be a {_type_words(allowed)} image"
        )
    mime, ext, _ = PHOTO_KINDS[kind]
    # Metadata (EXIF: device, position, time) is read into photo_meta and removed here.
    try:
        saved = photos.save_upload(
            rt.sessions, Path(rt.settings.photo_dir), data, kind, ext, mime, rt.settings.tz
        )
    except photos.PhotoError as exc:
        status = {"cannot_clean": 415, "too_many_pixels": 413}.get(exc.code, 422)
        raise ApiError(status, "photo", exc.code, str(exc)) from None
    body = {"sha256": saved.sha256, "size": saved.size, "type": mime}
    return jsonify(body), 201 if saved.created else 200


def _photo_path(sha256: str) -> tuple[Path, str] | None:
    """Where a stored photo is, and its type (None if not uploaded)."""
    from ..ingest.payloads import SHA256_HEX

    if not SHA256_HEX.match(sha256):
        return None
    folder = Path(_rt().settings.photo_dir)
    for mime, ext, _ in PHOTO_KINDS.values():
        path = folder / f"{sha256}{ext}"
        if path.exists():
            return path, mime
    return None


@bp.get("/photos/<sha256>")
def get_photo(sha256: str) -> Response:
    """A stored photo by its SHA-256 (what reports and Open311's media_url name)."""
    from flask import send_file

    from ..ingest.payloads import SHA256_HEX

    if not SHA256_HEX.match(sha256):
        raise ApiError(404, "sha256", "not_found", "no photo with that id")
    found = _photo_path(sha256)
    if found is not None and current_user() is None:
        # The public sees a photo only through the public request that shows it
        # (Open311's media_url names it); staff see every photo. Anything else is
        # answered as if the photo did not exist.
        with _rt().sessions() as session:
            if not photo_is_public(session, sha256, request.args.get("request")):
                found = None
    if found is not None:
        path, mime = found
        res = send_file(path.resolve(), mimetype=mime, max_age=3600)
        public = current_user() is None
        res.headers["Cache-Control"] = (
            "public, max-age=3600" if public else "private, max-age=86400"
        )
        return res
    raise ApiError(404, "sha256", "not_found", "no photo with that id (not uploaded yet?)")
