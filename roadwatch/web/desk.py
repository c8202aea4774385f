"""The workbench's own pages beside the live map (issue 19): the review queue and the
administrators' account pages. Each is an HTML shell whose module (static/desk/) asks the
JSON API; the role checks are the API's (web/authz.py), the page only mirrors them."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, render_template
from sqlalchemy import select, text

from ..store import models
from .authz import require_login, require_role, scope_district
from .context import runtime

bp = Blueprint("desk", __name__)


def desk_config() -> dict[str, Any]:
    """What a workbench page's modules read from #rw-config (see static/live/config.js)."""
    rt = runtime()
    user = require_login()
    return {
        "timezone": rt.settings.timezone,
        "user": {"name": user.username, "role": user.role, "district": user.sees_district},
        "district_names": rt.ctx.district_names,
    }


@bp.get("/review")
def review_page() -> str:
    """The review queue: each pending report's point and candidates on a small map."""
    return render_template(
        "desk.html", page="review", title_key="review_title", config=desk_config()
    )


@bp.get("/admin/users")
def users_page() -> str:
    """Staff accounts (administrators only)."""
    require_role("admin")
    return render_template("desk.html", page="users", title_key="users_title", config=desk_config())


@bp.get("/admin/chiefs")
def chiefs_page() -> str:
    """The road chiefs' phone accounts (administrators only)."""
    require_role("admin")
    return render_template(
        "desk.html", page="chiefs", title_key="chiefs_title", config=desk_config()
    )


OPEN_MARKERS = 2000  # as many as the live map keeps (static/live/config.js REPORT_CAP)


@bp.get("/api/open-cases")
def open_cases() -> Response:
    """Every open case's point for the live map's markers on load (the user's district),
    newest first, at most OPEN_MARKERS: rows of [id, lon, lat, category, severity, status,
    overdue, segment_id]."""
    require_login()
    r = models.Report
    q = (
        select(r.id, r.lon, r.lat, r.category, r.severity, r.case_status, r.overdue, r.segment_id)
        .where(text(models.OPEN_CASE_SQL), r.lat.is_not(None))
        .order_by(r.observed_at.desc())
        .limit(OPEN_MARKERS)
    )
    if scope_district() is not None:
        q = q.where(r.district == scope_district())
    with runtime().sessions() as session:
        rows = session.execute(q).all()
    return jsonify({"items": [[*row[:6], bool(row[6]), row[7]] for row in rows]})
