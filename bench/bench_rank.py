"""Weekly ranking benchmark (issue 6 e). A script, not a test: it prints figures.

Fills a fresh PostgreSQL database with generated data (generate_series, in SQL): S segments
in 8 districts, one road chief each, a few evaluators, R reports in one ISO week (2026-W47)
with deadlines, rectifications and some reopened cases; then times `compute` (the SQL
aggregation, scoring, ranking and drill-downs) and reports the baseline of a bare
`SELECT count(*)` over the week in the same run. The data is the same on every run, so the
canonical JSON's SHA-256 (printed) must be too, whatever the code's speed.

Targets: 2,495 segments x 100,000 reports < 2 s; 250,000 x 10,000,000 < 60 s.
Usage: .venv/bin/python bench/bench_rank.py [--scale 1.0] [--big] [--history WEEKS]
       [--database postgresql://postgres@127.0.0.1:5432/test]
  --scale multiplies the big case (e.g. 0.1 = 25,000 segments x 1,000,000 reports).
  --history 1 adds a week of as many reports before the ranked one: a real week's
  recurrences (recurrence_days = 7 in formula v1) need the last report before it of each
  segment and category, one more aggregation over that week.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from roadwatch.categories import load_categories  # noqa: E402
from roadwatch.ranking.formula import load_formula  # noqa: E402
from roadwatch.ranking.publish import canonical, compute, default_as_of  # noqa: E402
from roadwatch.ranking.week import Week  # noqa: E402
from roadwatch.settings import load_settings  # noqa: E402
from roadwatch.store import db  # noqa: E402

FILL = """
INSERT INTO districts (code, name, kind, geometry)
SELECT 'D' || d, '区' || d, 'district', '{}' FROM generate_series(0, 7) d;
INSERT INTO segments (id, name, road, from_road, to_road, district, road_class, length_m,
                      geometry, version)
SELECT 'S' || i, '路' || i || '（甲至乙）', '路' || i, '甲', '乙', 'D' || (i % 8),
       (ARRAY['local','secondary','arterial'])[1 + i % 3], 100 + (i * 7919) % 1400,
       '{"type":"LineString","coordinates":[[113.6,34.7],[113.61,34.71]]}', 1
FROM generate_series(0, :segs - 1) i;
INSERT INTO reporters (id, name, kind)
SELECT 'c' || i, '路长' || i, 'person' FROM generate_series(0, :segs - 1) i;
INSERT INTO reporters (id, name, kind)
SELECT 'ev' || i, '测评' || i, 'evaluator' FROM generate_series(0, 49) i;
INSERT INTO assignments (segment_id, reporter_id, level, role, valid_from)
SELECT 'S' || i, 'c' || i, 3, 'road_chief', '2026-01-01' FROM generate_series(0, :segs - 1) i;
"""
REPORTS = """
INSERT INTO reports (id, reporter_id, category, scheme, severity, photos, observed_at,
  received_at, crs, segment_id, district, status, transport, raw, case_status, due_at,
  rectified_at, closed_at, escalation_level, overdue)
SELECT md5((i + :id0)::text)::uuid::text,
       CASE WHEN i % 5 = 0 THEN 'ev' || (i % 50) WHEN i % 3 = 0 THEN 'c' || s
            ELSE 'p' || (i % 997) END,
       (ARRAY['E0102','E0201','E0504','E0505','C0101','E0104'])[1 + i % 6], 'GB/T30428.2-2013',
       1 + (i % 7 = 0)::int + (i % 13 = 0)::int, '[]', t, t, 'WGS84', 'S' || s, 'D' || (s % 8),
       'accepted', 'mqtt', '\\x7b7d', CASE WHEN i % 4 = 0 THEN 'closed' ELSE 'dispatched' END,
       t + interval '4 hours',
       CASE WHEN i % 2 = 0 THEN t + interval '3 hours' END,
       CASE WHEN i % 4 = 0 THEN t + interval '5 hours' END, 0, false
FROM (SELECT i, (hashtext(i::text) & 2147483647) % :segs AS s,
             timestamp '2026-11-15 16:00' - :back * interval '7 days'
               + (i % 604800) * interval '1 second' AS t
      FROM generate_series(1, :n) i) x;
INSERT INTO report_transitions (report_id, at, from_status, to_status, by)
SELECT md5((i + :id0)::text)::uuid::text,
       timestamp '2026-11-22 10:00' - :back * interval '7 days', 'rectified', 'reopened', 'b'
FROM generate_series(1, :n, 50) i;
"""


def run_case(admin: str, segs: int, n: int, history: int = 0) -> None:
    import psycopg

    name = f"rw_bench_rank_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin.rsplit("/", 1)[0] + f"/{name}"
    engine = db.make_engine(url)
    try:
        db.upgrade(engine)
        t0 = time.perf_counter()
        with engine.begin() as conn:
            # load fast: the ranking reads none of the ingest path's secondary indexes but
            # the segment's (the drill-downs and the exact path read a few segments)
            for ix in (
                "ix_reports_reporter_id",
                "ix_reports_category",
                "ix_reports_received_at",
                "ix_reports_district",
                "ix_reports_status",
                "ix_reports_assignee_id",
                "ix_reports_updated_at",
                "ix_reports_case_clock",
                "ix_reports_new_cases",
                "ix_reports_open_cases",
            ):
                conn.execute(text(f"DROP INDEX IF EXISTS {ix}"))
            for stmt in FILL.strip().split(";\n"):
                conn.execute(text(stmt), {"segs": segs})
            # the ranked week, then `history` weeks before it as busy as it (a real week's
            # recurrences read the reports of the recurrence_days before it)
            for back in range(history + 1):
                for stmt in REPORTS.strip().split(";\n"):
                    conn.execute(text(stmt), {"segs": segs, "n": n, "back": back, "id0": back * n})
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
        load = time.perf_counter() - t0
        settings = load_settings(env={})
        formula = load_formula(None, load_categories().codes)
        week = Week.parse("2026-W47", settings.tz)
        as_of = default_as_of(week, 8)
        with engine.connect() as conn:
            t0 = time.perf_counter()
            base = conn.execute(
                text("SELECT count(*) FROM reports WHERE observed_at >= :a AND observed_at < :b"),
                {"a": week.start.replace(tzinfo=None), "b": week.end.replace(tzinfo=None)},
            ).scalar()
            baseline = time.perf_counter() - t0
            times = []
            phases: dict[str, float] = {}
            for _ in range(2 if n <= 1_000_000 else 1):
                t0 = time.perf_counter()
                phases = {}
                content = compute(conn, formula, week, as_of, phases)
                times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            frozen = canonical(content)
            freeze = time.perf_counter() - t0
            digest = hashlib.sha256(frozen.encode("utf-8")).hexdigest()
            # After the cut-off the week's cases go on: 1 % of them changed, each with a
            # version of its state before (what staff actions write). The recomputation then
            # reads every report through the versions; the content must not change.
            conn.commit()
            conn.execute(
                text(
                    "INSERT INTO report_versions (report_id, changed_at, segment_id,"
                    " case_status, due_at, rectified_at, closed_at)"
                    " SELECT id, :later, segment_id, case_status, due_at, rectified_at,"
                    " closed_at FROM reports WHERE observed_at >= :a AND observed_at < :b"
                    " AND hashtext(id) % 100 = 0"
                ),
                {
                    "later": (as_of + (week.end - week.start) / 7).replace(tzinfo=None),
                    "a": week.start.replace(tzinfo=None),
                    "b": week.end.replace(tzinfo=None),
                },
            )
            conn.commit()
            changed_times = []
            for _ in range(2 if n <= 1_000_000 else 1):
                t0 = time.perf_counter()
                again = compute(conn, formula, week, as_of)
                changed_times.append(time.perf_counter() - t0)
            same = canonical(again) == frozen
        units = sum(lg["units"] for lg in content["leagues"])
        found = sum(lg["findings"] for lg in content["leagues"] if lg["kind"] == "segment")
        flags = sum(len(lg["red"]) + len(lg["black"]) for lg in content["leagues"])
        before = f" (+ {history} week(s) of as many before it)" if history else ""
        print(
            f"{segs:>9,} segments x {n:>11,} reports{before}: rank {min(times):6.2f} s "
            f"(runs {', '.join(f'{t:.2f}' for t in times)}); baseline count(*) of the week "
            f"{baseline:.2f} s ({base:,} rows); {units:,} units, {found:,} findings, "
            f"{flags} flags; canonical JSON {len(frozen) / 1e6:.1f} MB in {freeze:.2f} s "
            f"(sha256 {digest[:12]}); data generated in {load:.0f} s; "
            f"load average {os.getloadavg()[0]:.1f} after"
        )
        print("    last run by phase: " + ", ".join(f"{k} {v:.2f} s" for k, v in phases.items()))
        print(
            f"    with 1 % of the week's cases changed after the cut-off (read as they were): "
            f"rank {min(changed_times):6.2f} s (runs {', '.join(f'{t:.2f}' for t in changed_times)}"
            f"); content {'the same' if same else 'DIFFERENT: a defect'}"
        )
    finally:
        engine.dispose()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="of the big case")
    ap.add_argument("--big", action="store_true", help="also run the 250,000 x 10 M case")
    ap.add_argument(
        "--history",
        type=int,
        default=0,
        help="weeks of as many reports before the ranked one (recurrences read them)",
    )
    ap.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/test")
    args = ap.parse_args()
    # The machine is shared: say how busy it is, and how fast one Python core runs now.
    t0 = time.perf_counter()
    total = 0
    for i in range(5_000_000):
        total += i
    print(
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; a 5 M-step Python "
        f"loop takes {time.perf_counter() - t0:.2f} s now (about 0.25 s on an idle core)"
    )
    run_case(args.database, 2495, 100_000, args.history)
    if args.big:
        big = int(250_000 * args.scale), int(10_000_000 * args.scale)
        run_case(args.database, *big, args.history)


if __name__ == "__main__":
    main()
