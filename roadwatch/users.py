"""Staff accounts of the command centre: create, check passwords, bootstrap the first admin.

Core code: no Flask here. Passwords are hashed with werkzeug.security (scrypt by default);
the plain text is never stored or logged, except the one generated for the first admin,
which is printed once so that a newcomer can log in to `roadwatch serve`.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from . import models

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
        """The only district this user may see, or None for the whole city."""
        return self.district if self.role == "district_staff" else None

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
) -> StaffUser:
    if not USERNAME.match(username):
        raise UserError(
            f"username {username!r}: use 1-64 letters, digits, '.', '_' or '-' (start with a "
            "letter or digit)"
        )
    if role not in models.USER_ROLES:
        raise UserError(f"role {role!r}: must be one of {', '.join(models.USER_ROLES)}")
    if role == "district_staff" and not district:
        raise UserError("a district_staff user needs --district (a district code)")
    if district and known_districts is not None and district not in known_districts:
        known = ", ".join(sorted(known_districts))
        raise UserError(f"district {district!r} is not in the network (known: {known})")
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
    return _staff(user)


def authenticate(session: Session, username: str, password: str) -> StaffUser | None:
    """The user if the name and password match an active account, else None."""
    user = session.scalar(select(models.User).where(models.User.username == username))
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    if not check_password_hash(user.password_hash, password) or not user.active:
        return None
    user.last_login_at = models.utcnow()
    return _staff(user)


def get_user(session: Session, user_id: int) -> StaffUser | None:
    user = session.get(models.User, user_id)
    return _staff(user) if user is not None and user.active else None


def set_password(session: Session, username: str, password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password must have at least {MIN_PASSWORD} characters")
    user = session.scalar(select(models.User).where(models.User.username == username))
    if user is None:
        raise UserError(f"no user named {username!r}")
    user.password_hash = generate_password_hash(password)
    revoke_sessions(session, user.id)


def revoke_sessions(session: Session, user_id: int) -> None:
    """Sign the user out everywhere (call on a password, role or active change)."""
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
    add_user(session, "admin", password, "admin")
    return password


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
