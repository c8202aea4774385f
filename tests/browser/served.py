"""`roadwatch serve` as a separate process, as the README starts it, for browser tests.

Served starts `python app.py` with a SQLite file and a broker URL, waits until /healthz
says ok, reads the first admin's password from the log (printed once on first start),
and can stop and start the same server again (same port, same database).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Protocol

from playwright.sync_api import Page

from tests.support.server import AckListener, free_port

ROOT = Path(__file__).resolve().parents[2]
CST = dt.timezone(dt.timedelta(hours=8))
ADMIN_LINE = re.compile(r"login 'admin' with the password (\S+)")


class Served:
    def __init__(self, tmp: Path, mqtt_port: int | None = None, **env: str) -> None:
        self.tmp = tmp
        self.http_port = free_port()
        self.mqtt_port = mqtt_port or free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.db = tmp / "rw.sqlite3"
        self.env = {
            **os.environ,
            "ROADWATCH_PORT": str(self.http_port),
            "ROADWATCH_MQTT_URL": f"mqtt://127.0.0.1:{self.mqtt_port}",
            "ROADWATCH_DATABASE_URL": f"sqlite:///{self.db}",
            "ROADWATCH_PHOTO_DIR": str(tmp / "photos"),
            "ROADWATCH_MQTT_CLIENT_ID": f"rw-e2e-{uuid.uuid4().hex[:8]}",
            # Its own embedded broker on a free port unless a broker's port is given: an
            # explicit URL no longer gets an embedded broker by itself (issue 15).
            **({} if mqtt_port else {"ROADWATCH_EMBEDDED_BROKER": "always"}),
            **env,
        }
        self.env.pop("ROADWATCH_CONFIG", None)
        self.env.pop("ROADWATCH_SECRET_KEY", None)
        self.proc: subprocess.Popen[bytes] | None = None
        self.args: list[str] = []  # `roadwatch serve`'s options (e.g. --simulate N)
        self.starts = 0
        self.password: str | None = None
        self.startup_s = 0.0

    @property
    def log_path(self) -> Path:
        return self.tmp / f"serve-{self.starts}.log"

    def logs(self) -> str:
        return "".join(
            (self.tmp / f"serve-{i}.log").read_text(errors="replace")
            for i in range(1, self.starts + 1)
        )

    def start(self, timeout: float = 120) -> Served:
        self.starts += 1
        log = self.log_path.open("wb")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "app.py", *self.args], cwd=ROOT, env=self.env, stdout=log, stderr=log
        )
        log.close()
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(self.log_path.read_text(errors="replace"))
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as res:
                    if json.loads(res.read())["status"] == "ok":
                        break
            except OSError:
                pass
            if time.monotonic() - t0 > timeout:
                self.stop()  # never leave it running
                raise AssertionError(f"roadwatch serve was not healthy within {timeout} s")
            time.sleep(0.2)
        self.startup_s = time.monotonic() - t0
        found = ADMIN_LINE.search(self.log_path.read_text(errors="replace"))
        if found:
            self.password = found[1]
        return self

    def api_key(self, reporter: str = "zz-jinshui-0421") -> str:
        """A new API key for HTTP intake as `reporter`, made as an operator would."""
        out = subprocess.run(
            [sys.executable, "-m", "roadwatch.cli", "apikeys", "add", "--reporter", reporter],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            check=True,
        )
        return out.stdout.decode().strip()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


class Site(Protocol):
    """Where the command centre is served, and the first admin's password if known."""

    @property
    def url(self) -> str: ...

    @property
    def password(self) -> str | None: ...


def login(
    page: Page, served: Site, path: str = "/", user: str = "admin", password: str | None = None
) -> None:
    """Through the real login page, as a person would (the first admin unless told)."""
    password = password or served.password
    assert password, "the first start printed no admin password"
    page.goto(served.url + path)
    page.wait_for_selector("#rw-login-form")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_function("window.roadwatch && window.roadwatch.ready", timeout=30_000)


class Phone(AckListener):
    """A device on the default topic root: publishes report bodies, collects every ack."""

    def __init__(self, port: int) -> None:
        super().__init__("127.0.0.1", port, "roadwatch/v1")

    def publish(self, body: dict[str, Any]) -> None:  # type: ignore[override]
        super().publish(body["reporter_id"], body)


def reports_on_segments(n: int, seed: int = 1) -> list[dict[str, Any]]:
    """n reports at the middle of n different demo segments (WGS84), in 3 categories."""
    import random

    from geo.network import load_network
    from roadwatch.network.context import DEMO_NETWORK

    net = load_network(DEMO_NETWORK)
    rng = random.Random(seed)
    # Seven real road chiefs of the demo network: only registered reporters may report.
    chiefs = sorted(p.id for p in net.people)[:7]
    picks = rng.sample(net.segments, n)
    now = dt.datetime.now(CST).isoformat(timespec="seconds")
    out = []
    for i, seg in enumerate(picks):
        p = seg.geometry.interpolate(0.5, normalized=True)
        out.append(
            {
                "v": 1,
                "report_id": str(uuid.uuid4()),
                "reporter_id": chiefs[i % 7],
                "observed_at": now,
                "lat": round(p.y, 7),
                "lon": round(p.x, 7),
                "crs": "WGS84",
                "accuracy_m": 5.0,
                "category": ("E0504", "E0505", "E0201")[i % 3],
                "severity": 1 + i % 3,
                "note": "e2e",
                "segment_hint": None,
                "_segment": seg.id,
            }
        )
    return out


def strip(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if not k.startswith("_")}


def sample_png(width: int = 160, height: int = 120) -> bytes:
    """A small real PNG (a street-coloured gradient) to stand in for a phone's photo."""
    import struct
    import zlib

    rows = b"".join(
        b"\x00"
        + b"".join(bytes((90 + x // 3, 100 + y // 2, 110 + (x + y) % 60)) for x in range(width))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
