"""Issue 18 scope 4: supervision and health.

* database timeouts: a statement past ROADWATCH_DB_STATEMENT_TIMEOUT_MS fails (PostgreSQL,
  and SQLite waiting for a lock); a server that accepts but never answers fails the connect
  after the connect timeout, and the health check fails within its own deadline;
* `/healthz` names the unhealthy part: Redis when configured, MQTT ingest that cannot
  make progress (messages wait, nothing committed), case jobs not running;
* the backlog gauges in `/metrics`;
* a dead case child process is restarted (with backoff) and health says so meanwhile.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import text, update
from sqlalchemy.exc import OperationalError

from roadwatch.health import (
    Health,
    add_runtime_checks,
    case_jobs_check,
    database_check,
    ingest_check,
)
from roadwatch.store import db, models
from tests.conftest import make_settings
from tests.support.mosquitto import free_port


# -- database timeouts -------------------------------------------------------------------
@pytest.mark.integration
def test_postgresql_statement_timeout_cancels_a_long_statement(pg_database: str) -> None:
    engine = db.make_engine(pg_database, connect_timeout_s=3, statement_timeout_ms=300)
    try:
        with engine.connect() as conn:
            assert conn.scalar(text("SHOW statement_timeout")) == "300ms"
            t0 = time.monotonic()
            with pytest.raises(OperationalError, match="statement timeout"):
                conn.execute(text("SELECT pg_sleep(5)"))
            assert time.monotonic() - t0 < 2
    finally:
        engine.dispose()


def test_sqlite_waits_for_a_lock_only_as_long_as_the_statement_timeout(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lock.sqlite3'}"
    holder = db.make_engine(url)
    waiter = db.make_engine(url, statement_timeout_ms=300)
    try:
        with holder.connect() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
            conn.commit()
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock, held
            conn.execute(text("INSERT INTO t VALUES (1)"))
            t0 = time.monotonic()
            with pytest.raises(OperationalError, match="locked"), waiter.begin() as other:
                other.execute(text("INSERT INTO t VALUES (2)"))
            waited = time.monotonic() - t0
            conn.rollback()
        assert 0.25 < waited < 2, waited
    finally:
        holder.dispose()
        waiter.dispose()


class HungServer:
    """A TCP port that accepts connections and never says a word (a hung database)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)  # the kernel completes handshakes; nobody reads
        self.port = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()


def test_a_hung_database_fails_connect_and_health_instead_of_blocking() -> None:
    hung = HungServer()
    engine = db.make_engine(
        f"postgresql://rw@127.0.0.1:{hung.port}/rw", connect_timeout_s=2, statement_timeout_ms=500
    )
    try:
        check = database_check(engine, deadline_s=0.5)
        t0 = time.monotonic()
        first = check()
        assert time.monotonic() - t0 < 1.5
        assert not first.ok and "no answer within 0.5 s" in first.detail["error"]
        # while that query still waits, the next check fails at once without another thread
        t0 = time.monotonic()
        second = check()
        assert time.monotonic() - t0 < 0.2
        assert not second.ok and "still waiting" in second.detail["error"]
        # and the connect itself gives up after the connect timeout (2 s), not never
        t0 = time.monotonic()
        with pytest.raises(OperationalError), engine.connect():
            pass
        assert time.monotonic() - t0 < 6
    finally:
        engine.dispose()
        hung.close()


# -- what /healthz names -----------------------------------------------------------------
class StubIngest:
    def __init__(self) -> None:
        self.queued = 0
        self.busy_since: float | None = None
        self.last_commit = time.monotonic()
        self.worker_alive = True
        self.connected = threading.Event()
        self.connected.set()
        self.subscribed = threading.Event()
        self.subscribed.set()


def test_ingest_check_fails_when_messages_wait_and_nothing_commits() -> None:
    mqtt = StubIngest()
    check = ingest_check(mqtt, stall_s=1.0)
    assert check().ok
    # idle for long: healthy (nothing waits)
    mqtt.last_commit -= 100
    assert check().ok
    # messages waiting and no commit for 100 s: cannot make progress
    mqtt.queued = 5
    result = check()
    assert not result.ok and "nothing committed" in result.detail["error"]
    assert result.detail["queued"] == 5
    # a batch in hand for long (database hung), the queue empty: also stuck
    mqtt.queued, mqtt.busy_since = 0, time.monotonic() - 50
    assert not check().ok
    # committed just now: healthy again
    mqtt.last_commit, mqtt.busy_since = time.monotonic(), None
    assert check().ok
    mqtt.worker_alive = False
    assert check().detail["error"] == "the ingest thread is not running"


def test_case_jobs_check_names_the_dead_thread() -> None:
    done = threading.Event()
    alive = threading.Thread(target=done.wait)
    alive.start()
    try:
        rt = SimpleNamespace(
            case_process=None,
            clock=SimpleNamespace(thread=alive),
            pipeline=SimpleNamespace(dispatcher=SimpleNamespace(thread=None)),
        )
        result = case_jobs_check(rt)
        assert not result.ok and result.detail["error"] == "not running: dispatcher"
        rt.pipeline.dispatcher.thread = alive
        assert case_jobs_check(rt).ok
    finally:
        done.set()
        alive.join()


def test_healthz_names_redis_when_it_is_configured_and_down(
    tmp_path: Path, network_ctx: Any
) -> None:
    from roadwatch.runtime import Runtime
    from roadwatch.web import create_app

    closed = free_port()  # nothing listens here
    settings = make_settings(
        tmp_path,
        socketio_queue=f"redis://127.0.0.1:{closed}/0",
        rate_limit_storage="memory://",
    )
    rt = Runtime.build(settings, ctx=network_ctx)
    try:
        app, _sio = create_app(rt)
        r = app.test_client().get("/healthz")  # from loopback: details
        assert r.status_code == 503
        checks = r.get_json()["checks"]
        assert checks["redis"] == {"ok": False, "error": "ConnectionError"}
        assert checks["database"] == {"ok": True}
        assert "ingest" not in checks  # no MQTT session in this process
    finally:
        rt.stop()


def test_jobs_healthz_names_redis_when_it_is_configured_and_down(tmp_path: Path) -> None:
    """`roadwatch jobs` sends the live events of case changes (dispatched, overdue…) through
    the Socket.IO queue: with Redis down they are lost on the way, so its /healthz says so,
    as the web and worker roles' do (found in the operations audit: it stayed 200)."""
    from roadwatch.jobs import Jobs

    closed = free_port()  # nothing listens here
    settings = make_settings(tmp_path, socketio_queue=f"redis://127.0.0.1:{closed}/0")
    jobs = Jobs(settings)
    try:
        ok, checks = jobs.health.report()
        assert not ok
        assert checks["redis"] == {"ok": False, "error": "ConnectionError"}
        assert checks["database"] == {"ok": True}
        without = Jobs(make_settings(tmp_path), migrate=False)
        try:
            assert "redis" not in without.health.report()[1]
        finally:
            without.engine.dispose()
    finally:
        jobs.engine.dispose()


# -- gauges --------------------------------------------------------------------------------
def _gauge(text_: str, name: str) -> float:
    for line in text_.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics:\n{text_}")


def test_backlog_gauges_in_metrics(runtime: Any, client: Any) -> None:
    from tests.test_cases import FRIDAY_1630, report

    names = (
        "roadwatch_overdue_cases",
        "roadwatch_dispatcher_lag_seconds",
        "roadwatch_ingest_queue_depth",
        "roadwatch_event_log_lag_events",
    )
    before = client.get("/metrics").get_data(as_text=True)
    assert [_gauge(before, n) for n in names] == [0, 0, 0, 0]
    try:
        # a case dispatched on 20 Nov 2026 with a deadline days later, now long past
        out, _body = report(runtime, FRIDAY_1630, category="E0102")
        assert out.case_status == "dispatched"
        # and a report waiting for the dispatcher for ten minutes
        _out2, body2 = report(runtime, FRIDAY_1630, category="E0102", segment_id=None)
        with runtime.sessions.begin() as s:
            s.execute(
                update(models.Report)
                .where(models.Report.id == body2["report_id"])
                .values(
                    case_status="new",
                    received_at=models.utcnow() - dt.timedelta(minutes=10),
                    due_at=None,
                )
            )
        after = client.get("/metrics").get_data(as_text=True)
        assert _gauge(after, "roadwatch_overdue_cases") == 1
        assert 595 < _gauge(after, "roadwatch_dispatcher_lag_seconds") < 700
    finally:
        runtime.pipeline.clock = models.utcnow


# -- supervision of the case child process -------------------------------------------------
@pytest.mark.integration
def test_a_killed_case_process_is_restarted_and_health_says_so_meanwhile(
    tmp_path: Path,
) -> None:
    from roadwatch.cases.service import CaseProcess

    settings = make_settings(tmp_path, mqtt_url=f"mqtt://127.0.0.1:{free_port()}")
    engine = db.engine_for(settings)
    db.upgrade(engine)
    engine.dispose()
    proc = CaseProcess(settings.model_dump())
    proc.start()
    rt = SimpleNamespace(case_process=proc)
    try:
        assert case_jobs_check(rt).ok
        first = proc.process.pid
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while proc.alive and time.monotonic() < deadline:
            time.sleep(0.05)
        down = case_jobs_check(rt)
        assert not down.ok and down.detail["process"] == "down"
        # back after the first backoff (1 s) plus a spawn
        t0 = time.monotonic()
        while not (proc.alive and proc.restarts == 1) and time.monotonic() - t0 < 30:
            time.sleep(0.1)
        assert proc.alive and proc.restarts == 1 and proc.process.pid != first
        assert case_jobs_check(rt).ok
        print(f"case process back in {time.monotonic() - t0:.1f} s")
    finally:
        proc.stop()
    assert not proc.alive


def test_add_runtime_checks_of_a_process_without_mqtt_or_redis(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    rt = SimpleNamespace(
        engine=engine,
        settings=SimpleNamespace(socketio_queue="", rate_limit_storage=""),
        mqtt=None,
    )
    try:
        ok, checks = add_runtime_checks(Health("web"), rt).report()
        assert ok and checks == {"database": {"ok": True}}
    finally:
        engine.dispose()


# -- found in the operations audit -----------------------------------------------------------
def test_job_threads_say_the_database_is_away_in_one_line_not_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """While PostgreSQL is down the dispatcher and the outbox of `roadwatch jobs` fail a pass
    every second each; each failure used to log a ~100-line traceback (2,400 lines in a 12 s
    outage). Now one plain line names the cause; a traceback stays for real bugs."""
    from roadwatch.cases.calendar import load_sla
    from roadwatch.cases.dispatcher import Dispatcher

    away = db.make_engine(
        f"postgresql://nobody@127.0.0.1:{free_port()}/none", connect_timeout_s=2
    )  # nothing listens there: connection refused, as in the outage
    d = Dispatcher(away, load_sla(), lambda _e, _n: None, poll_s=0.1)
    caplog.set_level("ERROR", logger="roadwatch.cases.dispatcher")
    d.start()
    try:
        deadline = time.monotonic() + 10
        while not caplog.records and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        d.stop()
        away.dispose()
    assert caplog.records, "no failed pass was logged"
    for rec in caplog.records:
        assert rec.exc_info is None, rec.getMessage()
        line = rec.getMessage()
        assert line.startswith("dispatcher: a pass: the database is unavailable (")
        assert "refused" in line and "\n" not in line and line.endswith("; retrying in 1 s")

    caplog.clear()  # anything else is a bug: its traceback is kept
    db.log_failed_pass(logging.getLogger("x"), "x: a pass", ValueError("bug"), "retrying")
    assert caplog.records[0].exc_info is not None
