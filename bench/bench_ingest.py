"""Ingest benchmark (issue #3 acceptance d). A script, not a test: it prints figures.

In one run, against a private Mosquitto started with the project's configuration:
  1. raw broker throughput: paho publisher → paho subscriber, the same payloads, QoS 1;
  2. roadwatch end to end: paho publisher → `roadwatch worker` (a separate process:
     validate, dedupe, geolocate, commit to the database) → ack received by the publisher;
  3. their ratio;
  4. latency publish → ack at a steady 500 reports/s (p50, p99), beside the raw broker's.

Usage: .venv/bin/python bench/bench_ingest.py [--count 20000] [--rate 500] [--seconds 20]
       [--database postgresql://postgres@127.0.0.1:5432/test | sqlite]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from geo.network import load_network  # noqa: E402
from roadwatch.categories import load_categories  # noqa: E402
from roadwatch.network.context import DEMO_NETWORK  # noqa: E402
from roadwatch.simulate import ReportFactory, chiefs_of  # noqa: E402
from tests.support.mosquitto import MosquittoProcess  # noqa: E402


def make_payloads(n: int, seed: int = 7, cross_share: float = 0.0) -> list[tuple[str, str, bytes]]:
    """(reporter, report_id, payload) for n valid, distinct reports spread over the network.

    Each chief reports on a road of their own, except a `cross_share` of the reports, on
    another chief's road: only those make dispatch notices (nobody is told of a case they
    reported themselves). 0 keeps the random sequence, so the reports, of earlier runs."""
    import datetime as dt

    rng = random.Random(seed)
    net = load_network(DEMO_NETWORK)
    factory = ReportFactory(net, load_categories(), rng, bad_share=0, resend_share=0)
    chiefs = chiefs_of(net, len(net.people), rng)  # every road chief of the city reports
    now = dt.datetime.now(dt.UTC)
    out = []
    for _ in range(n):
        chief = rng.choice(chiefs)
        road = rng.choice(chiefs) if cross_share and rng.random() < cross_share else chief
        body = {**factory.report(road, now), "reporter_id": chief.id}
        out.append((chief.id, body["report_id"], json.dumps(body, ensure_ascii=False).encode()))
    return out


def cpu_seconds() -> dict[str, float]:
    """CPU time (user + system) of every process on the machine, by a short label."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            raw = stat.read_text()
            cmd = (
                (stat.parent / "cmdline")
                .read_bytes()
                .replace(b"\0", b" ")
                .decode("utf-8", "replace")
            )
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        secs = (int(fields[11]) + int(fields[12])) / tick
        if "roadwatch.cli worker" in cmd:
            label = "roadwatch worker (ingest)"
        elif "multiprocessing" in cmd and "spawn" in cmd:
            label = "roadwatch case process"
        elif "postgres" in cmd:
            label = "PostgreSQL"
        elif "mosquitto" in cmd:
            label = "Mosquitto"
        elif "bench_ingest" in cmd:
            label = "this benchmark (publisher, ack receiver)"
        else:
            label = "everything else"
        out[label] = out.get(label, 0.0) + secs
    return out


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


class Receiver:
    """Counts messages on a topic filter and records arrival times by key."""

    def __init__(self, port: int, topic: str, key: str | None, v5: bool = True) -> None:
        self.count = 0
        self.times: dict[str, float] = {}
        self.statuses: dict[str, int] = {}
        self.key = key
        self.done = threading.Event()
        self.expect = 0
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"bench-rx-{uuid.uuid4().hex[:6]}",
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        )
        self.client.on_message = self._on
        ready = threading.Event()
        self.client.on_subscribe = lambda *a: ready.set()
        if v5:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            props = Properties(PacketTypes.CONNECT)
            props.ReceiveMaximum = 1000
            self.client.connect("127.0.0.1", port, properties=props)
        else:
            self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe(topic, qos=1)
        ready.wait(5)

    def _on(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        now = time.perf_counter()
        self.count += 1
        # orjson: the harness shares the machine's two cores with what it measures, so both
        # of its receivers (raw broker and acks) parse with the cheapest parser there is.
        if self.key == "raw":
            rid = orjson.loads(msg.payload)["report_id"]
            self.times.setdefault(rid, now)
        elif self.key == "ack":
            body = orjson.loads(msg.payload)
            self.times.setdefault(body["id"], now)
            self.statuses[body["status"]] = self.statuses.get(body["status"], 0) + 1
        if self.expect and self.count >= self.expect:
            self.done.set()

    def reset(self, expect: int) -> None:
        self.count, self.times, self.statuses, self.expect = 0, {}, {}, expect
        self.done.clear()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publisher(port: int) -> mqtt.Client:
    c = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"bench-tx-{uuid.uuid4().hex[:6]}",
        protocol=mqtt.MQTTv311,
    )
    # paho rescans its whole in-flight window on every PUBACK while messages are queued
    # behind it, so a 1,000-message window cost this harness more CPU per message than the
    # broker spends; the harness shares the two cores with what it measures (the raw broker
    # baseline and roadwatch alike), so it keeps the window small. 64 in flight still leaves
    # the broker, not the window, the limit (64 / 0.5 ms round trip ≫ 10,000 msg/s).
    c.max_inflight_messages_set(64)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def burst(
    pub: mqtt.Client, rx: Receiver, payloads: list[tuple[str, str, bytes]], topic_of: Any
) -> float:
    rx.reset(len(payloads))
    t0 = time.perf_counter()
    for reporter, _rid, body in payloads:
        pub.publish(topic_of(reporter), body, qos=1)
    if not rx.done.wait(300):
        raise SystemExit(f"only {rx.count} of {len(payloads)} arrived")
    return len(payloads) / (time.perf_counter() - t0)


def paced(
    pub: mqtt.Client,
    rx: Receiver,
    payloads: list[tuple[str, str, bytes]],
    topic_of: Any,
    rate: float,
) -> list[float]:
    rx.reset(len(payloads))
    sent: dict[str, float] = {}
    t0 = time.perf_counter()
    for i, (reporter, rid, body) in enumerate(payloads):
        target = t0 + i / rate
        while (now := time.perf_counter()) < target:
            time.sleep(min(0.001, target - now))
        sent[rid] = time.perf_counter()
        pub.publish(topic_of(reporter), body, qos=1)
    if not rx.done.wait(120):
        raise SystemExit(f"only {rx.count} of {len(payloads)} arrived")
    return [(rx.times[rid] - sent[rid]) * 1000 for rid in sent if rid in rx.times]


def start_worker(db_url: str, port: int, root: str, env_extra: dict[str, str]) -> Any:
    env = {
        **os.environ,
        "ROADWATCH_DATABASE_URL": db_url,
        "ROADWATCH_MQTT_URL": f"mqtt://127.0.0.1:{port}",
        "ROADWATCH_MQTT_TOPIC_ROOT": root,
        "ROADWATCH_MQTT_CLIENT_ID": f"bench-platform-{uuid.uuid4().hex[:6]}",
        "ROADWATCH_EMBEDDED_BROKER": "never",
        "ROADWATCH_LOG_LEVEL": "WARNING",
        **env_extra,
    }
    return subprocess.Popen([sys.executable, "-m", "roadwatch.cli", "worker"], env=env, cwd=ROOT)


def start_jobs(db_url: str, port: int, root: str, log: Path) -> subprocess.Popen[bytes]:
    """`roadwatch jobs` when this release has it, else the case process the worker used to
    run (dispatcher and case clock, the same code) under a small parent."""
    from roadwatch.cli import main as cli

    env = {
        **os.environ,
        "ROADWATCH_DATABASE_URL": db_url,
        "ROADWATCH_MQTT_URL": f"mqtt://127.0.0.1:{port}",
        "ROADWATCH_MQTT_TOPIC_ROOT": root,
        "ROADWATCH_EMBEDDED_BROKER": "never",
        "ROADWATCH_LOG_LEVEL": "WARNING",
    }
    if "jobs" in getattr(cli, "commands", {}):
        cmd = [sys.executable, "-m", "roadwatch.cli", "jobs"]
    else:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--jobs-stand-in"]
    with log.open("ab") as fh:
        return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT)


def jobs_stand_in() -> None:
    import threading

    from roadwatch.cases.service import CaseProcess
    from roadwatch.settings import load_settings

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    proc = CaseProcess(load_settings().model_dump())
    proc.start()
    stop.wait()
    proc.stop()


def wait_for_dispatch(db_url: str, timeout: float = 300) -> int:
    """Wait until no stored report waits for the dispatcher; returns the number of cases."""
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    deadline = time.monotonic() + timeout
    try:
        with engine.connect() as conn:
            while time.monotonic() < deadline:
                pending = conn.execute(
                    text("SELECT count(*) FROM reports WHERE case_status = 'new'")
                ).scalar_one()
                conn.rollback()
                if not pending:
                    break
                time.sleep(0.2)
            return int(
                conn.execute(
                    text("SELECT count(*) FROM reports WHERE case_status IS NOT NULL")
                ).scalar_one()
            )
    finally:
        engine.dispose()


def pg_wal(admin: str) -> tuple[int, int] | None:
    """(WAL position in bytes, checkpoints so far) of the PostgreSQL server, or None."""
    if admin == "sqlite":
        return None
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        row = conn.execute(
            "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn,"
            " checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def make_database(kind: str) -> tuple[str, Any]:
    if kind == "sqlite":
        d = tempfile.mkdtemp(prefix="rw-bench-")
        return f"sqlite:///{d}/bench.sqlite3", lambda: None
    import psycopg

    name = f"rw_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(kind, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(kind, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return kind.rsplit("/", 1)[0] + f"/{name}", drop


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--count", type=int, default=20_000, help="messages per throughput run")
    ap.add_argument("--rate", type=float, default=500.0)
    ap.add_argument("--seconds", type=float, default=20.0, help="length of the paced run")
    ap.add_argument(
        "--database",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="admin URL of a PostgreSQL server, or 'sqlite'",
    )
    ap.add_argument("--jobs-stand-in", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.jobs_stand_in:
        jobs_stand_in()
        return

    n_paced = int(args.rate * args.seconds)
    print(f"making {args.count + n_paced + 1:,} report payloads…", flush=True)
    payloads = make_payloads(args.count + n_paced + 1)
    warm, bulk, steady = payloads[:1], payloads[1 : args.count + 1], payloads[args.count + 1 :]

    with tempfile.TemporaryDirectory() as tmp, MosquittoProcess(Path(tmp)) as broker:
        port = broker.port
        print(f"mosquitto (project config) on 127.0.0.1:{port}")

        # 1. raw broker: the same payloads on a plain topic, to a plain paho subscriber
        raw_rx = Receiver(port, "raw/+", key="raw")
        pub = publisher(port)
        raw_tput = burst(pub, raw_rx, bulk, lambda r: f"raw/{r}")
        raw_lat = paced(pub, raw_rx, steady, lambda r: f"raw/{r}", args.rate)
        raw_rx.close()

        # 2. roadwatch end to end
        db_url, drop = make_database(args.database)
        root = f"bench{uuid.uuid4().hex[:6]}/v1"
        worker = start_worker(db_url, port, root, {})
        # `roadwatch worker` only ingests: the dispatcher runs in the jobs role
        jobs = start_jobs(db_url, port, root, Path(tmp) / "jobs.log")
        try:
            ack_rx = Receiver(port, f"{root}/acks/+", key="ack")
            t_ready = time.perf_counter()
            ack_rx.reset(1)
            for reporter, _rid, body in warm:  # waits for the worker to be up and subscribed
                while not ack_rx.done.is_set():
                    pub.publish(f"{root}/reports/{reporter}", body, qos=1)
                    ack_rx.done.wait(2)
                    if worker.poll() is not None:
                        raise SystemExit("the worker died while starting")
            print(
                f"worker ready after {time.perf_counter() - t_ready:.1f} s "
                f"(database {db_url.split('@')[-1]})"
            )
            wal0 = pg_wal(args.database)
            cpu0 = cpu_seconds()
            rw_tput = burst(pub, ack_rx, bulk, lambda r: f"{root}/reports/{r}")
            cpu1 = cpu_seconds()
            wal1 = pg_wal(args.database)
            statuses = dict(ack_rx.statuses)
            # Acks do not wait for dispatch; let the dispatcher finish the burst's cases so
            # the latency run measures a steady 500/s, not 500/s plus a 20,000-case backlog.
            t_drain = time.perf_counter()
            drained = wait_for_dispatch(db_url)
            print(
                f"dispatcher made cases of the burst in {time.perf_counter() - t_drain:.1f} s"
                f" after the last ack ({drained:,} cases)"
            )
            rw_lat = paced(pub, ack_rx, steady, lambda r: f"{root}/reports/{r}", args.rate)
            ack_rx.close()
        finally:
            worker.terminate()
            worker.wait(20)
            jobs.terminate()
            jobs.wait(30)
            drop()
        pub.disconnect()
        pub.loop_stop()

    print()
    print(f"{'':38s}{'msg/s':>10s}{'p50 ms':>10s}{'p99 ms':>10s}")
    print(
        f"{'raw broker (paho → paho), QoS 1':38s}{raw_tput:10,.0f}"
        f"{statistics.median(raw_lat):10.2f}{pct(raw_lat, 0.99):10.2f}"
    )
    print(
        f"{'roadwatch (publish → commit → ack)':38s}{rw_tput:10,.0f}"
        f"{statistics.median(rw_lat):10.2f}{pct(rw_lat, 0.99):10.2f}"
    )
    print(f"ratio roadwatch / raw broker: {rw_tput / raw_tput:.2f}")
    print(
        f"latencies measured at a steady {args.rate:.0f}/s over {len(steady):,} messages; "
        f"throughput over {len(bulk):,} messages"
    )
    print(f"outcomes of the throughput run: {statuses}")
    if wal0 and wal1:
        print(
            f"PostgreSQL during the throughput run: {(wal1[0] - wal0[0]) / len(bulk):,.0f} WAL "
            f"bytes per report, {wal1[1] - wal0[1]} checkpoint(s) (each makes the next change "
            "to every page write the whole page to the WAL again)"
        )
    print(f"CPU per report during the throughput run (µs; {os.cpu_count()} cores):")
    for label in sorted(cpu1, key=lambda k: -(cpu1[k] - cpu0.get(k, 0.0))):
        used = cpu1[label] - cpu0.get(label, 0.0)
        if used > 0:
            print(f"  {label:42s}{used / len(bulk) * 1e6:8.0f}")


if __name__ == "__main__":
    main()
