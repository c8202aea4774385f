"""Snapping accuracy on real OpenStreetMap networks (a script; the floors are a test).

    .venv/bin/python bench/bench_accuracy.py [--points 20000] [--seed 1] [--road-level]
                                             [--no-prior] [--sweep]

Networks (tests/data, © OpenStreetMap contributors, ODbL 1.0): the named
streets of central Helsinki, where the model and its two thresholds were
chosen, and of a part of Kotka, held out (never tuned on). Both are cut by
geo.segmentize (its defaults: split where other named roads meet, pieces under
80 m merged, dual carriageways paired into one segment); ``--splitter private``
uses the old private splitter (no pairing) instead.

Points: uniform along the lines (≥ 5 m from each line's ends; a paired segment's
two carriageways by their length), Gaussian GPS noise σ per axis; the device
reports accuracy_m = σ × U(0.7, 1.5) (phones misjudge); heading = local bearing
of the line in a random direction + N(0, 15°).

Outcome per point: *right* = confidently snapped to the true segment or to a
same-road continuation of it across a joint ("slip": the along-road error of a
fix near a segment end, which no cross-road signal can resolve; its share is
printed separately); *wrong* = confidently snapped to another segment;
*review* = ambiguous or out of range. Baselines in the same run: plain nearest
segment by distance (never reviews; computed apart from roadwatch's scoring),
and nearest with the v1 "runner-up at least g m farther" review rule at the
smallest g whose wrong share is no higher than roadwatch's ("gap@same-wrong",
g chosen on the very sample: an oracle-tuned baseline). "+own segments": the
reporter's own segments (the true one and two others within 100 m) as the
prior, through the live path.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyproj
import shapely

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from geo.snap import (  # noqa: E402
    RECOMMENDED_AMBIGUITY_M,
    RECOMMENDED_DISTANCE_ONLY_MIN_CONFIDENCE,
    RECOMMENDED_MIN_CONFIDENCE,
    SegmentIndex,
)

DATA = ROOT / "tests" / "data" / "helsinki_centre_osm_roads.geojson"
HELD_OUT = ROOT / "tests" / "data" / "pyrosm_test_osm_roads.geojson"
# A street pattern that is not Finnish: the colonial grid of central Aguascalientes, Mexico.
GRID = ROOT / "tests" / "data" / "aguascalientes.osm.pbf"
# A hillside town of hairpins, tunnels and roads above one another (tests/data/README.md).
HILLS = ROOT / "tests" / "data" / "monaco.osm.pbf"
NOT_STREETS = {"footway", "cycleway", "steps", "path", "corridor", "elevator", "trail"}
MIN_PIECE_M = 30.0
END_MARGIN_M = 5.0
HEADING_NOISE_DEG = 15.0

FloatArray = npt.NDArray[np.float64]


@dataclass
class Network:
    lines: list[Any]  # WGS84 LineStrings
    roads: list[str]
    projected: npt.NDArray[np.object_]  # the same in metres (index CRS)
    to_ll: pyproj.Transformer


def split_at_other_roads(
    lines_m: list[Any], names: list[str], min_length_m: float = MIN_PIECE_M
) -> tuple[list[Any], list[str]]:
    """Private splitter (until geo.segmentize exists): metric lines in, pieces out.

    Node all streets against each other, then glue pieces of one name back
    together at every node no other name touches, and drop short pieces.
    """
    noded = shapely.get_parts(shapely.union_all(np.array(lines_m, dtype=object)))
    tree = shapely.STRtree(np.array(lines_m, dtype=object))
    mids = shapely.line_interpolate_point(noded, 0.5, normalized=True)
    pi, li = tree.query(mids, predicate="dwithin", distance=0.01)
    piece_name: dict[int, str] = {}
    for p, li_ in zip(pi.tolist(), li.tolist(), strict=True):
        piece_name.setdefault(p, names[li_])

    def key(xy: FloatArray) -> tuple[float, float]:
        return (round(float(xy[0]), 2), round(float(xy[1]), 2))

    at_node: dict[tuple[float, float], list[int]] = defaultdict(list)
    for p in piece_name:
        c = shapely.get_coordinates(noded[p])
        at_node[key(c[0])].append(p)
        at_node[key(c[-1])].append(p)
    parent = list(range(len(noded)))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for ps in at_node.values():
        if len(ps) == 2 and ps[0] != ps[1] and piece_name[ps[0]] == piece_name[ps[1]]:
            parent[find(ps[0])] = find(ps[1])
    groups: dict[int, list[int]] = defaultdict(list)
    for p in piece_name:
        groups[find(p)].append(p)
    out_lines, out_names = [], []
    for ps in groups.values():
        merged = shapely.line_merge(shapely.union_all(noded[ps]))
        for part in shapely.get_parts(merged):
            if part.length >= min_length_m:
                out_lines.append(part)
                out_names.append(piece_name[ps[0]])
    return out_lines, out_names


def load_network(path: Path = DATA, splitter: str = "auto") -> Network:
    """Named streets cut into segments: geo.segmentize when importable (its
    defaults, min_length_m=80), else (or with splitter="private") the private splitter.
    ``path``: a GeoJSON of OSM ways (name, highway) or an ``.osm.pbf`` (its named roads)."""
    import geopandas as gpd

    if path.name.endswith(".pbf"):
        from geo.importer import read_osm_pbf

        g = read_osm_pbf(path)
    else:
        g = gpd.read_file(path)
    g = g[g["name"].notna() & ~g["highway"].isin(NOT_STREETS)]
    lines, names = list(g.geometry), [str(n) for n in g["name"]]
    c = shapely.centroid(shapely.union_all(np.array(lines, dtype=object)))
    zone = int((c.x + 180) // 6) % 60 + 1
    epsg = (32600 if c.y >= 0 else 32700) + zone
    to_xy = pyproj.Transformer.from_crs(4326, epsg, always_xy=True)
    to_ll = pyproj.Transformer.from_crs(epsg, 4326, always_xy=True)

    def fwd(a: FloatArray) -> FloatArray:
        return np.column_stack(to_xy.transform(a[:, 0], a[:, 1]))

    def back(a: FloatArray) -> FloatArray:
        return np.column_stack(to_ll.transform(a[:, 0], a[:, 1]))

    segmentize: Any = None
    if splitter != "private":
        try:
            from geo.segmentize import segmentize
        except ImportError:
            segmentize = None
    if segmentize is not None:
        segs = segmentize(g[["name", "highway", "geometry"]])
        wgs = [s.geometry for s in segs]
        roads = [s.road for s in segs]
        pieces = [shapely.transform(x, fwd) for x in wgs]
    else:
        pieces, roads = split_at_other_roads([shapely.transform(x, fwd) for x in lines], names)
        wgs = [shapely.transform(x, back) for x in pieces]
    return Network(wgs, roads, np.array(pieces, dtype=object), to_ll)


@dataclass
class Sample:
    lon: FloatArray
    lat: FloatArray
    truth: npt.NDArray[np.int64]
    accuracy: FloatArray
    heading: FloatArray


def sample(net: Network, n: int, sigma: float, rng: np.random.Generator) -> Sample:
    """Points along the lines; a paired segment's carriageways are sampled each by its
    length, and either is the truth's (the segment's)."""
    parts, owner = shapely.get_parts(net.projected, return_index=True)
    lengths = shapely.length(parts)
    usable = np.maximum(lengths - 2 * END_MARGIN_M, 0.0)
    part = rng.choice(lengths.size, n, p=usable / usable.sum())
    seg = owner[part]
    along = END_MARGIN_M + rng.uniform(0, 1, n) * usable[part]
    geoms = parts[part]
    on = shapely.line_interpolate_point(geoms, along)
    a = shapely.line_interpolate_point(geoms, along - 1.0)
    b = shapely.line_interpolate_point(geoms, along + 1.0)
    bearing = np.degrees(
        np.arctan2(shapely.get_x(b) - shapely.get_x(a), shapely.get_y(b) - shapely.get_y(a))
    )
    heading = (
        bearing + 180.0 * rng.integers(0, 2, n) + rng.normal(0, HEADING_NOISE_DEG, n)
    ) % 360.0
    x = shapely.get_x(on) + rng.normal(0, sigma, n)
    y = shapely.get_y(on) + rng.normal(0, sigma, n)
    lon, lat = net.to_ll.transform(x, y)
    acc = sigma * rng.uniform(0.7, 1.5, n)
    return Sample(np.asarray(lon), np.asarray(lat), seg.astype(np.int64), acc, heading)


@dataclass
class Score:
    right: float
    review: float
    wrong: float
    slip: float = 0.0  # part of right: a same-road neighbour across a joint


def score(
    index: SegmentIndex,
    pred: npt.NDArray[np.int64],
    confident: npt.NDArray[np.bool_],
    truth: npt.NDArray[np.int64],
) -> Score:
    """Right = the true segment or (slip) another segment the index groups with it:
    a touching continuation of the same road, or with group_by_road any segment
    of the same road (road level)."""
    snapped = confident & (pred >= 0)
    exact = snapped & (pred == truth)
    near = snapped & ~exact
    slip = np.zeros(truth.size, dtype=bool)
    if near.any():
        slip[near] = index._continues(pred[near], truth[near])
    n = truth.size
    return Score(
        float((exact | slip).sum() / n),
        float((~snapped).sum() / n),
        float((near & ~slip).sum() / n),
        float(slip.sum() / n),
    )


@dataclass
class Plain:
    """Plain nearest segment (distance only, nothing of roadwatch's scoring) and the gap
    to the nearest segment that is not it or its same-road continuation."""

    index: npt.NDArray[np.int64]  # -1: nothing within max_distance_m
    gap: FloatArray  # inf: no rival


def nearest_segment(index: SegmentIndex, s: Sample) -> Plain:
    x, y = index._to_xy.transform(s.lon, s.lat)
    pts = shapely.points(np.asarray(x), np.asarray(y))
    tree = shapely.STRtree(index.geometries)
    pi, si = tree.query(pts, predicate="dwithin", distance=index.max_distance_m)
    d = shapely.distance(pts[pi], index.geometries[si])
    order = np.lexsort((si, d, pi))
    pi, si, d = pi[order], si[order], d[order]
    first = np.r_[True, pi[1:] != pi[:-1]]
    group = np.cumsum(first) - 1
    heads = np.flatnonzero(first)
    best, best_d = si[heads], d[heads]
    rival = ~first & ~index._continues(best[group], si)
    ridx = np.flatnonzero(rival)
    ridx = ridx[np.r_[True, group[ridx][1:] != group[ridx][:-1]]] if ridx.size else ridx
    pred = np.full(s.truth.size, -1, dtype=np.int64)
    pred[pi[heads]] = best
    gap = np.full(s.truth.size, np.inf)
    gap[pi[ridx]] = d[ridx] - best_d[group[ridx]]
    return Plain(pred, gap)


def gap_baseline(
    index: SegmentIndex, plain: Plain, truth: npt.NDArray[np.int64], max_wrong: float
) -> tuple[float, Score]:
    """Nearest + 'runner-up at least g m farther' at the smallest g with wrong <= max_wrong
    (g chosen on this very sample: an oracle-tuned baseline)."""
    for g in np.arange(0.0, 60.01, 0.5):
        s = score(index, plain.index, plain.gap > g, truth)
        if s.wrong <= max_wrong:
            return float(g), s
    return math.inf, score(index, plain.index, np.zeros(truth.size, dtype=bool), truth)


@dataclass
class Case:
    sigma: float
    heading: bool
    ours: Score
    nearest: Score
    gap_m: float
    gap: Score
    prior: Score | None = None


def run_case(
    index: SegmentIndex,
    net: Network,
    sigma: float,
    with_heading: bool,
    n: int,
    seed: int,
    with_prior: bool = False,
) -> Case:
    rng = np.random.default_rng([seed, int(sigma * 10), int(with_heading)])
    s = sample(net, n, sigma, rng)
    head = s.heading if with_heading else None
    ours = index.snap_many(s.lon, s.lat, accuracy_m=s.accuracy, heading_deg=head)
    plain = nearest_segment(index, s)
    mine = score(index, ours.index, ~ours.ambiguous, s.truth)
    nearest = score(index, plain.index, np.ones(n, dtype=bool), s.truth)
    g, gap = gap_baseline(index, plain, s.truth, mine.wrong)
    case = Case(sigma, with_heading, mine, nearest, g, gap)
    if with_prior:
        case.prior = prior_score(index, s, with_heading, rng)
    return case


def prior_score(
    index: SegmentIndex, s: Sample, with_heading: bool, rng: np.random.Generator
) -> Score:
    """The reporter's own segments: the true one among ~3 nearby (scalar snap per point)."""
    pred = np.full(s.truth.size, -1, dtype=np.int64)
    conf = np.zeros(s.truth.size, dtype=bool)
    for i in range(s.truth.size):
        t = int(s.truth[i])
        near = index._tree.query(index.geometries[t], predicate="dwithin", distance=100.0)
        others = np.unique(index._edge_seg[near])
        others = others[others != t]
        mine = {t, *rng.choice(others, min(2, others.size), replace=False).tolist()}
        r = index.snap(
            float(s.lon[i]),
            float(s.lat[i]),
            accuracy_m=float(s.accuracy[i]),
            heading_deg=float(s.heading[i]) if with_heading else None,
            prior=mine,
        )
        pred[i] = -1 if r.index is None else r.index
        conf[i] = r.index is not None and not r.ambiguous
    return score(index, pred, conf, s.truth)


def build_index(
    net: Network,
    min_confidence: float = RECOMMENDED_MIN_CONFIDENCE,
    road_level: bool = False,
    distance_only: float | None = RECOMMENDED_DISTANCE_ONLY_MIN_CONFIDENCE,
) -> SegmentIndex:
    """The recommended settings (roadwatch's defaults); ``distance_only`` None: the same
    threshold with or without a heading."""
    return SegmentIndex(
        net.lines,
        roads=net.roads,
        min_confidence=min_confidence,
        distance_only_min_confidence=distance_only,
        ambiguity_m=RECOMMENDED_AMBIGUITY_M,
        group_by_road=road_level,
    )


def _pct(x: float) -> str:
    return f"{100 * x:5.1f}"


NETWORKS = {
    "helsinki": ("central Helsinki (tuned here)", DATA),
    "kotka": ("Kotka, held out (never tuned on)", HELD_OUT),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=20_000, help="points per case")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-prior", action="store_true", help="skip the prior column (faster)")
    parser.add_argument("--splitter", choices=("auto", "private"), default="auto")
    parser.add_argument("--road-level", action="store_true", help="also the road-level table")
    parser.add_argument("--sweep", action="store_true", help="sweep min_confidence at σ=10")
    args = parser.parse_args()
    args.prior = not args.no_prior

    for label, path in NETWORKS.values():
        net = load_network(path, splitter=args.splitter)
        lengths = shapely.length(net.projected)
        paired = int(np.sum(shapely.get_num_geometries(net.projected) > 1))
        print(
            f"\n{label}, named streets: {len(net.lines):,} segments ({paired} dual "
            f"carriageways paired), {len(set(net.roads)):,} roads, median "
            f"{np.median(lengths):.0f} m, total {lengths.sum() / 1000:.1f} km "
            f"({args.splitter} splitter); {args.points:,} points per case, seed {args.seed}"
        )
        if args.sweep:
            for th in (0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95):
                idx = build_index(net, th, distance_only=None)
                for h in (False, True):
                    c = run_case(idx, net, 10.0, h, args.points, args.seed)
                    print(
                        f"min_confidence {th:.2f} heading {h!s:5}: right {_pct(c.ours.right)} "
                        f"review {_pct(c.ours.review)} wrong {_pct(c.ours.wrong)} | gap@same "
                        f"right {_pct(c.gap.right)}"
                    )
            continue
        table(build_index(net, road_level=False), net, args)
        if args.road_level:
            table(build_index(net, road_level=True), net, args)


def table(index: SegmentIndex, net: Network, args: argparse.Namespace) -> None:
    level = (
        "ROAD level (group_by_road=True; right = the true road)"
        if index.group_by_road
        else "SEGMENT level (right = the true segment or its touching same-road continuation)"
    )
    print(
        f"{level}; min_confidence {index.min_confidence} "
        f"(distance only {index.distance_only_min_confidence}); % of points"
    )
    head = (
        f"{'σ m':>4} {'heading':>8} | {'right':>6}{'review':>7}{'wrong':>6}{'(slip)':>7} | "
        f"{'nearest right':>13}{'wrong':>6} | {'gap@same-wrong g':>16}{'right':>6}"
        f"{'review':>7}{'wrong':>6}"
    )
    if args.prior:
        head += f" | {'+own segments right':>19}{'review':>7}{'wrong':>6}"
    print(head)
    print("-" * len(head))
    for sigma in (5.0, 10.0, 20.0):
        for h in (False, True):
            c = run_case(index, net, sigma, h, args.points, args.seed, args.prior)
            o, b, g = c.ours, c.nearest, c.gap
            row = (
                f"{sigma:>4.0f} {'±15°' if h else 'none':>8} | {_pct(o.right):>6}"
                f"{_pct(o.review):>7}{_pct(o.wrong):>6}{_pct(o.slip):>7} | "
                f"{_pct(b.right):>13}{_pct(b.wrong):>6} | {c.gap_m:>16.1f}{_pct(g.right):>6}"
                f"{_pct(g.review):>7}{_pct(g.wrong):>6}"
            )
            if c.prior is not None:
                p = c.prior
                row += f" | {_pct(p.right):>19}{_pct(p.review):>7}{_pct(p.wrong):>6}"
            print(row)


if __name__ == "__main__":
    main()
