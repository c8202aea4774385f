"""Snap WGS84 points to the nearest road segment; locate points in areas.

Segments are projected once into the UTM zone of the network's centre, so all
distances and chainages are planar grid metres (within 0.05 % of ground
distance inside the zone, i.e. < 3 cm at the 50 m snapping limit; a network
spanning several zones would need a local projection instead). Points are
projected with a cached pyproj Transformer: ~1 µs a call on scalars (measured),
so no hand-written projection approximation is needed, and scalar and array
calls give bit-identical coordinates.

``snap_many`` scores candidate pairs with numpy (:meth:`SegmentIndex._score`);
``snap`` is its scalar twin in plain Python (numpy costs ~1 µs per call on tiny
arrays) doing the same floating-point operations in the same order, so a live
message and a batch re-run of the same report agree bit for bit (tested).

Candidate rules (see NOTES.md, Geometry: 5.8 % of Zhengzhou points have a
second road within 5 m -- flag, do not guess):

* Search radius: ``max_distance`` when no accuracy is known, otherwise
  ``min(clamp(2 * accuracy, 30, 100), max_distance)``: a good fix is not pulled
  onto a road far beyond its error, and nothing is ever farther than
  ``max_distance`` (constructor default 50 m, per-call override allowed, a
  larger per-call value is the only way to search farther).
* Best: the smallest distance; ties go to the lowest segment index.
* Runner-up: the nearest other candidate that is not merely the same road
  continuing from the best segment (same ``roads`` name and a shared endpoint
  within 0.5 m). Without ``roads`` every segment is its own road.
* Ambiguous: a runner-up exists and is at most ``ambiguity_m`` farther than the
  best.
* Confidence: softmax of Gaussian likelihoods exp(-d^2 / 2 sigma^2) over all
  candidates, sigma = max(accuracy or default_accuracy_m, 5 m); the best
  segment's same-road continuations count towards the best, so a point at a
  plain joint of one road is not "50 % sure".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyproj
import shapely

__all__ = ["AreaIndex", "NO_SNAP", "SegmentIndex", "Snap", "SnapBatch", "utm_epsg"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
GeomArray = npt.NDArray[np.object_]

_JOIN_TOL_M: Final = 0.5  # endpoints this close are one junction (digitising noise)
_MIN_SIGMA_M: Final = 5.0  # phones report optimistic accuracies; never trust < 5 m
_RADIUS_MIN_M: Final = 30.0
_RADIUS_MAX_M: Final = 100.0
_CHUNK: Final = 200_000  # points per chunk in snap_many: bounds the pair arrays

_LINESTRING: Final = 1
_POLYGON: Final = 3
_MULTIPOLYGON: Final = 6
_NAMES: Final = {_LINESTRING: "LineString", _POLYGON: "Polygon", _MULTIPOLYGON: "MultiPolygon"}


@dataclass(frozen=True, slots=True)
class Snap:
    """Result of snapping one point. ``index`` is None when nothing is in range."""

    index: int | None
    distance_m: float | None
    chainage_m: float | None  # along the segment from its first vertex
    runner_up: int | None
    runner_up_distance_m: float | None
    confidence: float  # 0..1, 0 when index is None
    ambiguous: bool


NO_SNAP: Final = Snap(None, None, None, None, None, 0.0, False)


@dataclass(frozen=True, slots=True, eq=False)
class SnapBatch:
    """Column arrays of :class:`Snap`: -1 for no index, NaN for no distance."""

    index: IntArray
    distance_m: FloatArray
    chainage_m: FloatArray
    runner_up: IntArray
    runner_up_distance_m: FloatArray
    confidence: FloatArray
    ambiguous: BoolArray

    def __len__(self) -> int:
        return int(self.index.size)

    def __getitem__(self, i: int) -> Snap:
        if self.index[i] < 0:
            return NO_SNAP
        ru = int(self.runner_up[i])
        return Snap(
            index=int(self.index[i]),
            distance_m=float(self.distance_m[i]),
            chainage_m=float(self.chainage_m[i]),
            runner_up=ru if ru >= 0 else None,
            runner_up_distance_m=float(self.runner_up_distance_m[i]) if ru >= 0 else None,
            confidence=float(self.confidence[i]),
            ambiguous=bool(self.ambiguous[i]),
        )


def utm_epsg(lon: float, lat: float) -> int:
    """EPSG code of the WGS84 UTM zone containing (lon, lat)."""
    zone = int(math.floor((lon + 180.0) / 6.0)) % 60 + 1
    return (32600 if lat >= 0 else 32700) + zone


def _geometry_array(geoms: Sequence[Any] | GeomArray, allowed: tuple[int, ...], what: str) -> Any:
    # np.asarray on a list of geometries is fine in shapely 2 (they are not sequences),
    # but building the object array explicitly also accepts tuples and GeoSeries.
    arr = np.empty(len(geoms), dtype=object)
    arr[:] = list(geoms)
    types = shapely.get_type_id(arr)
    bad = ~np.isin(types, allowed) | shapely.is_empty(arr)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{what} {i} is not a non-empty {' or '.join(_NAMES[t] for t in allowed)}")
    return arr


def _coords_1d(lons: npt.ArrayLike, lats: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    x = np.asarray(lons, dtype=np.float64)
    y = np.asarray(lats, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError("lons and lats must be 1-D arrays of the same length")
    return x, y


def _road_codes(roads: Sequence[str | None] | None, n: int) -> IntArray:
    """One integer per road name; unnamed segments (None, "") are each their own road.

    An unnamed segment must never count as the continuation of another unnamed one:
    that would hide a genuinely ambiguous crossing.
    """
    if roads is None:
        return np.arange(n, dtype=np.int64)
    codes: dict[str, int] = {}
    out = np.empty(n, dtype=np.int64)
    for i, name in enumerate(roads):
        out[i] = codes.setdefault(name, len(codes)) if name else -1 - i
    return out


def _first_of_runs(keys: IntArray) -> BoolArray:
    """True at the first element of each run of equal keys (keys are sorted)."""
    first = np.empty(keys.size, dtype=bool)
    first[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=first[1:])
    return first


class SegmentIndex:
    """Nearest-segment snapping over a fixed road network (WGS84 LineStrings)."""

    def __init__(
        self,
        lines: Sequence[Any] | GeomArray,
        *,
        roads: Sequence[str | None] | None = None,
        max_distance_m: float = 50.0,
        ambiguity_m: float = 5.0,
        default_accuracy_m: float = 10.0,
    ) -> None:
        geoms = _geometry_array(lines, (_LINESTRING,), "segment")
        if geoms.size == 0:
            raise ValueError("a SegmentIndex needs at least one segment")
        if roads is not None and len(roads) != geoms.size:
            raise ValueError(f"roads has {len(roads)} names for {geoms.size} segments")
        for name, value in (
            ("max_distance_m", max_distance_m),
            ("ambiguity_m", ambiguity_m),
            ("default_accuracy_m", default_accuracy_m),
        ):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        self.max_distance_m = float(max_distance_m)
        self.ambiguity_m = float(ambiguity_m)
        self.default_accuracy_m = float(default_accuracy_m)

        minx, miny, maxx, maxy = shapely.total_bounds(geoms)
        self.epsg = utm_epsg((minx + maxx) / 2.0, (miny + maxy) / 2.0)
        self.crs = pyproj.CRS.from_epsg(self.epsg)
        # Created once: building a Transformer costs milliseconds, calling it ~1 µs.
        self._to_xy = pyproj.Transformer.from_crs(4326, self.epsg, always_xy=True)
        self.geometries: GeomArray = shapely.transform(geoms, self._project_coords)
        self.lengths_m: FloatArray = shapely.length(self.geometries)
        self._tree = shapely.STRtree(self.geometries)

        # Segment endpoints (n, 2 ends, xy) and integer road codes, for the
        # "same road continuing" test.
        coords = [shapely.get_coordinates(shapely.get_point(self.geometries, i)) for i in (0, -1)]
        self._ends: FloatArray = np.stack(coords, axis=1)
        self._road: IntArray = _road_codes(roads, geoms.size)
        # Python copy for the scalar live path (list indexing beats numpy there).
        # Endpoints stay numpy-only: nested lists would cost ~300 B a segment.
        self._road_list: list[int] = self._road.tolist()

    def __len__(self) -> int:
        return int(self.geometries.size)

    def _project_coords(self, c: FloatArray) -> FloatArray:
        x, y = self._to_xy.transform(c[:, 0], c[:, 1])
        return np.column_stack([x, y])

    def distance_to(self, position: int, lon: float, lat: float) -> float:
        """Metres from a WGS84 point to segment ``position`` (inf for a bad point)."""
        x, y = self._to_xy.transform(lon, lat)
        if not (math.isfinite(x) and math.isfinite(y)):
            return math.inf
        return float(shapely.distance(self.geometries[position], shapely.Point(x, y)))

    # --- search parameters ----------------------------------------------------

    def _limit(self, max_distance_m: float | None) -> float:
        if max_distance_m is None:
            return self.max_distance_m
        if not (math.isfinite(max_distance_m) and max_distance_m >= 0):
            raise ValueError(f"max_distance_m must be a finite number >= 0, got {max_distance_m!r}")
        return float(max_distance_m)

    def _radius_sigma_one(self, accuracy_m: float | None, limit: float) -> tuple[float, float]:
        """Scalar twin of :meth:`_radius_sigma` (same clamps, same results)."""
        if accuracy_m is None or not (math.isfinite(accuracy_m) and accuracy_m > 0):
            return limit, max(self.default_accuracy_m, _MIN_SIGMA_M)
        acc = float(accuracy_m)
        radius = min(min(max(2.0 * acc, _RADIUS_MIN_M), _RADIUS_MAX_M), limit)
        return radius, max(acc, _MIN_SIGMA_M)

    def _radius_sigma(
        self, accuracy_m: npt.ArrayLike | None, limit: float, n: int
    ) -> tuple[FloatArray, FloatArray]:
        """Per-point search radius and sigma; unknown accuracy is None, NaN or <= 0."""
        if accuracy_m is None:
            return np.full(n, limit), np.full(n, max(self.default_accuracy_m, _MIN_SIGMA_M))
        acc = np.broadcast_to(np.asarray(accuracy_m, dtype=np.float64), (n,))
        known = np.isfinite(acc) & (acc > 0)
        safe = np.where(known, acc, self.default_accuracy_m)
        radius = np.where(
            known, np.minimum(np.clip(2.0 * safe, _RADIUS_MIN_M, _RADIUS_MAX_M), limit), limit
        )
        return radius, np.maximum(safe, _MIN_SIGMA_M)

    # --- scoring: _score for snap_many, scalar twins for snap -----------------

    def _continues(self, a: IntArray, b: IntArray) -> BoolArray:
        """Segments a[i] and b[i] are the same road and share an endpoint."""
        out = (self._road[a] == self._road[b]) & (a != b)
        sel = np.flatnonzero(out)
        if sel.size:
            ea = self._ends[a[sel]]  # (k, 2 ends, xy)
            eb = self._ends[b[sel]]
            touch = np.zeros(sel.size, dtype=bool)
            for i in (0, 1):
                for j in (0, 1):
                    # Spelt out like _continues_one, so both give identical bits.
                    dx = ea[:, i, 0] - eb[:, j, 0]
                    dy = ea[:, i, 1] - eb[:, j, 1]
                    touch |= dx * dx + dy * dy <= _JOIN_TOL_M * _JOIN_TOL_M
            out[sel] = touch
        return out

    def _continues_one(self, a: int, b: int) -> bool:
        """Scalar twin of :meth:`_continues` for the live path."""
        if a == b or self._road_list[a] != self._road_list[b]:
            return False
        ends_b = self._ends[b].tolist()
        for ax, ay in self._ends[a].tolist():
            for bx, by in ends_b:
                dx = ax - bx
                dy = ay - by
                if dx * dx + dy * dy <= _JOIN_TOL_M * _JOIN_TOL_M:
                    return True
        return False

    def _score(
        self,
        points: GeomArray,
        radius: FloatArray,
        sigma: FloatArray,
        pi: IntArray,
        si: IntArray,
        offset: int,
        out: SnapBatch,
    ) -> None:
        """Resolve candidate pairs (point pi, segment si) into ``out[offset + pi]``."""
        d = shapely.distance(points[pi], self.geometries[si])
        keep = d <= radius[pi]  # dwithin and distance agree, but be explicit
        pi, si, d = pi[keep], si[keep], d[keep]
        if pi.size == 0:
            return
        order = np.lexsort((si, d, pi))  # by point, then distance, then segment
        pi, si, d = pi[order], si[order], d[order]
        first = _first_of_runs(pi)
        group = np.cumsum(first) - 1
        heads = np.flatnonzero(first)
        best, best_d = si[heads], d[heads]

        rival = ~first & ~self._continues(best[group], si)
        ridx = np.flatnonzero(rival)
        ridx = ridx[_first_of_runs(group[ridx])]  # nearest rival of each point
        rgroup = group[ridx]

        # Shift by the best distance so exp never underflows for the best.
        bd = best_d[group]
        s = sigma[pi]
        w = np.exp(-(d * d - bd * bd) / (2.0 * s * s))
        ngroups = heads.size
        den = np.bincount(group, weights=w, minlength=ngroups)
        num = np.bincount(group, weights=np.where(rival, 0.0, w), minlength=ngroups)

        rows = pi[heads] + offset
        out.index[rows] = best
        out.distance_m[rows] = best_d
        out.chainage_m[rows] = shapely.line_locate_point(self.geometries[best], points[pi[heads]])
        out.confidence[rows] = num / den
        rrows = pi[ridx] + offset
        out.runner_up[rrows] = si[ridx]
        out.runner_up_distance_m[rrows] = d[ridx]
        out.ambiguous[rrows] = d[ridx] - best_d[rgroup] <= self.ambiguity_m

    # --- public API -------------------------------------------------------------

    def snap(
        self,
        lon: float,
        lat: float,
        *,
        accuracy_m: float | None = None,
        max_distance_m: float | None = None,
    ) -> Snap:
        """Snap one WGS84 point (the live path).

        A scalar twin of :meth:`_score`: numpy costs ~1 µs a call on tiny
        arrays, so the few candidates are handled in plain Python, with the same
        operations in the same order (and numpy's exp) so the result is
        bit-identical to :meth:`snap_many`.
        """
        limit = self._limit(max_distance_m)
        radius, sigma = self._radius_sigma_one(accuracy_m, limit)
        x, y = self._to_xy.transform(lon, lat)
        if not (math.isfinite(x) and math.isfinite(y)):
            return NO_SNAP
        point = shapely.points(np.array([[x, y]]))  # 1-element array: faster than Point
        cand = self._tree.query(point, predicate="dwithin", distance=radius)[1]
        if cand.size == 0:
            return NO_SNAP
        dist = shapely.distance(point, self.geometries[cand])
        pairs = sorted(
            (d, s) for d, s in zip(dist.tolist(), cand.tolist(), strict=True) if d <= radius
        )
        if not pairs:
            return NO_SNAP
        best_d, best = pairs[0]
        rival = [False] + [not self._continues_one(best, s) for _, s in pairs[1:]]
        runner = next((i for i, r in enumerate(rival) if r), None)

        z = [-(d * d - best_d * best_d) / (2.0 * sigma * sigma) for d, _ in pairs]
        den = num = 0.0
        for w, r in zip(np.exp(np.array(z)).tolist(), rival, strict=True):
            den += w  # sequential, like np.bincount
            num += 0.0 if r else w
        chainage = float(shapely.line_locate_point(self.geometries[best], point[0]))
        if runner is None:
            return Snap(best, best_d, chainage, None, None, num / den, False)
        ru_d, ru = pairs[runner]
        return Snap(best, best_d, chainage, ru, ru_d, num / den, ru_d - best_d <= self.ambiguity_m)

    def snap_many(
        self,
        lons: npt.ArrayLike,
        lats: npt.ArrayLike,
        *,
        accuracy_m: npt.ArrayLike | None = None,
        max_distance_m: float | None = None,
    ) -> SnapBatch:
        """Snap many WGS84 points at once; ``accuracy_m`` may be scalar or per point."""
        lon, lat = _coords_1d(lons, lats)
        n = lon.size
        limit = self._limit(max_distance_m)
        radius, sigma = self._radius_sigma(accuracy_m, limit, n)
        out = _empty_batch(n)
        # Chunks only bound memory (pairs can be many times the points on a
        # dense network); the work inside a chunk is fully vectorised.
        for start in range(0, n, _CHUNK):
            stop = min(start + _CHUNK, n)
            x, y = self._to_xy.transform(lon[start:stop], lat[start:stop])
            points = shapely.points(x, y)
            points[~(np.isfinite(x) & np.isfinite(y))] = None  # None never matches
            r = radius[start:stop]
            pi, si = self._tree.query(points, predicate="dwithin", distance=r)
            self._score(
                points,
                r,
                sigma[start:stop],
                pi.astype(np.int64, copy=False),
                si.astype(np.int64, copy=False),
                start,
                out,
            )
        return out


def _empty_batch(n: int) -> SnapBatch:
    return SnapBatch(
        index=np.full(n, -1, dtype=np.int64),
        distance_m=np.full(n, np.nan),
        chainage_m=np.full(n, np.nan),
        runner_up=np.full(n, -1, dtype=np.int64),
        runner_up_distance_m=np.full(n, np.nan),
        confidence=np.zeros(n),
        ambiguous=np.zeros(n, dtype=bool),
    )


class AreaIndex:
    """Which area (district polygon, WGS84) contains a point.

    Works directly in lon/lat: point-in-polygon needs no metric projection.
    Points on a shared border (or in overlapping areas) go to the area with the
    lowest index, because the test is "intersects" (boundary included) and the
    smallest matching index wins.
    """

    def __init__(self, areas: Sequence[Any] | GeomArray) -> None:
        geoms = _geometry_array(areas, (_POLYGON, _MULTIPOLYGON), "area")
        # Copies, so preparing (an in-place cache) does not touch the caller's objects.
        self.geometries: GeomArray = shapely.transform(geoms, lambda c: c)
        # Prepared polygons make point-in-polygon logarithmic in the vertex count;
        # STRtree's own predicate would prepare the (point) query side instead.
        shapely.prepare(self.geometries)
        self._tree = shapely.STRtree(self.geometries)

    def __len__(self) -> int:
        return int(self.geometries.size)

    def locate(self, lon: float, lat: float) -> int | None:
        """Index of the first area containing the point, or None."""
        if not (math.isfinite(lon) and math.isfinite(lat)):
            return None
        cand = np.sort(self._tree.query(shapely.Point(lon, lat)))
        if cand.size == 0:
            return None
        hit = np.flatnonzero(shapely.intersects_xy(self.geometries[cand], lon, lat))
        return int(cand[hit[0]]) if hit.size else None

    def locate_many(self, lons: npt.ArrayLike, lats: npt.ArrayLike) -> IntArray:
        """Area index per point, -1 outside every area."""
        lon, lat = _coords_1d(lons, lats)
        points = shapely.points(lon, lat)
        points[~(np.isfinite(lon) & np.isfinite(lat))] = None
        pi, ai = self._tree.query(points)  # bounding boxes only
        hit = shapely.intersects_xy(self.geometries[ai], lon[pi], lat[pi])
        pi, ai = pi[hit], ai[hit]
        none = np.iinfo(np.int64).max
        out = np.full(lon.size, none, dtype=np.int64)
        np.minimum.at(out, pi, ai)
        out[out == none] = -1
        return out
