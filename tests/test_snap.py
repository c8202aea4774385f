"""Tests for geo.snap on small synthetic networks near Zhengzhou (113.65E 34.75N).

Geometry is laid out in metres of UTM zone 49N (the zone SegmentIndex picks
for Zhengzhou) around an origin, then converted to WGS84; so expected
distances and chainages are exact grid metres.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pyproj
import pytest
import shapely
from shapely.geometry import LineString, MultiPolygon, Point, Polygon

import geo.snap
from geo.crs import utm_epsg
from geo.snap import NO_SNAP, AreaIndex, SegmentIndex, Snap, SnapBatch, road_names_in

_TO_LL = pyproj.Transformer.from_crs(32649, 4326, always_xy=True)
_TO_XY = pyproj.Transformer.from_crs(4326, 32649, always_xy=True)
X0, Y0 = _TO_XY.transform(113.65, 34.75)


def ll(x: float, y: float) -> tuple[float, float]:
    """Metres east/north of the origin -> WGS84 lon/lat."""
    lon, lat = _TO_LL.transform(X0 + x, Y0 + y)
    return float(lon), float(lat)


def line(*xy: tuple[float, float]) -> LineString:
    return LineString([ll(x, y) for x, y in xy])


def snap_at(
    index: SegmentIndex,
    x: float,
    y: float,
    accuracy_m: float | None = None,
    max_distance_m: float | None = None,
) -> Snap:
    return index.snap(*ll(x, y), accuracy_m=accuracy_m, max_distance_m=max_distance_m)


# Far-away roads so the network has some extent; they never interfere.
FAR = [line((2000, 2000), (2500, 2000)), line((-2000, -1500), (-2000, -1000))]


# --- basic snapping -------------------------------------------------------------


def test_utm_zone_for_zhengzhou() -> None:
    assert utm_epsg(113.65, 34.75) == 32649
    assert utm_epsg(-74.0, -40.0) == 32718


def test_utm_zone_at_the_antimeridian() -> None:
    """+180 is the east edge of zone 60, -180 the west edge of zone 1 (one definition)."""
    assert utm_epsg(180.0, 65.0) == 32660
    assert utm_epsg(179.99, -17.0) == 32760
    assert utm_epsg(-180.0, 65.0) == 32601
    assert utm_epsg(-179.99, 65.0) == 32601
    assert utm_epsg(174.0, 65.0) == 32660  # a zone's west edge belongs to it
    index = SegmentIndex([line((0, 0), (200, 0)), *FAR])
    assert index.epsg == 32649
    assert index.crs.to_epsg() == 32649
    assert len(index) == 3
    np.testing.assert_allclose(index.lengths_m, [200, 500, 500], atol=1e-6)


def test_point_3m_off_road_snaps_with_distance_and_chainage() -> None:
    index = SegmentIndex([*FAR, line((0, 0), (200, 0)), line((0, 100), (200, 100))])
    s = snap_at(index, 120, 3)
    assert s.index == 2
    assert s.distance_m == pytest.approx(3.0, abs=0.5)
    assert s.chainage_m == pytest.approx(120.0, abs=0.5)
    assert s.runner_up is None and s.runner_up_distance_m is None
    assert s.confidence == pytest.approx(1.0)
    assert s.ambiguous is False


def test_chainage_follows_vertices_from_the_start() -> None:
    # An L-shaped segment: 100 m east then north; the point is 40 m up the second leg.
    index = SegmentIndex([line((0, 0), (100, 0), (100, 100))])
    s = snap_at(index, 102, 40)
    assert s.index == 0
    assert s.distance_m == pytest.approx(2.0, abs=1e-3)
    assert s.chainage_m == pytest.approx(140.0, abs=1e-3)
    # reversed digitising direction -> chainage from the other end
    rev = SegmentIndex([line((100, 100), (100, 0), (0, 0))])
    assert snap_at(rev, 102, 40).chainage_m == pytest.approx(60.0, abs=1e-3)


def test_distance_is_close_to_ground_distance() -> None:
    # UTM grid metres vs geodesic metres: scale error here is ~0.03 %.
    index = SegmentIndex([line((0, 0), (0, 500))])
    lon, lat = ll(30, 250)
    s = index.snap(lon, lat)
    assert s.distance_m is not None
    on_road = ll(0, 250)
    _, _, ground = pyproj.Geod(ellps="WGS84").inv(lon, lat, *on_road)
    assert s.distance_m == pytest.approx(ground, rel=1e-3)


def test_point_80m_from_everything_is_not_snapped() -> None:
    index = SegmentIndex([line((0, 0), (200, 0)), *FAR])
    assert snap_at(index, 100, 80) == NO_SNAP
    assert snap_at(index, 100, 80).index is None
    assert snap_at(index, 100, 49).index == 0
    # only an explicit larger limit reaches it
    assert snap_at(index, 100, 80, max_distance_m=100).index == 0
    assert snap_at(index, 100, 80, accuracy_m=50).index is None


def test_constructor_limit() -> None:
    index = SegmentIndex([line((0, 0), (200, 0))], max_distance_m=20)
    assert snap_at(index, 100, 25).index is None
    assert snap_at(index, 100, 15).index == 0


def test_accuracy_sets_search_radius() -> None:
    index = SegmentIndex([line((0, 0), (200, 0))])
    # no accuracy: the 50 m limit
    assert snap_at(index, 100, 40).index == 0
    # accuracy 5 m -> radius clamp(10, 30, 100) = 30 m
    assert snap_at(index, 100, 40, accuracy_m=5).index is None
    assert snap_at(index, 100, 29, accuracy_m=5).index == 0
    # accuracy 25 m -> 50 m
    assert snap_at(index, 100, 45, accuracy_m=25).index == 0
    # accuracy 80 m -> 100 m, but capped by the 50 m limit unless raised explicitly
    assert snap_at(index, 100, 70, accuracy_m=80).index is None
    assert snap_at(index, 100, 70, accuracy_m=80, max_distance_m=150).index == 0
    assert snap_at(index, 100, 120, accuracy_m=80, max_distance_m=150).index is None
    # unknown accuracy (NaN, 0, negative) behaves like None
    for unknown in (math.nan, 0.0, -3.0):
        assert snap_at(index, 100, 40, accuracy_m=unknown).index == 0


def test_invalid_inputs() -> None:
    index = SegmentIndex([line((0, 0), (200, 0))])
    assert index.snap(math.nan, 34.75) == NO_SNAP
    assert index.snap(113.65, math.inf) == NO_SNAP
    with pytest.raises(ValueError, match="max_distance_m"):
        snap_at(index, 0, 0, max_distance_m=-1)
    with pytest.raises(ValueError, match="not a non-empty LineString"):
        SegmentIndex([line((0, 0), (1, 1)), Point(113.65, 34.75)])
    with pytest.raises(ValueError, match="not a non-empty LineString"):
        SegmentIndex([LineString()])
    with pytest.raises(ValueError, match="at least one segment"):
        SegmentIndex([])
    with pytest.raises(ValueError, match="roads has 1 names for 2 segments"):
        SegmentIndex([line((0, 0), (1, 1)), line((2, 2), (3, 3))], roads=["A"])
    with pytest.raises(ValueError, match="ambiguity_m"):
        SegmentIndex([line((0, 0), (1, 1))], ambiguity_m=math.nan)
    with pytest.raises(ValueError, match="1-D"):
        index.snap_many([[113.65]], [[34.75]])
    with pytest.raises(ValueError, match="1-D"):
        index.snap_many([113.65, 113.66], [34.75])


def test_accepts_numpy_array_and_tuple_of_lines() -> None:
    lines = (line((0, 0), (200, 0)), line((0, 50), (200, 50)))
    a = SegmentIndex(lines)
    b = SegmentIndex(np.array(lines, dtype=object))
    assert snap_at(a, 10, 20) == snap_at(b, 10, 20)


# --- ambiguity and confidence ---------------------------------------------------


def test_parallel_roads_6m_apart_are_ambiguous() -> None:
    index = SegmentIndex(
        [line((0, 0), (200, 0)), line((0, 6), (200, 6)), *FAR], roads=["North", "South", "x", "y"]
    )
    s = snap_at(index, 100, 2.5)
    assert s.ambiguous is True
    assert (s.index, s.runner_up) == (0, 1)
    assert s.distance_m == pytest.approx(2.5, abs=1e-3)
    assert s.runner_up_distance_m == pytest.approx(3.5, abs=1e-3)
    assert 0.5 < s.confidence < 0.6
    # exactly in the middle: 50/50, and the tie goes to the lower index
    mid = snap_at(index, 100, 3)
    assert mid.index == 0 and mid.runner_up == 1
    assert mid.confidence == pytest.approx(0.5, abs=1e-6)


def test_runner_up_beyond_ambiguity_is_reported_but_not_ambiguous() -> None:
    index = SegmentIndex([line((0, 0), (200, 0)), line((0, 20), (200, 20))])
    s = snap_at(index, 100, 4)
    assert (s.index, s.runner_up, s.ambiguous) == (0, 1, False)
    assert s.runner_up_distance_m == pytest.approx(16.0, abs=1e-3)
    assert 0.5 < s.confidence < 1.0


def test_sigma_follows_accuracy() -> None:
    index = SegmentIndex([line((0, 0), (200, 0)), line((0, 20), (200, 20))])
    sharp = snap_at(index, 100, 4, accuracy_m=3)  # sigma floor 5 m
    blurry = snap_at(index, 100, 4, accuracy_m=40)
    default = snap_at(index, 100, 4)  # default_accuracy_m = 10
    assert sharp.confidence > default.confidence > blurry.confidence
    # softmax of exp(-d^2 / 2 sigma^2) with sigma 10: d = 4 and 16
    w1, w2 = math.exp(-16 / 200), math.exp(-256 / 200)
    assert default.confidence == pytest.approx(w1 / (w1 + w2), rel=1e-6)


def test_continuation_of_same_road_is_not_ambiguous() -> None:
    # Road A in two segments meeting at (100, 0); the point is 2 m off the joint.
    lines = [line((0, 0), (100, 0)), line((100, 0), (200, 10))]
    named = SegmentIndex(lines, roads=["Road A", "Road A"])
    s = snap_at(named, 100, 2)
    assert s.index in (0, 1)
    assert s.ambiguous is False
    assert s.runner_up is None
    assert s.confidence == pytest.approx(1.0)
    # without names we cannot tell a continuation from a crossing road
    assert snap_at(SegmentIndex(lines), 100, 2).ambiguous is True
    # nor when the names differ
    assert snap_at(SegmentIndex(lines, roads=["A", "B"]), 100, 2).ambiguous is True


def test_continuation_does_not_hide_a_crossing_road() -> None:
    # A continues through the junction, B crosses 3 m further along.
    lines = [line((0, 0), (100, 0)), line((100, 0), (200, 0)), line((103, -50), (103, 50))]
    index = SegmentIndex(lines, roads=["A", "A", "B"])
    s = snap_at(index, 100, 1)
    assert s.index == 0
    assert s.runner_up == 2  # the continuation (segment 1) is skipped
    assert s.runner_up_distance_m == pytest.approx(3.0, abs=1e-3)
    assert s.ambiguous is True


def test_unnamed_segments_are_never_continuations() -> None:
    lines = [line((0, 0), (100, 0)), line((100, 0), (200, 10))]
    for names in (["", ""], [None, None]):
        s = snap_at(SegmentIndex(lines, roads=names), 100, 2)
        assert s.ambiguous is True and s.runner_up is not None


def test_distance_to_a_given_segment() -> None:
    index = SegmentIndex([line((0, 0), (200, 0)), line((0, 100), (200, 100))])
    assert index.distance_to(0, *ll(50, 30)) == pytest.approx(30.0, abs=1e-3)
    assert index.distance_to(1, *ll(50, 30)) == pytest.approx(70.0, abs=1e-3)
    assert index.distance_to(0, math.nan, 34.75) == math.inf


def test_same_road_not_touching_is_ambiguous() -> None:
    # dual carriageway digitised as two parallel lines with one name
    lines = [line((0, 0), (200, 0)), line((0, 4), (200, 4))]
    s = snap_at(SegmentIndex(lines, roads=["R", "R"]), 100, 2)
    assert s.ambiguous is True and s.runner_up is not None


def test_ambiguity_threshold_is_configurable() -> None:
    lines = [line((0, 0), (200, 0)), line((0, 20), (200, 20))]
    assert snap_at(SegmentIndex(lines, ambiguity_m=20), 100, 4).ambiguous is True
    assert snap_at(SegmentIndex(lines, ambiguity_m=5), 100, 4).ambiguous is False


# --- snap_many --------------------------------------------------------------------


def random_network(
    rng: np.random.Generator, n_roads: int, per_road: int = 4
) -> tuple[list[LineString], list[str]]:
    """Chains of connected segments (roads) over ~3 km around the origin."""
    lines: list[LineString] = []
    roads: list[str] = []
    for r in range(n_roads):
        x, y = rng.uniform(-1500, 1500, 2)
        heading = rng.uniform(0, 2 * math.pi)
        for _ in range(per_road):
            pts = [(x, y)]
            for _ in range(int(rng.integers(1, 4))):
                heading += rng.normal(0, 0.2)
                step = rng.uniform(30, 150)
                x, y = x + step * math.cos(heading), y + step * math.sin(heading)
                pts.append((x, y))
            lines.append(line(*pts))
            roads.append(f"road {r}")
            heading += rng.normal(0, 0.8)
    return lines, roads


def random_points(
    rng: np.random.Generator, lines: Sequence[LineString], n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Two thirds near roads (10 m noise), one third anywhere."""
    near = 2 * n // 3
    geoms = np.array(lines, dtype=object)[rng.integers(0, len(lines), near)]
    on = shapely.line_interpolate_point(geoms, rng.uniform(0, 1, near), normalized=True)
    x, y = _TO_XY.transform(shapely.get_x(on), shapely.get_y(on))
    x = np.concatenate([x + rng.normal(0, 10, near), X0 + rng.uniform(-1700, 1700, n - near)])
    y = np.concatenate([y + rng.normal(0, 10, near), Y0 + rng.uniform(-1700, 1700, n - near)])
    lon, lat = _TO_LL.transform(x, y)
    return np.asarray(lon), np.asarray(lat)


def assert_batch_equals_single(
    index: SegmentIndex,
    batch: SnapBatch,
    lon: np.ndarray,
    lat: np.ndarray,
    acc: np.ndarray | None = None,
    **kw: float,
) -> None:
    for i in range(lon.size):
        a = None if acc is None else float(acc[i])
        single = index.snap(float(lon[i]), float(lat[i]), accuracy_m=a, **kw)
        assert batch[i] == single, i  # exact, not approximate


def test_snap_many_agrees_exactly_with_snap() -> None:
    rng = np.random.default_rng(20240501)
    lines, roads = random_network(rng, 150)
    index = SegmentIndex(lines, roads=roads)
    lon, lat = random_points(rng, lines, 5000)
    batch = index.snap_many(lon, lat)
    assert len(batch) == 5000
    # the sample must exercise every branch
    assert (batch.index >= 0).sum() > 2500
    assert (batch.index < 0).sum() > 100
    assert (batch.runner_up >= 0).sum() > 100
    assert batch.ambiguous.sum() > 20
    assert_batch_equals_single(index, batch, lon, lat)


def test_snap_many_per_point_accuracy_agrees_with_snap() -> None:
    rng = np.random.default_rng(7)
    lines, roads = random_network(rng, 80)
    index = SegmentIndex(lines, roads=roads)
    lon, lat = random_points(rng, lines, 3000)
    acc = rng.choice([math.nan, 0.0, 3.0, 8.0, 15.0, 30.0, 70.0], lon.size)
    batch = index.snap_many(lon, lat, accuracy_m=acc, max_distance_m=80.0)
    assert_batch_equals_single(index, batch, lon, lat, acc, max_distance_m=80.0)
    # a scalar accuracy is broadcast
    b15 = index.snap_many(lon, lat, accuracy_m=15.0)
    assert_batch_equals_single(index, b15, lon, lat, np.full(lon.size, 15.0))


def test_snap_many_chunks_do_not_change_results(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(11)
    lines, roads = random_network(rng, 60)
    index = SegmentIndex(lines, roads=roads)
    lon, lat = random_points(rng, lines, 1000)
    whole = index.snap_many(lon, lat)
    monkeypatch.setattr(geo.snap, "_CHUNK", 37)
    chunked = index.snap_many(lon, lat)
    for field in SnapBatch.__slots__:
        np.testing.assert_array_equal(getattr(whole, field), getattr(chunked, field))


def test_snap_batch_conventions() -> None:
    index = SegmentIndex([line((0, 0), (200, 0)), line((0, 4), (200, 4))])
    pts = [ll(100, 1), ll(100, 500), (math.nan, 34.75)]
    lon, lat = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
    b = index.snap_many(lon, lat)
    assert b.index.dtype == np.int64 and b.runner_up.dtype == np.int64
    assert b.ambiguous.dtype == bool
    assert b.index.tolist() == [0, -1, -1]
    assert b.runner_up.tolist() == [1, -1, -1]
    assert np.isnan(b.distance_m[1:]).all() and np.isnan(b.chainage_m[1:]).all()
    assert np.isnan(b.runner_up_distance_m[1:]).all()
    assert b.confidence[1:].tolist() == [0.0, 0.0]
    assert b[1] == NO_SNAP and b[2] == NO_SNAP
    assert b[0] == index.snap(*pts[0])
    empty = index.snap_many(np.array([]), np.array([]))
    assert len(empty) == 0 and empty.index.dtype == np.int64


def test_scalar_and_array_projection_are_bit_identical() -> None:
    # snap == snap_many relies on this; pyproj is fast enough on scalars
    # (~1 µs) that no projection approximation is used.
    rng = np.random.default_rng(5)
    index = SegmentIndex([line((0, 0), (200, 0))])
    lon = rng.uniform(113.55, 113.80, 500)
    lat = rng.uniform(34.68, 34.85, 500)
    x, y = index._to_xy.transform(lon, lat)
    for i in range(lon.size):
        assert index._to_xy.transform(float(lon[i]), float(lat[i])) == (x[i], y[i])


# --- AreaIndex --------------------------------------------------------------------


def square(x0: float, y0: float, size: float) -> Polygon:
    return Polygon([ll(x0, y0), ll(x0 + size, y0), ll(x0 + size, y0 + size), ll(x0, y0 + size)])


@pytest.fixture
def districts() -> AreaIndex:
    west = square(0, 0, 1000)
    east = square(1000, 0, 1000)  # shares the border x = 1000 with west
    islands = MultiPolygon([square(3000, 0, 500), square(4000, 0, 500)])
    with_hole = Polygon(
        [ll(0, 2000), ll(1000, 2000), ll(1000, 3000), ll(0, 3000)],
        [[ll(400, 2400), ll(600, 2400), ll(600, 2600), ll(400, 2600)]],
    )
    return AreaIndex([west, east, islands, with_hole])


def test_area_inside_and_outside(districts: AreaIndex) -> None:
    assert len(districts) == 4
    assert districts.locate(*ll(500, 500)) == 0
    assert districts.locate(*ll(1500, 500)) == 1
    assert districts.locate(*ll(2500, 500)) is None
    assert districts.locate(*ll(-10, 500)) is None
    assert districts.locate(math.nan, 34.75) is None


def test_area_multipolygon_and_hole(districts: AreaIndex) -> None:
    assert districts.locate(*ll(3250, 250)) == 2
    assert districts.locate(*ll(4250, 250)) == 2
    assert districts.locate(*ll(3750, 250)) is None  # between the islands
    assert districts.locate(*ll(200, 2200)) == 3
    assert districts.locate(*ll(500, 2500)) is None  # in the hole


def test_area_border_goes_to_first_match() -> None:
    # A point exactly on a shared edge: build the squares from exact lon/lat.
    west = Polygon([(113.60, 34.70), (113.65, 34.70), (113.65, 34.75), (113.60, 34.75)])
    east = Polygon([(113.65, 34.70), (113.70, 34.70), (113.70, 34.75), (113.65, 34.75)])
    assert AreaIndex([west, east]).locate(113.65, 34.72) == 0
    assert AreaIndex([east, west]).locate(113.65, 34.72) == 0
    many = AreaIndex([east, west]).locate_many(np.array([113.65]), np.array([34.72]))
    assert many.tolist() == [0]


def test_locate_many_agrees_with_locate(districts: AreaIndex) -> None:
    rng = np.random.default_rng(3)
    pts = [ll(x, y) for x, y in rng.uniform(-500, 5000, (2000, 2))]
    lon = np.array([p[0] for p in pts] + [math.nan])
    lat = np.array([p[1] for p in pts] + [34.75])
    got = districts.locate_many(lon, lat)
    assert got.dtype == np.int64
    expected = [districts.locate(float(a), float(b)) for a, b in zip(lon, lat, strict=True)]
    assert got.tolist() == [-1 if e is None else e for e in expected]
    assert set(got.tolist()) == {-1, 0, 1, 2, 3}
    assert districts.locate_many(np.array([]), np.array([])).shape == (0,)


def test_area_index_rejects_non_polygons_and_leaves_input_unprepared() -> None:
    with pytest.raises(ValueError, match="not a non-empty Polygon or MultiPolygon"):
        AreaIndex([square(0, 0, 10), line((0, 0), (1, 1))])
    poly = square(0, 0, 10)
    AreaIndex([poly])
    assert not shapely.is_prepared(poly)


# --- v2: heading, side, candidates, prior, road hint ------------------------------


def test_heading_breaks_the_tie_between_a_road_and_a_slip_road() -> None:
    # A main road east-west and a slip road leaving it at 35 degrees; at x = 100 they
    # are 12 m apart and the point is midway (6 m from each).
    main = line((0, 0), (300, 0))
    k = math.tan(math.radians(35))
    slip = line((100 - 12 / k, 0), (200, (200 - 100 + 12 / k) * k))
    index = SegmentIndex([main, slip, *FAR], roads=["Main", "Slip", "x", "y"])
    lon, lat = ll(100, 6)
    d = index.snap(lon, lat)
    assert d.ambiguous is True  # distance alone: a coin toss
    east = index.snap(lon, lat, heading_deg=90.0)
    west = index.snap(lon, lat, heading_deg=270.0)  # undirected: the same road
    assert (east.index, east.ambiguous) == (0, False)
    assert (west.index, west.ambiguous) == (0, False)
    up = index.snap(lon, lat, heading_deg=90.0 - 35.0)  # compass bearing of the slip road
    assert (up.index, up.ambiguous) == (1, False)
    assert east.confidence > 0.85 and up.confidence > 0.85
    for h in (math.nan, None):  # a phone at rest
        assert index.snap(lon, lat, heading_deg=h) == d


def test_heading_cannot_separate_truly_parallel_roads() -> None:
    # Two parallel roads 12 m apart: an axial heading fits both equally; the
    # distance decides, and a point in the middle stays for review.
    index = SegmentIndex(
        [line((0, 0), (300, 0)), line((0, 12), (300, 12)), *FAR],
        roads=["A", "B", "x", "y"],
        min_confidence=0.8,
    )
    mid = index.snap(*ll(150, 6.5), heading_deg=90.0)
    assert mid.ambiguous is True
    near = index.snap(*ll(150, 1.0), heading_deg=92.0, accuracy_m=5.0)
    assert (near.index, near.ambiguous) == (0, False)


def test_side_of_the_road() -> None:
    index = SegmentIndex([line((0, 0), (200, 0))])  # digitised west -> east
    assert snap_at(index, 100, 3).side == "left"
    assert snap_at(index, 100, -3).side == "right"
    assert snap_at(index, 100, 0.2).side is None
    rev = SegmentIndex([line((200, 0), (0, 0))])
    assert snap_at(rev, 100, 3).side == "right"
    pts = [ll(100, 3), ll(100, -3), ll(100, 0.2), ll(100, 500)]
    b = index.snap_many(np.array([p[0] for p in pts]), np.array([p[1] for p in pts]))
    assert b.side.dtype == np.int8 and b.side.tolist() == [1, -1, 0, 0]


def test_candidates_and_posterior() -> None:
    index = SegmentIndex(
        [line((0, 0), (200, 0)), line((0, 6), (200, 6)), *FAR], roads=["N", "S", "x", "y"]
    )
    s = snap_at(index, 100, 2.5)
    assert [c[0] for c in s.candidates] == [0, 1]
    assert s.candidates[0][1] == pytest.approx(2.5, abs=1e-3)
    assert sum(c[2] for c in s.candidates) == pytest.approx(1.0)
    assert s.posterior == s.candidates[0][2] == pytest.approx(s.confidence)
    assert snap_at(index, 100, 500).candidates == ()


def test_road_hint_and_prior_break_near_ties_but_not_geometry() -> None:
    index = SegmentIndex(
        [line((0, 0), (200, 0)), line((0, 6), (200, 6)), *FAR], roads=["North", "South", "x", "y"]
    )
    lon, lat = ll(100, 2.5)  # nearer North, ambiguous on distance alone
    assert index.snap(lon, lat).ambiguous is True
    hinted = index.snap(lon, lat, road_hint="South")
    assert (hinted.index, hinted.ambiguous) == (1, False)
    assert index.snap(lon, lat, road_hint={"Nowhere"}) == index.snap(lon, lat)
    mine = index.snap(lon, lat, prior={1})
    assert mine.index == 1
    # bounded factors (x4, x2): they do not pull a point onto a road well beyond its error
    far = index.snap(*ll(100, -25), accuracy_m=5.0, road_hint="South", prior={1})
    assert (far.index, far.ambiguous) == (0, False)


def test_road_names_in() -> None:
    known = ["Mannerheimintie", "Aleksanterinkatu", "金水路", "金水东路", "Li", None]
    assert road_names_in("Kuoppa Mannerheimintiellä bussipysäkin kohdalla", known) == {
        "Mannerheimintie"
    }
    assert road_names_in("金水东路与花园路口有坑", known) == {"金水东路"}
    assert road_names_in("金水路和金水东路", known) == {"金水路", "金水东路"}
    assert road_names_in("li li", known) == set()  # too short to trust
    assert road_names_in(None, known) == set()


def test_snap_many_agrees_exactly_with_snap_with_heading_prior_and_hint() -> None:
    rng = np.random.default_rng(99)
    lines, roads = random_network(rng, 100)
    index = SegmentIndex(lines, roads=roads, min_confidence=0.8)
    lon, lat = random_points(rng, lines, 3000)
    heading = rng.uniform(0, 360, lon.size)
    heading[rng.uniform(0, 1, lon.size) < 0.2] = np.nan
    acc = rng.choice([math.nan, 5.0, 10.0, 20.0], lon.size)
    prior = set(rng.integers(0, len(lines), 40).tolist())
    batch = index.snap_many(
        lon, lat, accuracy_m=acc, heading_deg=heading, prior=prior, road_hint="road 3"
    )
    assert batch.ambiguous.sum() > 20
    for i in range(lon.size):
        single = index.snap(
            float(lon[i]),
            float(lat[i]),
            accuracy_m=float(acc[i]),
            heading_deg=float(heading[i]),
            prior=prior,
            road_hint="road 3",
        )
        assert batch[i] == single, i


# --- v3: dual carriageways, free ends, distance-only threshold ------------------------


def multi(*parts: Sequence[tuple[float, float]]) -> shapely.MultiLineString:
    return shapely.MultiLineString([[ll(x, y) for x, y in p] for p in parts])


def test_dual_carriageway_is_one_segment() -> None:
    # 金水路 as two carriageways 20 m apart (one MultiLineString), a side street beside.
    road = multi([(0, 10), (300, 10)], [(0, -10), (300, -10)])
    side = line((150, 40), (150, 200))
    index = SegmentIndex([road, side, *FAR], roads=["金水路", "经三路", "a", "b"])
    for y in (12.0, -12.0, 0.5):  # on either carriageway, or between them
        s = snap_at(index, 100, y, accuracy_m=8.0)
        assert s.index == 0 and s.runner_up is None and not s.ambiguous, y
    s = snap_at(index, 100, -13)
    assert s.distance_m == pytest.approx(3.0, abs=0.5)
    assert s.chainage_m == pytest.approx(100.0, abs=0.5)  # along the carriageway it is on
    # No edge joins one part's end to the next part's start: (300, 10) -> (0, -10).
    assert snap_at(index, 150, 0).distance_m == pytest.approx(10.0, abs=0.5)
    assert index.stretch_m[0] == pytest.approx(300.0, abs=0.5)
    assert index.lengths_m[0] == pytest.approx(600.0, abs=0.5)
    rng = np.random.default_rng(3)
    lon, lat = zip(*(ll(x, y) for x, y in rng.uniform(-20, 320, (400, 2))), strict=True)
    lon_a, lat_a = np.array(lon), np.array(lat)
    assert_batch_equals_single(index, index.snap_many(lon_a, lat_a), lon_a, lat_a)


def test_dual_carriageway_continues_the_next_stretch() -> None:
    a = multi([(0, 10), (200, 10)], [(0, -10), (200, -10)])
    b = multi([(200, 10), (400, 10)], [(200, -10), (400, -10)])
    index = SegmentIndex([a, b, *FAR], roads=["金水路", "金水路", "a", "b"])
    s = snap_at(index, 199, -10.5)
    assert s.index in (0, 1) and s.runner_up is None and s.confidence == pytest.approx(1.0)


def test_past_a_dead_end_a_road_alongside_is_more_likely() -> None:
    # A stops at x=100; B runs on 12 m south. A point 8 m past A's end is nearer A's end
    # (8 m) than B (12 m), but a report there comes from B far more often than from
    # beyond the end of A: the likelihood of a line falls off past its free ends.
    a = line((0, 0), (100, 0))
    b = line((0, -12), (300, -12))
    index = SegmentIndex([a, b, *FAR], roads=["A", "B", "a", "b"])
    s = snap_at(index, 108, 0, accuracy_m=10.0)
    assert s.index == 1 and s.runner_up == 0
    # Inside A the nearer road still wins.
    assert snap_at(index, 60, -2, accuracy_m=10.0).index == 0


def test_distance_only_threshold() -> None:
    lines = [line((0, 0), (300, 0)), line((0, 30), (300, 30)), *FAR]
    loose = SegmentIndex(lines, roads=["A", "B", "a", "b"], min_confidence=0.8, ambiguity_m=0.0)
    strict = SegmentIndex(
        lines,
        roads=["A", "B", "a", "b"],
        min_confidence=0.8,
        distance_only_min_confidence=0.99,
        ambiguity_m=0.0,
    )
    s = snap_at(loose, 150, 10, accuracy_m=10.0)
    assert s.index == 0 and 0.8 < s.confidence < 0.99 and not s.ambiguous
    assert snap_at(strict, 150, 10, accuracy_m=10.0).ambiguous
    # With a heading (evidence beyond distance) the ordinary threshold applies.
    h = strict.snap(*ll(150, 10), accuracy_m=10.0, heading_deg=90.0)
    assert h.index == 0 and not h.ambiguous
    # A prior that covers both candidates tells them apart no better than distance.
    both = strict.snap(*ll(150, 10), accuracy_m=10.0, prior={0, 1})
    assert both.ambiguous
    with pytest.raises(ValueError, match="distance_only_min_confidence"):
        SegmentIndex(lines, distance_only_min_confidence=1.5)


def test_pairs_within_matches_an_strtree() -> None:
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 50, (3000, 2))
    xy[1000:1100] = xy[:100] + rng.normal(0, 0.2, (100, 2))
    a, b = geo.snap._pairs_within(xy, 0.5)
    pts = shapely.points(xy)
    ta, tb = shapely.STRtree(pts).query(pts, predicate="dwithin", distance=0.5)
    other = ta != tb
    assert sorted(zip(a.tolist(), b.tolist(), strict=True)) == sorted(
        zip(ta[other].tolist(), tb[other].tolist(), strict=True)
    )
    assert a.size > 150
    empty = geo.snap._pairs_within(np.zeros((0, 2)), 0.5)
    assert empty[0].size == 0


def test_live_path_without_the_direct_tree_call_gives_the_same_snaps() -> None:
    rng = np.random.default_rng(5)
    lines, roads = random_network(rng, 60)
    index = SegmentIndex(lines, roads=roads)
    lon, lat = random_points(rng, lines, 500)
    assert index._dwithin is not None  # this shapely has it: the fast path is tested
    fast = [index.snap(float(a), float(b), accuracy_m=12.0) for a, b in zip(lon, lat, strict=True)]
    index._dwithin = None
    slow = [index.snap(float(a), float(b), accuracy_m=12.0) for a, b in zip(lon, lat, strict=True)]
    assert fast == slow
    assert sum(s.index is not None for s in fast) > 200
