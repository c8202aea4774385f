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

import ipaddress
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

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


def database_check(engine: Any) -> CheckFn:
    """The database answers `SELECT 1` (within the engine's connect/statement timeouts)."""
    from sqlalchemy import text

    def check() -> Check:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:
            return Check(False, {"error": exc.__class__.__name__})
        return Check(True)

    return check


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
        self.httpd = ThreadingHTTPServer((host, port), Handler)
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
