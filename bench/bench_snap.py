"""Benchmark geo.snap on synthetic road networks over Zhengzhou (a script, not a test).

    .venv/bin/python bench/bench_snap.py [--points 1000000] [--single 20000]

Networks are roads of 5 connected segments (100-600 m, slightly bent), so
junction continuations occur as in real data. Points: 80 % near a road with
10 m Gaussian noise (like phone reports), 20 % anywhere in the box.

Two scalings are measured: "city" keeps the density of 2,495 segments over
central Zhengzhou and grows the area (25 k ~ the whole municipality, 250 k a
province), "dense" packs all segments into central Zhengzhou (worst case: many
candidates per point).

Each network runs in a fresh subprocess, so "index MB" (growth of the process
RSS while building the index; GEOS geometries are invisible to tracemalloc) is
not blurred by memory freed by an earlier case. The input WGS84 lines are not
counted: they exist before the build.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt
import shapely

from geo.crs import to_wgs84, wgs84_to_gcj02
from geo.robust import RobustSnapper
from geo.snap import SegmentIndex

CENTRE_BOX = (113.55, 34.68, 113.80, 34.85)  # lon_min, lat_min, lon_max, lat_max
M_PER_DEG_LAT = 110_900.0
M_PER_DEG_LON = 111_320.0 * math.cos(math.radians(34.765))
SEGS_PER_ROAD = 5
DENSE_POINTS = 100_000
REPEATS = 3  # CPU figures: the best of this many runs


@dataclass
class Row:
    label: str
    segments: int
    area_km2: float
    build_s: float
    rss_mb: float
    many_pts_s: float  # wall clock
    many_cpu_pts_s: float  # per CPU second of this process (robust on a shared machine)
    many_head_pts_s: float
    floor_pts_s: float  # baseline: the bare STRtree dwithin query + nearest edge, CPU
    matched: float
    ambiguous: float
    p50_us: float
    p99_us: float
    live_p50_us: float
    live_p99_us: float
    live_cpu_p50_us: float  # thread CPU time per call: no time spent preempted
    live_cpu_p99_us: float
    floor_p99_us: float  # baseline: projection + the STRtree query alone, wall
    # geo.robust (issue 21) on the same points: batch CPU pts/s with accuracy and
    # heading, and the live path's thread CPU p99 beside today's (same loop, same fixes)
    robust_cpu_pts_s: float = 0.0
    robust_live_cpu_p99_us: float = 0.0


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for row in f:
            if row.startswith("VmRSS:"):
                return int(row.split()[1]) / 1024
    return math.nan


def scaled_box(factor: float) -> tuple[float, float, float, float]:
    """CENTRE_BOX scaled about its centre so its area grows by ``factor``."""
    x0, y0, x1, y1 = CENTRE_BOX
    cx, cy, k = (x0 + x1) / 2, (y0 + y1) / 2, math.sqrt(factor)
    return cx - (cx - x0) * k, cy - (cy - y0) * k, cx + (x1 - cx) * k, cy + (y1 - cy) * k


def network(
    rng: np.random.Generator, n: int, box: tuple[float, float, float, float]
) -> tuple[npt.NDArray[np.object_], list[str]]:
    """n segments as random-walk roads; consecutive segments share endpoints."""
    n_roads = -(-n // SEGS_PER_ROAD)
    steps = 2 * SEGS_PER_ROAD  # 3 vertices per segment
    turn = rng.normal(0, 0.15, (n_roads, steps))
    turn[:, ::2] += rng.normal(0, 0.6, (n_roads, SEGS_PER_ROAD))  # bends at junctions
    heading = rng.uniform(0, 2 * math.pi, (n_roads, 1)) + np.cumsum(turn, axis=1)
    length = rng.uniform(50, 300, (n_roads, steps))
    dx = np.cumsum(length * np.cos(heading), axis=1) / M_PER_DEG_LON
    dy = np.cumsum(length * np.sin(heading), axis=1) / M_PER_DEG_LAT
    x0 = rng.uniform(box[0], box[2], (n_roads, 1))
    y0 = rng.uniform(box[1], box[3], (n_roads, 1))
    xs = np.concatenate([x0, x0 + dx], axis=1)  # (roads, steps + 1)
    ys = np.concatenate([y0, y0 + dy], axis=1)
    starts = np.arange(0, steps, 2)
    cols = starts[:, None] + np.arange(3)[None, :]  # vertices of each segment
    coords = np.stack([xs[:, cols], ys[:, cols]], axis=-1).reshape(-1, 3, 2)[:n]
    lines = shapely.linestrings(coords)
    roads = [f"road {i // SEGS_PER_ROAD}" for i in range(n)]
    return lines, roads


def points(
    rng: np.random.Generator,
    lines: npt.NDArray[np.object_],
    n: int,
    box: tuple[float, float, float, float],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    near = int(n * 0.8)
    on = shapely.line_interpolate_point(
        lines[rng.integers(0, lines.size, near)], rng.uniform(0, 1, near), normalized=True
    )
    lon = np.concatenate(
        [
            shapely.get_x(on) + rng.normal(0, 10, near) / M_PER_DEG_LON,
            rng.uniform(box[0], box[2], n - near),
        ]
    )
    lat = np.concatenate(
        [
            shapely.get_y(on) + rng.normal(0, 10, near) / M_PER_DEG_LAT,
            rng.uniform(box[1], box[3], n - near),
        ]
    )
    order = rng.permutation(n)
    return lon[order], lat[order]


def percentiles_us(samples: list[int]) -> tuple[float, float]:
    p50, p99 = np.percentile(np.array(samples) / 1e3, [50, 99])
    return float(p50), float(p99)


def run(
    label: str, n: int, box: tuple[float, float, float, float], n_points: int, n_single: int
) -> Row:
    rng = np.random.default_rng(n)
    lines, roads = network(rng, n, box)

    gc.collect()
    rss0 = rss_mb()
    t = time.perf_counter()
    index = SegmentIndex(lines, roads=roads)
    build_s = time.perf_counter() - t
    rss = rss_mb() - rss0

    lon, lat = points(rng, lines, n_points, box)

    index.snap_many(lon[:10_000], lat[:10_000])  # warm-up
    t = time.perf_counter()
    batch = index.snap_many(lon, lat)
    many = n_points / (time.perf_counter() - t)
    many_cpu = best_of(REPEATS, lambda: index.snap_many(lon, lat), n_points)
    heading = rng.uniform(0, 360, n_points)  # direction of travel for every point
    t = time.perf_counter()
    index.snap_many(lon, lat, accuracy_m=10.0, heading_deg=heading)
    many_head = n_points / (time.perf_counter() - t)
    hd = heading[:n_single].tolist()
    floor = best_of(REPEATS, lambda: floor_run(index, lon, lat), n_points)

    slon, slat = lon[:n_single].tolist(), lat[:n_single].tolist()
    glon, glat = wgs84_to_gcj02(lon[:n_single], lat[:n_single])
    gl, gb = glon.tolist(), glat.tolist()
    for i in range(1000):  # warm-up
        index.snap(slon[i], slat[i])
    single: list[int] = []
    clock = time.perf_counter_ns
    for x, y in zip(slon, slat, strict=True):
        t0 = clock()
        index.snap(x, y)
        single.append(clock() - t0)
    # The live path as ingest runs it: GCJ-02 from the phone -> WGS84 -> snap.
    cpu = time.thread_time_ns
    best: tuple[float, float] | None = None
    first_live: list[int] = []
    for rep in range(REPEATS):  # the wall-clock figures are the first pass's
        live: list[int] = []
        live_cpu: list[int] = []
        for x, y, h in zip(gl, gb, hd, strict=True):
            c0 = cpu()
            t0 = clock()
            wx, wy = to_wgs84(x, y, "GCJ02")
            index.snap(wx, wy, accuracy_m=10.0, heading_deg=h)
            t1 = clock()
            live_cpu.append(cpu() - c0)
            live.append(t1 - t0)
        p = percentiles_us(live_cpu)
        best = p if best is None or p[1] < best[1] else best
        if rep == 0:
            first_live = live
    assert best is not None
    robust = RobustSnapper(index)
    robust_cpu = best_of(
        REPEATS,
        lambda: robust.snap_many(lon, lat, accuracy_m=10.0, heading_deg=heading),
        n_points,
    )
    robust_p99 = math.inf
    for _ in range(REPEATS):
        rcpu: list[int] = []
        for x, y, h in zip(gl, gb, hd, strict=True):
            c0 = cpu()
            wx, wy = to_wgs84(x, y, "GCJ02")
            robust.snap(wx, wy, accuracy_m=10.0, heading_deg=h)
            rcpu.append(cpu() - c0)
        robust_p99 = min(robust_p99, percentiles_us(rcpu)[1])
    bare: list[int] = []
    tree, proj = index._tree, index._to_xy
    for x, y in zip(slon, slat, strict=True):
        t0 = clock()
        px, py = proj.transform(x, y)
        tree.query(shapely.points(np.array([[px, py]])), predicate="dwithin", distance=30.0)
        bare.append(clock() - t0)

    (x0, y0, x1, y1) = box
    area = (x1 - x0) * M_PER_DEG_LON * (y1 - y0) * M_PER_DEG_LAT / 1e6
    return Row(
        label,
        n,
        area,
        build_s,
        rss,
        many,
        many_cpu,
        many_head,
        floor,
        float((batch.index >= 0).mean()),
        float(batch.ambiguous.mean()),
        *percentiles_us(single),
        *percentiles_us(first_live),
        *best,
        percentiles_us(bare)[1],
        robust_cpu,
        robust_p99,
    )


def best_of(repeats: int, run: Callable[[], object], n: int) -> float:
    """Points per CPU second of the fastest of ``repeats`` runs: other processes on a
    shared machine only ever slow a run down, so the fastest is the least disturbed."""
    best = math.inf
    for _ in range(repeats):
        c = time.process_time()
        run()
        best = min(best, time.process_time() - c)
    return n / best


def floor_run(
    index: SegmentIndex, lon: npt.NDArray[np.float64], lat: npt.NDArray[np.float64]
) -> None:
    """Baseline in the same run: project, STRtree dwithin query, nearest edge per point
    (shapely.distance + a per-point minimum) -- no scoring at all."""
    for start in range(0, lon.size, 200_000):
        x, y = index._to_xy.transform(lon[start : start + 200_000], lat[start : start + 200_000])
        pts = shapely.points(x, y)
        pi, ei = index._tree.query(pts, predicate="dwithin", distance=index.max_distance_m)
        d = shapely.distance(pts[pi], index._tree.geometries[ei])
        best = np.full(pts.size, np.inf)
        np.minimum.at(best, pi, d)


CASES = [
    ("centre", 2_495, CENTRE_BOX),
    ("city", 25_000, scaled_box(25_000 / 2_495)),
    ("city", 250_000, scaled_box(250_000 / 2_495)),
    ("dense", 25_000, CENTRE_BOX),
    ("dense", 250_000, CENTRE_BOX),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000, help="points for snap_many")
    parser.add_argument("--single", type=int, default=20_000, help="calls for single snap")
    parser.add_argument("--case", type=int, help=argparse.SUPPRESS)  # child process
    args = parser.parse_args()

    if args.case is not None:
        label, n, box = CASES[args.case]
        print(json.dumps(asdict(run(label, n, box, args.points, args.single))))
        return

    with open("/proc/loadavg") as f:
        load = f.read().split()[0]  # other work on a shared machine blurs wall-clock figures
    rows = []
    for i in range(len(CASES)):
        # The dense worst cases snap at a few thousand points/s: fewer points there.
        n_points = args.points if CASES[i][0] != "dense" else min(args.points, DENSE_POINTS)
        cmd = [sys.executable, __file__, f"--case={i}", f"--points={n_points}"]
        out = subprocess.run(
            [*cmd, f"--single={args.single}"], check=True, capture_output=True, text=True
        )
        rows.append(Row(**json.loads(out.stdout)))

    print(
        f"snap_many: {args.points:,} points ({DENSE_POINTS:,} on the dense networks; 80 % "
        "within ~10 m of a road); "
        f"single snap: {args.single:,} calls; one core; load average before: {load}"
    )
    head = (
        f"{'network':<8}{'segments':>10}{'km2':>8}{'build s':>9}{'index MB':>10}"
        f"{'pts/s':>10}{'cpu pts/s':>11}{'+heading':>10}{'floor':>10}{'matched':>9}{'ambig':>7}"
        f"{'snap p50':>10}{'p99':>7}{'live p50':>10}{'p99':>7}{'cpu p50':>9}{'p99':>7}"
        f"{'floor p99':>10}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r.label:<8}{r.segments:>10,}{r.area_km2:>8,.0f}{r.build_s:>9.3f}{r.rss_mb:>10.1f}"
            f"{r.many_pts_s:>10,.0f}{r.many_cpu_pts_s:>11,.0f}{r.many_head_pts_s:>10,.0f}"
            f"{r.floor_pts_s:>10,.0f}{r.matched:>9.1%}{r.ambiguous:>7.1%}"
            f"{r.p50_us:>10.1f}{r.p99_us:>7.1f}{r.live_p50_us:>10.1f}{r.live_p99_us:>7.1f}"
            f"{r.live_cpu_p50_us:>9.1f}{r.live_cpu_p99_us:>7.1f}{r.floor_p99_us:>10.1f}"
        )
    print("\ngeo.robust beside today's snapper (same points; accuracy_m=10 and a heading):")
    for r in rows:
        print(
            f"  {r.label:<6}{r.segments:>8,}: batch {r.robust_cpu_pts_s:>10,.0f} cpu pts/s "
            f"(today {r.many_cpu_pts_s:,.0f} without heading); live cpu p99 "
            f"{r.robust_live_cpu_p99_us:6.1f} µs (today {r.live_cpu_p99_us:.1f}, "
            f"x{r.robust_live_cpu_p99_us / r.live_cpu_p99_us:.2f})"
        )
    base = rows[0]
    print(
        "\ngrowth against 2,495 segments (network x / build time x / index MB x / "
        "cpu pts/s ÷ / live cpu p99 x):"
    )
    for r in rows[1:]:
        print(
            f"  {r.label:<6}{r.segments:>8,}: {r.segments / base.segments:6.0f} / "
            f"{r.build_s / base.build_s:6.1f} / {r.rss_mb / max(base.rss_mb, 0.1):6.1f} / "
            f"{base.many_cpu_pts_s / r.many_cpu_pts_s:5.2f} / "
            f"{r.live_cpu_p99_us / base.live_cpu_p99_us:5.2f}"
        )
    print(
        "pts/s = snap_many wall clock, cpu pts/s = per CPU second (best of "
        f"{REPEATS} runs); +heading = snap_many("
        "accuracy_m=10, heading_deg=per point); floor = baseline in the same run: the bare "
        "dwithin query + nearest edge, no scoring (CPU). live = to_wgs84(GCJ02) + snap("
        "accuracy_m=10, heading_deg=h) as ingest runs it, wall clock; cpu = its thread CPU "
        "time (without time preempted by other processes), the pass of "
        f"{REPEATS} with the lowest p99; floor p99 = projection + the "
        "STRtree query alone. Times in µs."
    )


if __name__ == "__main__":
    main()
