"""`roadwatch` command line (README, "Command line").

One module per command group, each command's options beside its handler; this module holds
the group and the ONE place that turns a failure into a message and an exit code:

  a command's return value            that exit code (0 when it returns nothing)
  CommandError (a command refuses)    `roadwatch: MESSAGE`, its code (2 unless it says)
  SettingsError                       `roadwatch: configuration error: …`, 2
  a missing file                      `roadwatch: …`, 2
  a database it cannot use            `roadwatch: cannot use the database (…): …`, 2
  a wrong option or argument          click's usage message, 2
  Ctrl-C                              130
"""

from __future__ import annotations

from typing import Any

import click
from sqlalchemy.exc import OperationalError

from ..settings import SettingsError
from . import apikeys, backup, bench, chiefs, db, demo, jobs, network, rank, reporters, serve, users
from . import simulate as simulate_cmd
from . import web as web_cmd
from .common import CommandError
from .review import review  # issue 22: the monthly review pack

__all__ = ["CommandError", "main"]


def _fail(text: str, code: int) -> click.exceptions.Exit:
    click.echo(text, err=True)
    return click.exceptions.Exit(code)


class RoadwatchGroup(click.Group):
    """The top-level group: maps what a command returns or raises to an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            code = super().invoke(ctx)
        except CommandError as exc:
            raise _fail(f"{exc.prefix}: {exc}", exc.code) from None
        except SettingsError as exc:
            raise _fail(f"roadwatch: configuration error: {exc}", 2) from None
        except FileNotFoundError as exc:  # a path the user gave, in their words
            if exc.filename is None:
                raise _fail(f"roadwatch: {exc}", 2) from None
            raise _fail(f"roadwatch: {exc.filename}: no such file; check the path", 2) from None
        except OperationalError as exc:
            reason = str(exc.orig or exc).strip().splitlines()[0]
            raise _fail(
                f"roadwatch: cannot use the database (ROADWATCH_DATABASE_URL): {reason}", 2
            ) from None
        except KeyboardInterrupt:
            raise click.exceptions.Exit(130) from None
        if isinstance(code, int) and not isinstance(code, bool) and code:
            raise click.exceptions.Exit(code)
        return code


@click.group(
    "roadwatch", cls=RoadwatchGroup, context_settings={"help_option_names": ["-h", "--help"]}
)
def main() -> None:
    """roadwatch: road-condition reports from road chiefs' phones to the command centre."""


for command in (
    serve.serve,
    serve.worker,
    jobs.jobs,
    db.db,
    network.network,
    chiefs.chiefs,
    reporters.reporters,
    apikeys.apikeys,
    users.users,
    simulate_cmd.simulate,
    rank.rank,
    review,
    demo.demo,
    bench.bench,
    backup.backup,
    backup.restore,
    web_cmd.web,
):
    main.add_command(command)
