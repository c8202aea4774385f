"""Soak: the system under a steady stream for a long time (issue 18 acceptance e). Prints figures.

Runs, each as its own process: a private Mosquitto (the project's configuration), the
platform as roles — `roadwatch serve` (web, live feed, ingest, dispatcher, case clock,
ranking and the notice outbox) — plus a second `roadwatch jobs` beside it (its jobs claim
their work in the database, so it shares, never doubles), the load (`roadwatch simulate`,
RATE reports/s from the network's chiefs), and the command centre logged in and open in
headless Chromium, on a fresh PostgreSQL database.

With `--production` the platform runs as a city runs it (docs/deploy.md): `roadwatch web`
(gunicorn, one threaded worker) with the Socket.IO queue on a private Redis, two
`roadwatch worker` on the MQTT 5 shared subscription and `roadwatch jobs`; the command
centre is opened on the web role.

Every SAMPLE seconds it records the resident memory (RSS) of every process (Chromium: all
of its processes summed). At the end it prints, per process, RSS after the warm-up, at the
end, and the growth between the two (median of the first and last few samples after the
warm-up; target < 10 %), how many reports were stored and how many notices sent, and the
lines of the logs that say ERROR or Traceback (target: none).

Usage: .venv/bin/python bench/bench_soak.py [--minutes 30] [--rate 100] [--warmup 5]
       [--sample 10] [--chiefs 200] [--production]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from tests.browser.conftest import CHROMIUM_ARGS, DEFAULT_CHROMIUM  # noqa: E402
from tests.support.mosquitto import MosquittoProcess, free_port  # noqa: E402
from tests.support.services import PrivateRedis  # noqa: E402

PG_ADMIN = os.environ.get("ROADWATCH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
PASSWORD = "soak-" + uuid.uuid4().hex[:12]
ERROR_LINE = re.compile(r"\bERROR\b|Traceback|CRITICAL")


def rss_mb(proc: psutil.Process, tree: bool = False) -> float:
    procs = [proc] + (proc.children(recursive=True) if tree else [])
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total / 2**20


def chromium_root() -> psutil.Process | None:
    """The Chromium this script's Playwright launched (its children are its other processes)."""
    for p in psutil.Process().children(recursive=True):
        parent = p.parent()
        if "chrom" in p.name().lower() and (parent is None or "chrom" not in parent.name()):
            return p
    return None


def start(name: str, args: list[str], env: dict[str, str], logs: Path) -> subprocess.Popen[bytes]:
    log = (logs / f"{name}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "roadwatch.cli", *args],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def wait_log(path: Path, pattern: str, proc: subprocess.Popen[bytes], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace") if path.exists() else ""
        m = re.search(pattern, text)
        if m:
            return m.group(0)
        if proc.poll() is not None:
            raise SystemExit(f"{path.name}: exited {proc.returncode}\n{text[-3000:]}")
        time.sleep(0.2)
    raise SystemExit(f"{path.name}: no {pattern!r} within {timeout:g} s")


def counts(url: str) -> tuple[int, int, int]:
    import psycopg

    with psycopg.connect(url) as conn:
        reports = conn.execute("SELECT count(*) FROM reports").fetchone()
        sent = conn.execute("SELECT count(*) FROM notice_outbox WHERE sent_at IS NOT NULL")
        pending = conn.execute("SELECT count(*) FROM notice_outbox WHERE sent_at IS NULL")
        return (
            int(reports[0]) if reports else 0,
            int((sent.fetchone() or [0])[0]),
            int((pending.fetchone() or [0])[0]),
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--warmup", type=float, default=None, help="minutes (default: 1/6 of it)")
    ap.add_argument("--sample", type=float, default=10.0, help="seconds between RSS samples")
    ap.add_argument("--chiefs", type=int, default=200)
    ap.add_argument(
        "--production", action="store_true", help="web + 2 workers + jobs + Redis, not serve"
    )
    a = ap.parse_args()
    warmup_s = 60 * (a.warmup if a.warmup is not None else max(a.minutes / 6, 0.5))
    total_s = 60 * a.minutes
    import psycopg

    db = f"rw_soak_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{db}"
    tmp = Path(tempfile.mkdtemp(prefix="rw-soak-"))
    logs = tmp / "logs"
    logs.mkdir()
    procs: dict[str, subprocess.Popen[bytes]] = {}
    redis = PrivateRedis()
    try:
        with MosquittoProcess(tmp) as broker:
            port = free_port()
            env = {
                **os.environ,
                "PYTHONPATH": str(ROOT),
                "ROADWATCH_DATABASE_URL": url,
                "ROADWATCH_MQTT_URL": broker.url,
                "ROADWATCH_EMBEDDED_BROKER": "never",
                "ROADWATCH_PHOTO_DIR": str(tmp / "photos"),
                "ROADWATCH_ADMIN_PASSWORD": PASSWORD,
                "ROADWATCH_SOCKETIO_QUEUE": "",
                "ROADWATCH_LOG_LEVEL": "INFO",
            }
            if a.production:
                redis.start()
                env["ROADWATCH_SOCKETIO_QUEUE"] = redis.url
                env["ROADWATCH_SECRET_KEY"] = "soak-" + uuid.uuid4().hex
                # `serve` migrates itself; the web role expects it done (docs/deploy.md:
                # `roadwatch db upgrade`). The admin is made here with the bench's password.
                from roadwatch.accounts.users import add_user
                from roadwatch.store import db as store

                engine = store.make_engine(url)
                store.upgrade(engine)
                with store.make_sessionmaker(engine).begin() as session:
                    add_user(session, "admin", PASSWORD, "admin", None)
                engine.dispose()
                procs["web"] = start("web", ["web", "--host", "127.0.0.1", "--port", str(port)],
                                     env, logs)  # fmt: skip
                wait_log(logs / "web.log", r"Booting worker", procs["web"], 60)
                for n in ("1", "2"):
                    args = ["worker", "--instance", n, "--health-port", "0"]
                    procs[f"worker{n}"] = start(f"worker{n}", args, env, logs)
                    wait_log(logs / f"worker{n}.log", r"subscribed to", procs[f"worker{n}"], 60)
            else:
                procs["serve"] = start("serve", ["serve", "--port", str(port)], env, logs)
                wait_log(logs / "serve.log", r"roadwatch ready", procs["serve"], 180)
            jobs_env = {**env, "ROADWATCH_MQTT_CLIENT_ID": "roadwatch-jobs"}
            procs["jobs"] = start("jobs", ["jobs", "--health-port", "0"], jobs_env, logs)
            wait_log(logs / "jobs.log", r"/healthz and /metrics on", procs["jobs"], 60)
            sim_args = ["simulate", "--chiefs", str(a.chiefs), "--rate", str(a.rate)]
            sim_args += ["--duration", str(total_s + 30), "--bad-share", "0"]
            procs["simulate"] = start("simulate", sim_args, env, logs)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path=os.environ.get("CHROMIUM", DEFAULT_CHROMIUM),
                    headless=True,
                    args=CHROMIUM_ARGS,
                )
                page = browser.new_page(viewport={"width": 1920, "height": 1080})
                base = f"http://127.0.0.1:{port}"
                page.goto(base + "/login")
                page.fill("input[name=username]", "admin")
                page.fill("input[name=password]", PASSWORD)
                page.click("button[type=submit]")
                page.wait_for_function(
                    "() => window.roadwatch && window.roadwatch.ready", timeout=120_000
                )
                chromium = chromium_root()
                watched: dict[str, tuple[psutil.Process, bool]] = {
                    name: (psutil.Process(p.pid), False) for name, p in procs.items()
                }
                if "web" in procs:  # gunicorn's master and the worker it forked
                    watched["web (all)"] = watched.pop("web")[0], True
                watched["mosquitto"] = (psutil.Process(broker.pid or 0), False)
                if chromium is not None:
                    watched["chromium (all)"] = (chromium, True)
                samples: dict[str, list[tuple[float, float]]] = {k: [] for k in watched}
                t0 = time.monotonic()
                print(f"soak: {a.minutes:g} min at {a.rate:g} reports/s; warm-up {warmup_s:.0f} s")
                while (elapsed := time.monotonic() - t0) < total_s:
                    for name, (proc, tree) in watched.items():
                        samples[name].append((elapsed, rss_mb(proc, tree)))
                    for name, p in procs.items():
                        if p.poll() is not None:
                            raise SystemExit(f"{name} exited {p.returncode} during the soak")
                    if int(elapsed) % 60 < a.sample:
                        reports, sent, pending = counts(url)
                        shown = page.evaluate("() => document.title")
                        print(
                            f"  {elapsed / 60:5.1f} min: {reports:,} reports, {sent:,} notices "
                            f"sent, {pending} pending; page: {shown!r}",
                            flush=True,
                        )
                    time.sleep(a.sample)
                browser.close()
            reports, sent, pending = counts(url)
            procs["simulate"].terminate()
            for name in reversed(procs):
                if name != "simulate":
                    procs[name].terminate()
                    procs[name].wait(60)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
        redis.close()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    report(samples, warmup_s, reports, sent, pending, total_s, logs)


def report(
    samples: dict[str, list[tuple[float, float]]],
    warmup_s: float,
    reports: int,
    sent: int,
    pending: int,
    total_s: float,
    logs: Path,
) -> None:
    print(
        f"\nstored {reports:,} reports ({reports / total_s:.1f}/s), {sent:,} notices sent, "
        f"{pending} pending at the end"
    )
    print(f"{'process':<16}{'after warm-up MB':>18}{'end MB':>10}{'growth':>9}")
    worst = 0.0
    for name, rows in samples.items():
        after = [mb for t, mb in rows if t >= warmup_s]
        if len(after) < 2:
            print(f"{name:<16}  too few samples after the warm-up")
            continue
        k = max(1, min(3, len(after) // 4))
        start_mb, end_mb = statistics.median(after[:k]), statistics.median(after[-k:])
        growth = (end_mb - start_mb) / start_mb * 100 if start_mb else 0.0
        if name not in ("simulate",):
            worst = max(worst, growth)
        print(f"{name:<16}{start_mb:>18.1f}{end_mb:>10.1f}{growth:>8.1f}%")
    print(f"largest growth of the system's processes: {worst:.1f} % (target < 10 %)")
    errors: list[str] = []
    for log in sorted(logs.glob("*.log")):
        for line in log.read_text(errors="replace").splitlines():
            if ERROR_LINE.search(line):
                errors.append(f"{log.name}: {line[:200]}")
    print(f"error lines in the logs: {len(errors)} (target 0)")
    for line in errors[:20]:
        print("  " + line)


if __name__ == "__main__":
    main()
