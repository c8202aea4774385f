"""Acceptance b of issue #3: nothing lost, nothing doubled, across SIGKILLs of the platform.

A private Mosquitto runs the project's configuration (the system one drops QoS 1 messages
past 1,000 queued). A separate process publishes 10,000 QoS 1 reports, some ids repeated;
`roadwatch worker` (PostgreSQL) is killed with SIGKILL twice mid-stream and restarted.
Afterwards the database holds exactly the distinct reports, each once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text

from roadwatch.store import models
from tests.support.mosquitto import MosquittoProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent


def start_worker(db_url: str, port: int, root: str, log: Any) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ROADWATCH_DATABASE_URL": db_url,
        "ROADWATCH_MQTT_URL": f"mqtt://127.0.0.1:{port}",
        "ROADWATCH_MQTT_TOPIC_ROOT": root,
        "ROADWATCH_MQTT_CLIENT_ID": "lost-test-platform",  # the same session every restart
        "ROADWATCH_EMBEDDED_BROKER": "never",
        "ROADWATCH_LOG_LEVEL": "INFO",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "roadwatch.cli", "worker"],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def count_reports(engine: Any) -> int:
    try:
        with engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(models.Report)) or 0)
    except Exception:  # schema not created yet by the first worker
        return 0


def wait_for(pred: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_sigkill_twice_loses_nothing_doubles_nothing(tmp_path: Path, fresh_pg: str) -> None:
    root = f"lost{uuid.uuid4().hex[:6]}/v1"
    log = tmp_path / "worker.log"
    ids_file = tmp_path / "ids.txt"
    engine = create_engine(fresh_pg.replace("postgresql://", "postgresql+psycopg://"))
    with MosquittoProcess(tmp_path) as broker, log.open("ab") as log_fh:
        worker = start_worker(fresh_pg, broker.port, root, log_fh)
        # The first start creates the schema and loads the network; wait for its session.
        wait_for(lambda: "MQTT: subscribed" in log.read_text(errors="replace"), 60, "worker start")
        publisher = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.publisher",
                str(broker.port),
                root,
                "10000",
                str(ids_file),
                "--rate",
                "800",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
        )
        kills = 0
        for threshold in (2000, 5000):
            wait_for(lambda t=threshold: count_reports(engine) >= t, 90, f"{threshold} rows")
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
            kills += 1
            time.sleep(0.5)  # messages keep arriving at the broker meanwhile
            worker = start_worker(fresh_pg, broker.port, root, log_fh)
        out, _ = publisher.communicate(timeout=120)
        assert publisher.returncode == 0, out
        expected = set(ids_file.read_text().split())
        assert 8000 < len(expected) < 10000
        try:
            wait_for(lambda: count_reports(engine) >= len(expected), 120, "all distinct reports")
            time.sleep(2)  # anything late would show up as an extra row now
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(20)
    with engine.connect() as conn:
        stored = list(conn.scalars(select(models.Report.id)))
        report_events = conn.scalar(text("SELECT count(*) FROM events WHERE kind = 'report'"))
        rejected = conn.scalar(text("SELECT count(*) FROM rejected_messages"))
    engine.dispose()
    assert kills == 2
    assert len(stored) == len(set(stored))  # nothing doubled
    assert set(stored) == expected  # nothing lost, nothing invented
    assert report_events == len(expected)  # one live event per report, no doubles
    assert rejected == 0
    assert log.read_text(errors="replace").count("MQTT: connected") >= 3
