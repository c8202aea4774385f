"""The clock: overdue cases escalate up the road-chief ladder, each level notified once.

It also applies the holiday rule (roadwatch.cases.calendar): it warns in the log while next
year's public holidays are missing, and `recompute_provisional` gives open cases whose
deadline was counted in a then-unknown year their real deadline once the year is configured
(at start-up, and whenever the clock is handed a new time-limit configuration).

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
from ..store.db import log_failed_pass
from ..store.events import record_events
from ..store.segments import segment_states
from .calendar import LEVEL_NAMES
from .outbox import MQTT_ONLY, Routing, enqueue
from .workflow import (
    CLOCK_RUNNING,
    OPEN_CASE,
    REPORTS,
    TRANSITIONS,
    Effects,
    Notice,
    Sla,
    chief_at_level,
    holders_of,
    keep_ranked_state,
    record,
)

log = logging.getLogger(__name__)


def responsible_level(holders: Any, assignee_id: str | None, at: dt.datetime) -> int:
    """The road-chief level a case is held at: its assignee's post on the segment, else
    (the assignee left, or is a merchant or partner unit) the segment's most junior chief;
    3 when the segment has no road chief at all."""
    chiefs = [h for h in holders if h.role == "road_chief" and h.level is not None and h.holds(at)]
    own = [int(h.level) for h in chiefs if h.person_id == assignee_id]
    if own:
        return max(own)
    return max((int(h.level) for h in chiefs), default=3)


def ladder_level(sla: Sla, due: dt.datetime, step: int, level: int) -> int | None:
    """Whom escalation rule number `step` (1-based, config order) notifies for a case held at
    `level`: config/sla.toml's `notify` ("superior" = one above), or None when the rule is
    skipped (it names the holder's own level, a lower one or one already notified:
    `Sla.escalation_steps`)."""
    rules = getattr(sla, "escalation", None)
    if not rules or not 1 <= step <= len(rules):
        return None
    rule = rules[step - 1]
    for s in sla.escalation_steps(due, level):
        if s.rule is rule:
            return int(s.level)
    return None


SWEEP_LIMIT = 5000  # cases claimed per transaction: a backlog drains in bounded steps


def sweep(
    engine: Engine,
    sla: Sla,
    now: dt.datetime,
    limit: int = SWEEP_LIMIT,
    routing: Routing = MQTT_ONLY,
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
            held = holders.get(c.segment_id, [])
            own_level = responsible_level(held, c.assignee_id, now)
            level = ladder_level(sla, due, step, own_level) if due is not None else None
            if level is None and step > 1:
                continue  # a rule this case's ladder skips (see ladder_level): nobody to tell
            chief = chief_at_level(held, now, level) if level is not None else None
            who = chief.person_id if chief else None
            transitions.append(
                {
                    "report_id": c.id,
                    "at": now,
                    "from_status": c.case_status,
                    "to_status": c.case_status,
                    "by": "clock",
                    "note": (
                        f"overdue: escalated to {LEVEL_NAMES[level]}"
                        if level is not None
                        else "overdue"
                    )
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
                "level": level if level is not None else own_level,  # overdue only: the holder
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
        enqueue(conn, fx.notices, now, routing)  # sent from the outbox after commit
        live = record_events(conn, fx.events, now)  # last: it orders the commits
    return live, fx.notices


def recompute_provisional(
    engine: Engine, sla: Sla, now: dt.datetime, limit: int = SWEEP_LIMIT, after: str = ""
) -> tuple[list[Any], int, str | None]:
    """Recompute the deadline of open cases marked provisional whose years are now known.

    A case whose deadline still runs into an unknown year keeps it (and the mark). Returns
    the committed live events, the number of cases whose deadline was recomputed (each gets
    a transition by "clock" naming the old and the new deadline) and the last case id read
    (None once all are read: pass it as `after` for the next page).
    """
    r = REPORTS.c
    t = TRANSITIONS.c
    fx = Effects()
    with engine.begin() as conn:
        q = (
            select(
                r.id,
                r.case_status,
                r.category,
                r.severity,
                r.segment_id,
                r.dispatched_at,
                r.due_at,
                r.escalation_level,
            )
            .where(
                r.due_provisional,
                r.case_status.in_([s for s in OPEN_CASE if s != "new"]),
                r.id > after,
            )
            .order_by(r.id)
            .limit(limit)
        )
        if conn.dialect.name == "postgresql":
            q = q.with_for_update(of=REPORTS, skip_locked=True)
        rows = conn.execute(q).all()
        if not rows:
            return [], 0, None
        last = rows[-1].id if len(rows) == limit else None
        grace: dict[str, bool] = {}  # the last dispatch was a merchant's grace window (门前三包)
        for rid, data in conn.execute(
            select(t.report_id, t.data)
            .where(t.report_id.in_([c.id for c in rows]), t.to_status == "dispatched")
            .order_by(t.at, t.id)
        ):
            grace[rid] = bool(isinstance(data, dict) and data.get("grace"))
        updates: list[dict[str, Any]] = []
        transitions: list[dict[str, Any]] = []
        for c in rows:
            start = _utc(c.dispatched_at)
            old = _utc(c.due_at)
            if start is None:
                continue
            due = (
                sla.merchant_deadline(start)
                if grace.get(c.id)
                else sla.deadline(c.category, c.severity, start)
            )
            if sla.is_provisional(start, due):
                continue  # its year is still unknown: keep the weekday-only deadline
            nxt: dt.datetime | None = None
            if c.case_status in CLOCK_RUNNING:
                level = int(c.escalation_level or 0)
                nxt = due if level == 0 else sla.escalation_at(due, level + 1)
                if nxt is not None:
                    nxt = max(nxt, now)
            updates.append({"rid": c.id, "due": due, "nxt": nxt, "now": now})
            transitions.append(
                {
                    "report_id": c.id,
                    "at": now,
                    "from_status": c.case_status,
                    "to_status": c.case_status,
                    "by": "clock",
                    "note": "deadline recomputed: the year's public holidays are now configured",
                    "data": {
                        "due_at_before": old.isoformat() if old else None,
                        "due_at": due.isoformat(),
                        "due_provisional": False,
                    },
                }
            )
            fx.events.append(
                (
                    "case",
                    {
                        "id": c.id,
                        "status": c.case_status,
                        "segment_id": c.segment_id,
                        "due_at": due.isoformat(),
                        "due_provisional": False,
                    },
                )
            )
        if not updates:
            return [], 0, last
        keep_ranked_state(conn, [u["rid"] for u in updates], now)
        conn.execute(
            update(REPORTS)
            .where(r.id == bindparam("rid"))
            .values(
                due_at=bindparam("due"),
                due_provisional=False,
                next_escalation_at=bindparam("nxt"),
                updated_at=bindparam("now"),
            ),
            updates,
        )
        record(conn, transitions)
        live = record_events(conn, fx.events, now)
    return live, len(updates), last


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
        routing: Routing = MQTT_ONLY,
    ) -> None:
        self.engine, self.sla, self.deliver = engine, sla, deliver
        self.routing = routing
        self.interval, self.clock = interval, clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._recomputed_for: Sla | None = None  # the configuration last recomputed under
        self._warned: tuple[str, dt.date] | None = None

    def set_sla(self, sla: Sla) -> None:
        """Use a new time-limit configuration (e.g. with next year's holidays): the next
        run recomputes the provisional deadlines under it."""
        self.sla = sla

    def check_calendar(self) -> int:
        """The holiday rule: warn (once a day) while next year's holidays are missing, and
        recompute provisional deadlines once per configuration. Returns cases recomputed."""
        now = self.clock()
        warning = self.sla.holiday_warning(now)
        if warning and self._warned != (warning, now.date()):
            log.warning("clock: %s", warning)
            self._warned = (warning, now.date())
        if self._recomputed_for is self.sla:
            return 0
        total = 0
        after: str | None = ""
        while after is not None:
            events, n, after = recompute_provisional(self.engine, self.sla, now, after=after)
            if events:
                self.deliver(events, [])
            total += n
        self._recomputed_for = self.sla
        if total:
            log.info("clock: %d provisional deadlines recomputed", total)
        return total

    def run_once(self) -> int:
        """Sweep until nothing is due (a backlog goes in bounded transactions)."""
        self.check_calendar()
        total = 0
        while True:
            events, notices = sweep(self.engine, self.sla, self.clock(), routing=self.routing)
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
        try:
            self.check_calendar()  # at start-up: warn, and recompute under this configuration
        except Exception:
            log.exception("clock: recomputing provisional deadlines failed; retrying later")
        self._thread = threading.Thread(target=self._run, name="case-clock", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.run_once()
            except Exception as exc:  # a database hiccup must not stop the clock for good
                log_failed_pass(log, "clock: sweep", exc, f"trying again in {self.interval:.0f} s")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    @property
    def thread(self) -> threading.Thread | None:
        """Its thread while started (roadwatch.health watches it)."""
        return self._thread
