"""Staff accounts of the command centre: create, check passwords, bootstrap the first admin.

Core code: no Flask here. Passwords are hashed with werkzeug.security (scrypt by default);
the plain text is never stored or logged, except the one generated for the first admin,
which is printed once so that a newcomer can log in (`roadwatch serve`, the web role).

Every account change (add, password, role, enabled or disabled) is written to the audit log
(roadwatch/store/audit.py) in the caller's transaction, with the actor the caller names: the
logged-in admin on the web, `cli:<os user>` from the command line, `system` otherwise.
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from ..store import audit, models

log = logging.getLogger(__name__)

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}\Z")
MIN_PASSWORD = 8
# Checked against when a username is unknown, so that a wrong name takes as long as a
# wrong password (no user enumeration by timing).
_DUMMY_HASH = generate_password_hash("roadwatch-no-such-user")


class UserError(ValueError):
    """A user cannot be created as asked; the message is meant for the operator."""


@dataclass(frozen=True)
class StaffUser:
    """What the web layer needs to know about a logged-in user."""

    id: int
    username: str
    role: str
    district: str | None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def sees_district(self) -> str | None:
        """The only district this user may see, or None for the whole city.

        A district_staff account without a district sees nothing ("" is no district's
        code): it fails closed, never open to the whole city."""
        if self.role != "district_staff":
            return None
        return self.district or ""

    @property
    def may_decide(self) -> bool:
        """May settle reviews and change cases (viewers only watch)."""
        return self.role in ("district_staff", "admin")


def _staff(u: models.User) -> StaffUser:
    return StaffUser(u.id, u.username, u.role, u.district)


def add_user(
    session: Session,
    username: str,
    password: str,
    role: str,
    district: str | None = None,
    known_districts: set[str] | None = None,
    actor: audit.Actor | str = audit.SYSTEM,
) -> StaffUser:
    if not USERNAME.match(username):
        raise UserError(
            f"username {username!r}: use 1-64 letters, digits, '.', '_' or '-' (start with a "
            "letter or digit)"
        )
    _check_role(role, district, known_districts)
    district = district if role == "district_staff" else None  # as set_role: no one else has one
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password must have at least {MIN_PASSWORD} characters")
    exists = session.scalar(select(models.User.id).where(models.User.username == username))
    if exists is not None:
        raise UserError(f"a user named {username!r} already exists")
    user = models.User(
        username=username,
        password_hash=generate_password_hash(password),
        role=role,
        district=district,
        active=True,
        created_at=models.utcnow(),
    )
    session.add(user)
    session.flush()
    audit.record(session, actor, "user.add", username, role=role, district=district)
    return _staff(user)


def _check_role(role: str, district: str | None, known_districts: set[str] | None) -> None:
    if role not in models.USER_ROLES:
        raise UserError(f"role {role!r}: must be one of {', '.join(models.USER_ROLES)}")
    if role == "district_staff" and not district:
        raise UserError("a district_staff user needs --district (a district code)")
    if district and known_districts is not None and district not in known_districts:
        known = ", ".join(sorted(known_districts))
        raise UserError(f"district {district!r} is not in the network (known: {known})")


def authenticate(
    session: Session,
    username: str,
    password: str,
    remote_addr: str | None = None,
    via: str | None = None,
) -> StaffUser | None:
    """The user if the name and password match an active account, else None.

    Either outcome is written to the audit log (`login` or `login_failed`, with why), in
    this session's transaction; `via` says how (the login form, HTTP Basic)."""
    user = session.scalar(select(models.User).where(models.User.username == username))
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        why = "unknown_user"
    elif not check_password_hash(user.password_hash, password):
        why = "wrong_password"
    elif not user.active:
        why = "disabled"
    else:
        user.last_login_at = models.utcnow()
        who = audit.Actor(user.username, user.id, remote_addr)
        audit.record(session, who, "login", user.username, via=via)
        return _staff(user)
    who = audit.Actor(username, user.id if user is not None else None, remote_addr)
    audit.record(session, who, "login_failed", username, via=via, reason=why)
    return None


def get_user(session: Session, user_id: int) -> StaffUser | None:
    user = session.get(models.User, user_id)
    return _staff(user) if user is not None and user.active else None


def _user_named(session: Session, username: str) -> models.User:
    user = session.scalar(select(models.User).where(models.User.username == username))
    if user is None:
        raise UserError(f"no user named {username!r}")
    return user


def set_password(
    session: Session, username: str, password: str, actor: audit.Actor | str = audit.SYSTEM
) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password must have at least {MIN_PASSWORD} characters")
    user = _user_named(session, username)
    user.password_hash = generate_password_hash(password)
    audit.record(session, actor, "user.passwd", username)  # never the password
    revoke_sessions(session, user.id)


def set_role(
    session: Session,
    username: str,
    role: str,
    district: str | None = None,
    known_districts: set[str] | None = None,
    actor: audit.Actor | str = audit.SYSTEM,
) -> StaffUser:
    """Change a user's role (and district: only a district_staff user keeps one)."""
    _check_role(role, district, known_districts)
    user = _user_named(session, username)
    before = {"role": user.role, "district": user.district}
    user.role, user.district = role, district if role == "district_staff" else None
    audit.record(
        session, actor, "user.role", username, before=before, role=role, district=user.district
    )
    revoke_sessions(session, user.id)
    return _staff(user)


def set_active(
    session: Session, username: str, active: bool, actor: audit.Actor | str = audit.SYSTEM
) -> None:
    """Enable or disable an account (a disabled one cannot log in; its sessions end)."""
    user = _user_named(session, username)
    user.active = active
    audit.record(session, actor, "user.active", username, active=active)
    revoke_sessions(session, user.id)


def revoke_sessions(session: Session, user_id: int) -> None:
    """Sign the user out everywhere (on a password, role or active change)."""
    session.execute(delete(models.StaffSession).where(models.StaffSession.user_id == user_id))


def list_users(session: Session) -> list[models.User]:
    return list(session.scalars(select(models.User).order_by(models.User.username)))


def ensure_first_admin(session: Session, password: str = "") -> str | None:
    """With no users at all, create `admin` and return its password (once).

    The password is the given one (ROADWATCH_ADMIN_PASSWORD) or a random one.
    """
    if session.scalar(select(func.count()).select_from(models.User)):
        return None
    password = password or secrets.token_urlsafe(12)
    add_user(session, "admin", password, "admin", actor=audit.Actor("system:first-start"))
    return password


def first_admin(runtime: Any) -> None:
    """On a database without staff accounts, make `admin` so a newcomer can log in.

    Called by every process that serves the command centre (`serve`, the web role), after
    its runtime is built; the password is ROADWATCH_ADMIN_PASSWORD or a random one, logged
    once."""
    configured = runtime.settings.admin_password
    with runtime.sessions.begin() as session:
        password = ensure_first_admin(session, configured)
    if password and configured:
        log.warning(
            "first start: created the command-centre login 'admin' (ROADWATCH_ADMIN_PASSWORD)"
        )
    elif password:
        log.warning(
            "first start: created the command-centre login 'admin' with the password %s "
            "(shown only now; change it with `roadwatch users passwd admin`)",
            password,
        )


def secret_key(session: Session) -> tuple[str, bool]:
    """The Flask secret key kept in the database for when none is configured.

    Returns (key, created). Kept in `meta` so that sessions survive a restart and every
    web process of one database shares it; configure ROADWATCH_SECRET_KEY in production.
    """
    row = session.get(models.Meta, "flask_secret_key")
    if row is not None:
        return row.value, False
    key = secrets.token_hex(32)
    session.add(models.Meta(key="flask_secret_key", value=key))
    session.flush()
    return key, True
