"""geo.importer: a city's segment layer in any format and CRS, with every bad input explained."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pyproj
import pytest
import shapely
from shapely.geometry import LineString, MultiLineString, MultiPolygon, Point, Polygon, box

from geo.crs import wgs84_to_bd09, wgs84_to_gcj02
from geo.importer import (
    FieldMapping,
    NetworkImportError,
    RowError,
    read_osm_pbf,
    read_segment_layer,
)
from geo.network import load_network, save_network

DATA = Path(__file__).parent / "data"
ZZ = (113.3, 34.5, 114.1, 35.0)  # Zhengzhou, lon/lat box


def _lines() -> list[LineString]:
    return [
        LineString([(113.60, 34.75), (113.61, 34.75)]),
        LineString([(113.61, 34.75), (113.62, 34.751), (113.63, 34.75)]),
        LineString([(113.70, 34.80), (113.70, 34.81)]),
    ]


def _frame(geoms: list[object] | None = None, **cols: list[object]) -> gpd.GeoDataFrame:
    geoms = geoms if geoms is not None else list(_lines())
    n = len(geoms)
    data: dict[str, list[object]] = {
        "id": [f"ZZ-JS-{i + 1:04d}" for i in range(n)],
        "name": [
            "航海路（二十一大街至二十二大街）",
            "航海路（二十二大街至二十三大街）",
            "花园路（农业路至黄河路）",
        ][:n]
        + ["某路（甲至乙）"] * max(0, n - 3),
        "district": (["JS", "JS", "ZY"] + ["JS"] * n)[:n],
    }
    data.update(cols)
    return gpd.GeoDataFrame(data, geometry=geoms, crs="EPSG:4326")


def _messages(exc: pytest.ExceptionInfo[NetworkImportError]) -> list[str]:
    return [e.message for e in exc.value.errors]


# -- round trips ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "crs"),
    [
        ("segs.geojson", "EPSG:4326"),
        ("segs.geojson", "EPSG:3857"),
        ("segs.gpkg", "EPSG:32649"),
        ("segs.shp", "EPSG:4547"),  # CGCS2000 / 3-degree Gauss-Kruger CM 114E
        ("segs.fgb", "EPSG:32649"),
    ],
)
def test_round_trip_any_format_and_crs(tmp_path: Path, filename: str, crs: str) -> None:
    src = _frame()
    # FlatGeobuf's spatial index reorders features; without it row n is feature n.
    options = {"SPATIAL_INDEX": "NO"} if filename.endswith(".fgb") else {}
    src.to_crs(crs).to_file(tmp_path / filename, layer_options=options)
    seen: list[tuple[str, int, int]] = []
    net = read_segment_layer(
        tmp_path / filename, progress=lambda s, d, t: seen.append((s, d, t)), name="郑州"
    )
    assert net.name == "郑州"
    assert net.crs == "EPSG:4326"
    assert [s.id for s in net.segments] == list(src["id"])
    assert [s.name for s in net.segments] == list(src["name"])
    s0 = net.segments[0]
    assert (s0.road, s0.from_road, s0.to_road) == ("航海路", "二十一大街", "二十二大街")
    assert s0.district == "JS" and s0.subdistrict == "JS" and s0.road_class == "local"
    assert s0.length_m == pytest.approx(914.5, abs=2.0)  # 0.01° of longitude at 34.75°N
    for seg, line in zip(net.segments, _lines(), strict=True):
        assert np.allclose(shapely.get_coordinates(seg.geometry), line.coords, atol=1e-7)
    assert [d.code for d in net.districts] == ["JS", "ZY"]
    js = net.district_by_code("JS").geometry
    assert js.covers(net.segments[0].geometry) and js.covers(net.segments[1].geometry)
    assert not js.covers(net.segments[2].geometry)  # "outside every district" is decidable
    assert seen[-1] == ("districts", 1, 1) and ("read", 3, 3) in seen
    save_network(net, tmp_path / "net.json.gz")
    back = load_network(tmp_path / "net.json.gz")
    assert [s.id for s in back.segments] == [s.id for s in net.segments]


def test_mapping_chiefs_and_road_fields(tmp_path: Path) -> None:
    src = gpd.GeoDataFrame(
        {
            "SEG_ID": [101, 102, 103],
            "LM": ["航海路", "航海路", "花园路"],
            "QD": ["二十一大街", "二十二大街", "农业路"],
            "ZD": ["二十二大街", "二十三大街", "黄河路"],
            "QX": ["金水区", "金水区", "中原区"],
            "DJ": ["主干路", "primary", "支路"],
            "LZ": ["p1", "p1", None],
            "LZXM": ["张三", "张三", None],
        },
        geometry=_lines(),
        crs="EPSG:4326",
    )
    src.to_file(tmp_path / "c.gpkg")
    toml = tmp_path / "fields.toml"
    toml.write_text(
        '[fields]\nid = "SEG_ID"\nname = ""\nroad = "LM"\nfrom = "QD"\nto = "ZD"\n'
        'district = "QX"\nchief = "LZ"\nchief_name = "LZXM"\nroad_class = "DJ"\n',
        encoding="utf-8",
    )
    mapping = FieldMapping.from_toml(toml)
    assert mapping == FieldMapping.from_options(
        id="SEG_ID", name="", road="LM", from_road="QD", to="ZD", district="QX",
        chief="LZ", chief_name="LZXM", road_class="DJ", subdistrict=None,
    )  # fmt: skip
    net = read_segment_layer(tmp_path / "c.gpkg", mapping, valid_from=dt.date(2024, 3, 1))
    assert [s.id for s in net.segments] == ["101", "102", "103"]
    assert net.segments[0].name == "航海路（二十一大街至二十二大街）"
    assert [s.road_class for s in net.segments] == ["arterial", "arterial", "local"]
    assert [d.code for d in net.districts] == ["中原区", "金水区"]
    assert [(p.id, p.name, p.level) for p in net.people] == [("p1", "张三", 3)]
    assert [(a.segment_id, a.person_id, a.valid_from) for a in net.assignments] == [
        ("101", "p1", dt.date(2024, 3, 1)),
        ("102", "p1", dt.date(2024, 3, 1)),
    ]
    save_network(net, tmp_path / "n.json")
    assert load_network(tmp_path / "n.json").info()["assignments"] == 2


def test_district_layer_assigns_by_midpoint(tmp_path: Path) -> None:
    districts = gpd.GeoDataFrame(
        {"code": ["JS", "ZY"], "name": ["金水区", "中原区"]},
        geometry=[box(113.55, 34.70, 113.65, 34.78), box(113.65, 34.78, 113.75, 34.85)],
        crs="EPSG:4326",
    ).to_crs("EPSG:32649")
    districts.to_file(tmp_path / "d.gpkg")
    _frame().to_file(tmp_path / "s.geojson")
    net = read_segment_layer(
        tmp_path / "s.geojson", FieldMapping(district=None), district_layer=tmp_path / "d.gpkg"
    )
    assert [s.district for s in net.segments] == ["JS", "JS", "ZY"]
    assert [(d.code, d.name) for d in net.districts] == [("JS", "金水区"), ("ZY", "中原区")]


def test_district_layer_that_misses_a_segment(tmp_path: Path) -> None:
    gpd.GeoDataFrame(
        {"code": ["JS"], "name": ["金水区"]},
        geometry=[box(113.55, 34.70, 113.65, 34.78)],
        crs="EPSG:4326",
    ).to_file(tmp_path / "d.gpkg")
    _frame().to_file(tmp_path / "s.geojson")
    with pytest.raises(NetworkImportError) as exc:
        read_segment_layer(
            tmp_path / "s.geojson",
            FieldMapping(district=None),
            district_layer=tmp_path / "d.gpkg",
        )
    assert _messages(exc) == [
        "row 3: the segment's midpoint lies outside every district of the district layer; "
        "fix the line, or extend the district layer to cover it"
    ]


# -- bad input: each case shows the user what is wrong and what to fix -------------------


def _one_bad(tmp_path: Path, index: int, geom: object, suffix: str = ".gpkg") -> list[str]:
    geoms: list[object] = list(_lines())
    geoms[index] = geom
    path = tmp_path / f"bad{suffix}"
    _frame(geoms).to_file(path)
    with pytest.raises(NetworkImportError) as exc:
        read_segment_layer(path, bounds=ZZ)
    assert str(exc.value).startswith(f"{path}: 1 problem, nothing was imported:\n  row ")
    return _messages(exc)


def test_empty_geometry(tmp_path: Path) -> None:
    assert _one_bad(tmp_path, 1, LineString()) == [
        "row 2: geometry is empty (no coordinates); draw the segment's line or delete the row"
    ]


def test_point_instead_of_line(tmp_path: Path) -> None:
    assert _one_bad(tmp_path, 2, Point(113.6, 34.75)) == [
        "row 3: geometry is a Point; segments must be LineStrings "
        "(or MultiLineStrings that form one line)"
    ]


def test_self_intersecting_polygon_is_not_a_line(tmp_path: Path) -> None:
    bowtie = Polygon([(113.6, 34.7), (113.7, 34.8), (113.7, 34.7), (113.6, 34.8)])
    assert not bowtie.is_valid
    assert _one_bad(tmp_path, 0, bowtie, ".geojson") == [
        "row 1: geometry is a Polygon; segments must be LineStrings "
        "(or MultiLineStrings that form one line)"
    ]


def test_line_with_one_repeated_point(tmp_path: Path) -> None:
    assert _one_bad(tmp_path, 1, LineString([(113.6, 34.7), (113.6, 34.7)])) == [
        "row 2: invalid LineString (Too few points in geometry component[113.6 34.7]); "
        "a segment needs at least two distinct points: fix the line or delete the row"
    ]


def test_nan_coordinate_is_one_row_error_and_no_warning(tmp_path: Path) -> None:
    """Warnings are errors in tests: a RuntimeWarning from the WKB reader would fail this."""
    path = tmp_path / "nan.geojson"
    path.write_text(
        '{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": '
        '{"id": "ZZ-JS-0001", "name": "某路（甲至乙）", "district": "JS"}, "geometry": '
        '{"type": "LineString", "coordinates": [[113.6, 34.7], [NaN, 34.71]]}}]}'
    )
    with pytest.raises(NetworkImportError) as exc:
        read_segment_layer(path, bounds=ZZ)
    (message,) = _messages(exc)
    assert message.startswith("row 1: invalid LineString") and "nan" in message


def test_multilinestring_that_is_one_line_is_accepted_and_others_are_refused(
    tmp_path: Path,
) -> None:
    joined = MultiLineString(
        [[(113.60, 34.75), (113.605, 34.75)], [(113.605, 34.75), (113.61, 34.75)]]
    )
    _frame([joined, *_lines()[1:]]).to_file(tmp_path / "ok.gpkg")
    net = read_segment_layer(tmp_path / "ok.gpkg")
    assert net.segments[0].geometry.geom_type == "LineString"
    assert shapely.get_coordinates(net.segments[0].geometry).shape == (3, 2)
    gap = MultiLineString(
        [[(113.60, 34.75), (113.605, 34.75)], [(113.606, 34.75), (113.61, 34.75)]]
    )
    assert _one_bad(tmp_path, 0, gap) == [
        "row 1: geometry is a MultiLineString of 2 pieces that do not join into one line; "
        "a segment is one continuous line: close the gaps or split it into one row per piece"
    ]


def test_no_geometry(tmp_path: Path) -> None:
    assert _one_bad(tmp_path, 2, None, ".geojson") == [
        "row 3: no geometry; every segment needs a LineString: draw its line or delete the row"
    ]


def test_outside_the_city(tmp_path: Path) -> None:
    assert _one_bad(tmp_path, 2, LineString([(121.47, 31.23), (121.48, 31.23)])) == [
        "row 3: the segment lies outside the configured city area "
        "(lon 113.3..114.1, lat 34.5..35): it starts at lon 121.470000, lat 31.230000; "
        "check that the file's CRS (EPSG:4326) is the one the data was drawn in, "
        "or fix the line"
    ]


def test_projected_numbers_in_a_file_that_says_wgs84(tmp_path: Path) -> None:
    metres = LineString([(500000.0, 3845000.0), (500100.0, 3845000.0)])
    _frame([metres, *_lines()[1:]]).to_file(tmp_path / "m.gpkg")
    with pytest.raises(NetworkImportError) as exc:
        read_segment_layer(tmp_path / "m.gpkg")
    assert _messages(exc) == [
        "row 1: coordinates (500000, 3.845e+06) are not a place on Earth in the file's CRS "
        "EPSG:4326; the file probably declares the wrong CRS: assign the CRS the data was "
        "drawn in and import again"
    ]


def test_duplicate_and_missing_ids(tmp_path: Path) -> None:
    _frame(id=["A", None, "A"]).to_file(tmp_path / "d.geojson")
    with pytest.raises(NetworkImportError) as exc:
        read_segment_layer(tmp_path / "d.geojson")
    assert _messages(exc) == [
        "row 2: no segment id in field 'id'; give every segment a unique id",
        "row 3: segment id 'A' is already used by row 1; ids must be unique: "
        "give one of them another id",
    ]


def test_missing_name_and_district_values(tmp_path: Path) -> None:
    _frame(name=["航海路（A至B）", "", "花园路（C至D）"], district=["JS", "JS", None]).to_file(
        tmp_path / "d.gpkg"
    )
    with pytest.raises(NetworkImportError) as exc:
        read_segment_layer(tmp_path / "d.gpkg")
    assert _messages(exc) == [
        "row 2: no segment name in field 'name'; give every segment a name such as "
        "航海路（二十一大街至二十二大街）",
        "row 3: no district in field 'district'; give every segment the district it belongs to",
    ]


def test_all_errors_are_collected_and_listed(tmp_path: Path) -> None:
    geoms: list[object] = [Point(113.6, 34.7)] * 25
    _frame(geoms).to_file(tmp_path / "many.gpkg")
    with pytest.raises(NetworkImportError) as exc:
        read_segment_layer(tmp_path / "many.gpkg")
    assert len(exc.value.errors) == 25
    text = str(exc.value).splitlines()
    assert text[0] == f"{tmp_path / 'many.gpkg'}: 25 problems, nothing was imported:"
    assert text[1].startswith("  row 1: geometry is a Point")
    assert text[20].startswith("  row 20: ")
    assert text[21:] == ["  ... and 5 more"]
    assert isinstance(exc.value, ValueError)
    assert isinstance(exc.value.errors[0], RowError) and exc.value.errors[0].row == 1


def test_file_without_crs(tmp_path: Path) -> None:
    _frame().to_file(tmp_path / "nocrs.shp")
    (tmp_path / "nocrs.prj").unlink()
    with pytest.raises(NetworkImportError) as exc:
        read_segment_layer(tmp_path / "nocrs.shp")
    assert exc.value.errors == [
        RowError(
            None,
            None,
            f"{tmp_path / 'nocrs.shp'}: the file has no coordinate reference system (CRS), so "
            "its coordinates cannot be placed on the map; say which one the data was drawn in "
            "(--crs EPSG:4547, or --crs GCJ02 / BD09 for Amap/Tencent or Baidu coordinates), "
            "or assign it in the file (a .prj next to a Shapefile, ogr2ogr -a_srs) and import "
            "again",
        )
    ]
    assert str(exc.value) == exc.value.errors[0].message
    # the user's word is enough
    net = read_segment_layer(tmp_path / "nocrs.shp", crs="EPSG:4326")
    assert [s.id for s in net.segments] == list(_frame()["id"])


# -- Chinese map coordinates (GCJ-02, BD-09) and DataV district files ---------------------


def _shifted(geoms: list[object], kernel: Any) -> list[object]:
    def f(xy: np.ndarray) -> np.ndarray:
        lon, lat = kernel(xy[:, 0], xy[:, 1])
        return np.column_stack([lon, lat])

    return [shapely.transform(g, f) for g in geoms]


@pytest.mark.parametrize(("crs", "kernel"), [("GCJ02", wgs84_to_gcj02), ("bd-09", wgs84_to_bd09)])
def test_layer_in_chinese_map_coordinates(tmp_path: Path, crs: str, kernel: Any) -> None:
    """Amap/Baidu exports say WGS84 (GeoJSON can say nothing else); --crs puts them right."""
    _frame(_shifted(list(_lines()), kernel)).to_file(tmp_path / "amap.geojson")
    net = read_segment_layer(tmp_path / "amap.geojson", crs=crs, bounds=ZZ)
    geod = pyproj.Geod(ellps="WGS84")
    for seg, line in zip(net.segments, _lines(), strict=True):
        got, want = shapely.get_coordinates(seg.geometry), shapely.get_coordinates(line)
        _az, _baz, dist = geod.inv(got[:, 0], got[:, 1], want[:, 0], want[:, 1])
        assert dist.max() < 0.05  # metres: the iterated inverse, then the file's precision
    # read as the file says, every line is hundreds of metres off (the error --crs fixes)
    naive = read_segment_layer(tmp_path / "amap.geojson", bounds=ZZ)
    a = shapely.get_coordinates(naive.segments[0].geometry)[0]
    b = shapely.get_coordinates(_lines()[0])[0]
    assert geod.inv(a[0], a[1], b[0], b[1])[2] > 300


def test_datav_district_file_bare_array_adcode_gcj02(tmp_path: Path) -> None:
    """DataV/GeoAtlas boundaries: a bare JSON array of Features, 'adcode', GCJ-02."""
    polys = _shifted(
        [box(113.55, 34.70, 113.65, 34.78), box(113.65, 34.78, 113.75, 34.85)], wgs84_to_gcj02
    )
    features = [
        {
            "type": "Feature",
            "properties": {"adcode": code, "name": name, "level": "district"},
            "geometry": shapely.geometry.mapping(MultiPolygon([poly])),
        }
        for code, name, poly in zip([410105, 410102], ["金水区", "中原区"], polys, strict=True)
    ]
    (tmp_path / "410100.json").write_text(json.dumps(features, ensure_ascii=False), "utf-8")
    _frame().to_file(tmp_path / "s.geojson")
    net = read_segment_layer(
        tmp_path / "s.geojson",
        FieldMapping(district=None),
        district_layer=tmp_path / "410100.json",
        district_crs="GCJ02",
    )
    assert [s.district for s in net.segments] == ["410105", "410105", "410102"]
    assert [(d.code, d.name) for d in net.districts] == [("410105", "金水区"), ("410102", "中原区")]
    # the polygons are back where they were drawn (GCJ-02 → WGS84)
    shifted_back = shapely.get_coordinates(net.districts[0].geometry)[:, 0].min()
    assert abs(shifted_back - 113.55) < 1e-6


def test_unknown_crs_is_refused_in_plain_words(tmp_path: Path) -> None:
    _frame().to_file(tmp_path / "s.geojson")
    with pytest.raises(NetworkImportError) as exc:
        read_segment_layer(tmp_path / "s.geojson", crs="Amap")
    assert _messages(exc) == [
        f"{tmp_path / 's.geojson'}: unknown coordinate reference system 'Amap': give an EPSG "
        "code such as EPSG:4547, or GCJ02 (Amap, Tencent) / BD09 (Baidu) for Chinese map "
        "coordinates"
    ]


def test_missing_mapped_field(tmp_path: Path) -> None:
    _frame().to_file(tmp_path / "s.gpkg")
    with pytest.raises(NetworkImportError) as exc:
        read_segment_layer(tmp_path / "s.gpkg", FieldMapping(id="SEG_ID", chief="LZ"))
    assert _messages(exc) == [
        f"{tmp_path / 's.gpkg'}: the file has no field 'SEG_ID' (mapped as the segment id); "
        'its fields are: id, name, district; set id = "..." in the [fields] mapping '
        '(or "" if the file has no segment id)',
        f"{tmp_path / 's.gpkg'}: the file has no field 'LZ' (mapped as the chief id); "
        'its fields are: id, name, district; set chief = "..." in the [fields] mapping '
        '(or "" if the file has no chief id)',
    ]


def test_unknown_key_in_mapping_toml(tmp_path: Path) -> None:
    toml = tmp_path / "fields.toml"
    toml.write_text('[fields]\nid = "SEG_ID"\nsegment_name = "MC"\n', encoding="utf-8")
    with pytest.raises(ValueError) as exc:
        FieldMapping.from_toml(toml)
    assert str(exc.value) == (
        f"{toml}: unknown key in [fields]: segment_name; the keys are: id, name, road, "
        "from_road, to_road, district, chief, chief_name, road_class, subdistrict "
        '(use "" for a field the file does not have)'
    )
    toml.write_text("[fields]\nid = 3\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"\[fields\] id must be a string"):
        FieldMapping.from_toml(toml)
    toml.write_text('id = "x"\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"no \[fields\] table"):
        FieldMapping.from_toml(toml)


@pytest.mark.parametrize("name", ["junk.gpkg", "junk.geojson", "notes.txt"])
def test_file_that_is_not_a_vector_file(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"this is not map data\n" * 20)
    with pytest.raises(NetworkImportError) as exc:
        read_segment_layer(path)
    assert str(exc.value) == (
        f"{path}: not a vector file that can be read (GeoJSON, GeoPackage, Shapefile or "
        "FlatGeobuf expected); export the segment layer to one of these formats"
    )


@pytest.mark.parametrize("name", ["empty.geojson", "empty.json", "empty.gpkg"])
def test_file_without_features(tmp_path: Path, name: str) -> None:
    # once: "no field 'id' ... its fields are: (none)", which sent one looking for a mapping
    path = tmp_path / name
    if name.endswith(".gpkg"):
        _frame().iloc[:0].to_file(path)
    else:
        text = "[]" if name.endswith(".json") else '{"type": "FeatureCollection", "features": []}'
        path.write_text(text, encoding="utf-8")
    with pytest.raises(NetworkImportError) as exc:
        read_segment_layer(path)
    assert str(exc.value) == f"{path}: the file has no features (no segments); nothing to import"


def test_missing_file_and_layer(tmp_path: Path) -> None:
    with pytest.raises(NetworkImportError, match=r"no such file; check the path"):
        read_segment_layer(tmp_path / "nope.gpkg")
    _frame().to_file(tmp_path / "s.gpkg", layer="segments")
    with pytest.raises(NetworkImportError) as exc:
        read_segment_layer(tmp_path / "s.gpkg", layer="roads")
    assert str(exc.value) == (
        f"{tmp_path / 's.gpkg'}: no layer 'roads' in the file; its layers are: segments"
    )


# -- OpenStreetMap PBF -------------------------------------------------------------------


def test_read_osm_pbf() -> None:
    ways = read_osm_pbf(DATA / "test.osm.pbf")
    assert list(ways.columns) == ["osm_id", "name", "highway", "geometry"]
    assert ways.crs.to_epsg() == 4326
    assert len(ways) == 125
    assert ways["osm_id"].is_monotonic_increasing and ways["name"].notna().all()
    assert set(ways["highway"]) <= {"residential", "tertiary", "secondary", "living_street"}
    assert (ways.geometry.geom_type == "LineString").all()
    x0, y0, x1, y1 = ways.total_bounds
    assert 26.9 < x0 < x1 < 27.0 and 60.5 < y0 < y1 < 60.55
    inside = read_osm_pbf(DATA / "test.osm.pbf", bounds=(26.93, 60.52, 26.95, 60.53))
    assert 0 < len(inside) < len(ways)


def test_read_osm_pbf_refuses_other_files() -> None:
    path = DATA / "pyrosm_test_osm_roads.geojson"
    with pytest.raises(NetworkImportError) as exc:
        read_osm_pbf(path)
    assert str(exc.value) == (
        f"{path}: not an OpenStreetMap PBF file (.osm.pbf); download an extract in PBF "
        "format or import a GIS segment layer instead"
    )
