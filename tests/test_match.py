"""Tests for geo.match: a patrol track is matched as a path, not point by point.

Synthetic networks are laid out in metres of UTM zone 49N around 113.65E
34.75N (as in tests/test_snap.py), then converted to WGS84.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyproj
import pytest
import shapely
from shapely.geometry import LineString

from geo.match import JUMP_COST, TrackStep, covered_segments, match_track, matcher_for
from geo.network import load_network
from geo.snap import SegmentIndex

_TO_LL = pyproj.Transformer.from_crs(32649, 4326, always_xy=True)
_TO_XY = pyproj.Transformer.from_crs(4326, 32649, always_xy=True)
X0, Y0 = _TO_XY.transform(113.65, 34.75)
DEMO = Path(__file__).resolve().parent.parent / "geo" / "data" / "zhengzhou_demo.geojson.gz"

FloatArray = npt.NDArray[np.float64]


def ll(x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Metres east/north of the origin -> WGS84 lon/lat arrays."""
    lon, lat = _TO_LL.transform(X0 + np.asarray(x, float), Y0 + np.asarray(y, float))
    return np.asarray(lon, float), np.asarray(lat, float)


def line(*xy: tuple[float, float]) -> LineString:
    lon, lat = ll([p[0] for p in xy], [p[1] for p in xy])
    return LineString(np.column_stack([lon, lat]))


def noisy_walk(
    xs: FloatArray, ys: FloatArray, sigma: float, seed: int
) -> tuple[FloatArray, FloatArray]:
    rng = np.random.default_rng(seed)
    return ll(xs + rng.normal(0, sigma, xs.size), ys + rng.normal(0, sigma, xs.size))


FAR = [line((2000, 2000), (2500, 2000)), line((-2000, -1500), (-2000, -1000))]

# A (0..100) and B (100..200) are one road in two segments; D continues it to
# 300 m. C runs parallel 15 m north and joins the road only at x = 300 (via E).
A, B, D, C, E = 0, 1, 2, 3, 4
PARALLEL = [
    line((0, 0), (100, 0)),
    line((100, 0), (200, 0)),
    line((200, 0), (300, 0)),
    line((-50, 15), (250, 15)),
    line((250, 15), (300, 0)),
    *FAR,
]


def segs(steps: list[TrackStep]) -> list[int | None]:
    return [s.segment for s in steps]


# --- (a) two collinear segments with a parallel road 15 m away --------------------


def test_walk_along_two_segments_covers_exactly_those_two() -> None:
    index = SegmentIndex(PARALLEL)
    xs = np.arange(10.0, 191.0, 5.0)
    lon, lat = noisy_walk(xs, np.zeros_like(xs), 10.0, seed=7)

    # Point by point, the nearest segment is the parallel road C for some fixes ...
    nearest = index.snap_many(lon, lat).index
    assert (nearest == C).sum() >= 1
    # ... matched as a path, the walk stays on A then B.
    steps = match_track(index, lon, lat)
    assert [s.index for s in steps] == list(range(xs.size))
    assert C not in segs(steps)
    cov = covered_segments(steps)
    assert [c[0] for c in cov] == [A, B]
    assert cov[0][1] == 0 and cov[-1][2] == xs.size - 1
    assert cov[0][2] + 1 == cov[1][1]  # A's run ends where B's begins
    for s in steps:
        assert s.distance_m is not None and s.chainage_m is not None
        assert s.distance_m == pytest.approx(
            index.distance_to(s.segment, lon[s.index], lat[s.index])
        )


def test_parallel_road_walk_is_robust_over_seeds() -> None:
    index = SegmentIndex(PARALLEL)
    xs = np.arange(15.0, 186.0, 5.0)
    picked_c = 0
    for seed in range(40):
        lon, lat = noisy_walk(xs, np.zeros_like(xs), 10.0, seed)
        picked_c += int((index.snap_many(lon, lat).index == C).any())
        assert [c[0] for c in covered_segments(match_track(index, lon, lat))] == [A, B], seed
    assert picked_c == 40


def test_walk_on_the_parallel_road_stays_there() -> None:
    index = SegmentIndex(PARALLEL)
    xs = np.arange(10.0, 191.0, 5.0)
    lon, lat = noisy_walk(xs, np.full_like(xs, 15.0), 5.0, seed=3)
    assert set(segs(match_track(index, lon, lat))) == {C}


# --- (b) a turn at a junction ----------------------------------------------------------


def test_turn_at_a_junction_onto_the_crossing_road() -> None:
    W, EAST, S, N = 0, 1, 2, 3
    index = SegmentIndex(
        [
            line((-200, 0), (0, 0)),
            line((0, 0), (200, 0)),
            line((0, -200), (0, 0)),
            line((0, 200), (0, 0)),  # digitised towards the junction
            *FAR,
        ]
    )
    xs = np.concatenate([np.arange(-150.0, 0.0, 5.0), np.zeros(30)])
    ys = np.concatenate([np.zeros(30), np.arange(0.0, 150.0, 5.0)])
    for seed in range(10):
        lon, lat = noisy_walk(xs, ys, 6.0, seed)
        steps = match_track(index, lon, lat)
        assert [c[0] for c in covered_segments(steps)] == [W, N], seed
        assert EAST not in segs(steps) and S not in segs(steps)
    # chainage on N runs from its first vertex (200 m north) towards the junction
    last = steps[-1]
    assert last.segment == N and last.chainage_m is not None
    assert last.chainage_m == pytest.approx(200 - 145, abs=25)


# --- (c) a gap splits the track ------------------------------------------------------


def test_points_far_from_any_road_split_the_track() -> None:
    index = SegmentIndex(PARALLEL)
    xs = np.concatenate(
        [np.arange(10.0, 90.0, 5.0), np.full(5, 150.0), np.arange(110.0, 190.0, 5.0)]
    )
    ys = np.concatenate([np.zeros(16), np.full(5, 400.0), np.zeros(16)])
    lon, lat = noisy_walk(xs, ys, 3.0, seed=1)
    steps = match_track(index, lon, lat)
    assert segs(steps)[16:21] == [None] * 5
    assert all(s.distance_m is None and s.chainage_m is None for s in steps[16:21])
    assert set(segs(steps)[:16]) == {A}
    assert set(segs(steps)[21:]) == {B}
    assert covered_segments(steps) == [(A, 0, 15), (B, 21, 36)]


def test_unreachable_jump_splits_the_track_instead_of_forcing_a_path() -> None:
    # An isolated road 30 m north of A: no route joins them, so a walk that
    # jumps there is two pieces, each on its own road.
    index = SegmentIndex([line((0, 0), (200, 0)), line((0, 30), (200, 30)), *FAR])
    xs = np.arange(10.0, 190.0, 5.0)
    ys = np.where(xs < 100, 0.0, 30.0)
    lon, lat = noisy_walk(xs, ys, 2.0, seed=2)
    steps = match_track(index, lon, lat)
    half = int((xs < 100).sum())
    assert segs(steps) == [0] * half + [1] * (xs.size - half)


# --- (d) one point, (e) standing still ---------------------------------------------


def test_one_point_and_empty_track() -> None:
    index = SegmentIndex(PARALLEL)
    lon, lat = ll([50.0], [4.0])
    (step,) = match_track(index, lon, lat)
    snap = index.snap(float(lon[0]), float(lat[0]))
    assert (step.index, step.segment) == (0, A) == (0, snap.index)
    assert step.distance_m == pytest.approx(snap.distance_m)
    assert step.chainage_m == pytest.approx(snap.chainage_m)
    assert covered_segments([step]) == []  # one fix is not a walk
    assert covered_segments([step], min_points=1) == [(A, 0, 0)]
    assert match_track(index, [], []) == []
    far = ll([150.0], [400.0])
    assert match_track(index, *far) == [TrackStep(0, None, None, None)]


def test_standing_still() -> None:
    index = SegmentIndex(PARALLEL)
    lon, lat = ll(np.full(20, 60.0), np.full(20, 5.0))
    steps = match_track(index, lon, lat, times=np.arange(20.0))
    assert segs(steps) == [A] * 20
    assert len({(s.distance_m, s.chainage_m) for s in steps}) == 1
    assert covered_segments(steps) == [(A, 0, 19)]
    # standing exactly at the joint of A and B: one segment, not a flicker
    lon, lat = ll(np.full(20, 100.0), np.full(20, 3.0))
    assert len(set(segs(match_track(index, lon, lat)))) == 1


def test_duplicated_points_follow_their_neighbours() -> None:
    index = SegmentIndex(PARALLEL)
    xs = np.repeat(np.arange(10.0, 191.0, 10.0), 3)
    lon, lat = noisy_walk(xs, np.zeros_like(xs), 0.0, seed=0)
    steps = match_track(index, lon, lat)
    assert [c[0] for c in covered_segments(steps)] == [A, B]


# --- parameters ------------------------------------------------------------------------


def test_times_and_accuracy_are_accepted_and_checked() -> None:
    index = SegmentIndex(PARALLEL)
    xs = np.arange(10.0, 191.0, 5.0)
    lon, lat = noisy_walk(xs, np.zeros_like(xs), 5.0, seed=4)
    base = match_track(index, lon, lat)
    t0 = dt.datetime(2024, 5, 1, 8, 0, tzinfo=dt.UTC)
    when = [t0 + dt.timedelta(seconds=4 * i) for i in range(xs.size)]
    assert match_track(index, lon, lat, times=when) == base
    naive = np.array([w.replace(tzinfo=None) for w in when], dtype="datetime64[us]")
    assert match_track(index, lon, lat, times=naive) == base
    assert match_track(index, lon, lat, times=[4.0 * i for i in range(xs.size)]) == base
    assert segs(match_track(index, lon, lat, accuracy_m=5.0)) == segs(base)
    assert segs(match_track(index, lon, lat, accuracy_m=np.full(xs.size, 8.0))) == segs(base)
    with pytest.raises(ValueError, match="non-decreasing"):
        match_track(index, lon, lat, times=when[::-1])
    with pytest.raises(ValueError, match="one value per point"):
        match_track(index, lon, lat, times=[0.0])
    with pytest.raises(ValueError, match="beta_m"):
        match_track(index, lon, lat, beta_m=0)
    with pytest.raises(ValueError, match="sigma_m"):
        match_track(index, lon, lat, sigma_m=float("nan"))
    with pytest.raises(ValueError, match="1-D"):
        match_track(index, [lon], [lat])
    # a search limit below the offsets leaves nothing to match
    assert set(segs(match_track(index, *ll([50.0], [-20.0]), max_distance_m=10))) == {None}


def test_route_bound_and_jump_cost() -> None:
    # Two parallel roads 40 m apart, joined at x = 200: from x = 100 on one to
    # x = 100 on the other is a 240 m route for 40 m of straight line.
    index = SegmentIndex(
        [line((0, 0), (200, 0)), line((0, 40), (200, 40)), line((200, 0), (200, 40)), *FAR]
    )
    m = matcher_for(index)
    near = m._transitions([0], [100.0], [1, 0], [100.0, 100.0], 40.0, 1000.0, 20.0, {})
    np.testing.assert_allclose(near, [[-(240 - 40) / 20.0, -40 / 20.0]])
    # beyond the bound (what times at walking speed impose): a jump, JUMP_COST
    cut = m._transitions([0], [100.0], [1], [100.0], 40.0, 200.0, 20.0, {})
    assert cut[0, 0] == -JUMP_COST
    # and no route ever costs more than a jump
    far = m._transitions([0], [100.0], [1], [100.0], 40.0, 1000.0, 1.0, {})
    assert far[0, 0] == -JUMP_COST


def test_covered_segments_rules() -> None:
    def st(i: int, s: int | None, c: float = 0.0) -> TrackStep:
        return TrackStep(i, s, None if s is None else 1.0, None if s is None else c)

    steps = [st(0, 5), st(1, 5), st(2, 9), st(3, 5), st(4, 5), st(5, None)]
    steps += [st(6, 5), st(7, 5), st(8, 6), st(9, 6), st(10, 5)]
    # the one-point flicks (on 9, the last 5) and the off-network point do not count
    assert covered_segments(steps) == [(5, 0, 7), (6, 8, 9)]
    assert covered_segments(steps, min_points=1) == [
        (5, 0, 1),
        (9, 2, 2),
        (5, 3, 7),
        (6, 8, 9),
        (5, 10, 10),
    ]
    chained = [st(i, 1, 10.0 * i) for i in range(5)] + [st(5 + i, 2, i) for i in range(3)]
    assert covered_segments(chained, min_length_m=20) == [(1, 0, 4)]
    index = SegmentIndex(PARALLEL)  # segment 2 (D) is 100 m long: 20 m is enough
    assert covered_segments(chained, min_length_m=20, index=index) == [(1, 0, 4)]
    with pytest.raises(ValueError, match="min_points"):
        covered_segments(steps, min_points=0)


def test_graph_is_built_once_per_index() -> None:
    index = SegmentIndex(PARALLEL)
    assert matcher_for(index) is matcher_for(index)
    m = matcher_for(index)
    assert m.end_node[A] == m.start_node[B]  # joined at (100, 0)
    assert m.start_node[C] not in (m.start_node[A], m.end_node[A])  # 15 m is not a join


# --- (f) the demo network ---------------------------------------------------------------


def _chain(index: SegmentIndex, positions: list[int]) -> LineString:
    """The segments in order as one projected line (each oriented to follow on)."""
    parts: list[FloatArray] = []
    for k, i in enumerate(positions):
        c = shapely.get_coordinates(index.geometries[i])
        if k == 0:
            nxt = shapely.get_coordinates(index.geometries[positions[1]])
            if min(np.hypot(*(c[0] - nxt[0])), np.hypot(*(c[0] - nxt[-1]))) < 1.0:
                c = c[::-1]
        elif np.hypot(*(c[0] - parts[-1][-1])) > np.hypot(*(c[-1] - parts[-1][-1])):
            c = c[::-1]
        assert np.hypot(*(c[0] - parts[-1][-1])) < 1.0 if parts else True
        parts.append(c)
    return LineString(np.concatenate(parts))


def _road_chain(index: SegmentIndex, road_positions: list[int]) -> list[int]:
    """The segments of one road from one free end, following shared endpoints."""
    ends = {
        i: shapely.get_coordinates(shapely.get_point(index.geometries[[i, i]], [0, -1]))
        for i in road_positions
    }

    def touching(i: int, j: int) -> bool:
        return bool(np.min(np.hypot(*(ends[i][:, None, :] - ends[j][None, :, :]).T)) < 1.0)

    degree = {i: sum(touching(i, j) for j in road_positions if j != i) for i in road_positions}
    chain = [min(i for i in road_positions if degree[i] == 1)]
    while True:
        nxt = [j for j in road_positions if j not in chain and touching(chain[-1], j)]
        if len(nxt) != 1:
            return chain
        chain.append(nxt[0])


def test_demo_network_500_point_walk_along_five_segments() -> None:
    net = load_network(DEMO)
    index = SegmentIndex([s.geometry for s in net.segments], roads=[s.road for s in net.segments])
    assert len(index) == 2495
    road = "经南三路"  # a grid road of ~300 m blocks, joined end to end
    chain = _road_chain(index, [i for i, s in enumerate(net.segments) if s.road == road])
    assert len(chain) >= 6
    five = chain[1:6]
    path = _chain(index, five)
    rng = np.random.default_rng(11)
    xy = shapely.get_coordinates(
        shapely.line_interpolate_point(path, np.linspace(30.0, path.length - 30.0, 500))
    )
    xy = xy + rng.normal(0.0, 8.0, xy.shape)
    to_ll = pyproj.Transformer.from_crs(index.epsg, 4326, always_xy=True)
    lon, lat = to_ll.transform(xy[:, 0], xy[:, 1])

    t0 = time.perf_counter()
    matcher_for(index)
    t1 = time.perf_counter()
    steps = match_track(index, lon, lat)
    t2 = time.perf_counter()
    cov = covered_segments(steps)
    print(
        f"\ndemo network: graph {1000 * (t1 - t0):.1f} ms, "
        f"match 500 points {1000 * (t2 - t1):.1f} ms"
    )
    assert [c[0] for c in cov] == five
    assert [net.segments[c[0]].road for c in cov] == [road] * 5
    assert cov[0][1] == 0 and cov[-1][2] == 499
