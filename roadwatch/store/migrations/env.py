"""Alembic environment: the engine comes from roadwatch.store.db.upgrade (config.attributes)."""

from __future__ import annotations

from alembic import context

from roadwatch.store.models import Base

config = context.config
engine = config.attributes.get("engine")
if engine is None:  # `alembic` CLI use: build one from the settings
    from roadwatch.settings import load_settings
    from roadwatch.store.db import make_engine

    engine = make_engine(load_settings().database_url)

with engine.begin() as connection:
    if connection.dialect.name == "postgresql":
        # A migration may rewrite a big table: the roles' statement timeout is not for it.
        connection.exec_driver_sql("SET LOCAL statement_timeout = 0")
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
