"""The audit log of staff actions: who did what, to what, when and from where.

Append-only: `record` is the only writer, there is no update or delete path in the code,
and the database refuses UPDATE and DELETE on the table (triggers of migration
0009_audit_log). Each action records in the same transaction as the action itself, so an
action that is rolled back leaves no entry and an entry never lacks its action.

Core code: no Flask here (the web layer builds the Actor from the login, see web/authz.py).
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, insert, select
from sqlalchemy.orm import Session

from . import models

TABLE: Table = models.AuditEntry.__table__  # type: ignore[assignment]

# What is recorded (the `action` column); GET /api/audit filters by these.
ACTIONS = (
    "login",  # a password accepted (login form, or the first Basic check of a minute)
    "login_failed",  # a wrong name or password, or a disabled account
    "logout",
    "user.add",
    "user.passwd",
    "user.role",
    "user.active",
    "chief.device_revoke",  # an admin revoked road chiefs' phone credentials (CLI)
    "chief.provision",  # an admin gave a chief an account or a new password (web)
    "review.settle",
    # a photo uploaded after its report placed the report (roadwatch.late_photos); the
    # actor is the uploader (`chief:<id>` or `reporter:<id>` of an API key)
    "report.photo_placed",
    "dispute.file",
    "dispute.decide",
    "export",
    "ranking.publish",
    # staff actions on a case from the command centre (roadwatch.cases.actions)
    "case.reassign",
    "case.verify",
    "case.comment",
    "case.extend",
    "case.suspend",
    "case.close_invalid",
    "case.close_duplicate",
    "case.merge",
    "case.split",
    "case.reopen",
    "review.publish",  # a monthly review pack frozen (roadwatch.monthly, issue 22)
    # extension requests: a chief asks (actor `chief:<reporter id>`), staff decide
    "case.request_extension",
    "case.approve_extension",
    "case.refuse_extension",
    "chief.duty_hours",  # a chief's duty hours set or cleared (CLI, roadwatch.recurrence.duty)
)
MAX_TEXT = {"actor": 128, "target": 255, "remote_addr": 64}


@dataclass(frozen=True)
class Actor:
    """Who acts: a staff user (name and id, from the login), the CLI or the system."""

    name: str
    user_id: int | None = None
    remote_addr: str | None = None


def cli_actor() -> Actor:
    """The operator at a shell: `cli:<os user>`."""
    try:
        who = getpass.getuser()
    except (KeyError, OSError):  # no such uid in the passwd file (containers)
        who = str(os.getuid())
    return Actor(f"cli:{who}")


SYSTEM = Actor("system")


def record(
    db: Session | Connection,
    actor: Actor | str,
    action: str,
    target: str | None = None,
    *,
    at: dt.datetime | None = None,
    **detail: Any,
) -> None:
    """Append one entry in the caller's transaction (committed or rolled back with it)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    who = actor if isinstance(actor, Actor) else Actor(actor)
    conn = db.connection() if isinstance(db, Session) else db
    conn.execute(
        insert(TABLE).values(
            at=at or models.utcnow(),
            actor=who.name[: MAX_TEXT["actor"]],
            actor_id=who.user_id,
            action=action,
            target=None if target is None else str(target)[: MAX_TEXT["target"]],
            detail={k: v for k, v in detail.items() if v is not None},
            remote_addr=(who.remote_addr or None) and who.remote_addr[: MAX_TEXT["remote_addr"]],
        )
    )


def entries(
    db: Session | Connection,
    *,
    actor: str | None = None,
    action: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Entries newest first, filtered; `before_id` pages on (the last id of the page before)."""
    t = TABLE.c
    q = select(TABLE)
    if actor is not None:
        q = q.where(t.actor == actor)
    if action is not None:
        # "export" matches only itself; "user" matches user.add, user.passwd, …
        q = q.where(t.action.like(f"{action}.%") | (t.action == action))
    if since is not None:
        q = q.where(t.at >= since)
    if until is not None:
        q = q.where(t.at < until)
    if before_id is not None:
        q = q.where(t.id < before_id)
    conn = db.connection() if isinstance(db, Session) else db
    rows = conn.execute(q.order_by(t.id.desc()).limit(limit))
    return [dict(r._mapping) for r in rows]
