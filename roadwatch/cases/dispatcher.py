"""The dispatcher: turns stored reports (case_status "new") into cases, off the ack path.

Ingest acknowledges a report as soon as it is committed; the dispatcher then works
through the new ones in large batches: dispatch to whoever answered for the spot, or link
to an open case the report corroborates (roadwatch.cases.workflow.open_cases). On
PostgreSQL several processes may run it at once: rows are claimed with SKIP LOCKED.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, select, text

from ..store import models
from ..store.db import log_failed_pass
from ..store.events import record_events
from ..store.segments import segment_states
from .outbox import MQTT_ONLY, Routing, enqueue
from .workflow import REPORTS, HoldersCache, NewCase, Notice, Sla, open_cases

log = logging.getLogger(__name__)


class Dispatcher:
    def __init__(
        self,
        engine: Engine,
        sla: Sla,
        deliver: Callable[[list[Any], list[Notice]], None],
        *,
        batch: int = 500,
        gather_s: float = 0.1,
        poll_s: float = 1.0,
        clock: Callable[[], Any] = models.utcnow,
        routing: Routing = MQTT_ONLY,
    ) -> None:
        self.engine, self.sla, self.deliver = engine, sla, deliver
        self.routing = routing
        self.batch, self.clock, self.gather_s = batch, clock, gather_s
        self.poll_s = poll_s  # how often it looks for new rows when nothing wakes it
        self.holders = HoldersCache()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one pass at a time in this process

    def run_once(self) -> dict[str, str]:
        """Dispatch up to `batch` new reports; returns report id -> new case status."""
        r = REPORTS.c
        with self._lock, self.engine.begin() as conn:
            q = (
                select(
                    r.id,
                    r.segment_id,
                    r.category,
                    r.severity,
                    r.observed_at,
                    r.snap,
                    r.lat,
                    r.lon,
                    r.reporter_id,
                )
                .where(text("case_status = 'new'"))  # literal: matches the partial index
                .limit(self.batch)
            )
            if conn.dialect.name == "postgresql":
                # Oldest first, straight from the new-cases index in its order. A young
                # table's statistics make the planner read and sort the whole backlog
                # instead (measured: 11-24 ms against 1 ms a pass at 5,000 waiting, and
                # growing with the backlog just when the dispatcher is behind), so sorting
                # is ruled out for this one statement.
                conn.execute(text("SET LOCAL enable_sort = off"))
                q = q.order_by(r.received_at).with_for_update(skip_locked=True)
                rows = conn.execute(q).all()
                conn.execute(text("SET LOCAL enable_sort = on"))
            else:
                rows = conn.execute(q.order_by(r.received_at, r.id)).all()
            if not rows:
                return {}
            now = self.clock()
            cases = [
                NewCase(
                    id=x.id,
                    segment_id=x.segment_id,
                    category=x.category,
                    severity=x.severity,
                    observed_at=x.observed_at
                    if x.observed_at.tzinfo
                    else x.observed_at.replace(tzinfo=dt.UTC),
                    chainage_m=(x.snap or {}).get("chainage_m"),
                    lat=x.lat,
                    lon=x.lon,
                    reporter_id=x.reporter_id,
                )
                for x in rows
            ]
            fx = open_cases(conn, cases, self.sla, now, holders=self.holders)
            # New and dispatched cases are both open, so dispatching leaves a segment's
            # live state as it was; only a report found to corroborate another (duplicate)
            # leaves the open count, and only its segment needs a new state.
            segs = sorted({c.segment_id for c in cases if fx.case_status.get(c.id) == "duplicate"})
            fx.events += [("segment", s) for s in segment_states(conn, segs)]
            enqueue(conn, fx.notices, now, self.routing)  # sent from the outbox after commit
            live = record_events(conn, fx.events, now)  # last: it orders the commits
        self.deliver(live, fx.notices)
        return fx.case_status

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="dispatcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            # Polling is also a safety net here: new rows from other processes.
            if self._wake.wait(self.poll_s):
                # Woken by an ingest batch: let a few more gather. One pass over many reports
                # costs far less per report than a pass per batch, and a case's clock runs
                # in hours, not ms. (A poll has waited poll_s already.)
                self._stop.wait(self.gather_s)
            self._wake.clear()
            try:
                while len(self.run_once()) >= self.batch:
                    pass
            except Exception as exc:
                log_failed_pass(log, "dispatcher: a pass", exc, "retrying in 1 s")
                self._stop.wait(1.0)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    @property
    def thread(self) -> threading.Thread | None:
        """Its thread while started (roadwatch.health watches it)."""
        return self._thread
