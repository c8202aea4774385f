"""Registering reporters who answer for no segment: third-party evaluators (第三方测评) and
covert checkers (暗访), whose findings the weekly ranking weighs more (formula [sources]).

Road chiefs, partner units and merchants come in with their assignments (`chiefs import`);
this is for everyone else. A reporter's kind is read when a week is ranked, so registering
an evaluator late still counts their earlier findings of an unpublished week as theirs.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..ingest.payloads import REPORTER_ID
from ..store import models

KINDS = ("person", "unit", "merchant", "evaluator", "covert")
MAX_ID = 64


class ReporterError(ValueError):
    """A request that cannot be done; the message says why in plain words."""


@dataclass(frozen=True)
class Saved:
    id: str
    kind: str
    created: bool
    previous_kind: str | None  # when an existing reporter changed kind


def save_reporter(session: Session, rid: str, kind: str, name: str | None = None) -> Saved:
    rid = rid.strip()
    # The rule a report's reporter_id must meet: an id no report may carry is of no use.
    if len(rid) > MAX_ID or not REPORTER_ID.match(rid):
        raise ReporterError(
            f"a reporter id is 1 to {MAX_ID} letters, digits, '.', '_' or '-' "
            f"(its reports' reporter_id and its MQTT topic level), not {rid!r}"
        )
    if kind not in KINDS:
        raise ReporterError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    person = session.get(models.Reporter, rid)
    if person is None:
        session.add(models.Reporter(id=rid, name=(name or rid)[:100], kind=kind))
        return Saved(rid, kind, True, None)
    before = person.kind
    person.kind = kind
    if name:
        person.name = name[:100]
    return Saved(rid, kind, False, before if before != kind else None)


def list_reporters(session: Session, kind: str | None = None) -> list[models.Reporter]:
    q = select(models.Reporter).order_by(models.Reporter.id)
    if kind:
        q = q.where(models.Reporter.kind == kind)
    return list(session.scalars(q))
