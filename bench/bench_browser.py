"""Command-centre benchmark in headless Chromium (issue 7 acceptance e). Prints figures.

In one run:
  1. time to first full render of the demo network's 2,495 segments: from navigation to
     `window.roadwatch.ready` (the live state in, every segment drawn and coloured by it:
     the first idle map after the state went into feature state, every tile of the view
     loaded; the segments' attributes in; the live feed resynced), with 300 open reports
     so that about 300 segments are coloured; after each run the bench checks that every
     segment is in the map's tiles and that the map's feature state equals the server's
     live state. Beside it a baseline: bare MapLibre drawing the /api/segments GeoJSON
     on a blank page of the same origin (no app logic), timed from after its script is
     loaded;
  2. the same with a generated 25,000-segment network
     (`roadwatch network generate --segments 25000`, cached in var/bench/);
  3. a stream of 1,000 events/s for 30 s (60 % reports, 40 % segment states) to the
     2,495-segment page: how far behind live the page is (sampled every second: the age
     of the newest event drawn on the map, `drawnSeq`: its segment colours and report
     markers in a frame the map has rendered, when newer events exist), and its JS heap
     after a forced GC at the start, a third of the way in (when the page's bounded
     buffers, e.g. the 2,000 reports on the map, are full) and at the end, beside the
     same page idle for 10 s.

The events of step 3 are emitted through the platform's broadcaster (the one place that
emits to Socket.IO), so the figure is about Socket.IO delivery and the page, not ingest
(bench_ingest.py measures that).

With `--server gunicorn` step 3 runs under the production server: the page is served by
`roadwatch web` (gunicorn, one threaded worker) in its own process and the events reach it
through a private Redis, as an ingest worker's do (issue 18 acceptance d).

Usage: .venv/bin/python bench/bench_browser.py [--runs 3] [--rate 1000] [--seconds 30]
       [--skip-25k] [--cpu-throttle 1] [--server werkzeug|gunicorn] [--stream-only]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import Browser, Page, sync_playwright  # noqa: E402

from roadwatch.runtime import Runtime  # noqa: E402
from roadwatch.settings import load_settings  # noqa: E402
from roadwatch.store.events import LiveEvent  # noqa: E402
from tests.browser.conftest import CHROMIUM_ARGS, DEFAULT_CHROMIUM  # noqa: E402
from tests.support.auth import session_cookie  # noqa: E402
from tests.support.server import LiveServer, free_port  # noqa: E402

NET_25K = ROOT / "var" / "bench" / "net25k.geojson.gz"

BASELINE_JS = """async () => {
  const t0 = performance.now();
  const div = document.createElement('div');
  div.style.cssText = 'position:fixed;inset:0';
  document.body.appendChild(div);
  const map = new maplibregl.Map({container: div, style: {version: 8, sources: {},
      layers: [{id: 'bg', type: 'background', paint: {'background-color': '#0d1624'}}]},
      center: [113.66, 34.76], zoom: 10.5});
  const [fc] = await Promise.all([fetch('/api/segments').then(r => r.json()),
                                  new Promise(r => map.once('load', r))]);
  map.addSource('s', {type: 'geojson', data: fc, promoteId: 'id'});
  map.addLayer({id: 's', type: 'line', source: 's', paint: {'line-color': '#4f6f93'}});
  await new Promise(r => map.once('idle', r));
  return performance.now() - t0;
}"""


def runtime_for(tmp: Path, network: str) -> Runtime:
    settings = load_settings(
        env={},
        overrides={
            "database_url": f"sqlite:///{tmp / 'bench.sqlite3'}",
            "photo_dir": str(tmp / "photos"),
            "network": network,
            "embedded_broker": "never",
            "log_level": "WARNING",
        },
    )
    return Runtime.build(settings)


CPU_THROTTLE = 1.0  # --cpu-throttle: Chromium's CPU throttling of the page (1 = none)


def new_page(browser: Browser, url: str, cookie: str) -> Page:
    context = browser.new_context(viewport={"width": 1920, "height": 1080}, locale="zh-CN")
    name, _, value = cookie.partition("=")
    context.add_cookies([{"name": name, "value": value, "url": url}])
    page = context.new_page()
    if CPU_THROTTLE != 1.0:
        cdp = context.new_cdp_session(page)
        cdp.send("Emulation.setCPUThrottlingRate", {"rate": CPU_THROTTLE})
    return page


# After ready: which segments are in the map's tiles, and does the map's feature state
# agree with the server's live state (asked for now; nothing changes during the bench)?
CHECK_JS = """async () => {
  const rw = window.roadwatch, m = rw._map;
  const ids = new Set(m.querySourceFeatures('segments', {sourceLayer: 'segments'})
      .map(f => String(f.id)));
  const truth = await (await fetch(JSON.parse(
      document.getElementById('rw-config').textContent).map.state)).json();
  const wrong = Object.keys(truth.states).filter(id => {
    const st = rw.featureState(id) || {};
    const [open, overdue, score] = truth.states[id];
    return st.open !== open || st.overdue !== overdue || st.score !== score;
  });
  return {in_tiles: ids.size, open: Object.keys(truth.states).length, wrong: wrong.length};
}"""


def render_once(browser: Browser, url: str, cookie: str) -> dict[str, Any]:
    page = new_page(browser, url, cookie)
    try:
        t0 = time.perf_counter()
        page.goto(url + "/")
        page.wait_for_function("() => window.roadwatch && window.roadwatch.ready", timeout=120_000)
        wall = (time.perf_counter() - t0) * 1000
        timings = page.evaluate("window.roadwatch.timings")
        if os.environ.get("BENCH_VERBOSE"):
            print("   timings", timings)
        n = int(page.evaluate("window.roadwatch.segmentCount"))
        check = page.evaluate(CHECK_JS)
        if check["in_tiles"] != n or check["wrong"]:
            raise SystemExit(f"not a full render: {check} of {n} segments")
        return {"ready": float(timings["ready"]), "wall": wall, "n": n, **timings, **check}
    finally:
        page.context.close()


def seed_open_reports(rt: Runtime, url: str, n: int = 300, seed: int = 3) -> int:
    """n reports over HTTP at the middle of n segments: the map starts with open cases."""
    import json
    import urllib.request

    from roadwatch.accounts.apikeys import add_key

    rng = random.Random(seed)
    now = time.strftime("%Y-%m-%dT%H:%M:%S+08:00", time.gmtime(time.time() + 8 * 3600))
    accepted = 0
    # Real identities (issue 15): eleven road chiefs of the network, an API key each.
    chiefs = sorted(p.id for p in rt.ctx.network.people)[:11]
    with rt.sessions.begin() as session:
        keys = {c: add_key(session, reporter=c, label="bench_browser").key for c in chiefs}
    for i, seg in enumerate(rng.sample(list(rt.ctx.network.segments), n)):
        p = seg.geometry.interpolate(0.5, normalized=True)
        body = {
            "v": 1,
            "report_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "reporter_id": chiefs[i % 11],
            "observed_at": now,
            "lat": round(p.y, 7),
            "lon": round(p.x, 7),
            "crs": "WGS84",
            "accuracy_m": 5.0,
            "category": ("E0504", "E0505", "E0201")[i % 3],
            "severity": 1 + i % 3,
            "segment_hint": seg.id,
        }
        req = urllib.request.Request(
            url + "/api/reports",
            data=json.dumps(body).encode(),
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {keys[chiefs[i % 11]]}",
            },
        )
        with urllib.request.urlopen(req) as res:
            accepted += res.status == 201
    return accepted


def baseline_once(browser: Browser, url: str, cookie: str) -> float:
    page = new_page(browser, url, cookie)
    try:
        page.goto(url + "/login")
        page.add_script_tag(url="/static/vendor/maplibre-gl-5.24.1/maplibre-gl.js")
        return float(page.evaluate(BASELINE_JS))
    finally:
        page.context.close()


def _ms(values: list[float]) -> str:
    return ", ".join(f"{x:,.0f}" for x in values)


def bench_render(browser: Browser, label: str, network: str, runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rt = runtime_for(Path(tmp), network)
        server = LiveServer(rt).start()
        try:
            accepted = seed_open_reports(rt, server.url)
            cookie = session_cookie(server.app, rt)
            render_once(browser, server.url, cookie)  # warm the server's caches
            results = [render_once(browser, server.url, cookie) for _ in range(runs)]
            base = [baseline_once(browser, server.url, cookie) for _ in range(runs)]
        finally:
            server.stop()
            rt.stop()
    n = results[0]["n"]
    ready = [r["ready"] for r in results]
    wall = [r["wall"] for r in results]
    print(
        f"{label}: {n:,} segments  first full render (navigation → ready) "
        f"median {statistics.median(ready):,.0f} ms  [runs: {_ms(ready)}]"
        f"  wall from goto {statistics.median(wall):,.0f} ms"
    )

    def med(key: str) -> str:
        return f"{statistics.median(float(r.get(key, 0)) for r in results):,.0f}"

    print(
        f"{' ' * len(label)}  medians, ms after navigation: state in the map {med('states')}, "
        f"all drawn {med('drawn')}, table {med('table')}, resynced {med('resynced')}; "
        f"checked: all {n:,} in the map's tiles, {results[0]['open']} segments with open "
        f"cases ({accepted} reports accepted) coloured as the server has them"
    )
    print(
        f"{' ' * len(label)}  baseline, bare MapLibre with the same GeoJSON: "
        f"median {statistics.median(base):,.0f} ms  [runs: {_ms(base)}]"
    )


class Stream:
    """Emits synthetic live events at a steady rate, remembering when each seq went out."""

    def __init__(self, rt: Runtime, rate: int, seconds: float) -> None:
        self.rt, self.rate, self.seconds = rt, rate, seconds
        segs = rt.ctx.network.segments
        self.rng = random.Random(5)
        self.points = []
        for s in self.rng.sample(list(segs), min(600, len(segs))):
            p = s.geometry.interpolate(0.5, normalized=True)
            self.points.append((s.id, s.district, p.y, p.x))
        with rt.sessions() as session:
            from sqlalchemy import func, select

            from roadwatch.store import models

            self.seq = session.scalar(select(func.max(models.Event.seq))) or 0
        self.sent_at: dict[int, float] = {}
        self.done = threading.Event()

    def event(self) -> LiveEvent:
        self.seq += 1
        sid, district, lat, lon = self.rng.choice(self.points)
        if self.rng.random() < 0.6:
            now = time.strftime("%Y-%m-%dT%H:%M:%S+08:00", time.gmtime(time.time() + 8 * 3600))
            payload = {
                "id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
                "segment_id": sid,
                "district": district,
                "category": self.rng.choice(["E0504", "E0505", "E0201", "E0102"]),
                "severity": self.rng.randint(1, 3),
                "status": "accepted",
                "lat": lat,
                "lon": lon,
                "observed_at": now,
                "received_at": now,
                "seq": self.seq,
            }
            return LiveEvent("report", payload)
        open_n = self.rng.randint(0, 4)
        payload = {
            "segment_id": sid,
            "open": open_n,
            "overdue": int(open_n > 2),
            "score": 100 - 5 * open_n,
            "seq": self.seq,
        }
        return LiveEvent("segment", payload)

    def run(self) -> None:
        tick = 0.01
        per_tick = self.rate * tick
        owed = 0.0
        start = time.perf_counter()
        n = 0
        while time.perf_counter() - start < self.seconds:
            owed += per_tick
            batch = []
            while owed >= 1:
                batch.append(self.event())
                owed -= 1
            now = time.perf_counter()
            for ev in batch:
                self.sent_at[ev.payload["seq"]] = now
            self.rt.broadcaster.publish(batch)
            n += len(batch)
            n_next = start + (n / self.rate)
            time.sleep(max(0.0, min(tick, n_next - time.perf_counter())))
        self.emitted = n
        self.done.set()


def heap_mb(page: Page, cdp: Any) -> float:
    cdp.send("HeapProfiler.collectGarbage")
    used = cdp.send("Runtime.getHeapUsage")["usedSize"]
    return float(used) / 1e6


class ProductionWeb:
    """`--server gunicorn`: the page served by the web role (`roadwatch web`: gunicorn, one
    threaded worker) in a process of its own, the events reaching it as an ingest worker's
    do: from this process through a private Redis (the Socket.IO queue) to the web role."""

    def __init__(self, rt: Runtime, tmp: Path) -> None:
        from flask_socketio import SocketIO

        from roadwatch.web import create_app
        from tests.support.services import PrivateRedis

        self.redis = PrivateRedis()
        self.redis.start()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # Only to sign a staff session: same database and stored secret as the web role's.
        self.app, _sio = create_app(rt)
        rt.broadcaster.emitter = SocketIO(message_queue=self.redis.url)  # as `worker`'s
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("ROADWATCH_")},
            "PYTHONPATH": str(ROOT),
            "HOME": str(tmp),
            "ROADWATCH_DATABASE_URL": rt.settings.database_url,
            "ROADWATCH_PHOTO_DIR": rt.settings.photo_dir,
            "ROADWATCH_SOCKETIO_QUEUE": self.redis.url,
            "ROADWATCH_RATE_LIMIT_STORAGE": "memory://",
            "ROADWATCH_EMBEDDED_BROKER": "never",
            "ROADWATCH_RANKING_SCHEDULE_S": "0",
            "ROADWATCH_LOG_LEVEL": "WARNING",
        }
        self.log = tmp / "web.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "roadwatch.cli", "web", "--port", str(self.port)],
                env=env,
                cwd=tmp,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        import urllib.request

        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"roadwatch web did not start:\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as res:
                    if res.status == 200:
                        break
            except OSError:
                pass
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.redis.close()


def bench_stream(
    browser: Browser, rate: int, seconds: float, server_kind: str = "werkzeug"
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rt = runtime_for(Path(tmp), "demo")
        server: LiveServer | ProductionWeb
        if server_kind == "gunicorn":
            server = ProductionWeb(rt, Path(tmp))
        else:
            server = LiveServer(rt).start()
        rt.broadcaster.start()
        try:
            cookie = session_cookie(server.app, rt)
            page = new_page(browser, server.url, cookie)
            page.goto(server.url + "/")
            page.wait_for_function(
                "() => window.roadwatch && window.roadwatch.ready", timeout=60_000
            )
            cdp = page.context.new_cdp_session(page)
            page.evaluate("""window.__busy = 0; new PerformanceObserver(l => l.getEntries()
                .forEach(e => { window.__busy += e.duration; })).observe({type: 'longtask'});""")
            transport = page.evaluate("window.roadwatch._socket.io.engine.transport.name")
            idle0 = heap_mb(page, cdp)
            page.wait_for_timeout(10_000)
            idle1 = heap_mb(page, cdp)
            stream = Stream(rt, rate, seconds)
            start_seq = stream.seq
            rt.broadcaster.emitted = 0
            start_heap = heap_mb(page, cdp)
            thread = threading.Thread(target=stream.run, daemon=True)
            thread.start()
            lags: list[float] = []
            heaps: list[float] = []
            server_behind: list[int] = []
            not_received: list[int] = []
            received0 = int(page.evaluate("window.roadwatch.received"))
            frames0 = int(page.evaluate("window.roadwatch.framesDrawn"))
            t_start = time.perf_counter()
            mid_heap = None
            while not stream.done.is_set():
                time.sleep(1.0)
                if mid_heap is None and time.perf_counter() - t_start >= seconds / 3:
                    mid_heap = heap_mb(page, cdp)
                seq, received = page.evaluate(
                    "[window.roadwatch.drawnSeq, window.roadwatch.received]"
                )
                now = time.perf_counter()
                newest = stream.seq
                not_received.append(newest - start_seq - (received - received0))
                server_behind.append(newest - start_seq - rt.broadcaster.emitted)
                # caught up: lag 0; otherwise how old the newest drawn event is (one
                # from before the stream: as old as the stream)
                sent = stream.sent_at.get(seq, t_start if seq < newest else now)
                lags.append(0.0 if seq >= newest else now - sent)
                heaps.append(
                    float(
                        page.evaluate("performance.memory ? performance.memory.usedJSHeapSize : 0")
                    )
                    / 1e6
                )
            thread.join()
            busy = float(page.evaluate("window.__busy"))
            frames = int(page.evaluate("window.roadwatch.framesDrawn")) - frames0
            commit_every = page.evaluate("window.roadwatch.commitEvery")
            elapsed = time.perf_counter() - t_start
            deadline = time.perf_counter() + 30
            while int(page.evaluate("window.roadwatch.drawnSeq")) < stream.seq:
                if time.perf_counter() > deadline:
                    break
                time.sleep(0.05)
            catch_up = time.perf_counter() - t_start - elapsed
            final_seq = int(page.evaluate("window.roadwatch.drawnSeq"))
            seen = int(page.evaluate("window.roadwatch.reportsSeen"))
            end_heap = heap_mb(page, cdp)
            page.context.close()
        finally:
            server.stop()
            rt.broadcaster.stop()
            rt.stop()
    lags_sorted = sorted(lags)
    p95 = lags_sorted[int(0.95 * (len(lags_sorted) - 1))] if lags_sorted else 0.0
    print(
        f"stream ({server_kind}): {stream.emitted:,} events in {elapsed:.1f} s "
        f"({stream.emitted / elapsed:,.0f}/s; "
        f"{seen:,} reports applied); all applied {catch_up * 1000:,.0f} ms after the last one "
        f"was sent; page at seq {final_seq:,} of {stream.seq:,}"
    )
    print(
        f"        behind live, sampled each second: max {max(lags):.2f} s, p95 {p95:.2f} s, "
        f"median {statistics.median(lags):.2f} s (target: within 2 s)"
    )
    print(
        f"        events queued in the server, not yet emitted: max {max(server_behind):,}, "
        f"median {statistics.median(server_behind):,.0f}"
    )
    print(
        f"        map commits every {commit_every} ms at the end (adapted to the frame cost); "
        f"{frames} map frames drawn ({frames / elapsed:.1f}/s)"
    )
    print(
        f"        transport {transport}; page main thread in long tasks "
        f"{busy / 1000:.1f} s of {elapsed:.1f} s"
    )
    print(
        f"        events sent but not yet received by the page: max {max(not_received):,}, "
        f"median {statistics.median(not_received):,.0f}"
    )
    print(
        f"        JS heap after GC: start {start_heap:.1f} MB, a third in {mid_heap or 0:.1f} MB, "
        f"end {end_heap:.1f} MB (+{end_heap - start_heap:.1f} MB; "
        f"{end_heap - (mid_heap or 0):+.1f} MB over the last two thirds); "
        f"during the stream {min(heaps):.0f}–{max(heaps):.0f} MB"
    )
    print(
        f"        baseline, the same page idle 10 s: {idle0:.1f} MB → {idle1:.1f} MB "
        f"(+{idle1 - idle0:.1f} MB)"
    )


def ensure_25k() -> Path:
    if not NET_25K.exists():
        NET_25K.parent.mkdir(parents=True, exist_ok=True)
        print("generating a 25,000-segment network (once; cached in var/bench/) …", flush=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "roadwatch.cli",
                "network",
                "generate",
                "--segments",
                "25000",
                "--out",
                str(NET_25K),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return NET_25K


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--skip-25k", action="store_true")
    ap.add_argument(
        "--cpu-throttle",
        type=float,
        default=1.0,
        help="slow the page's CPU down this many times (Chromium's throttling: the page's "
        "threads, not the GPU process's software rendering): a slower wall PC, roughly",
    )
    ap.add_argument(
        "--server",
        choices=("werkzeug", "gunicorn"),
        default="werkzeug",
        help="who serves the page for the stream: the app in this process (Werkzeug), or the "
        "web role under gunicorn (`roadwatch web`) fed through a private Redis, as in "
        "production",
    )
    ap.add_argument("--stream-only", action="store_true", help="skip the render benchmarks")
    args = ap.parse_args()
    global CPU_THROTTLE
    CPU_THROTTLE = args.cpu_throttle
    import logging

    logging.basicConfig(level=logging.WARNING)
    chromium = os.environ.get("ROADWATCH_CHROMIUM", DEFAULT_CHROMIUM)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            print(
                f"Chromium {browser.version} headless (SwiftShader WebGL), 1920×1080"
                + (f", page CPU throttled {CPU_THROTTLE:g}x" if CPU_THROTTLE != 1.0 else "")
            )
            if not args.stream_only:
                bench_render(browser, "demo", "demo", args.runs)
                if not args.skip_25k:
                    bench_render(browser, "25k ", str(ensure_25k()), args.runs)
            bench_stream(browser, args.rate, args.seconds, args.server)
        finally:
            browser.close()


if __name__ == "__main__":
    main()
