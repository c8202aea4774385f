"""Several ingest workers on one stream (issue 18, scope 3, acceptance c and the worker half of b).

Real `roadwatch worker` processes on a private Mosquitto (the project's configuration) and
PostgreSQL, sharing the stream through an MQTT 5 shared subscription:

* out of order: rectifications reach one worker while their reports wait in the other
  (stopped with SIGSTOP); they are parked and end in the same case state as in order;
* a few thousand QoS 1 reports, a share resent, each worker restarted with SIGTERM during
  the stream: exactly the distinct reports stored once, every one acked.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import create_engine, text

from bench.bench_ingest import make_payloads
from roadwatch.runtime import Runtime
from tests.conftest import PG_ADMIN_URL, make_settings, need_service
from tests.support.mosquitto import MosquittoProcess
from tests.support.workers import ROOT, Worker

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CST = dt.timezone(dt.timedelta(hours=8))


@contextlib.contextmanager
def database() -> Iterator[str]:
    need_service("PostgreSQL", "127.0.0.1", 5432)
    import psycopg

    name = f"rw_wk_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Phones:
    """Publishes as any reporter (anonymous test broker) and collects every ack by id."""

    def __init__(self, port: int, root: str) -> None:
        self.root = root
        self.acks: dict[str, list[dict[str, Any]]] = {}
        self.lock = threading.Lock()
        self.c = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"phones-{uuid.uuid4().hex[:6]}"
        )
        self.c.max_inflight_messages_set(100)
        self.c.max_queued_messages_set(0)
        self.c.on_message = self._on
        subscribed = threading.Event()
        self.c.on_subscribe = lambda *a: subscribed.set()
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        self.c.subscribe(f"{root}/acks/+", qos=1)
        assert subscribed.wait(5)

    def _on(self, _c: Any, _u: Any, m: mqtt.MQTTMessage) -> None:
        body = json.loads(m.payload)
        with self.lock:
            self.acks.setdefault(body["id"], []).append(body)

    def publish(self, word: str, reporter: str, body: bytes) -> mqtt.MQTTMessageInfo:
        return self.c.publish(f"{self.root}/{word}/{reporter}", body, qos=1)

    def wait_acks(self, ids: set[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                missing = ids - set(self.acks)
            if not missing:
                return
            time.sleep(0.1)
        raise AssertionError(
            f"{len(missing)} of {len(ids)} acks missing, e.g. {sorted(missing)[:3]}"
        )

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def start_publisher(
    port: int, root: str, count: int, ids_file: Path, rate: float, resent: float = 0.1
) -> subprocess.Popen[bytes]:
    """tests.support.publisher in its own process: `count` QoS 1 reports at `rate` a second,
    a share `resent` of them repeated byte for byte; the distinct ids go to `ids_file`."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.publisher",
            str(port),
            root,
            str(count),
            str(ids_file),
            "--rate",
            str(rate),
            "--repeat-share",
            str(resent),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )


def scalar(db_url: str, sql: str) -> Any:
    engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql)).scalar()
    finally:
        engine.dispose()


def wait_until(pred: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def case_state(db_url: str) -> dict[str, tuple[Any, ...]]:
    """Per report: its case status, assignee, and the steps of its history."""
    engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            steps: dict[str, list[str]] = {}
            for rid, to in conn.execute(
                text("SELECT report_id, to_status FROM report_transitions ORDER BY id")
            ):
                steps.setdefault(rid, []).append(to)
            return {
                rid: (status, assignee, tuple(steps.get(rid, ())))
                for rid, status, assignee in conn.execute(
                    text("SELECT id, case_status, assignee_id FROM reports")
                )
            }
    finally:
        engine.dispose()


def rectification(report_id: str, by: str) -> tuple[str, bytes]:
    rect_id = str(uuid.UUID(hashlib.md5(f"fix:{report_id}".encode()).hexdigest()))
    body = {
        "v": 1,
        "rectification_id": rect_id,
        "report_id": report_id,
        "reporter_id": by,
        "done_at": dt.datetime.now(CST).isoformat(timespec="seconds"),
        "note": "已整改",
        "photos": [hashlib.sha256(report_id.encode()).hexdigest()],
    }
    return rect_id, json.dumps(body, ensure_ascii=False).encode()


def jobs_stand_in(tmp_path: Path, db_url: str, broker_url: str, root: str, ctx: Any) -> Runtime:
    """Migrates the database and runs the dispatcher (what `roadwatch jobs` does) here."""
    rt = Runtime.build(
        make_settings(tmp_path, database_url=db_url, mqtt_url=broker_url, mqtt_topic_root=root),
        ctx=ctx,
    )
    rt.pipeline.dispatcher.start()
    return rt


def test_rectification_before_its_report_ends_as_in_order(tmp_path: Path, network_ctx: Any) -> None:
    n = 16
    reports = make_payloads(n, seed=18)
    report_ids = {rid for _r, rid, _b in reports}
    with MosquittoProcess(tmp_path) as broker, database() as in_order, database() as crossed:
        # 1. In order, one worker: reports, their dispatch, then the rectifications.
        root = f"ord{uuid.uuid4().hex[:6]}/v1"
        jobs = jobs_stand_in(tmp_path, in_order, broker.url, root, network_ctx)
        solo = Worker("solo", in_order, broker.port, root, tmp_path).start()
        phones = Phones(broker.port, root)
        try:
            solo.wait_ready()
            for reporter, _rid, body in reports:
                phones.publish("reports", reporter, body)
            phones.wait_acks(report_ids, 60)
            wait_until(
                lambda: (
                    scalar(in_order, "SELECT count(*) FROM reports WHERE case_status='new'") == 0
                ),
                60,
                "dispatch",
            )
            assignees = dict(
                (r, a) for r, (_s, a, _h) in case_state(in_order).items() if a is not None
            )
            assert len(assignees) >= n // 2, assignees
            fixes = {rid: rectification(rid, by) for rid, by in assignees.items()}
            for rid, (_fid, body) in fixes.items():
                phones.publish("rectifications", assignees[rid], body)
            phones.wait_acks({f for f, _b in fixes.values()}, 60)
            expected = case_state(in_order)
        finally:
            phones.close()
            assert solo.stop() == 0
            jobs.stop()
        assert sum(s == "rectified" for s, _a, _h in expected.values()) >= n // 2

        # 2. Crossed, two workers: A is stopped while the reports are published, so the
        # broker's share of them waits in A while B gets rectifications for them.
        root = f"crs{uuid.uuid4().hex[:6]}/v1"
        jobs = jobs_stand_in(tmp_path, crossed, broker.url, root, network_ctx)
        a = Worker("a", crossed, broker.port, root, tmp_path).start()
        b = Worker("b", crossed, broker.port, root, tmp_path).start()
        phones = Phones(broker.port, root)
        parked_seen = 0
        try:
            a.wait_ready()
            b.wait_ready()
            os.kill(a.pid, signal.SIGSTOP)
            try:
                for reporter, _rid, body in reports:
                    phones.publish("reports", reporter, body)
                order = list(fixes.items())
                random.Random(5).shuffle(order)
                for rid, (_fid, body) in order:
                    phones.publish("rectifications", assignees[rid], body)

                def some_parked() -> bool:
                    nonlocal parked_seen
                    sql = "SELECT count(*) FROM parked_messages"
                    parked_seen = max(parked_seen, scalar(crossed, sql))
                    return parked_seen > 0

                wait_until(some_parked, 30, "worker B to park a rectification")
                time.sleep(1.0)  # B finishes what it has; A still holds its reports
                parked_seen = max(
                    parked_seen, scalar(crossed, "SELECT count(*) FROM parked_messages")
                )
            finally:
                os.kill(a.pid, signal.SIGCONT)
            phones.wait_acks(report_ids | {f for f, _b in fixes.values()}, 120)
            got = case_state(crossed)
            left = scalar(crossed, "SELECT count(*) FROM parked_messages")
            acks = dict(phones.acks)
        finally:
            phones.close()
            assert a.stop() == 0 and b.stop() == 0
            jobs.stop()
    assert parked_seen >= 1  # the test did cross some messages
    assert left == 0
    assert got == expected  # the same case states, assignees and histories
    for fid, _b in fixes.values():  # each rectification answered once, with its final state
        assert [x["status"] for x in acks[fid]] == ["accepted"], acks[fid]
        assert acks[fid][0]["case_status"] == "rectified"


def test_two_workers_share_a_stream_and_survive_rolling_restarts(
    tmp_path: Path, network_ctx: Any
) -> None:
    """3,000 QoS 1 reports (10 % resent) at 300/s; each worker SIGTERMed and started again
    during the stream. Exactly the distinct reports stored, once; every report acked."""
    count = 3000
    ids_file = tmp_path / "ids.txt"
    with MosquittoProcess(tmp_path) as broker, database() as db_url:
        root = f"roll{uuid.uuid4().hex[:6]}/v1"
        # Both start at once on the empty database: they migrate and load the network in
        # turn (roadwatch.store.db.startup_lock), neither fails.
        workers = [Worker(x, db_url, broker.port, root, tmp_path).start() for x in ("a", "b")]
        acks = Phones(broker.port, root)
        try:
            for w in workers:
                w.wait_ready()
            publisher = start_publisher(broker.port, root, count, ids_file, rate=300)
            stored = "SELECT count(*) FROM reports"
            for w, at in zip(workers, (800, 1600), strict=True):
                wait_until(lambda at=at: scalar(db_url, stored) >= at, 90, f"{at} reports")
                assert w.stop() == 0, w.log()[-2000:]  # SIGTERM: batch acked, exit 0
                w.start()
                w.wait_ready()
            out, _ = publisher.communicate(timeout=120)
            assert publisher.returncode == 0, out
            expected = set(ids_file.read_text().split())
            acks.wait_acks(expected, 120)
            time.sleep(2)  # anything late would show up as an extra row now
        finally:
            acks.close()
            codes = [w.stop() for w in workers]
        engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
        with engine.connect() as conn:
            rows = list(conn.execute(text("SELECT id FROM reports")).scalars())
            rejected = conn.execute(text("SELECT count(*) FROM rejected_messages")).scalar()
            events = conn.execute(text("SELECT count(*) FROM events WHERE kind='report'")).scalar()
        engine.dispose()
    assert codes == [0, 0]
    assert len(rows) == len(set(rows))  # nothing doubled
    assert set(rows) == expected  # nothing lost
    assert events == len(expected) and rejected == 0
    for w in workers:  # both took part, and each stopped in the group on SIGTERM
        log = w.log()
        assert w.starts == 2 and log.count("MQTT: stopped, staying in the group") >= 2, log[-3000:]
    statuses = {a[0]["status"] for a in acks.acks.values()}
    assert statuses <= {"accepted", "needs_review", "duplicate"}


def test_restarting_the_only_worker_loses_nothing(tmp_path: Path, network_ctx: Any) -> None:
    """`systemctl restart roadwatch-worker@1` with no other member: SIGTERM keeps the shared
    subscription, so the broker queues what phones publish meanwhile in the worker's session.
    (Leaving the group on SIGTERM lost 49 of 600 reports this way: PUBACKed to the phone,
    then dropped, as no member was left.) The publisher sends each report once: no resend
    makes up for a loss here."""
    count = 1200
    ids_file = tmp_path / "ids.txt"
    with MosquittoProcess(tmp_path) as broker, database() as db_url:
        root = f"one{uuid.uuid4().hex[:6]}/v1"
        worker = Worker("a", db_url, broker.port, root, tmp_path).start()
        acks = Phones(broker.port, root)
        try:
            worker.wait_ready()
            publisher = start_publisher(broker.port, root, count, ids_file, rate=200, resent=0.0)
            stored = "SELECT count(*) FROM reports"
            wait_until(lambda: scalar(db_url, stored) >= 300, 90, "300 reports")
            assert worker.stop() == 0, worker.log()[-2000:]
            time.sleep(1.0)  # no member subscribed: what comes now waits in the session
            worker.start()
            worker.wait_ready()
            out, _ = publisher.communicate(timeout=120)
            assert publisher.returncode == 0, out
            expected = set(ids_file.read_text().split())
            acks.wait_acks(expected, 120)
        finally:
            acks.close()
            code = worker.stop()
        engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
        with engine.connect() as conn:
            rows = list(conn.execute(text("SELECT id FROM reports")).scalars())
        engine.dispose()
    assert code == 0
    assert len(rows) == len(set(rows)) and set(rows) == expected  # nothing lost or doubled
    assert "MQTT: stopped, staying in the group" in worker.log()


def test_drain_takes_the_share_a_killed_member_left_in_its_session(
    tmp_path: Path, network_ctx: Any
) -> None:
    """A member killed without SIGTERM stays in the group and the broker queues its share in
    its session; `worker --drain` stores and acks that share, leaves the group and exits."""
    reports = make_payloads(200, seed=3)
    later = make_payloads(40, seed=4)
    with MosquittoProcess(tmp_path) as broker, database() as db_url:
        root = f"drn{uuid.uuid4().hex[:6]}/v1"
        a = Worker("a", db_url, broker.port, root, tmp_path).start()
        b = Worker("b", db_url, broker.port, root, tmp_path).start()
        phones = Phones(broker.port, root)
        try:
            a.wait_ready()
            b.wait_ready()
            a.kill()
            for reporter, _rid, body in reports:
                phones.publish("reports", reporter, body)
            wait_until(lambda: len(phones.acks) >= 50, 60, "b's share")
            time.sleep(2)
            held = 200 - scalar(db_url, "SELECT count(*) FROM reports")
            assert held > 0  # waiting in the killed member's session
            a.start("--drain")
            assert a.proc is not None and a.proc.wait(120) == 0, a.log()[-3000:]
            phones.wait_acks({rid for _r, rid, _b in reports}, 30)
            # a left the group: everything published now goes to b
            for reporter, _rid, body in later:
                phones.publish("reports", reporter, body)
            phones.wait_acks({rid for _r, rid, _b in later}, 60)
            stored = scalar(db_url, "SELECT count(DISTINCT id) FROM reports")
        finally:
            phones.close()
            assert b.stop() == 0
            a.kill()
    assert stored == 240
    assert "draining its session" in a.log() and "ending the session" in a.log()
