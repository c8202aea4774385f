"""Weekly red and black flags on the web: the leaders' pages, the API, the exports.

`/rankings/` lists the published weeks with their movement; `/rankings/{week}` shows one
(published: frozen with its hashes; not yet: a draft, marked so, while it may be contested);
`/api/rankings/{week}` gives it as JSON, and `.csv`, `.xlsx`, `.pdf`.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, render_template, request
from sqlalchemy import select

from .. import models
from ..ranking import publish as pub
from ..ranking.formula import FormulaError, load_formula
from ..ranking.render import (
    CARD_NAMES,
    DRILLDOWN_HEADER,
    FLAG_NAMES,
    HEADER,
    KIND_NAMES,
    MEASURE_NAMES,
    SOURCE_NAMES,
    drilldown_rows,
    line_coords,
    map_svg,
    rows,
)
from ..ranking.week import Week
from . import authz
from .errors import ApiError

bp = Blueprint("rankings", __name__)
EXPORTS = ("json", "csv", "xlsx", "pdf")


def _rt() -> Any:
    return current_app.extensions["roadwatch"]


def _week(label: str) -> Week:
    try:
        return Week.parse(label, _rt().settings.tz)
    except ValueError as exc:
        raise ApiError(404, "week", "bad_week", str(exc)) from None


def _formula() -> Any:
    rt = _rt()
    try:
        return load_formula(rt.settings.ranking_formula or None, rt.categories.codes)
    except FormulaError as exc:
        raise ApiError(503, "formula", "formula_refused", str(exc)) from None


def load(week: Week) -> tuple[dict[str, Any], dict[str, Any]]:
    """The week's content and how it stands: frozen (with hashes) or a draft."""
    rt = _rt()
    with rt.engine.connect() as conn:
        row = pub.ranking_row(conn, week.label)
        if row is not None:
            meta = {
                "published": True,
                "content_sha256": row.content_sha256,
                "chain_sha256": row.chain_sha256,
                "prev_sha256": row.prev_sha256,
                "published_at": row.published_at.astimezone(week.tz).isoformat(),
            }
            return json.loads(row.content), meta
        closes = pub.default_as_of(week, rt.settings.ranking_contest_hours)
        as_of = min(models.utcnow(), closes)
        content = pub.compute(conn, _formula(), week, as_of)
        disputes = pub.disputes_of(conn, week.label)
    return content, {
        "published": False,
        "contest_closes": closes.astimezone(week.tz).isoformat(),
        "disputes": disputes,
    }


@bp.get("/rankings/")
def index() -> str:
    rt = _rt()
    tz = rt.settings.tz
    with rt.engine.connect() as conn:
        published = conn.execute(
            select(pub.RANKINGS).order_by(pub.RANKINGS.c.week.desc()).limit(104)
        ).all()
        weeks = [_summary(r, tz) for r in published]
    from ..ranking.schedule import due_week

    draft = due_week(models.utcnow(), tz, rt.settings.ranking_contest_hours).next()
    return render_template(
        "rankings_index.html", title="红黑旗 · 历周", weeks=weeks, draft=draft.label
    )


def _summary(row: Any, tz: Any) -> dict[str, Any]:
    content = json.loads(row.content)
    red = black = cards = 0
    moves: list[dict[str, Any]] = []
    for lg in content["leagues"]:
        red += len(lg["red"])
        black += len(lg["black"])
        for s in lg["scores"]:
            cards += s["card"] is not None
            if s["flag"]:
                moves.append(
                    {
                        "district": lg["district_name"],
                        "kind": KIND_NAMES.get(lg["kind"], lg["kind"]),
                        "name": s["name"],
                        "flag": s["flag"],
                        "card": CARD_NAMES[s["card"]],
                        "rank": s["rank"],
                        "move": (s["prev_rank"] - s["rank"]) if s["prev_rank"] else None,
                        "streak": s["streak"],
                    }
                )
    return {
        "week": row.week,
        "formula": row.formula_version,
        "sha": row.content_sha256,
        "published_at": row.published_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
        "red": red,
        "black": black,
        "cards": cards,
        "moves": moves,
    }


def _context(week: Week, content: dict[str, Any], meta: dict[str, Any], pdf: bool) -> Any:
    rt = _rt()
    flags = {
        s["id"]: s["flag"]
        for lg in content["leagues"]
        if lg["kind"] == "segment"
        for s in lg["scores"]
        if s["flag"]
    }
    with rt.engine.connect() as conn:
        geoms = conn.execute(select(models.Segment.id, models.Segment.geometry)).all()
    svg = map_svg(((sid, line_coords(g)) for sid, g in geoms), flags)
    return {
        "title": f"红黑旗 {week.label}",
        "week": week.label,
        "content": content,
        "meta": meta,
        "svg": svg,
        "pdf": pdf,
        "flag_names": FLAG_NAMES,
        "card_names": CARD_NAMES,
        "kind_names": KIND_NAMES,
        "measure_names": MEASURE_NAMES,
        "source_names": SOURCE_NAMES,
    }


@bp.get("/rankings/<label>")
def page(label: str) -> str:
    week = _week(label)
    content, meta = load(week)
    return render_template("ranking.html", **_context(week, content, meta, pdf=False))


@bp.get("/api/rankings/<name>")
def api(name: str) -> Response:
    label, _, ext = name.partition(".")
    ext = ext or "json"
    if ext not in EXPORTS:
        raise ApiError(404, "format", "unknown_format", f"use one of {', '.join(EXPORTS)}")
    week = _week(label)
    content, meta = load(week)
    stem = f"ranking_{week.label}"
    disposition = {"Content-Disposition": f'attachment; filename="{stem}.{ext}"'}
    if ext != "json" and authz.user() is not None:  # staff downloads (the public's: not)
        authz.record_export(f"ranking.{ext}", week=week.label, published=meta["published"])
    if ext == "json":
        return jsonify({**content, "status": meta})
    if ext == "csv":
        buf = io.StringIO()
        buf.write("\ufeff")  # Excel then reads it as UTF-8
        writer = csv.writer(buf)
        writer.writerow(HEADER)
        writer.writerows(rows(content))
        return Response(
            buf.getvalue().encode("utf-8"),
            content_type="text/csv; charset=utf-8",
            headers=disposition,
        )
    if ext == "xlsx":
        return Response(
            _xlsx(content),
            content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers=disposition,
        )
    from weasyprint import HTML

    html = render_template("ranking.html", **_context(week, content, meta, pdf=True))
    return Response(
        HTML(string=html, base_url=request.host_url).write_pdf(),
        content_type="application/pdf",
        headers=disposition,
    )


def _xlsx(content: dict[str, Any]) -> bytes:
    from openpyxl import Workbook

    from .exports import _safe_text

    wb = Workbook(write_only=True)
    for title, header, data in (
        ("ranking", HEADER, rows(content)),
        ("drilldown", DRILLDOWN_HEADER, drilldown_rows(content)),
    ):
        ws = wb.create_sheet(title)
        ws.append(list(header))
        for r in data:
            ws.append([_safe_text(v) for v in r])
    with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as spool:
        wb.save(spool)
        spool.seek(0)
        return spool.read()


# -- contest window ----------------------------------------------------------------------
def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "body", "not_json", "send a JSON object")
    return body


def _str(body: dict[str, Any], key: str) -> str:
    v = body.get(key)
    if not isinstance(v, str) or not v.strip():
        raise ApiError(400, key, "required", f"{key} is required (a string)")
    return v.strip()


@bp.get("/api/rankings/<label>/disputes")
def disputes(label: str) -> Response:
    week = _week(label)
    with _rt().engine.connect() as conn:
        return jsonify({"week": week.label, "items": pub.disputes_of(conn, week.label)})


@bp.post("/api/rankings/<label>/disputes")
def file_dispute(label: str) -> tuple[Response, int]:
    """File a dispute as the logged-in user: district staff (for a report of their
    district) or an administrator; viewers may not. A `by` naming anyone else is refused."""
    user = authz.require_writer()
    week = _week(label)
    body = _body()
    filer = authz.acting_name(body, user)
    evidence = body.get("evidence")
    rt = _rt()
    report_id = _str(body, "report_id")
    with rt.engine.connect() as conn:
        district = conn.execute(
            select(models.Report.district).where(models.Report.id == report_id)
        ).scalar()
    if authz.scope_district() is not None:
        authz.require_district(district, "this report")
    try:
        dispute_id = pub.file_dispute(
            rt.engine,
            week,
            report_id,
            filer,
            str(body.get("reason") or ""),
            evidence if isinstance(evidence, list) else [],
            models.utcnow(),
            rt.settings.ranking_contest_hours,
            actor=authz.actor(),
        )
    except pub.RankingError as exc:
        raise ApiError(
            409 if "closed" in exc.code else 400, "dispute", exc.code, str(exc)
        ) from None
    return jsonify({"id": dispute_id, "week": week.label, "status": "pending"}), 201


@bp.post("/api/rankings/disputes/<int:dispute_id>")
def decide(dispute_id: int) -> Response:
    """Decide a dispute: administrators only, never the one who filed it (403)."""
    arbiter = authz.require_role("admin")
    body = _body()
    rt = _rt()
    by = authz.acting_name(body, arbiter)  # the logged-in arbiter, whatever the body says
    try:
        pub.decide_dispute(
            rt.engine,
            dispute_id,
            _str(body, "decision"),
            by,
            str(body.get("note") or ""),
            models.utcnow(),
            rt.settings.tz,
            rt.settings.ranking_contest_hours,
            actor=authz.actor(),
        )
    except pub.RankingError as exc:
        status = {"unknown_dispute": 404, "own_dispute": 403}.get(
            exc.code, 409 if "closed" in exc.code else 400
        )
        raise ApiError(status, "decision", exc.code, str(exc)) from None
    return jsonify({"id": dispute_id, "decision": body["decision"]})


@bp.get("/api/rankings/<label>/verify")
def verify(label: str) -> Response:
    week = _week(label)
    try:
        v = pub.verify(_rt().engine, _formula_of(week), week)
    except pub.RankingError as exc:
        raise ApiError(404, "week", exc.code, str(exc)) from None
    return jsonify({"week": v.week, "ok": v.ok, "problems": v.problems})


def _formula_of(week: Week) -> Any:
    """The formula a published week was computed with, if it is still on disk."""
    from ..ranking.formula import FORMULA_DIR

    rt = _rt()
    with rt.engine.connect() as conn:
        row = pub.ranking_row(conn, week.label)
    if row is None:
        raise ApiError(404, "week", "not_published", f"{week.label} is not published")
    for path in sorted(FORMULA_DIR.glob("*.toml")):
        try:
            f = load_formula(path, rt.categories.codes)
        except FormulaError:
            continue
        if f.sha256 == row.formula_sha256:
            return f
    return _formula()
