"""The road chief's phone app (`/m/`): the PWA shell and its small JSON API.

Chiefs sign in with their own accounts (roadwatch.accounts.chiefs), never the command
centre's staff login. Signing in with id and password issues a device credential (a random
token; the database keeps only its hash): the app keeps that token, never the password, and
every request here is checked against the device table, so sign-out, a password reset or an
admin's revocation ends the phone's access at once. Reports, rectifications and patrols go
to the broker over MQTT/WebSockets while the page still holds the password in memory; they
also come in here over HTTP (after a reload, or when the broker's WebSocket cannot be
reached) into the very same pipeline, as the signed-in chief only, idempotent by their UUID.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request, send_from_directory
from sqlalchemy import func, or_, select, text

from ..accounts import chiefs
from ..accounts.throttle import PasswordThrottle, minutes_text
from ..cases.actions import ActionRefused, Env
from ..cases.extensions import request_extension as ask
from ..ingest.payloads import decode_json
from ..store import audit, models
from ..store.events import record_events
from . import api
from .cases import _case_id, _sla
from .context import runtime
from .errors import ApiError
from .limits import intake_limited

bp = Blueprint("mobile", __name__, url_prefix="/m", static_folder=None)

COOKIE = "rw_chief"
SESSION_DAYS = 30  # the cookie's life; the device itself lasts until it is revoked
SEEN_EVERY = dt.timedelta(minutes=5)  # last_seen_at is written at most this often
GROUPS = [("order", "秩序"), ("clean", "卫生"), ("facade", "立面"), ("facility", "设施")]
NEAR_RADIUS_M, NEAR_MAX_RADIUS_M = 150.0, 1000.0


def _throttle() -> PasswordThrottle:
    t: PasswordThrottle = current_app.extensions.setdefault(
        "roadwatch_chief_throttle", PasswordThrottle()
    )
    return t


def _token() -> str | None:
    """The device credential of this request: `Authorization: Bearer …` or the cookie."""
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return request.cookies.get(COOKIE) or None


def _device_key() -> str:
    """The rate limit's identity for the app's intake: the device credential (by its digest),
    else the client's address (an unsigned request is refused by the view anyway)."""
    token = _token()
    if token:
        return "device:" + hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()[:32]
    return "addr:" + (request.remote_addr or "unknown")


def _chief() -> str:
    """The signed-in chief's reporter id (from a live device), or a 401 in plain words."""
    if "chief_id" in g:
        rid: str = g.chief_id
        return rid
    token = _token()
    if token:
        now = models.utcnow()
        with runtime().sessions.begin() as session:
            device = chiefs.device_for(session, token)
            if device is not None:
                if device.last_seen_at is None or now - device.last_seen_at > SEEN_EVERY:
                    device.last_seen_at = now
                g.chief_id, g.device_id = device.reporter_id, device.id
                return device.reporter_id
    raise ApiError(
        401,
        "session",
        "signed_out",
        "请重新登录：本机的登录已失效或已退出 (please sign in again on this phone)",
    )


def _static_dir() -> str:
    return str(current_app.root_path) + "/static/m"


# -- the shell -------------------------------------------------------------------------
@bp.get("/")
def shell() -> Response:
    res = send_from_directory(_static_dir(), "index.html", mimetype="text/html", max_age=0)
    res.headers["Cache-Control"] = "no-cache"
    return res


@bp.get("/sw.js")
def service_worker() -> Response:
    # Served from /m/ so that its scope is the app; no-cache so a new version is seen.
    res = send_from_directory(_static_dir(), "sw.js", mimetype="text/javascript", max_age=0)
    res.headers["Cache-Control"] = "no-cache"
    res.headers["Service-Worker-Allowed"] = "/m/"
    return res


@bp.get("/manifest.webmanifest")
def manifest() -> Response:
    return send_from_directory(
        _static_dir(), "manifest.webmanifest", mimetype="application/manifest+json", max_age=0
    )


# -- session ---------------------------------------------------------------------------
def _config() -> dict[str, Any]:
    s = runtime().settings
    bounds = [float(x) for x in s.city_bounds.split(",")] if s.city_bounds else None
    return {
        "topic_root": s.mqtt_topic_root,
        "mqtt_ws_url": runtime().phone_ws_url,
        "max_photo_bytes": s.max_photo_bytes,
        "max_note_chars": s.max_note_chars,
        "city_bounds": bounds,
        "patrol_interval_s": s.patrol_interval_s,
    }


def _chief_json(rid: str) -> dict[str, Any]:
    with runtime().sessions() as session:
        r = session.get(models.Reporter, rid)
    return {
        "id": rid,
        "name": r.name if r else rid,
        "level": r.level if r else None,
        "district": r.district if r else None,
    }


@bp.post("/api/session")
def sign_in() -> tuple[Response, int]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "request", "invalid_json", "请发送 JSON {reporter_id, password}")
    rid, password = body.get("reporter_id"), body.get("password")
    if not isinstance(rid, str) or not rid.strip():
        raise ApiError(400, "reporter_id", "required", "请输入账号 (reporter id)")
    if not isinstance(password, str) or not password:
        raise ApiError(400, "password", "required", "请输入密码")
    rid = rid.strip()
    wait = _throttle().wait_s(rid, request.remote_addr)
    if wait > 0:
        raise ApiError(
            429,
            "password",
            "too_many_attempts",
            f"密码错误次数过多，请 {minutes_text(wait)} 分钟后再试 "
            f"(too many wrong passwords; try again in {minutes_text(wait)} min)",
            retry_after=wait,
        )
    with runtime().sessions() as session:
        person = chiefs.authenticate(session, rid, password)
    if person is None:
        _throttle().failed(rid, request.remote_addr)
        raise ApiError(401, "password", "wrong", "账号或密码不正确 (wrong id or password)")
    _throttle().succeeded(rid)
    with runtime().sessions.begin() as session:
        device, token = chiefs.issue_device(session, rid, request.headers.get("User-Agent"))
        device_id = device.id
    # The token is the phone's from now on; the password is never sent or kept again.
    res = jsonify(
        {
            "chief": _chief_json(rid),
            "config": _config(),
            "device": {"id": device_id, "token": token},
        }
    )
    res.set_cookie(
        COOKIE,
        token,
        max_age=SESSION_DAYS * 86400,
        path="/m/",
        httponly=True,
        samesite="Strict",
        secure=request.is_secure,
    )
    return res, 200


@bp.get("/api/session")
def whoami() -> Response:
    rid = _chief()
    return jsonify({"chief": _chief_json(rid), "config": _config(), "device": {"id": g.device_id}})


@bp.delete("/api/session")
def sign_out() -> Response:
    """Revoke this phone's device credential (if it still has one) and drop the cookie."""
    token = _token()
    if token:
        with runtime().sessions.begin() as session:
            device = chiefs.device_for(session, token)
            if device is not None:
                chiefs.revoke_devices(session, device.reporter_id, "sign_out", device_id=device.id)
    res = jsonify({"signed_out": True})
    res.delete_cookie(COOKIE, path="/m/")
    return res


# -- the chief's data ------------------------------------------------------------------
def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


@bp.get("/api/me")
def me() -> Response:
    """Categories (own most used first, grouped), own segments (GeoJSON), own open cases."""
    rt = runtime()
    rid = _chief()
    now = models.utcnow()
    a, r = models.Assignment, models.Report
    with rt.sessions() as session:
        used = Counter(
            dict(
                session.execute(
                    select(r.category, func.count())
                    .where(r.reporter_id == rid)
                    .group_by(r.category)
                ).all()
            )
        )
        seg_ids = sorted(
            set(
                session.scalars(
                    select(a.segment_id).where(
                        a.reporter_id == rid,
                        a.valid_from <= now,
                        or_(a.valid_to.is_(None), a.valid_to > now),
                    )
                )
            )
        )
        cases = list(
            session.scalars(
                select(r)
                .where(r.assignee_id == rid, text(f"({models.OPEN_CASE_SQL})"))
                .order_by(r.due_at.is_(None), r.due_at, r.received_at)
                .limit(200)
            )
        )
    cats = rt.categories
    groups = []
    for key, label in GROUPS:
        items = [c for c in cats.by_code.values() if c.group == key]
        items.sort(key=lambda c: (-used[c.code], -c.weight, c.code))
        groups.append(
            {
                "key": key,
                "label": label,
                "items": [
                    {
                        "code": c.code,
                        "name": c.name,
                        "used": used[c.code],
                        "photo_required": c.photo_required,
                    }
                    for c in items
                ],
            }
        )
    favourites = [code for code, _n in used.most_common(6) if code in cats.by_code]
    ctx = rt.ctx
    features = [ctx.features[ctx.position[s]] for s in seg_ids if s in ctx.position]
    names = {f["id"]: f["properties"].get("name") for f in features}
    case_items = [
        {
            "id": c.id,
            "category": c.category,
            "category_name": cats.by_code[c.category].name
            if c.category in cats.by_code
            else c.category,
            "photo_required": cats.by_code[c.category].photo_required
            if c.category in cats.by_code
            else True,
            "segment_id": c.segment_id,
            "segment_name": names.get(c.segment_id or "")
            or (
                ctx.features[ctx.position[c.segment_id]]["properties"].get("name")
                if c.segment_id in ctx.position
                else None
            ),
            "status": c.case_status,
            "due_at": _iso(c.due_at),
            "overdue": bool(c.overdue),
            "observed_at": _iso(c.observed_at),
            "note": c.note,
            "lat": c.lat,
            "lon": c.lon,
        }
        for c in cases
    ]
    return jsonify(
        {
            "chief": _chief_json(rid),
            "categories": {"favourites": favourites, "groups": groups},
            "segments": {"type": "FeatureCollection", "features": features},
            "cases": case_items,
        }
    )


@bp.get("/api/segments/near")
def near() -> Response:
    """Segments near a position, nearest first: the pick-list for a poor GPS fix."""
    from geo.crs import to_wgs84

    _chief()
    try:
        lat = float(request.args["lat"])
        lon = float(request.args["lon"])
        radius = float(request.args.get("radius", NEAR_RADIUS_M))
    except (KeyError, ValueError):
        raise ApiError(400, "lat", "invalid", "lat 和 lon 必须是数字 (lat, lon: numbers)") from None
    crs = request.args.get("crs", "WGS84").upper()
    if crs not in ("WGS84", "GCJ02", "BD09"):
        raise ApiError(400, "crs", "invalid", "crs 只能是 WGS84、GCJ02 或 BD09")
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ApiError(400, "lat", "out_of_range", "坐标超出范围 (position out of range)")
    radius = min(max(radius, 10.0), NEAR_MAX_RADIUS_M)
    wlon, wlat = to_wgs84(lon, lat, crs) if crs != "WGS84" else (lon, lat)
    ctx = runtime().ctx
    items = []
    for pos, dist in ctx.index.nearby(float(wlon), float(wlat), radius, limit=10):
        props = ctx.features[pos]["properties"]
        items.append(
            {
                "id": ctx.features[pos]["id"],
                "name": props.get("name"),
                "district": props.get("district"),
                "distance_m": round(dist, 1),
            }
        )
    return jsonify({"radius_m": radius, "items": items})


# -- uploads and the HTTP fallback -----------------------------------------------------
@bp.post("/api/photos")
@intake_limited(key=_device_key)
def photo() -> tuple[Response, int]:
    return api.post_photo(reporter=_chief())


# Every kind the app sends, as its MQTT topic word names it (docs/protocol.md 2).
INTAKE_KINDS = {"reports": "report", "rectifications": "rectification", "patrols": "patrol"}


@bp.post("/api/<word>")
@intake_limited(key=_device_key)
def intake(word: str) -> tuple[Response, int]:
    """POST /m/api/reports | rectifications | patrols: what the app would publish over MQTT.

    The same pipeline, validation, idempotency (the message's UUID) and ack body as the
    broker's path; the signed-in chief stands where MQTT has the topic's {reporter}, so the
    pipeline itself refuses a body that names anyone else, and a body naming another chief
    is refused here before anything is read further.
    """
    kind = INTAKE_KINDS.get(word)
    if kind is None:
        raise ApiError(404, "request", "not_found", "no such path")
    rid = _chief()
    rt = runtime()
    raw = request.get_data(cache=True)
    # The pipeline's own decoder: whatever it cannot read, it rejects in plain words below.
    body, _ = decode_json(raw, rt.settings.max_payload_bytes)
    if isinstance(body, dict) and body.get("reporter_id") != rid:
        raise ApiError(
            403,
            "reporter_id",
            "not_you",
            "只能以自己的身份发送 (you can only send as yourself)",
        )
    return api.submit(kind, rid)


# -- asking for more time ---------------------------------------------------------------
@bp.post("/api/cases/<report_id>/request_extension")
def request_extension(report_id: str) -> tuple[Response, int]:
    """A responsible chief asks for more working hours on a case: {hours, reason}.

    Pending until staff approve or refuse it on the case page (roadwatch.cases.extensions);
    the signed-in chief is the one who asks, audited as `chief:<id>` and pushed live.
    """
    rid = _chief()
    rt = runtime()
    case_id = _case_id(report_id)
    body: Any = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "body", "invalid_json", "请发送 JSON {hours, reason}")
    now = models.utcnow()
    with rt.sessions.begin() as session:
        if session.get(models.Report, case_id) is None:
            raise ApiError(404, "report_id", "not_found", f"没有该案件 (no case {report_id})")
        conn = session.connection()
        try:
            done = ask(conn, rid, case_id, body, Env(_sla(), rt.ctx, now))
        except ActionRefused as exc:
            raise ApiError(exc.status, exc.field, exc.code, exc.message) from None
        who = audit.Actor(f"chief:{rid}", None, request.remote_addr)
        audit.record(session, who, "case.request_extension", case_id, at=now, **done.detail)
        events = record_events(conn, done.effects.events, now)
    rt.broadcaster.publish(events)
    return jsonify({"id": case_id, "status": "pending", **done.detail}), 201
