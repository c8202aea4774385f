"""Health of one process, whatever its role: named checks, and a tiny HTTP server for them.

Every role answers `GET /healthz` and `GET /metrics` (docs/deploy.md, "Health"):

* the web role from its Flask app (roadwatch/web/pages.py, which calls `Health.report`);
* the roles without a web app (`roadwatch worker`, `roadwatch jobs`) from `HealthServer`,
  a standard-library HTTP server on their own port — no Flask in a process that serves
  no pages.

A check is a function returning `Check`; it must be quick and must not raise (a raising
check counts as failed, under its exception's name). 200 when every check is ok, 503
when one is not: a load balancer or a service manager can act on the status alone. The
details (which part, why) go to loopback and to staff only; everyone else sees up or down.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .settings import SettingsError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Check:
    ok: bool
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, **self.detail}


CheckFn = Callable[[], Check]


class Health:
    """The named checks of one process, in the order they were added."""

    def __init__(self, role: str) -> None:
        self.role = role
        self._checks: dict[str, CheckFn] = {}

    def add(self, name: str, check: CheckFn) -> None:
        self._checks[name] = check

    def report(self) -> tuple[bool, dict[str, Any]]:
        checks: dict[str, Any] = {}
        for name, fn in self._checks.items():
            try:
                checks[name] = fn().as_dict()
            except Exception as exc:  # a broken check is a failed check, not a 500
                checks[name] = {"ok": False, "error": exc.__class__.__name__}
        return all(c["ok"] for c in checks.values()), checks

    def body(self, details: bool) -> tuple[dict[str, Any], int]:
        """The `/healthz` answer: (JSON body, HTTP status)."""
        ok, checks = self.report()
        out: dict[str, Any] = {"status": "ok" if ok else "degraded"}
        if details:
            out.update(role=self.role, checks=checks)
        return out, 200 if ok else 503


def database_check(engine: Any, deadline_s: float = 3.0) -> CheckFn:
    """The database answers `SELECT 1` within `deadline_s`.

    The query runs in a thread of its own and the check waits at most `deadline_s`: a
    hung database (a stopped server, a lost network path) makes the check fail at once
    rather than hold the health request until the engine's connect or statement timeout.
    One query at a time: while one is still waiting, the next check fails without
    starting another, so a hung database does not pile up threads."""
    from sqlalchemy import text

    waiting: list[threading.Thread] = []

    def query(result: dict[str, Any]) -> None:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            result["ok"] = True
        except Exception as exc:
            result["error"] = exc.__class__.__name__

    def check() -> Check:
        if waiting and waiting[0].is_alive():
            return Check(False, {"error": "the previous check is still waiting for an answer"})
        result: dict[str, Any] = {}
        t = threading.Thread(target=query, args=(result,), name="health-db", daemon=True)
        waiting[:] = [t]
        t.start()
        t.join(deadline_s)
        if t.is_alive():
            return Check(False, {"error": f"no answer within {deadline_s:g} s"})
        return Check(True) if result.get("ok") else Check(False, {"error": result["error"]})

    return check


def redis_check(url: str) -> CheckFn:
    """A Redis (the Socket.IO queue, the rate-limit counters) answers PING within a second."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)

    def check() -> Check:
        try:
            client.ping()
        except Exception as exc:
            return Check(False, {"error": exc.__class__.__name__})
        return Check(True)

    return check


# Ingest holds a batch, or has messages waiting, without committing for this long: it
# cannot make progress (database down or hung, the ingest thread stuck). A healthy batch
# commits in milliseconds; a database error is retried with backoff up to 10 s.
INGEST_STALL_S = 10.0


def ingest_check(mqtt: Any, stall_s: float = INGEST_STALL_S) -> CheckFn:
    """MQTT ingest makes progress: connected, its thread alive, and no batch in hand or
    message waiting for longer than `stall_s` since the last commit."""

    def check() -> Check:
        now = time.monotonic()
        queued = int(mqtt.queued)
        busy_since = mqtt.busy_since
        waiting_s = now - mqtt.last_commit if (queued or busy_since is not None) else 0.0
        detail: dict[str, Any] = {
            "connected": mqtt.connected.is_set(),
            "subscribed": mqtt.subscribed.is_set(),
            "queued": queued,
            "last_commit_age_s": round(now - mqtt.last_commit, 1),
        }
        if busy_since is not None:
            detail["batch_age_s"] = round(now - busy_since, 1)
        if not mqtt.worker_alive:
            return Check(False, {**detail, "error": "the ingest thread is not running"})
        if waiting_s > stall_s:
            return Check(
                False,
                {**detail, "error": f"messages wait, nothing committed for {waiting_s:.0f} s"},
            )
        return Check(True, detail)

    return check


def case_jobs_check(rt: Any) -> Check:
    """The dispatcher and the case clock run: in this process (`serve`: threads) or in the
    case child process (CaseProcess), or elsewhere (`roadwatch jobs`: nothing to check here)."""
    if rt.case_process is not None:
        proc = rt.case_process
        detail = {"process": "alive" if proc.alive else "down", "restarts": proc.restarts}
        return Check(proc.alive, detail)
    if rt.clock is None:
        return Check(True, {"where": "not in this process"})
    threads = {"dispatcher": rt.pipeline.dispatcher.thread, "case clock": rt.clock.thread}
    dead = [name for name, t in threads.items() if t is None or not t.is_alive()]
    return Check(not dead, {"error": f"not running: {', '.join(dead)}"} if dead else {})


def add_runtime_checks(health: Health, rt: Any) -> Health:
    """The checks of a roadwatch.runtime.Runtime, whatever its role: database, Redis when
    configured, MQTT ingest when this process ingests, case jobs when it runs them."""
    health.add("database", database_check(rt.engine))
    s = rt.settings
    if s.socketio_queue:
        health.add("redis", redis_check(s.socketio_queue))
    limits = s.rate_limit_storage
    if limits.startswith(("redis://", "rediss://")) and limits != s.socketio_queue:
        health.add("rate limit store", redis_check(limits))
    if rt.mqtt is not None:
        health.add("ingest", ingest_check(rt.mqtt))
        health.add("case jobs", lambda: case_jobs_check(rt))
    return health


def overdue_cases(engine: Any) -> float:
    """Open cases past their deadline, now (gauge roadwatch_cases_overdue)."""
    from sqlalchemy import func, select, text

    from .store import models

    r = models.Report
    q = (
        select(func.count())
        .select_from(r)
        .where(text(models.OPEN_CASE_SQL))
        .where(r.due_at < models.utcnow())
    )
    with engine.connect() as conn:
        return float(conn.scalar(q) or 0)


def dispatcher_lag_s(engine: Any) -> float:
    """How long the oldest stored report has waited for the dispatcher (0: none waits)."""
    from sqlalchemy import func, select, text

    from .store import models

    q = select(func.min(models.Report.received_at)).where(text("case_status = 'new'"))
    with engine.connect() as conn:
        oldest = conn.scalar(q)
    return 0.0 if oldest is None else max(0.0, (models.utcnow() - oldest).total_seconds())


def thread_check(thread: Callable[[], threading.Thread | None], what: str) -> CheckFn:
    """A background thread this process depends on is alive."""

    def check() -> Check:
        t = thread()
        alive = t is not None and t.is_alive()
        return Check(alive, {} if alive else {"error": f"{what} is not running"})

    return check


def is_loopback(address: str | None) -> bool:
    try:
        return ipaddress.ip_address(address or "").is_loopback
    except ValueError:
        return False


def _cannot_listen(host: str, port: int, exc: OSError) -> SettingsError:
    why = (
        "the port is in use by another program (another roadwatch worker or jobs?); "
        "stop it or choose another port"
        if exc.errno == errno.EADDRINUSE
        else exc.strerror or str(exc)
    )
    return SettingsError(f"--health-port {port}: cannot listen on {host}:{port}: {why}")


def check_health_port(port: int, host: str = "127.0.0.1") -> None:
    """Can a HealthServer listen there? Asked before a role takes its MQTT session: a second
    worker started by mistake with the same instance must not take the running one's session
    and only then find the port taken."""
    import socket

    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise _cannot_listen(host, port, exc) from None


class HealthServer:
    """`/healthz` and `/metrics` of a role without a web app, on its own port.

    Details only to loopback: this port is for the machine's monitoring agent and the
    service manager, and should not be exposed beyond it."""

    def __init__(
        self, health: Health, metrics: Callable[[], bytes], host: str = "127.0.0.1", port: int = 0
    ) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
                if self.path.split("?", 1)[0] == "/healthz":
                    body, status = health.body(details=is_loopback(self.client_address[0]))
                    self._send(status, "application/json", json.dumps(body).encode())
                elif self.path.split("?", 1)[0] == "/metrics":
                    self._send(200, "text/plain; version=0.0.4", metrics())
                else:
                    self._send(404, "text/plain", b"not found\n")

            def _send(self, status: int, kind: str, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                log.debug("health %s: " + format, server.health.role, *args)

        self.health = health
        try:
            self.httpd = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:  # one line for the journal, not a traceback (exit 2)
            raise _cannot_listen(host, port, exc) from None
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name=f"health-{health.role}", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def start(self) -> HealthServer:
        self._thread.start()
        log.info("%s: /healthz and /metrics on port %d", self.health.role, self.port)
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)
