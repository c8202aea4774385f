"""Shared fixtures: settings, databases (SQLite always, PostgreSQL when it runs), a runtime.

Under ./test.sh (ROADWATCH_REQUIRE_SERVICES=1, as in CI) a missing PostgreSQL, Mosquitto or
Redis FAILS the tests that need it; a developer's bare `pytest` skips them instead.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import delete

from roadwatch.network.context import NetworkContext, load_network_context
from roadwatch.settings import Settings, load_settings
from roadwatch.store import models

if TYPE_CHECKING:
    from flask import Flask
    from flask.testing import FlaskClient

REQUIRE_SERVICES = os.environ.get("ROADWATCH_REQUIRE_SERVICES") == "1"
PG_ADMIN_URL = os.environ.get("ROADWATCH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
MOSQUITTO = ("127.0.0.1", 1883)


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def need_service(name: str, host: str, port: int) -> None:
    if port_open(host, port):
        return
    message = f"{name} is not reachable on {host}:{port}"
    if REQUIRE_SERVICES:
        pytest.fail(message + " (required under ./test.sh and in CI)", pytrace=False)
    pytest.skip(message)


def make_settings(tmp: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp / 'roadwatch.sqlite3'}",
        "photo_dir": str(tmp / "photos"),
        "mqtt_client_id": f"rw-test-{uuid.uuid4().hex[:8]}",
        "embedded_broker": "never",
    }
    values.update(overrides)
    return load_settings(env={}, overrides=values)


_LOADED: list[NetworkContext] = []


@pytest.fixture(scope="session")
def network_ctx() -> NetworkContext:
    """The bundled demo network with its indexes, loaded once per test session."""
    ctx = load_network_context(load_settings(env={}))
    _LOADED.append(ctx)
    return ctx


@pytest.fixture(autouse=True)
def _phones_learnt_per_test() -> None:
    """What the shared network context learnt of phones (geo.phones) starts empty in
    every test, like the report tables: no test's reporters weigh on another's."""
    for ctx in _LOADED:
        if ctx.phones is not None:
            ctx.phones.clear()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    need_service("PostgreSQL", "127.0.0.1", 5432)
    import psycopg

    name = f"rw_test_{uuid.uuid4().hex[:10]}"
    admin = PG_ADMIN_URL.replace("postgresql://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def fresh_pg() -> Iterator[str]:
    """A PostgreSQL database of this test's own, dropped afterwards."""
    need_service("PostgreSQL", "127.0.0.1", 5432)
    import psycopg

    name = f"rw_own_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _backend_params() -> list[Any]:
    return ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)]


@pytest.fixture(scope="session")
def _runtimes(
    tmp_path_factory: pytest.TempPathFactory, network_ctx: NetworkContext
) -> Iterator[dict[str, Any]]:
    cache: dict[str, Any] = {}
    yield cache
    for rt in cache.values():
        rt.stop()


@pytest.fixture(params=_backend_params())
def runtime(
    request: pytest.FixtureRequest,
    _runtimes: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
    network_ctx: NetworkContext,
) -> Iterator[Any]:
    """A Runtime (no MQTT) on SQLite and on PostgreSQL, with empty report tables."""
    from roadwatch.runtime import Runtime

    backend = request.param
    if backend not in _runtimes:
        tmp = tmp_path_factory.mktemp(f"rt-{backend}")
        url = None
        if backend == "postgresql":
            url = request.getfixturevalue("pg_database")
        settings = make_settings(tmp, **({"database_url": url} if url else {}))
        _runtimes[backend] = Runtime.build(settings, ctx=network_ctx)
    rt = _runtimes[backend]
    if rt.ctx.phones is not None:  # what the ctx learnt of phones, like the tables: per test
        rt.ctx.phones.clear()
    rt.ctx.recent.clear()  # and the patrol tracks it noted, like the patrol tables below
    dispatcher = getattr(rt.pipeline, "dispatcher", None)
    if dispatcher is not None:  # the assignments it read in the last seconds: tests change them
        dispatcher.holders.clear()
    with rt.sessions.begin() as session:
        for table in (
            models.Event,
            models.ReportTransition,
            models.ReportVersion,
            models.CaseMessage,
            models.ExtensionRequest,
            models.ParkedMessage,
            models.SnapLabel,
            models.NoticeOutbox,
            models.Report,
            models.RejectedMessage,
            models.PatrolCoverage,
            models.PatrolPoint,
            models.Patrol,
        ):
            session.execute(delete(table))
    yield rt


@pytest.fixture
def runner() -> Any:
    """click's CLI runner: `runner.invoke(main, [...])` runs the `roadwatch` command line in this
    process and gives back its exit code, stdout and stderr (`result.stdout`, `result.stderr`)."""
    from click.testing import CliRunner

    return CliRunner()


@pytest.fixture
def app(runtime: Any) -> Iterator[Flask]:
    """The Flask app (`create_app`) on `runtime`, so on SQLite and on PostgreSQL.

    A module that needs other settings, another runtime or a live server builds its own and says
    why beside it."""
    from roadwatch.web import create_app

    flask_app, _socketio = create_app(runtime)
    yield flask_app
    runtime.broadcaster.emitter = None  # the runtime is shared: no test leaves live events wired


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """An anonymous test client of `app` (no login, no API key)."""
    return app.test_client()


@pytest.fixture
def login_as(app: Flask, runtime: Any) -> Callable[..., FlaskClient]:
    """`login_as(role="admin", district=None)`: a new test client of `app`, logged in through
    the real login form as a new staff user of that role; the user is on `client.user`."""
    from tests.support.auth import login

    def make(role: str = "admin", district: str | None = None) -> FlaskClient:
        staff = app.test_client()
        staff.user = login(staff, runtime, role, district)  # type: ignore[attr-defined]
        return staff

    return make


# One Playwright for the whole run: a second sync_playwright() in the same process while the
# first still runs fails ("Sync API inside the asyncio loop"), so every Chromium test, in
# tests/browser/ or elsewhere, shares these two.
@pytest.fixture(scope="session")
def playwright_session() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(playwright_session: Any) -> Iterator[Any]:
    from tests.browser.conftest import CHROMIUM_ARGS, chromium_path

    browser = playwright_session.chromium.launch(
        executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
    )
    try:
        yield browser
    finally:
        browser.close()
