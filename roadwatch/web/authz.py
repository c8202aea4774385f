"""Who may do what in the command centre: the role and district checks, in one place.

Roles (roadwatch/accounts/users.py):
- viewer: reads the whole city, changes nothing (every write of theirs is a 403);
- district_staff: reads and acts within their own district only;
- admin: everything (and alone decides ranking disputes and reads the audit log).

The acting person of every staff action is the logged-in user (auth.current_user()), never
a field of the request body: a body that names someone else (`by`) is refused.

Every staff route calls these helpers; `configure` also installs a net under them that
answers any POST/PUT/PATCH/DELETE by a viewer on a staff route with a 403, so a route
added later cannot forget it. `GET /api/audit` (admins) is here too.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, g, jsonify, request, url_for

from ..accounts.users import StaffUser
from ..store import audit
from .context import runtime
from .errors import ApiError
from .params import MAX_ROW_ID, limit_arg, time_arg

bp = Blueprint("authz", __name__, url_prefix="/api")

WRITES = ("POST", "PUT", "PATCH", "DELETE")
# Writes that are not staff actions: the login pages, and what phones, city systems and
# Open311 clients send with their own identities (the viewer's session plays no part).
NOT_STAFF_WRITES = ("/login", "/logout", "/m/", "/open311/", "/api/reports", "/api/photos")
ROLE_WORDS = {
    "viewer": "a viewer account (read only)",
    "district_staff": "a district account",
    "admin": "an administrator",
}


def user() -> StaffUser | None:
    """The logged-in staff user of this request (set by auth.guard), or None."""
    u: StaffUser | None = g.get("user")
    return u


def require_login() -> StaffUser:
    u = user()
    if u is None:
        raise ApiError(401, "session", "login_required", "log in to the command centre")
    return u


def require_role(*roles: str) -> StaffUser:
    """The logged-in user if their role is one of `roles`, else 403 in plain words."""
    u = require_login()
    if u.role not in roles:
        allowed = " or ".join(ROLE_WORDS.get(r, r) for r in roles)
        raise ApiError(
            403,
            "session",
            "forbidden",
            f"{ROLE_WORDS.get(u.role, u.role)} may not do this; it needs {allowed} (没有权限)",
        )
    return u


def require_writer() -> StaffUser:
    """Viewers only watch: the user if they may change things (district staff, admins)."""
    return require_role("district_staff", "admin")


def scope_district() -> str | None:
    """The district this request is limited to (a district user's), or None for all."""
    u = user()
    return u.sees_district if u is not None else None


def in_scope(district: str | None) -> bool:
    """Whether the logged-in user may see or act on something of this district."""
    only = scope_district()
    return only is None or (district is not None and district == only)


def require_district(district: str | None, what: str = "this") -> None:
    """403 unless the logged-in user may act in `district` (admins and viewers: anywhere
    for reads; writes are refused to viewers by require_writer)."""
    if not in_scope(district):
        raise ApiError(
            403,
            "district",
            "other_district",
            f"{what} is not in your district ({scope_district()}); you may act only within it "
            "(不在本辖区)",
        )


def acting_name(body: dict[str, Any], u: StaffUser) -> str:
    """The acting person: the logged-in user. A `by` naming anyone else is refused (400)."""
    by = body.get("by")
    if by is not None and by != u.username:
        raise ApiError(
            400,
            "by",
            "not_you",
            f"by must be left out (or be your own name, {u.username}): the acting person is "
            "the logged-in user, not a field of the request",
        )
    return u.username


def actor() -> audit.Actor:
    """The audit log's actor of this request: the logged-in user, or anonymous."""
    u = user()
    addr = request.remote_addr
    if u is None:
        return audit.Actor("anonymous", None, addr)
    return audit.Actor(u.username, u.id, addr)


def record_export(kind: str, **detail: Any) -> None:
    """Audit one export download (its own short transaction: an export changes nothing)."""
    rt = runtime()
    args = {k: v[:64] for k, v in request.args.items() if k != "cursor"}
    with rt.sessions.begin() as session:
        audit.record(session, actor(), "export", kind, args=args or None, **detail)


def _viewer_writes() -> None:
    """The net under every route: a viewer's write to a staff route is a 403."""
    if request.method not in WRITES:
        return
    u = user()
    if u is None or u.role != "viewer":
        return
    path = request.path
    if any(path == p.rstrip("/") or path.startswith(p) for p in NOT_STAFF_WRITES):
        return
    raise ApiError(
        403,
        "session",
        "forbidden",
        "a viewer account may look but not change anything (只读账号不能修改)",
    )


# -- GET /api/audit -----------------------------------------------------------------------
@bp.get("/audit")
def audit_log() -> Response:
    """The audit log, newest first: ?actor=&action=&since=&until=&limit= (≤ 1000), paged
    by `next` (a URL). Administrators only."""
    require_role("admin")
    limit = limit_arg(100, 1000)
    before: int | None = None
    if request.args.get("before"):
        try:
            before = int(request.args["before"])
        except ValueError:
            raise ApiError(400, "before", "invalid", "before must be an entry id") from None
        if not 0 < before <= MAX_ROW_ID:  # beyond the id column (a database error, not an answer)
            raise ApiError(400, "before", "invalid", "before must be an entry id")
    action = request.args.get("action") or None
    if action is not None and not any(
        a == action or a.startswith(action + ".") for a in audit.ACTIONS
    ):
        raise ApiError(
            400, "action", "unknown_action", f"action must be one of {', '.join(audit.ACTIONS)}"
        )
    since, until = time_arg("since"), time_arg("until")
    rt = runtime()
    with rt.sessions() as session:
        rows = audit.entries(
            session,
            actor=request.args.get("actor") or None,
            action=action,
            since=since,
            until=until,
            before_id=before,
            limit=limit + 1,
        )
    nxt = None
    if len(rows) > limit:
        rows = rows[:limit]
        args = {k: v for k, v in request.args.items() if k != "before"}
        nxt = url_for("authz.audit_log", _external=True, before=rows[-1]["id"], **args)
    tz = rt.settings.tz
    items = [{**r, "at": r["at"].astimezone(tz).isoformat()} for r in rows]
    return jsonify({"items": items, "next": nxt})


def configure(app: Flask) -> None:
    """Install the viewer net (after auth's guard has set g.user) and GET /api/audit."""
    app.before_request(_viewer_writes)
    app.register_blueprint(bp)


def record_logout() -> None:
    """Audit a logout (called by auth.logout before the session is cleared)."""
    rt = runtime()
    with rt.sessions.begin() as session:
        audit.record(session, actor(), "logout", actor().name)
