"""`roadwatch backup OUT [--keep N]` and `roadwatch restore DIR [--replace]` (the work is in
roadwatch.backup)."""

from __future__ import annotations

import json

import click

from .common import CommandError


@click.command(
    help="back up the database (pg_dump -Fc / SQLite backup) and the photos into "
    "OUT/roadwatch-<time>/"
)
@click.argument("out")
@click.option("--keep", type=int, help="keep only this many newest backups there")
def backup(out: str, keep: int | None) -> int:
    from ..backup import MANIFEST, BackupError
    from ..backup import backup as make_backup
    from ..settings import load_settings

    try:
        where = make_backup(load_settings(), out, keep=keep)
    except BackupError as exc:
        raise CommandError(f"backup: {exc}") from None
    manifest = json.loads((where / MANIFEST).read_text(encoding="utf-8"))
    print(f"backup written: {where} ({manifest['database']}, {manifest['photos']} photos)")
    return 0


@click.command(
    help="restore a backup into an empty database and the photos; DIR is a "
    "roadwatch-<time>/ directory written by `roadwatch backup`"
)
@click.argument("folder", metavar="DIR")
@click.option("--replace", is_flag=True, help="drop what the database holds first")
def restore(folder: str, replace: bool) -> int:
    from ..backup import BackupError
    from ..backup import restore as restore_backup
    from ..settings import load_settings

    try:
        manifest = restore_backup(load_settings(), folder, replace=replace)
    except BackupError as exc:
        raise CommandError(f"restore: {exc}") from None
    print(
        f"restored {folder}: {manifest['database']} at schema "
        f"{manifest['schema_revision']}, {manifest['photos']} photos; run `roadwatch db "
        "upgrade` if this release's schema is newer"
    )
    return 0
