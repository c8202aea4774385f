"""Case list benchmark (issue 19 acceptance c). A script, not a test: it prints figures.

Fills a private PostgreSQL database (created here, dropped at the end) with N cases on the
demo network (default 100,000: spread over 90 days, every district, state, category and
severity, a share overdue, notes drawn from everyday wordings of which a few per cent say
占道), then times GET /api/cases through the whole web stack (Flask test client, a logged-in
admin, JSON out): the first page, filtered pages, and text searches including the
two-character term 占道 (a plain substring scan: a trigram index cannot serve two
characters). Each query runs --repeat times; the median and the worst are printed, beside
GET /api/reports's first page as the baseline of the same run.

Targets: first page and a filtered page < 300 ms, a text search < 500 ms.

Usage: .venv/bin/python bench/bench_cases.py [--cases 100000] [--repeat 7]
       [--database postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import re
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from roadwatch.accounts.users import add_user  # noqa: E402
from roadwatch.runtime import Runtime  # noqa: E402
from roadwatch.settings import load_settings  # noqa: E402
from roadwatch.store import models  # noqa: E402
from roadwatch.store.bulk import insert_rows  # noqa: E402
from roadwatch.web import create_app  # noqa: E402

NOTES = [
    "店外经营，占用人行道约20米",
    "机动车乱停放，堵塞非机动车道",
    "垃圾满溢，周边有异味",
    "路面破损，坑洼积水",
    "小广告张贴在电线杆上",
    "共享单车乱停放",
    "施工围挡破损",
    "门口占道经营水果摊",
    "井盖缺失，存在安全隐患",
    "夜间露天烧烤，油烟扰民",
    "行道树倒伏",
    "沿街晾晒衣物",
    None,
]
CATEGORIES = ["E0504", "E0505", "E0102", "E0110", "E0201", "E0506", "E0303", "C0102", "E0510"]
STATES = (
    ["dispatched"] * 30
    + ["closed"] * 50
    + ["rectified"] * 8
    + ["reopened"] * 4
    + ["invalid"] * 4
    + ["duplicate"] * 4
)
PASSWORD = "bench password 19"
BLANK = {c.name: None for c in models.Report.__table__.columns}  # every column, then the set ones


def rows(n: int, rt: Any, now: dt.datetime) -> list[dict[str, Any]]:
    segs = rt.ctx.network.segments
    people = sorted({a.person_id for a in rt.ctx.network.assignments})
    rng = random.Random(19)
    out = []
    for _ in range(n):
        s = rng.choice(segs)
        seen = now - dt.timedelta(minutes=rng.randint(5, 90 * 24 * 60))
        state = rng.choice(STATES)
        due = seen + dt.timedelta(hours=rng.randint(2, 96))
        note = rng.choice(NOTES)
        out.append(
            {
                **BLANK,
                "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "reporter_id": rng.choice(people),
                "category": rng.choice(CATEGORIES),
                "scheme": "GB/T30428.2-2013",
                "severity": rng.choice((1, 1, 2, 2, 3)),
                "note": note,
                "photos": [],
                "observed_at": seen,
                "received_at": seen,
                "crs": "WGS84",
                "segment_id": s.id,
                "segment_version": 1,
                "district": s.district,
                "status": "accepted",
                "transport": "bench",
                "raw": b"{}",
                "case_status": state,
                "assignee_id": rng.choice(people),
                "dispatched_at": seen,
                "due_at": due,
                "escalation_level": 0,
                "next_escalation_at": due if state in ("dispatched", "reopened") else None,
                "overdue": False,
                "due_provisional": False,
                "updated_at": seen,
            }
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/test")
    args = ap.parse_args()

    import psycopg

    name = f"rw_cases_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.database, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = args.database.rsplit("/", 1)[0] + f"/{name}"
    try:
        rt = Runtime.build(load_settings(overrides={"database_url": url}))
        now = dt.datetime.now(dt.UTC)
        data = rows(args.cases, rt, now)
        t0 = time.perf_counter()
        with rt.engine.begin() as conn:
            for i in range(0, len(data), 10_000):
                insert_rows(conn, models.Report.__table__, data[i : i + 10_000])  # type: ignore[arg-type]
        # what autovacuum does soon after a bulk load: statistics and the visibility map
        # (so that counting can read an index alone)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE reports")
        with_term = sum(1 for r in data if r["note"] and "占道" in r["note"])
        print(
            f"{args.cases:,} cases written in {time.perf_counter() - t0:.1f} s "
            f"({with_term:,} notes say 占道)"
        )
        with rt.sessions.begin() as session:
            add_user(session, "bench", PASSWORD, "admin", None)
        app, _ = create_app(rt)
        client = app.test_client()
        token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").get_data(True))
        assert token
        res = client.post(
            "/login", data={"username": "bench", "password": PASSWORD, "csrf": token[1]}
        )
        assert res.status_code == 302

        today = now.astimezone(rt.settings.tz).date()
        week = (today - dt.timedelta(days=7)).isoformat()
        district = app.test_client()
        with rt.sessions.begin() as session:
            add_user(session, "bench-js", PASSWORD, "district_staff", "JS")
        token = re.search(r'name="csrf" value="([^"]+)"', district.get("/login").get_data(True))
        assert token
        res = district.post(
            "/login", data={"username": "bench-js", "password": PASSWORD, "csrf": token[1]}
        )
        assert res.status_code == 302
        queries = [
            ("baseline: /api/reports first 50", "/api/reports?limit=50", None),
            ("first page (newest 50)", "/api/cases", 300),
            ("district user's first page (JS)", "@/api/cases", 300),
            (
                "filtered: JS overdue by deadline",
                "/api/cases?district=JS&status=overdue&sort=due_at",
                300,
            ),
            (
                "filtered: 金水区 open, severity 3",
                "/api/cases?district=金水区&status=dispatched,reopened&severity=3",
                300,
            ),
            ("filtered: E0504 this week", f"/api/cases?category=E0504&since={week}", 300),
            ("filtered: page 20 of all", "/api/cases?offset=1000", 300),
            ("text: 占道", "/api/cases?q=占道", 500),
            ("text: 占道 in JS overdue", "/api/cases?q=占道&district=JS&status=overdue", 500),
            ("text: 乱停放", "/api/cases?q=乱停放", 500),
            ("text: a road name (花园路)", "/api/cases?q=花园路", 500),
            ("text: nothing matches", "/api/cases?q=不存在的词", 500),
        ]
        print(f"{'query':40} {'median ms':>10} {'worst ms':>9} {'total':>8} {'target':>7}  ok")
        base = None
        failed = 0
        for label, path, target in queries:
            times = []
            body: Any = None
            for _ in range(args.repeat):
                t = time.perf_counter()
                who = district if path.startswith("@") else client
                res = who.get(path.lstrip("@"))
                times.append((time.perf_counter() - t) * 1000)
                assert res.status_code == 200, (path, res.get_json())
                body = res.get_json()
            med = statistics.median(times)
            if base is None:
                base = med
            total = body.get("total", "–")
            ok = "" if target is None else ("yes" if med < target else "NO")
            failed += ok == "NO"
            print(
                f"{label:40} {med:10.1f} {max(times):9.1f} {total!s:>8} "
                f"{target or '':>7}  {ok}  ({med / base:.1f}× baseline)"
            )
        print("all within target" if not failed else f"{failed} queries over target")
        rt.stop()
    finally:
        with psycopg.connect(args.database, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
