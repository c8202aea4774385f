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
import gzip
import hashlib
import re
from collections import Counter
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request, send_from_directory
from sqlalchemy import func, or_, select, text

from ..accounts import chiefs
from ..accounts.throttle import PasswordThrottle, minutes_text
from ..cases.actions import ActionRefused, Env
from ..cases.extensions import request_extension as ask
from ..cases.public import HIDDEN_KINDS
from ..ingest.payloads import decode_json
from ..store import audit, models
from ..store.events import record_events
from . import api
from .auth import known_device, remember_device
from .cases import _case_id, _sla
from .context import runtime
from .errors import ApiError
from .limits import intake_limited

bp = Blueprint("mobile", __name__, url_prefix="/m", static_folder=None)

COOKIE = "rw_chief"
SESSION_DAYS = 30  # the cookie's life; the device itself lasts until it is revoked
SEEN_EVERY = dt.timedelta(minutes=5)  # last_seen_at is written at most this often
# How a case found by a third-party evaluator or a covert checker names its reporter to the
# chief it is dispatched to: as the ranking calls a report from anyone else (render.py).
HIDDEN_REPORTER = "其他上报"
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
# The shell with its stylesheet inlined (issue 20 c): on a 400 ms link the separate CSS
# request shared the line with the script and held the script's start until it came.
# The page holds nothing secret nor anything from the request (no BREACH), so it is
# gzipped here, once, like a static file.
CSS_LINK = '<link rel="stylesheet" href="/static/m/app.css">'
# The script fetched from the answer's first bytes, not once the page is parsed.
SHELL_PRELOAD = "</m/app.js>; rel=modulepreload"


@bp.get("/")
def shell() -> Response:
    folder = Path(_static_dir())
    page, css = folder / "index.html", folder / "app.css"
    key = (page.stat().st_mtime_ns, css.stat().st_mtime_ns)
    cache = current_app.extensions.setdefault("roadwatch_phone_shell", {})
    if cache.get("key") != key:
        html = page.read_text(encoding="utf-8")
        body = html.replace(CSS_LINK, f"<style>\n{css.read_text(encoding='utf-8')}</style>")
        if body == html:
            raise RuntimeError(f"index.html no longer links {CSS_LINK}")
        raw = body.encode()
        cache.update(
            key=key,
            raw=raw,
            gz=gzip.compress(raw, 9, mtime=0),
            etag=hashlib.sha256(raw).hexdigest()[:32],
        )
    gz = "gzip" in request.headers.get("Accept-Encoding", "").lower()
    res = Response(cache["gz"] if gz else cache["raw"], mimetype="text/html")
    if gz:
        res.headers["Content-Encoding"] = "gzip"
    res.vary.add("Accept-Encoding")
    res.set_etag(cache["etag"], weak=True)
    res.headers["Cache-Control"] = "no-cache"
    res.headers["Link"] = SHELL_PRELOAD
    res.make_conditional(request)
    return res


# The app's ES modules, served as one script (issue 20): a phone on a 400 ms link fetched
# thirteen modules six at a time, three round trips. Concatenated in the order a browser
# evaluates them (depth first from main.js, each module's imports in their order), with
# the `import` lines and `export` keywords taken out: the same code in one scope.
_IMPORT = re.compile(r'^import \{[^}]*\} from "\./([\w-]+\.js)";\n', re.M)
_TOP_NAME = re.compile(r"^(?:export )?(?:async )?(?:function|const|let|class) ([\w$]+)", re.M)


def bundle_modules(folder: Path, entry: str = "main.js") -> str:
    """The phone app's modules as one script; refuses two modules defining one top-level
    name (they would clash in the one scope)."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        for dep in _IMPORT.findall((folder / name).read_text(encoding="utf-8")):
            visit(dep)
        order.append(name)

    visit(entry)
    owner: dict[str, str] = {}
    parts = []
    for name in order:
        src = (folder / name).read_text(encoding="utf-8")
        for top in _TOP_NAME.findall(src):
            if owner.setdefault(top, name) != name:
                raise RuntimeError(f"{name} and {owner[top]} both define {top}: rename one")
        body = _IMPORT.sub("", src)
        body = re.sub(r"^export (?=(?:async )?(?:function|const|let|class) )", "", body, flags=re.M)
        parts.append(f"// ---- {name}\n{body}")
    return "".join(parts)


# Whole-line comments and indentation are a third of the gzipped bundle (the JSDoc types are
# for tsc, not the phone): on 400 kbit/s they cost ~0.2 s of the cold start (issue 20 c).
# Only comments that fill their lines are taken out, so no string or code is touched.
_BLOCK_COMMENT = re.compile(r"^[ \t]*/\*(?:[^*]|\*(?!/))*\*/[ \t]*\n", re.M)
_LINE_COMMENT = re.compile(r"^[ \t]*//(?! ---- )[^\n]*\n", re.M)  # keeps "// ---- module.js"
_INDENT = re.compile(r"^[ \t]+", re.M)


def slim(script: str) -> str:
    """The bundle as served: without whole-line comments and indentation."""
    return _INDENT.sub("", _LINE_COMMENT.sub("", _BLOCK_COMMENT.sub("", script)))


@bp.get("/app.js")
def app_script() -> Response:
    folder = Path(_static_dir())
    key = max(p.stat().st_mtime_ns for p in folder.glob("*.js"))
    cache = current_app.extensions.setdefault("roadwatch_phone_bundle", {})
    if cache.get("key") != key:
        body = slim(bundle_modules(folder)).encode()
        cache.update(key=key, body=body, etag=hashlib.sha256(body).hexdigest()[:32])
    res = Response(cache["body"], mimetype="text/javascript")
    res.set_etag(cache["etag"])
    res.headers["Cache-Control"] = "no-cache"  # revalidated (304) on every load
    res.make_conditional(request)
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
        raise ApiError(400, "reporter_id", "required", "请输入账号或手机号 (id or phone number)")
    if not isinstance(password, str) or not password:
        raise ApiError(400, "password", "required", "请输入密码")
    # The chief's id, or their phone number (issue 20): the throttle counts the chief. A
    # phone that has signed in as this chief before (the signed device cookie the staff
    # login uses too) is counted on its own: strangers' guesses never lock the chief out.
    with runtime().sessions() as session:
        rid = chiefs.login_id(session, rid.strip())
    known = known_device(_device_name(rid))
    wait = _throttle().wait_s(rid, request.remote_addr, known)
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
        _throttle().failed(rid, request.remote_addr, known)
        raise ApiError(
            401, "password", "wrong", "账号（手机号）或密码不正确 (wrong id, phone or password)"
        )
    _throttle().succeeded(rid, known)
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
    remember_device(res, _device_name(rid))
    return res, 200


def _device_name(rid: str) -> str:
    """The chief as the device cookie lists it: apart from staff accounts of the same name
    (a staff username has no ':'), whose guesses it must not count apart."""
    return f"chief:{rid}"


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
        # Who reported each case, by name; a third-party evaluator's or covert checker's
        # finding reads as any other report: the chief they checked never learns who did.
        reporter_names = {
            rid_: HIDDEN_REPORTER if kind in HIDDEN_KINDS else name
            for rid_, name, kind in session.execute(
                select(models.Reporter.id, models.Reporter.name, models.Reporter.kind).where(
                    models.Reporter.id.in_({c.reporter_id for c in cases})
                )
            )
        }
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
                        "name_en": c.name_en,  # the app's English switch
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
            # issue 20: what a chief needs to act on it
            "severity": c.severity,
            "work_left_h": _work_left_h(c.due_at, now),
            "photo": _photo_url(c.photos),
            "reporter": reporter_names.get(c.reporter_id, c.reporter_id),
            "own_report": c.reporter_id == rid,
        }
        for c in cases
    ]
    # Urgent first, then what is overdue, then by deadline.
    case_items.sort(key=lambda c: (c["severity"] != 3, not c["overdue"], c["due_at"] or "~"))
    return jsonify(
        {
            "chief": _chief_json(rid),
            "categories": {"favourites": favourites, "groups": groups},
            "segments": {"type": "FeatureCollection", "features": features},
            "cases": case_items,
            "map": _map_config(rid, now),
        }
    )


def _work_left_h(due: dt.datetime | None, now: dt.datetime) -> float | None:
    """Working hours until the deadline (the city's working calendar); negative: overdue by."""
    if due is None:
        return None
    from ..cases.calendar import Sla

    sla = runtime().pipeline.sla
    if not isinstance(sla, Sla):  # a test's stand-in without a calendar
        return None
    cal = sla.calendar
    if due >= now:
        return round(cal.working_between(now, due).total_seconds() / 3600, 2)
    return -round(cal.working_between(due, now).total_seconds() / 3600, 2)


def _photo_url(photos: list[Any] | None) -> str | None:
    first = (photos or [None])[0]
    return f"/m/api/photos/{first}" if isinstance(first, str) else None


# A report's outcome in the chief's words (its case_status; docs/protocol.md 2.5).
OUTCOME_WORDS = {
    "new": "已受理，等待派单",
    "dispatched": "已派单，处理中",
    "duplicate": "已并入已有案件",
    "rectified": "已整改，待核查",
    "reopened": "整改未通过，重新处理",
    "closed": "已办结",
    "needs_review": "路段待人工核定",
}


def _history_item(r: models.Report, parent: models.Report | None) -> dict[str, Any]:
    cats = runtime().categories
    ctx = runtime().ctx

    def seg_name(sid: str | None) -> str | None:
        if sid is None or sid not in ctx.position:
            return None
        name = ctx.features[ctx.position[sid]]["properties"].get("name")
        return str(name) if name else sid

    def cat_name(code: str) -> str:
        return cats.by_code[code].name if code in cats.by_code else code

    status = r.case_status or r.status
    return {
        "id": r.id,
        "observed_at": _iso(r.observed_at),
        "received_at": _iso(r.received_at),
        "category": r.category,
        "category_name": cat_name(r.category),
        "severity": r.severity,
        "segment_id": r.segment_id,
        "segment_name": seg_name(r.segment_id),
        "case_status": r.case_status,
        "outcome": OUTCOME_WORDS.get(status or "", status),
        "due_at": _iso(r.due_at),
        "merged_into": None
        if parent is None
        else {
            "id": parent.id,
            "category_name": cat_name(parent.category),
            "segment_name": seg_name(parent.segment_id),
            "case_status": parent.case_status,
        },
    }


def _history(rid: str, report_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    r = models.Report
    with runtime().sessions() as session:
        q = select(r).where(r.reporter_id == rid)
        if report_id is not None:
            q = q.where(r.id == report_id)
        rows = list(session.scalars(q.order_by(r.received_at.desc()).limit(limit)))
        parent_ids = {x.parent_id for x in rows if x.parent_id}
        parents = (
            {p.id: p for p in session.scalars(select(r).where(r.id.in_(parent_ids)))}
            if parent_ids
            else {}
        )
    return [_history_item(x, parents.get(x.parent_id or "")) for x in rows]


@bp.get("/api/reports")
def my_reports() -> Response:
    """The chief's own reports, newest first, with what became of each (issue 20)."""
    return jsonify({"items": _history(_chief())})


@bp.get("/api/reports/<report_id>")
def my_report(report_id: str) -> Response:
    """One of the chief's own reports and its outcome: the receipt on the report form."""
    items = _history(_chief(), report_id, 1)
    if not items:
        raise ApiError(404, "report_id", "not_found", "没有这条上报 (no such report of yours)")
    return jsonify(items[0])


@bp.get("/api/photos/<sha256>")
def case_photo(sha256: str) -> Response:
    """A photo of the chief's own report or of a case assigned to them; else 404."""
    from flask import send_file
    from sqlalchemy import String, cast

    rid = _chief()
    found = api._photo_path(sha256)  # checks the hex form
    if found is not None:
        r = models.Report
        with runtime().sessions() as session:
            mine = session.scalar(
                select(r.id)
                .where(
                    or_(r.reporter_id == rid, r.assignee_id == rid),
                    cast(r.photos, String).like(f"%{sha256}%"),
                )
                .limit(1)
            )
        if mine is None:
            found = None
    if found is None:
        raise ApiError(404, "sha256", "not_found", "没有这张照片 (no such photo)")
    res = send_file(found[0].resolve(), mimetype=found[1], max_age=86400)
    res.headers["Cache-Control"] = "private, max-age=86400"
    return res


@bp.get("/api/basemap/<version>/<int:z>/<int:x>/<int:y>")
def chief_basemap(version: str, z: int, x: int, y: int) -> Response:
    """The city's offline basemap for the map of the chief's road (as the command centre's)."""
    from .mapdata import basemap_tile_response

    _chief()
    return basemap_tile_response(runtime(), version, z, x, y)


def _map_config(rid: str, now: dt.datetime) -> dict[str, Any]:
    """What the map of the chief's road needs beyond the segments: the basemap (raster only:
    the phone draws tiles as images, no map engine) and the segments walked today."""
    from .mapdata import basemap_of

    rt = runtime()
    basemap = basemap_of(rt)
    base = None
    if basemap is not None and basemap.info.kind == "raster":
        i = basemap.info
        base = {
            "url": f"/m/api/basemap/{i.version}/{{z}}/{{x}}/{{y}}",
            "minzoom": i.minzoom,
            "maxzoom": i.maxzoom,
            "attribution": i.attribution,
        }
    local = now.astimezone(rt.settings.tz)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    pc = models.PatrolCoverage
    with rt.sessions() as session:
        covered = sorted(
            set(
                session.scalars(
                    select(pc.segment_id).where(pc.reporter_id == rid, pc.last_at >= midnight)
                )
            )
        )
    return {"basemap": base, "covered_today": covered}


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
    spot = _on_the_spot(ctx, wlon, wlat)
    for c in spot["candidates"]:  # drawn on the phone's small map of the choice
        c["lines"] = _lines(ctx.features[ctx.position[c["id"]]]["geometry"])
    return jsonify({"radius_m": radius, "items": items, **spot})


def _lines(geometry: dict[str, Any]) -> list[Any]:
    """A segment's GeoJSON (Multi)LineString as a list of lines of [lon, lat]."""
    coords = geometry["coordinates"]
    return [coords] if geometry["type"] == "LineString" else list(coords)


def _on_the_spot(ctx: Any, wlon: float, wlat: float) -> dict[str, Any]:
    """Issue 21: whether the best segment is certain here, and if not the 2-3 candidates
    for the chief to tap (optional ``accuracy``, ``heading``, ``category`` and the photo's
    camera direction ``look`` with its ``look_ref`` sharpen it)."""
    from ..geolocate import ask_on_the_spot
    from ..network.phones import WEB_REFRESH_S, prime_phones
    from ..network.tracks import REFRESH_S, read_tracks

    def num(name: str, lo: float, hi: float) -> float | None:
        raw = request.args.get(name)
        if raw is None or raw == "":
            return None
        try:
            value = float(raw)
        except ValueError:
            raise ApiError(400, name, "invalid", f"{name} must be a number") from None
        if not (lo <= value <= hi):
            raise ApiError(400, name, "out_of_range", f"{name} must be in [{lo}, {hi}]")
        return value

    category = request.args.get("category")
    look_ref = request.args.get("look_ref") or None
    if look_ref not in (None, "T", "M"):
        raise ApiError(400, "look_ref", "invalid", "look_ref must be T (true north) or M")
    chief = _chief()
    # what the stored reports say of this phone: the web role places none itself
    prime_phones(runtime().engine, ctx, [chief], refresh_s=WEB_REFRESH_S)
    # the chief's patrol track of the last minutes, stored by whichever process took it
    # (not by a `serve` alone on a plain subscription, which stored every patrol itself:
    # the same flag as its pipeline's)
    rt = runtime()
    if rt.pipeline.reads_stored_tracks:
        read_tracks(rt.engine, ctx, {chief: [dt.datetime.now(dt.UTC)]}, refresh_s=REFRESH_S)
    return ask_on_the_spot(
        ctx,
        float(wlon),
        float(wlat),
        accuracy_m=num("accuracy", 0.0, 10_000.0),
        heading_deg=num("heading", 0.0, 360.0),
        reporter_id=chief,
        category=category if category else None,
        look_deg=num("look", 0.0, 360.0),
        look_ref=look_ref,
    )


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
