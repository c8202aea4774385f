"""The workbench's own pages beside the live map (issue 19): the review queue and the
administrators' account pages. Each is an HTML shell whose module (static/desk/) asks the
JSON API; the role checks are the API's (web/authz.py), the page only mirrors them."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from .authz import require_login, require_role
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
