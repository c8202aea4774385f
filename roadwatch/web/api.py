"""HTTP API (docs/protocol.md 4, docs/openapi.yaml): segments, reports, rejected, photos."""

from __future__ import annotations

import base64
import logging
import uuid
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, jsonify, request, url_for
from shapely.geometry import mapping
from sqlalchemy import and_, func, or_, select, text
from sqlalchemy.orm import Session

from ..accounts.apikeys import Identity
from ..accounts.apikeys import identify as identify_key
from ..cases.public import photo_is_public
from ..ingest.errors import FieldError
from ..ingest.messages import Inbound
from ..ingest.payloads import decode_json, parse_time
from ..late_photos import place_with_late_photo
from ..network.responsibility import assignment_json, current_chiefs, responsible_at
from ..pipeline import StorageError
from ..store import audit, models, photos
from ..store.segments import segment_states
from .auth import current_user, scope_district
from .context import iso, runtime
from .errors import ApiError, error_response
from .limits import intake_limited, presented_api_key
from .params import (
    CASE_STATUSES,
    REPORT_STATUSES,
    bbox_arg,
    decode_cursor,
    district_arg,
    encode_cursor,
    limit_arg,
    next_url,
    status_list,
    time_arg,
)
from .stats import day_stats

bp = Blueprint("api", __name__, url_prefix="/api")
log = logging.getLogger(__name__)

DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
STATUS_CODES = {"accepted": 201, "needs_review": 202, "duplicate": 200}
REJECT_CODES = {
    "too_large": 413,
    "invalid_json": 400,
    "not_utf8": 400,
    "invalid_text": 400,
    "unsupported_media_type": 415,
    "not_you": 403,
}


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
        for d in runtime().ctx.network.districts
        if only is None or d.code == only
    ]
    return jsonify({"type": "FeatureCollection", "features": feats})


def _all_states(session: Session) -> dict[str, dict[str, Any]]:
    return {s["segment_id"]: s for s in segment_states(session, None)}


@bp.get("/segments")
def segments() -> Response:
    rt = runtime()
    now = models.utcnow()
    with rt.sessions() as session:
        # One consistent snapshot: the states are exactly those after event `seq`, so a
        # client that resyncs from `seq` neither misses nor repeats anything.
        if session.get_bind().dialect.name == "postgresql":
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        seq = session.scalar(select(func.max(models.Event.seq))) or 0
        chiefs = current_chiefs(session, now)
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


@bp.get("/segments/<segment_id>")
def segment(segment_id: str) -> Response:
    """One segment (retired ones too), its versions and its responsibility history."""
    rt = runtime()
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
        "retired_at": iso(row.retired_at),
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
                "valid_from": iso(x.valid_from),
                "valid_to": iso(x.valid_to),
                "length_m": x.length_m,
                "geometry": x.geometry,
            }
            for x in versions
        ],
    }
    return jsonify({"type": "Feature", "id": row.id, "properties": props, "geometry": row.geometry})


def _case_brief(r: models.Report) -> dict[str, Any]:
    """A report as the segment panel lists it: what, how bad, its deadline, its photos."""
    cat = runtime().categories.by_code.get(r.category)
    hashes = [h for h in (r.photos or []) if isinstance(h, str)]
    return {
        "id": r.id,
        "category": r.category,
        "category_name": cat.name if cat else r.category,
        "category_name_en": cat.name_en if cat else r.category,
        "severity": r.severity,
        "status": r.case_status or r.status,
        "observed_at": iso(r.observed_at),
        "due_at": iso(r.due_at),
        "overdue": bool(r.overdue),
        "assignee_id": r.assignee_id,
        "note": r.note,
        # only photos already uploaded (a report may arrive before its photos)
        "photos": [url_for("api.get_photo", sha256=h) for h in hashes if _photo_path(h)],
        "photos_pending": sum(1 for h in hashes if not _photo_path(h)),
    }


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
        "observed_at": iso(r.observed_at),
        "received_at": iso(r.received_at),
        "note": r.note,
        "photos": r.photos,
        "segment_hint": r.segment_hint,
        "snap": r.snap,
        "transport": r.transport,
    }
    out["case"] = {
        "status": r.case_status,
        "assignee_id": r.assignee_id,
        "dispatched_at": iso(r.dispatched_at),
        "due_at": iso(r.due_at),
        "overdue": r.overdue,
        "escalation_level": r.escalation_level,
        "rectified_at": iso(r.rectified_at),
        "closed_at": iso(r.closed_at),
        "parent_id": r.parent_id,
    }
    if full:
        out["raw"] = r.raw.decode("utf-8", errors="replace")
        out["topic"] = r.topic
    return out


@bp.get("/reports")
def reports() -> Response:
    rt = runtime()
    r = models.Report
    limit = limit_arg(DEFAULT_LIMIT, MAX_LIMIT)
    q = select(r)
    since, until = time_arg("since"), time_arg("until")
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
    box = bbox_arg()
    if box is not None:
        w, s, e, n = box
        q = q.where(r.lon >= w, r.lon <= e, r.lat >= s, r.lat <= n)
    if "cursor" in request.args:
        t_raw, last_id = decode_cursor(request.args["cursor"], str, str)
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
        nxt = next_url("api.reports", encode_cursor(rows[-1].observed_at.isoformat(), rows[-1].id))
    return jsonify({"items": [_report_json(x) for x in rows], "next": nxt})


@bp.get("/reports/<report_id>")
def report(report_id: str) -> Response:
    rt = runtime()
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
                "at": iso(row.received_at),
                "status": first,
                "by": row.reporter_id,
                "via": row.transport,
                "note": None,
            }
        ] + [
            {"at": iso(t.at), "status": t.to_status, "by": t.by, "via": "review", "note": t.note}
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
            out["responsible"] = responsible_at(
                session, row.segment_id, row.observed_at, chainage, runtime().settings.tz
            )
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


# -- identity on intake (issue 15) ---------------------------------------------------------
def intake_identity() -> Identity:
    """The reporter an intake request files as, from its API key; a 401 in plain words when
    it has none or a wrong one. A staff login is no identity here: staff do not report."""
    key = presented_api_key()
    if not key:
        raise ApiError(
            401,
            "authorization",
            "api_key_required",
            "send your API key as 'Authorization: Bearer rwk_…' (or 'X-API-Key: rwk_…'); "
            "ask the command centre for one (roadwatch apikeys add)",
        )
    with runtime().sessions() as session:
        identity = identify_key(session, key)
    if identity is None:
        raise ApiError(
            401,
            "authorization",
            "bad_api_key",
            "this API key is unknown, revoked, or its reporter is disabled",
        )
    return identity


def _not_yours(payload: bytes, reporter_id: str) -> tuple[FieldError, ...]:
    """A body that names another reporter than the identity's (refused with 403, stored)."""
    body, _ = decode_json(payload, runtime().settings.max_payload_bytes)
    named = body.get("reporter_id") if isinstance(body, dict) else None
    if not isinstance(named, str) or named == reporter_id:
        return ()
    shown = named if len(named) <= 64 else named[:64] + "…"
    return (
        FieldError(
            "reporter_id",
            "not_you",
            f"只能以自己的身份上报：此凭据属于 {reporter_id}，不能以 {shown} 的名义上报 "
            f"(this identity files as {reporter_id} only, not as {shown})",
        ),
    )


def submit(kind: str, reporter_id: str) -> tuple[Response, int]:
    """One HTTP intake message of `kind` (report, rectification, verification, patrol) from
    an authenticated `reporter_id`, through the pipeline, answered with its ack body.

    The identity is the message's reporter (like an MQTT topic's): a body naming another is
    refused (403) and stored as a rejection, like every other bad input."""
    rt = runtime()
    payload = request.get_data(cache=True)
    msg = Inbound(
        transport="http",
        kind=kind,
        payload=payload,
        received_at=models.utcnow(),
        topic=None,
        topic_reporter=reporter_id,
        refused=_not_json() or _not_yours(payload, reporter_id),
    )
    try:
        (outcome,) = rt.pipeline.process([msg])
    except StorageError:
        return error_response(
            503, "server", "unavailable", "平台数据库暂时不可用，请稍后重试 (retry)", retry_after=5
        )
    body = outcome.ack_body()
    if outcome.status == "rejected":
        code = 422
        for e in outcome.errors:
            code = REJECT_CODES.get(e.code, code)
        return jsonify(body), code
    return jsonify(body), STATUS_CODES.get(outcome.status, 200)


@bp.post("/reports")
@intake_limited()
def post_report(reporter: str | None = None) -> tuple[Response, int]:
    """A report over HTTP from an API key's reporter (or, called by the phone app's view,
    from the signed-in chief `reporter`)."""
    return submit("report", reporter if reporter is not None else intake_identity().reporter_id)


@bp.get("/rejected")
def rejected() -> Response:
    rt = runtime()
    m = models.RejectedMessage
    limit = limit_arg(DEFAULT_LIMIT, MAX_LIMIT)
    q = select(m)
    since, until = time_arg("since"), time_arg("until")
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
        (last_id,) = decode_cursor(request.args["cursor"], int)
        q = q.where(m.id > last_id)
    q = q.order_by(m.id).limit(limit + 1)
    with rt.sessions() as session:
        rows = list(session.scalars(q))
    nxt = None
    if len(rows) > limit:
        rows = rows[:limit]
        nxt = next_url("api.rejected", encode_cursor(rows[-1].id))
    items = [
        {
            "id": x.id,
            "received_at": iso(x.received_at),
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
@intake_limited()
def post_photo(reporter: str | None = None) -> tuple[Response, int]:
    """A photo upload from an API key's reporter (or the phone app's signed-in chief)."""
    if reporter is None:
        uploader, who = intake_identity().reporter_id, "reporter"
    else:
        uploader, who = reporter, "chief"
    rt = runtime()
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
            rt.sessions,
            Path(rt.settings.photo_dir),
            data,
            kind,
            ext,
            mime,
            rt.settings.tz,
            uploaded_by=uploader,
        )
    except photos.PhotoError as exc:
        status = {"cannot_clean": 415, "too_many_pixels": 413}.get(exc.code, 422)
        raise ApiError(status, "photo", exc.code, str(exc)) from None
    except photos.PhotoStoreError as exc:
        log.error("photo upload: %s (ROADWATCH_PHOTO_DIR %s)", exc, rt.settings.photo_dir)
        raise ApiError(503, "photo", "storage_unavailable", str(exc), retry_after=60) from None
    body: dict[str, Any] = {"sha256": saved.sha256, "size": saved.size, "type": mime}
    placed = _place_late(
        saved.sha256, uploader, audit.Actor(f"{who}:{uploader}", None, request.remote_addr)
    )
    if placed:
        body["placed"] = placed
    return jsonify(body), 201 if saved.created else 200


def _place_late(sha256: str, uploader: str, who: audit.Actor) -> list[dict[str, Any]]:
    """The uploader's reports that named this photo before it arrived and still wait in
    review, placed again with it (roadwatch.late_photos). The photo is stored whatever
    happens here: a failure is logged and the reports stay in review for staff."""
    rt = runtime()
    try:
        again, events = place_with_late_photo(rt.engine, rt.sessions, rt.ctx, sha256, uploader, who)
    except Exception:
        log.exception("placing the reports of photo %s again failed; they stay in review", sha256)
        return []
    rt.broadcaster.publish(events)
    statuses = rt.pipeline.dispatch_new() if any(a.status == "accepted" for a in again) else {}
    return [
        {**a.as_dict(), "case_status": statuses.get(a.report_id, "new")}
        if a.status == "accepted"
        else a.as_dict()
        for a in again
    ]


def _photo_path(sha256: str) -> tuple[Path, str] | None:
    """Where a stored photo is, and its type (None if not uploaded)."""
    from ..ingest.payloads import SHA256_HEX

    if not SHA256_HEX.match(sha256):
        return None
    folder = Path(runtime().settings.photo_dir)
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
        with runtime().sessions() as session:
            if not photo_is_public(session, sha256, request.args.get("request")):
                found = None
    if found is not None:
        path, mime = found
        res = send_file(path.resolve(), mimetype=mime, max_age=3600)
        public = current_user() is None
        # A public photo may stop being public (its case hidden, merged, found covert): a
        # shared cache keeps it but asks each time (a 304 while the ETag, the content's
        # digest, still matches; the 404 once it is no longer shown).
        res.headers["Cache-Control"] = "public, no-cache" if public else "private, max-age=86400"
        return res
    raise ApiError(404, "sha256", "not_found", "no photo with that id (not uploaded yet?)")
