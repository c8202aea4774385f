"""Road chief's phone app benchmark in headless Chromium (issue 20). Prints figures.

Tap to ack (acceptance a): on a phone emulated in Chromium (Pixel 7, zh-CN), a road chief
signs in and sends a report, a rectification with its after photo (the report's case,
dispatched to that chief) and a patrol; each is timed from its saving in the phone's
outbox (the tap) to the platform's answer settling it, as the phone's clock says. Two
set-ups where the broker's WebSocket cannot be used, so everything goes over HTTPS:

  no_ws_listener  the phones' broker address has no WebSocket listener behind it (a plain
                  Debian Mosquitto): the app holds the password and keeps trying it;
  no_broker       no broker address for phones at all.

Beside them, the same sequence with a broker whose WebSocket works (a private Mosquitto
started from the project's configuration with a WebSocket listener): the baseline.

A slow phone (acceptance c): the same app behind a throttling TCP proxy that every byte
between Chromium and the platform goes through (the service worker's too, which DevTools'
network throttling misses): 400 ms round trip (200 ms each way) and 400 kbit/s each way,
one link shared by all connections; and the page's CPU slowed 4x (CDP
Emulation.setCPUThrottlingRate). No broker (everything over HTTPS, through the proxy).
Measured from an empty browser: cold start to a usable sign-in form (the shell's
`__rwReadyAt`), sign-in to a usable report form (the categories drawn), tap 上报 to the
platform's ack of a report without photo, and the bytes the proxy carried to the phone
before the map is opened (compressed, headers included).

Usage: .venv/bin/python bench/bench_phone.py [--runs 3] [--skip-ack] [--skip-slow]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import Browser, FilePayload, Page, expect, sync_playwright  # noqa: E402

from roadwatch.runtime import Runtime  # noqa: E402
from tests.browser.conftest import CHROMIUM_ARGS, DEFAULT_CHROMIUM  # noqa: E402
from tests.browser.test_phone_app import (  # noqa: E402
    DEVICE,
    PLATFORM_PASSWORD,
    _chief_without_frontage,
    _segment_midpoint,
    pick_category,
    png,
    wait_for_fix,
)
from tests.conftest import make_settings  # noqa: E402
from tests.support.mosquitto import MosquittoProcess, free_port  # noqa: E402
from tests.support.server import LiveServer, live_server  # noqa: E402
from tests.test_patrols import walk_along  # noqa: E402

KINDS = ("report", "rectification", "patrol")


@contextmanager
def platform(setup: str, tmp: Path) -> Iterator[tuple[LiveServer, Runtime, str, str, str]]:
    """The platform for one set-up: (server, runtime, chief, their segment, password)."""
    from roadwatch.accounts import chiefs as ca

    broker = None
    extra: dict[str, Any] = {"patrol_interval_s": 0.3, "log_level": "WARNING"}
    if setup == "no_ws_listener":
        extra["mobile_mqtt_ws_url"] = f"ws://127.0.0.1:{free_port()}/"
    elif setup == "no_broker":
        extra["mobile_mqtt_ws_url"] = ""
    else:  # "broker": Mosquitto with its WebSocket listener, the platform ingesting from it
        port, ws_port = free_port(), free_port()
        extra.update(
            mqtt_url=f"mqtt://roadwatch-platform:{PLATFORM_PASSWORD}@127.0.0.1:{port}",
            mqtt_protocol=3,
            mobile_mqtt_ws_url=f"ws://127.0.0.1:{ws_port}/",
        )
    rt = Runtime.build(make_settings(tmp, **extra))
    chief, segment = _chief_without_frontage(rt)
    with rt.sessions.begin() as s:
        password = ca.provision(s, only=[chief]).created[chief]
        hashes = ca.passwd_lines(s)
    if setup == "broker":
        passwd, acl = tmp / "passwd", tmp / "acl"
        ca.write_private(
            passwd,
            ca.render_passwd(
                hashes, platform={"roadwatch-platform": ca.hash_password(PLATFORM_PASSWORD)}
            ),
        )
        ca.write_private(acl, ca.render_acl(rt.settings.mqtt_topic_root, "roadwatch-platform"))
        broker = MosquittoProcess(
            tmp,
            port=port,
            ws_port=ws_port,
            allow_anonymous=False,
            extra_conf=f"password_file {passwd}\nacl_file {acl}\n",
        )
        broker.start()
    try:
        with live_server(rt, mqtt_ingest=broker is not None) as server:
            yield server, rt, chief, segment, password
    finally:
        if broker is not None:
            broker.stop()
        rt.stop()


def ack_ms(page: Page, kind: str, timeout_s: float = 30.0) -> float:
    """Wait for the newest item of this kind to be accepted; its tap-to-ack time."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        items = page.evaluate("() => window.rwStore.all('outbox')")
        done = [i for i in items if i["kind"] == kind and i["state"] == "accepted"]
        if done:
            item = max(done, key=lambda i: i["created_at"])
            return float(item["updated_at"] - item["created_at"])
        page.wait_for_timeout(20)
    raise AssertionError(f"{kind}: no ack in {timeout_s:.0f} s")


def one_run(browser: Browser, pw: Any, setup: str) -> dict[str, float]:
    with (
        tempfile.TemporaryDirectory(prefix="bench-phone-") as d,
        platform(setup, Path(d)) as (
            server,
            rt,
            chief,
            segment,
            password,
        ),
    ):
        lat, lon = _segment_midpoint(rt, segment)
        device = dict(pw.devices[DEVICE])
        device.pop("default_browser_type", None)
        context = browser.new_context(
            **device,
            locale="zh-CN",
            timezone_id="Asia/Shanghai",
            permissions=["geolocation"],
            geolocation={"latitude": lat, "longitude": lon, "accuracy": 4},
        )
        try:
            page = context.new_page()
            page.goto(server.url + "/m/")
            page.fill("#signin-id", chief)
            page.fill("#signin-pw", password)
            page.click("#signin-form button[type=submit]")
            expect(page.locator("#cat-groups details").first).to_be_visible()
            if setup == "broker":
                expect(page.locator("#net")).to_have_text("在线", timeout=15000)
            wait_for_fix(page)
            out: dict[str, float] = {}
            pick_category(page, "E0504")
            page.click("#report-send")
            out["report"] = ack_ms(page, "report")
            # The case is dispatched to this chief (no notice: their own report): its card,
            # fetched when the app comes to the foreground, then the rectification.
            page.click("#tabs [data-view=work]")
            button = page.locator("#case-list li[data-case] button").first
            for _ in range(30):
                page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
                if button.is_visible():
                    break
                page.wait_for_timeout(500)
            button.click(timeout=15000)
            page.set_input_files(
                "#rect-photo",
                files=[
                    FilePayload(
                        name="a.png", mimeType="image/png", buffer=png(1200, 900, (9, 90, 9))
                    )
                ],
            )
            expect(page.locator("#rect-thumbs img")).to_have_count(1)
            page.click("#rect-send")
            out["rectification"] = ack_ms(page, "rectification")
            seg = rt.ctx.network.segments[rt.ctx.position[segment]]
            pts = walk_along([seg], spacing_m=15, noise_m=1, seed=3)[:5]
            page.click("#tabs [data-view=work]")
            page.click("#patrol-toggle")
            for i, (plon, plat) in enumerate(pts, start=2):
                context.set_geolocation({"latitude": plat, "longitude": plon, "accuracy": 5})
                expect(page.locator("#patrol-points")).to_have_text(str(i))
            page.click("#patrol-toggle")
            out["patrol"] = ack_ms(page, "patrol")
            return out
        finally:
            context.close()


class SlowLink:
    """A TCP proxy on 127.0.0.1 that delays (one way) and rate-limits every byte, both ways;
    one link: all connections share each direction's bandwidth."""

    def __init__(self, upstream_port: int, one_way_s: float = 0.2, bits_per_s: float = 400e3):
        self.upstream_port, self.delay, self.rate = upstream_port, one_way_s, bits_per_s / 8
        self.free_at = {"down": 0.0, "up": 0.0}  # when each direction's link is free again
        self.down_bytes = 0
        self.loop = asyncio.new_event_loop()
        self.port = free_port()
        self.ready = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()
        self.ready.wait(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._client, "127.0.0.1", self.port)
        )
        self.ready.set()
        self.loop.run_forever()

    async def _client(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            w.close()
            return
        await asyncio.gather(self._pipe(r, uw, "up"), self._pipe(ur, w, "down"))

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter, way: str) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                at, data = await queue.get()
                if not data:
                    break
                await asyncio.sleep(max(0.0, at - self.loop.time()))
                w.write(data)
                await w.drain()
            w.close()

        sender = asyncio.ensure_future(deliver())
        try:
            while True:
                data = await r.read(1460 * 4)
                now = self.loop.time()
                if not data:
                    break
                if way == "down":
                    self.down_bytes += len(data)
                start = max(now, self.free_at[way])
                self.free_at[way] = start + len(data) / self.rate
                await queue.put((self.free_at[way] + self.delay, data))
        except (ConnectionError, OSError):
            pass
        await queue.put((0.0, b""))
        await sender


def slow_run(browser: Browser, pw: Any) -> dict[str, float]:
    with (
        tempfile.TemporaryDirectory(prefix="bench-phone-") as d,
        platform("no_broker", Path(d)) as (server, rt, chief, segment, password),
    ):
        link = SlowLink(server.port)
        url = f"http://127.0.0.1:{link.port}"
        lat, lon = _segment_midpoint(rt, segment)
        device = dict(pw.devices[DEVICE])
        device.pop("default_browser_type", None)
        context = browser.new_context(
            **device,
            locale="zh-CN",
            timezone_id="Asia/Shanghai",
            permissions=["geolocation"],
            geolocation={"latitude": lat, "longitude": lon, "accuracy": 4},
            service_workers="allow",
        )
        try:
            page = context.new_page()
            cdp = context.new_cdp_session(page)
            cdp.send("Emulation.setCPUThrottlingRate", {"rate": 4})
            page.goto(url + "/m/")
            expect(page.locator("#signin-id")).to_be_visible(timeout=30000)
            page.wait_for_function("() => window.__rwReady === true", timeout=30000)
            out = {"cold_ms": float(page.evaluate("() => window.__rwReadyAt"))}
            page.fill("#signin-id", chief)
            page.fill("#signin-pw", password)
            t0 = time.monotonic()
            page.click("#signin-form button[type=submit]")
            expect(page.locator("#cat-groups details").first).to_be_visible(timeout=30000)
            out["login_ms"] = (time.monotonic() - t0) * 1000
            wait_for_fix(page)
            pick_category(page, "E0504")
            page.click("#report-send")
            out["report_ms"] = ack_ms(page, "report", timeout_s=60)
            page.wait_for_timeout(3000)  # what else loads by itself (the service worker's cache)
            out["bytes_before_map"] = float(link.down_bytes)
            return out
        finally:
            context.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--skip-ack", action="store_true", help="skip the tap-to-ack set-ups")
    ap.add_argument("--skip-slow", action="store_true", help="skip the slow-phone figures")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    chromium = os.environ.get("ROADWATCH_CHROMIUM", DEFAULT_CHROMIUM)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            print(
                f"Chromium {browser.version} headless, {DEVICE} emulated, zh-CN; {args.runs} runs"
            )
            if not args.skip_slow:
                runs = [slow_run(browser, pw) for _ in range(args.runs)]
                print(
                    "slow phone (400 ms RTT, 400 kbit/s each way, CPU 4x), median (max) of "
                    f"{args.runs}:"
                )
                for key, label, target in (
                    ("cold_ms", "cold start to usable sign-in form", "<= 2000 ms"),
                    ("login_ms", "sign-in to usable report form  ", "<= 2500 ms"),
                    ("report_ms", "tap 上报 to the report's ack     ", "<= 3000 ms"),
                ):
                    vals = [r[key] for r in runs]
                    print(
                        f"  {label} {statistics.median(vals):6.0f} ms ({max(vals):.0f})"
                        f"   target {target}"
                    )
                kb = [r["bytes_before_map"] / 1024 for r in runs]
                print(
                    f"  bytes to the phone before the map {statistics.median(kb):6.1f} KB "
                    f"({max(kb):.1f})   target <= 200 KB"
                )
            if args.skip_ack:
                return
            print("tap to ack, ms (median, max):")
            for setup in ("broker", "no_ws_listener", "no_broker"):
                runs = [one_run(browser, pw, setup) for _ in range(args.runs)]
                cells = []
                for k in KINDS:
                    vals = [r[k] for r in runs]
                    cells.append(f"{k} {statistics.median(vals):7.0f} {max(vals):7.0f}")
                print(f"  {setup:15s} " + " | ".join(cells))
        finally:
            browser.close()


if __name__ == "__main__":
    main()
