"""Issue 18 acceptance a: the roles started apart, as a city runs them, and two browsers.

* the web role as two single-worker gunicorn instances (`roadwatch web`) behind nginx, with
  the project's site (config/deploy/nginx/roadwatch.conf: TLS, `ip_hash` sticky upstream,
  WebSocket upgrade) run as a non-daemon with its own prefix on free ports;
* the Socket.IO queue on a private Redis, the broker a private Mosquitto, PostgreSQL;
* the ingest role (`roadwatch worker`: two on an MQTT 5 shared subscription when the
  release has `--instance`, else one) and the jobs role (`roadwatch jobs`) when it exists;
* one Chromium page through each web instance: each shows every report published, none
  twice (the page's own counters and `hasReport`, not captured frames: NOTES.md).

All test clients come from 127.0.0.1, which `ip_hash` would send to one instance. So that
the two browsers stand for two client networks, the test's nginx (not the site) believes an
`X-Forwarded-For` from loopback (`real_ip_header`), and each browser sends its own; nginx's
access log (with `$upstream_addr`) then shows which instance served each browser.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import REQUIRE_SERVICES
from tests.support.mosquitto import MOSQUITTO_BIN, free_port, run_mosquitto
from tests.support.nginx import nginx_conf, self_signed_cert, site_conf
from tests.support.roles import ADMIN, ADMIN_PASSWORD, Role, Roles
from tests.support.services import PrivateRedis
from tests.test_deploy_kit import need_tool

from .served import Phone, login, reports_on_segments, strip

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.slow]

REPORTS = 300
# The test's own nginx additions: client addresses from X-Forwarded-For (sent by loopback
# only), and an access log naming the instance that served each request.
HTTP_EXTRA = """    real_ip_header X-Forwarded-For;
    set_real_ip_from 127.0.0.1;
    log_format upstreams '$remote_addr $upstream_addr "$request" $status';
"""


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Any]:
    if not MOSQUITTO_BIN.exists() and not shutil.which("mosquitto"):
        message = "mosquitto is not installed (apt-get install mosquitto)"
        if REQUIRE_SERVICES:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    with run_mosquitto(tmp_path) as b:
        yield b


def _help(roles: Roles, command: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "roadwatch.cli", command, "--help"],
        env=roles.env,
        cwd=roles.tmp,
        capture_output=True,
        text=True,
    )
    return done.stdout if done.returncode == 0 else ""


def _served_by(log: Path) -> dict[str, set[str]]:
    """client address -> the upstream instances that served its Socket.IO requests."""
    seen: dict[str, set[str]] = {}
    for line in log.read_text().splitlines():
        m = re.match(r'(\S+) (\S+) "\S+ /socket\.io/', line)
        if m and m[2] != "-":
            seen.setdefault(m[1], set()).add(m[2])
    return seen


def test_a_two_web_instances_behind_nginx_workers_jobs_and_a_browser_on_each(
    tmp_path: Path,
    broker: Any,
    fresh_pg: str,
    browser: Any,
) -> None:
    nginx = need_tool("nginx", "nginx-light")
    cert, key = self_signed_cert(need_tool("openssl", "openssl"), tmp_path)
    redis = PrivateRedis()
    redis.start()
    roles = Roles(tmp_path, fresh_pg, broker.port, redis.url, {"ROADWATCH_TRUSTED_PROXIES": "1"})
    phone = Phone(broker.port)
    nginx_proc: subprocess.Popen[bytes] | None = None
    contexts: list[Any] = []
    try:
        webs = [roles.web("web1"), roles.web("web2")]
        workers: list[Role] = []
        if "--instance" in _help(roles, "worker"):  # MQTT 5 shared subscription (scope 3)
            for n in ("1", "2"):
                port = free_port()
                w = roles.worker(
                    f"worker{n}", "--instance", n, "--health-port", str(port), ready="subscribed to"
                )
                w.port = port
                workers.append(w)
        else:
            workers.append(roles.worker("worker", ready="subscribed to"))
        jobs = roles.jobs() if _help(roles, "jobs") else None
        print(f"roles: 2 web, {len(workers)} worker(s), jobs: {jobs is not None}")

        https, http = free_port(), free_port()
        site = site_conf(cert, key, tmp_path, https, http, [w.port or 0 for w in webs], 1)
        site = site.replace(
            f"access_log {tmp_path}/roadwatch-access.log;",
            f"access_log {tmp_path}/roadwatch-access.log upstreams;",
        )
        conf = nginx_conf(tmp_path, site, HTTP_EXTRA)
        nginx_log = tmp_path / "nginx.out"
        with nginx_log.open("wb") as out:
            nginx_proc = subprocess.Popen(
                [nginx, "-p", str(tmp_path), "-c", str(conf), "-e", "stderr"]
                + ["-g", "daemon off;"],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        base = f"https://127.0.0.1:{https}"
        access = tmp_path / "roadwatch-access.log"
        deadline = time.monotonic() + 20
        while True:
            try:
                if requests.get(base + "/healthz", verify=str(cert), timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert nginx_proc.poll() is None, nginx_log.read_text()
            assert time.monotonic() < deadline, nginx_log.read_text()
            time.sleep(0.2)

        # Two client networks that ip_hash sends to different instances.
        upstream_of: dict[str, str] = {}
        for i in range(1, 40):
            addr = f"10.{i}.0.7"
            requests.get(
                base + "/socket.io/?EIO=4&transport=polling",
                headers={"X-Forwarded-For": addr},
                verify=str(cert),
                timeout=5,
            )
            time.sleep(0.05)
            upstream_of = {a: next(iter(u)) for a, u in _served_by(access).items()}
            if len(set(upstream_of.values())) == 2:
                break
        by_upstream = {u: a for a, u in upstream_of.items()}
        assert len(by_upstream) == 2, upstream_of
        clients = sorted(by_upstream.values())

        pages = []
        for addr in clients:
            ctx = browser.new_context(
                ignore_https_errors=True, extra_http_headers={"X-Forwarded-For": addr}
            )
            contexts.append(ctx)
            page = ctx.new_page()
            login(page, _Site(base), user=ADMIN)
            pages.append(page)
        before = [p.evaluate("window.roadwatch.reportsSeen") for p in pages]

        # Each browser's Socket.IO went to one instance, and not the same one.
        served = _served_by(access)
        assert all(len(served[a]) == 1 for a in clients), served
        assert served[clients[0]] != served[clients[1]], served

        bodies = [strip(b) for b in reports_on_segments(REPORTS, seed=1801)]
        t0 = time.monotonic()
        for b in bodies:
            phone.publish(b)
        acks = phone.collect(REPORTS, timeout=120)
        assert sorted(a["id"] for a in acks) == sorted(b["report_id"] for b in bodies)
        try:
            for page, n in zip(pages, before, strict=True):
                page.wait_for_function(
                    f"window.roadwatch.reportsSeen >= {n + REPORTS}", timeout=60_000
                )
        except Exception:
            for page in pages:
                print(
                    page.evaluate(
                        "[window.roadwatch.reportsSeen, window.roadwatch.received,"
                        " window.roadwatch.lastSeq, window.roadwatch.connected]"
                    )
                )
            for role in roles.running:
                print(f"--- {role.name}\n{role.text()[-3000:]}")
            raise
        shown_s = time.monotonic() - t0
        pages[0].wait_for_timeout(2000)  # anything doubled would have arrived by now
        for page, n in zip(pages, before, strict=True):
            assert page.evaluate("window.roadwatch.reportsSeen") == n + REPORTS
            missing = page.evaluate(
                "(ids) => ids.filter((id) => !window.roadwatch.hasReport(id))",
                [b["report_id"] for b in bodies],
            )
            assert missing == []
            assert page.evaluate("window.roadwatch.connected")
        # still each on its own instance (sticky) after the stream
        served = _served_by(access)
        assert all(len(served[a]) == 1 for a in clients), served
        split = []
        if len(workers) == 2:
            # the shared subscription split the stream: each worker took a share, and
            # together exactly the reports published (none taken twice)
            split = [_reports_in(w.url + "/metrics") for w in workers]
            assert all(n > 0 for n in split) and sum(split) == REPORTS, split
        print(
            f"acceptance a: {REPORTS} reports acked and shown once on both pages "
            f"{shown_s:.1f} s after the first was published; instances {sorted(by_upstream)}; "
            f"reports per worker {split or 'one worker'}"
        )
    finally:
        phone.close()
        for ctx in contexts:
            ctx.close()
        if nginx_proc is not None and nginx_proc.poll() is None:
            nginx_proc.send_signal(signal.SIGQUIT)
            nginx_proc.wait(10)
        codes = roles.stop_all()
        redis.close()
    for role in roles.running:
        assert "Traceback" not in role.text(), f"{role.name}:\n{role.text()[-3000:]}"
    assert all(code == 0 for code in codes.values()), codes


def _reports_in(url: str) -> int:
    """MQTT reports a worker took in, from its /metrics."""
    text = requests.get(url, timeout=5).text
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in text.splitlines()
        if line.startswith("roadwatch_messages_in_total{")
        and 'kind="report"' in line
        and 'transport="mqtt"' in line
    )


@dataclass(frozen=True)
class _Site:
    url: str
    password: str | None = ADMIN_PASSWORD
