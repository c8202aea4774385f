"""`roadwatch apikeys add | list | revoke`: API keys for HTTP intake."""

from __future__ import annotations

import sys

import click

from .common import CommandError, database


@click.group(help="API keys for HTTP intake (POST /api/reports, /api/photos): one reporter each")
def apikeys() -> None:
    pass


@apikeys.command(help="a new key (printed once) for one reporter or city system")
@click.option("--reporter", metavar="ID", help="a registered reporter the key files as")
@click.option(
    "--system",
    metavar="NAME",
    help="a city system: registered as a reporter of kind system, the key files as it",
)
@click.option("--label", help="what the key is for (shown by list)")
def add(reporter: str | None, system: str | None, label: str | None) -> int:
    if (reporter is None) == (system is None):
        raise click.UsageError("give one of --reporter ID or --system NAME")
    from ..accounts.apikeys import ApiKeyError, add_key

    try:
        with database() as made, made.begin() as session:
            new = add_key(session, reporter=reporter, system=system, label=label)
    except ApiKeyError as exc:
        raise CommandError(f"{exc}") from None
    what = "city system" if new.system else "reporter"
    print(
        f"API key {new.id} for {what} {new.reporter_id} (shown only now; keep it secret):",
        file=sys.stderr,
    )
    print(new.key)
    return 0


@apikeys.command("list", help="list keys (never the keys themselves)")
@click.option("--all", "show_all", is_flag=True, help="revoked keys too")
def list_(show_all: bool) -> int:
    from ..accounts.apikeys import list_keys

    with database() as made, made() as session:
        rows = [
            (k.id, k.prefix, k.reporter_id, k.system, k.label, k.created_at, k.revoked_at)
            for k in list_keys(session, include_revoked=show_all)
        ]
    for kid, prefix, rid, system, label, created, revoked in rows:
        state = f"revoked {revoked.isoformat(timespec='seconds')}" if revoked else "active"
        kind = "system" if system else "reporter"
        print(
            f"{kid}\t{prefix}…\t{kind}\t{rid}\t{label or ''}\t"
            f"{created.isoformat(timespec='seconds')}\t{state}"
        )
    print(f"{len(rows)} keys", file=sys.stderr)
    return 0


@apikeys.command(help="revoke a key for good (N: the key's number, from list)")
@click.argument("ident", metavar="N", type=int)
def revoke(ident: int) -> int:
    from ..accounts.apikeys import revoke_key

    with database() as made, made.begin() as session:
        done = revoke_key(session, ident)
    if not done:
        raise CommandError(f"no active API key {ident}") from None
    print(f"API key {ident} revoked")
    return 0
