"""The event log: every live change, appended in the writer's transaction.

Its `seq` is the Socket.IO `seq`: a browser that reconnects asks for what came after the
last one it saw (roadwatch/web/live.py). Writers (the pipeline, the dispatcher, the
escalation clock, the review queue, the ranking's publication) call `record_events` inside
their transaction and hand the returned `LiveEvent`s to the broadcaster after the commit.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, func, select, text
from sqlalchemy.orm import Session

from . import models
from .bulk import insert_rows

EVENTS: Table = models.Event.__table__  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class LiveEvent:
    kind: str  # Socket.IO event name
    payload: dict[str, Any]  # includes "seq"


def record_events(
    session: Connection | Session, payloads: list[tuple[str, dict[str, Any]]], now: dt.datetime
) -> list[LiveEvent]:
    """Append live events to the event log in the caller's transaction; emit after commit."""
    if not payloads:
        return []
    seqs = _allocate_seqs(session, len(payloads))
    insert_rows(
        session,
        EVENTS,
        [
            {"seq": q, "kind": k, "payload": p, "created_at": now}
            for q, (k, p) in zip(seqs, payloads, strict=True)
        ],
    )
    return [LiveEvent(k, {**p, "seq": s}) for (k, p), s in zip(payloads, seqs, strict=True)]


def _allocate_seqs(session: Connection | Session, n: int) -> list[int]:
    """n new, increasing event sequence numbers, taken inside the current transaction."""
    bind = session.get_bind() if isinstance(session, Session) else session
    if bind.dialect.name == "postgresql":
        rows = session.execute(
            text(
                "SELECT nextval(pg_get_serial_sequence('events', 'seq'))"
                " FROM generate_series(1, :n)"
            ),
            {"n": n},
        )
        return sorted(int(v) for (v,) in rows)
    # SQLite: this transaction already holds the database's write lock (it inserted the
    # reports first), so nobody else can take the numbers after the current maximum.
    top = session.scalar(select(func.coalesce(func.max(EVENTS.c.seq), 0))) or 0
    return list(range(top + 1, top + n + 1))
