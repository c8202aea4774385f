"""roadwatch's roles started apart, as a city runs them (docs/deploy.md), for tests.

`Roles` starts `roadwatch web` (gunicorn), `roadwatch worker` and, when the release has it,
`roadwatch jobs`, each a process of its own, on one PostgreSQL database, one Mosquitto and
one Redis queue the test owns. Each process logs to its own file under the test's folder.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests

from roadwatch.accounts.users import add_user
from roadwatch.store import db
from tests.support.mosquitto import free_port

ROOT = Path(__file__).resolve().parents[2]
ADMIN, ADMIN_PASSWORD = "roles-admin", "correct horse battery staple"


@dataclass
class Role:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    port: int | None = None
    password: str | None = ADMIN_PASSWORD  # of the login tests use (tests/browser/served.login)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Roles:
    tmp: Path
    database_url: str
    mqtt_port: int
    redis_url: str
    extra_env: dict[str, str] = field(default_factory=dict)
    running: list[Role] = field(default_factory=list)

    def __post_init__(self) -> None:
        engine = db.make_engine(self.database_url)
        db.upgrade(engine)  # `roadwatch db upgrade`, once, before the roles start
        with db.make_sessionmaker(engine).begin() as session:
            add_user(session, ADMIN, ADMIN_PASSWORD, "admin", None)
        engine.dispose()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("ROADWATCH_")},
            "PYTHONPATH": str(ROOT),
            "HOME": str(self.tmp),
            "ROADWATCH_DATABASE_URL": self.database_url,
            "ROADWATCH_MQTT_URL": f"mqtt://127.0.0.1:{self.mqtt_port}",
            "ROADWATCH_EMBEDDED_BROKER": "never",
            "ROADWATCH_SOCKETIO_QUEUE": self.redis_url,
            "ROADWATCH_RATE_LIMIT_STORAGE": "memory://",
            "ROADWATCH_SECRET_KEY": "roles-" + uuid.uuid4().hex,
            "ROADWATCH_PHOTO_DIR": str(self.tmp / "photos"),
            "ROADWATCH_MQTT_CLIENT_ID": f"rw-roles-{uuid.uuid4().hex[:8]}",
            "ROADWATCH_RANKING_SCHEDULE_S": "0",
            "ROADWATCH_WEB_THREADS": "20",
            **self.extra_env,
        }

    # -- starting ------------------------------------------------------------------------
    def _spawn(self, name: str, args: list[str], port: int | None = None) -> Role:
        log = self.tmp / f"{name}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "roadwatch.cli", *args],
                env=self.env,
                cwd=self.tmp,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        role = Role(name, proc, log, port)
        self.running.append(role)
        return role

    def web(self, name: str = "web") -> Role:
        port = free_port()
        role = self._spawn(name, ["web", "--host", "127.0.0.1", "--port", str(port)], port)
        wait_for(lambda: _status(role.url + "/healthz") == 200, role, "healthy")
        return role

    def worker(self, name: str = "worker", *args: str, ready: str = "subscribed to") -> Role:
        role = self._spawn(name, ["worker", *args])
        wait_for(lambda: ready in role.text(), role, f"log line {ready!r}")
        return role

    def jobs(self, name: str = "jobs", *args: str, ready: str = "jobs: dispatcher") -> Role:
        role = self._spawn(name, ["jobs", *args])
        wait_for(lambda: ready in role.text(), role, f"log line {ready!r}")
        return role

    def has_command(self, command: str) -> bool:
        done = subprocess.run(
            [sys.executable, "-m", "roadwatch.cli", command, "--help"],
            env=self.env,
            cwd=self.tmp,
            capture_output=True,
        )
        return done.returncode == 0

    # -- stopping ------------------------------------------------------------------------
    def stop(self, role: Role, sig: int = signal.SIGTERM) -> int:
        if role.proc.poll() is None:
            role.proc.send_signal(sig)
            try:
                role.proc.wait(30)
            except subprocess.TimeoutExpired:
                role.proc.kill()
                role.proc.wait()
        return int(role.proc.returncode)

    def stop_all(self) -> dict[str, int]:
        return {r.name: self.stop(r) for r in reversed(self.running)}


def _status(url: str) -> int:
    try:
        return requests.get(url, timeout=2).status_code
    except requests.RequestException:
        return 0


def wait_for(ok: object, role: Role, what: str, timeout: float = 90) -> None:
    assert callable(ok)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if role.proc.poll() is not None:
            raise AssertionError(
                f"{role.name} exited with {role.proc.returncode}:\n{role.text()[-4000:]}"
            )
        if ok():
            return
        time.sleep(0.2)
    raise AssertionError(f"{role.name} not {what} within {timeout} s:\n{role.text()[-4000:]}")
