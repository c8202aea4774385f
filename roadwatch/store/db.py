"""Engine, sessions and schema upgrades (Alembic, driven from code so no alembic.ini is needed)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def make_engine(url: str, *, connect_timeout_s: float = 0, statement_timeout_ms: int = 0) -> Engine:
    """An engine with the settings each backend needs for a busy ingest path.

    The timeouts (0 = none; `engine_for` passes the settings'): a database that does not
    answer makes a connect or a statement fail after that long, so ingest retries and
    `/healthz` turns unhealthy instead of a thread blocking silently. SQLite has no
    network: its `timeout` is how long a statement waits for another writer's lock (30 s
    when no statement timeout is given).
    """
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite"):
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={
                "check_same_thread": False,
                "timeout": statement_timeout_ms / 1000 if statement_timeout_ms else 30,
            },
            use_insertmanyvalues=False,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # WAL lets the web threads read while the ingest thread writes.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    connect_args: dict[str, Any] = {}
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
        # psycopg 3 is the driver we install.
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        if connect_timeout_s:
            # libpq counts whole seconds (at least 2); keepalives notice a dead peer.
            connect_args["connect_timeout"] = max(2, round(connect_timeout_s))
            connect_args.update(keepalives=1, keepalives_idle=10, keepalives_interval=5)
            connect_args["keepalives_count"] = 3
        if statement_timeout_ms:
            connect_args["options"] = f"-c statement_timeout={int(statement_timeout_ms)}"
    # use_insertmanyvalues=False: bulk inserts go to psycopg's pipelined executemany of one
    # prepared statement (we need no RETURNING), which parses the SQL once, not per batch.
    return create_engine(
        url,
        pool_size=10,
        max_overflow=10,
        pool_pre_ping=True,
        use_insertmanyvalues=False,
        connect_args=connect_args,
        # A pool exhausted by threads stuck on a hung database: fail, don't queue forever.
        pool_timeout=max(connect_timeout_s, 1.0) if connect_timeout_s else 30,
    )


def engine_for(settings: Any) -> Engine:
    """The engine of a long-running role: the settings' URL with their database timeouts."""
    return make_engine(
        settings.database_url,
        connect_timeout_s=settings.db_connect_timeout_s,
        statement_timeout_ms=settings.db_statement_timeout_ms,
    )


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` (idempotent)."""
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


# pg_advisory_lock key of the start-up work (migrations, network sync): "roadwatch" in ASCII
STARTUP_LOCK = 0x726F616477617463


@contextmanager
def startup_lock(engine: Engine) -> Iterator[None]:
    """Processes started together (several ingest workers, web instances) migrate and sync
    the network one after the other: two at once on a fresh database both inserted the
    districts, and one died of the unique key (measured, two workers under systemd)."""
    if engine.dialect.name != "postgresql":
        yield  # SQLite: one process, and its own write lock
        return
    with engine.connect() as conn:
        # Waiting for another process's migration and network sync is no hung statement.
        conn.execute(text("SET LOCAL statement_timeout = 0"))
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": STARTUP_LOCK})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": STARTUP_LOCK})
            conn.commit()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def dialect_of(conn: Connection | Session) -> str:
    bind = conn.get_bind() if isinstance(conn, Session) else conn
    return bind.dialect.name


def is_outage(exc: BaseException) -> bool:
    """Is this the database being away (retry later), rather than a bug or refused data?"""
    if isinstance(exc, OperationalError | InterfaceError | DisconnectionError | PoolTimeout):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return False
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


def outage_cause(exc: BaseException) -> str:
    """The driver's own first line (refused, shutting down, too many connections…)."""
    cause = getattr(exc, "orig", None) or exc
    return (str(cause).strip().splitlines() or [type(cause).__name__])[0]


def log_failed_pass(logger: logging.Logger, what: str, exc: BaseException, retry: str) -> None:
    """A background job's pass failed: while the database is away one plain line (the
    driver's own first line: refused, shutting down, too many connections…), since a
    traceback a second per job thread buries the cause in the journal; a traceback for
    anything else, which is a bug."""
    if is_outage(exc):
        logger.error("%s: the database is unavailable (%s); %s", what, outage_cause(exc), retry)
    else:
        logger.error("%s failed; %s", what, retry, exc_info=exc)
