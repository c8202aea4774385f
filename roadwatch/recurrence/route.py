"""The site-visit route (观摩): an ordered walk through chosen segments on the segment graph.

A stop is a segment's midpoint: the group walks to the middle of it and looks. Walking
distance between two stops is half of the first segment, the shortest path on the segment
graph (geo.match's graph: segment ends within 1 m are one node, undirected — a walk goes
both ways) between their nearest ends, and half of the second. The order is an open path:
nearest neighbour from every possible first stop (or from the given one), then 2-opt and
or-opt moves until none shortens it. `best_order` is the exact optimum (Held–Karp dynamic
programming: exhaustive over subsets) for the tests' comparison on small cases.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from geo.match import TrackMatcher

from .history import FloatArray

WALK_MPS = 1.2  # a group on foot, stopping to talk
DWELL_MIN = 10.0  # minutes spent at each stop


class Graph:
    """Shortest paths between segments, on the graph of one network's segment ends."""

    def __init__(self, matcher: TrackMatcher) -> None:
        self.start, self.end, self.length = matcher.start_node, matcher.end_node, matcher.lengths
        # Chord midpoints in the index's metric projection: the fallback where no path is.
        self.xy: FloatArray = matcher.index.stretch_ends.mean(axis=1)
        self.adj: list[list[tuple[int, float, int]]] = [[] for _ in range(matcher.node_count)]
        for seg, (u, v, w) in enumerate(zip(self.start, self.end, self.length, strict=True)):
            if u != v:
                self.adj[u].append((v, w, seg))
                self.adj[v].append((u, w, seg))

    def tree(
        self, source: int, targets: set[int] | None = None
    ) -> tuple[dict[int, float], dict[int, tuple[int, int]]]:
        """Dijkstra from a node: distances, and per node (previous node, segment walked);
        it stops once every node of `targets` is settled."""
        dist, prev = {source: 0.0}, {}
        heap = [(0.0, source)]
        left = set(targets) - {source} if targets is not None else None
        while heap:
            d, u = heapq.heappop(heap)
            if d > dist[u]:
                continue
            if left is not None:
                left.discard(u)
                if not left:
                    break
            for v, w, seg in self.adj[u]:
                nd = d + w
                if nd < dist.get(v, math.inf):
                    dist[v], prev[v] = nd, (u, seg)
                    heapq.heappush(heap, (nd, v))
        return dist, prev


@dataclass(frozen=True)
class Leg:
    src: int  # segment positions
    dst: int
    metres: float
    via: tuple[int, ...]  # segments walked between the two (not counting the stops' halves)
    on_network: bool  # False: no path on the graph; the straight line × 1.3 is assumed


@dataclass(frozen=True)
class Route:
    stops: tuple[int, ...]  # segment positions, in visiting order
    legs: tuple[Leg, ...]
    metres: float
    minutes: float  # walking plus DWELL_MIN at each stop


def distances(graph: Graph, stops: Sequence[int]) -> tuple[FloatArray, dict[tuple[int, int], Leg]]:
    """Stop-to-stop walking metres, and the leg behind each (by stop index pairs)."""
    n = len(stops)
    xy = graph.xy[list(stops)]
    matrix = np.zeros((n, n))
    legs: dict[tuple[int, int], Leg] = {}
    trees = {}
    ends = {node for s in stops for node in (graph.start[s], graph.end[s])}
    for node in ends:
        trees[node] = graph.tree(node, ends)
    for i, a in enumerate(stops):
        for j, b in enumerate(stops):
            if i == j:
                continue
            half = (graph.length[a] + graph.length[b]) / 2
            best, pick = math.inf, None
            for na in (graph.start[a], graph.end[a]):
                dist, _ = trees[na]
                for nb in (graph.start[b], graph.end[b]):
                    d = dist.get(nb, math.inf)
                    if d < best:
                        best, pick = d, (na, nb)
            if pick is None:
                far = 1.3 * float(np.hypot(*(xy[i] - xy[j])))
                legs[(i, j)] = Leg(a, b, far, (), False)
                matrix[i, j] = far
                continue
            via: list[int] = []
            node = pick[1]
            prev = trees[pick[0]][1]
            while node != pick[0]:
                node, seg = prev[node]
                via.append(seg)
            legs[(i, j)] = Leg(a, b, best + half, tuple(reversed(via)), True)
            matrix[i, j] = best + half
    return matrix, legs


def path_length(matrix: FloatArray, order: Sequence[int]) -> float:
    return float(sum(matrix[a, b] for a, b in itertools.pairwise(order)))


Rows = list[list[float]]


def _length(m: Rows, order: Sequence[int]) -> float:
    return sum(m[a][b] for a, b in itertools.pairwise(order))


def _improve(m: Rows, order: list[int], fixed_first: bool) -> list[int]:
    """2-opt (reverse a stretch) and or-opt (move a run of 1–3 stops) until neither helps.
    Walking distances are symmetric, so a reversal costs only its two changed joins."""
    n = len(order)
    lo = 1 if fixed_first else 0
    better = True
    while better:
        better = False
        for i in range(lo, n - 1):
            for j in range(i + 1, n):
                before = (m[order[i - 1]][order[i]] if i > 0 else 0.0) + (
                    m[order[j]][order[j + 1]] if j + 1 < n else 0.0
                )
                after = (m[order[i - 1]][order[j]] if i > 0 else 0.0) + (
                    m[order[i]][order[j + 1]] if j + 1 < n else 0.0
                )
                if after < before - 1e-9:
                    order = order[:i] + order[i : j + 1][::-1] + order[j + 1 :]
                    better = True
        best = _length(m, order)
        for size in (1, 2, 3):
            for i in range(lo, n - size + 1):
                run, rest = order[i : i + size], order[:i] + order[i + size :]
                for k in range(lo, len(rest) + 1):
                    cand = rest[:k] + run + rest[k:]
                    length = _length(m, cand)
                    if length < best - 1e-9:
                        order, best, better = cand, length, True
                        break
    return order


def tour_order(matrix: FloatArray, first: int | None = None) -> list[int]:
    """A short open path through every stop (indices into `matrix`)."""
    n = matrix.shape[0]
    if n <= 2:
        order = list(range(n))
        if first is not None and order:
            order.remove(first)
            order.insert(0, first)
        return order
    m: Rows = matrix.tolist()
    best: list[int] = []
    best_length = math.inf
    for start in [first] if first is not None else range(n):
        order, left = [start], set(range(n)) - {start}
        while left:
            here = order[-1]
            nxt = min(left, key=lambda j: (m[here][j], j))
            order.append(nxt)
            left.remove(nxt)
        order = _improve(m, order, first is not None)
        length = _length(m, order)
        if length < best_length:
            best, best_length = order, length
    return best


def best_order(matrix: FloatArray, first: int | None = None) -> list[int]:
    """The shortest open path, exactly (Held–Karp over subsets; up to ~12 stops)."""
    n = matrix.shape[0]
    if n <= 1:
        return list(range(n))
    cost: dict[tuple[int, int], tuple[float, int]] = {}
    for j in range(n):
        if first is None or j == first:
            cost[(1 << j, j)] = (0.0, -1)
    for mask in range(1, 1 << n):
        for j in range(n):
            entry = cost.get((mask, j))
            if entry is None:
                continue
            for k in range(n):
                if mask & (1 << k):
                    continue
                key = (mask | (1 << k), k)
                value = entry[0] + float(matrix[j, k])
                if value < cost.get(key, (math.inf, -1))[0]:
                    cost[key] = (value, j)
    full = (1 << n) - 1
    end = min(range(n), key=lambda j: cost.get((full, j), (math.inf, -1))[0])
    order, mask = [], full
    while end != -1:
        order.append(end)
        _, prev = cost[(mask, end)]
        mask &= ~(1 << end)
        end = prev
    return order[::-1]


def plan_route(
    graph: Graph,
    stops: Sequence[int],
    *,
    first: int | None = None,
) -> Route:
    """The route through `stops` (segment positions, duplicates dropped); `first` (a
    position among them) fixes where it starts."""
    unique = list(dict.fromkeys(stops))
    matrix, legs = distances(graph, unique)
    order = tour_order(matrix, unique.index(first) if first is not None else None)
    chosen = tuple(legs[(a, b)] for a, b in itertools.pairwise(order))
    metres = sum(leg.metres for leg in chosen)
    minutes = metres / WALK_MPS / 60 + DWELL_MIN * len(unique)
    return Route(tuple(unique[i] for i in order), chosen, round(metres, 1), round(minutes, 1))


def largest_component(graph: Graph) -> set[int]:
    """The nodes of the graph's largest connected part (dual carriageways and stubs that
    touch nothing at their ends form small islands of their own)."""
    seen: set[int] = set()
    best: set[int] = set()
    for root in range(len(graph.adj)):
        if root in seen:
            continue
        part, stack = {root}, [root]
        while stack:
            u = stack.pop()
            for v, _, _ in graph.adj[u]:
                if v not in part:
                    part.add(v)
                    stack.append(v)
        seen |= part
        if len(part) > len(best):
            best = part
    return best
