"""Match a GPS track (a patrol) to the road network as a path, not point by point.

Hidden Markov model map matching after Newson & Krumm (2009), "Hidden Markov
map matching through noise and sparseness":

* States of point t: its candidate positions -- every segment within the
  search radius (at most :data:`MAX_CANDIDATES`, the nearest), each at the
  point's nearest position on it (distance, chainage). Candidates come from the
  :class:`~geo.snap.SegmentIndex`'s own STRtree of projected edges, with the
  same arithmetic as ``snap_many``; radius and sigma follow the same rules
  (``max_distance_m``, accuracy clamps).
* Emission: Gaussian on the point-to-segment distance,
  ``log p = -d^2 / (2 sigma^2)`` (sigma from the accuracy, floor 5 m, else the
  index's ``default_accuracy_m``, 10 m; ``sigma_m`` overrides).
* Transition: exponential on ``|route - straight|`` where ``straight`` is the
  distance between the two GPS points and ``route`` the shortest distance
  along the network between the two candidate positions, ``log p = -|route -
  straight| / beta``. A walker along one road has route ~ straight; jumping to
  a parallel road 15 m away costs the detour round the block, so a row of
  points is kept on its road even where single fixes lie nearer the other.
* Route distance: on the same segment ``|chainage difference|``; otherwise a
  Dijkstra over the segment graph (nodes: segment endpoints within 1 m of each
  other, undirected -- patrols walk both ways), bounded at ``3 * straight +
  200 m`` (and, with ``times``, at ``2 * straight + max_speed * dt + 50 m``);
  farther is "no route", a *jump* with a fixed cost (:data:`JUMP_COST`, and
  no transition costs more): a track whose fixes move to a road it cannot
  reach in time is broken there rather than forced onto one road. Node
  distances are cached for the call, and the graph is built once per index
  (module-level WeakKeyDictionary of :class:`TrackMatcher`).
* Viterbi in log space. A point with no candidate breaks the track (it gets
  ``segment=None``): each piece is matched on its own.
* Junction flicks: the model has no direction, so noisy fixes near a joint
  may step back and forth across it; short excursions (<= 3 sigma into a
  segment and back to the node they entered by) are reassigned to the
  neighbouring segments (:meth:`TrackMatcher._despike`).

Segments that touch only in the middle of another (a T without a vertex shared
at the ends) are not connected: the graph is built from endpoints, which holds
for networks split at crossings (the demo network and OSM imports).
"""

from __future__ import annotations

import datetime as dt
import heapq
import math
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import shapely

from geo.snap import _CUM, _ELEN, SegmentIndex

__all__ = [
    "DEFAULT_BETA_M",
    "JUMP_COST",
    "MAX_CANDIDATES",
    "TrackMatcher",
    "TrackStep",
    "covered_segments",
    "match_track",
    "matcher_for",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

MAX_CANDIDATES: Final = 8
DEFAULT_BETA_M: Final = 8.0  # walking; Newson & Krumm found ~5 m (beta ~ median |route - straight|)
DEFAULT_MAX_SPEED_MPS: Final = 30.0  # only used with times: ~108 km/h, any patrol vehicle
NODE_TOL_M: Final = 1.0  # segment endpoints this close are one graph node
ROUTE_FACTOR: Final = 3.0
ROUTE_SLACK_M: Final = 200.0
TIME_SLACK_M: Final = 50.0
# Log cost of a step with no route within the bound (a jump): the track is
# broken there rather than forced onto one road against its fixes.
JUMP_COST: Final = 25.0


@dataclass(frozen=True, slots=True)
class TrackStep:
    """Where point ``index`` of a track was matched; ``segment`` None: off the network."""

    index: int  # point number in the track
    segment: int | None  # position in the network (SegmentIndex order)
    distance_m: float | None  # point to segment
    chainage_m: float | None  # along the segment from its first vertex


class TrackMatcher:
    """The segment graph of one :class:`SegmentIndex`, for :meth:`match`.

    Built once per index (``match_track`` caches it); ~10 ms for 2,500 segments.
    """

    def __init__(self, index: SegmentIndex) -> None:
        self.index = index
        geoms = index.geometries
        n = geoms.size
        # The stretch of each segment (its first part: one carriageway of a paired
        # dual carriageway, whose other part runs alongside): rows 0..n-1 start
        # points, n..2n-1 end points.
        ends = np.concatenate([index.stretch_ends[:, 0], index.stretch_ends[:, 1]])
        pts = shapely.points(ends)
        a, b = shapely.STRtree(pts).query(pts, predicate="dwithin", distance=NODE_TOL_M)
        parent = list(range(2 * n))

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for i, j in zip(a.tolist(), b.tolist(), strict=True):
            ri, rj = find(i), find(j)
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
        roots = [find(i) for i in range(2 * n)]
        _, node = np.unique(np.asarray(roots), return_inverse=True)
        self.start_node: list[int] = node[:n].tolist()
        self.end_node: list[int] = node[n:].tolist()
        self.lengths: list[float] = index.stretch_m.tolist()
        self.node_count = int(node.max()) + 1 if n else 0
        adj: list[dict[int, float]] = [{} for _ in range(self.node_count)]
        for u, v, w in zip(self.start_node, self.end_node, self.lengths, strict=True):
            if u == v:
                continue  # a loop never shortens a route
            if w < adj[u].get(v, math.inf):
                adj[u][v] = w
                adj[v][u] = w
        self.adj: list[list[tuple[int, float]]] = [list(d.items()) for d in adj]

    # --- graph ------------------------------------------------------------------

    def _dijkstra(self, source: int, cutoff: float) -> dict[int, float]:
        """Shortest distances from ``source`` to every node within ``cutoff``."""
        dist = {source: 0.0}
        heap = [(0.0, source)]
        done: set[int] = set()
        adj = self.adj
        while heap:
            d, u = heapq.heappop(heap)
            if u in done:
                continue
            done.add(u)
            for v, w in adj[u]:
                nd = d + w
                if nd <= cutoff and nd < dist.get(v, math.inf):
                    dist[v] = nd
                    heapq.heappush(heap, (nd, v))
        return dist

    # --- candidates ---------------------------------------------------------------

    def _candidates(
        self,
        x: FloatArray,
        y: FloatArray,
        radius: FloatArray,
    ) -> tuple[IntArray, IntArray, FloatArray, FloatArray]:
        """(point, segment, distance, chainage) rows, by point then nearest, <= 8 a point."""
        idx = self.index
        points = shapely.points(x, y)
        points[~(np.isfinite(x) & np.isfinite(y))] = None  # None never matches
        pi, ei = idx._tree.query(points, predicate="dwithin", distance=radius)
        pi = pi.astype(np.int64, copy=False)
        ei = ei.astype(np.int64, copy=False)
        # Nearest position on each edge: the same arithmetic as snapping uses.
        pi, ei, d, t, _ = idx._nearest_on_edges(x, y, pi, ei, radius)
        si = idx._edge_seg[ei]
        chain = idx._edges[ei, _CUM] + t * idx._edges[ei, _ELEN]
        # One row per (point, segment): its nearest edge (ties: the lower edge).
        order = np.lexsort((ei, d, si, pi))
        pi, si, d, chain = pi[order], si[order], d[order], chain[order]
        first = _first_of_runs(pi * np.int64(idx.geometries.size) + si)
        pi, si, d, chain = pi[first], si[first], d[first], chain[first]
        # By point, nearest first (ties: lower segment); keep the first MAX_CANDIDATES.
        order = np.lexsort((si, d, pi))
        pi, si, d, chain = pi[order], si[order], d[order], chain[order]
        starts = np.flatnonzero(_first_of_runs(pi))
        rank = np.arange(pi.size) - np.repeat(starts, np.diff(np.append(starts, pi.size)))
        keep = rank < MAX_CANDIDATES
        return pi[keep], si[keep], d[keep], chain[keep]

    # --- matching -------------------------------------------------------------------

    def match(
        self,
        lons: npt.ArrayLike,
        lats: npt.ArrayLike,
        *,
        times: Sequence[float] | Sequence[dt.datetime] | npt.ArrayLike | None = None,
        accuracy_m: npt.ArrayLike | None = None,
        max_distance_m: float | None = None,
        sigma_m: float | None = None,
        beta_m: float | None = None,
        max_speed_mps: float = DEFAULT_MAX_SPEED_MPS,
    ) -> list[TrackStep]:
        """See :func:`match_track`."""
        idx = self.index
        lon = np.asarray(lons, dtype=np.float64)
        lat = np.asarray(lats, dtype=np.float64)
        if lon.ndim != 1 or lon.shape != lat.shape:
            raise ValueError("lons and lats must be 1-D arrays of the same length")
        n = lon.size
        if n == 0:
            return []
        beta = DEFAULT_BETA_M if beta_m is None else _positive("beta_m", beta_m)
        if not (math.isfinite(max_speed_mps) and max_speed_mps > 0):
            raise ValueError(f"max_speed_mps must be a finite number > 0, got {max_speed_mps!r}")
        secs = _seconds(times, n)
        limit = idx._limit(max_distance_m)
        radius, sigma = idx._radius_sigma(accuracy_m, limit, n)
        if sigma_m is not None:
            sigma = np.full(n, _positive("sigma_m", sigma_m))

        xs, ys = idx._to_xy.transform(lon, lat)
        x = np.asarray(xs, dtype=np.float64).reshape(n)
        y = np.asarray(ys, dtype=np.float64).reshape(n)
        pi, si, d, chain = self._candidates(x, y, radius)
        bounds = np.searchsorted(pi, np.arange(n + 1))
        # Per point: candidate segments, distances, chainages, log emissions.
        cand_s: list[list[int]] = []
        cand_d: list[list[float]] = []
        cand_c: list[list[float]] = []
        emis: list[FloatArray] = []
        for t in range(n):
            a, b = int(bounds[t]), int(bounds[t + 1])
            cand_s.append(si[a:b].tolist())
            cand_d.append(d[a:b].tolist())
            cand_c.append(chain[a:b].tolist())
            s2 = 2.0 * float(sigma[t]) ** 2
            emis.append(-(d[a:b] * d[a:b]) / s2)

        node_cache: dict[int, tuple[float, dict[int, float]]] = {}
        chosen: list[int] = [-1] * n  # candidate number per point, -1: none
        xl, yl = x.tolist(), y.tolist()

        score: FloatArray | None = None  # Viterbi log scores of the current piece
        back: list[IntArray] = []  # back pointers of the current piece (from its 2nd point)
        piece_start = 0

        def close(end: int) -> None:
            """Backtrack the piece piece_start..end (inclusive) into ``chosen``."""
            assert score is not None
            k = int(np.argmax(score))  # ties: the nearer candidate (rows are by distance)
            chosen[end] = k
            for t in range(end, piece_start, -1):
                k = int(back[t - piece_start - 1][k])
                chosen[t - 1] = k

        for t in range(n):
            if not cand_s[t]:
                if score is not None:
                    close(t - 1)
                score = None
                continue
            if score is None:
                score, back, piece_start = emis[t].copy(), [], t
                continue
            straight = math.hypot(xl[t] - xl[t - 1], yl[t] - yl[t - 1])
            bound = ROUTE_FACTOR * straight + ROUTE_SLACK_M
            if secs is not None:
                gap = secs[t] - secs[t - 1]
                bound = min(bound, 2.0 * straight + max_speed_mps * gap + TIME_SLACK_M)
            trans = self._transitions(
                cand_s[t - 1],
                cand_c[t - 1],
                cand_s[t],
                cand_c[t],
                straight,
                bound,
                beta,
                node_cache,
            )
            total = score[:, None] + trans
            best_prev = np.argmax(total, axis=0)
            new = total[best_prev, np.arange(total.shape[1])]
            new = new + emis[t]
            score = new - new.max()  # keeps the numbers small; argmax is unchanged
            back.append(best_prev.astype(np.int64))
        if score is not None:
            close(n - 1)
        self._despike(chosen, cand_s, cand_c, cand_d, sigma.tolist())

        steps: list[TrackStep] = []
        for t in range(n):
            k = chosen[t]
            if k < 0:
                steps.append(TrackStep(t, None, None, None))
            else:
                steps.append(TrackStep(t, cand_s[t][k], cand_d[t][k], cand_c[t][k]))
        return steps

    def _despike(
        self,
        chosen: list[int],
        cand_s: list[list[int]],
        cand_c: list[list[float]],
        cand_d: list[list[float]],
        sigma: list[float],
    ) -> None:
        """Remove short excursions at junctions (in place).

        The HMM has no notion of direction: with GPS noise larger than the
        sampling step, successive fixes near a joint fall on either side of it
        and the cheapest path steps back and forth (A A B B A B B). A run on
        segment X between runs on Y and Z (Y may be Z) that all meet at one
        node, and that never goes more than 3 sigma into X from that node, is
        a flick: its points go to Y then Z (the split with the least squared
        distance), provided Y and Z are candidates of every one of them. The
        shallowest excursion goes first, until none is left.
        """
        sn, en, lengths = self.start_node, self.end_node, self.lengths
        n = len(chosen)
        while True:
            # runs: (segment, first, last) of consecutive matched points
            runs: list[tuple[int, int, int]] = []
            for t in range(n):
                k = chosen[t]
                if k < 0:
                    continue
                s = cand_s[t][k]
                if runs and runs[-1][0] == s and runs[-1][2] == t - 1:
                    runs[-1] = (s, runs[-1][1], t)
                else:
                    runs.append((s, t, t))
            best: tuple[float, int] | None = None
            for r in range(1, len(runs) - 1):
                (ys, _, ylast), (xs, xfirst, xlast), (zs, zfirst, _) = runs[r - 1 : r + 2]
                if ylast != xfirst - 1 or zfirst != xlast + 1:
                    continue  # an off-network point breaks the track here
                nodes = {sn[xs], en[xs]} & {sn[ys], en[ys]} & {sn[zs], en[zs]}
                if not nodes:
                    continue
                depth = math.inf
                for node in nodes:
                    far = 0.0
                    for t in range(xfirst, xlast + 1):
                        c = cand_c[t][chosen[t]]
                        far = max(far, c if node == sn[xs] else lengths[xs] - c)
                    depth = min(depth, far)
                limit = 3.0 * max(sigma[xfirst : xlast + 1])
                if depth > limit:
                    continue
                if not all(ys in cand_s[t] and zs in cand_s[t] for t in range(xfirst, xlast + 1)):
                    continue
                if best is None or depth < best[0]:
                    best = (depth, r)
            if best is None:
                return
            _, xfirst, xlast = runs[best[1]]
            ys, zs = runs[best[1] - 1][0], runs[best[1] + 1][0]
            pts = range(xfirst, xlast + 1)
            ky = [cand_s[t].index(ys) for t in pts]
            kz = [cand_s[t].index(zs) for t in pts]
            dy = [cand_d[t][k] ** 2 for t, k in zip(pts, ky, strict=True)]
            dz = [cand_d[t][k] ** 2 for t, k in zip(pts, kz, strict=True)]
            # split m: the first m points to Y, the rest to Z (least squares)
            m_best, cost_best = 0, math.inf
            for m in range(len(pts) + 1):
                cost = sum(dy[:m]) + sum(dz[m:])
                if cost < cost_best:
                    m_best, cost_best = m, cost
            for i, t in enumerate(pts):
                chosen[t] = ky[i] if i < m_best else kz[i]

    def _transitions(
        self,
        prev_s: list[int],
        prev_c: list[float],
        cur_s: list[int],
        cur_c: list[float],
        straight: float,
        bound: float,
        beta: float,
        cache: dict[int, tuple[float, dict[int, float]]],
    ) -> FloatArray:
        """Log transition matrix (prev x cur); -JUMP_COST where no route within ``bound``."""
        out = np.full((len(prev_s), len(cur_s)), -JUMP_COST)
        lengths, sn, en = self.lengths, self.start_node, self.end_node
        cur_ends = [
            ((sn[s], c), (en[s], lengths[s] - c)) for s, c in zip(cur_s, cur_c, strict=True)
        ]
        for i, (s, c) in enumerate(zip(prev_s, prev_c, strict=True)):
            tables = []
            for node, off in ((sn[s], c), (en[s], lengths[s] - c)):
                if off > bound:
                    continue
                hit = cache.get(node)
                if hit is None or hit[0] < bound:
                    hit = (bound, self._dijkstra(node, bound))
                    cache[node] = hit
                tables.append((off, hit[1]))
            for j, (s2, c2) in enumerate(zip(cur_s, cur_c, strict=True)):
                route = abs(c - c2) if s2 == s else math.inf
                for off, dist in tables:
                    for node2, off2 in cur_ends[j]:
                        dn = dist.get(node2)
                        if dn is not None and off + dn + off2 < route:
                            route = off + dn + off2
                if route <= bound:
                    out[i, j] = max(-abs(route - straight) / beta, -JUMP_COST)
        return out


_MATCHERS: weakref.WeakKeyDictionary[SegmentIndex, TrackMatcher] = weakref.WeakKeyDictionary()


def matcher_for(index: SegmentIndex) -> TrackMatcher:
    """The cached :class:`TrackMatcher` of ``index`` (built on first use)."""
    m = _MATCHERS.get(index)
    if m is None:
        m = TrackMatcher(index)
        _MATCHERS[index] = m
    return m


def match_track(
    index: SegmentIndex,
    lons: npt.ArrayLike,
    lats: npt.ArrayLike,
    *,
    times: Sequence[float] | Sequence[dt.datetime] | npt.ArrayLike | None = None,
    accuracy_m: npt.ArrayLike | None = None,
    max_distance_m: float | None = None,
    sigma_m: float | None = None,
    beta_m: float | None = None,
    max_speed_mps: float = DEFAULT_MAX_SPEED_MPS,
) -> list[TrackStep]:
    """Match a track of WGS84 points (in the order walked) to a path on the network.

    One :class:`TrackStep` per point. ``times``: seconds or datetimes per point
    (non-decreasing); with them a step cannot need a route longer than
    ``max_speed_mps`` allows. ``accuracy_m``: scalar or per point (NaN: unknown);
    sets the search radius and sigma as in :meth:`SegmentIndex.snap_many`.
    ``max_distance_m``: the search limit (default: the index's). ``sigma_m``
    overrides the emission sigma for every point; ``beta_m`` is the transition
    scale (default :data:`DEFAULT_BETA_M`).
    """
    return matcher_for(index).match(
        lons,
        lats,
        times=times,
        accuracy_m=accuracy_m,
        max_distance_m=max_distance_m,
        sigma_m=sigma_m,
        beta_m=beta_m,
        max_speed_mps=max_speed_mps,
    )


def covered_segments(
    steps: Sequence[TrackStep],
    *,
    min_points: int = 2,
    min_length_m: float = 0.0,
    index: SegmentIndex | None = None,
) -> list[tuple[int, int, int]]:
    """Segments walked, in order: (segment position, first point index, last point index).

    Runs of consecutive points on one segment; a run of fewer than
    ``min_points`` points is a GPS flick and is dropped, then neighbouring runs
    of the same segment (split only by a flick or by off-network points) are
    merged. ``min_length_m``: the merged run must also span at least this much
    chainage; with ``index`` a segment shorter than twice that needs only half
    its length (a short segment walked end to end counts).
    """
    if min_points < 1:
        raise ValueError(f"min_points must be >= 1, got {min_points!r}")
    # raw runs: [segment, first, last, count, min chainage, max chainage]
    runs: list[list[Any]] = []
    prev: int | None = None
    for st in steps:
        if st.segment is None:
            prev = None
            continue
        c = st.chainage_m if st.chainage_m is not None else math.nan
        if st.segment == prev:
            r = runs[-1]
            r[2] = st.index
            r[3] += 1
            r[4] = min(r[4], c)
            r[5] = max(r[5], c)
        else:
            runs.append([st.segment, st.index, st.index, 1, c, c])
        prev = st.segment
    merged: list[list[Any]] = []
    for r in runs:
        if r[3] < min_points:
            continue
        if merged and merged[-1][0] == r[0]:
            m = merged[-1]
            m[2] = r[2]
            m[3] += r[3]
            m[4] = min(m[4], r[4])
            m[5] = max(m[5], r[5])
        else:
            merged.append(list(r))
    out = []
    for seg, first, last, _, lo, hi in merged:
        need = min_length_m
        if index is not None:
            need = min(need, 0.5 * float(index.stretch_m[seg]))
        if need > 0 and not (hi - lo >= need):
            continue
        out.append((int(seg), int(first), int(last)))
    return out


# --- helpers -------------------------------------------------------------------------


def _first_of_runs(keys: IntArray) -> npt.NDArray[np.bool_]:
    first = np.empty(keys.size, dtype=bool)
    first[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=first[1:])
    return first


def _positive(name: str, value: float) -> float:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _seconds(times: Any, n: int) -> list[float] | None:
    """Times as seconds (floats), checked: one per point, finite, non-decreasing."""
    if times is None:
        return None
    arr = np.asarray(times)
    if arr.ndim != 1 or arr.size != n:
        raise ValueError(f"times must have one value per point ({n}), got shape {arr.shape}")
    out: list[float]
    if np.issubdtype(arr.dtype, np.datetime64):
        secs = (arr - arr[0]) / np.timedelta64(1, "us") / 1e6
        out = np.asarray(secs, dtype=np.float64).tolist()
    elif arr.dtype == object:
        vals = arr.tolist()
        if all(isinstance(v, dt.datetime) for v in vals):
            t0 = vals[0]
            out = [(v - t0).total_seconds() for v in vals]
        else:
            out = np.asarray(vals, dtype=np.float64).tolist()
    else:
        out = arr.astype(np.float64).tolist()
    if not all(math.isfinite(v) for v in out):
        raise ValueError("times must be finite")
    if any(b < a for a, b in zip(out, out[1:], strict=False)):
        raise ValueError("times must be non-decreasing")
    return out
