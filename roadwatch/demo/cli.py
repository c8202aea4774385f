"""`roadwatch demo …`: the command line of the demo city (registered by roadwatch.cli)."""

from __future__ import annotations

import argparse
import datetime as dt
import sys


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    d = sub.add_parser("demo", help="the demo city: weeks of history for a new database")
    dsub = d.add_subparsers(dest="demo_command", required=True)
    s = dsub.add_parser(
        "seed",
        help="play weeks of a plausible city through the real code paths, then publish them",
        description="Plays WEEKS weeks of reports, dispatch, rectifications, verifications, "
        "patrols, evaluator and covert checks and disputes up to now, through the pipeline, "
        "the case clock and the ranking schedule on a settable clock, and publishes each "
        "week. Refuses a database that holds anything it did not make.",
    )
    s.add_argument("--weeks", type=int, default=8, help="published weeks to make (default 8)")
    s.add_argument("--seed", type=int, default=1, help="the same seed makes the same history")
    s.add_argument(
        "--until",
        type=_when,
        help="play up to this moment (ISO 8601 with offset; default: now). The published "
        "hashes depend on the seed and the week this falls in",
    )
    s.add_argument("--districts", help="only these districts, comma-separated codes (default: all)")
    s.add_argument(
        "--findings", type=float, default=800.0, help="findings a week across the whole city"
    )
    s.add_argument(
        "--if-new",
        action="store_true",
        help="do nothing (exit 0) when the database is already a demo (run.sh)",
    )
    s.set_defaults(func=cmd_demo_seed)


def _when(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs an offset, e.g. +08:00")
    return value


def cmd_demo_seed(args: argparse.Namespace) -> int:
    import logging

    from ..settings import load_settings
    from .seed import DemoRefused, Seeder, demo_marker

    settings = load_settings()
    logging.basicConfig(level="WARNING", stream=sys.stderr)
    if args.weeks < 1 or args.weeks > 52:
        print("roadwatch demo seed: --weeks must be between 1 and 52", file=sys.stderr)
        return 2
    if args.if_new and demo_marker(settings.database_url) is not None:
        print(
            "roadwatch demo seed: this database is already a demo; not seeding again",
            file=sys.stderr,
        )
        return 0
    districts = (
        [d.strip() for d in args.districts.split(",") if d.strip()] if args.districts else None
    )
    try:
        result = Seeder(
            settings,
            weeks=args.weeks,
            seed=args.seed,
            until=args.until,
            districts=districts,
            findings_per_week=args.findings,
        ).run()
    except DemoRefused as exc:
        print(f"roadwatch demo seed: refused: {exc}", file=sys.stderr)
        return 3
    c = result.counts
    print(
        f"demo seed: {len(result.weeks)} weeks published in {result.seconds:.1f} s "
        f"({c['report:accepted']:,} reports, {c['rectification:accepted']:,} rectifications, "
        f"{c['verification:closed']:,} closed, {c['verification:reopened']:,} reopened, "
        f"{c['patrol:accepted']:,} patrols, {c['disputes']} disputes)"
    )
    for label, content, chain in result.weeks:
        print(f"  {label}  content {content[:16]}  chain {chain[:16]}")
    return 0
