"""The clock: overdue cases escalate up the road-chief ladder, each level notified once.

`sweep` claims every due escalation step with one conditional UPDATE … RETURNING: a row is
returned only to the transaction that moved it, so any number of processes may sweep at
the same time and still notify each level exactly once. `Scheduler` runs it periodically.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, bindparam, select, update

from ..store import models
from ..store.events import record_events
from ..store.segments import segment_states
from .calendar import LEVEL_NAMES
from .workflow import (
    CLOCK_RUNNING,
    REPORTS,
    Effects,
    Notice,
    Sla,
    chief_at_level,
    holders_of,
    record,
)

log = logging.getLogger(__name__)
LADDER = (2, 1, 0)  # escalation step 1 → 二级路长, 2 → 一级路长, 3 → 总路长


SWEEP_LIMIT = 5000  # cases claimed per transaction: a backlog drains in bounded steps


def sweep(
    engine: Engine, sla: Sla, now: dt.datetime, limit: int = SWEEP_LIMIT
) -> tuple[list[Any], list[Notice]]:
    """Escalate every case whose next escalation time has come.

    Returns the committed live events and the notices to send (one per level reached).
    """
    fx = Effects()
    r = REPORTS.c
    with engine.begin() as conn:
        due_rows = (
            select(r.id)
            .where(r.case_status.in_(CLOCK_RUNNING), r.next_escalation_at <= now)
            .order_by(r.next_escalation_at)
            .limit(limit)
        )
        if conn.dialect.name == "postgresql":
            due_rows = due_rows.with_for_update(skip_locked=True)  # other sweepers take other rows
        claimed = conn.execute(
            update(REPORTS)
            .where(
                r.id.in_(due_rows.scalar_subquery()),
                r.case_status.in_(CLOCK_RUNNING),
                r.next_escalation_at <= now,
            )
            .values(
                escalation_level=r.escalation_level + 1,
                overdue=True,
                next_escalation_at=None,
                updated_at=now,
            )
            .returning(
                r.id,
                r.segment_id,
                r.case_status,
                r.escalation_level,
                r.due_at,
                r.observed_at,
                r.assignee_id,
                r.category,
            )
        ).all()
        if not claimed:
            return [], []
        holders = holders_of(conn, [c.segment_id for c in claimed if c.segment_id])
        nexts: list[dict[str, Any]] = []
        transitions: list[dict[str, Any]] = []
        for c in claimed:
            step = int(c.escalation_level)
            due = _utc(c.due_at)
            following = sla.escalation_at(due, step + 1) if due is not None else None
            if following is not None:
                nexts.append({"rid": c.id, "nxt": max(following, now)})
            level = LADDER[min(step, len(LADDER)) - 1]
            chief = chief_at_level(holders.get(c.segment_id, []), now, level)
            who = chief.person_id if chief else None
            transitions.append(
                {
                    "report_id": c.id,
                    "at": now,
                    "from_status": c.case_status,
                    "to_status": c.case_status,
                    "by": "clock",
                    "note": f"overdue: escalated to {LEVEL_NAMES[level]}"
                    + (f" {who}" if who else ""),
                    "data": {"escalation_level": step, "notified": who, "level": level},
                }
            )
            fx.events.append(
                (
                    "case",
                    {
                        "id": c.id,
                        "status": "escalated" if step > 1 else "overdue",
                        "segment_id": c.segment_id,
                        "escalation_level": step,
                        "notified_level": level,
                        "notified": who,
                        "due_at": due.isoformat() if due else None,
                    },
                )
            )
            body = {
                "v": 1,
                "kind": "escalation",
                "case_id": c.id,
                "segment_id": c.segment_id,
                "category": c.category,
                "level": level,
                "step": step,
                "due_at": due.isoformat() if due else None,
            }
            if who:
                fx.notices.append(Notice(who, body))
            if step == 1 and c.assignee_id and c.assignee_id != who:
                fx.notices.append(Notice(c.assignee_id, {**body, "kind": "overdue"}))
        if nexts:
            conn.execute(
                update(REPORTS)
                .where(r.id == bindparam("rid"))
                .values(next_escalation_at=bindparam("nxt")),
                nexts,
            )
        record(conn, transitions)

        segs = sorted({c.segment_id for c in claimed if c.segment_id})
        fx.events += [("segment", s) for s in segment_states(conn, segs)]
        live = record_events(conn, fx.events, now)
    return live, fx.notices


def _utc(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    assert isinstance(value, dt.datetime)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


class Scheduler:
    """Runs `sweep` every `interval` seconds in a daemon thread."""

    def __init__(
        self,
        engine: Engine,
        sla: Sla,
        deliver: Callable[[list[Any], list[Notice]], None],
        interval: float = 30.0,
        clock: Callable[[], dt.datetime] = models.utcnow,
    ) -> None:
        self.engine, self.sla, self.deliver = engine, sla, deliver
        self.interval, self.clock = interval, clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> int:
        """Sweep until nothing is due (a backlog goes in bounded transactions)."""
        total = 0
        while True:
            events, notices = sweep(self.engine, self.sla, self.clock())
            n = sum(1 for e in events if e.kind == "case")
            if n:
                self.deliver(events, notices)
            total += n
            if n < SWEEP_LIMIT:
                break
        if total:
            log.info("clock: %d cases escalated", total)
        return total

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="case-clock", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.run_once()
            except Exception:  # a database hiccup must not stop the clock for good
                log.exception("clock: sweep failed; trying again in %.0f s", self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
