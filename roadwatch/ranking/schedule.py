"""The weekly schedule: publish each week once its contest window closes (Monday 08:00).

Only weeks that ended after roadwatch held its first report: a fresh install does not
freeze the week before it as an empty one.

Any number of processes may run it: a week is claimed with one conditional INSERT into
`ranking_jobs` (the primary key is the week), so exactly one process computes and
publishes it; a claim left by a process that died is taken over after `STALE`. A formula
file that stops loading is logged and the last good version is kept.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select, update

from ..store import models
from ..store.db import log_failed_pass
from .formula import Formula, FormulaError, load_formula
from .publish import JOBS, RANKINGS, Published, _insert, default_as_of, publish
from .week import Week

log = logging.getLogger(__name__)
STALE = dt.timedelta(hours=1)


def due_week(now: dt.datetime, tz: ZoneInfo, contest_hours: float) -> Week:
    """The latest week whose contest window has closed at `now`."""
    week = Week.containing(now, tz).previous()
    while default_as_of(week, contest_hours) > now:
        week = week.previous()
    return week


def claim(engine: Engine, week: str, who: str, now: dt.datetime) -> bool:
    with engine.begin() as conn:
        if conn.execute(select(RANKINGS.c.id).where(RANKINGS.c.week == week)).first():
            return False
        got = conn.execute(
            _insert(conn, JOBS)
            .values(week=week, claimed_by=who, claimed_at=now)
            .on_conflict_do_nothing(index_elements=["week"])
            .returning(JOBS.c.week)
        ).first()
        if got is not None:
            return True
        # a claim that never finished (its process died) may be taken over
        return (
            conn.execute(
                update(JOBS)
                .where(
                    JOBS.c.week == week,
                    JOBS.c.finished_at.is_(None),
                    JOBS.c.claimed_at < now - STALE,
                )
                .values(claimed_by=who, claimed_at=now)
            ).rowcount
            == 1
        )


class RankingScheduler:
    def __init__(
        self,
        engine: Engine,
        formula_path: str | Path | None,
        tz: ZoneInfo,
        contest_hours: float,
        deliver: Callable[[list[Any]], None],
        known_categories: frozenset[str] = frozenset(),
        interval: float = 60.0,
        clock: Callable[[], dt.datetime] = models.utcnow,
    ) -> None:
        self.engine, self.formula_path, self.tz = engine, formula_path or None, tz
        self.contest_hours, self.deliver, self.interval = contest_hours, deliver, interval
        self.known, self.clock = known_categories, clock
        self.who = f"{socket.gethostname()}:{os.getpid()}"
        self.formula: Formula = load_formula(self.formula_path, known_categories)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._waiting: str | None = None  # the week last skipped for want of any report
        self._collecting = False  # a report was seen before a due week's end

    def reload_formula(self) -> Formula:
        try:
            self.formula = load_formula(self.formula_path, self.known)
        except FormulaError as exc:
            log.error("ranking: formula refused (%s); keeping %s", exc, self.formula.version)
        return self.formula

    def run_once(self) -> Published | None:
        now = self.clock()
        week = due_week(now, self.tz, self.contest_hours)
        if not self._collecting_by(week):
            return None
        if not claim(self.engine, week.label, self.who, now):
            return None
        formula = self.reload_formula()
        outcome = "error"
        try:
            result = publish(
                self.engine,
                formula,
                week,
                default_as_of(week, self.contest_hours),
                f"schedule@{self.who}"[:64],
                now,
            )
            outcome = "published" if result.created else "already published"
            log.info("ranking: %s %s (%s)", week.label, outcome, result.content_sha256[:12])
            self.deliver(result.events)
            return result
        finally:
            with self.engine.begin() as conn:
                conn.execute(
                    update(JOBS)
                    .where(JOBS.c.week == week.label)
                    .values(finished_at=self.clock(), outcome=outcome)
                )

    def _collecting_by(self, week: Week) -> bool:
        """Whether any report was observed before the week's end. A week that ended before
        roadwatch held a single report (a fresh install, a city not yet on it) is not a
        quiet week to freeze as such: it waits, and `roadwatch rank --week … --publish`
        can still publish it, e.g. once older reports have been imported."""
        if self._collecting:  # later weeks end later: no need to ask again
            return True
        with self.engine.connect() as conn:
            seen = conn.execute(
                select(models.Report.id).where(models.Report.observed_at < week.end).limit(1)
            ).first()
        self._collecting = seen is not None
        if not self._collecting and self._waiting != week.label:
            self._waiting = week.label  # said once per week, not every minute
            log.info(
                "ranking: %s not published: no report was observed before it ended", week.label
            )
        return self._collecting

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ranking-schedule", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.run_once()
            except Exception as exc:  # the database may be away; try again next time
                log_failed_pass(log, "ranking: scheduled run", exc, "trying again later")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
