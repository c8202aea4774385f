"""The web role under a production WSGI server (docs/deploy.md, "The web role").

    gunicorn -w 1 --threads 100 -b 127.0.0.1:8001 'roadwatch.web.wsgi:app'

or with the project's configuration (config/deploy/gunicorn.conf.py). Flask-SocketIO in
`async_mode="threading"` (simple-websocket) runs under gunicorn's threaded worker, ONE
worker per process: Socket.IO's sessions live in that process, so several web processes
are several single-worker gunicorns behind nginx with sticky sessions (`ip_hash`) and
`ROADWATCH_SOCKETIO_QUEUE` (Redis), which carries every emit to every process.

This process serves the web app, the API, HTTP intake and the live feed only: no MQTT
session (ingest runs in `roadwatch worker`), no case clock, no ranking schedule. Events of
the worker reach its browsers through the Redis queue. It does not migrate the schema
either: `roadwatch db upgrade` does that once, before the processes start (several web
processes starting together must not race on it); a schema behind the code stops start-up
with one line.

The app is built on first access of `app` (gunicorn imports the module, then reads the
attribute), so importing this module has no side effect.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask

from ..accounts.users import first_admin
from ..runtime import Runtime
from ..settings import Settings, SettingsError, load_settings
from ..store import db
from . import create_app

log = logging.getLogger(__name__)

ROLE = "web"

_lock = threading.Lock()
_built: dict[str, Any] = {}


def _check_schema(engine: Any) -> None:
    """The database is at the code's schema head, or start-up stops with one line."""
    from alembic.script import ScriptDirectory

    heads = set(ScriptDirectory.from_config(db.alembic_config(engine)).get_heads())
    current = db.current_revision(engine)
    if current not in heads:
        raise SettingsError(
            f"ROADWATCH_DATABASE_URL: the database schema is at {current or 'nothing'}, the "
            f"code needs {', '.join(sorted(heads))}: run `roadwatch db upgrade` first"
        )


# Any fixed number: the key of the PostgreSQL advisory lock taken while a web process
# builds its runtime.
_STARTUP_LOCK_KEY = 0x726F6164  # "road"


@contextmanager
def _startup_lock(database_url: str) -> Iterator[None]:
    """One web process at a time builds its runtime on PostgreSQL.

    Runtime.build brings the segment network in the database up to date (sync_network);
    two processes doing that at once on a fresh database both insert the same districts
    and one fails (measured: two gunicorns started together, one died with a unique
    violation on districts). A session-level advisory lock serialises them; the second
    then finds the network in place and changes nothing. SQLite: one writer anyway.
    """
    from sqlalchemy import text

    engine = db.make_engine(database_url)
    try:
        if engine.dialect.name != "postgresql":
            yield
            return
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _STARTUP_LOCK_KEY})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _STARTUP_LOCK_KEY})
                conn.commit()
    finally:
        engine.dispose()


def create_web_app(settings: Settings | None = None, *, migrate: bool = False) -> Flask:
    """The web role's WSGI app: a Runtime without ingest, the Flask app and Socket.IO."""

    settings = settings or load_settings()
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=settings.log_level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
        )
    if not settings.socketio_queue:
        log.warning(
            "web: no ROADWATCH_SOCKETIO_QUEUE: browsers of this process see only what this "
            "process stores (HTTP intake), not the ingest workers' reports"
        )
    if not migrate:
        engine = db.make_engine(settings.database_url)
        try:
            _check_schema(engine)
        finally:
            engine.dispose()
    with _startup_lock(settings.database_url):
        runtime = Runtime.build(settings, migrate=migrate)
        # On an empty database the first web process makes `admin` (docs/deploy.md, "The
        # first admin"); under the lock, so two starting together make one.
        first_admin(runtime)
    runtime.extras["role"] = ROLE
    flask_app, socketio = create_app(runtime)
    # Events this process stores (HTTP intake, review decisions) go out through its own
    # Socket.IO, which with the Redis queue reaches every web process's browsers.
    runtime.broadcaster.emitter = socketio
    runtime.broadcaster.start()  # HTTP requests hand their events over and return
    _built["runtime"] = runtime
    return flask_app


def shutdown() -> None:
    """Release what create_web_app took (gunicorn's worker_exit hook calls this)."""
    runtime = _built.pop("runtime", None)
    _built.pop("app", None)
    if runtime is not None:
        runtime.stop()


def __getattr__(name: str) -> Any:
    if name != "app":
        raise AttributeError(name)
    with _lock:
        if "app" not in _built:
            try:
                _built["app"] = create_web_app()
            except SettingsError as exc:  # e.g. a schema behind the code
                _refuse(f"roadwatch: configuration error: {exc}")
            except Exception as exc:
                if not db.is_outage(exc):
                    raise
                _refuse(
                    "roadwatch: cannot use the database (ROADWATCH_DATABASE_URL): "
                    + db.outage_cause(exc)
                )
        return _built["app"]


# gunicorn's exit code for a worker that could not boot: its master then stops too (and
# systemd restarts the unit), without printing the traceback of an expected refusal.
WORKER_BOOT_ERROR = 3


def _refuse(line: str) -> None:
    log.error("%s", line)
    raise SystemExit(WORKER_BOOT_ERROR)
