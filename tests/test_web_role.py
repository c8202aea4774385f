"""`roadwatch web`: the web role under gunicorn, started from the command line.

One gunicorn master with ONE threaded (gthread) worker, the project's gunicorn settings, the
bind address of --host/--port, no MQTT session (health says so), a worker killed with
SIGKILL replaced by the master, a clean exit on SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests

from roadwatch.store import db
from tests.support.mosquitto import free_port

ROOT = Path(__file__).resolve().parents[1]


def _env(tmp: Path, database_url: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("ROADWATCH_")},
        "PYTHONPATH": str(ROOT),
        "ROADWATCH_DATABASE_URL": database_url,
        "ROADWATCH_PHOTO_DIR": str(tmp / "photos"),
        "ROADWATCH_SECRET_KEY": "web-role-test",
        "ROADWATCH_RANKING_SCHEDULE_S": "0",
        # If the web role touched MQTT it would start an embedded broker here: it must not.
        "ROADWATCH_EMBEDDED_BROKER": "always",
        "HOME": str(tmp),
    }


def _healthy(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} never healthy:\n{log.read_text()[-4000:]}")


@pytest.mark.integration
def test_roadwatch_web_runs_one_threaded_gunicorn_worker(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'rw.sqlite3'}"
    engine = db.make_engine(url)
    db.upgrade(engine)  # `roadwatch db upgrade`: the web role does not migrate
    engine.dispose()
    port = free_port()
    log = tmp_path / "web.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "roadwatch.cli", "web", "--host", "127.0.0.1"]
            + ["--port", str(port), "--threads", "7"],
            env=_env(tmp_path, url),
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_healthy(f"http://127.0.0.1:{port}/healthz", proc, log)
        r = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert r.headers["Server"].startswith("gunicorn")
        assert r.json()["role"] == "web"
        assert r.json()["checks"]["broker"] == {
            "ok": True,
            "role": "web",
            "ingest": "in roadwatch worker",
        }
        # One master, one worker: Socket.IO sessions live in one process.
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) == 1, children
        # gunicorn's threaded worker, as Flask-SocketIO documents for async_mode threading.
        text = log.read_text()
        assert "Using worker: gthread" in text, text
        assert f"Listening at: http://127.0.0.1:{port}" in text
        # No MQTT: nothing listens on the broker port an ingest process would have used.
        assert "EMBEDDED broker" not in text

        # Supervision: a worker that dies (SIGKILL, the OOM killer) is replaced by the
        # master, and the instance is healthy again without systemd.
        dead = children[0].pid
        os.kill(dead, signal.SIGKILL)
        t0 = time.monotonic()
        deadline = t0 + 90
        while time.monotonic() < deadline:
            now = psutil.Process(proc.pid).children()
            if now and now[0].pid != dead and _healthy(f"http://127.0.0.1:{port}/healthz"):
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"no new worker:\n{log.read_text()[-3000:]}")
        print(f"gunicorn worker SIGKILLed: a new one healthy after {time.monotonic() - t0:.1f} s")
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, log.read_text()[-3000:]


def test_roadwatch_web_refuses_a_taken_port(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "roadwatch.cli", "web", "--port", str(port)],
            env=_env(tmp_path, f"sqlite:///{tmp_path / 'rw.sqlite3'}"),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2, done.stderr
    assert "the port is in use" in done.stderr


@pytest.mark.parametrize("case", ["schema behind", "database down"])
def test_roadwatch_web_refuses_to_boot_in_one_line(tmp_path: Path, case: str) -> None:
    """A schema behind the code or a database that is down stops the web role with one
    line (docs/deploy.md, "Schema and network"), and gunicorn's master stops with it, for
    systemd to retry. It was gunicorn's "Exception in worker process" traceback, 30-140
    lines per attempt in the journal."""
    url = (
        f"sqlite:///{tmp_path / 'never-upgraded.sqlite3'}"
        if case == "schema behind"
        else f"postgresql://nobody@127.0.0.1:{free_port()}/none"
    )
    done = subprocess.run(
        [sys.executable, "-m", "roadwatch.cli", "web", "--port", str(free_port())],
        env=_env(tmp_path, url),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 3, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    (line,) = [x for x in done.stderr.splitlines() if "ERROR   roadwatch.web.wsgi" in x]
    expected = {
        "schema behind": "roadwatch: configuration error: ROADWATCH_DATABASE_URL: the database "
        "schema is at nothing",
        "database down": "roadwatch: cannot use the database (ROADWATCH_DATABASE_URL): ",
    }[case]
    assert expected in line, line
    assert "Worker failed to boot" in done.stderr


@pytest.mark.parametrize("configured", ["city-ops-2026", ""])
def test_the_web_role_makes_the_first_admin(
    tmp_path: Path, configured: str, caplog: pytest.LogCaptureFixture
) -> None:
    """docs/deploy.md, "The first admin": on an empty database the first web process
    creates `admin`, with ROADWATCH_ADMIN_PASSWORD or a random password printed once. Only
    `serve` did: a city following the deployment guide had no login and nothing in the
    journal to grep for."""
    import logging

    from roadwatch.accounts.users import authenticate
    from roadwatch.settings import load_settings
    from roadwatch.web import wsgi

    env = {
        **_env(tmp_path, f"sqlite:///{tmp_path / 'rw.sqlite3'}"),
        "ROADWATCH_ADMIN_PASSWORD": configured,
    }
    settings = load_settings(env=env)
    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)  # `roadwatch db upgrade`: the web role does not migrate
    engine.dispose()
    with caplog.at_level(logging.WARNING):
        wsgi.create_web_app(settings)
    try:
        (line,) = [r.getMessage() for r in caplog.records if "first start" in r.getMessage()]
        password = configured or line.split("with the password ")[1].split()[0]
        runtime = wsgi._built["runtime"]
        with runtime.sessions.begin() as session:
            assert authenticate(session, "admin", password) is not None
    finally:
        wsgi.shutdown()
    # A second web process (or a restart) finds the account and makes none.
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        wsgi.create_web_app(settings.replace(admin_password="another-password"))
    try:
        assert not [r for r in caplog.records if "first start" in r.getMessage()]
    finally:
        wsgi.shutdown()
