"""Cut named roads (e.g. from OpenStreetMap) into responsibility segments.

A city that has no segment layer of its own still needs segments a road chief
can answer for: one road between two crossing roads, named ``Road（A至B）``.

:func:`segmentize` does it in five deterministic steps, in a metric (UTM) CRS:

1. dissolve the ways of each name into continuous lines (noded union, then
   ``line_merge``), each oriented from its west (or south) end;
2. cut every line where a *differently named* road touches or crosses it
   (within :data:`SNAP_M`, so lines that stop short of a road by a metre still
   count as meeting it);
3. merge pieces shorter than ``min_length_m`` into the shorter neighbouring
   piece of the same line;
   then (``pair_carriageways``, the default) pair the two carriageways of a dual
   carriageway -- pieces of one name that run alongside each other (:data:`PAIR_M`,
   :data:`PAIR_ANGLE_DEG`, :data:`PAIR_SHARE`) -- into one segment, a
   MultiLineString of both, named after the first; its ``length_m`` is the mean
   of the two (the length of the road stretch);
4. with ``target_count``: merge the globally shortest piece, or split the
   longest at its middle, until the count is reached (or no merge is left);
5. name each piece after the roads at its ends; an end that meets no other road
   is a dead end (:data:`DEAD_END_ZH` for Chinese names, :data:`DEAD_END`
   otherwise), a cut made by step 4 is a midpoint (:data:`MIDPOINT_ZH` /
   :data:`MIDPOINT`).

Ids are ``{id_prefix}-{n:05d}`` in a fixed order (road name, line, position).
Given the ``previous`` network, a new segment of the same road whose endpoints
both lie within :data:`MATCH_M` of an old one's (either direction), or whose
Hausdorff distance to it is at most :data:`MATCH_M`, keeps the old id; every
other segment gets a fresh number after the previous maximum, so the id of a
removed road is never given to another one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import geopandas as gpd
import numpy as np
import pyproj
import shapely
from shapely.geometry import LineString, MultiLineString
from shapely.ops import substring

from geo.crs import utm_epsg
from geo.importer import (
    DEFAULT_DRIVABLE,
    _transform,
    districts_from_segments,
    geodesic_lengths,
    read_osm_pbf,
    road_class_of,
)
from geo.network import ROAD_CLASSES, Network, Segment

__all__ = [
    "DEAD_END",
    "DEAD_END_ZH",
    "MATCH_M",
    "MIDPOINT",
    "MIDPOINT_ZH",
    "SNAP_M",
    "DistrictOf",
    "network_from_osm",
    "segmentize",
]

SNAP_M: Final = 1.0  # a road ending this close to another one meets it
# Dual carriageways: two pieces of one road that run alongside each other within
# PAIR_M (centre line to centre line; Helsinki's widest boulevards, tram lanes in the
# middle, are ~35 m) and parallel within PAIR_ANGLE_DEG for at least PAIR_SHARE of
# each piece's length are one responsibility segment: one road chief answers for
# the whole road stretch, and a report on either carriageway belongs to it.
PAIR_M: Final = 40.0
PAIR_ANGLE_DEG: Final = 30.0
PAIR_SHARE: Final = 0.6
_PAIR_STEP_M: Final = 5.0
MATCH_M: Final = 15.0  # "the same segment" across imports
DEAD_END_ZH: Final = "尽头"
DEAD_END: Final = "end"
MIDPOINT_ZH: Final = "中点"
MIDPOINT: Final = "midpoint"

DistrictOf = Callable[[LineString | MultiLineString], tuple[str, str]]

_CJK: Final = re.compile(r"[\u3400-\u9fff]")
_RANK: Final = {c: i for i, c in enumerate(ROAD_CLASSES)}  # arterial 0 ... local 2


@dataclass
class _Piece:
    start: float  # metres along the line
    end: float
    a: str  # name at the start
    b: str  # name at the end

    @property
    def length(self) -> float:
        return self.end - self.start


@dataclass
class _Line:
    name: str
    road_class: str
    geom: LineString  # metric
    cuts: list[tuple[float, int, str]]  # (position, rank of the crossing road, its name)
    pieces: list[_Piece]


def _words(name: str) -> tuple[str, str]:
    return (DEAD_END_ZH, MIDPOINT_ZH) if _CJK.search(name) else (DEAD_END, MIDPOINT)


def _orient(line: LineString) -> LineString:
    xy = shapely.get_coordinates(line)
    if tuple(xy[-1]) < tuple(xy[0]):
        return LineString(xy[::-1])
    return line


def _road_lines(names: np.ndarray, geoms: np.ndarray, classes: list[str]) -> list[_Line]:
    """One _Line per continuous stretch of each name, in a fixed order."""
    out: list[_Line] = []
    order = sorted(set(names.tolist()))
    for nm in order:
        sel = names == nm
        parts = geoms[sel]
        rank = min(_RANK[classes[i]] for i in np.flatnonzero(sel))
        merged = shapely.line_merge(shapely.union_all(parts))
        lines = [g for g in shapely.get_parts(merged) if g.length > 0]
        lines = [_orient(g) for g in lines]
        lines.sort(key=lambda g: tuple(shapely.get_coordinates(g)[0]) + (g.length,))
        out.extend(_Line(nm, ROAD_CLASSES[rank], g, [], []) for g in lines)
    return out


def _find_cuts(lines: list[_Line]) -> None:
    geoms = np.array([ln.geom for ln in lines], dtype=object)
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="dwithin", distance=SNAP_M)
    keep = (left < right) & (
        np.array([ln.name for ln in lines], dtype=object)[left]
        != np.array([ln.name for ln in lines], dtype=object)[right]
    )
    for i, j in zip(left[keep].tolist(), right[keep].tolist(), strict=True):
        a, b = lines[i], lines[j]
        ga, gb = a.geom, b.geom
        points: list[Any] = []
        inter = ga.intersection(gb)
        for part in shapely.get_parts(inter):
            xy = shapely.get_coordinates(part)
            if len(xy):
                points.extend([shapely.points(xy[0]), shapely.points(xy[-1])])
        for g_end, other in ((ga, gb), (gb, ga)):
            for xy in shapely.get_coordinates(g_end)[[0, -1]]:
                pt = shapely.points(xy)
                if other.distance(pt) <= SNAP_M:
                    points.append(pt)
        for pt in points:
            a.cuts.append((float(ga.project(pt)), _RANK[b.road_class], b.name))
            b.cuts.append((float(gb.project(pt)), _RANK[a.road_class], a.name))


def _junctions(ln: _Line) -> list[tuple[float, str]]:
    """Cut positions along the line (clustered within 2 * SNAP_M) with the name of each."""
    length = ln.geom.length
    cuts = sorted(ln.cuts)
    clusters: list[list[tuple[float, int, str]]] = []
    for c in cuts:
        pos = min(max(c[0], 0.0), length)
        if pos <= SNAP_M:
            pos = 0.0
        elif pos >= length - SNAP_M:
            pos = length
        c = (pos, c[1], c[2])
        if clusters and c[0] - clusters[-1][0][0] <= 2 * SNAP_M:
            clusters[-1].append(c)
        else:
            clusters.append([c])
    out = []
    for cl in clusters:
        best = min(cl, key=lambda c: (c[1], c[2]))  # the most important road, then by name
        pos = 0.0 if cl[0][0] == 0.0 else (length if cl[-1][0] == length else cl[0][0])
        out.append((pos, best[2]))
    return out


def _rotate_ring(ln: _Line, junctions: list[tuple[float, str]]) -> list[tuple[float, str]]:
    """A closed road starts at its first junction, so no piece is cut at an arbitrary point."""
    length = ln.geom.length
    p0 = junctions[0][0]
    if 0.0 < p0 < length:
        head = substring(ln.geom, p0, length)
        tail = substring(ln.geom, 0.0, p0)
        xy = np.vstack([shapely.get_coordinates(head), shapely.get_coordinates(tail)[1:]])
        ln.geom = LineString(xy)
    shifted = sorted(((pos - p0) % length, nm) for pos, nm in junctions)
    if shifted and shifted[-1][0] >= length - 2 * SNAP_M:
        shifted.pop()
    return shifted + [(length, junctions[0][1])]


def _cut(ln: _Line) -> None:
    length = ln.geom.length
    dead, _ = _words(ln.name)
    js = _junctions(ln)
    if ln.geom.is_ring and js:
        js = _rotate_ring(ln, js)
        length = ln.geom.length
    if not js or js[0][0] > 0.0:
        js.insert(0, (0.0, dead))
    if js[-1][0] < length:
        js.append((length, dead))
    ln.pieces = [
        _Piece(p, q, a, b) for (p, a), (q, b) in zip(js[:-1], js[1:], strict=True) if q > p
    ]


def _merge_at(pieces: list[_Piece], k: int) -> None:
    """Merge piece k into its shorter neighbour (the earlier one on a tie)."""
    if k == 0:
        j = 1
    elif k == len(pieces) - 1:
        j = k - 1
    else:
        j = k - 1 if pieces[k - 1].length <= pieces[k + 1].length else k + 1
    lo, hi = min(j, k), max(j, k)
    pieces[lo : hi + 1] = [_Piece(pieces[lo].start, pieces[hi].end, pieces[lo].a, pieces[hi].b)]


def _merge_short(ln: _Line, min_length_m: float) -> None:
    ps = ln.pieces
    while len(ps) > 1:
        k = min(range(len(ps)), key=lambda i: (ps[i].length, i))
        if ps[k].length >= min_length_m:
            break
        _merge_at(ps, k)


def _reach_target(lines: list[_Line], target: int) -> None:
    count = sum(len(ln.pieces) for ln in lines)
    while count > target:
        cands = [
            (p.length, li, k)
            for li, ln in enumerate(lines)
            if len(ln.pieces) > 1
            for k, p in enumerate(ln.pieces)
        ]
        if not cands:
            break  # every road is one piece: cannot merge further
        _, li, k = min(cands)
        _merge_at(lines[li].pieces, k)
        count -= 1
    while count < target:
        _, li, k = min(
            (-p.length, li, k) for li, ln in enumerate(lines) for k, p in enumerate(ln.pieces)
        )
        p = lines[li].pieces[k]
        mid = (p.start + p.end) / 2.0
        word = _words(lines[li].name)[1]
        lines[li].pieces[k : k + 1] = [
            _Piece(p.start, mid, p.a, word),
            _Piece(mid, p.end, word, p.b),
        ]
        count += 1


def _alongside(p: LineString, q: LineString) -> float:
    """Share of p's length that runs beside q: within PAIR_M, roughly parallel, and
    opposite an inner point of q (end-to-end pieces of one line only meet at a joint)."""
    n = max(int(p.length // _PAIR_STEP_M), 2)
    at = (np.arange(n) + 0.5) * (p.length / n)
    pts = shapely.line_interpolate_point(p, at)
    near = shapely.distance(pts, q) <= PAIR_M
    on_q = shapely.line_locate_point(q, pts)
    inner = (on_q > SNAP_M) & (on_q < q.length - SNAP_M)

    def tangent(line: LineString, pos: np.ndarray) -> np.ndarray:
        a = shapely.get_coordinates(shapely.line_interpolate_point(line, pos - 1.0))
        b = shapely.get_coordinates(shapely.line_interpolate_point(line, pos + 1.0))
        d = b - a
        unit: np.ndarray = d / np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-9)[:, None]
        return unit

    cos = np.abs(np.sum(tangent(p, at) * tangent(q, on_q), axis=1))
    parallel = cos >= np.cos(np.radians(PAIR_ANGLE_DEG))
    return float(np.mean(near & inner & parallel))


def _share_cuts(lines: list[_Line]) -> None:
    """Cut both carriageways of a dual carriageway at the same cross-sections.

    A side street often meets only one carriageway; its cut is copied to the other
    carriageway (at the point opposite), so the two are cut alike and pair piece by
    piece. The copied cut keeps the side street's name: it bounds the stretch.
    """
    geoms = np.array([ln.geom for ln in lines], dtype=object)
    names = [ln.name for ln in lines]
    left, right = shapely.STRtree(geoms).query(geoms, predicate="dwithin", distance=PAIR_M)
    own = [list(ln.cuts) for ln in lines]  # copy only original cuts, never copies
    for i, j in zip(left.tolist(), right.tolist(), strict=True):
        if i == j or names[i] != names[j] or not own[i]:
            continue
        src, dst = lines[i].geom, lines[j].geom
        if max(_alongside(src, dst), _alongside(dst, src)) < PAIR_SHARE / 2:
            continue  # only touching or crossing, not running alongside
        pos = np.array([c[0] for c in own[i]])
        pts = shapely.line_interpolate_point(src, pos)
        at = shapely.line_locate_point(dst, pts)
        close = shapely.distance(pts, dst) <= PAIR_M
        inner = (at > SNAP_M) & (at < dst.length - SNAP_M)
        for k in np.flatnonzero(close & inner).tolist():
            lines[j].cuts.append((float(at[k]), own[i][k][1], own[i][k][2]))


def _carriageway_pairs(names: list[str], pieces_m: np.ndarray) -> list[tuple[int, int]]:
    """(i, j), i < j: pieces paired as the two carriageways of one road, each at most once,
    best-overlapping first (deterministic: ties by position)."""
    tree = shapely.STRtree(pieces_m)
    left, right = tree.query(pieces_m, predicate="dwithin", distance=PAIR_M)
    cands: list[tuple[float, int, int]] = []
    for i, j in zip(left.tolist(), right.tolist(), strict=True):
        if i < j and names[i] == names[j]:
            share = min(_alongside(pieces_m[i], pieces_m[j]), _alongside(pieces_m[j], pieces_m[i]))
            if share >= PAIR_SHARE:
                cands.append((-share, i, j))
    cands.sort()
    used: set[int] = set()
    out = []
    for _, i, j in cands:
        if i not in used and j not in used:
            used.update((i, j))
            out.append((i, j))
    return sorted(out)


def _pieces(lines: list[_Line], pair: bool) -> tuple[list[tuple[_Line, _Piece]], np.ndarray]:
    """(line, piece) rows and metric geometries; paired carriageways as one MultiLineString."""
    rows: list[tuple[_Line, _Piece]] = [(ln, p) for ln in lines for p in ln.pieces]
    pieces_m = np.array([substring(ln.geom, p.start, p.end) for ln, p in rows], dtype=object)
    if not pair or len(rows) < 2:
        return rows, pieces_m
    pairs = _carriageway_pairs([ln.name for ln, _ in rows], pieces_m)
    partner = {j for _, j in pairs}
    for i, j in pairs:
        pieces_m[i] = shapely.multilinestrings([pieces_m[i], pieces_m[j]])
    keep = [k for k in range(len(rows)) if k not in partner]
    return [rows[k] for k in keep], pieces_m[keep]


def _final_pieces(
    lines: list[_Line], target: int | None, pair: bool
) -> tuple[list[tuple[_Line, _Piece]], np.ndarray]:
    """Pieces after step 4; with pairing, the target counts a pair as one segment, so
    step 4 is re-run from the same start aiming at target + pairs until the count fits
    (pairs can change as pieces are merged or split; a few rounds settle it)."""
    if target is None:
        return _pieces(lines, pair)
    start = [list(ln.pieces) for ln in lines]
    aim = target
    rows: list[tuple[_Line, _Piece]] = []
    pieces_m = np.array([], dtype=object)
    for _ in range(8):
        for ln, ps in zip(lines, start, strict=True):
            ln.pieces = list(ps)
        _reach_target(lines, aim)
        rows, pieces_m = _pieces(lines, pair)
        if len(rows) == target or not pair:
            break
        aim += target - len(rows)
    return rows, pieces_m


def _ways_frame(ways: Any) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(names, WGS84 geometries, road classes) of the named line ways."""
    gdf = ways if isinstance(ways, gpd.GeoDataFrame) else gpd.GeoDataFrame(ways)
    if gdf.crs is not None and not gdf.crs.equals(pyproj.CRS.from_epsg(4326)):
        gdf = gdf.to_crs(4326)
    names = gdf["name"].to_numpy(dtype=object)
    geoms = np.asarray(gdf.geometry.values, dtype=object)
    if "highway" in gdf.columns:
        classes = [road_class_of(h) or "local" for h in gdf["highway"].tolist()]
    elif "road_class" in gdf.columns:
        classes = [road_class_of(h) or "local" for h in gdf["road_class"].tolist()]
    else:
        classes = ["local"] * len(gdf)
    named = np.array(
        [isinstance(n, str) and bool(n.strip()) for n in names.tolist()], dtype=bool
    ) & ~shapely.is_missing(geoms)
    lines = named & np.isin(shapely.get_type_id(geoms), (1, 5))
    keep = np.flatnonzero(lines)
    names = np.array([str(n).strip() for n in names[keep].tolist()], dtype=object)
    return names, geoms[keep], [classes[i] for i in keep]


def segmentize(
    ways: Any,
    *,
    min_length_m: float = 80.0,
    target_count: int | None = None,
    id_prefix: str = "SEG",
    previous: Network | None = None,
    district_of: DistrictOf | None = None,
    pair_carriageways: bool = True,
) -> list[Segment]:
    """Responsibility segments cut from named road ways (a GeoDataFrame with name, geometry).

    An optional ``highway`` (OSM) or ``road_class`` column sets each road's class.
    """
    names, geoms_ll, classes = _ways_frame(ways)
    if len(names) == 0:
        return []
    x0, y0, x1, y1 = shapely.total_bounds(geoms_ll)
    epsg = utm_epsg((x0 + x1) / 2.0, (y0 + y1) / 2.0)
    fwd = pyproj.Transformer.from_crs(4326, epsg, always_xy=True)
    back = pyproj.Transformer.from_crs(epsg, 4326, always_xy=True)
    metric = _transform(geoms_ll, fwd)

    lines = _road_lines(names, metric, classes)
    _find_cuts(lines)
    if pair_carriageways and len(lines) > 1:
        _share_cuts(lines)
    for ln in lines:
        _cut(ln)
        _merge_short(ln, min_length_m)
    if target_count is not None and target_count < 1:
        raise ValueError(f"target_count must be at least 1, not {target_count}")
    rows, pieces_m = _final_pieces(lines, target_count, pair_carriageways)
    pieces_ll = _transform(pieces_m, back)
    # A paired segment's length is the road stretch's: the mean of its carriageways.
    part_ll, owner = shapely.get_parts(pieces_ll, return_index=True)
    total = np.bincount(owner, weights=geodesic_lengths(part_ll), minlength=len(rows))
    lengths = total / shapely.get_num_geometries(pieces_ll)
    ids = _assign_ids(rows, pieces_m, previous, id_prefix, fwd)

    out = []
    for k, ((ln, p), geom) in enumerate(zip(rows, pieces_ll, strict=True)):
        code, sub = district_of(geom) if district_of is not None else ("ALL", "ALL")
        out.append(
            Segment(
                id=ids[k],
                name=f"{ln.name}（{p.a}至{p.b}）",
                road=ln.name,
                from_road=p.a,
                to_road=p.b,
                district=code,
                subdistrict=sub,
                road_class=ln.road_class,
                length_m=round(float(lengths[k]), 1),
                geometry=geom,
            )
        )
    return out


def _assign_ids(
    rows: Sequence[tuple[_Line, _Piece]],
    pieces_m: np.ndarray,
    previous: Network | None,
    prefix: str,
    fwd: pyproj.Transformer,
) -> list[str]:
    n = len(rows)
    pattern = re.compile(rf"^{re.escape(prefix)}-(\d+)$")
    ids: list[str | None] = [None] * n
    start = 0
    if previous is not None and previous.segments:
        nums = [int(m[1]) for s in previous.segments if (m := pattern.match(s.id))]
        start = max(nums, default=0)
        old = previous.segments
        old_m = _transform(np.array([s.geometry for s in old], dtype=object), fwd)
        by_road: dict[str, list[int]] = {}
        for j, s in enumerate(old):
            by_road.setdefault(s.road, []).append(j)
        pairs: list[tuple[float, int, int]] = []
        for i, (ln, _p) in enumerate(rows):
            cand = by_road.get(ln.name)
            if not cand:
                continue
            cj = np.array(cand)
            new = pieces_m[i]
            a, b = shapely.get_coordinates(new)[[0, -1]]
            ends = np.array([shapely.get_coordinates(g)[[0, -1]] for g in old_m[cj]])
            same = np.maximum(np.hypot(*(ends[:, 0] - a).T), np.hypot(*(ends[:, 1] - b).T))
            flip = np.maximum(np.hypot(*(ends[:, 1] - a).T), np.hypot(*(ends[:, 0] - b).T))
            ends_d = np.minimum(same, flip)
            near = shapely.dwithin(old_m[cj], new, MATCH_M)
            haus = np.full(len(cj), np.inf)
            if near.any():
                haus[near] = shapely.hausdorff_distance(old_m[cj[near]], new)
            score = np.minimum(ends_d, haus)
            for j, d in zip(cj.tolist(), score.tolist(), strict=True):
                if d <= MATCH_M:
                    pairs.append((d, i, j))
        pairs.sort()
        used: set[int] = set()
        for _d, i, j in pairs:
            if ids[i] is None and j not in used:
                ids[i] = old[j].id
                used.add(j)
    out: list[str] = []
    for i in range(n):
        sid = ids[i]
        if sid is None:
            start += 1
            sid = f"{prefix}-{start:05d}"
        out.append(sid)
    return out


def network_from_osm(
    pbf_or_ways: str | Path | gpd.GeoDataFrame,
    *,
    name: str | None = None,
    bounds: tuple[float, float, float, float] | None = None,
    highway_classes: frozenset[str] | set[str] = DEFAULT_DRIVABLE,
    min_length_m: float = 80.0,
    target_count: int | None = None,
    id_prefix: str = "SEG",
    previous: Network | None = None,
    district_of: DistrictOf | None = None,
    pair_carriageways: bool = True,
) -> Network:
    """A Network cut from an ``.osm.pbf`` file (or ways already read); districts from segments."""
    if isinstance(pbf_or_ways, (str, Path)):
        ways = read_osm_pbf(pbf_or_ways, bounds=bounds, highway_classes=highway_classes)
        label = name or Path(pbf_or_ways).name.split(".")[0]
    else:
        ways = pbf_or_ways
        label = name or "OpenStreetMap"
    segments = segmentize(
        ways,
        min_length_m=min_length_m,
        target_count=target_count,
        id_prefix=id_prefix,
        previous=previous,
        district_of=district_of,
        pair_carriageways=pair_carriageways,
    )
    districts = districts_from_segments(
        [s.geometry for s in segments], [s.district for s in segments]
    )
    return Network(
        name=label,
        districts=districts,
        subdistricts=(),
        segments=tuple(segments),
        people=(),
        assignments=(),
    )
