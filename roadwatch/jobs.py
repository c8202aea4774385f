"""`roadwatch jobs`: the scheduled jobs in one process, apart from web and ingest.

The case dispatcher (new reports → cases), the case clock (overdue, escalation), the
weekly ranking schedule and the notice outbox publisher, each in a thread, with `/healthz`
and `/metrics` on their own port (roadwatch.health.HealthServer).

Two `jobs` processes at once double nothing, without a leader: each job claims its work in
the database — the dispatcher and the clock with row locks (SKIP LOCKED on PostgreSQL),
the ranking with a claim row per week, the outbox with a lease per row — so a second
process only shares the work (docs/deploy.md, "Roles"). SQLite has no row locks: there,
run one.

SIGTERM: the dispatcher and the clock finish their pass (each one transaction), the
outbox publisher finishes the notices in flight and marks them, then the process exits 0.
A job thread that dies makes the process exit 1, so the service manager restarts it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from .health import (
    Check,
    CheckFn,
    Health,
    HealthServer,
    database_check,
    redis_check,
    thread_check,
)
from .settings import Settings

log = logging.getLogger(__name__)

# The oldest pending notice older than this makes /healthz fail: notices are not leaving.
OUTBOX_STALE_S = 300.0
DISPATCH_POLL_S = 0.2  # how often the dispatcher looks for new reports (see Jobs.__init__)


class Jobs:
    def __init__(self, settings: Settings, *, emitter: Any = None, migrate: bool = True) -> None:
        from .cases.calendar import load_sla
        from .cases.clock import Scheduler
        from .cases.dispatcher import Dispatcher
        from .cases.outbox import Routing, publisher_for
        from .categories import load_categories
        from .live.broadcast import Broadcaster
        from .store import db

        self.settings = settings
        self.engine = db.make_engine(settings.database_url)
        if migrate:
            db.upgrade(self.engine)
        categories = load_categories()
        sla = load_sla(categories=categories.codes)
        self.broadcaster = Broadcaster(emitter)
        routing = Routing.from_settings(settings, categories)
        self.outbox = publisher_for(self.engine, settings)
        # Nothing wakes this dispatcher (the workers that store reports are other processes):
        # it polls. Once a second, each pass took a second's worth of reports at once (~500
        # at 500/s: tens of ms of this process's and PostgreSQL's CPU together), and on a
        # small host the workers' commits and acks queued behind it: the slow acks came in
        # clusters once a second (issue 18 acceptance d). A look every 0.2 s spreads the same
        # work in passes a fifth the size; a look that finds nothing is one indexed query.
        self.dispatcher = Dispatcher(
            self.engine, sla, self._deliver, routing=routing, poll_s=DISPATCH_POLL_S
        )
        self.clock = Scheduler(
            self.engine, sla, self._deliver, interval=settings.case_sweep_s, routing=routing
        )
        self.ranking: Any = None
        if settings.ranking_schedule_s > 0:
            from .ranking.schedule import RankingScheduler

            self.ranking = RankingScheduler(
                self.engine,
                settings.ranking_formula,
                settings.tz,
                settings.ranking_contest_hours,
                self.broadcaster.publish,
                categories.codes,
                interval=settings.ranking_schedule_s,
            )
        from .recurrence.stored import refresher_for

        self.leaders = refresher_for(settings, self.engine)  # the leaders' weekly analysis
        self.health = self._health()
        self.registry = self._gauges()
        self.server: HealthServer | None = None

    def _deliver(self, events: list[Any], notices: list[Any]) -> None:
        self.broadcaster.publish(events)
        if notices:  # already in the outbox (same transaction): send them now
            self.outbox.wake()

    # -- lifecycle ------------------------------------------------------------------
    def start(self, health_port: int | None = None, health_host: str = "127.0.0.1") -> Jobs:
        if health_port is not None:  # bound first: a taken port stops start-up before any job
            self.server = HealthServer(
                self.health, lambda: generate_latest(self.registry), health_host, health_port
            )
        self.broadcaster.start()
        self.outbox.start()
        self.dispatcher.start()
        self.clock.start()
        if self.ranking is not None:
            self.ranking.start()
        if self.leaders is not None:
            self.leaders.start()
        if self.server is not None:
            self.server.start()
        log.info("jobs: dispatcher, case clock, ranking schedule and notice outbox running")
        return self

    def threads(self) -> dict[str, threading.Thread | None]:
        out = {
            "dispatcher": self.dispatcher._thread,
            "case_clock": self.clock._thread,
            "outbox": self.outbox.thread,
        }
        if self.ranking is not None:
            out["ranking"] = self.ranking._thread
        return out

    def dead(self) -> list[str]:
        return [name for name, t in self.threads().items() if t is None or not t.is_alive()]

    def stop(self) -> None:
        """Producers first (their last notices still go out), then the outbox, then the rest."""
        self.dispatcher.stop()
        self.clock.stop()
        if self.ranking is not None:
            self.ranking.stop()
        if self.leaders is not None:
            self.leaders.stop()
        self.outbox.stop()
        self.broadcaster.stop()
        if self.server is not None:
            self.server.stop()
            self.server = None
        self.engine.dispose()
        log.info("jobs: stopped (%d notices sent)", self.outbox.sent)

    # -- health and gauges ----------------------------------------------------------
    def _health(self) -> Health:
        health = Health("jobs")
        for name in ("dispatcher", "case_clock", "ranking", "outbox"):
            if name == "ranking" and self.ranking is None:
                continue
            health.add(name, thread_check(lambda n=name: self.threads()[n], name))  # type: ignore[misc]
        health.add("database", database_check(self.engine))
        if self.settings.socketio_queue:  # the live events of case changes go through it
            health.add("redis", redis_check(self.settings.socketio_queue))
        health.add("broker", self._broker_check())
        health.add("outbox_backlog", self._backlog_check())
        return health

    def _broker_check(self) -> CheckFn:
        def check() -> Check:
            down = [ch for ch, n in self.outbox.notifiers.items() if not n.connected()]
            return Check(not down, {"error": f"{', '.join(down)} not reachable"} if down else {})

        return check

    def _backlog_check(self) -> CheckFn:
        from .cases.outbox import backlog

        def check() -> Check:
            b = backlog(self.engine)
            detail: dict[str, Any] = {"pending": b.pending}
            detail["oldest_pending_s"] = round(b.oldest_age_s, 1)
            if b.oldest_age_s > OUTBOX_STALE_S:
                detail["error"] = "notices are not leaving the outbox"
            return Check(b.oldest_age_s <= OUTBOX_STALE_S, detail)

        return check

    def _gauges(self) -> CollectorRegistry:
        from .cases.outbox import backlog
        from .health import dispatcher_lag_s, overdue_cases

        registry = CollectorRegistry()

        gauges = (
            (
                "roadwatch_outbox_pending",
                "Notices not yet sent",
                lambda: backlog(self.engine).pending,
            ),
            (
                "roadwatch_outbox_oldest_pending_seconds",
                "Age of the oldest notice not yet sent",
                lambda: backlog(self.engine).oldest_age_s,
            ),
            (
                "roadwatch_dispatcher_lag_seconds",
                "Age of the oldest report waiting to become a case",
                lambda: dispatcher_lag_s(self.engine),
            ),
            (
                "roadwatch_overdue_cases",
                "Open cases past their deadline",
                lambda: overdue_cases(self.engine),
            ),
        )
        for name, doc, fn in gauges:
            Gauge(name, doc, registry=registry).set_function(fn)
        return registry
