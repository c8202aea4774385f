"""`roadwatch demo seed`: weeks of demo history for a new database."""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

import click

from .common import CommandError

SEED = "roadwatch demo seed"


class When(click.ParamType):
    """An ISO 8601 time with its offset."""

    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, dt.datetime):
            return value
        try:
            when = dt.datetime.fromisoformat(value)
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 time", param, ctx)
        if when.tzinfo is None:
            self.fail(f"{value!r} needs an offset, e.g. +08:00", param, ctx)
        return when


@click.group(help="the demo city: weeks of history for a new database")
def demo() -> None:
    pass


@demo.command(
    help="Plays WEEKS weeks of reports, dispatch, rectifications, verifications, "
    "patrols, evaluator and covert checks and disputes up to now, through the pipeline, "
    "the case clock and the ranking schedule on a settable clock, and publishes each "
    "week. Refuses a database that holds anything it did not make.",
    short_help="play weeks of a plausible city through the real code paths, then publish them",
)
@click.option("--weeks", type=int, default=8, help="published weeks to make (default 8)")
@click.option("--seed", type=int, default=1, help="the same seed makes the same history")
@click.option(
    "--until",
    type=When(),
    help="play up to this moment (ISO 8601 with offset; default: now). The published "
    "hashes depend on the seed and the week this falls in",
)
@click.option("--districts", help="only these districts, comma-separated codes (default: all)")
@click.option(
    "--findings",
    type=float,
    default=800.0,
    show_default=True,
    help="findings a week across the whole city",
)
@click.option(
    "--if-new",
    is_flag=True,
    help="do nothing (exit 0) when the database is already a demo (run.sh)",
)
def seed(
    weeks: int,
    seed: int,
    until: dt.datetime | None,
    districts: str | None,
    findings: float,
    if_new: bool,
) -> int:
    import logging

    from ..demo.seed import DemoOptionError, DemoRefused, Seeder, demo_marker
    from ..settings import load_settings

    settings = load_settings()
    logging.basicConfig(level="WARNING", stream=sys.stderr)
    if weeks < 1 or weeks > 52:
        raise CommandError("--weeks must be between 1 and 52", prefix=SEED)
    marker = demo_marker(settings.database_url) if if_new else None
    if marker is not None and marker.get("state") == "seeding":
        # A seed killed midway (kill -9, power, Ctrl-C) left part of its history: run.sh
        # started the platform on it as if it were complete, every time, without a word.
        raise CommandError(
            "this database holds a demo seed that did not finish (interrupted, or still "
            "running): only part of its history; delete the database to seed again "
            "(README, Reseeding)",
            code=3,
            prefix=SEED,
        )
    if marker is not None:
        print(f"{SEED}: this database is already a demo; not seeding again", file=sys.stderr)
        return 0
    only = [d.strip() for d in districts.split(",") if d.strip()] if districts else None
    try:
        result = Seeder(
            settings,
            weeks=weeks,
            seed=seed,
            until=until,
            districts=only,
            findings_per_week=findings,
        ).run()
    except DemoRefused as exc:
        raise CommandError(f"refused: {exc}", code=3, prefix=SEED) from None
    except DemoOptionError as exc:
        raise CommandError(f"{exc}", prefix=SEED) from None
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
