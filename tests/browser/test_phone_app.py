"""Issue 8 acceptance: the road chief's phone app in headless Chromium with mobile emulation.

Everything is real: a private Mosquitto started from the project's configuration with a
WebSocket listener, the password file and ACL written by `roadwatch chiefs provision`
(no anonymous access), the platform ingesting over MQTT with its own login, the app
talking MQTT over WebSockets with the chief's login, Debian's Chromium driven by
Playwright, geolocation and airplane mode emulated by the browser.
"""

from __future__ import annotations

import gzip
import re
import struct
import time
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, FilePayload, Page, Playwright, expect
from sqlalchemy import select

import roadwatch.web
from roadwatch.runtime import Runtime
from roadwatch.store import models
from tests.browser.conftest import save_screenshot
from tests.conftest import PG_ADMIN_URL, make_settings, need_service
from tests.support.mosquitto import MOSQUITTO_BIN, MosquittoProcess, free_port
from tests.support.server import LiveServer, live_server
from tests.test_patrols import walk_along

pytestmark = [pytest.mark.browser, pytest.mark.integration]

PLATFORM_PASSWORD = "platform-test-secret"
DEVICE = "Pixel 7"
# While the test holds the browser offline, mqtt.js keeps trying its WebSocket.
OFFLINE_NOISE = re.compile(r"WebSocket connection to .* failed|ERR_INTERNET_DISCONNECTED")
# Chromium names this error only for a request made while the context was offline, but the
# console event can arrive after the test has gone back online, so it stays accepted.
OFFLINE_ONLY = re.compile(r"ERR_INTERNET_DISCONNECTED")


@dataclass
class Stack:
    server: LiveServer
    runtime: Runtime
    broker: MosquittoProcess
    passwords: dict[str, str]
    chiefs: list[tuple[str, str]]  # (reporter id, one of their segments)
    tmp: Path

    @property
    def url(self) -> str:
        return self.server.url


def _chiefs_with_segments(rt: Runtime, n: int) -> list[tuple[str, str]]:
    """n road chiefs (level 3) and one segment each that they answer for now."""
    a = models.Assignment
    now = models.utcnow()
    with rt.sessions() as s:
        rows = s.execute(
            select(a.reporter_id, a.segment_id)
            .where(a.level == 3, a.role == "road_chief", a.valid_to.is_(None), a.valid_from <= now)
            .order_by(a.reporter_id)
        ).all()
    out: dict[str, str] = {}
    for rid, sid in rows:
        out.setdefault(rid, sid)
    return list(out.items())[:n]


@contextmanager
def _database(backend: str) -> Iterator[dict[str, str]]:
    """Nothing (SQLite in tmp) or a PostgreSQL database of this module's own."""
    if backend == "sqlite":
        yield {}
        return
    need_service("PostgreSQL", "127.0.0.1", 5432)
    import psycopg

    name = f"rw_phone_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {"database_url": PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"}
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, network_ctx: Any
) -> Iterator[Stack]:
    if not MOSQUITTO_BIN.exists():
        pytest.fail(f"{MOSQUITTO_BIN} is required for the phone app tests", pytrace=False)
    with _database(request.param) as db:
        yield from _stack(tmp_path_factory, network_ctx, db)


def _stack(
    tmp_path_factory: pytest.TempPathFactory, network_ctx: Any, db: dict[str, str]
) -> Iterator[Stack]:
    from roadwatch.accounts import chiefs as ca

    tmp = tmp_path_factory.mktemp("phone")
    port, ws_port = free_port(), free_port()
    settings = make_settings(
        tmp,
        **db,
        mqtt_url=f"mqtt://roadwatch-platform:{PLATFORM_PASSWORD}@127.0.0.1:{port}",
        mqtt_protocol=3,
        mobile_mqtt_ws_url=f"ws://127.0.0.1:{ws_port}/",
        patrol_interval_s=0.4,
    )
    rt = Runtime.build(settings, ctx=network_ctx)
    chiefs = _chiefs_with_segments(rt, 5)
    with rt.sessions.begin() as s:
        made = ca.provision(s, only=[c for c, _ in chiefs])
        hashes = ca.passwd_lines(s)
    passwd, acl = tmp / "roadwatch.passwd", tmp / "roadwatch.acl"
    platform = {"roadwatch-platform": ca.hash_password(PLATFORM_PASSWORD)}
    ca.write_private(passwd, ca.render_passwd(hashes, platform=platform))
    ca.write_private(acl, ca.render_acl(settings.mqtt_topic_root, "roadwatch-platform"))
    broker = MosquittoProcess(
        tmp,
        port=port,
        ws_port=ws_port,
        allow_anonymous=False,
        extra_conf=f"password_file {passwd}\nacl_file {acl}\n",
    )
    broker.start()
    try:
        with live_server(rt, mqtt_ingest=True) as server:
            yield Stack(server, rt, broker, made.created, chiefs, tmp)
    finally:
        broker.stop()
        rt.stop()


class Problems:
    def __init__(self) -> None:
        self.items: list[str] = []
        self._offline = False
        self.was_offline = False
        self.expected: re.Pattern[str] | None = None  # what a test provokes on purpose

    @property
    def offline(self) -> bool:
        return self._offline

    @offline.setter
    def offline(self, value: bool) -> None:
        self._offline = value
        self.was_offline = self.was_offline or value

    def console(self, kind: str, text: str) -> None:
        if kind not in ("error", "assert"):
            return
        if self.offline and OFFLINE_NOISE.search(text):
            return
        if self.was_offline and OFFLINE_ONLY.search(text):
            return
        if self.expected is not None and self.expected.search(text):
            return
        self.items.append(f"console.{kind}: {text}")


@pytest.fixture
def phone(
    browser: Browser, playwright_session: Playwright, stack: Stack
) -> Iterator[tuple[BrowserContext, Problems]]:
    device = dict(playwright_session.devices[DEVICE])
    device.pop("default_browser_type", None)
    context = browser.new_context(
        **device,
        locale="zh-CN",
        timezone_id="Asia/Shanghai",
        permissions=["geolocation"],
        service_workers="allow",
    )
    problems = Problems()

    def watch(page: Page) -> None:
        page.on("console", lambda m: problems.console(m.type, m.text))
        page.on("pageerror", lambda e: problems.items.append(f"uncaught: {e}"))

    context.on("page", watch)
    try:
        yield context, problems
    finally:
        context.close()
    assert problems.items == [], "browser problems:\n" + "\n".join(problems.items)


def short_chain_of_two(network: Any) -> list[Any]:
    """Two consecutive short segments of one road (the end of one starts the next)."""
    by_road: dict[str, list[Any]] = {}
    for s in network.segments:
        if 150 <= s.length_m <= 250:
            by_road.setdefault(s.road, []).append(s)
    for segs in by_road.values():
        for a in segs:
            for b in segs:
                if a is not b and a.geometry.coords[-1] == b.geometry.coords[0]:
                    return [a, b]
    raise AssertionError("no chain of two short segments in the network")


def _segment_midpoint(rt: Runtime, segment_id: str) -> tuple[float, float]:
    seg = rt.ctx.network.segments[rt.ctx.position[segment_id]]
    p = seg.geometry.interpolate(0.5, normalized=True)
    return p.y, p.x


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A plain PNG (no Pillow needed): a phone camera's picture stand-in."""
    row = b"\x00" + bytes(rgb) * width
    raw = zlib.compress(row * height, 6)

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    head = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's SOF marker."""
    i = 2
    while i < len(data):
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2 : i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return w, h
        i += 2 + length
    raise AssertionError("no SOF marker: not a JPEG")


def sign_in(page: Page, stack: Stack, chief: str) -> None:
    page.goto(stack.url + "/m/")
    page.fill("#signin-id", chief)
    page.fill("#signin-pw", stack.passwords[chief])
    page.click("#signin-form button[type=submit]")
    expect(page.locator("#tabs")).to_be_visible()
    expect(page.locator("#net")).to_have_attribute("data-state", "online", timeout=15000)
    expect(page.locator("#cat-groups details").first).to_be_visible()


def pick_category(page: Page, code: str) -> None:
    button = page.locator(f"#cat-groups [data-cat={code}]")
    if not button.is_visible():
        button.locator("xpath=ancestor::details/summary").click()
    button.click()
    expect(page.locator("#category")).to_have_value(code)


def wait_for_fix(page: Page) -> None:
    expect(page.locator("#gps")).to_have_attribute("data-quality", "good", timeout=10000)


# -- a. offline: three reports with photos survive a reload and are accepted once ---------
def test_offline_reports_survive_reload_and_are_accepted_once(
    phone: tuple[BrowserContext, Problems], stack: Stack
) -> None:
    context, problems = phone
    chief, segment = stack.chiefs[0]
    lat, lon = _segment_midpoint(stack.runtime, segment)
    context.set_geolocation({"latitude": lat, "longitude": lon, "accuracy": 5})
    page = context.new_page()
    sign_in(page, stack, chief)
    # The service worker must control the page before the network goes away.
    page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=10000)

    context.set_offline(True)
    problems.offline = True
    expect(page.locator("#net")).to_have_attribute("data-state", "offline")
    wait_for_fix(page)
    colours = [(200, 30, 30), (30, 160, 40), (20, 60, 200)]
    for i, rgb in enumerate(colours):
        pick_category(page, "E0504")
        page.set_input_files(
            "#photo-input",
            files=[
                FilePayload(name=f"shot{i}.png", mimeType="image/png", buffer=png(2400, 1800, rgb))
            ],
        )
        expect(page.locator("#photo-thumbs img")).to_have_count(1)
        page.fill("#note", f"离线上报 {i + 1}")
        page.click("#report-send")
        expect(page.locator("#report-done")).to_contain_text("联网后自动发送")
        # the on-the-spot question needs the platform: the chief is told it was skipped
        expect(page.locator("#report-done")).to_contain_text("离线时不能询问所在路段")
    page.click("#tabs [data-view=outbox]")
    expect(page.locator("#outbox-list li[data-state=queued]")).to_have_count(3)
    save_screenshot(page, "phone-outbox-offline")

    page.reload()  # offline: the shell comes from the service worker, the outbox from IndexedDB
    page.wait_for_function("window.__rwReady === true")
    page.click("#tabs [data-view=outbox]")
    expect(page.locator("#outbox-list li[data-state=queued]")).to_have_count(3)
    # the platform's record cannot be read offline: the empty list says why
    expect(page.locator("#history-list")).to_have_text("离线：联网后显示平台记录")
    with stack.runtime.sessions() as s:
        assert (
            s.scalars(select(models.Report).where(models.Report.reporter_id == chief)).all() == []
        )

    context.set_offline(False)
    problems.offline = False
    expect(page.locator("#outbox-list li[data-state=accepted]")).to_have_count(3, timeout=30000)
    ids = page.eval_on_selector_all("#outbox-list li", "els => els.map(e => e.dataset.id)")
    acks = page.evaluate(
        "() => rwStore.all('outbox').then(items => items.map(i => [i.id, i.ack.status]))"
    )
    assert sorted(s for _, s in acks) == ["accepted"] * 3
    save_screenshot(page, "phone-outbox-accepted")

    with stack.runtime.sessions() as s:
        rows = s.scalars(select(models.Report).where(models.Report.reporter_id == chief)).all()
    assert sorted(r.id for r in rows) == sorted(ids)
    assert sorted(r.note or "" for r in rows) == ["离线上报 1", "离线上报 2", "离线上报 3"]
    photo_dir = Path(stack.runtime.settings.photo_dir)
    digests = set()
    for r in rows:
        assert r.segment_id == segment and r.status == "accepted"
        assert len(r.photos) == 1
        stored = photo_dir / f"{r.photos[0]}.jpg"
        assert stored.is_file(), f"photo {r.photos[0]} of report {r.id} was not uploaded"
        w, h = jpeg_size(stored.read_bytes())
        assert max(w, h) == 1600 and (w, h) == (1600, 1200)  # downscaled on the phone
        digests.add(r.photos[0])
    assert len(digests) == 3


# -- b. a rejected report shows the platform's reason -------------------------------------
def test_rejected_report_shows_the_platforms_reason(
    phone: tuple[BrowserContext, Problems], stack: Stack
) -> None:
    context, problems = phone
    # When MQTT is not up yet the outbox sends over HTTPS, where the refusal is a 422 that
    # Chromium logs as a failed resource: the test provokes exactly that refusal.
    problems.expected = re.compile(r"status of 422")
    chief, segment = stack.chiefs[1]
    lat, lon = _segment_midpoint(stack.runtime, segment)
    context.set_geolocation({"latitude": lat, "longitude": lon, "accuracy": 5})
    page = context.new_page()
    sign_in(page, stack, chief)
    wait_for_fix(page)

    # The photo pickers are reachable from the keyboard (out of sight, not `hidden`), and the
    # rectification note has a label a screen reader reads.
    for picker in ("#photo-input", "#rect-photo"):
        assert page.eval_on_selector(picker, "el => !el.hidden && el.tabIndex >= 0"), picker
    page.focus("#photo-input")
    assert page.evaluate("document.activeElement.id") == "photo-input"
    expect(page.get_by_label("整改情况")).to_have_count(1)

    # Client-side check first: no category is caught before anything is sent.
    page.click("#report-send")
    expect(page.locator("#report-errors")).to_contain_text("请选择问题类别")
    # A photo that is not an image is refused on the phone.
    page.set_input_files(
        "#photo-input", files=[FilePayload(name="a.txt", mimeType="text/plain", buffer=b"hello")]
    )
    expect(page.locator("#report-errors")).to_contain_text("不是图片")

    # An unknown category can only come from a stale or tampered app: the platform decides.
    page.evaluate("document.querySelector('#category').value = 'E0599'")
    page.click("#report-send")
    page.click("#tabs [data-view=outbox]")
    item = page.locator("#outbox-list li[data-state=rejected]")
    expect(item).to_have_count(1, timeout=20000)
    with stack.runtime.sessions() as s:
        rejected = s.scalars(
            select(models.RejectedMessage).where(models.RejectedMessage.reporter_id == chief)
        ).all()
    assert len(rejected) == 1
    messages = [e["message"] for e in rejected[0].errors]
    assert messages and "E0599" in messages[0]
    expect(item.locator(".reason")).to_have_text("原因：" + "；".join(messages))
    expect(item.locator(".state")).to_have_text("被退回")
    save_screenshot(page, "phone-rejected")


# -- d. patrol: a walk along two segments marks exactly those two -------------------------
def test_patrol_walk_marks_exactly_the_two_segments(
    phone: tuple[BrowserContext, Problems], stack: Stack
) -> None:
    context, _ = phone
    chief, _seg = stack.chiefs[2]
    segs = short_chain_of_two(stack.runtime.ctx.network)
    pts = walk_along(segs, spacing_m=8, noise_m=2, seed=8)
    context.set_geolocation({"latitude": pts[0][1], "longitude": pts[0][0], "accuracy": 6})
    page = context.new_page()
    sign_in(page, stack, chief)
    page.click("#tabs [data-view=work]")
    page.click("#patrol-toggle")
    counter = page.locator("#patrol-points")
    expect(counter).to_have_text("1")
    # One new fix per step; the app samples the latest fix every patrol_interval_s.
    for i, (lon, lat) in enumerate(pts[1:], start=2):
        context.set_geolocation({"latitude": lat, "longitude": lon, "accuracy": 6})
        page.wait_for_function(
            f"Number(document.querySelector('#patrol-points').textContent) >= {i}"
        )
    n = int(counter.text_content() or "0")
    page.click("#patrol-toggle")
    result = page.locator("#patrol-result")
    expect(result).to_have_attribute("data-covered", re.compile(r".+"), timeout=30000)
    save_screenshot(page, "phone-patrol")
    covered = (result.get_attribute("data-covered") or "").split(",")
    assert covered == [s.id for s in segs]
    with stack.runtime.sessions() as s:
        patrol = s.scalars(select(models.Patrol).where(models.Patrol.reporter_id == chief)).one()
        cov = s.scalars(
            select(models.PatrolCoverage.segment_id).where(
                models.PatrolCoverage.patrol_id == patrol.id
            )
        ).all()
        points = s.scalars(
            select(models.PatrolPoint.t).where(models.PatrolPoint.patrol_id == patrol.id)
        ).all()
    assert sorted(cov) == sorted(s.id for s in segs)
    assert patrol.state == "end" and len(points) == n


# -- e. budget: the shell loads in under a second, JS under 300 KB gzipped ---------------
def test_shell_loads_fast_and_ships_little_javascript(
    browser: Browser, playwright_session: Playwright, stack: Stack
) -> None:
    device = dict(playwright_session.devices[DEVICE])
    device.pop("default_browser_type", None)
    cold: list[float] = []
    scripts: dict[str, bytes] = {}

    def on_response(res: Any) -> None:
        if res.request.resource_type == "script" or res.url.endswith(".js"):
            scripts[res.url] = res.body()

    for run in range(3):  # first visits: an empty cache each time (the machine is shared)
        context = browser.new_context(**device, locale="zh-CN", service_workers="allow")
        try:
            page = context.new_page()
            page.on("response", on_response)
            page.goto(stack.url + "/m/")
            page.wait_for_function("window.__rwReady === true")
            cold.append(page.evaluate("window.__rwReadyAt"))
            if run == 2:
                # The service worker has the shell; MQTT.js comes with the broker (after a sign-in).
                page.wait_for_function("navigator.serviceWorker.controller !== null")
                page.reload()
                page.wait_for_function("window.__rwReady === true")
                warm = page.evaluate("window.__rwReadyAt")
                scripts[stack.url + "/m/sw.js"] = context.request.get(stack.url + "/m/sw.js").body()
                mqtt_js = "/static/vendor/mqtt-5.16.0/mqtt.min.js"
                scripts[stack.url + mqtt_js] = context.request.get(stack.url + mqtt_js).body()
        finally:
            context.close()
    sizes = {url.rsplit("/", 1)[-1]: len(gzip.compress(body, 6)) for url, body in scripts.items()}
    total = sum(sizes.values())
    median = sorted(cold)[1]
    print(
        f"\nphone app shell ready: first visit {', '.join(f'{c:.0f}' for c in cold)} ms "
        f"(median {median:.0f}), from the service worker {warm:.0f} ms; JavaScript "
        f"{total / 1024:.1f} KB gzipped ("
        + ", ".join(f"{k} {v / 1024:.1f} KB" for k, v in sorted(sizes.items()))
        + ")"
    )
    # the app's own modules as one script (/m/app.js, issue 20), MQTT.js, the worker
    own = {p.name for p in (Path(roadwatch.web.__file__).parent / "static/m").glob("*.js")}
    assert own, "no phone modules found"
    assert set(sizes) == {"app.js", "sw.js", "mqtt.min.js"}
    bundled = scripts[stack.url + "/m/app.js"].decode()
    assert {f"// ---- {name}" for name in own - {"sw.js"}} <= set(bundled.splitlines())
    assert median < 1000 and warm < 1000
    assert total < 300 * 1024


# -- report with a poor fix (pick-list), then the case's rectification with an after photo --
def test_poor_fix_pick_list_then_rectification_with_after_photo(
    phone: tuple[BrowserContext, Problems], stack: Stack
) -> None:
    context, _ = phone
    chief, segment = stack.chiefs[3]
    lat, lon = _segment_midpoint(stack.runtime, segment)
    context.set_geolocation({"latitude": lat, "longitude": lon, "accuracy": 120})
    page = context.new_page()
    sign_in(page, stack, chief)
    gps = page.locator("#gps")
    expect(gps).to_have_attribute("data-quality", "poor")
    expect(gps).to_contain_text("±120 米")
    pick_category(page, "E0104")
    page.click("#report-send")
    expect(page.locator("#report-errors")).to_contain_text("请在“位置”下选择所在路段")
    choice = page.locator(f"#near-list input[value='{segment}']")
    expect(choice).to_have_count(1)
    choice.check()
    save_screenshot(page, "phone-report-poor-fix")
    page.set_input_files(
        "#photo-input",
        files=[
            FilePayload(name="before.png", mimeType="image/png", buffer=png(800, 600, (9, 9, 9)))
        ],
    )
    expect(page.locator("#photo-thumbs img")).to_have_count(1)
    page.click("#report-send")
    page.click("#tabs [data-view=outbox]")
    expect(page.locator("#outbox-list li[data-kind=report][data-state=accepted]")).to_have_count(
        1, timeout=20000
    )
    with stack.runtime.sessions() as s:
        report = s.scalars(select(models.Report).where(models.Report.reporter_id == chief)).one()
    assert report.segment_hint == segment and report.accuracy_m == 120

    # The dispatcher makes it a case for the chief who answers for the segment.
    def case_of() -> models.Report | None:
        with stack.runtime.sessions() as s:
            return s.get(models.Report, report.id)

    for _ in range(100):
        current = case_of()
        if current is not None and current.case_status == "dispatched":
            break
        page.wait_for_timeout(100)
    current = case_of()
    assert current is not None and current.case_status == "dispatched"
    if current.assignee_id != chief:
        pytest.skip(f"the case went to {current.assignee_id} (a frontage zone), not the chief")

    page.reload()
    page.click("#tabs [data-view=work]")
    card = page.locator(f"#case-list li[data-case='{report.id}']")
    expect(card).to_contain_text("期限")
    card.get_by_role("button", name="整改反馈").click()
    page.click("#rect-send")
    expect(page.locator("#rect-errors")).to_contain_text("整改后的照片")
    page.set_input_files(
        "#rect-photo",
        files=[
            FilePayload(
                name="after.png", mimeType="image/png", buffer=png(900, 700, (250, 250, 250))
            )
        ],
    )
    expect(page.locator("#rect-thumbs img")).to_have_count(1)
    page.click("#rect-send")
    page.click("#tabs [data-view=outbox]")
    expect(
        page.locator("#outbox-list li[data-kind=rectification][data-state=accepted]")
    ).to_have_count(1, timeout=20000)
    # The report's own item is still there, settled: the two never share a key.
    expect(page.locator("#outbox-list li[data-kind=report][data-state=accepted]")).to_have_count(1)
    with stack.runtime.sessions() as s:
        fixed = s.get(models.Report, report.id)
        msg = s.scalars(
            select(models.CaseMessage).where(models.CaseMessage.report_id == report.id)
        ).one()
    assert fixed is not None and fixed.case_status == "rectified"
    assert msg.kind == "rectification" and len(msg.photos) == 1
    assert (Path(stack.runtime.settings.photo_dir) / f"{msg.photos[0]}.jpg").is_file()


# -- the zero-setup demo: the embedded broker's WebSocket listener serves the app ---------
def test_app_reports_through_the_embedded_broker(
    browser: Browser,
    playwright_session: Playwright,
    tmp_path: Path,
    network_ctx: Any,
) -> None:
    from roadwatch.accounts import chiefs as ca

    port, ws_port = free_port(), free_port()
    settings = make_settings(
        tmp_path,
        mqtt_url=f"mqtt://127.0.0.1:{port}",
        embedded_broker="always",
        embedded_ws_port=ws_port,
        mobile_mqtt_ws_url="auto",
    )
    rt = Runtime.build(settings, ctx=network_ctx)
    ((chief, segment),) = _chiefs_with_segments(rt, 1)
    with rt.sessions.begin() as s:
        password = ca.provision(s, only=[chief]).created[chief]
    lat, lon = _segment_midpoint(rt, segment)
    device = dict(playwright_session.devices[DEVICE])
    device.pop("default_browser_type", None)
    try:
        with live_server(rt, mqtt_ingest=True) as server:
            assert rt.broker is not None and rt.broker.ws_port == ws_port
            context = browser.new_context(
                **device,
                locale="zh-CN",
                permissions=["geolocation"],
                geolocation={"latitude": lat, "longitude": lon, "accuracy": 4},
            )
            try:
                page = context.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                stack = Stack(server, rt, None, {chief: password}, [], tmp_path)  # type: ignore[arg-type]
                sign_in(page, stack, chief)
                wait_for_fix(page)
                pick_category(page, "E0506")
                page.click("#report-send")
                page.click("#tabs [data-view=outbox]")
                expect(page.locator("#outbox-list li[data-state=accepted]")).to_have_count(
                    1, timeout=20000
                )
                assert errors == []
            finally:
                context.close()
        with rt.sessions() as s:
            row = s.scalars(select(models.Report).where(models.Report.reporter_id == chief)).one()
        assert row.transport == "mqtt" and row.segment_id == segment
    finally:
        rt.stop()


# -- issue 20 e: the sign-in screen has no tabs, and the pill says what is true ------------
def _pill(page: Page) -> tuple[str, str, str]:
    text, state, colour = page.evaluate(
        "() => { const n = document.querySelector('#net');"
        " return [n.textContent, n.dataset.state, getComputedStyle(n).backgroundColor]; }"
    )
    return text, state, colour


def test_sign_in_screen_has_no_tabs_and_a_true_status_pill(
    phone: tuple[BrowserContext, Problems], stack: Stack
) -> None:
    context, problems = phone
    chief, _ = stack.chiefs[0]
    page = context.new_page()
    page.goto(stack.url + "/m/")
    page.wait_for_function("window.__rwReady === true")
    expect(page.locator("#view-signin")).to_be_visible()
    display = "() => getComputedStyle(document.querySelector('#tabs')).display"
    assert page.evaluate(display) == "none"
    # Nothing but the sign-in form where the tabs would be (the bottom of the screen).
    h = page.viewport_size["height"] if page.viewport_size else 800
    hit = page.evaluate(f"() => document.elementFromPoint(100, {h - 20}).closest('#tabs')")
    assert hit is None
    green = "rgb(46, 125, 50)"
    assert _pill(page) == ("未登录", "online", green)
    save_screenshot(page, "phone-signin")
    context.set_offline(True)
    problems.offline = True
    expect(page.locator("#net")).to_have_text("离线")
    assert _pill(page)[1:] == ("offline", "rgb(85, 85, 85)")
    context.set_offline(False)
    problems.offline = False
    expect(page.locator("#net")).to_have_text("未登录")

    sign_in(page, stack, chief)
    assert page.evaluate(display) == "flex"
    expect(page.locator("#net")).to_have_text("在线")  # the broker's WebSocket, connected
    assert _pill(page) == ("在线", "online", green)
    save_screenshot(page, "phone-signed-in")


# -- issue 20: a new broker address is used without a reload; retries go at once -----------
def test_new_broker_address_is_used_at_once_and_retries_do_not_wait_their_backoff(
    phone: tuple[BrowserContext, Problems], stack: Stack
) -> None:
    context, problems = phone
    chief, segment = stack.chiefs[4]
    lat, lon = _segment_midpoint(stack.runtime, segment)
    context.set_geolocation({"latitude": lat, "longitude": lon, "accuracy": 5})
    rt = stack.runtime
    live = rt.settings
    dead = f"ws://127.0.0.1:{free_port()}/"
    # Signed in while the platform hands out an address with no WebSocket listener.
    rt.settings = live.model_copy(update={"mobile_mqtt_ws_url": dead})
    # The refused WebSocket and the refused posts are logged by Chromium: expected here.
    problems.expected = re.compile(r"WebSocket connection to .* failed|ERR_CONNECTION_REFUSED")
    sockets: list[str] = []
    try:
        page = context.new_page()
        page.on("websocket", lambda ws: sockets.append(ws.url))
        sign_in(page, stack, chief)
        expect(page.locator("#net")).to_have_text("在线 (HTTP)")
        # The report's first three posts fail (server unreachable): its backoff grows.
        failures: list[int] = []

        def fail_thrice(route: Any) -> None:
            if len(failures) < 3:
                failures.append(1)
                route.abort("connectionrefused")
            else:
                route.continue_()

        page.route("**/m/api/reports", fail_thrice)
        wait_for_fix(page)
        pick_category(page, "E0504")
        page.click("#report-send")
        deadline = time.monotonic() + 20
        while True:  # the pump retries after about 2, then 4 s: three failures
            (item,) = page.evaluate("() => window.rwStore.all('outbox')") or [None]
            if (item and item["tries"] >= 3) or time.monotonic() > deadline:
                break
            page.wait_for_timeout(200)
        assert item is not None and item["tries"] >= 3 and len(failures) == 3
        assert item["next_at"] - page.evaluate("Date.now()") > 4000  # it would wait this long

        # The broker's address is fixed on the server; the app comes to the foreground:
        # the report goes at once, and the page stops knocking at the old address.
        rt.settings = live
        t0 = time.monotonic()
        page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
        page.click("#tabs [data-view=outbox]")
        expect(page.locator("#outbox-list li[data-state=accepted]")).to_have_count(1, timeout=4000)
        assert time.monotonic() - t0 < 3.0
        expect(page.locator("#net")).to_have_text("在线 (HTTP)")
        knocks = len(sockets)
        page.wait_for_timeout(4000)  # MQTT.js would retry every 3 s
        assert len(sockets) == knocks and set(sockets) <= {dead}
        page.close()

        # The next load has the new address: a sign-in there uses the broker again.
        page = context.new_page()
        page.goto(stack.url + "/m/")
        page.wait_for_function("window.__rwReady === true")
        url = live.mobile_mqtt_ws_url
        page.wait_for_function(f"window.rwApp.auth.config.mqtt_ws_url === {url!r}")
    finally:
        rt.settings = live
    with rt.sessions() as s:
        rows = s.scalars(select(models.Report).where(models.Report.reporter_id == chief)).all()
    assert [r.transport for r in rows] == ["http"]


# -- no broker for phones: reports go over HTTP, same pipeline, same ack ------------------
def test_app_without_a_broker_reports_over_http(
    browser: Browser,
    playwright_session: Playwright,
    tmp_path: Path,
    network_ctx: Any,
) -> None:
    from roadwatch.accounts import chiefs as ca

    rt = Runtime.build(make_settings(tmp_path, mobile_mqtt_ws_url=""), ctx=network_ctx)
    ((chief, segment),) = _chiefs_with_segments(rt, 1)
    with rt.sessions.begin() as s:
        password = ca.provision(s, only=[chief]).created[chief]
    lat, lon = _segment_midpoint(rt, segment)
    device = dict(playwright_session.devices[DEVICE])
    device.pop("default_browser_type", None)
    try:
        with live_server(rt) as server:  # no MQTT at all
            context = browser.new_context(
                **device,
                locale="zh-CN",
                permissions=["geolocation"],
                geolocation={"latitude": lat, "longitude": lon, "accuracy": 4},
            )
            try:
                page = context.new_page()
                page.goto(server.url + "/m/")
                page.fill("#signin-id", chief)
                page.fill("#signin-pw", password)
                page.click("#signin-form button[type=submit]")
                expect(page.locator("#net")).to_have_text("在线 (HTTP)")
                expect(page.locator("#cat-groups details").first).to_be_visible()
                wait_for_fix(page)
                pick_category(page, "E0505")
                page.click("#report-send")
                page.click("#tabs [data-view=outbox]")
                expect(page.locator("#outbox-list li[data-state=accepted]")).to_have_count(
                    1, timeout=20000
                )
            finally:
                context.close()
        with rt.sessions() as s:
            row = s.scalars(select(models.Report).where(models.Report.reporter_id == chief)).one()
        assert row.transport == "http" and row.segment_id == segment
    finally:
        rt.stop()


# -- a broker address nobody answers (no WebSocket listener): everything goes over HTTP ----
def _chief_without_frontage(rt: Runtime) -> tuple[str, str]:
    """A road chief and a segment of theirs that no merchant or unit shares: a report there
    is dispatched to that chief."""
    a = models.Assignment
    now = models.utcnow()
    with rt.sessions() as s:
        rows = s.execute(
            select(a.reporter_id, a.segment_id, a.role, a.level).where(
                a.valid_to.is_(None), a.valid_from <= now
            )
        ).all()
    shared = {sid for _, sid, role, _ in rows if role != "road_chief"}
    for rid, sid, role, level in sorted(rows):
        if role == "road_chief" and level == 3 and sid not in shared:
            return rid, sid
    raise AssertionError("no road chief with a segment of their own")


def ack_ms(page: Page, kind: str) -> float:
    """Tap to ack of the one accepted item of this kind: from its saving in the outbox (the
    tap) to the platform's answer settling it, as the phone's own clock says."""
    items = page.evaluate("() => window.rwStore.all('outbox')")
    (item,) = [i for i in items if i["kind"] == kind and i["state"] == "accepted"]
    return float(item["updated_at"] - item["created_at"])


@pytest.mark.parametrize("setup", ["no_ws_listener", "no_broker"])
def test_rectification_and_patrol_reach_the_platform_over_http_once_without_a_broker(
    browser: Browser, playwright_session: Playwright, tmp_path: Path, network_ctx: Any, setup: str
) -> None:
    from roadwatch.accounts import chiefs as ca

    # no_ws_listener: the README's set-up on a plain Debian Mosquitto, a broker address for
    # phones but no WebSocket listener behind it; no_broker: no broker address at all.
    dead_ws = f"ws://127.0.0.1:{free_port()}/" if setup == "no_ws_listener" else ""
    rt = Runtime.build(
        make_settings(tmp_path, mobile_mqtt_ws_url=dead_ws, patrol_interval_s=0.4),
        ctx=network_ctx,
    )
    chief, segment = _chief_without_frontage(rt)
    with rt.sessions.begin() as s:
        password = ca.provision(s, only=[chief]).created[chief]
    lat, lon = _segment_midpoint(rt, segment)
    device = dict(playwright_session.devices[DEVICE])
    device.pop("default_browser_type", None)
    posts: list[str] = []
    errors: list[str] = []
    try:
        with live_server(rt) as server:
            context = browser.new_context(
                **device,
                locale="zh-CN",
                permissions=["geolocation"],
                geolocation={"latitude": lat, "longitude": lon, "accuracy": 4},
            )
            try:
                page = context.new_page()
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.on(
                    "request",
                    lambda r: (
                        posts.append(r.url.rsplit("/", 1)[-1]) if r.method == "POST" else None
                    ),
                )
                # The first report is answered as a rate limiter would: the app must wait as
                # long as Retry-After says (its own backoff would retry after about 2 s).
                report_posts: list[float] = []

                def limit_once(route: Any) -> None:
                    if route.request.method != "POST":  # 发送记录 reads the history here
                        route.continue_()
                        return
                    report_posts.append(time.monotonic())
                    # Only on the first set-up: on the other the report's tap to ack is timed.
                    if len(report_posts) > 1 or setup != "no_ws_listener":
                        route.continue_()
                        return
                    route.fulfill(
                        status=429,
                        headers={"Retry-After": "5"},
                        content_type="application/json",
                        body='{"errors": [{"field": "request", "code": "rate_limited", '
                        '"message": "too many requests"}]}',
                    )

                page.route("**/m/api/reports", limit_once)
                page.goto(server.url + "/m/")
                page.fill("#signin-id", chief)
                page.fill("#signin-pw", password)
                page.click("#signin-form button[type=submit]")
                expect(page.locator("#cat-groups details").first).to_be_visible()
                wait_for_fix(page)
                # A report over HTTP makes the case (dispatched inline to this chief).
                pick_category(page, "E0504")
                page.click("#report-send")
                page.click("#tabs [data-view=outbox]")
                if setup == "no_ws_listener":
                    expect(page.locator("#outbox-list")).to_contain_text("服务器要求稍候")
                expect(page.locator("#outbox-list li[data-state=accepted]")).to_have_count(
                    1, timeout=20000
                )
                if setup == "no_ws_listener":
                    assert len(report_posts) == 2 and report_posts[1] - report_posts[0] >= 4.9
                else:
                    # No wait for a broker that is not there (issue 20: it was 20 s and more).
                    assert len(report_posts) == 1 and ack_ms(page, "report") < 5000
                with rt.sessions() as s:
                    report = s.scalars(
                        select(models.Report).where(models.Report.reporter_id == chief)
                    ).one()
                assert report.case_status == "dispatched" and report.assignee_id == chief

                # The rectification, with its after photo, from the same page (the password
                # is still in memory, but the broker cannot be reached).
                page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
                page.click("#tabs [data-view=work]")
                card = page.locator(f"#case-list li[data-case='{report.id}']")
                card.get_by_role("button", name="整改反馈").click()
                page.set_input_files(
                    "#rect-photo",
                    files=[
                        FilePayload(
                            name="after.png", mimeType="image/png", buffer=png(640, 480, (7, 99, 7))
                        )
                    ],
                )
                expect(page.locator("#rect-thumbs img")).to_have_count(1)
                page.click("#rect-send")

                # A patrol along the chief's segment.
                seg = rt.ctx.network.segments[rt.ctx.position[segment]]
                pts = walk_along([seg], spacing_m=10, noise_m=1, seed=15)[:12]
                page.click("#tabs [data-view=work]")
                page.click("#patrol-toggle")
                for i, (plon, plat) in enumerate(pts, start=2):
                    context.set_geolocation({"latitude": plat, "longitude": plon, "accuracy": 5})
                    page.wait_for_function(
                        f"Number(document.querySelector('#patrol-points').textContent) >= {i}",
                        timeout=10000,
                    )
                page.click("#patrol-toggle")
                expect(page.locator("#patrol-result")).to_have_attribute(
                    "data-covered", re.compile(r".*"), timeout=20000
                )
                page.click("#tabs [data-view=outbox]")
                for kind in ("rectification", "patrol"):
                    expect(
                        page.locator(f"#outbox-list li[data-kind={kind}][data-state=accepted]")
                    ).to_have_count(1, timeout=20000)
                save_screenshot(page, f"phone-http-fallback-{setup}")
                # At once over HTTPS (the benchmark prints these figures: bench_phone.py).
                assert ack_ms(page, "rectification") < 5000 and ack_ms(page, "patrol") < 5000
                page.wait_for_timeout(3000)  # the pump runs every 2 s: nothing is sent again
                expect(page.locator("#outbox-list li[data-state=accepted]")).to_have_count(3)
                expect(page.locator("#net")).to_have_text("在线 (HTTP)")
            finally:
                context.close()
        assert errors == []
        assert posts.count("rectifications") == 1 and posts.count("patrols") == 1, posts
        # no_ws_listener: the one refused with 429, then the one sent
        assert posts.count("reports") == (2 if setup == "no_ws_listener" else 1), posts
        with rt.sessions() as s:
            msgs = s.scalars(
                select(models.CaseMessage).where(models.CaseMessage.report_id == report.id)
            ).all()
            fixed = s.get(models.Report, report.id)
            patrols = s.scalars(
                select(models.Patrol).where(models.Patrol.reporter_id == chief)
            ).all()
            rejected = s.scalars(select(models.RejectedMessage)).all()
        assert [(m.kind, m.reporter_id, len(m.photos)) for m in msgs] == [
            ("rectification", chief, 1)
        ]
        assert fixed is not None and fixed.case_status == "rectified"
        assert [(p.reporter_id, p.state) for p in patrols] == [(chief, "end")]
        assert rejected == []
    finally:
        rt.stop()


# -- issue 20 b: the receipt on the form, case cards a chief can act on --------------------
def test_receipt_on_the_form_and_case_cards_with_countdown_photo_and_reporter(
    browser: Browser, playwright_session: Playwright, tmp_path: Path, network_ctx: Any
) -> None:
    from roadwatch.accounts import chiefs as ca
    from tests.support.examples import contract_example
    from tests.test_cases import msg

    rt = Runtime.build(make_settings(tmp_path, mobile_mqtt_ws_url=""), ctx=network_ctx)
    chief, segment = _chief_without_frontage(rt)
    (other, _), *_ = [c for c in _chiefs_with_segments(rt, 5) if c[0] != chief]
    seg_name = rt.ctx.features[rt.ctx.position[segment]]["properties"]["name"]
    with rt.sessions.begin() as s:
        password = ca.provision(s, only=[chief]).created[chief]
        other_name = s.get(models.Reporter, other).name  # type: ignore[union-attr]
    lat, lon = _segment_midpoint(rt, segment)
    device = dict(playwright_session.devices[DEVICE])
    device.pop("default_browser_type", None)
    errors: list[str] = []
    try:
        with live_server(rt) as server:
            context = browser.new_context(
                **device,
                locale="zh-CN",
                timezone_id="Asia/Shanghai",
                permissions=["geolocation"],
                geolocation={"latitude": lat, "longitude": lon, "accuracy": 4},
            )
            try:
                page = context.new_page()
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(server.url + "/m/")
                page.fill("#signin-id", chief)
                page.fill("#signin-pw", password)
                page.click("#signin-form button[type=submit]")
                expect(page.locator("#cat-groups details").first).to_be_visible()
                wait_for_fix(page)

                def send(code: str, photo: bool) -> float:
                    """Report from the form; seconds from the ack to the receipt shown."""
                    pick_category(page, code)
                    if photo:
                        page.set_input_files(
                            "#photo-input",
                            files=[
                                FilePayload(
                                    name="p.png",
                                    mimeType="image/png",
                                    buffer=png(800, 600, (1, 2, 3)),
                                )
                            ],
                        )
                        expect(page.locator("#photo-thumbs img")).to_have_count(1)
                    page.click("#severity button[data-v='3']")
                    before = len(page.evaluate("() => window.rwStore.all('outbox')"))
                    page.click("#report-send")
                    deadline = time.monotonic() + 15
                    while time.monotonic() < deadline:
                        items = page.evaluate("() => window.rwStore.all('outbox')")
                        if len([i for i in items if i["state"] == "accepted"]) > before:
                            break
                        page.wait_for_timeout(20)
                    acked = time.monotonic()
                    expect(page.locator("#report-done[data-receipt]")).to_have_count(
                        1, timeout=3000
                    )
                    return time.monotonic() - acked

                first = send("E0504", photo=True)
                expect(page.locator("#report-done")).to_have_text(f"已受理·{seg_name}")
                assert first < 1.0, first
                # The same problem again at the same place: merged into that case.
                page.wait_for_timeout(300)
                page.click("#severity button[data-v='1']")
                second = send("E0504", photo=False)
                expect(page.locator("#report-done")).to_have_text(
                    f"已并入已有案件·店外经营·{seg_name}", timeout=3000
                )
                assert second < 1.0, second

                # Someone else reports another problem on the chief's road.
                body = contract_example(
                    reporter_id=other,
                    lat=lat,
                    lon=lon,
                    crs="WGS84",
                    category="E0102",
                    severity=1,
                    photos=[],
                    note=None,
                )
                rt.pipeline.reporters.reload()
                (out,) = rt.pipeline.process([msg("report", body, other, dt_now())])
                assert out.case_status == "dispatched", out

                page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
                page.click("#tabs [data-view=work]")
                cards = page.locator("#case-list li[data-case]")
                expect(cards).to_have_count(2)
                urgent = cards.nth(0)  # urgent first
                expect(urgent).to_have_class(re.compile(r"\burgent\b"))
                expect(urgent.locator(".sev")).to_have_text("紧急")
                expect(urgent.locator(".countdown")).to_have_text(
                    re.compile(r"^(剩|已超期) \d+ (小时|分钟) · 期限 ")
                )
                expect(urgent).to_contain_text("本人上报")
                img = urgent.locator("img.case-photo")
                expect(img).to_have_count(1)
                page.wait_for_function(
                    "document.querySelector('#case-list li.urgent img').naturalWidth > 0"
                )
                other_card = cards.nth(1)
                expect(other_card.locator(".sev")).to_have_text("一般")
                expect(other_card).to_contain_text(f"上报人：{other_name}")
                save_screenshot(page, "phone-case-cards")

                # A rectification waiting in the outbox (offline): no second 整改反馈.
                context.set_offline(True)
                urgent.get_by_role("button", name="整改反馈").click()
                page.set_input_files(
                    "#rect-photo",
                    files=[
                        FilePayload(
                            name="a.png", mimeType="image/png", buffer=png(640, 480, (7, 99, 7))
                        )
                    ],
                )
                expect(page.locator("#rect-thumbs img")).to_have_count(1)
                page.click("#rect-send")
                card = page.locator("#case-list li.urgent")
                expect(card).to_contain_text("整改反馈已保存，等待发送")
                expect(card.get_by_role("button", name="整改反馈")).to_have_count(0)
                context.set_offline(False)
                expect(card).to_contain_text("已整改，待核查", timeout=15000)
                # The platform's record of the chief's reports, with their outcomes.
                page.click("#tabs [data-view=outbox]")
                history = page.locator("#history-list li[data-id]")
                expect(history).to_have_count(2)
                expect(history.nth(0)).to_contain_text(f"已并入已有案件·店外经营·{seg_name}")
                expect(history.nth(1)).to_contain_text("已整改，待核查")
            finally:
                context.close()
        # Only Chromium's own lines about the offline minutes, nothing from the app.
        assert errors == []
    finally:
        rt.stop()


def dt_now() -> Any:
    import datetime as dt

    return dt.datetime.now(dt.UTC)


# -- issue 20 scope 4: the map of the chief's own road, opened on demand -------------------
def test_map_of_the_chiefs_road_with_basemap_pins_track_and_todays_coverage(
    browser: Browser, playwright_session: Playwright, tmp_path: Path, network_ctx: Any
) -> None:
    import datetime as dt

    from roadwatch.accounts import chiefs as ca
    from tests.support.pmtiles_files import raster_archive
    from tests.test_patrols import patrol_msg

    rt0 = Runtime.build(make_settings(tmp_path, mobile_mqtt_ws_url=""), ctx=network_ctx)
    chief, segment = _chief_without_frontage(rt0)
    rt0.stop()
    seg = network_ctx.network.segments[network_ctx.position[segment]]
    w, s, e, n = seg.geometry.bounds
    archive = raster_archive(
        tmp_path / "city.pmtiles", (w - 0.01, s - 0.01, e + 0.01, n + 0.01), range(13, 17)
    )
    rt = Runtime.build(
        make_settings(tmp_path, mobile_mqtt_ws_url="", basemap=str(archive), patrol_interval_s=0.3),
        ctx=network_ctx,
    )
    with rt.sessions.begin() as db:
        password = ca.provision(db, only=[chief]).created[chief]
    # A patrol earlier today walked the segment (the platform keeps the day's coverage).
    pts: Any = list(enumerate(walk_along([seg], spacing_m=6, noise_m=2, seed=5)))  # (i, point)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    (done,) = rt.pipeline.process([patrol_msg(str(uuid.uuid4()), chief, "end", pts, start)])
    assert segment in (done.covered or ()), done
    lat, lon = _segment_midpoint(rt, segment)
    device = dict(playwright_session.devices[DEVICE])
    device.pop("default_browser_type", None)
    tiles: list[int] = []
    try:
        with live_server(rt) as server:
            context = browser.new_context(
                **device,
                locale="zh-CN",
                timezone_id="Asia/Shanghai",
                permissions=["geolocation"],
                geolocation={"latitude": lat, "longitude": lon, "accuracy": 4},
            )
            try:
                page = context.new_page()
                page.on(
                    "response",
                    lambda r: tiles.append(r.status) if "/m/api/basemap/" in r.url else None,
                )
                page.goto(server.url + "/m/")
                page.fill("#signin-id", chief)
                page.fill("#signin-pw", password)
                page.click("#signin-form button[type=submit]")
                expect(page.locator("#cat-groups details").first).to_be_visible()
                wait_for_fix(page)
                pick_category(page, "E0504")
                page.click("#severity button[data-v='3']")
                page.click("#report-send")
                expect(page.locator("#report-done[data-receipt]")).to_have_count(1, timeout=10000)
                page.wait_for_timeout(500)
                assert tiles == []  # the first screen loads no map
                page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
                page.click("#tabs [data-view=work]")
                svg = page.locator("#map")
                expect(svg.locator("image.tile").first).to_be_attached()
                expect(svg.locator(f"polyline.covered[data-segment='{segment}']")).to_have_count(1)
                expect(svg.locator("circle.pin.urgent")).to_have_count(1)
                expect(svg.locator("circle.me")).to_have_count(1)
                expect(page.locator("#map-attribution")).to_have_text("© test city")
                page.wait_for_timeout(500)
                assert tiles and all(t == 200 for t in tiles), tiles
                # A patrol: its track is drawn live.
                walk = walk_along([seg], spacing_m=15, noise_m=1, seed=7)[:4]
                page.click("#patrol-toggle")
                for i, (plon, plat) in enumerate(walk, start=2):
                    context.set_geolocation({"latitude": plat, "longitude": plon, "accuracy": 5})
                    expect(page.locator("#patrol-points")).to_have_text(str(i), timeout=10000)
                expect(svg.locator("polyline.track")).to_have_count(1)
                save_screenshot(page, "phone-road-map")
                # After a reload the day's coverage is still there (from the platform).
                page.reload()
                page.wait_for_function("window.__rwReady === true")
                page.click("#tabs [data-view=work]")
                expect(svg.locator(f"polyline.covered[data-segment='{segment}']")).to_have_count(1)
                expect(page.locator("#seg-list")).to_contain_text("今日已巡查")
            finally:
                context.close()
    finally:
        rt.stop()
