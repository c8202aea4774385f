"""Staff accounts over HTTP, for the administrators' page (/admin/users): the same
operations as `roadwatch users …` (roadwatch/accounts/users.py does them and audits them,
here under the logged-in administrator).

GET   /api/users                     every account (never a password hash)
POST  /api/users                     {username, password, role, district}
PATCH /api/users/<username>          {role, district} and/or {active: true|false}
POST  /api/users/<username>/password {password}

and the road chiefs' phone accounts (/admin/chiefs; roadwatch/accounts/chiefs.py, as
`roadwatch chiefs provision | devices revoke`):

GET   /api/chiefs                          who reports, with their account and devices
POST  /api/chiefs/<reporter_id>/provision  an account, or a new password: shown once
POST  /api/chiefs/<reporter_id>/revoke     sign every device of theirs out (a lost phone)
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import func, select

from ..accounts import chiefs as chief_accounts
from ..accounts import users as accounts
from ..store import audit, models
from .auth import close_user_live_connections
from .authz import actor, require_role
from .context import runtime
from .errors import ApiError

bp = Blueprint("staff", __name__, url_prefix="/api/users")


def _body() -> dict[str, Any]:
    body: Any = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "body", "invalid_json", "send a JSON object")
    return body


def _text(body: dict[str, Any], name: str, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise ApiError(400, name, "required", f"{name} is required")
        return None
    if not isinstance(value, str):
        raise ApiError(400, name, "invalid", f"{name} must be a string")
    return value


def _refused(exc: accounts.UserError) -> ApiError:
    text = str(exc)
    if text.startswith("no user named"):
        return ApiError(404, "username", "not_found", text)
    code = 409 if "already exists" in text else 422
    return ApiError(code, "username" if code == 409 else "body", "refused", text)


def _row(u: Any) -> dict[str, Any]:
    tz = runtime().settings.tz
    return {
        "username": u.username,
        "role": u.role,
        "district": u.district,
        "active": u.active,
        "created_at": u.created_at.astimezone(tz).isoformat() if u.created_at else None,
        "last_login_at": u.last_login_at.astimezone(tz).isoformat() if u.last_login_at else None,
    }


@bp.get("")
def list_users() -> Response:
    require_role("admin")
    with runtime().sessions() as session:
        return jsonify({"items": [_row(u) for u in accounts.list_users(session)]})


@bp.post("")
def add_user() -> tuple[Response, int]:
    require_role("admin")
    body = _body()
    rt = runtime()
    try:
        with rt.sessions.begin() as session:
            user = accounts.add_user(
                session,
                str(_text(body, "username")),
                str(_text(body, "password")),
                str(_text(body, "role")),
                _text(body, "district", required=False),
                set(rt.ctx.district_names),
                actor(),
            )
    except accounts.UserError as exc:
        raise _refused(exc) from None
    return jsonify({"username": user.username, "role": user.role, "district": user.district}), 201


@bp.patch("/<username>")
def change_user(username: str) -> Response:
    require_role("admin")
    body = _body()
    rt = runtime()
    active = body.get("active")
    if active is not None and not isinstance(active, bool):
        raise ApiError(400, "active", "invalid", "active must be true or false")
    role = _text(body, "role", required=False)
    if role is None and active is None:
        raise ApiError(400, "body", "nothing_to_change", "send role (and district) or active")
    try:
        with rt.sessions.begin() as session:
            if role is not None:
                accounts.set_role(
                    session,
                    username,
                    role,
                    _text(body, "district", required=False),
                    set(rt.ctx.district_names),
                    actor(),
                )
            if active is not None:
                accounts.set_active(session, username, active, actor())
            user_id = _user_id(session, username)
    except accounts.UserError as exc:
        raise _refused(exc) from None
    close_user_live_connections(user_id)  # its open live feed was the old role's room
    return jsonify({"username": username, "changed": True})


@bp.post("/<username>/password")
def reset_password(username: str) -> Response:
    require_role("admin")
    password = str(_text(_body(), "password"))
    try:
        with runtime().sessions.begin() as session:
            accounts.set_password(session, username, password, actor())
            user_id = _user_id(session, username)
    except accounts.UserError as exc:
        raise _refused(exc) from None
    close_user_live_connections(user_id)
    return jsonify({"username": username, "changed": True})


def _user_id(session: Any, username: str) -> int:
    """The id of an account just changed (it exists: the change found it)."""
    return int(session.scalar(select(models.User.id).where(models.User.username == username)))


chiefs_bp = Blueprint("chief_accounts", __name__, url_prefix="/api/chiefs")


@chiefs_bp.get("")
def list_chiefs() -> Response:
    require_role("admin")
    r, a, d = models.Reporter, models.ChiefAccount, models.ChiefDevice
    devices = (
        select(d.reporter_id, func.count().label("n"))
        .where(d.revoked_at.is_(None))
        .group_by(d.reporter_id)
        .subquery()
    )
    q = (
        select(
            r.id, r.name, r.kind, r.level, r.district, a.password_set_at, a.disabled, devices.c.n
        )
        .outerjoin(a, a.reporter_id == r.id)
        .outerjoin(devices, devices.c.reporter_id == r.id)
        .where(r.kind.in_(("person", "evaluator", "covert")))
        .order_by(r.district, r.level, r.id)
    )
    tz = runtime().settings.tz
    with runtime().sessions() as session:
        rows = session.execute(q).all()
    return jsonify(
        {
            "items": [
                {
                    "id": x.id,
                    "name": x.name,
                    "kind": x.kind,
                    "level": x.level,
                    "district": x.district,
                    "account": x.password_set_at is not None,
                    "password_set_at": x.password_set_at.astimezone(tz).isoformat()
                    if x.password_set_at
                    else None,
                    "disabled": bool(x.disabled),
                    "devices": int(x.n or 0),
                }
                for x in rows
            ]
        }
    )


@chiefs_bp.post("/<reporter_id>/provision")
def provision_chief(reporter_id: str) -> Response:
    """An account for the chief, or a new password (their devices are signed out): the
    password is in this answer only. The broker's password file is rendered from the same
    table by `roadwatch chiefs provision --passwd FILE` (then reload the broker)."""
    require_role("admin")
    try:
        with runtime().sessions.begin() as session:
            has = session.get(models.ChiefAccount, reporter_id) is not None
            done = chief_accounts.provision(
                session, only=[reporter_id], reset=[reporter_id] if has else []
            )
            password = {**done.created, **done.reset}.get(reporter_id)
            if password is None:
                raise ApiError(
                    422, "reporter_id", "unusable", f"{reporter_id} cannot be an MQTT username"
                )
            audit.record(session, actor(), "chief.provision", reporter_id, reset=has)
    except LookupError as exc:
        raise ApiError(404, "reporter_id", "not_found", str(exc)) from None
    return jsonify({"id": reporter_id, "password": password, "reset": has})


@chiefs_bp.post("/<reporter_id>/revoke")
def revoke_chief_devices(reporter_id: str) -> Response:
    require_role("admin")
    with runtime().sessions.begin() as session:
        if session.get(models.Reporter, reporter_id) is None:
            raise ApiError(404, "reporter_id", "not_found", f"no reporter {reporter_id}")
        done = chief_accounts.revoke_devices(session, reporter_id, "admin")
        audit.record(session, actor(), "chief.device_revoke", reporter_id, devices=done)
    return jsonify({"id": reporter_id, "revoked": done})
