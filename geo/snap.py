"""Snap WGS84 points to road segments; locate points in areas.

Segments are projected once into the UTM zone of the network's centre, so all
distances and chainages are planar grid metres (within 0.05 % of ground
distance inside the zone, i.e. < 3 cm at the 50 m snapping limit; a network
spanning several zones would need a local projection instead). Points are
projected with a cached pyproj Transformer: ~1 µs a call on scalars (measured),
so no hand-written projection approximation is needed, and scalar and array
calls give bit-identical coordinates.

Geometry is held as *edges* (consecutive vertex pairs of each segment) in an
STRtree; distance, chainage, side of the road and the local bearing at the
snapped point are plain arithmetic on the edge nearest to the point.

``snap_many`` scores candidate pairs with numpy (:meth:`SegmentIndex._score`);
``snap`` is its scalar twin in plain Python (numpy costs ~1 µs per call on tiny
arrays) doing the same floating-point operations in the same order, so a live
message and a batch re-run of the same report agree bit for bit (tested).

Scoring (v3) -- a posterior over the candidate segments within the radius:

* Search radius: ``max_distance`` when no accuracy is known, otherwise
  ``min(clamp(2 * accuracy, 30, 100), max_distance)``: a good fix is not pulled
  onto a road far beyond its error, and nothing is ever farther than
  ``max_distance`` (constructor default 50 m, per-call override allowed, a
  larger per-call value is the only way to search farther).
* Likelihood of segment s (v3: the 2-D likelihood of a line a report was made
  along): ``exp(-e^2 / 2 sigma^2) * Phi(u / sigma) * Phi((L - u) / sigma)`` with e the
  offset across the line, u the position along the part (L long; beyond an end, the
  overshoot counts along, not across) and sigma = max(accuracy or
  default_accuracy_m, 5 m) -- so a point past a free end falls off fast. Phi is a
  logistic approximation. The *ranking* weight drops the fall-off at a joined end
  (where the same road goes on) and keeps the plain distance to it instead, so the
  two halves of a road at a joint never lose to a crossing road; confidences use
  the likelihood itself. Times, when a direction of
  travel is known, an axial von-Mises term ``floor + (1 - floor) *
  exp(2 kappa (cos^2 delta - 1))`` where delta is the angle between the heading
  and the segment's local bearing at the snapped point (segments are undirected
  for reporting: modulo 180 degrees; kappa from ``heading_sigma_deg``, the floor
  keeps a wrong compass or a bend from vetoing a road), times ``prior_weight``
  for the reporter's own segments (``prior``) and ``hint_weight`` for segments
  of a road named in the report (``road_hint``). These are mild, bounded
  factors: they break near-ties, they never pull a point onto a road far
  beyond its error.
* Normalised over the candidates: ``posterior``. The best is the most probable (by
  ranking weight) segment (ties: nearer, then lower index). ``confidence`` is the posterior of
  the best *plus its same-road continuations* (same ``roads`` name and a shared
  endpoint within 0.5 m): a point at a plain joint of one road is not "50 %
  sure". Without ``roads`` every segment is its own road. With
  ``group_by_road=True`` every segment of the same (non-empty) road name counts
  as the best's own (road-level decisions: the two carriageways of one avenue
  are not a reason for review).
* Runner-up: the most probable candidate that is not the best or a
  continuation of it.
* Ambiguous (-> needs_review): a runner-up exists and either ``confidence <
  min_confidence``, or -- when distance is the only evidence (no heading, and
  prior/hint do not tell the best from the runner-up) -- ``confidence <
  distance_only_min_confidence``
  (default: ``min_confidence``) or the runner-up is at most ``ambiguity_m``
  farther than the best (distance alone cannot separate roads that close:
  NOTES.md, 5.8 % of Zhengzhou points have a second road within 5 m).
  ``min_confidence`` defaults to 0.0 (the v1 rule only, which existing callers
  rely on); :data:`RECOMMENDED_MIN_CONFIDENCE` and
  :data:`RECOMMENDED_AMBIGUITY_M` are the values tuned on a real OSM network by
  bench/bench_accuracy.py (with ``group_by_road=True``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyproj
import shapely

from geo.crs import utm_epsg

__all__ = [
    "AreaIndex",
    "NO_SNAP",
    "RECOMMENDED_AMBIGUITY_M",
    "RECOMMENDED_DISTANCE_ONLY_MIN_CONFIDENCE",
    "RECOMMENDED_MIN_CONFIDENCE",
    "SegmentIndex",
    "Snap",
    "SnapBatch",
    "road_names_in",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
GeomArray = npt.NDArray[np.object_]

_JOIN_TOL_M: Final = 0.5  # endpoints this close are one junction (digitising noise)
_ON_LINE_M: Final = 0.5  # closer than this to the line: no side of the road
_MIN_SIGMA_M: Final = 5.0  # phones report optimistic accuracies; never trust < 5 m
_RADIUS_MIN_M: Final = 30.0
_RADIUS_MAX_M: Final = 100.0
_CHUNK: Final = 200_000  # points per chunk in snap_many: bounds the pair arrays
_MAX_CANDIDATES: Final = 5
_DEG: Final = math.pi / 180.0

# Tuned with bench/bench_accuracy.py on central Helsinki (see its docstring).
RECOMMENDED_MIN_CONFIDENCE: Final = 0.8
RECOMMENDED_DISTANCE_ONLY_MIN_CONFIDENCE: Final = 0.85
RECOMMENDED_AMBIGUITY_M: Final = 10.0

_LINESTRING: Final = 1
_POLYGON: Final = 3
_MULTILINESTRING: Final = 5
_MULTIPOLYGON: Final = 6
_NAMES: Final = {
    _LINESTRING: "LineString",
    _POLYGON: "Polygon",
    _MULTILINESTRING: "MultiLineString",
    _MULTIPOLYGON: "MultiPolygon",
}

# Edge table columns (one row per vertex pair of a segment): start, vector, squared
# length, length, chainage of its start within its part, unit vector, part length.
_AX, _AY, _DX, _DY, _LEN2, _ELEN, _CUM, _UX, _UY, _PLEN, _JOIN = range(11)
_JOIN_START: Final = 1  # _JOIN bits: the part's start / end meets a same-road continuation
_JOIN_END: Final = 2
# Logistic approximation of the normal CDF (max error 0.01): Phi(x) ~ 1/(1+exp(-K x)).
_PHI_K: Final = 1.702
_PHI_CLIP: Final = 30.0  # |x| beyond this: 0 or 1 to double precision anyway


@dataclass(frozen=True, slots=True)
class Snap:
    """Result of snapping one point. ``index`` is None when nothing is in range."""

    index: int | None
    distance_m: float | None
    chainage_m: float | None  # along the segment from its first vertex
    runner_up: int | None
    runner_up_distance_m: float | None
    confidence: float  # 0..1: posterior of the best and its same-road continuations
    ambiguous: bool
    # "left"/"right" of the segment's digitised direction; None on the line (<= 0.5 m)
    side: str | None = None
    posterior: float = 0.0  # posterior of the best segment alone
    # (position, distance_m, posterior) of the top candidates, best first (snap only;
    # SnapBatch rows have none, so equality ignores them).
    candidates: tuple[tuple[int, float, float], ...] = field(default=(), compare=False)
    # geo.robust only: within its BOUNDARY_TOL_M of a joint with a same-road continuation
    boundary: bool = field(default=False, compare=False)


NO_SNAP: Final = Snap(None, None, None, None, None, 0.0, False)
_SIDES: Final = {1: "left", -1: "right", 0: None}


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
    side: npt.NDArray[np.int8]  # +1 left, -1 right, 0 on the line or no snap
    posterior: FloatArray

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
            side=_SIDES[int(self.side[i])],
            posterior=float(self.posterior[i]),
        )


def road_names_in(text: str | None, known_roads: Iterable[str | None]) -> set[str]:
    """Known road names mentioned in free text (a report's note), for ``road_hint``.

    Case-insensitive. Longer names are matched first and a shorter name is not
    counted inside text already taken by a longer one ("Mannerheimintie" is
    not also "Manner..."). Latin names must start at a word boundary but may
    run on (Finnish inflects: "Mannerheimintiellä" mentions Mannerheimintie);
    CJK names need no boundary. Names shorter than 3 characters (2 for CJK)
    are ignored: too many false hits.
    """
    if not text:
        return set()
    low = text.casefold()
    names = sorted({n for n in known_roads if n}, key=len, reverse=True)
    taken = [False] * len(low)
    found: set[str] = set()
    for name in names:
        key = name.casefold()
        cjk = any("\u3400" <= ch <= "\u9fff" for ch in key)
        if len(key) < (2 if cjk else 3):
            continue
        for m in re.finditer(re.escape(key), low):
            a, b = m.start(), m.end()
            if any(taken[a:b]):
                continue
            if not cjk and a > 0 and low[a - 1].isalnum():
                continue  # must start at a word boundary
            taken[a:b] = [True] * (b - a)
            found.add(name)
    return found


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


def _road_codes(roads: Sequence[str | None] | None, n: int) -> tuple[IntArray, dict[str, int]]:
    """One integer per road name; unnamed segments (None, "") are each their own road.

    An unnamed segment must never count as the continuation of another unnamed one:
    that would hide a genuinely ambiguous crossing.
    """
    codes: dict[str, int] = {}
    if roads is None:
        return np.arange(n, dtype=np.int64), codes
    out = np.empty(n, dtype=np.int64)
    for i, name in enumerate(roads):
        out[i] = codes.setdefault(name, len(codes)) if name else -1 - i
    return out, codes


def _first_of_runs(keys: IntArray) -> BoolArray:
    """True at the first element of each run of equal keys (keys are sorted)."""
    first = np.empty(keys.size, dtype=bool)
    first[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=first[1:])
    return first


def _pairs_within(xy: FloatArray, tol: float) -> tuple[IntArray, IntArray]:
    """All (i, j), i != j, with points xy[i] and xy[j] at most ``tol`` apart.

    A grid of ``tol`` cells, sorted keys and one searchsorted per neighbouring cell:
    a few times faster than an STRtree of points for the ~500,000 segment ends of a
    250,000-segment network (building an index is part of every start).
    """
    if xy.shape[0] == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    cell = np.floor((xy - xy.min(axis=0)) / tol).astype(np.int64) + 1
    span = np.int64(cell[:, 1].max() + 2)
    key = cell[:, 0] * span + cell[:, 1]
    order = np.argsort(key, kind="stable")
    skey = key[order]
    found_a, found_b = [], []
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            q = key + (dx * span + dy)
            lo = np.searchsorted(skey, q, side="left")
            n = np.searchsorted(skey, q, side="right") - lo
            if not n.any():
                continue
            i = np.repeat(np.arange(key.size), n)
            offs = np.arange(i.size) - np.repeat(np.cumsum(n) - n, n)
            j = order[np.repeat(lo, n) + offs]
            found_a.append(i)
            found_b.append(j)
    a = np.concatenate(found_a)
    b = np.concatenate(found_b)
    dd = xy[a] - xy[b]
    keep = (a != b) & (dd[:, 0] * dd[:, 0] + dd[:, 1] * dd[:, 1] <= tol * tol)
    return a[keep], b[keep]


def _heading_vectors(heading_deg: npt.ArrayLike | None, n: int) -> tuple[FloatArray, FloatArray]:
    """Unit vectors (east, north) of compass headings; NaN where unknown.

    math.sin/cos per element (not numpy's SIMD versions) so the scalar path,
    which uses math, gets identical bits.
    """
    hx = np.full(n, np.nan)
    hy = np.full(n, np.nan)
    if heading_deg is None:
        return hx, hy
    h = np.broadcast_to(np.asarray(heading_deg, dtype=np.float64), (n,))
    known = np.flatnonzero(np.isfinite(h))
    rad = (h[known] * _DEG).tolist()
    hx[known] = [math.sin(r) for r in rad]
    hy[known] = [math.cos(r) for r in rad]
    return hx, hy


class SegmentIndex:
    """Snapping over a fixed road network (WGS84 LineStrings or MultiLineStrings).

    A MultiLineString is one responsibility segment drawn as several lines, e.g. both
    carriageways of a dual carriageway (geo.segmentize pairs them): each part is
    matched on its own, chainage runs along the part that was hit, and the segment
    continues another one where any of its parts' ends touches one of the other's.
    """

    def __init__(
        self,
        lines: Sequence[Any] | GeomArray,
        *,
        roads: Sequence[str | None] | None = None,
        max_distance_m: float = 50.0,
        ambiguity_m: float = 5.0,
        default_accuracy_m: float = 10.0,
        min_confidence: float = 0.0,
        distance_only_min_confidence: float | None = None,
        heading_sigma_deg: float = 15.0,
        heading_floor: float = 0.01,
        prior_weight: float = 2.0,
        hint_weight: float = 4.0,
        group_by_road: bool = False,
    ) -> None:
        geoms = _geometry_array(lines, (_LINESTRING, _MULTILINESTRING), "segment")
        if geoms.size == 0:
            raise ValueError("a SegmentIndex needs at least one segment")
        if roads is not None and len(roads) != geoms.size:
            raise ValueError(f"roads has {len(roads)} names for {geoms.size} segments")
        for name, value in (
            ("max_distance_m", max_distance_m),
            ("ambiguity_m", ambiguity_m),
            ("default_accuracy_m", default_accuracy_m),
            ("min_confidence", min_confidence),
            ("heading_floor", heading_floor),
        ):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        for name, value in (
            ("heading_sigma_deg", heading_sigma_deg),
            ("prior_weight", prior_weight),
            ("hint_weight", hint_weight),
        ):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if distance_only_min_confidence is None:
            distance_only_min_confidence = min_confidence
        if not (math.isfinite(distance_only_min_confidence) and distance_only_min_confidence >= 0):
            raise ValueError(
                "distance_only_min_confidence must be a finite number >= 0, "
                f"got {distance_only_min_confidence!r}"
            )
        if min_confidence > 1 or heading_floor > 1 or distance_only_min_confidence > 1:
            raise ValueError(
                "min_confidence, distance_only_min_confidence and heading_floor must be <= 1"
            )
        self.max_distance_m = float(max_distance_m)
        self.ambiguity_m = float(ambiguity_m)
        self.default_accuracy_m = float(default_accuracy_m)
        self.min_confidence = float(min_confidence)
        self.distance_only_min_confidence = float(distance_only_min_confidence)
        self.prior_weight = float(prior_weight)
        self.hint_weight = float(hint_weight)
        self.group_by_road = bool(group_by_road)
        # Axial von Mises: exp(kappa (cos 2 delta - 1)) = exp(2 kappa (cos^2 delta - 1)),
        # with kappa = 1 / (4 sigma^2) so that small deltas fall off like N(0, sigma).
        sig = heading_sigma_deg * _DEG
        self._h2k = 2.0 * (1.0 / (4.0 * sig * sig))
        self._hfloor = float(heading_floor)
        self._hkeep = 1.0 - self._hfloor

        minx, miny, maxx, maxy = shapely.total_bounds(geoms)
        self.epsg = utm_epsg((minx + maxx) / 2.0, (miny + maxy) / 2.0)
        self.crs = pyproj.CRS.from_epsg(self.epsg)
        # Created once: building a Transformer costs milliseconds, calling it ~1 µs.
        self._to_xy = pyproj.Transformer.from_crs(4326, self.epsg, always_xy=True)
        self.geometries: GeomArray = shapely.transform(geoms, self._project_coords)
        self.lengths_m: FloatArray = shapely.length(self.geometries)
        self._road, self._road_code = _road_codes(roads, geoms.size)
        if bool((shapely.get_type_id(self.geometries) == _LINESTRING).all()):
            parts, part_seg = self.geometries, np.arange(geoms.size, dtype=np.int64)
        else:
            parts, part_seg = shapely.get_parts(self.geometries, return_index=True)
            part_seg = part_seg.astype(np.int64)
        xy, part = shapely.get_coordinates(parts, return_index=True)
        head = _first_of_runs(part)
        tail = np.append(head[1:], True)
        part_ends = np.stack([xy[head], xy[tail]], axis=1)  # (parts, start/end, xy)
        self._build_edges(xy, part, part_seg, self._joined_ends(part_ends, part_seg))
        self._build_ends(parts, part_seg, part_ends)
        # Python copy for the scalar live path (list indexing beats numpy there).
        # Endpoints stay numpy-only: nested lists would cost ~300 B a segment.
        self._road_list: list[int] = self._road.tolist()

    def _build_ends(self, parts: GeomArray, part_seg: IntArray, pe: FloatArray) -> None:
        """Segment endpoints (n, 2 x most parts, xy), for the "same road continuing" test;
        also the first part's ends and length (the stretch, for track matching)."""
        n = self.geometries.size
        starts = np.flatnonzero(_first_of_runs(part_seg))
        rank = np.arange(part_seg.size) - np.repeat(
            starts, np.diff(np.append(starts, part_seg.size))
        )
        most = int(rank.max()) + 1
        # Pad with the first part's ends: a repeated end changes no "touches" answer.
        ends = np.repeat(pe[starts][:, None], most, axis=1)  # (n, most, 2, xy)
        ends[part_seg, rank] = pe
        self._ends: FloatArray = ends.reshape(n, 2 * most, 2)
        self.stretch_ends: FloatArray = pe[starts]  # (n, 2, xy): first part's start, end
        self.stretch_m: FloatArray = (
            self.lengths_m if parts is self.geometries else shapely.length(parts[starts])
        )

    def _joined_ends(self, pe: FloatArray, part_seg: IntArray) -> FloatArray:
        """Per part: _JOIN_START / _JOIN_END bits where its end meets (within _JOIN_TOL_M)
        an end of another segment of the same (named) road -- the road goes on there."""
        ends = np.concatenate([pe[:, 0], pe[:, 1]])  # rows 0..p-1 starts, p..2p-1 ends
        p = part_seg.size
        a, b = _pairs_within(ends, _JOIN_TOL_M)
        sa, sb = part_seg[a % p], part_seg[b % p]
        road = self._road
        hit = (sa != sb) & (road[sa] == road[sb])
        touched = np.zeros(2 * p, dtype=bool)
        touched[a[hit]] = True
        return np.where(touched[:p], float(_JOIN_START), 0.0) + np.where(
            touched[p:], float(_JOIN_END), 0.0
        )

    def _build_edges(
        self, xy: FloatArray, part: IntArray, part_seg: IntArray, joined: FloatArray
    ) -> None:
        """Edge table and STRtree from the parts' coordinates (xy, part of each vertex)."""
        seg = part_seg[part]
        same = part[1:] == part[:-1]  # never an edge from one part's end to the next's start
        a, b, eseg = xy[:-1][same], xy[1:][same], seg[:-1][same]
        epart = part[:-1][same]
        d = b - a
        len2 = d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1]
        # Zero-length edges carry no bearing; keep one only for an all-degenerate segment.
        useful = len2 > 0
        has_useful = np.zeros(self.geometries.size, dtype=bool)
        has_useful[eseg[useful]] = True
        keep = useful | ~has_useful[eseg]
        keep &= _first_of_runs(eseg) | useful  # at most one degenerate edge per segment
        a, d, len2, eseg, epart = a[keep], d[keep], len2[keep], eseg[keep], epart[keep]
        elen = np.sqrt(len2)
        with np.errstate(invalid="ignore", divide="ignore"):
            ux = np.where(elen > 0, d[:, 0] / elen, 0.0)
            uy = np.where(elen > 0, d[:, 1] / elen, 0.0)
        # chainage at each edge's start: running length within its part (a part of a
        # dual carriageway is measured along itself, from its own first vertex)
        csum = np.cumsum(elen)
        starts = np.flatnonzero(_first_of_runs(epart))
        base = np.repeat(csum[starts] - elen[starts], np.diff(np.append(starts, epart.size)))
        cum = csum - elen - base
        # part length on every edge: the end of the part's last edge (so that, exactly,
        # cum + elen == plen on the last edge and < plen on every other)
        ends = np.append(starts[1:], epart.size) - 1
        plen = np.repeat((cum + elen)[ends], np.diff(np.append(starts, epart.size)))
        join = np.repeat(joined[epart[starts]], np.diff(np.append(starts, epart.size)))
        self._edges: FloatArray = np.column_stack(
            [a[:, 0], a[:, 1], d[:, 0], d[:, 1], len2, elen, cum, ux, uy, plen, join]
        )
        self._edge_seg: IntArray = eseg.astype(np.int64)
        self._tree = shapely.STRtree(shapely.linestrings(np.stack([a, a + d], axis=1)))
        # STRtree.query re-checks and broadcasts its arguments on every call (~3-4 µs,
        # a tenth of a live snap): the live path calls the C tree's dwithin directly
        # when this shapely has it (a private attribute, so checked here), else query.
        lib_tree = getattr(self._tree, "_tree", None)
        self._dwithin: Any = getattr(lib_tree, "dwithin", None)

    def __len__(self) -> int:
        return int(self.geometries.size)

    def _project_coords(self, c: FloatArray) -> FloatArray:
        x, y = self._to_xy.transform(c[:, 0], c[:, 1])
        return np.column_stack([x, y])

    def nearest_distance_many(self, lons: npt.ArrayLike, lats: npt.ArrayLike) -> FloatArray:
        """Metres from each WGS84 point to the nearest segment (inf for a bad point): one
        STRtree query for the batch."""
        c = np.column_stack([np.asarray(lons, dtype=float), np.asarray(lats, dtype=float)])
        out = np.full(c.shape[0], np.inf)
        if c.shape[0] == 0:
            return out
        xy = self._project_coords(c)
        ok = np.flatnonzero(np.isfinite(xy).all(axis=1))
        if ok.size == 0:
            return out
        (src, _), dist = self._tree.query_nearest(
            shapely.points(xy[ok]), return_distance=True, all_matches=False
        )
        out[ok[src]] = dist
        return out

    def distance_to(self, position: int, lon: float, lat: float) -> float:
        """Metres from a WGS84 point to segment ``position`` (inf for a bad point)."""
        x, y = self._to_xy.transform(lon, lat)
        if not (math.isfinite(x) and math.isfinite(y)):
            return math.inf
        return float(shapely.distance(self.geometries[position], shapely.Point(x, y)))

    def nearby(
        self, lon: float, lat: float, radius_m: float, limit: int = 10
    ) -> list[tuple[int, float]]:
        """Segments within ``radius_m`` of a WGS84 point, nearest first: (position, metres).

        For a pick-list when the fix is too poor to snap: no scoring, only distance.
        """
        x, y = self._to_xy.transform(lon, lat)
        if not (math.isfinite(x) and math.isfinite(y)) or not radius_m > 0:
            return []
        pt = shapely.Point(x, y)
        edges = self._tree.query(pt, predicate="dwithin", distance=radius_m)
        positions = np.unique(self._edge_seg[edges])
        dist = shapely.distance(self.geometries[positions], pt)
        order = np.argsort(dist, kind="stable")[:limit]
        return [(int(positions[i]), float(dist[i])) for i in order]

    def road_codes_of(self, names: str | Iterable[str] | None) -> frozenset[int]:
        """Internal road codes of the given names (unknown names are ignored)."""
        if not names:
            return frozenset()
        if isinstance(names, str):
            names = (names,)
        return frozenset(self._road_code[n] for n in names if n in self._road_code)

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
        out: BoolArray = (self._road[a] == self._road[b]) & (a != b)
        if self.group_by_road:
            return out
        sel = np.flatnonzero(out)
        if sel.size:
            ea = self._ends[a[sel]]  # (k, 2 ends, xy)
            eb = self._ends[b[sel]]
            touch = np.zeros(sel.size, dtype=bool)
            for i in range(ea.shape[1]):
                for j in range(eb.shape[1]):
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
        if self.group_by_road:
            return True
        ends_b = self._ends[b].tolist()
        for ax, ay in self._ends[a].tolist():
            for bx, by in ends_b:
                dx = ax - bx
                dy = ay - by
                if dx * dx + dy * dy <= _JOIN_TOL_M * _JOIN_TOL_M:
                    return True
        return False

    def _boost_mask(
        self, prior: Collection[int] | None, hint: frozenset[int]
    ) -> tuple[BoolArray | None, BoolArray | None]:
        pm = hm = None
        if prior:
            pm = np.zeros(self.geometries.size, dtype=bool)
            pm[np.fromiter(prior, dtype=np.int64)] = True
        if hint:
            hm = np.isin(self._road, np.fromiter(hint, dtype=np.int64))
        return pm, hm

    def _near_pairs(
        self, x: FloatArray, y: FloatArray, radius: FloatArray, which: IntArray | None = None
    ) -> tuple[IntArray, IntArray]:
        """(point, edge) pairs of the points ``which`` (all: None) and the edges whose
        envelope comes within the point's radius: every edge within the radius and a few
        more, which :meth:`_nearest_on_edges` drops. The tree's envelope query on each
        point's box, given as the box's diagonal: no geometry test per pair, and a two-point
        line is cheaper to make than a point plus a distance test (about 40 % of a batch's
        query time). Points without finite coordinates get none."""
        idx = np.arange(x.size) if which is None else which
        idx = idx[np.isfinite(x[idx]) & np.isfinite(y[idx])]
        px, py, r = x[idx], y[idx], radius[idx]
        corners = np.stack(
            [np.stack([px - r, py - r], axis=1), np.stack([px + r, py + r], axis=1)], axis=1
        )
        a, b = self._tree.query(shapely.linestrings(corners))
        return idx[a].astype(np.int64, copy=False), b.astype(np.int64, copy=False)

    def _nearest_on_edges(
        self, x: FloatArray, y: FloatArray, pi: IntArray, ei: IntArray, radius: FloatArray
    ) -> tuple[IntArray, IntArray, FloatArray, FloatArray, FloatArray]:
        """Distance from each point pi to the nearest spot on edge ei, that spot's position
        along the edge (0..1) and the unclamped projection (< 0 or > 1 off the edge's
        ends); only the pairs within the point's radius are kept."""
        e = self._edges[ei]
        ax, ay, dx, dy, len2 = e[:, _AX], e[:, _AY], e[:, _DX], e[:, _DY], e[:, _LEN2]
        wx = x[pi] - ax
        wy = y[pi] - ay
        raw = np.zeros(pi.size)
        pos = len2 > 0
        raw[pos] = (wx[pos] * dx[pos] + wy[pos] * dy[pos]) / len2[pos]
        t = np.minimum(np.maximum(raw, 0.0), 1.0)
        ex = x[pi] - (ax + t * dx)
        ey = y[pi] - (ay + t * dy)
        d = np.sqrt(ex * ex + ey * ey)
        keep = d <= radius[pi]
        return pi[keep], ei[keep], d[keep], t[keep], raw[keep]

    def _write_best(
        self,
        x: FloatArray,
        y: FloatArray,
        ph: IntArray,
        eb: IntArray,
        best_d: FloatArray,
        tb: FloatArray,
        conf: FloatArray,
        offset: int,
        out: SnapBatch,
    ) -> None:
        """Segment, distance, chainage, confidence and side of points ph (best edge eb)."""
        rows = ph + offset
        eh = self._edges[eb]
        out.index[rows] = self._edge_seg[eb]
        out.distance_m[rows] = best_d
        out.chainage_m[rows] = eh[:, _CUM] + tb * eh[:, _ELEN]
        out.confidence[rows] = conf
        cross = eh[:, _DX] * (y[ph] - eh[:, _AY]) - eh[:, _DY] * (x[ph] - eh[:, _AX])
        side = np.where(cross > 0, 1, -1).astype(np.int8)
        side[best_d <= _ON_LINE_M] = 0
        out.side[rows] = side

    def _score(
        self,
        x: FloatArray,
        y: FloatArray,
        radius: FloatArray,
        sigma: FloatArray,
        hx: FloatArray,
        hy: FloatArray,
        prior_mask: BoolArray | None,
        hint_mask: BoolArray | None,
        pi: IntArray,
        ei: IntArray,
        offset: int,
        out: SnapBatch,
    ) -> None:
        """Resolve candidate pairs (point pi, edge ei) into ``out[offset + pi]``."""
        pi, ei, d, t, raw = self._nearest_on_edges(x, y, pi, ei, radius)
        # Fast path: a point with a single candidate edge is certain (posterior 1), and
        # that is most points on most networks; only the rest need the sorting below.
        lone = np.bincount(pi, minlength=x.size)[pi] == 1
        if lone.any():
            lp, le = pi[lone], ei[lone]
            self._write_best(x, y, lp, le, d[lone], t[lone], np.ones(lp.size), offset, out)
            out.posterior[lp + offset] = 1.0
            many = ~lone
            pi, ei, d, t, raw = pi[many], ei[many], d[many], t[many], raw[many]
        if pi.size == 0:
            return
        si = self._edge_seg[ei]
        # One row per (point, segment), in (point, segment) order: its nearest edge (ties:
        # the lower edge). pi comes sorted from the tree, so a stable sort on one integer
        # key is nearly free; a lexsort on four keys was half the cost of scoring.
        key = pi * np.int64(self.geometries.size) + si
        order = np.argsort(key, kind="stable")
        pi, ei, d, t, si, raw = pi[order], ei[order], d[order], t[order], si[order], raw[order]
        key = key[order]
        run = _first_of_runs(key)
        if not run.all():
            starts = np.flatnonzero(run)
            size = np.diff(np.append(starts, key.size))
            nearest = d == np.repeat(np.minimum.reduceat(d, starts), size)
            low = np.where(nearest, ei, np.iinfo(np.int64).max)
            keep = nearest & (ei == np.repeat(np.minimum.reduceat(low, starts), size))
            pi, ei, d, t, si, raw = pi[keep], ei[keep], d[keep], t[keep], si[keep], raw[keep]
        # nearest distance per point (pi is sorted): shifts exp so it never underflows
        pstart = np.flatnonzero(_first_of_runs(pi))
        near = np.repeat(np.minimum.reduceat(d, pstart), np.diff(np.append(pstart, pi.size)))
        s = sigma[pi]
        e = self._edges[ei]
        # Off a part's end: the offset across the line and the overshoot along it.
        cum, elen, plen = e[:, _CUM], e[:, _ELEN], e[:, _PLEN]
        before = (raw < 0.0) & (cum == 0.0)
        after = (raw > 1.0) & (cum + elen >= plen)
        over = np.where(before, -raw * elen, np.where(after, (raw - 1.0) * elen, 0.0))
        along = np.where(before, -over, cum + t * elen + over)
        across2 = np.maximum(d * d - over * over, 0.0)
        jn = e[:, _JOIN]
        j1 = np.remainder(jn, 2.0) == 1.0
        j2 = jn >= 2.0
        s2 = 2.0 * s * s
        z = np.concatenate(
            [
                -(across2 - near * near) / s2,
                -_PHI_K * np.minimum(np.maximum(along / s, -_PHI_CLIP), _PHI_CLIP),
                -_PHI_K * np.minimum(np.maximum((plen - along) / s, -_PHI_CLIP), _PHI_CLIP),
                np.where((before & j1) | (after & j2), -(over * over) / s2, 0.0),
            ]
        )
        ez = np.exp(z)
        k = pi.size
        e0, e1, e2, g = ez[:k], ez[k : 2 * k], ez[2 * k : 3 * k], ez[3 * k :]
        w = e0 / ((1.0 + e1) * (1.0 + e2))
        # Ranking weight: at an end where the road goes on (a joined end) no step
        # fall-off, just the distance to that end, as if the line continued: else a
        # point near a joint would rank a crossing road above both halves of its own.
        wr = (e0 * g) / ((1.0 + np.where(j1, 0.0, e1)) * (1.0 + np.where(j2, 0.0, e2)))
        hxp, hyp = hx[pi], hy[pi]
        hknown = np.isfinite(hxp)
        boost = np.ones(pi.size)  # prior and hint factors: evidence where best and rival differ
        if hknown.any():
            c = hxp[hknown] * e[hknown, _UX] + hyp[hknown] * e[hknown, _UY]
            lh = self._hfloor + self._hkeep * np.exp(self._h2k * (c * c - 1.0))
            w[hknown] = w[hknown] * lh
            wr[hknown] = wr[hknown] * lh
        for mask, weight in ((prior_mask, self.prior_weight), (hint_mask, self.hint_weight)):
            if mask is not None:
                hit = mask[si]
                w[hit] = w[hit] * weight
                wr[hit] = wr[hit] * weight
                boost[hit] = boost[hit] * weight

        # Per point (rows in segment order): the best is the most probable by ranking
        # weight, then the nearest, then the lowest segment; the rival likewise among the
        # segments that are neither the best nor its continuation. No sort needed.
        first = _first_of_runs(pi)
        group = np.cumsum(first) - 1
        gstart = np.flatnonzero(first)
        gsize = np.diff(np.append(gstart, pi.size))

        def pick(mask: BoolArray) -> IntArray:
            wm = np.where(mask, wr, -np.inf)
            top = mask & (wm == np.repeat(np.maximum.reduceat(wm, gstart), gsize))
            dm = np.where(top, d, np.inf)
            top &= dm == np.repeat(np.minimum.reduceat(dm, gstart), gsize)
            idx = np.flatnonzero(top)
            return idx[_first_of_runs(group[idx])]  # the lowest segment: rows are in order

        bidx = pick(np.ones(pi.size, dtype=bool))  # one per point, in point order
        best, best_d = si[bidx], d[bidx]
        rival = ~self._continues(best[group], si)
        rival[bidx] = False
        ridx = pick(rival)
        rgroup = group[ridx]

        ngroups = gstart.size
        # sums in segment order: the scalar twin adds in the same order (identical bits)
        den = np.bincount(group, weights=w, minlength=ngroups)
        num = np.bincount(group, weights=np.where(rival, 0.0, w), minlength=ngroups)
        conf = num / den
        heads = bidx

        self._write_best(x, y, pi[heads], ei[heads], best_d, t[heads], conf, offset, out)
        out.posterior[pi[heads] + offset] = w[heads] / den
        rrows = pi[ridx] + offset
        out.runner_up[rrows] = si[ridx]
        out.runner_up_distance_m[rrows] = d[ridx]
        gap = d[ridx] - best_d[rgroup]
        ev = hknown[ridx] | (boost[ridx] != boost[heads[rgroup]])
        floor = np.where(ev, self.min_confidence, self.distance_only_min_confidence)
        out.ambiguous[rrows] = (conf[rgroup] < floor) | (~ev & (gap <= self.ambiguity_m))

    # --- public API -------------------------------------------------------------

    def snap(
        self,
        lon: float,
        lat: float,
        *,
        accuracy_m: float | None = None,
        heading_deg: float | None = None,
        max_distance_m: float | None = None,
        prior: Collection[int] | None = None,
        road_hint: str | Iterable[str] | None = None,
    ) -> Snap:
        """Snap one WGS84 point (the live path).

        ``heading_deg``: direction of travel, compass degrees (None/NaN: unknown,
        e.g. a phone at rest). ``prior``: positions of the reporter's own
        segments. ``road_hint``: road name(s) found in the report (see
        :func:`road_names_in`).

        A scalar twin of :meth:`_score`: numpy costs ~1 µs a call on tiny
        arrays, so the few candidates are handled in plain Python, with the same
        operations in the same order (and numpy's exp) so the result is
        bit-identical to :meth:`snap_many`.
        """
        limit = self.max_distance_m if max_distance_m is None else self._limit(max_distance_m)
        radius, sigma = self._radius_sigma_one(accuracy_m, limit)
        x, y = self._to_xy.transform(lon, lat)
        if not (math.isfinite(x) and math.isfinite(y)):
            return NO_SNAP
        point = shapely.points(np.array([[x, y]]))  # 1-element array: faster than Point
        if self._dwithin is not None:
            cand = self._dwithin(point, np.array([radius]))[1]
        else:
            cand = self._tree.query(point, predicate="dwithin", distance=radius)[1]
        if cand.size == 0:
            return NO_SNAP
        # segment -> (d, edge, t, unclamped t, row) of its nearest edge
        per_seg: dict[int, tuple[float, int, float, float, list[float]]] = {}
        for ei, s, row in zip(
            cand.tolist(), self._edge_seg[cand].tolist(), self._edges[cand].tolist(), strict=True
        ):
            ax, ay, dx, dy, len2 = row[0], row[1], row[2], row[3], row[4]
            wx = x - ax
            wy = y - ay
            raw = (wx * dx + wy * dy) / len2 if len2 > 0 else 0.0
            t = min(max(raw, 0.0), 1.0)
            ex = x - (ax + t * dx)
            ey = y - (ay + t * dy)
            d = math.sqrt(ex * ex + ey * ey)
            if d > radius:
                continue
            old = per_seg.get(s)
            if old is None or (d, ei) < (old[0], old[1]):
                per_seg[s] = (d, ei, t, raw, row)
        if not per_seg:
            return NO_SNAP
        if len(per_seg) == 1:  # one candidate segment: certain, whatever the weights
            ((s, (d, _, t, _, row)),) = per_seg.items()
            cross = row[_DX] * (y - row[_AY]) - row[_DY] * (x - row[_AX])
            side = None if d <= _ON_LINE_M else ("left" if cross > 0 else "right")
            chainage = row[_CUM] + t * row[_ELEN]
            return Snap(s, d, chainage, None, None, 1.0, False, side, 1.0, ((s, d, 1.0),))
        near = min(v[0] for v in per_seg.values())
        segs = sorted(per_seg)
        k = len(segs)
        z = [0.0] * (5 * k)
        s2 = 2.0 * sigma * sigma
        joins: list[tuple[bool, bool]] = []
        for j, s in enumerate(segs):  # spelt out like _score, for identical bits
            d, _, t, raw, row = per_seg[s]
            cum, elen, plen, jn = row[_CUM], row[_ELEN], row[_PLEN], row[_JOIN]
            j1, j2 = jn % 2.0 == 1.0, jn >= 2.0
            joins.append((j1, j2))
            before = raw < 0.0 and cum == 0.0
            after = raw > 1.0 and cum + elen >= plen
            over = -raw * elen if before else ((raw - 1.0) * elen if after else 0.0)
            along = -over if before else cum + t * elen + over
            across2 = max(d * d - over * over, 0.0)
            z[j] = -(across2 - near * near) / s2
            z[k + j] = -_PHI_K * min(max(along / sigma, -_PHI_CLIP), _PHI_CLIP)
            z[2 * k + j] = -_PHI_K * min(max((plen - along) / sigma, -_PHI_CLIP), _PHI_CLIP)
            if (before and j1) or (after and j2):
                z[3 * k + j] = -(over * over) / s2
        hknown = heading_deg is not None and math.isfinite(heading_deg)
        if hknown:
            assert heading_deg is not None
            rad = heading_deg * _DEG
            hx, hy = math.sin(rad), math.cos(rad)
            for j, s in enumerate(segs):
                row = per_seg[s][4]
                c = hx * row[_UX] + hy * row[_UY]
                z[4 * k + j] = self._h2k * (c * c - 1.0)
        else:
            del z[4 * k :]
        ez = np.exp(np.array(z)).tolist()
        pset = set(prior) if prior else None
        hint = self.road_codes_of(road_hint) if road_hint else None
        scored = []
        for j, s in enumerate(segs):
            e0, e1, e2, g = ez[j], ez[k + j], ez[2 * k + j], ez[3 * k + j]
            w = e0 / ((1.0 + e1) * (1.0 + e2))
            j1, j2 = joins[j]
            wr = (e0 * g) / ((1.0 + (0.0 if j1 else e1)) * (1.0 + (0.0 if j2 else e2)))
            if hknown:
                lh = self._hfloor + self._hkeep * ez[4 * k + j]
                w = w * lh
                wr = wr * lh
            boost = 1.0
            if pset is not None and s in pset:
                w = w * self.prior_weight
                wr = wr * self.prior_weight
                boost = boost * self.prior_weight
            if hint and self._road_list[s] in hint:
                w = w * self.hint_weight
                wr = wr * self.hint_weight
                boost = boost * self.hint_weight
            scored.append((-wr, per_seg[s][0], s, w, boost))
        weights = [item[3] for item in scored]  # in segment order, like _score's rows
        scored.sort()  # (-wr, d, s) is unique by s: w is never compared
        best = scored[0][2]
        best_d, _, best_t, _, brow = per_seg[best]
        den = num = 0.0
        own = {best}
        for s, w in zip(segs, weights, strict=True):
            den += w  # sequential in segment order, like np.bincount
            if s == best or self._continues_one(best, s):
                num += w
                own.add(s)
        runner = next((item for item in scored if item[2] not in own), None)
        conf = num / den
        chainage = brow[_CUM] + best_t * brow[_ELEN]
        cross = brow[_DX] * (y - brow[_AY]) - brow[_DY] * (x - brow[_AX])
        side = None if best_d <= _ON_LINE_M else ("left" if cross > 0 else "right")
        cands = tuple((s, dd, mw / den) for _, dd, s, mw, _ in scored[:_MAX_CANDIDATES])
        post = scored[0][3] / den
        if runner is None:
            return Snap(best, best_d, chainage, None, None, conf, False, side, post, cands)
        ru_d, ru = runner[1], runner[2]
        evidence = hknown or runner[4] != scored[0][4]
        floor = self.min_confidence if evidence else self.distance_only_min_confidence
        ambiguous = conf < floor or (not evidence and ru_d - best_d <= self.ambiguity_m)
        return Snap(best, best_d, chainage, ru, ru_d, conf, ambiguous, side, post, cands)

    def snap_many(
        self,
        lons: npt.ArrayLike,
        lats: npt.ArrayLike,
        *,
        accuracy_m: npt.ArrayLike | None = None,
        heading_deg: npt.ArrayLike | None = None,
        max_distance_m: float | None = None,
        prior: Collection[int] | None = None,
        road_hint: str | Iterable[str] | None = None,
    ) -> SnapBatch:
        """Snap many WGS84 points at once.

        ``accuracy_m`` and ``heading_deg`` may be scalar or per point (NaN:
        unknown); ``prior`` and ``road_hint`` apply to every point of the call.
        """
        lon, lat = _coords_1d(lons, lats)
        n = lon.size
        limit = self._limit(max_distance_m)
        radius, sigma = self._radius_sigma(accuracy_m, limit, n)
        hx, hy = _heading_vectors(heading_deg, n)
        pm, hm = self._boost_mask(prior, self.road_codes_of(road_hint))
        out = _empty_batch(n)
        # Chunks only bound memory (pairs can be many times the points on a
        # dense network); the work inside a chunk is fully vectorised.
        for start in range(0, n, _CHUNK):
            stop = min(start + _CHUNK, n)
            x, y = self._to_xy.transform(lon[start:stop], lat[start:stop])
            x = np.asarray(x, dtype=np.float64)
            y = np.asarray(y, dtype=np.float64)
            points = shapely.points(x, y)
            points[~(np.isfinite(x) & np.isfinite(y))] = None  # None never matches
            r = radius[start:stop]
            pi, ei = self._tree.query(points, predicate="dwithin", distance=r)
            self._score(
                x,
                y,
                r,
                sigma[start:stop],
                hx[start:stop],
                hy[start:stop],
                pm,
                hm,
                pi.astype(np.int64, copy=False),
                ei.astype(np.int64, copy=False),
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
        side=np.zeros(n, dtype=np.int8),
        posterior=np.zeros(n),
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
