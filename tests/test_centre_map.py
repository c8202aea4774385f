"""The command centre's map data: vector tiles, the segment table, the live state, scoping."""

from __future__ import annotations

import gzip
import json
from typing import Any

import numpy as np
import pytest
import shapely
from flask.testing import FlaskClient
from shapely.geometry import LineString, MultiLineString

from roadwatch.maps.mvt import EXTENT, SegmentTiles, _to_world, decode
from tests.support.auth import login
from tests.support.examples import contract_example
from tests.support.intake import intake_headers


def _tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    w = _to_world(np.array([[lon, lat]]))[0]
    return int(w[0] * (1 << z)), int(w[1] * (1 << z))


# -- the encoder -------------------------------------------------------------------------
def test_a_tile_holds_every_segment_that_crosses_it_at_its_place() -> None:
    a = LineString([(113.60, 34.70), (113.61, 34.705), (113.62, 34.70)])
    b = MultiLineString(
        [[(113.65, 34.75), (113.66, 34.75)], [(113.65, 34.7502), (113.66, 34.7502)]]
    )
    tiny = LineString([(113.7000, 34.8000), (113.70001, 34.80001)])  # 1.4 m long
    tiles = SegmentTiles(["A", "B", "T"], ["甲路", "乙路", "甲路"], [a, b, tiny])
    assert tiles.bounds == pytest.approx((113.60, 34.70, 113.70001, 34.80001))
    for z in (8, 11, 14):
        found: dict[str, Any] = {}
        for geom, sid in ((a, "A"), (b, "B"), (tiny, "T")):
            for lon, lat in shapely.get_coordinates(geom):
                x, y = _tile_of(lon, lat, z)
                layer = decode(tiles.encode(z, x, y)[0])["segments"]
                for f in layer:
                    found.setdefault(str(f["properties"]["id"]), f)
                assert sid in {f["properties"]["id"] for f in layer}, (z, sid)
        assert found["A"]["properties"] == {"id": "A", "road": "甲路"}
        assert found["T"]["properties"]["road"] == "甲路"
        assert len(found["B"]["lines"]) == 2  # both carriageways, one feature
        assert all(len(line) >= 2 for f in found.values() for line in f["lines"])
    # coordinates land within half a tile unit of the exact projection
    z = 14
    x, y = _tile_of(113.61, 34.705, z)
    (f,) = [f for f in decode(tiles.encode(z, x, y)[0])["segments"] if f["properties"]["id"] == "A"]
    exact = _to_world(np.array(a.coords)) * (1 << z) - [x, y]
    got = np.asarray(f["lines"][0], dtype=np.float64) / EXTENT
    inside = (exact[:, 0] >= 0) & (exact[:, 0] < 1) & (exact[:, 1] >= 0) & (exact[:, 1] < 1)
    for p in exact[inside]:
        assert np.min(np.hypot(*(got - p).T)) * EXTENT <= 0.71


def test_empty_tiles_and_bad_addresses() -> None:
    tiles = SegmentTiles(["A"], ["甲路"], [LineString([(113.6, 34.7), (113.61, 34.7)])])
    assert tiles.encode(14, 0, 0) == (b"", 0)
    with pytest.raises(ValueError):
        tiles.encode(3, 8, 0)
    t1 = tiles.tile(10, *_tile_of(113.6, 34.7, 10))
    assert t1.features == 1 and gzip.decompress(t1.gzipped) == t1.body
    assert tiles.tile(10, *_tile_of(113.6, 34.7, 10)) is t1  # cached


def test_a_whole_city_tile_of_25000_segments_is_quick() -> None:
    rng = np.random.default_rng(1)
    starts = rng.uniform([113.55, 34.68], [113.80, 34.86], size=(25_000, 2))
    geoms = [LineString([p, p + [0.002, 0.0005], p + [0.004, 0.0]]) for p in starts]
    tiles = SegmentTiles([f"S{i}" for i in range(25_000)], ["路"] * 25_000, geoms)
    import time

    t0 = time.perf_counter()
    body, n = tiles.encode(8, *_tile_of(113.67, 34.77, 8))
    assert n == 25_000 and len({f["properties"]["id"] for f in decode(body)["segments"]}) == n
    assert time.perf_counter() - t0 < 5  # ~0.1 s here; a generous bound for slow CI


# -- the endpoints ------------------------------------------------------------------------
def _config(client: FlaskClient) -> dict[str, Any]:
    page = client.get("/").get_data(as_text=True)
    raw = page.split('<script id="rw-config" type="application/json">')[1].split("</script>")[0]
    config: dict[str, Any] = json.loads(raw)
    return config


def test_the_page_carries_the_first_view_and_the_live_state(app: Any, runtime: Any) -> None:
    public = app.test_client()
    body = contract_example()
    assert public.post("/api/reports", json=body, headers=intake_headers(app)).status_code == 201
    city = app.test_client()
    login(city, runtime, "viewer")
    config = _config(city)
    m = config["map"]
    segs = city.get("/api/segments").get_json()
    assert m["segments"] == runtime.ctx.size == len(segs["features"])
    lons = [
        c[0]
        for f in segs["features"]
        for c in shapely.get_coordinates(shapely.geometry.shape(f["geometry"]))
    ]
    assert m["bounds"][0] == pytest.approx(min(lons), abs=1e-6)
    assert {v["code"] for v in m["district_views"]} == {
        f["properties"]["district"] for f in segs["features"]
    }
    # the state in the page is /api/segments' state, compactly: what is open, at which seq
    state = config["state"]
    assert state["seq"] == segs["seq"]
    open_ = {
        f["id"]: [f["properties"]["state"][k] for k in ("open", "overdue", "score")]
        for f in segs["features"]
        if f["properties"]["state"]["open"]
    }
    assert state["states"] == open_ and open_
    assert city.get(m["state"]).get_json()["states"] == open_
    assert state["stats"]["reports_today"] == segs["stats"]["reports_today"] == 1


def test_table_and_tiles_are_cacheable_and_scoped(app: Any, runtime: Any) -> None:
    city, js = app.test_client(), app.test_client()
    login(city, runtime, "viewer")
    login(js, runtime, "district_staff", "JS")
    mc, mj = _config(city)["map"], _config(js)["map"]
    assert mc["key"] != mj["key"] and mc["key"].endswith("-all") and mj["key"].endswith("-JS")
    # the table: every segment's attributes, as /api/segments has them
    res = city.get(mc["table"], headers={"Accept-Encoding": "gzip"})
    assert res.status_code == 200 and res.headers["Content-Encoding"] == "gzip"
    assert "immutable" in res.headers["Cache-Control"]
    table = json.loads(gzip.decompress(res.get_data()))
    words = table["strings"]
    feats = {f["id"]: f["properties"] for f in city.get("/api/segments").get_json()["features"]}
    assert table["count"] == len(table["id"]) == len(feats)
    for i in (0, 17, len(table["id"]) - 1):
        p = feats[table["id"][i]]
        assert table["name"][i] == p["name"] and words[table["road"][i]] == p["road"]
        assert words[table["from"][i]] == p["from"] and words[table["to"][i]] == p["to"]
        assert words[table["district"][i]] == p["district"]
        assert table["length_m"][i] == p["length_m"]
    again = city.get(mc["table"], headers={"If-None-Match": res.headers["ETag"]})
    assert again.status_code == 304
    # a district user: only their district; the city's key is not theirs
    tj = js.get(mj["table"]).get_json()
    assert tj["count"] == mj["segments"] and {tj["strings"][d] for d in tj["district"]} == {"JS"}
    assert js.get(mc["table"]).status_code == 404
    assert city.get(mc["table"].replace(mc["key"], "0" * 16 + "-all")).status_code == 404

    # a tile of the first view: every segment in it, as vector tile features
    z = 11
    lon, lat = (mc["bounds"][0] + mc["bounds"][2]) / 2, (mc["bounds"][1] + mc["bounds"][3]) / 2
    x, y = _tile_of(lon, lat, z)
    url = mc["tiles"].format(z=z, x=x, y=y)
    res = city.get(url)
    assert res.status_code == 200 and res.mimetype == "application/x-protobuf"
    ids = {f["properties"]["id"] for f in decode(res.get_data())["segments"]}
    assert ids and ids <= set(feats)
    assert city.get(url, headers={"If-None-Match": res.headers["ETag"]}).status_code == 304
    js_ids = {
        f["properties"]["id"]
        for f in decode(js.get(mj["tiles"].format(z=z, x=x, y=y)).get_data()).get("segments", [])
    }
    assert js_ids <= {i for i in ids if feats[i]["district"] == "JS"}
    assert city.get(mc["tiles"].format(z=2, x=9, y=0)).status_code == 404
    assert city.get(mc["tiles"].format(z=3, x=0, y=0)).get_data() == b""  # nothing there
    # all of the city's segments are in the tiles of its bounds
    z = 10
    west, south, east, north = mc["bounds"]
    (x0, y1), (x1, y0) = _tile_of(west, south, z), _tile_of(east, north, z)
    seen: set[str] = set()
    for tx in range(x0, x1 + 1):
        for ty in range(y0, y1 + 1):
            body = city.get(mc["tiles"].format(z=z, x=tx, y=ty)).get_data()
            if body:
                seen |= {str(f["properties"]["id"]) for f in decode(body)["segments"]}
    assert seen == set(feats)


def test_chiefs(app: Any, runtime: Any) -> None:
    city, js = app.test_client(), app.test_client()
    login(city, runtime, "viewer")
    login(js, runtime, "district_staff", "JS")
    feats = city.get("/api/segments").get_json()["features"]
    want = {
        f["id"]: [f["properties"]["chief"]["id"], f["properties"]["chief"]["name"]]
        for f in feats
        if f["properties"]["chief"]
    }
    assert city.get("/api/centre/chiefs").get_json() == want and want
    mine = js.get("/api/centre/chiefs").get_json()
    assert mine and all(sid.startswith("ZZ-JS-") for sid in mine)


def test_map_data_needs_a_login(app: Any, runtime: Any) -> None:
    anon = app.test_client()
    for url in ("/api/centre/state", "/api/centre/chiefs", "/api/centre/segments/x.json"):
        assert anon.get(url).status_code == 401, url
    assert anon.get("/api/centre/tiles/x/1/0/0.pbf").status_code == 401
