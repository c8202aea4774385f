"""API keys for HTTP intake (`POST /api/reports`, `POST /api/photos`): scripts and city
systems authenticate with a key bound to ONE reporter, and file reports as that reporter only.

    roadwatch apikeys add --reporter zz-jinshui-0421 [--label "巡查脚本"]
    roadwatch apikeys add --system city-12345            # a city system: reporter of kind system
    roadwatch apikeys list
    roadwatch apikeys revoke ID

A key is `rwk_` + 43 URL-safe characters (32 random bytes); it is shown once, and only its
SHA-256 is stored (with 256 bits of entropy a fast hash is enough: nothing to guess).
A client sends it as `Authorization: Bearer rwk_…` or `X-API-Key: rwk_…`. Revoking a key, or
disabling its reporter, takes effect on the next request (the key is looked up each time).

Why a table and not a setting (like Open311's `open311_api_keys`): keys are made and revoked
while the platform runs, by an operator who never sees the old ones, and each names a
registered reporter (a foreign key), so a key can never stand for an evaluator by a typo.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..store import models
from .reporters import ReporterError, save_reporter

PREFIX = "rwk_"
# Kinds a key may file as with --reporter: everyone who reports, but not a city system
# (those get their own key with --system, so the kind says what the key is).
PERSON_KINDS = ("person", "unit", "merchant", "evaluator", "covert")


class ApiKeyError(ValueError):
    """A request that cannot be done; the message says why in plain words."""


@dataclass(frozen=True)
class Identity:
    """Who an intake request comes from: the one reporter it may file as."""

    reporter_id: str
    key_id: int
    system: bool


@dataclass(frozen=True)
class NewKey:
    id: int
    key: str  # shown once
    reporter_id: str
    system: bool


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()


def add_key(
    session: Session,
    *,
    reporter: str | None = None,
    system: str | None = None,
    label: str | None = None,
    now: dt.datetime | None = None,
) -> NewKey:
    """A new key for a registered reporter, or for a city system (registered as a reporter
    of kind `system` if it is not yet)."""
    if (reporter is None) == (system is None):
        raise ApiKeyError("name exactly one of --reporter ID or --system NAME")
    now = now or models.utcnow()
    if system is not None:
        person = session.get(models.Reporter, system.strip())
        if person is None:
            try:
                save_reporter(session, system, "system", label or system)
            except ReporterError as exc:
                raise ApiKeyError(str(exc)) from None
            session.flush()  # the reporter row first: the key refers to it
            rid = system.strip()
        elif person.kind != "system":
            raise ApiKeyError(
                f"{person.id} is a reporter of kind {person.kind}, not a city system; "
                f"use --reporter {person.id} for a key of that reporter"
            )
        else:
            rid = person.id
    else:
        assert reporter is not None
        person = session.get(models.Reporter, reporter.strip())
        if person is None:
            raise ApiKeyError(
                f"no reporter {reporter!r}: register it first (chiefs import, "
                "reporters add, or apikeys add --system for a city system)"
            )
        if person.kind not in PERSON_KINDS:
            raise ApiKeyError(
                f"{person.id} is a city system: use --system {person.id} for its keys"
            )
        rid = person.id
    key = PREFIX + secrets.token_urlsafe(32)
    row = models.ApiKey(
        key_hash=digest(key),
        prefix=key[:12],
        reporter_id=rid,
        system=system is not None,
        label=(label or "")[:100] or None,
        created_at=now,
        revoked_at=None,
    )
    session.add(row)
    session.flush()
    return NewKey(row.id, key, rid, row.system)


def list_keys(session: Session, include_revoked: bool = False) -> list[models.ApiKey]:
    q = select(models.ApiKey).order_by(models.ApiKey.id)
    if not include_revoked:
        q = q.where(models.ApiKey.revoked_at.is_(None))
    return list(session.scalars(q))


def revoke_key(session: Session, key_id: int, now: dt.datetime | None = None) -> bool:
    """Revoke a key for good; False if there is no such key (or it was revoked already)."""
    row = session.get(models.ApiKey, key_id)
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = now or models.utcnow()
    return True


def identify(session: Session, key: str) -> Identity | None:
    """The identity a presented key stands for: None if it is unknown, revoked, or its
    reporter is missing or disabled."""
    if not key.startswith(PREFIX) or len(key) > 128:
        return None
    k, r = models.ApiKey, models.Reporter
    row = session.execute(
        select(k.id, k.reporter_id, k.system, r.disabled)
        .join(r, r.id == k.reporter_id)
        .where(k.key_hash == digest(key), k.revoked_at.is_(None))
    ).first()
    if row is None or row.disabled:
        return None
    return Identity(row.reporter_id, row.id, bool(row.system))
