"""The bundled demo network of Zhengzhou and the generator that makes it."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import math
import re
import statistics
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import shapely
from pyproj import Geod
from shapely.geometry import Point, box

from geo.crs import gcj02_to_wgs84
from geo.demo import DEFAULT_SEGMENTS, EXTENT, generate_demo_network
from geo.network import Network, load_network, network_bytes, save_network

BUNDLED = Path(__file__).resolve().parent.parent / "geo" / "data" / "zhengzhou_demo.geojson.gz"
NAME_RE = re.compile(r"^(.+)（(.+)至(.+)）$")
DISTRICT_CODES = {"ZY", "EQ", "GC", "JS", "HJ", "ZD", "GX", "JK"}
GEOD = Geod(ellps="WGS84")

# The API contract's example report (GCJ-02, as a phone sends it) and its ack.
CONTRACT_GCJ02 = (113.68352, 34.77281)
CONTRACT_SEGMENT = "花园路（农业路至黄河路）"


@pytest.fixture(scope="module")
def generated() -> Network:
    return generate_demo_network()


@pytest.fixture(scope="module")
def net() -> Network:
    return load_network(BUNDLED)


def _metres(geom: shapely.Geometry, lat0: float = 34.77) -> shapely.Geometry:
    """Lon/lat to local metres (equirectangular): plenty for distances of metres."""
    k = math.cos(math.radians(lat0))
    return shapely.transform(geom, lambda xy: xy * [111_320.0 * k, 110_950.0])


# -- size, ids, names -------------------------------------------------------------------


def test_exactly_the_target_number_of_segments(net: Network) -> None:
    assert len(net.segments) == DEFAULT_SEGMENTS == 2495
    assert net.info()["segments"] == 2495
    assert sum(net.info()["segments_by_district"].values()) == 2495


def test_segment_ids_unique_and_numbered_per_district(net: Network) -> None:
    ids = [s.id for s in net.segments]
    assert len(set(ids)) == len(ids)
    numbers: dict[str, list[int]] = defaultdict(list)
    for s in net.segments:
        m = re.fullmatch(r"ZZ-([A-Z]{2})-(\d{4})", s.id)
        assert m, s.id
        assert m.group(1) == s.district
        numbers[s.district].append(int(m.group(2)))
    for code, nums in numbers.items():
        assert nums == list(range(1, len(nums) + 1)), code
    assert net.segment_by_id(ids[0]) is net.segments[0]


def test_names_follow_road_from_to(net: Network) -> None:
    for s in net.segments:
        m = NAME_RE.match(s.name)
        assert m, s.name
        assert (m.group(1), m.group(2), m.group(3)) == (s.road, s.from_road, s.to_road)
        assert s.from_road != s.to_road, s.name
        assert s.road not in (s.from_road, s.to_road), s.name
    names = [s.name for s in net.segments]
    assert len(set(names)) == len(names)


def test_all_roads_named_and_many_real_names(net: Network) -> None:
    roads = {s.road for s in net.segments}
    assert all(r and r.strip() == r and r[-1] in "路街道环" for r in roads)
    real_arterials = {
        "嵩山路", "桐柏路", "大学路", "京广路", "人民路", "紫荆山路", "花园路", "文化路",
        "经三路", "未来路", "中州大道", "航海路", "陇海路", "中原路", "郑汴路", "建设路",
        "金水路", "黄河路", "农业路", "东风路", "北环路", "国基路", "三全路", "北三环",
    }  # fmt: skip
    real_smaller = {
        "经一路", "经二路", "经四路", "经五路", "经六路", "经七路", "经八路", "纬一路",
        "纬二路", "纬三路", "纬四路", "纬五路", "政六街", "政七街", "优胜北路", "丰产路",
        "索凌路", "红旗路", "红专路", "农科路", "东明路", "南阳路", "沙口路", "工人路",
    }  # fmt: skip
    assert real_arterials <= roads
    assert real_smaller <= roads
    majors = {s.road for s in net.segments if s.road_class != "local"}
    assert len(majors) >= 100


def test_real_roads_roughly_where_they_are(net: Network) -> None:
    def mean_xy(road: str) -> tuple[float, float]:
        pts = [s.geometry.interpolate(0.5, normalized=True) for s in net.segments if s.road == road]
        return statistics.fmean(p.x for p in pts), statistics.fmean(p.y for p in pts)

    west_to_east = ["西三环", "秦岭路", "桐柏路", "嵩山路", "大学路", "京广路", "花园路", "经三路"]
    xs = [mean_xy(r)[0] for r in west_to_east]
    assert xs == sorted(xs)
    south_to_north = ["南三环", "航海路", "陇海路", "中原路", "金水路", "黄河路", "农业路",
                      "东风路", "北环路", "国基路", "三全路", "北三环"]  # fmt: skip
    ys = [mean_xy(r)[1] for r in south_to_north]
    assert ys == sorted(ys)


# -- geometry ---------------------------------------------------------------------------


def test_no_segment_shorter_than_50_m_and_lengths_are_geodesic(net: Network) -> None:
    assert min(s.length_m for s in net.segments) >= 50.0
    for s in net.segments[::25]:
        assert s.length_m == pytest.approx(GEOD.geometry_length(s.geometry), abs=0.06)


def test_everything_inside_the_extent(net: Network) -> None:
    extent = box(*EXTENT)
    assert all(extent.covers(s.geometry) for s in net.segments)


def test_every_segment_midpoint_in_its_district(net: Network) -> None:
    for s in net.segments:
        mid = s.geometry.interpolate(0.5, normalized=True)
        assert net.district_by_code(s.district).geometry.covers(mid), s.id


def test_districts_cover_the_extent_without_overlaps(net: Network) -> None:
    assert {d.code for d in net.districts} == DISTRICT_CODES
    assert {d.kind for d in net.districts} == {"district", "zone"}
    extent = box(*EXTENT)
    polys = [d.geometry for d in net.districts]
    assert all(p.is_valid and not p.is_empty for p in polys)
    assert sum(p.area for p in polys) == pytest.approx(extent.area, rel=1e-9)
    assert shapely.union_all(polys).symmetric_difference(extent).area < 1e-9 * extent.area
    for i, a in enumerate(polys):
        for b in polys[i + 1 :]:
            assert a.intersection(b).area < 1e-9 * extent.area


def test_subdistricts(net: Network) -> None:
    per_district = Counter(s.district for s in net.subdistricts)
    assert set(per_district) == DISTRICT_CODES
    assert all(3 <= n <= 8 for n in per_district.values())
    by_code = {s.code: s for s in net.subdistricts}
    assert len(by_code) == len(net.subdistricts)
    for s in net.segments:
        assert by_code[s.subdistrict].district == s.district
    assert {s.subdistrict for s in net.segments} == set(by_code)  # none left empty
    assert all(s.name.endswith("街道") for s in net.subdistricts)


def test_not_a_perfect_lattice(net: Network) -> None:
    def off_axis_deg(s: shapely.Geometry) -> float:
        (x0, y0), (x1, y1) = s.coords[0], s.coords[-1]
        bearing = math.degrees(math.atan2((x1 - x0) * math.cos(math.radians(y0)), y1 - y0))
        b = bearing % 90.0
        return min(b, 90.0 - b)

    axis_aligned = sum(off_axis_deg(s.geometry) < 1.0 for s in net.segments)
    assert axis_aligned / len(net.segments) < 0.35  # 0.26 at the time of writing
    arterial = [s.length_m for s in net.segments if s.road_class == "arterial"]
    assert statistics.pstdev(arterial) / statistics.fmean(arterial) > 0.4
    # Some streets end without meeting another one (cul-de-sacs).
    assert sum("尽头" in (s.from_road, s.to_road) for s in net.segments) >= 30
    assert Counter(s.road_class for s in net.segments).keys() == {"arterial", "secondary", "local"}


# -- chiefs and assignments ---------------------------------------------------------------


def test_one_assignment_per_segment_and_level(net: Network) -> None:
    people = {p.id: p for p in net.people}
    assert len(people) == len(net.people)
    per_segment: dict[str, list[int]] = defaultdict(list)
    for a in net.assignments:
        per_segment[a.segment_id].append(a.level)
        assert a.role == "road_chief"
        assert a.valid_from == dt.date(2026, 1, 1) and a.valid_to is None
        p = people[a.person_id]
        seg = net.segment_by_id(a.segment_id)
        assert p.level == a.level and p.district == seg.district
        if a.level >= 2:
            assert p.subdistrict == seg.subdistrict
    assert set(per_segment) == {s.id for s in net.segments}
    assert all(sorted(levels) == [0, 1, 2, 3] for levels in per_segment.values())


def test_chief_hierarchy(net: Network) -> None:
    by_level = Counter(p.level for p in net.people)
    assert by_level[0] == len(net.districts)
    assert by_level[2] == len(net.subdistricts)
    subs_of: dict[str, set[str]] = defaultdict(set)
    segs_of: dict[str, list[str]] = defaultdict(list)
    for a in net.assignments:
        seg = net.segment_by_id(a.segment_id)
        if a.level == 1:
            subs_of[a.person_id].add(seg.subdistrict)
        if a.level == 3:
            segs_of[a.person_id].append(seg.id)
    assert all(1 <= len(s) <= 3 for s in subs_of.values())
    assert len(segs_of) == by_level[3]
    for ids in segs_of.values():
        assert 1 <= len(ids) <= 2
        if len(ids) == 2:  # two adjacent segments of one road
            first, second = (net.segment_by_id(i) for i in ids)
            assert first.road == second.road
            assert first.geometry.distance(second.geometry) < 1e-9
    assert any(len(ids) == 2 for ids in segs_of.values())
    for p in net.people:
        district = net.district_by_code(p.district)
        assert re.fullmatch(rf"zz-{district.pinyin}-\d{{4}}", p.id), p.id
        assert 2 <= len(p.name) <= 3 and all("\u4e00" <= c <= "\u9fff" for c in p.name)
    titles = {p.title for p in net.people}
    assert {"金水区区长", "花园路街道办事处主任", "路段长", "郑东新区管委会主任"} <= titles


# -- the contract example ---------------------------------------------------------------


def test_contract_example_lies_on_huayuan_road(net: Network) -> None:
    lon, lat = gcj02_to_wgs84(*CONTRACT_GCJ02)
    assert (lon, lat) == pytest.approx((113.67739, 34.77388), abs=1e-5)
    point = _metres(Point(lon, lat))
    nearest = min(net.segments, key=lambda s: _metres(s.geometry).distance(point))
    assert nearest.name == CONTRACT_SEGMENT
    assert nearest.district == "JS"
    assert net.district_by_code("JS").name == "金水区"
    assert _metres(nearest.geometry).distance(point) < 15.0
    assert sum(s.name == CONTRACT_SEGMENT for s in net.segments) == 1


# -- determinism, the bundled file, the file format --------------------------------------------


@pytest.mark.slow
def test_generation_is_deterministic(generated: Network) -> None:
    again = generate_demo_network()
    assert network_bytes(again, compress=True) == network_bytes(generated, compress=True)


def test_bundled_file_is_up_to_date(generated: Network) -> None:
    """Fails when the generator changed and the bundled file was not regenerated:
    python -m geo.demo geo/data/zhengzhou_demo.geojson.gz"""
    raw = BUNDLED.read_bytes()
    assert raw[:2] == b"\x1f\x8b"
    assert raw[4:8] == b"\x00\x00\x00\x00"  # no mtime in the gzip header
    # Compare the JSON, not the compressed stream: zlib builds may differ.
    assert gzip.decompress(raw) == network_bytes(generated, compress=False)


def test_bundled_file_loads_fast() -> None:
    load_network(BUNDLED)  # warm the imports and the disk cache
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        load_network(BUNDLED)
        best = min(best, time.perf_counter() - t0)
    assert best < 1.0


def test_round_trip(generated: Network, net: Network, tmp_path: Path) -> None:
    assert net.segments == generated.segments
    assert net.people == generated.people
    assert net.assignments == generated.assignments
    assert net.subdistricts == generated.subdistricts
    plain = tmp_path / "demo.geojson"
    save_network(generated, plain)
    assert plain.read_bytes()[:1] == b"{"
    again = load_network(plain)
    assert again.segments == generated.segments
    assert all(
        d.geometry.equals(e.geometry)
        for d, e in zip(again.districts, generated.districts, strict=True)
    )
    assert again.info() == generated.info()


def test_file_is_geojson(tmp_path: Path, generated: Network) -> None:
    doc = json.loads(network_bytes(generated, compress=False))
    assert doc["type"] == "FeatureCollection"
    f = doc["features"][0]
    assert f["geometry"]["type"] == "LineString"
    assert set(f["properties"]) == {
        "id", "name", "road", "from", "to", "district", "subdistrict", "road_class", "length_m",
    }  # fmt: skip
    meta = doc["roadwatch"]
    assert meta["version"] == 1
    assert {d["properties"]["code"] for d in meta["districts"]} == DISTRICT_CODES
    # 7 decimals at most
    assert all(len(repr(v).split(".")[-1]) <= 7 for v in f["geometry"]["coordinates"][0])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x00\x01 not json", "not JSON"),
        (b'{"type": "Feature"}', "not a GeoJSON FeatureCollection"),
        (b'{"type": "FeatureCollection", "features": []}', '"roadwatch" member'),
        (
            b'{"type": "FeatureCollection", "features": [], "roadwatch": {"version": 99}}',
            "version 99",
        ),
        (
            b'{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {},'
            b' "geometry": {"type": "Point", "coordinates": [1, 2]}}], "roadwatch": {"version": 1,'
            b' "districts": [], "subdistricts": [], "people": [], "assignments": []}}',
            "LineString",
        ),
    ],
)
def test_load_rejects_what_is_not_a_network(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.geojson"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=re.escape(message)):
        load_network(path)
    gz = tmp_path / "bad.geojson.gz"
    gz.write_bytes(gzip.compress(content))
    with pytest.raises(ValueError, match=re.escape(message)):
        load_network(gz)


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_network(tmp_path / "nope.geojson.gz")
