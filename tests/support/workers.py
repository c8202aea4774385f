"""`roadwatch worker` processes for the several-workers tests and benchmark (issue 18).

Each worker is a real process with its own instance name (its MQTT session) and a
/healthz port; they share one stream through the MQTT 5 shared subscription. `JobsRole`
is the `roadwatch jobs` process beside them (dispatcher, case clock, notice outbox), run
and watched the same way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.mosquitto import free_port

ROOT = Path(__file__).resolve().parents[2]


class Worker:
    def __init__(
        self,
        instance: str,
        db_url: str,
        broker_port: int,
        root: str,
        log_dir: Path,
        *,
        client_id: str = "rw-test-platform",
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.instance = instance
        self.health_port = free_port()
        self.log_path = log_dir / f"worker-{instance}.log"
        self.env = {
            **os.environ,
            "ROADWATCH_DATABASE_URL": db_url,
            "ROADWATCH_MQTT_URL": f"mqtt://127.0.0.1:{broker_port}",
            "ROADWATCH_MQTT_TOPIC_ROOT": root,
            "ROADWATCH_MQTT_CLIENT_ID": client_id,
            "ROADWATCH_MQTT_SHARE_GROUP": "rw",
            "ROADWATCH_EMBEDDED_BROKER": "never",
            "ROADWATCH_LOG_LEVEL": "INFO",
            **(extra_env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def argv(self) -> list[str]:
        """The role's command line after `roadwatch`."""
        return ["worker", "--instance", self.instance, "--health-port", str(self.health_port)]

    def start(self, *args: str) -> Worker:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "roadwatch.cli", *self.argv(), *args],
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def health(self) -> tuple[int, dict[str, Any]]:
        """(status, body) of its /healthz; (0, {}) while nothing answers."""
        url = f"http://127.0.0.1:{self.health_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=2) as res:
                return int(res.status), json.loads(res.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())
        except OSError:
            return 0, {}

    def wait_ready(self, timeout: float = 90) -> None:
        """Until its /healthz says the broker is connected (and it is subscribed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"worker {self.instance} exited:\n{self.log()[-3000:]}")
            status, body = self.health()
            if status == 200 and body["checks"]["broker"]["ok"]:  # connected and subscribed
                return
            time.sleep(0.2)
        raise AssertionError(f"worker {self.instance} not ready:\n{self.log()[-3000:]}")

    def stop(self, timeout: float = 40) -> int:
        """SIGTERM and wait: the drain; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class JobsRole(Worker):
    """A `roadwatch jobs` process on the workers' database and broker (its log is
    jobs-{instance}.log; `instance` only names the log: jobs has no MQTT session to keep)."""

    def __init__(self, instance: str, *args: Any, **kw: Any) -> None:
        super().__init__(instance, *args, **kw)
        self.log_path = self.log_path.with_name(f"jobs-{instance}.log")

    def argv(self) -> list[str]:
        return ["jobs", "--health-port", str(self.health_port)]
