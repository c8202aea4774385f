"""Several ingest workers (issue 18 acceptance d). A script, not a test: it prints figures.

In one run, against a private Mosquitto with the project's configuration and PostgreSQL:
  1. the raw broker: the same payloads to a plain paho subscriber (QoS 1): burst
     throughput, and latency at a steady rate;
  2. roadwatch with 1 worker, then with 2 workers on the MQTT 5 shared subscription
     (each on a fresh database, with the jobs role beside them): burst throughput
     publish → commit → ack, latency at the steady rate, CPU per report of every process
     (read from /proc/<pid>/stat), and what was lost (acks missing) or doubled (rows);
  3. the ratio 2 workers / 1 worker, and what the CPU figures let one expect on 8 and 32
     cores.

Usage: .venv/bin/python bench/bench_workers.py [--count 10000] [--rate 500] [--seconds 15]
       [--database postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_ingest import (  # noqa: E402
    Receiver,
    burst,
    jobs_stand_in,
    make_database,
    make_payloads,
    paced,
    pct,
    publisher,
    start_jobs,
)
from tests.support.mosquitto import MosquittoProcess  # noqa: E402
from tests.support.workers import Worker  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system) of one process, 0 if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


# PostgreSQL's own helpers, shared by every database on the server (other sessions'
# work shows up in them too: the machine is shared)
PG_HELPERS = (b"postgres: walwriter", b"postgres: checkpointer", b"postgres: background writer")


def postgres_pids(database: str) -> list[int]:
    """The backends serving `database`, and the server's WAL writer and checkpointer."""
    out = []
    for cmd in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            line = cmd.read_bytes()
        except OSError:
            continue
        if line.startswith(PG_HELPERS) or (
            line.startswith(b"postgres: ") and f" {database} ".encode() in line
        ):
            out.append(int(cmd.parent.name))
    return out


class Cpu:
    """CPU seconds of named groups of processes between two readings. A group is a list of
    pids or a function returning them (read again at the end: backends come and go)."""

    def __init__(self, groups: dict[str, Any]) -> None:
        self.groups = groups
        self.t0 = {k: {p: cpu_of(p) for p in self._pids(k)} for k in groups}

    def _pids(self, k: str) -> list[int]:
        g = self.groups[k]
        return list(g() if callable(g) else g)

    def used(self) -> dict[str, float]:
        out = {}
        for k, before in self.t0.items():
            pids = set(self._pids(k)) | set(before)
            out[k] = sum(max(0.0, cpu_of(p) - before.get(p, 0.0)) for p in pids if cpu_of(p))
        return out


def run_roadwatch(
    n_workers: int,
    args: argparse.Namespace,
    broker: MosquittoProcess,
    bulk: list[tuple[str, str, bytes]],
    steady: list[tuple[str, str, bytes]],
    tmp: Path,
) -> dict[str, Any]:
    db_url, drop = make_database(args.database)
    root = f"bw{uuid.uuid4().hex[:6]}/v1"
    extra = {"ROADWATCH_LOG_LEVEL": "WARNING"}
    workers = [
        Worker(f"w{i}", db_url, broker.port, root, tmp, client_id="bench", extra_env=extra)
        for i in range(n_workers)
    ]
    jobs = start_jobs(db_url, broker.port, root, tmp / "jobs.log")
    pub = publisher(broker.port)
    try:
        for w in workers:
            w.start()
        for w in workers:
            w.wait_ready(120)
        rx = Receiver(broker.port, f"{root}/acks/+", key="ack")
        groups: dict[str, Any] = {f"roadwatch worker {w.instance}": [w.pid] for w in workers}
        groups["roadwatch jobs"] = [jobs.pid, *children(jobs.pid)]
        dbname = db_url.rsplit("/", 1)[1]
        groups["PostgreSQL (its backends, WAL writer)"] = lambda: postgres_pids(dbname)
        groups["Mosquitto"] = [broker.pid or 0]
        groups["bench harness (publisher + ack receiver)"] = [os.getpid()]
        cpu = Cpu(groups)
        tput = burst(pub, rx, bulk, lambda r: f"{root}/reports/{r}")
        used = cpu.used()
        statuses = dict(rx.statuses)
        got = set(rx.times)
        # let the jobs role catch up with the burst's cases, so the paced run is steady
        time.sleep(3)
        lat = paced(pub, rx, steady, lambda r: f"{root}/reports/{r}", args.rate)
        rx.close()
    finally:
        pub.disconnect()
        pub.loop_stop()
        for w in workers:
            w.stop()
        jobs.terminate()
        jobs.wait(30)
    from sqlalchemy import create_engine, text

    e = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    with e.connect() as conn:
        rows = conn.execute(text("SELECT count(*), count(DISTINCT id) FROM reports")).one()
    e.dispose()
    drop()
    sent = {rid for _r, rid, _b in bulk}
    return {
        "tput": tput,
        "lat": lat,
        "cpu": used,
        "statuses": statuses,
        "lost": len(sent - got),
        "rows": f"{rows[0]}/{rows[1]}",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--count", type=int, default=10_000, help="messages per throughput run")
    ap.add_argument("--rate", type=float, default=500.0)
    ap.add_argument("--seconds", type=float, default=15.0, help="length of the paced runs")
    ap.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--jobs-stand-in", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.jobs_stand_in:
        jobs_stand_in()
        return

    n_paced = int(args.rate * args.seconds)
    per_run = args.count + n_paced
    print(f"making {3 * per_run:,} report payloads…", flush=True)
    payloads = make_payloads(3 * per_run)
    runs = [payloads[i * per_run : (i + 1) * per_run] for i in range(3)]

    with tempfile.TemporaryDirectory() as tmp_name, MosquittoProcess(Path(tmp_name)) as broker:
        tmp = Path(tmp_name)
        print(f"mosquitto (project config) on 127.0.0.1:{broker.port}", flush=True)
        raw_rx = Receiver(broker.port, "raw/+", key="raw")
        pub = publisher(broker.port)
        bulk, steady = runs[0][: args.count], runs[0][args.count :]
        cpu = Cpu({"Mosquitto": [broker.pid or 0], "bench harness": [os.getpid()]})
        raw_tput = burst(pub, raw_rx, bulk, lambda r: f"raw/{r}")
        raw_cpu = cpu.used()
        raw_lat = paced(pub, raw_rx, steady, lambda r: f"raw/{r}", args.rate)
        raw_rx.close()
        pub.disconnect()
        pub.loop_stop()
        results = {}
        for n, run in ((1, runs[1]), (2, runs[2])):
            print(f"roadwatch with {n} worker(s)…", flush=True)
            results[n] = run_roadwatch(n, args, broker, run[: args.count], run[args.count :], tmp)

    print()
    print(f"{'':34s}{'msg/s':>9s}{'p50 ms':>9s}{'p99 ms':>9s}{'lost':>6s}{'rows/distinct':>15s}")
    print(
        f"{'raw broker (paho → paho), QoS 1':34s}{raw_tput:9,.0f}"
        f"{statistics.median(raw_lat):9.2f}{pct(raw_lat, 0.99):9.2f}"
    )
    for n, r in results.items():
        print(
            f"{f'roadwatch, {n} worker(s)':34s}{r['tput']:9,.0f}{statistics.median(r['lat']):9.2f}"
            f"{pct(r['lat'], 0.99):9.2f}{r['lost']:6d}{r['rows']:>15s}"
        )
    print(f"ratio 2 workers / 1 worker: {results[2]['tput'] / results[1]['tput']:.2f}")
    print(f"ratio 1 worker / raw broker: {results[1]['tput'] / raw_tput:.2f}")
    print(
        f"throughput over {args.count:,} messages a run; latency at a steady {args.rate:.0f}/s "
        f"over {n_paced:,}; {os.cpu_count()} cores"
    )
    raw_per = ", ".join(f"{k} {v / args.count * 1e6:.0f}" for k, v in raw_cpu.items())
    print(f"raw broker CPU per message (µs): {raw_per}")
    summary = {}
    for n, r in results.items():
        print(f"\nCPU per report during the burst, {n} worker(s) (µs), outcomes {r['statuses']}:")
        rw = 0.0
        for label, used in sorted(r["cpu"].items(), key=lambda kv: -kv[1]):
            per = used / args.count * 1e6
            print(f"  {label:44s}{per:8.0f}")
            if label.startswith("roadwatch"):
                rw += per
        infra = sum(
            v / args.count * 1e6
            for k, v in r["cpu"].items()
            if k.startswith(("PostgreSQL", "Mosquitto"))
        )
        print(f"  {'= summed over roadwatch processes':44s}{rw:8.0f}")
        summary[n] = (rw, infra, r)
    rw, infra, r2 = summary[2]
    # A worker's own cost per report it handles (its Python runs on one core at a time).
    worker_us = sum(
        v / args.count * 1e6 for k, v in r2["cpu"].items() if k.startswith("roadwatch worker")
    )
    print("\nexpected on more cores (from the 2-worker figures):")
    for cores in (8, 32):
        # what the platform needs per report on the host: roadwatch + PostgreSQL + broker
        by_cpu = cores * 1e6 / (rw + infra)
        workers = max(1, cores // 2)  # half the cores for workers, the rest for PG, broker, jobs
        by_workers = workers * 1e6 / worker_us
        print(
            f"  {cores:2d} cores: ≈ {min(by_cpu, by_workers):,.0f} reports/s "
            f"(all cores at {rw + infra:.0f} µs per report: {by_cpu:,.0f}/s; "
            f"{workers} workers at {1e6 / worker_us:,.0f}/s each: {by_workers:,.0f}/s)"
        )


if __name__ == "__main__":
    main()
