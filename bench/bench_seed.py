"""Demo seed benchmark (issue 17 acceptance d). A script, not a test: it prints figures.

Seeds a new SQLite database in a temporary folder with `roadwatch demo seed` (default: eight
weeks of the whole demo city, as `run.sh` does on its first start) and prints the wall and
CPU time, the machine's load, what was made and the published hashes (the same --seed and
--until give the same hashes on any machine and at any speed).

Usage: .venv/bin/python bench/bench_seed.py [--weeks 8] [--seed 1]
       [--until 2026-12-06T12:00:00+08:00] [--districts EQ,GC] [--keep DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from roadwatch.demo.seed import Seeder  # noqa: E402
from roadwatch.settings import load_settings  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--weeks", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--until", type=dt.datetime.fromisoformat, default=None)
    ap.add_argument("--districts", default=None)
    ap.add_argument("--keep", help="seed into this folder and keep it (default: a temporary one)")
    args = ap.parse_args()
    folder = Path(args.keep or tempfile.mkdtemp(prefix="rw-seed-"))
    folder.mkdir(parents=True, exist_ok=True)
    settings = load_settings(
        env={},
        overrides={
            "database_url": f"sqlite:///{folder / 'roadwatch.sqlite3'}",
            "photo_dir": str(folder / "photos"),
        },
    )
    load0 = os.getloadavg()[0]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = Seeder(
        settings,
        weeks=args.weeks,
        seed=args.seed,
        until=args.until,
        districts=args.districts.split(",") if args.districts else None,
    ).run()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    c = result.counts
    print(f"demo seed, {args.weeks} weeks, seed {args.seed}, SQLite in {folder}")
    print(
        f"  wall {wall:.1f} s, CPU {cpu:.1f} s (load average {load0:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after, {os.cpu_count()} cores)"
    )
    print(
        f"  {c['report:accepted']:,} reports, {c['rectification:accepted']:,} rectifications, "
        f"{c['verification:closed']:,} closed, {c['verification:reopened']:,} reopened, "
        f"{c['patrol:accepted']:,} patrols, {c['overdue']:,} escalations, "
        f"{c['disputes']} disputes, {len(result.weeks)} weeks published"
    )
    for label, content, chain in result.weeks:
        print(f"  {label}  content {content}  chain {chain[:16]}")


if __name__ == "__main__":
    main()
