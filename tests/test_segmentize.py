"""geo.segmentize: OpenStreetMap ways cut into named responsibility segments with stable ids."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from shapely.geometry import LineString

from geo.importer import DEFAULT_DRIVABLE
from geo.network import Network, load_network, save_network
from geo.segmentize import network_from_osm, segmentize

DATA = Path(__file__).parent / "data"
# The Helsinki centre extract when a sibling task has added it, else the pyrosm one (ODbL).
HELSINKI = DATA / "helsinki_centre_osm_roads.geojson"
ROADS = HELSINKI if HELSINKI.exists() else DATA / "pyrosm_test_osm_roads.geojson"


def _ways() -> gpd.GeoDataFrame:
    ways = gpd.read_file(ROADS)
    return ways[ways["highway"].isin(DEFAULT_DRIVABLE) & ways["name"].notna()]


def _net(segments: list) -> Network:  # type: ignore[type-arg]
    return Network(
        name="t", districts=(), subdistricts=(), segments=tuple(segments), people=(), assignments=()
    )


def _grid() -> gpd.GeoDataFrame:
    """A main road crossed by three side streets in Zhengzhou (lon/lat), ~100 m apart."""
    lon0, lat0, dlon = 113.60, 34.75, 0.0011  # ~100 m
    main = LineString([(lon0, lat0), (lon0 + 6 * dlon, lat0)])
    sides = [
        LineString([(lon0 + k * dlon, lat0 - 0.001), (lon0 + k * dlon, lat0 + 0.001)])
        for k in (1, 2, 5)
    ]
    return gpd.GeoDataFrame(
        {
            "name": ["航海路", "二十一大街", "二十二大街", "二十三大街"],
            "highway": ["primary", "residential", "residential", "residential"],
        },
        geometry=[main, *sides],
        crs="EPSG:4326",
    )


def test_chinese_road_is_cut_at_crossings_and_named() -> None:
    segs = segmentize(_grid(), min_length_m=50.0)
    main = [s for s in segs if s.road == "航海路"]
    assert [s.name for s in main] == [
        "航海路（尽头至二十一大街）",
        "航海路（二十一大街至二十二大街）",
        "航海路（二十二大街至二十三大街）",
        "航海路（二十三大街至尽头）",
    ]
    assert [s.road_class for s in main] == ["arterial"] * 4
    assert [s.id for s in segs] == [f"SEG-{n:05d}" for n in range(1, len(segs) + 1)]
    assert sum(s.length_m for s in main) == pytest.approx(604.0, abs=3.0)
    # Pieces of one road join end to end.
    for a, b in zip(main, main[1:], strict=False):
        assert shapely.get_coordinates(a.geometry)[-1] == pytest.approx(
            shapely.get_coordinates(b.geometry)[0]
        )


def test_short_pieces_merge_into_their_neighbour() -> None:
    segs = segmentize(_grid(), min_length_m=150.0)
    main = [s.name for s in segs if s.road == "航海路"]
    assert main == [
        "航海路（尽头至二十二大街）",  # 100 m + 100 m
        "航海路（二十二大街至尽头）",  # 300 m + 100 m: the last piece had only one neighbour
    ]


def test_target_count_is_reached_exactly() -> None:
    ways = _ways()
    base = segmentize(ways)
    for target in (len(base) - 40, len(base) + 25):
        segs = segmentize(ways, target_count=target)
        assert len(segs) == target
        assert len({s.id for s in segs}) == target
    up = segmentize(ways, target_count=len(base) + 1)
    assert any("（midpoint至" in s.name or "至midpoint）" in s.name for s in up)


def test_osm_extract_is_segmented_deterministically() -> None:
    ways = _ways()
    segs = segmentize(ways)
    again = segmentize(ways.iloc[::-1])  # input order does not matter
    assert [(s.id, s.name, s.geometry.wkb) for s in segs] == [
        (s.id, s.name, s.geometry.wkb) for s in again
    ]
    assert len(segs) > 100
    for s in segs:
        assert s.name == f"{s.road}（{s.from_road}至{s.to_road}）"
        assert s.length_m > 0
        # One line, or the two carriageways of a dual carriageway.
        assert shapely.get_num_geometries(s.geometry) == (
            2 if s.geometry.geom_type == "MultiLineString" else 1
        )
        assert s.district == "ALL"
    # Non-Chinese names keep the full-width pattern, with "end" at a dead end.
    assert any(s.from_road == "end" or s.to_road == "end" for s in segs)
    # Most pieces of roads with several pieces are at least min_length_m long.
    multi = Counter(s.road for s in segs)
    long_ones = [s.length_m >= 80.0 for s in segs if multi[s.road] > 1]
    assert sum(long_ones) / len(long_ones) > 0.8


def test_ids_are_stable_across_reimport() -> None:
    ways = _ways()
    first = segmentize(ways)
    moved = ways.to_crs(ways.estimate_utm_crs())
    moved["geometry"] = moved.translate(2.0, 0.0)  # 2 m east: a resurvey, not a new road
    second = segmentize(moved.to_crs(4326), previous=_net(first))
    assert [s.id for s in second] == [s.id for s in first]
    assert [s.name for s in second] == [s.name for s in first]

    # A removed road: its ids are not reused; every new id is after the old maximum.
    gone = sorted({s.road for s in first})[len({s.road for s in first}) // 2]
    third = segmentize(ways[ways["name"] != gone], previous=_net(first))
    old_ids = {s.id for s in first}
    gone_ids = {s.id for s in first if s.road == gone}
    assert gone_ids and not gone_ids & {s.id for s in third}
    fresh = [s.id for s in third if s.id not in old_ids]
    assert all(int(i.split("-")[1]) > len(first) for i in fresh)
    kept = [s for s in third if s.id in old_ids]
    assert len(kept) >= len(third) - 4 * len(gone_ids) - 4  # only neighbours are re-cut
    by_id = {s.id: s for s in first}
    assert all(by_id[s.id].road == s.road for s in kept)


def test_district_callback() -> None:
    segs = segmentize(_grid(), district_of=lambda line: ("JS", "JS-01"))
    assert {(s.district, s.subdistrict) for s in segs} == {("JS", "JS-01")}


def test_network_from_osm_pbf(tmp_path: Path) -> None:
    net = network_from_osm(DATA / "test.osm.pbf", id_prefix="FI", min_length_m=60.0)
    assert net.name == "test"
    assert len(net.segments) > 100
    assert all(s.id.startswith("FI-") for s in net.segments)
    assert [d.code for d in net.districts] == ["ALL"]
    area = net.districts[0].geometry
    assert all(area.covers(s.geometry) for s in net.segments)
    save_network(net, tmp_path / "osm.json")
    back = load_network(tmp_path / "osm.json")
    assert [s.name for s in back.segments] == [s.name for s in net.segments]
    again = network_from_osm(
        DATA / "test.osm.pbf", id_prefix="FI", min_length_m=60.0, previous=back
    )
    assert [s.id for s in again.segments] == [s.id for s in net.segments]


def test_no_named_ways() -> None:
    empty = gpd.GeoDataFrame({"name": [None]}, geometry=[LineString([(0, 0), (1, 1)])], crs=4326)
    assert segmentize(empty) == []


def _dual() -> gpd.GeoDataFrame:
    """A boulevard as two one-way carriageways 24 m apart, crossed by two side streets."""
    lon0, lat0, dlon, dlat = 113.60, 34.75, 0.0011, 0.000108  # ~100 m, ~12 m
    north = LineString([(lon0, lat0 + dlat), (lon0 + 4 * dlon, lat0 + dlat)])
    south = LineString([(lon0 + 4 * dlon, lat0 - dlat), (lon0, lat0 - dlat)])  # other way
    sides = [
        LineString([(lon0 + k * dlon, lat0 - 0.001), (lon0 + k * dlon, lat0 + 0.001)])
        for k in (1, 3)
    ]
    return gpd.GeoDataFrame(
        {
            "name": ["金水路", "金水路", "花园路", "经三路"],
            "highway": ["primary", "primary", "primary", "secondary"],
        },
        geometry=[north, south, *sides],
        crs="EPSG:4326",
    )


def test_dual_carriageways_are_one_segment() -> None:
    segs = [s for s in segmentize(_dual(), min_length_m=50.0) if s.road == "金水路"]
    # Three stretches (end, 花园路, 经三路, end), each both carriageways.
    assert [s.name for s in segs] == [
        "金水路（尽头至花园路）",
        "金水路（花园路至经三路）",
        "金水路（经三路至尽头）",
    ]
    assert all(s.geometry.geom_type == "MultiLineString" for s in segs)
    assert [round(s.length_m, -1) for s in segs] == [100.0, 200.0, 100.0]  # the stretch
    single = [s for s in segmentize(_dual(), min_length_m=50.0, pair_carriageways=False)]
    assert sum(s.road == "金水路" for s in single) == 6
    # Consecutive pieces of one line (end to end) are never paired.
    assert all(s.geometry.geom_type == "LineString" for s in segmentize(_grid()))


def test_paired_network_round_trips_and_keeps_ids(tmp_path: Path) -> None:
    net = network_from_osm(_dual(), min_length_m=50.0)
    segs = list(net.segments)
    save_network(net, tmp_path / "dual.json")
    back = load_network(tmp_path / "dual.json")
    assert [s.geometry.geom_type for s in back.segments] == [s.geometry.geom_type for s in segs]
    assert all(
        shapely.equals_exact(a.geometry, b.geometry, 1e-6)
        for a, b in zip(back.segments, segs, strict=True)
    )
    again = segmentize(_dual().iloc[::-1], min_length_m=50.0, previous=back)
    assert [s.id for s in again] == [s.id for s in segs]
