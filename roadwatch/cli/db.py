"""`roadwatch db upgrade [REVISION]`: the database schema."""

from __future__ import annotations

import click

from .common import CommandError, settings_for, setup_logging


@click.group(help="database schema")
def db() -> None:
    pass


@db.command(help="apply migrations")
@click.argument("revision", default="head")
def upgrade(revision: str) -> int:
    settings = settings_for()
    setup_logging(settings.log_level)
    from alembic.util import CommandError as AlembicError

    from ..store import db as store

    engine = store.make_engine(settings.database_url)
    try:
        store.upgrade(engine, revision)
    except AlembicError as exc:
        raise CommandError(f"cannot upgrade to {revision!r}: {exc}") from None
    finally:
        engine.dispose()
    print(f"database at revision {store.current_revision(engine)}")
    return 0
