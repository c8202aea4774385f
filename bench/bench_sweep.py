"""Case clock benchmark (issue #5 acceptance d). A script, not a test: it prints figures.

Fills a fresh PostgreSQL database with N open cases on the demo network (default 100,000;
a share of them overdue), then times the escalation sweep: the first sweep (which claims
every due escalation and notifies), and a second one with nothing due — the everyday
case, which must be cheap because every scheduler process runs it every few seconds.

Usage: .venv/bin/python bench/bench_sweep.py [--cases 100000] [--overdue 0.2]
       [--database postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from roadwatch.cases.clock import sweep  # noqa: E402
from roadwatch.runtime import Runtime  # noqa: E402
from roadwatch.settings import load_settings  # noqa: E402
from roadwatch.store import models  # noqa: E402
from roadwatch.store.bulk import insert_rows  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--overdue", type=float, default=0.2, help="share already past due")
    ap.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/test")
    args = ap.parse_args()

    import psycopg

    name = f"rw_sweep_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.database, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = args.database.rsplit("/", 1)[0] + f"/{name}"
    try:
        rt = Runtime.build(load_settings(overrides={"database_url": url}))
        segs = rt.ctx.network.segments
        now = dt.datetime.now(dt.UTC)
        rng = random.Random(1)
        rows = []
        for i in range(args.cases):
            s = segs[i % len(segs)]
            late = rng.random() < args.overdue
            due = (
                now - dt.timedelta(minutes=rng.randint(1, 600))
                if late
                else (now + dt.timedelta(hours=rng.randint(1, 72)))
            )
            rows.append(
                {
                    "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "reporter_id": "bench",
                    "category": "E0102",
                    "scheme": "GB/T30428.2-2013",
                    "severity": 1,
                    "note": None,
                    "photos": [],
                    "observed_at": now,
                    "received_at": now,
                    "crs": "WGS84",
                    "lat_in": None,
                    "lon_in": None,
                    "lat": None,
                    "lon": None,
                    "accuracy_m": None,
                    "heading_deg": None,
                    "segment_hint": None,
                    "segment_id": s.id,
                    "segment_version": 1,
                    "district": s.district,
                    "snap_distance_m": None,
                    "snap_confidence": None,
                    "snap": None,
                    "status": "accepted",
                    "transport": "bench",
                    "topic": None,
                    "raw": b"{}",
                    "case_status": "dispatched",
                    "assignee_id": None,
                    "dispatched_at": now,
                    "due_at": due,
                    "escalation_level": 0,
                    "next_escalation_at": due,
                    "overdue": False,
                    "rectified_at": None,
                    "closed_at": None,
                    "updated_at": now,
                    "parent_id": None,
                }
            )
        t0 = time.perf_counter()
        with rt.engine.begin() as conn:
            for i in range(0, len(rows), 10_000):
                insert_rows(conn, models.Report.__table__, rows[i : i + 10_000])  # type: ignore[arg-type]
        with rt.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE reports")
        print(
            f"{args.cases:,} open cases written in {time.perf_counter() - t0:.1f} s "
            f"({args.overdue:.0%} overdue)"
        )

        t1 = time.perf_counter()
        events, notices = sweep(rt.engine, rt.pipeline.sla, now)
        first = time.perf_counter() - t1
        escalated = sum(1 for e in events if e.kind == "case")
        t_drain = time.perf_counter()
        rest = 0
        while True:
            more, _ = sweep(rt.engine, rt.pipeline.sla, now)
            n = sum(1 for e in more if e.kind == "case")
            rest += n
            if not n:
                break
        drain = time.perf_counter() - t_drain
        t2 = time.perf_counter()
        events2, _ = sweep(rt.engine, rt.pipeline.sla, now)
        idle = time.perf_counter() - t2
        print(
            f"first sweep : {first:6.3f} s  ({escalated:,} cases escalated, "
            f"{len(notices):,} notices, {len(events):,} live events)"
        )
        if rest:
            print(f"backlog     : {drain:6.3f} s  for the {rest:,} more due, in bounded sweeps")
        print(f"next sweep  : {idle * 1000:6.1f} ms  (nothing due: {len(events2)} events)")
        print(f"target: a sweep over {args.cases:,} open cases under 1 s on PostgreSQL")
        rt.stop()
    finally:
        with psycopg.connect(args.database, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
