"""`roadwatch reporters add | list | disable | enable`: reporters holding no segment."""

from __future__ import annotations

import sys

import click

from ..accounts.reporters import KINDS
from .common import CommandError, database


@click.group(help="reporters holding no segment: evaluators (第三方测评), covert checks (暗访)")
def reporters() -> None:
    pass


@reporters.command(
    help="add a reporter or change its kind (the ranking weighs evaluator and covert "
    "findings more: formula [sources]). ID is the reporter id (its MQTT username and "
    "topic level)"
)
@click.argument("ident", metavar="ID")
@click.option("--kind", required=True, type=click.Choice(list(KINDS)))
@click.option("--name", help="display name")
def add(ident: str, kind: str, name: str | None) -> int:
    # ID: the reporter id (its MQTT username and topic level)
    from ..accounts.reporters import ReporterError, save_reporter

    try:
        with database() as made, made.begin() as session:
            saved = save_reporter(session, ident, kind, name)
    except ReporterError as exc:
        raise CommandError(f"{exc}") from None
    if saved.created:
        print(f"added {saved.id} ({saved.kind})")
    elif saved.previous_kind:
        print(f"{saved.id} is now {saved.kind} (was {saved.previous_kind})")
    else:
        print(f"{saved.id} was already {saved.kind}")
    return 0


@reporters.command("list", help="list reporters")
@click.option("--kind", type=click.Choice(list(KINDS)))
def list_(kind: str | None) -> int:
    from ..accounts.reporters import list_reporters

    with database() as made, made() as session:
        people = [(p.id, p.kind, p.name) for p in list_reporters(session, kind)]
    for who, what, called in people:
        print(f"{who}\t{what}\t{called}")
    print(f"{len(people)} reporters", file=sys.stderr)
    return 0


@reporters.command(help="refuse this reporter's messages on every transport (MQTT, HTTP)")
@click.argument("ident", metavar="ID")
def disable(ident: str) -> int:
    return _set_disabled(ident, True)


@reporters.command(help="accept this reporter's messages again")
@click.argument("ident", metavar="ID")
def enable(ident: str) -> int:
    return _set_disabled(ident, False)


def _set_disabled(ident: str, disable: bool) -> int:
    from ..accounts.reporters import set_disabled

    with database() as made, made.begin() as session:
        found = set_disabled(session, ident, disable)
    if not found:
        raise CommandError(f"no reporter {ident!r}") from None
    state = "disabled: its messages are refused" if disable else "enabled again"
    print(f"{ident} is {state} (every process within reporter_cache_s)")
    return 0
