"""Case messages that overtook their report: parked, acknowledged, and tried again.

With several ingest workers on one MQTT 5 shared subscription the broker hands each
message to any member, so a phone's rectification can be processed by worker B while
its report still waits in worker A's batch (README, "Several ingest workers"). Instead
of rejecting it as `unknown_report`, the pipeline parks it in `parked_messages` in the
same transaction that would have stored the rejection; the MQTT message is then
acknowledged like any other (the park is committed). The phone gets its ack when the
message is finally applied, or rejected.

A parked message waits for one report (`waits_for`):
* `unknown_report`: the report is not stored yet;
* `not_dispatched`: a rectification of a case the dispatcher has not dispatched yet (in
  order it would have been dispatched first, because the chief was told of the case);
* `behind`: another message for the same report is parked already, so this one waits
  behind it and the two are applied in the order they arrived.

It is tried again when a worker commits the report it waits for, and on a timer with
a backoff (every worker: `due`). Two workers never apply the same one: a retry takes
its rows with `FOR UPDATE SKIP LOCKED` and deletes them in the transaction that applies
them. After `park_max_age_s` a message is tried one last time and gets the error it
would have had in the first place.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, delete, func, select, update

from ..store import models
from .messages import Inbound

PARKED: Table = models.ParkedMessage.__table__  # type: ignore[assignment]
BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)  # between periodic tries, by attempt
PARKABLE = frozenset({"rectification", "verification"})


@dataclass(frozen=True, slots=True)
class ParkedToken:
    """The `token` of an Inbound that comes from `parked_messages` rather than a transport."""

    row_id: int
    final: bool  # past the maximum age: no parking again, the normal outcome


def backoff(attempts: int) -> dt.timedelta:
    return dt.timedelta(seconds=BACKOFF_S[min(attempts, len(BACKOFF_S) - 1)])


def has_parked(conn: Connection, report_id: str) -> bool:
    """Whether some message for `report_id` is parked (a newer one must queue behind it)."""
    q = select(PARKED.c.id).where(PARKED.c.waits_for == report_id).limit(1)
    return conn.execute(q).first() is not None


def park(
    conn: Connection,
    msg: Inbound,
    message_id: str,
    waits_for: str,
    reason: str,
    now: dt.datetime,
    token: ParkedToken | None,
) -> None:
    """Park `msg` (or, when it is the retry of a parked row, put that row back with one
    more attempt). A resend of a message that is parked already changes nothing."""
    if token is not None:
        row = conn.execute(
            select(PARKED.c.attempts).where(PARKED.c.id == token.row_id)
        ).scalar_one()
        conn.execute(
            update(PARKED)
            .where(PARKED.c.id == token.row_id)
            .values(attempts=row + 1, next_try_at=now + backoff(row + 1), reason=reason)
        )
        return
    key = f"{msg.kind}:{message_id}"
    if conn.execute(select(PARKED.c.id).where(PARKED.c.key == key)).first() is not None:
        return
    conn.execute(
        PARKED.insert(),
        {
            "key": key[:200],
            "kind": msg.kind,
            "waits_for": waits_for,
            "reason": reason,
            "topic": (msg.topic or "")[:255],
            "reporter_id": (msg.topic_reporter or "")[:64],
            "payload": msg.payload,
            "response_topic": (msg.response_topic or None) and msg.response_topic[:255],
            "correlation_data": msg.correlation_data,
            "received_at": msg.received_at,
            "parked_at": now,
            "next_try_at": now + backoff(0),
            "attempts": 0,
        },
    )


def claim(conn: Connection, row_ids: list[int]) -> set[int]:
    """Lock the parked rows about to be retried; those another worker holds (or has
    applied meanwhile) are left out, so each parked message is applied once."""
    if not row_ids:
        return set()
    q = select(PARKED.c.id).where(PARKED.c.id.in_(row_ids))
    if conn.dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    return set(conn.execute(q).scalars())


def release(conn: Connection, row_ids: list[int]) -> None:
    """The retried rows that were applied or rejected: gone with that transaction."""
    if row_ids:
        conn.execute(delete(PARKED).where(PARKED.c.id.in_(row_ids)))


def due(
    conn: Connection,
    now: dt.datetime,
    max_age: dt.timedelta,
    report_ids: list[str] | None = None,
    limit: int = 200,
) -> list[Inbound]:
    """Parked messages to try now: those waiting for `report_ids` (just stored), or else
    those whose next try is due; oldest first, so a report's messages keep their order."""
    q = select(PARKED).order_by(PARKED.c.id).limit(limit)
    if report_ids is not None:
        q = q.where(PARKED.c.waits_for.in_(report_ids))
    else:
        # every message of a report whose first parked message is due, in order
        first_due = select(PARKED.c.waits_for).where(PARKED.c.next_try_at <= now).scalar_subquery()
        q = q.where(PARKED.c.waits_for.in_(first_due))
    return [_inbound(row, now, max_age) for row in conn.execute(q)]


def count(conn: Connection) -> tuple[int, float]:
    """(how many messages are parked, age in seconds of the oldest) for health and metrics."""
    n, oldest = conn.execute(select(func.count(), func.min(PARKED.c.parked_at))).one()
    if not n or oldest is None:
        return 0, 0.0
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=dt.UTC)
    return int(n), max(0.0, (models.utcnow() - oldest).total_seconds())


def _inbound(row: Any, now: dt.datetime, max_age: dt.timedelta) -> Inbound:
    parked_at = row.parked_at if row.parked_at.tzinfo else row.parked_at.replace(tzinfo=dt.UTC)
    return Inbound(
        transport="mqtt",
        kind=row.kind,
        payload=bytes(row.payload),
        received_at=row.received_at,
        topic=row.topic,
        topic_reporter=row.reporter_id or None,
        response_topic=row.response_topic,
        correlation_data=None if row.correlation_data is None else bytes(row.correlation_data),
        token=ParkedToken(row.id, final=now - parked_at >= max_age),
    )
