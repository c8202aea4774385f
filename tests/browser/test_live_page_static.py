"""The command-centre page (/) against a stand-in server, in headless Chromium.

The real template and static files are served by a tiny Flask-SocketIO app that
answers /api/districts and the map's data (the server's own vector tiles and segment
table, built by roadwatch.web.mapdata) for a synthetic 2,495-segment network, and
keeps an event log with seq numbers, replaying it on `resync`. This proves
the page's side of the contract; the end-to-end test with the real server lives
elsewhere.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask, Response, render_template, request
from flask_socketio import SocketIO, emit
from playwright.sync_api import Page
from werkzeug.serving import make_server

from roadwatch.web.mapdata import MapData, rows_from_features, table_response, tile_response

from .conftest import save_screenshot

pytestmark = pytest.mark.browser

WEB = Path(__file__).resolve().parents[2] / "roadwatch" / "web"
NAMESPACE = "/live"
SHANGHAI = ZoneInfo("Asia/Shanghai")
N_SEGMENTS = 2495
SNAPSHOT_SEQ = 100
LON0, LON1, LAT0, LAT1 = 113.55, 113.80, 34.68, 34.86

# 3 x 2 grid of made-up districts over the bbox (west->east, south->north)
DISTRICTS = [
    ("ZY", "中原区"),
    ("EQ", "二七区"),
    ("GC", "管城回族区"),
    ("HJ", "惠济区"),
    ("JS", "金水区"),
    ("ZD", "郑东新区"),
]
ROADS = ["花园路", "农业路", "黄河路", "金水路", "中州大道", "文化路", "经三路", "纬五路"]


def _district_index(lon: float, lat: float) -> int:
    col = min(2, int((lon - LON0) / (LON1 - LON0) * 3))
    row = min(1, int((lat - LAT0) / (LAT1 - LAT0) * 2))
    return row * 3 + col


def make_districts() -> dict[str, Any]:
    features = []
    dlon, dlat = (LON1 - LON0) / 3, (LAT1 - LAT0) / 2
    for i, (code, name) in enumerate(DISTRICTS):
        x0, y0 = LON0 + (i % 3) * dlon, LAT0 + (i // 3) * dlat
        ring = [[x0, y0], [x0 + dlon, y0], [x0 + dlon, y0 + dlat], [x0, y0 + dlat], [x0, y0]]
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": {"code": code, "name": name, "kind": "district"},
            }
        )
    return {"type": "FeatureCollection", "features": features}


def make_segments(n: int = N_SEGMENTS, seed: int = 7) -> dict[str, Any]:
    rng = random.Random(seed)
    counters = [0] * len(DISTRICTS)
    features = []
    for k in range(n):
        lon = rng.uniform(LON0 + 0.003, LON1 - 0.003)
        lat = rng.uniform(LAT0 + 0.003, LAT1 - 0.003)
        d = _district_index(lon, lat)
        counters[d] += 1
        code, dname = DISTRICTS[d]
        sid = f"ZZ-{code}-{counters[d]:04d}"
        # a short east-west or north-south street with a kink, ~300-600 m
        step = rng.uniform(0.0012, 0.0025)
        if rng.random() < 0.5:
            coords = [[lon, lat], [lon + step, lat + step * 0.1], [lon + 2 * step, lat]]
        else:
            coords = [[lon, lat], [lon + step * 0.1, lat + step], [lon, lat + 2 * step]]
        road = ROADS[k % len(ROADS)]
        frm, to = ROADS[(k + 3) % len(ROADS)], ROADS[(k + 5) % len(ROADS)]
        open_ = 3 if k % 101 == 0 else 1 if k % 37 == 0 else 0
        overdue = 1 if k % 211 == 0 else 0
        features.append(
            {
                "type": "Feature",
                "id": sid,
                "geometry": {"type": "LineString", "coordinates": coords},
                "properties": {
                    "id": sid,
                    "name": f"{road}（{frm}至{to}）",
                    "road": road,
                    "from": frm,
                    "to": to,
                    "district": dname,
                    "road_class": "secondary",
                    "length_m": round(step * 2 * 95_000, 1),
                    "chief": None
                    if k % 9 == 0
                    else {"id": f"zz-{code.lower()}-{k:04d}", "name": f"路长{k:04d}"},
                    "state": {"open": open_, "overdue": overdue, "score": 100 - 5 * open_},
                },
            }
        )
    return {"type": "FeatureCollection", "features": features, "seq": SNAPSHOT_SEQ}


class LiveStub:
    """Flask-SocketIO app serving the real page, with a replayable event log."""

    def __init__(self) -> None:
        self.districts = make_districts()
        self.segments = make_segments()
        self.ids = [f["id"] for f in self.segments["features"]]
        self.open_total = sum(f["properties"]["state"]["open"] for f in self.segments["features"])
        self.map = MapData(rows_from_features(self.segments["features"]), "stub").scoped(None)
        self.seq = SNAPSHOT_SEQ
        self.log: list[tuple[str, dict[str, Any]]] = []
        self.resyncs: list[int] = []
        self.sids: set[str] = set()
        # emit this live event just before replaying a resync, as a busy server may
        self.overtake: tuple[str, dict[str, Any]] | None = None
        self.lock = threading.RLock()
        self.app = self._make_app()

    def _make_app(self) -> Flask:
        app = Flask(
            __name__, template_folder=str(WEB / "templates"), static_folder=str(WEB / "static")
        )
        sio = SocketIO(app, async_mode="threading")
        self.socketio = sio

        @app.get("/")
        def index() -> str:
            # as the real app spells it: relative to the app root
            config = {
                "socketio_path": "socket.io",
                "namespace": NAMESPACE,
                "map": self.map.config(""),
                "state": self.state(),
            }
            return render_template("index.html", title="路长制 指挥中心", config=config)

        @app.get("/api/districts")
        def districts() -> dict[str, Any]:
            return self.districts

        @app.get("/api/segments")
        def segments() -> dict[str, Any]:
            return self.segments

        # the map's data, built by the server's own code from the same segments
        @app.get("/api/centre/state")
        def state() -> dict[str, Any]:
            return self.state()

        @app.get("/api/centre/segments/<key>.json")
        def table(key: str) -> Response:
            assert key == self.map.key
            return table_response(self.map)

        @app.get("/api/centre/tiles/<key>/<int:z>/<int:x>/<int:y>.pbf")
        def tile(key: str, z: int, x: int, y: int) -> Response:
            assert key == self.map.key
            return tile_response(self.map, z, x, y)

        @app.get("/api/centre/chiefs")
        def chiefs() -> dict[str, Any]:
            return {
                f["id"]: [f["properties"]["chief"]["id"], f["properties"]["chief"]["name"]]
                for f in self.segments["features"]
                if f["properties"]["chief"]
            }

        @app.get("/api/categories")
        def categories() -> dict[str, Any]:
            return {"E0504": {"name": "店外经营", "name_en": "Business outside the shop"}}

        @sio.on("connect", namespace=NAMESPACE)
        def on_connect() -> None:
            self.sids.add(request.sid)  # type: ignore[attr-defined]

        @sio.on("disconnect", namespace=NAMESPACE)
        def on_disconnect(*_: Any) -> None:
            self.sids.discard(request.sid)  # type: ignore[attr-defined]

        @sio.on("resync", namespace=NAMESPACE)
        def on_resync(data: dict[str, Any]) -> dict[str, Any]:
            since = int(data["since"])
            if self.overtake:
                self.push(*self.overtake)
                self.overtake = None
            with self.lock:
                self.resyncs.append(since)
                for event, payload in self.log:
                    if payload["seq"] > since:
                        emit(event, payload)
                return {"ok": True, "seq": self.seq}

        return app

    def state(self) -> dict[str, Any]:
        """The live state as of the snapshot's seq (segments with something open)."""
        states = {}
        for f in self.segments["features"]:
            st = f["properties"]["state"]
            if st["open"]:
                states[f["id"]] = [st["open"], st["overdue"], st["score"]]
        return {"seq": SNAPSHOT_SEQ, "stats": None, "states": states}

    # -- driving events --------------------------------------------------
    def push(self, event: str, payload: dict[str, Any]) -> int:
        """Append a new event (next seq) to the log and broadcast it."""
        with self.lock:
            self.seq += 1
            payload = {**payload, "seq": self.seq}
            self.log.append((event, payload))
            self.socketio.emit(event, payload, namespace=NAMESPACE)
            return self.seq

    def log_only(self, event: str, payload: dict[str, Any]) -> int:
        """Append to the log without broadcasting: committed by a process whose emit was
        lost (its Redis queue restarting) or has not happened yet."""
        with self.lock:
            self.seq += 1
            self.log.append((event, {**payload, "seq": self.seq}))
            return self.seq

    def send_raw(self, event: str, payload: dict[str, Any]) -> None:
        """Broadcast as is (e.g. an old seq), without logging it."""
        self.socketio.emit(event, payload, namespace=NAMESPACE)

    def report(self, n: int, **extra: Any) -> dict[str, Any]:
        rng = random.Random(n)
        now = datetime.now(SHANGHAI).isoformat(timespec="seconds")
        return {
            "id": f"00000000-0000-4000-8000-{n:012d}",
            "segment_id": self.ids[n % len(self.ids)],
            "district": "金水区",
            "category": "E0504",
            "severity": 1 + n % 3,
            "status": "needs_review" if n % 10 == 0 else "accepted",
            "lat": rng.uniform(LAT0, LAT1),
            "lon": rng.uniform(LON0, LON1),
            "observed_at": now,
            "received_at": now,
            **extra,
        }

    def drop_connections(self) -> None:
        """Close the clients' Engine.IO sessions, as a network drop would."""
        server = self.socketio.server
        for sid in list(self.sids):
            eio_sid = server.manager.eio_sid_from_sid(sid, NAMESPACE)
            sock = server.eio.sockets.pop(eio_sid, None) if eio_sid else None
            if sock is not None:
                # not eio.disconnect(): it waits for the socket's send queue to drain,
                # which can hang forever when the client's end closes first
                sock.close(wait=False)


@pytest.fixture
def stub() -> Iterator[LiveStub]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    stub = LiveStub()
    # the replay for the first resync: events after the snapshot's seq
    for n in range(3):
        stub.push("report", stub.report(n))
    stub.push("segment", {"segment_id": stub.ids[5], "open": 2, "overdue": 0, "score": 90})
    # ... and a live event that reaches the page before that replay
    stub.overtake = ("segment", {"segment_id": stub.ids[9], "open": 1, "overdue": 0, "score": 95})
    server = make_server("127.0.0.1", 0, stub.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-stub", daemon=True)
    thread.start()
    stub.url = f"http://127.0.0.1:{server.server_port}"  # type: ignore[attr-defined]
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def rw(page: Page, expr: str) -> Any:
    return page.evaluate(f"() => window.roadwatch.{expr}")


def wait_js(page: Page, condition: str, timeout: float = 10_000) -> None:
    page.wait_for_function(
        f"() => {{ const rw = window.roadwatch; return {condition}; }}", timeout=timeout
    )


def open_page(page: Page, stub: LiveStub) -> float:
    t0 = time.perf_counter()
    page.goto(stub.url + "/")  # type: ignore[attr-defined]
    wait_js(page, "rw && rw.ready", timeout=30_000)
    return time.perf_counter() - t0


def test_live_page_draws_network_and_applies_events(
    page: Page, stub: LiveStub, record_property: Any
) -> None:
    elapsed = open_page(page, stub)
    timings = rw(page, "timings")
    print(
        f"\ntime to first full render (goto -> ready): {elapsed * 1000:.0f} ms; "
        f"page timings (ms since navigation start): {timings}"
    )
    record_property("render_ms", round(elapsed * 1000))

    # the whole network is drawn
    assert rw(page, "segmentCount") == N_SEGMENTS
    ids = page.evaluate(
        "() => [...new Set(window.roadwatch._map.querySourceFeatures('segments', "
        "{sourceLayer: 'segments'}).map(f => f.id))].length"
    )
    assert ids == N_SEGMENTS
    assert page.text_content("#rw-count-segments") == "2,495"

    # the first resync asked for everything after the snapshot and got it, although
    # a newer live event arrived before the replay
    assert stub.resyncs == [SNAPSHOT_SEQ]
    assert rw(page, "lastSeq") == SNAPSHOT_SEQ + 5
    assert rw(page, "reportsSeen") == 3
    assert rw(page, f"featureState('{stub.ids[5]}')")["open"] == 2
    assert rw(page, f"featureState('{stub.ids[9]}')")["open"] == 1
    assert rw(page, "connected") is True
    assert page.text_content("#rw-conn").strip() == "实时"

    # a live segment event changes that segment's feature-state (and the header)
    target = stub.ids[173]
    before_open = next(
        f["properties"]["state"]["open"] for f in stub.segments["features"] if f["id"] == target
    )
    stub.push("segment", {"segment_id": target, "open": 3, "overdue": 1, "score": 40})
    wait_js(page, f"rw.featureState('{target}').open === 3")
    assert rw(page, f"featureState('{target}')")["overdue"] == 1
    expected_open = stub.open_total + 2 + 1 + (3 - before_open)  # ids[5], ids[9] were calm
    page.wait_for_function(
        f"() => document.querySelector('#rw-count-open').textContent === '{expected_open}'"
    )

    # one report event -> reportsSeen + 1, and it shows up on the map
    seen = rw(page, "reportsSeen")
    report = stub.report(1000)
    seq = stub.push("report", report)
    wait_js(page, f"rw.lastSeq === {seq}")
    assert rw(page, "reportsSeen") == seen + 1
    wait_js(page, f"rw.hasReport('{report['id']}') && rw.reportsOnMap === {seen + 1}")

    # replays of old events are ignored
    stub.send_raw("report", {**report, "seq": seq})
    stub.send_raw("report", {**stub.report(2000), "seq": seq - 1})
    stub.send_raw(
        "segment", {"segment_id": target, "open": 0, "overdue": 0, "score": 100, "seq": seq - 1}
    )
    marker = stub.push("segment", {"segment_id": stub.ids[7], "open": 1, "overdue": 0, "score": 95})
    wait_js(page, f"rw.lastSeq === {marker}")
    assert rw(page, "reportsSeen") == seen + 1
    assert rw(page, f"featureState('{target}')")["open"] == 3

    # a burst is applied in full; the reports source is updated in coalesced batches
    for n in range(3000, 3300):
        stub.push("report", stub.report(n))
    wait_js(page, f"rw.reportsSeen === {seen + 301}")
    wait_js(page, f"rw.reportsOnMap === {seen + 301}")  # clustered on the map, all there
    assert page.text_content("#rw-count-reports") == str(seen + 301)
    # each cluster's count is written over it (HTML), and they add up to no more than that
    page.wait_for_function(
        "() => document.querySelectorAll('.rw-cluster-count:not([hidden])').length > 10"
    )
    counts = page.evaluate(
        """() => [...document.querySelectorAll('.rw-cluster-count:not([hidden])')]
            .map(e => Number(e.textContent))"""
    )
    assert all(n >= 2 for n in counts) and sum(counts) <= seen + 301

    # hovering a segment opens its panel
    point = page.evaluate(
        f"""() => {{ const m = window.roadwatch._map;
            const p = m.project([{LON0 + 0.12}, {LAT0 + 0.09}]);
            const hits = m.queryRenderedFeatures(
                [[p.x - 60, p.y - 60], [p.x + 60, p.y + 60]], {{layers: ['segments']}});
            const c = hits[0].geometry.coordinates; const q = m.project(c[1]);
            const r = m.getCanvas().getBoundingClientRect();
            return {{x: r.left + q.x, y: r.top + q.y}}; }}"""
    )
    page.mouse.move(point["x"], point["y"])
    page.wait_for_selector("#rw-segment:not([hidden])")
    assert page.text_content("#rw-segment [data-field=name]")

    path = save_screenshot(page, "live_page_static")
    print(f"screenshot: {path}")


def test_reconnect_resyncs_missed_events(page: Page, stub: LiveStub) -> None:
    open_page(page, stub)
    page.evaluate(
        """() => { window.__conn = [];
             new MutationObserver(() => window.__conn.push(
                 document.querySelector('#rw-conn').dataset.state))
               .observe(document.querySelector('#rw-conn'), {attributes: true}); }"""
    )
    seen = rw(page, "reportsSeen")
    target = stub.ids[42]

    stub.drop_connections()
    wait_js(page, "!rw.connected")
    # missed while disconnected
    stub.push("report", stub.report(5000))
    stub.push("report", stub.report(5001))
    last = stub.push("segment", {"segment_id": target, "open": 4, "overdue": 0, "score": 60})

    wait_js(page, f"rw.connected && rw.lastSeq === {last}", timeout=15_000)
    assert stub.resyncs == [SNAPSHOT_SEQ, SNAPSHOT_SEQ + 5]
    assert rw(page, "reportsSeen") == seen + 2
    assert rw(page, f"featureState('{target}')")["open"] == 4
    assert page.evaluate("() => window.__conn")[:2] == ["down", "live"]
    assert page.text_content("#rw-conn").strip() == "实时"


def test_resync_starts_below_an_event_committed_but_never_emitted(
    page: Page, stub: LiveStub
) -> None:
    """Two processes write the event log: one's event (seq n) is committed but its emit is
    lost, the other's (n + 1) reaches the page. After the next reconnect the page must get
    n, although it has seen n + 1: it resyncs from below the gap, not from its highest seq."""
    open_page(page, stub)
    seen = rw(page, "reportsSeen")
    lost = stub.report(6000)
    gap = stub.log_only("report", lost)
    last = stub.push("report", stub.report(6001))
    wait_js(page, f"rw.lastSeq === {last} && rw.reportsSeen === {seen + 1}")

    stub.drop_connections()
    wait_js(page, "!rw.connected")
    wait_js(page, f"rw.connected && rw.reportsSeen === {seen + 2}", timeout=15_000)
    assert stub.resyncs[-1] == gap - 1
    assert rw(page, f"hasReport('{lost['id']}')")
    assert rw(page, "lastSeq") == last
    # once the gap is filled, the next resync starts after everything again
    resyncs = len(stub.resyncs)
    stub.drop_connections()
    wait_js(page, "!rw.connected")
    wait_js(page, "rw.connected", timeout=15_000)
    deadline = time.monotonic() + 10
    while len(stub.resyncs) == resyncs and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stub.resyncs[resyncs:] == [last]
