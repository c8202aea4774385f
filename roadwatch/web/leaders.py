"""Issue 22 on the web: hot spots and recurrence, forecasts, patrol plans, site-visit routes.

Staff only (the guard in web/auth.py; district users see their district), except
`/m/api/plan`, which a signed-in chief's phone reads for its own plan. Everything comes from
the last ANALYSIS_WEEKS whole weeks, analysed once a week in the background and stored
(roadwatch.recurrence.stored), kept per process ANALYSIS_TTL_S (the OnceCache of the
rankings), so a page load never refits; plans follow each chief's stored duty hours.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, render_template, request
from flask import g as request_state
from sqlalchemy import select

from geo.match import matcher_for

from .. import clock
from ..monthly import pack
from ..monthly import render as review_render
from ..recurrence import duty, plans, route, stored
from ..recurrence.history import window_label
from ..recurrence.load import current_chiefs
from ..store import models
from . import authz
from .context import runtime
from .errors import ApiError
from .mobile import _chief
from .rankings import OnceCache
from .spreadsheet import xlsx_row

bp = Blueprint("leaders", __name__)
ANALYSIS_WEEKS = stored.ANALYSIS_WEEKS
ANALYSIS_TTL_S = 600.0
MAX_ROUTE_STOPS = 30
Analysis = stored.Analysis


def _cache() -> OnceCache:
    cache: OnceCache = current_app.extensions.setdefault("roadwatch_leaders_cache", OnceCache(4))
    return cache


def analysis() -> Analysis:
    """This week's analysis: as the background refresh stored it (roadwatch.recurrence.stored),
    else computed here and stored for the other processes; kept per process ANALYSIS_TTL_S."""
    rt = runtime()
    end = clock.now()

    def make() -> Analysis:
        found = stored.load(rt.engine, end)
        if found is not None:
            return found
        made = stored.compute(rt.engine, rt.ctx.network, end)
        stored.save(rt.engine, made, clock.now())
        return made

    result: Analysis = _cache().get(("analysis", stored.week_key(end)), ANALYSIS_TTL_S, make)
    return result


def current_plans(
    a: Analysis, *, chief: str | None = None, district: str | None = None
) -> dict[str, plans.Plan]:
    """The chiefs' plans from the analysis (all, one `chief`'s, or those holding a segment
    of `district`), for the chiefs in office and their duty hours now (read on each call:
    both change between refreshes; the whole city's 2,000 plans take about 0.3 s)."""
    engine = runtime().engine
    index = a.index
    chiefs: dict[str, list[int]] = {}
    for seg, who in sorted(current_chiefs(engine).items()):
        if seg in index and chief in (None, who):
            chiefs.setdefault(who, []).append(index[seg])
    if district is not None:
        chiefs = {
            c: idx for c, idx in chiefs.items() if any(a.segments[i][1] == district for i in idx)
        }
    return plans.plan_chiefs(
        chiefs,
        [sid for sid, _ in a.segments],
        a.rates,
        a.seen,
        duty=duty.windows_of(_duty_specs()),
        profile=a.profile,
    )


def _district_arg() -> str | None:
    district = request.args.get("district") or authz.scope_district()
    authz.require_district(district, "that district")
    if district and district not in runtime().ctx.district_names:
        raise ApiError(
            404, "district", "unknown_district", f"没有这个区 (no district {district[:20]!r})"
        )
    return district


@bp.context_processor
def _leaders_nav() -> dict[str, str]:
    """The last whole month, for the leaders' pages' link to its review pack."""
    today = clock.now().astimezone(runtime().settings.tz)
    year, month = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
    return {"last_month": f"{year}-{month:02d}"}


def _segment_name(sid: str) -> str:
    ctx = runtime().ctx
    pos = ctx.position.get(sid)
    return ctx.network.segments[pos].name if pos is not None else sid


def hot_spot_rows(a: Analysis, district: str | None, top: int | None) -> list[dict[str, Any]]:
    rows = []
    for h in a.hot:
        if district is not None and h.district != district:
            continue
        if (top is not None and h.rank > top) or h.findings == 0:
            continue  # a segment with no finding at all is no hot spot, whatever its rank
        per_category = a.recurrence.get(h.segment, [])
        rows.append(
            {
                **asdict(h),
                "name": _segment_name(h.segment),
                "peak": window_label(h.peak_window),
                "recurrence": per_category[0] if per_category else None,  # the worst
                "categories": per_category,
                "windows": busiest_windows(a.by_window.get(h.segment, {})),
            }
        )
    return sorted(rows, key=lambda r: (r["district"], r["rank"]))


def busiest_windows(counts: dict[int, int], top: int = 5) -> list[dict[str, Any]]:
    """A segment's hour-of-week windows with the most findings over the analysis weeks."""
    best = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return [{"window": w, "when": window_label(w), "findings": n} for w, n in best]


@bp.get("/api/leaders/hotspots")
def hot_spots_api() -> Response:
    """Every segment's hot-spot rank in its district (or the top N), with recurrence."""
    district = _district_arg()
    a = analysis()
    rows = hot_spot_rows(a, district, request.args.get("top", type=int))
    return jsonify(
        {
            "as_of": a.as_of.isoformat(),
            "weeks": ANALYSIS_WEEKS,
            "start": a.start.isoformat(),
            "source": a.source,
            "method": "empirical-Bayes Poisson-gamma per district, ranked by posterior 5th pct",
            "segments": rows,
        }
    )


@bp.get("/leaders/hotspots")
def hot_spots_page() -> str:
    district = _district_arg()
    a = analysis()
    rows = hot_spot_rows(a, district, request.args.get("top", 10, type=int))
    names = runtime().ctx.district_names
    cats = {code: c.name for code, c in runtime().categories.by_code.items()}
    return render_template(
        "leaders_hotspots.html", rows=rows, weeks=ANALYSIS_WEEKS, names=names, a=a, cats=cats
    )


@bp.get("/api/leaders/forecast")
def forecast_api() -> Response:
    """Next week's expected findings per segment (and its busiest windows)."""
    district = _district_arg()
    a = analysis()
    out = []
    if a.rates is not None:
        for i, (sid, in_district) in enumerate(a.segments):
            if district is not None and in_district != district:
                continue
            rates = a.rates[i]
            peaks = sorted(range(len(rates)), key=lambda w: -rates[w])[:3]
            out.append(
                {
                    "segment": sid,
                    "district": in_district,
                    "expected": round(float(rates.sum()), 3),
                    "peaks": [{"window": w, "when": window_label(w)} for w in peaks],
                }
            )
    return jsonify({"as_of": a.as_of.isoformat(), "weeks": ANALYSIS_WEEKS, "segments": out})


def _plans_of(a: Analysis, district: str | None) -> list[plans.Plan]:
    ctx = runtime().ctx
    chosen = []
    for plan in current_plans(a, district=district).values():
        seg = plan.visits[0].segment if plan.visits else None
        pos = ctx.position.get(seg or "")
        if district is None or (pos is not None and ctx.network.segments[pos].district == district):
            chosen.append(plan)
    return chosen


def _duty_specs() -> dict[str, str]:
    """The stored duty hours, read once per request."""
    if "leaders_duty" not in request_state:
        request_state.leaders_duty = duty.load(runtime().engine)
    specs: dict[str, str] = request_state.leaders_duty
    return specs


def _plan_json(plan: plans.Plan) -> dict[str, Any]:
    out = plan.as_json()
    out["duty_hours"] = _duty_specs().get(plan.chief, duty.DEFAULT_SPEC)
    for v in out["visits"]:  # type: ignore[attr-defined]
        v["name"] = _segment_name(v["segment"])
    return out


@bp.get("/api/leaders/plans")
def district_plan_api() -> Response:
    district = _district_arg()
    chosen = _plans_of(analysis(), district)
    hours = sum(p.hours for p in chosen)
    expected = sum(p.expected for p in chosen)
    return jsonify(
        {
            "chiefs": len(chosen),
            "hours": hours,
            "expected_findings": round(expected, 3),
            "plans": [_plan_json(p) for p in chosen],
        }
    )


@bp.get("/api/leaders/plans/<chief>")
def chief_plan_api(chief: str) -> Response:
    return jsonify(_plan_json(_chief_plan(chief)))


def _chief_plan(chief: str) -> plans.Plan:
    a = analysis()
    plan = current_plans(a, chief=chief).get(chief)
    if plan is None:
        raise ApiError(404, "path", "unknown_chief", f"{chief} holds no segment as 三级路长")
    if plan.visits:
        pos = runtime().ctx.position.get(plan.visits[0].segment)
        if pos is not None:
            authz.require_district(runtime().ctx.network.segments[pos].district, "that chief")
    return plan


@bp.get("/leaders/plans")
def district_plan_page() -> str:
    district = _district_arg()
    a = analysis()
    chosen = [_plan_json(p) for p in _plans_of(a, district)]
    return render_template(
        "leaders_plans.html",
        plans=chosen,
        district=runtime().ctx.district_names.get(district or "", "全市"),
        a=a,
    )


@bp.get("/m/api/plan")
def my_plan() -> Response:
    """The signed-in chief's own plan for this week (the phone's work tab)."""
    rid = _chief()
    plan = current_plans(analysis(), chief=rid).get(rid) or plans.Plan(rid, (), "default")
    return jsonify(_plan_json(plan))


# -- the site-visit route ----------------------------------------------------------------
def _graph() -> route.Graph:
    ctx = runtime().ctx
    graphs: dict[int, route.Graph] = current_app.extensions.setdefault("roadwatch_routes", {})
    key = id(ctx.index)
    if key not in graphs:
        graphs[key] = route.Graph(matcher_for(ctx.index))
    return graphs[key]


def route_json(ids: list[str], first: str | None, *, staff: bool = True) -> dict[str, Any]:
    """The planned route through `ids`; `staff`: the signed-in user must see every stop's
    district (a chief's phone reads a route sent to it without that check)."""
    ctx = runtime().ctx
    if not ids or len(ids) > MAX_ROUTE_STOPS:
        raise ApiError(
            400, "segments", "bad_count", f"choose 1 to {MAX_ROUTE_STOPS} segments (路段)"
        )
    unknown = [s for s in ids if s not in ctx.position]
    if unknown:
        raise ApiError(400, "segments", "unknown_segment", f"no such segment: {unknown[0]}")
    for sid in ids if staff else ():
        authz.require_district(ctx.network.segments[ctx.position[sid]].district, sid)
    if first is not None and first not in ids:
        raise ApiError(400, "first", "not_a_stop", "first must be one of the segments")
    r = route.plan_route(
        _graph(),
        [ctx.position[s] for s in ids],
        first=ctx.position[first] if first else None,
    )
    segs = ctx.network.segments

    def stop(pos: int) -> dict[str, Any]:
        s = segs[pos]
        mid = s.geometry.interpolate(0.5, normalized=True)
        return {"segment": s.id, "name": s.name, "lon": mid.x, "lat": mid.y}

    return {
        "stops": [stop(p) for p in r.stops],
        "legs": [
            {
                "from": segs[leg.src].id,
                "to": segs[leg.dst].id,
                "metres": round(leg.metres, 1),
                "on_network": leg.on_network,
                "via": [segs[v].id for v in leg.via],
            }
            for leg in r.legs
        ],
        "metres": r.metres,
        "minutes": r.minutes,
        "walk_mps": route.WALK_MPS,
        "dwell_minutes": route.DWELL_MIN,
    }


@bp.post("/api/leaders/route")
def route_api() -> Response:
    body = request.get_json(silent=True) or {}
    ids = body.get("segments")
    if not isinstance(ids, list) or not all(isinstance(s, str) for s in ids):
        raise ApiError(400, "segments", "bad_type", "segments: a list of segment ids")
    first = body.get("first")
    return jsonify(route_json(ids, first if isinstance(first, str) else None))


@bp.get("/leaders/route")
def route_page() -> str:
    ids = [s for s in request.args.get("segments", "").split(",") if s]
    r = route_json(ids, request.args.get("first") or None)
    svg = route_svg(r, route_lines(r))
    return render_template("leaders_route.html", r=r, svg=svg, chiefs=_chief_choices(ids))


def route_lines(r: dict[str, Any]) -> list[dict[str, Any]]:
    """The GeoJSON geometries walked: every leg's segments, stops included."""
    ctx = runtime().ctx
    lines = []
    for leg in r["legs"]:
        for sid in [leg["from"], *leg["via"], leg["to"]]:
            lines.append(ctx.features[ctx.position[sid]]["geometry"])
    if not r["legs"]:
        lines += [ctx.features[ctx.position[s["segment"]]]["geometry"] for s in r["stops"]]
    return lines


def route_svg(r: dict[str, Any], lines: list[dict[str, Any]], size: int = 640) -> str:
    """The walk (grey), the stops numbered in visiting order: a sketch, north up."""
    pts: list[tuple[float, float]] = [(s["lon"], s["lat"]) for s in r["stops"]]
    paths: list[list[tuple[float, float]]] = []
    for g in lines:
        parts = g["coordinates"] if g["type"] == "MultiLineString" else [g["coordinates"]]
        paths += [[(c[0], c[1]) for c in part] for part in parts]
    every = pts + [c for p in paths for c in p]
    x0, x1 = min(c[0] for c in every), max(c[0] for c in every)
    y0, y1 = min(c[1] for c in every), max(c[1] for c in every)
    k = max(x1 - x0, y1 - y0) or 1e-3

    def xy(c: tuple[float, float]) -> str:
        return f"{(c[0] - x0) / k * (size - 40) + 20:.1f},{(y1 - c[1]) / k * (size - 40) + 20:.1f}"

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}" width="100%">']
    out += [
        f'<polyline points="{" ".join(xy(c) for c in p)}" fill="none" stroke="#888" '
        'stroke-width="3"/>'
        for p in paths
    ]
    for n, c in enumerate(pts, start=1):
        x, y = xy(c).split(",")
        out.append(f'<circle cx="{x}" cy="{y}" r="11" fill="#c0392b"/>')
        out.append(
            f'<text x="{x}" y="{float(y) + 4:.1f}" font-size="12" text-anchor="middle" '
            f'fill="#fff">{n}</text>'
        )
    out.append("</svg>")
    return "".join(out)


# -- the route on the phones of the people on the visit -------------------------------------
ROUTE_ID_BYTES = 6  # 8 url-safe characters: the short URL /m/?route=<id>
ROUTES_LISTED = 20


def _chief_choices(ids: list[str]) -> list[dict[str, str]]:
    """The chiefs of the route's districts (the people a visit usually takes), to send to."""
    ctx = runtime().ctx
    districts = {ctx.network.segments[ctx.position[s]].district for s in ids}
    q = select(models.Reporter.id, models.Reporter.name).where(
        models.Reporter.district.in_(sorted(districts)),
        models.Reporter.id.in_(select(models.ChiefAccount.reporter_id)),
    )
    with runtime().engine.connect() as conn:
        found = conn.execute(q.order_by(models.Reporter.id))
        return [{"id": rid, "name": name} for rid, name in found]


@bp.post("/api/leaders/routes")
def route_share() -> tuple[Response, int]:
    """Send a route to chosen chiefs' phones (and give its short URL for anyone else on
    the visit, who opens it after signing in on the phone app)."""
    u = authz.require_role("admin", "district_staff")
    body = request.get_json(silent=True) or {}
    ids, who = body.get("segments"), body.get("chiefs", [])
    if not isinstance(ids, list) or not all(isinstance(s, str) for s in ids):
        raise ApiError(400, "segments", "bad_type", "segments: a list of segment ids")
    if not isinstance(who, list) or not all(isinstance(c, str) for c in who) or len(who) > 100:
        raise ApiError(400, "chiefs", "bad_type", "chiefs: a list of up to 100 reporter ids")
    first = body.get("first") if isinstance(body.get("first"), str) else None
    title = str(body.get("title") or "观摩路线").strip()[:100] or "观摩路线"
    r = route_json(ids, first)  # checks the stops and that this user sees them
    chosen = sorted(set(who))
    with runtime().sessions.begin() as session:
        known = set(
            session.scalars(
                select(models.ChiefAccount.reporter_id).where(
                    models.ChiefAccount.reporter_id.in_(chosen)
                )
            )
        )
        missing = [c for c in chosen if c not in known]
        if missing:
            raise ApiError(400, "chiefs", "unknown_chief", f"no phone account: {missing[0]}")
        if authz.scope_district() is not None:  # a district user sends to their own chiefs
            home = dict(
                session.execute(
                    select(models.Reporter.id, models.Reporter.district).where(
                        models.Reporter.id.in_(chosen)
                    )
                ).all()
            )
            for c in chosen:
                authz.require_district(home.get(c), f"chief {c}")
        rid = secrets.token_urlsafe(ROUTE_ID_BYTES)
        session.add(
            models.SiteVisitRoute(
                id=rid,
                title=title,
                segments=list(ids),
                first=first,
                chiefs=chosen,
                created_by=u.username,
                created_at=models.utcnow(),
            )
        )
    return jsonify(
        {"id": rid, "url": f"/m/?route={rid}", "chiefs": chosen, "metres": r["metres"]}
    ), 201


@bp.get("/m/api/routes")
def my_routes() -> Response:
    """The routes sent to the signed-in chief, newest first."""
    rid = _chief()
    q = select(models.SiteVisitRoute).order_by(models.SiteVisitRoute.created_at.desc())
    out = []
    with runtime().sessions() as session:
        for r in session.scalars(q.limit(500)):
            if rid in r.chiefs:
                out.append(
                    {
                        "id": r.id,
                        "title": r.title,
                        "stops": len(r.segments),
                        "created_at": r.created_at.isoformat(),
                    }
                )
            if len(out) >= ROUTES_LISTED:
                break
    return jsonify({"routes": out})


@bp.get("/m/api/routes/<route_id>")
def my_route(route_id: str) -> Response:
    """One route for the phone: ordered stops with names, length, time and the lines walked
    (any signed-in chief with its short id: the visitors it was not sent to open the URL)."""
    _chief()
    with runtime().sessions() as session:
        saved = session.get(models.SiteVisitRoute, route_id[:16])
        if saved is None:
            raise ApiError(404, "path", "unknown_route", "没有这条路线 (no such route)")
        ids, first, title = list(saved.segments), saved.first, saved.title
    ctx = runtime().ctx
    ids = [s for s in ids if s in ctx.position]  # a segment retired since: left out
    r = route_json(ids, first if first in ids else None, staff=False)
    paths = []
    for g in route_lines(r):
        parts = g["coordinates"] if g["type"] == "MultiLineString" else [g["coordinates"]]
        paths += [[[round(c[0], 6), round(c[1], 6)] for c in part] for part in parts]
    return jsonify({**r, "id": route_id, "title": title, "paths": paths})


# -- the monthly review pack (月讲评) ------------------------------------------------------
def _month(label: str) -> pack.Month:
    try:
        return pack.Month.parse(label, runtime().settings.tz)
    except pack.ReviewError as exc:
        raise ApiError(404, "path", exc.code, str(exc)) from None


@bp.get("/reviews/<label>")
def review_page(label: str) -> str:
    content, meta = pack.load(runtime().engine, _month(label))
    return review_render.html(content, meta)


@bp.get("/api/reviews/<name>")
def review_api(name: str) -> Response:
    """The pack as JSON (`2026-11` or `2026-11.json`), `.pdf` or `.xlsx`."""
    label, _, ext = name.partition(".")
    ext = ext or "json"
    if ext not in ("json", "pdf", "xlsx"):
        raise ApiError(404, "path", "not_found", "ask for .json, .pdf or .xlsx")
    month = _month(label)
    content, meta = pack.load(runtime().engine, month)
    if ext == "json":
        return jsonify({"content": content, "meta": meta})
    authz.record_export(f"review.{ext}", month=month.label)
    if ext == "pdf":
        body = review_render.pdf(content, meta, runtime().settings.photo_dir)
        mime = "application/pdf"
    else:
        body = review_render.xlsx(content, cells=xlsx_row)
        mime = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    res = Response(body, mimetype=mime)
    res.headers["Content-Disposition"] = f'attachment; filename="review-{month.label}.{ext}"'
    return res


@bp.post("/api/reviews/<label>/publish")
def review_publish(label: str) -> Response:
    u = authz.require_role("admin")
    month = _month(label)
    try:
        rt = runtime()
        done = pack.publish(
            rt.engine,
            month,
            by=u.username,
            now=clock.now(),
            contest_hours=rt.settings.ranking_contest_hours,
        )
    except pack.ReviewError as exc:
        raise ApiError(409, "month", exc.code, str(exc)) from None
    return jsonify(
        {
            "month": done.month,
            "created": done.created,
            "content_sha256": done.content_sha256,
            "chain_sha256": done.chain_sha256,
        }
    )


@bp.get("/api/reviews/<label>/verify")
def review_verify(label: str) -> Response:
    month = _month(label)
    try:
        problems = pack.verify(runtime().engine, month)
    except pack.ReviewError as exc:
        raise ApiError(404, "month", exc.code, str(exc)) from None
    return jsonify({"month": month.label, "ok": not problems, "problems": problems})
