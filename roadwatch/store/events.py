"""The event log: every live change, appended in the writer's transaction.

Its `seq` is the Socket.IO `seq`: a browser that reconnects asks for what came after the
last one it saw (roadwatch/web/live.py). Writers (the pipeline, the dispatcher, the
escalation clock, the review queue, the ranking's publication) call `record_events` as the
last write of their transaction and hand the returned `LiveEvent`s to the broadcaster after
the commit.

Readers (the resync, the snapshots' `max(seq)`, the replay API) read "every event after
seq N" and trust that nothing at or below the newest seq they see can still appear. That
holds only if events become visible in seq order: on PostgreSQL a sequence hands out
numbers at INSERT, so with several writers (ingest workers, the jobs role, the web role)
transaction A could take seq 100, B take 101 and commit first, and a reader in between
would move its cursor to 101 and never see 100. `_allocate_seqs` therefore takes a
transaction-level advisory lock before taking the numbers, held until the commit: the next
writer takes its numbers only after this one has committed (PostgreSQL releases the lock
after the commit is visible) or rolled back, so every snapshot sees a prefix of the log.
Only the tail of each writer's transaction (the events' COPY and the commit) is serialised;
the reports, cases and outbox rows before it are written concurrently. A writer that
stays open after `record_events` (a stopped or hung process) would hold every other
writer's events back: its transaction is given an idle-in-transaction timeout of
`HOLD_TIMEOUT_MS` with the lock, after which PostgreSQL ends its session (rolled back, the
lock released). The waiting writers' own statement timeout (`db_statement_timeout_ms`,
30 s by default) is longer, so they wait rather than fail.

Rejected alternative (the PostgreSQL "transaction-id horizon" of some event stores): a
reader that returns only events whose writing transaction's xid is below
`pg_snapshot_xmin(pg_current_snapshot())` cannot see the in-flight writer's rows, hence not
their seq either. A transaction gets its xid at its first write, long before it takes its
seq, so an older xid does not mean a lower seq: B (xid 9) may take seq 101 after A (xid 10)
took 100; once B commits, 101 is below the horizon while 100 is still hidden, and the
cursor passes it (reproduced on PostgreSQL 15 while writing this). Ordering the log by
(xid, seq) would fix that but changes what the browsers' cursor means, and no horizon that
leaves commits unordered can give a page a snapshot exact as of one seq (B's change in it,
A's not), which the lock gives for free (roadwatch/web/centre.py `live_state`).

The cost: event-writing commits no longer share a WAL flush, so they are at most one per
fsync between them; ingest batches grow while commits wait, which absorbs most of it
(figures in the README, "The web role in production, health and supervision").

During a rolling upgrade, writers of an older release do not take the lock; the guarantee
holds once every writer runs this code (no schema change is involved).
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


# pg_advisory_xact_lock key that orders the event log's commits: "rw-event" in ASCII
EVENT_ORDER_LOCK = 0x72772D6576656E74
# How long a writer holding that lock may sit idle before PostgreSQL ends its session; the
# commit follows `record_events` at once, so only a stopped or hung process comes near it.
HOLD_TIMEOUT_MS = 10_000


def _allocate_seqs(session: Connection | Session, n: int) -> list[int]:
    """n new, increasing event sequence numbers, taken inside the current transaction."""
    bind = session.get_bind() if isinstance(session, Session) else session
    if bind.dialect.name == "postgresql":
        if isinstance(session, Session):
            # The ORM's pending changes would otherwise be flushed at the commit, under the
            # lock: row locks waited for there would hold every other writer back.
            session.flush()
        # The numbers come from the CTE's row, so the lock is held before the first one
        # is taken; it is released at the end of the transaction (module docstring).
        rows = session.execute(
            text(
                "WITH ordered AS MATERIALIZED (SELECT pg_advisory_xact_lock(:k),"
                " set_config('idle_in_transaction_session_timeout', :hold, true))"
                " SELECT nextval(pg_get_serial_sequence('events', 'seq'))"
                " FROM ordered, generate_series(1, :n)"
            ),
            {"k": EVENT_ORDER_LOCK, "hold": f"{HOLD_TIMEOUT_MS}ms", "n": n},
        )
        return sorted(int(v) for (v,) in rows)
    # SQLite: this transaction already holds the database's write lock (it inserted the
    # reports first), so nobody else can take the numbers after the current maximum.
    top = session.scalar(select(func.coalesce(func.max(EVENTS.c.seq), 0))) or 0
    return list(range(top + 1, top + n + 1))
