"""The notice outbox (issue 18 scope 5) and `roadwatch jobs` (scope 2), with a private
Mosquitto (the project's configuration) and PostgreSQL; webhooks to a local HTTP receiver
(issue 19 scope 7, acceptance e).

* notices commit with their case change, or not at all;
* a crash between commit and publish loses none: `roadwatch jobs` started later sends them;
* SIGKILL of `jobs` may repeat only the notices in flight (claimed, not marked), counted;
  SIGTERM repeats none; every notice arrives;
* receivers (the simulator's lifecycle) drop a repeated notice id.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select

from roadwatch.cases.notifiers import NOTICE_ID_HEADER
from roadwatch.cases.outbox import OUTBOX, Routing, backlog, enqueue
from roadwatch.cases.workflow import Notice
from roadwatch.runtime import Runtime
from roadwatch.store import db
from tests.conftest import make_settings
from tests.support.mosquitto import MosquittoProcess, MqttTestClient

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent


# -- helpers -----------------------------------------------------------------------------
class Jobs:
    """A `roadwatch jobs` process of this test, with its log and health port."""

    def __init__(self, tmp: Path, env: dict[str, str], name: str) -> None:
        self.log_path = tmp / f"{name}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "roadwatch.cli", "jobs", "--health-port", "0"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while not (m := re.search(r"on 127\.0\.0\.1:(\d+)", self.log())):
            assert self.proc.poll() is None, self.log()
            assert time.monotonic() < deadline, "jobs did not start\n" + self.log()
            time.sleep(0.05)
        self.health_port = int(m.group(1))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def health(self) -> tuple[int, dict[str, Any]]:
        url = f"http://127.0.0.1:{self.health_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.health_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return str(resp.read().decode())

    def term(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(40)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


def jobs_env(url: str, broker: MosquittoProcess, root: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "ROADWATCH_DATABASE_URL": url,
        "ROADWATCH_MQTT_URL": broker.url,
        "ROADWATCH_MQTT_TOPIC_ROOT": root,
        "ROADWATCH_MQTT_CLIENT_ID": f"jobs-{uuid.uuid4().hex[:6]}",
        "ROADWATCH_EMBEDDED_BROKER": "never",
        "ROADWATCH_SOCKETIO_QUEUE": "",
        **extra,
    }


class NoticeCounter:
    """Subscribes to every person's notices; counts each notice id received."""

    def __init__(self, broker: MosquittoProcess, root: str) -> None:
        self.seen: collections.Counter[str] = collections.Counter()
        self.bodies: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.client = MqttTestClient(broker.host, broker.port, f"count-{uuid.uuid4().hex[:6]}")
        self.client.client.on_message = self._on_message
        self.client.connect()
        self.client.subscribe(f"{root}/notices/+", qos=1)

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        body = json.loads(msg.payload)
        with self._lock:
            self.seen[body["notice_id"]] += 1
            self.bodies[body["notice_id"]] = {**body, "_topic": msg.topic}

    def distinct(self) -> int:
        with self._lock:
            return len(self.seen)

    def close(self) -> None:
        self.client.disconnect()


def wait_for(what: Callable[[], bool], timeout: float, message: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, message()
        time.sleep(0.02)


def add_notices(url: str, n: int, routing: Routing, *, people: int = 50) -> list[str]:
    """Commit n notices to the outbox (as a case change would); returns their ids."""
    engine = create_engine(url)
    now = dt.datetime.now(dt.UTC)
    try:
        with engine.begin() as conn:
            enqueue(
                conn,
                [
                    Notice(
                        f"chief-{i % people}",
                        {"v": 1, "kind": "dispatch", "case_id": str(uuid.uuid4()), "seq": i},
                    )
                    for i in range(n)
                ],
                now,
                routing,
            )
            ids = conn.execute(
                select(OUTBOX.c.notice_id).where(OUTBOX.c.created_at == now).distinct()
            ).scalars()
            return list(ids)
    finally:
        engine.dispose()


def outbox_state(url: str) -> tuple[set[str], set[str]]:
    """(sent ids, claimed but unmarked ids = in flight)."""
    engine = create_engine(url)
    o = OUTBOX.c
    try:
        with engine.connect() as conn:
            sent = set(conn.execute(select(o.notice_id).where(o.sent_at.is_not(None))).scalars())
            flying = set(
                conn.execute(
                    select(o.notice_id).where(o.sent_at.is_(None), o.attempts > 0)
                ).scalars()
            )
        return sent, flying
    finally:
        engine.dispose()


def pending(url: str) -> int:
    engine = create_engine(url)
    try:
        return backlog(engine).pending
    finally:
        engine.dispose()


@pytest.fixture
def migrated_pg(fresh_pg: str) -> str:
    engine = db.make_engine(fresh_pg)
    db.upgrade(engine)
    engine.dispose()
    return fresh_pg


# -- the same transaction ------------------------------------------------------------------
def test_notices_commit_with_the_case_change_or_not_at_all(migrated_pg: str) -> None:
    engine = create_engine(migrated_pg)
    now = dt.datetime.now(dt.UTC)
    notice = Notice("chief-1", {"v": 1, "kind": "dispatch", "case_id": "c1"})
    with pytest.raises(RuntimeError), engine.begin() as conn:
        enqueue(conn, [notice], now, Routing())
        raise RuntimeError("the case change fails after the notice was written")
    assert backlog(engine).pending == 0
    with engine.begin() as conn:
        enqueue(conn, [notice], now, Routing(webhook_url="http://127.0.0.1:9/robot"))
    with engine.connect() as conn:
        rows = conn.execute(select(OUTBOX)).all()
    # one notice, two channels, one id, in the payload too
    assert sorted(r.channel for r in rows) == ["mqtt", "webhook"]
    assert len({r.notice_id for r in rows}) == 1
    assert all(r.body["notice_id"] == r.notice_id and r.sent_at is None for r in rows)
    engine.dispose()


# -- a crash between commit and publish ------------------------------------------------------
def test_dispatch_notices_committed_without_a_publisher_are_sent_by_jobs_later(
    tmp_path: Path, fresh_pg: str, network_ctx: Any
) -> None:
    """Cases dispatched by a process that never published (it died after the commit):
    `roadwatch jobs` started afterwards sends every dispatch notice, with its id; then it
    dispatches reports another process stored, and notifies those chiefs too."""
    from roadwatch.categories import load_categories
    from roadwatch.ingest.messages import Inbound
    from tests.support.examples import contract_example

    root = f"ob{uuid.uuid4().hex[:6]}/v1"

    def reports(codes: list[str]) -> list[Inbound]:
        now = dt.datetime.now(dt.UTC)
        out = []
        for code in codes:  # one case per category on the same spot
            body = contract_example(category=code)
            out.append(
                Inbound(
                    transport="mqtt",
                    kind="report",
                    payload=json.dumps(body).encode(),
                    received_at=now,
                    topic=f"roadwatch/v1/reports/{body['reporter_id']}",
                    topic_reporter=body["reporter_id"],
                )
            )
        return out

    codes = sorted(load_categories().codes)
    with MosquittoProcess(tmp_path) as broker:
        rt = Runtime.build(
            make_settings(tmp_path, database_url=fresh_pg, mqtt_url=broker.url),
            ctx=network_ctx,
        )
        counter = NoticeCounter(broker, root)
        engine = create_engine(fresh_pg)
        jobs = None
        try:
            # dispatched inline and committed, and nothing sent: as if the process died
            outs = rt.pipeline.process(reports(codes[:8]))
            dispatched = {o.id for o in outs if o.case_status == "dispatched"}
            assert len(dispatched) == 8
            assert backlog(rt.engine).pending == 8
            jobs = Jobs(tmp_path, jobs_env(fresh_pg, broker, root), "jobs")
            wait_for(lambda: counter.distinct() == 8, 30, jobs.log)
            # marked sent just after the PUBACK, so a moment after the subscriber has them
            wait_for(lambda: backlog(engine).pending == 0, 10, jobs.log)

            # Now reports stored by an ingest process that leaves dispatching to `jobs`:
            rt.pipeline.on_stored = lambda: None
            later = rt.pipeline.process(reports(codes[8:11]))
            assert {o.case_status for o in later} == {"new"}
            dispatched |= {o.id for o in later}
            wait_for(lambda: counter.distinct() == 11, 30, jobs.log)
            wait_for(lambda: backlog(engine).pending == 0, 10, jobs.log)

            status, health = jobs.health()
            assert status == 200, health
            assert set(health["checks"]) >= {"dispatcher", "case_clock", "outbox", "broker"}
            assert health["checks"]["outbox_backlog"]["pending"] == 0
            metrics = jobs.metrics()
            for gauge in (
                "roadwatch_outbox_pending 0.0",
                "roadwatch_dispatcher_lag_seconds 0.0",
                "roadwatch_overdue_cases 0.0",
            ):
                assert gauge in metrics
        finally:
            if jobs is not None:
                assert jobs.term() == 0, jobs.log()
            counter.close()
            engine.dispose()
            rt.stop()
    assert {b["case_id"] for b in counter.bodies.values()} == dispatched
    assert all(b["kind"] == "dispatch" for b in counter.bodies.values())
    assert set(counter.seen.values()) == {1}


# -- SIGKILL and SIGTERM restarts -----------------------------------------------------------
def test_sigkill_repeats_only_notices_in_flight_and_sigterm_none(
    tmp_path: Path, migrated_pg: str
) -> None:
    n = 4000
    root = f"ob{uuid.uuid4().hex[:6]}/v1"
    with MosquittoProcess(tmp_path) as broker:
        counter = NoticeCounter(broker, root)
        env = jobs_env(migrated_pg, broker, root)
        ids = add_notices(migrated_pg, n, Routing())
        assert len(ids) == n
        try:
            first = Jobs(tmp_path, env, "jobs-1")
            wait_for(lambda: counter.distinct() >= 1000, 60, first.log)
            first.kill()
            sent1, in_flight = outbox_state(migrated_pg)
            received1 = set(counter.seen)
            # marked sent ⊆ received: a row is marked only after the broker's PUBACK
            assert sent1 <= received1

            second = Jobs(tmp_path, env, "jobs-2")
            wait_for(lambda: counter.distinct() >= min(len(received1) + 500, n), 60, second.log)
            assert second.term() == 0, second.log()
            sent2, flying2 = outbox_state(migrated_pg)
            assert not (flying2 - in_flight), "SIGTERM left notices claimed but unmarked"

            more = add_notices(migrated_pg, 300, Routing())  # a backlog for the third
            third = Jobs(tmp_path, env, "jobs-3")
            wait_for(lambda: counter.distinct() == n + len(more), 90, third.log)
            wait_for(lambda: pending(migrated_pg) == 0, 30, third.log)
            assert third.term() == 0, third.log()
            time.sleep(0.5)  # a late duplicate would arrive now
        finally:
            counter.close()
    repeated = {i for i, c in counter.seen.items() if c > 1}
    print(
        f"\nSIGKILL: {len(in_flight)} notices in flight, {len(repeated)} repeated; "
        f"{len(sent1)} marked sent before it; SIGTERM repeats: {len(repeated - in_flight)}"
    )
    assert set(counter.seen) == set(ids) | set(more)  # every notice arrived
    assert repeated <= in_flight  # only those in flight at the SIGKILL came twice
    assert not repeated & sent1  # a notice marked sent is never sent again


# -- webhooks (issue 19 acceptance e) --------------------------------------------------------
@contextmanager
def robot_receiver(fail_first: int = 0, delay_s: float = 0.0) -> Iterator[dict[str, Any]]:
    """A local stand-in for a WeCom group robot: records each POST by its notice id.

    The first `fail_first` distinct notices are answered 500 once (retried by the outbox)."""
    state: dict[str, Any] = {"got": collections.Counter(), "bodies": {}, "failed": set()}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            data = self.rfile.read(int(self.headers["Content-Length"]))
            nid = self.headers[NOTICE_ID_HEADER]
            time.sleep(delay_s)
            with lock:
                if len(state["failed"]) < fail_first and nid not in state["failed"]:
                    state["failed"].add(nid)
                    self.send_response(500)
                    self.end_headers()
                    return
                state["got"][nid] += 1
                state["bodies"][nid] = json.loads(data)
            answer = b'{"errcode":0,"errmsg":"ok"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}/cgi-bin/webhook/send?key=test"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def test_webhook_notices_arrive_across_jobs_restarts(tmp_path: Path, migrated_pg: str) -> None:
    root = f"ob{uuid.uuid4().hex[:6]}/v1"
    with MosquittoProcess(tmp_path) as broker, robot_receiver(fail_first=5, delay_s=0.01) as robot:
        got: collections.Counter[str] = robot["got"]
        routing = Routing(channels=(), webhook_url=robot["url"])
        env = jobs_env(migrated_pg, broker, root, ROADWATCH_NOTIFY_WEBHOOK_URL=robot["url"])
        ids = add_notices(migrated_pg, 400, routing)

        first = Jobs(tmp_path, env, "jobs-1")
        wait_for(lambda: len(got) >= 50, 60, first.log)
        first.kill()  # with a pending backlog
        left = pending(migrated_pg)
        assert left > 0
        _, in_flight = outbox_state(migrated_pg)

        second = Jobs(tmp_path, env, "jobs-2")
        wait_for(lambda: len(got) >= 250, 60, second.log)
        assert second.term() == 0, second.log()
        before_term = collections.Counter(got)

        third = Jobs(tmp_path, env, "jobs-3")
        wait_for(lambda: len(got) == len(ids), 90, third.log)
        wait_for(lambda: pending(migrated_pg) == 0, 30, third.log)
        assert third.term() == 0, third.log()
    assert set(got) == set(ids)  # every webhook notice arrived, recognisable by its id
    assert len(robot["failed"]) == 5  # those were answered 500 once and retried
    repeated = {i for i, c in got.items() if c > 1}
    print(
        f"\nwebhook: {left} pending at SIGKILL, {len(in_flight)} in flight, "
        f"{len(repeated)} repeated"
    )
    assert repeated <= in_flight
    # across the SIGTERM restart: nothing sent before it was sent again after it
    assert all(got[i] == c for i, c in before_term.items() if i not in in_flight)
    sample = next(iter(robot["bodies"].items()))
    assert sample[1]["msgtype"] == "markdown"
    assert f"notice_id: {sample[0]}" in sample[1]["markdown"]["content"]


# -- receivers drop a repeated id ------------------------------------------------------------
def test_the_simulated_chief_acts_once_on_a_repeated_notice(network_ctx: Any) -> None:
    import random

    from roadwatch.demo.lifecycle import Lifecycle

    planned: list[str] = []
    life = Lifecycle(network_ctx.network, random.Random(1))
    life._dispatched = lambda chief, notice: planned.append(notice["case_id"])  # type: ignore[method-assign]
    notice = {"v": 1, "kind": "dispatch", "case_id": "c-1", "due_at": None, "notice_id": "n-1"}
    for _ in range(3):
        life.on_message("roadwatch/v1/notices/chief-1", json.dumps(notice).encode())
    life.on_message(
        "roadwatch/v1/notices/chief-1",
        json.dumps({**notice, "case_id": "c-2", "notice_id": "n-2"}).encode(),
    )
    assert planned == ["c-1", "c-2"] and life.notices.repeats == 2


def test_outbox_gauges_count_what_is_pending(migrated_pg: str) -> None:
    engine = create_engine(migrated_pg)
    add_notices(migrated_pg, 7, Routing())
    b = backlog(engine)
    assert b.pending == 7 and b.oldest_age_s >= 0
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(OUTBOX)).scalar() == 7
    engine.dispose()


def test_the_jobs_unit_runs_a_command_that_exists() -> None:
    """config/deploy's roadwatch-jobs.service starts `roadwatch jobs` with options the
    command accepts (systemd-analyze verify only checks that the program exists)."""
    import shlex

    import click

    from roadwatch.cli import main

    unit = ROOT / "config" / "deploy" / "systemd" / "roadwatch-jobs.service"
    (exec_start,) = re.findall(r"^ExecStart=(.+)$", unit.read_text(encoding="utf-8"), re.M)
    program, *args = shlex.split(exec_start)
    assert program.endswith("/roadwatch") and args[0] == "jobs"
    command = main.commands["jobs"]
    ctx = command.make_context("jobs", args[1:])  # raises on an unknown option or bad value
    assert ctx.params["health_port"] == 9102
    with pytest.raises(click.UsageError):
        command.make_context("jobs", ["--health-port", "x"])


def test_routing_and_the_robots_formats(tmp_path: Path) -> None:
    from roadwatch.cases.notifiers import OutboxItem, webhook_payload
    from roadwatch.settings import SettingsError

    settings = make_settings(
        tmp_path,
        notify_webhook_url="https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=all",
        notify_webhook_district_urls="JS=https://oapi.dingtalk.com/robot/send?access_token=js",
    )
    routing = Routing.from_settings(settings)
    assert routing.webhook_for("JS") == "https://oapi.dingtalk.com/robot/send?access_token=js"
    assert routing.webhook_for("EQ") == routing.webhook_for(None) == settings.notify_webhook_url
    assert routing.channels_for("JS") == ["mqtt", "webhook"]
    assert Routing().channels_for("JS") == ["mqtt"]  # no URL: the app only
    only_js = Routing(webhook_by_district={"JS": "http://x/robot"})
    assert only_js.channels_for("EQ") == ["mqtt"] and only_js.channels_for("JS")[-1] == "webhook"
    with pytest.raises((SettingsError, ValueError)):
        make_settings(tmp_path, notify_webhook_url="ftp://nowhere")

    body = {"v": 1, "kind": "escalation", "case_id": "c-9", "level": 2, "notice_id": "n-9"}
    item = OutboxItem("n-9", "webhook", "chief-1", "JS", body, 1)
    wecom = webhook_payload(item, "wecom")
    assert wecom["msgtype"] == "markdown" and set(wecom["markdown"]) == {"content"}
    assert "notice_id: n-9" in wecom["markdown"]["content"]
    assert "案件升级" in wecom["markdown"]["content"] and "c-9" in wecom["markdown"]["content"]
    ding = webhook_payload(item, "dingtalk")
    assert set(ding["markdown"]) == {"title", "text"} and "n-9" in ding["markdown"]["text"]


def test_backoff_doubles_up_to_five_minutes() -> None:
    from roadwatch.cases.outbox import backoff

    assert [backoff(a).total_seconds() for a in (1, 2, 3, 4)] == [1, 2, 4, 8]
    assert backoff(40).total_seconds() == 300


def test_broker_outage_notices_wait_and_health_says_so(tmp_path: Path, migrated_pg: str) -> None:
    """Mosquitto stops: `jobs` reports the broker unhealthy (503), the notices committed
    meanwhile stay pending and are retried; after the restart every one arrives, once."""
    root = f"ob{uuid.uuid4().hex[:6]}/v1"
    with MosquittoProcess(tmp_path) as broker:
        jobs = Jobs(tmp_path, jobs_env(migrated_pg, broker, root), "jobs")
        try:
            wait_for(lambda: jobs.health()[0] == 200, 30, jobs.log)
            broker.stop()
            t0 = time.monotonic()
            wait_for(lambda: jobs.health()[0] == 503, 30, jobs.log)
            status, body = jobs.health()
            assert not body["checks"]["broker"]["ok"] and body["checks"]["database"]["ok"]
            ids = add_notices(migrated_pg, 50, Routing())
            time.sleep(3)  # tried and failed at least once meanwhile
            assert pending(migrated_pg) == 50
            broker.start()
            counter = NoticeCounter(broker, root)
            wait_for(lambda: counter.distinct() == 50, 60, jobs.log)
            wait_for(lambda: jobs.health()[0] == 200, 30, jobs.log)
            print(f"\nbroker outage: healthy again {time.monotonic() - t0:.1f} s after the stop")
            time.sleep(0.5)
            counter.close()
        finally:
            assert jobs.term() == 0, jobs.log()
    assert set(counter.seen) == set(ids) and set(counter.seen.values()) == {1}
    engine = create_engine(migrated_pg)
    with engine.connect() as conn:
        tries = conn.execute(select(func.max(OUTBOX.c.attempts))).scalar()
        errors = set(conn.execute(select(OUTBOX.c.last_error)).scalars())
    engine.dispose()
    assert tries is not None and tries >= 2  # retried after failing while the broker was away
    assert errors == {None}  # cleared once sent


def test_two_publishers_with_a_slow_robot_send_each_notice_once(migrated_pg: str) -> None:
    """Two publishers (two `jobs` processes) share the outbox: each row is claimed by one
    (SKIP LOCKED + lease). A robot answering slowly must not let a lease run out under a
    publisher: it sends for half the lease, then gives the rest back."""
    from roadwatch.cases.notifiers import WebhookNotifier
    from roadwatch.cases.outbox import OutboxPublisher

    with robot_receiver(delay_s=0.3) as robot:
        routing = Routing(channels=(), webhook_url=robot["url"])
        ids = add_notices(migrated_pg, 40, routing)
        engines = [create_engine(migrated_pg) for _ in range(2)]
        pubs = [
            OutboxPublisher(e, [WebhookNotifier(routing.webhook_for)], poll_s=0.2).start()
            for e in engines
        ]
        try:
            wait_for(lambda: len(robot["got"]) == len(ids), 60, lambda: str(robot["got"]))
            wait_for(lambda: pending(migrated_pg) == 0, 10, lambda: "rows left pending")
        finally:
            for p in pubs:
                p.stop()
            for e in engines:
                e.dispose()
    assert set(robot["got"]) == set(ids) and set(robot["got"].values()) == {1}
    assert all(p.sent > 0 for p in pubs)  # both took a share
    assert sum(p.sent for p in pubs) == len(ids)


def test_a_database_outage_between_send_and_mark_repeats_no_notice(migrated_pg: str) -> None:
    """The broker confirmed a pass's notices, then the database went away before they were
    marked sent (a PostgreSQL restart, issue 18 acceptance b). Once it is back and their
    lease has run out, they are marked, not claimed and sent again."""
    from sqlalchemy.exc import OperationalError

    from roadwatch.cases.notifiers import Finished, OutboxItem
    from roadwatch.cases.outbox import LEASE, OutboxPublisher

    class Recorder:
        channel = "mqtt"

        def __init__(self) -> None:
            self.sent: collections.Counter[str] = collections.Counter()

        def start(self) -> None: ...

        def connected(self) -> bool:
            return True

        def send(self, item: OutboxItem) -> Finished:
            self.sent[item.notice_id] += 1
            return Finished(None)  # confirmed at once, as by a PUBACK

        def close(self) -> None: ...

    class Restarting:
        """The engine, except that `begin` fails while `down` (the server is away)."""

        def __init__(self, engine: Any) -> None:
            self.engine, self.down = engine, False

        def begin(self) -> Any:
            if self.down:
                raise OperationalError("UPDATE notice_outbox", {}, Exception("server restarting"))
            return self.engine.begin()

        def __getattr__(self, name: str) -> Any:
            return getattr(self.engine, name)

    ids = add_notices(migrated_pg, 30, Routing())
    engine = create_engine(migrated_pg)
    flaky = Restarting(engine)
    now = [dt.datetime.now(dt.UTC)]
    recorder = Recorder()
    pub = OutboxPublisher(flaky, [recorder], ack_wait_s=0, clock=lambda: now[0])  # type: ignore[arg-type]
    real_settle = pub._settle

    def settle_during_restart(wait_s: float) -> None:
        flaky.down = True  # the database goes away after the sends were confirmed
        try:
            real_settle(wait_s)
        finally:
            flaky.down = False

    pub._settle = settle_during_restart  # type: ignore[method-assign]
    with pytest.raises(OperationalError):
        pub.run_once()
    pub._settle = real_settle  # type: ignore[method-assign]
    assert set(recorder.sent) == set(ids) and pending(migrated_pg) == len(ids)
    now[0] += LEASE * 2  # the database is back and the pass's lease has run out
    pub.run_once()
    assert pending(migrated_pg) == 0
    assert set(recorder.sent.values()) == {1}, "notices sent again after the outage"
    assert pub.sent == len(ids)
    engine.dispose()


def test_a_second_jobs_role_keeps_both_connected(tmp_path: Path, migrated_pg: str) -> None:
    """docs/deploy.md: a second `roadwatch jobs` (by mistake, or during an upgrade) doubles
    nothing. Both connected for notices with the same client id (`<client id>-outbox`), so
    the broker closed one whenever the other connected: they took the id from each other
    every second, for ever, both /healthz 503 "mqtt not reachable" and notices stalled."""
    root = f"ob{uuid.uuid4().hex[:6]}/v1"
    with MosquittoProcess(tmp_path) as broker:
        env = jobs_env(migrated_pg, broker, root)
        first = Jobs(tmp_path, env, "jobs-a")
        second = Jobs(tmp_path, env, "jobs-b")
        try:
            for jobs in (first, second):
                wait_for(lambda j=jobs: j.health()[0] == 200, 30, jobs.log)  # type: ignore[misc]
            counter = NoticeCounter(broker, root)
            ids = add_notices(migrated_pg, 40, Routing())
            wait_for(lambda: counter.distinct() == 40, 60, first.log)
            # Still both connected a few seconds on (the takeover came within a second).
            time.sleep(3)
            assert first.health()[0] == 200, first.health()
            assert second.health()[0] == 200, second.health()
            counter.close()
        finally:
            assert first.term() == 0, first.log()
            assert second.term() == 0, second.log()
    assert set(counter.seen) == set(ids) and set(counter.seen.values()) == {1}
