"""A city's own offline basemap (ROADWATCH_BASEMAP): PMTiles read and served by roadwatch."""

from __future__ import annotations

import copy
import gzip
import json
import random
from pathlib import Path
from typing import Any

import pytest
from pmtiles.tile import TileType

from roadwatch.maps.basemap import Basemap, BasemapError, style_layers
from roadwatch.maps.mvt import SegmentTiles, decode
from roadwatch.settings import SettingsError, load_settings
from roadwatch.web import create_app
from tests.support.auth import login
from tests.support.pmtiles_files import (
    png,
    raster_archive,
    tiles_covering,
    write_archive,
)

ZZ = (113.55, 34.68, 113.80, 34.85)  # central Zhengzhou


def test_a_raster_archive_is_read_tile_by_tile(tmp_path: Path) -> None:
    path = raster_archive(tmp_path / "city.pmtiles", ZZ, range(10, 13))
    bm = Basemap.open(str(path))
    info = bm.info
    assert (info.kind, info.tile_type, info.minzoom, info.maxzoom) == ("raster", "png", 10, 12)
    assert info.bounds == pytest.approx(ZZ)
    assert info.attribution == "© test city" and bm.content_type == "image/png"
    for z, x, y in tiles_covering(ZZ, range(10, 13)):
        assert bm.tile(z, x, y) == png((200, 220, 240))
    z, x, y = tiles_covering(ZZ, [12])[0]
    assert bm.tile(12, x - 5, y) is None  # outside the archive
    assert bm.tile(13, x * 2, y * 2) is None  # beyond its zooms
    assert bm.tile(12, 1 << 12, 0) is None and bm.tile(12, -1, 0) is None
    layers = style_layers(info)
    assert [layer["type"] for layer in layers] == ["raster"]


def test_leaf_directories_are_followed(tmp_path: Path) -> None:
    """Big archives keep most of their index in leaf directories: every tile is found."""
    keys = tiles_covering((100.0, 20.0, 115.0, 35.0), [12])  # ~ 25,000 tiles
    # all distinct (no run-length entries), of varied lengths (a directory gzip cannot
    # squeeze into the 16 KB root)
    rng = random.Random(7)
    tiles = {k: f"tile {k};".encode() + bytes(rng.randrange(200)) for k in keys}
    path = write_archive(tmp_path / "big.pmtiles", TileType.PNG, tiles, (100, 20, 120, 40), {})
    bm = Basemap.open(str(path))
    header = bm._header
    assert header["leaf_directory_length"] > 0, "the archive should need leaf directories"
    assert len(tiles) > 20_000 and all(bm.tile(*k) == v for k, v in tiles.items())
    assert bm.tile(10, 0, 0) is None


def test_a_vector_archive_gets_a_generic_style(tmp_path: Path, network_ctx: Any) -> None:
    segs = network_ctx.network.segments[:300]
    source = SegmentTiles([s.id for s in segs], [s.road for s in segs], [s.geometry for s in segs])
    keys = tiles_covering(source.bounds, [12, 13])
    tiles = {k: source.encode(*k)[0] for k in keys}
    tiles = {k: v for k, v in tiles.items() if v}
    path = write_archive(
        tmp_path / "vector.pmtiles",
        TileType.MVT,
        tiles,
        source.bounds,
        {"vector_layers": [{"id": "segments", "fields": {}}], "attribution": "test"},
        gzip_tiles=True,
    )
    bm = Basemap.open(str(path))
    assert bm.info.kind == "vector" and bm.info.vector_layers == ("segments",)
    assert bm.gzipped and bm.content_type == "application/vnd.mapbox-vector-tile"
    k, body = next(iter(tiles.items()))
    assert decode(gzip.decompress(bm.tile(*k) or b""))["segments"]
    layers = style_layers(bm.info)
    assert {(layer["type"], layer["source-layer"]) for layer in layers} == {
        ("fill", "segments"),
        ("line", "segments"),
    }


def test_bad_files_are_refused_in_plain_words(tmp_path: Path) -> None:
    good = raster_archive(tmp_path / "good.pmtiles", ZZ, [10])
    cases: dict[str, bytes | None] = {
        "missing.pmtiles": None,
        "short.pmtiles": b"PMTiles",
        "other.pmtiles": b"PK\x03\x04" + b"\x00" * 200,
        "v2.pmtiles": b"PMTiles\x02" + b"\x00" * 200,
        "cut.pmtiles": good.read_bytes()[:300],
    }
    expected = {
        "missing.pmtiles": "cannot read",
        "short.pmtiles": "too short",
        "other.pmtiles": "no PMTiles magic",
        "v2.pmtiles": "version",
        "cut.pmtiles": "truncated",
    }
    for name, data in cases.items():
        path = tmp_path / name
        if data is not None:
            path.write_bytes(data)
        with pytest.raises(BasemapError, match=expected[name]) as err:
            Basemap.open(str(path))
        assert str(path) in str(err.value)
    no_layers = write_archive(
        tmp_path / "nolayers.pmtiles", TileType.MVT, {(10, 843, 414): b"x"}, ZZ, {}
    )
    with pytest.raises(BasemapError, match="vector_layers"):
        Basemap.open(str(no_layers))


def test_the_setting_is_checked_at_start(tmp_path: Path) -> None:
    (tmp_path / "bad.pmtiles").write_bytes(b"not a map")
    with pytest.raises(SettingsError) as err:
        load_settings(env={"ROADWATCH_BASEMAP": str(tmp_path / "bad.pmtiles")})
    message = str(err.value)
    assert "ROADWATCH_BASEMAP" in message and "\n" not in message
    good = raster_archive(tmp_path / "good.pmtiles", ZZ, [10])
    assert load_settings(env={"ROADWATCH_BASEMAP": str(good)}).basemap == str(good)
    assert load_settings(env={}).basemap == ""


def _app_with(runtime: Any, basemap: str) -> Any:
    rt = copy.copy(runtime)
    rt.settings = runtime.settings.model_copy(update={"basemap": basemap})
    rt.extras = {}
    app, _ = create_app(rt)
    return app, rt


def _page_config(client: Any) -> dict[str, Any]:
    page = client.get("/").get_data(as_text=True)
    start = page.index('id="rw-config"')
    body = page[page.index(">", start) + 1 : page.index("</script>", start)]
    config: dict[str, Any] = json.loads(body)
    return config


@pytest.mark.parametrize("runtime", ["sqlite"], indirect=True)
def test_the_command_centre_serves_its_basemap(runtime: Any, tmp_path: Path) -> None:
    path = raster_archive(tmp_path / "city.pmtiles", ZZ, range(10, 12))
    app, rt = _app_with(runtime, str(path))
    try:
        client = app.test_client()
        z, x, y = tiles_covering(ZZ, [11])[0]
        assert client.get(f"/api/centre/basemap/v/{z}/{x}/{y}").status_code == 401  # staff only
        login(client, rt)
        cfg = _page_config(client)["map"]["basemap"]
        assert cfg["source"]["type"] == "raster" and cfg["source"]["maxzoom"] == 11
        url = cfg["source"]["tiles"][0].format(z=z, x=x, y=y)
        res = client.get(url)
        assert res.status_code == 200 and res.mimetype == "image/png"
        assert res.data == png((200, 220, 240))
        assert "immutable" in res.headers["Cache-Control"]
        assert client.get(url.replace(f"/{x}/", f"/{x + 9}/")).status_code == 204  # no tile
        stale = url.replace(cfg["source"]["tiles"][0].split("/")[-4], "0-0")
        assert client.get(stale).status_code == 404  # another version of the file
        assert cfg["layers"][0]["source"] == "basemap"
    finally:
        rt.extras["basemap"].close()


@pytest.mark.parametrize("runtime", ["sqlite"], indirect=True)
def test_gzipped_tiles_go_out_as_stored_or_plain(
    runtime: Any, tmp_path: Path, network_ctx: Any
) -> None:
    segs = network_ctx.network.segments[:50]
    source = SegmentTiles([s.id for s in segs], [s.road for s in segs], [s.geometry for s in segs])
    key = next(k for k in tiles_covering(source.bounds, [13]) if source.encode(*k)[0])
    body = source.encode(*key)[0]
    path = write_archive(
        tmp_path / "v.pmtiles",
        TileType.MVT,
        {key: body},
        source.bounds,
        {"vector_layers": [{"id": "segments"}]},
        gzip_tiles=True,
    )
    app, rt = _app_with(runtime, str(path))
    client = app.test_client()
    login(client, rt)
    url = _page_config(client)["map"]["basemap"]["source"]["tiles"][0].format(
        z=key[0], x=key[1], y=key[2]
    )
    zipped = client.get(url, headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.data) == body
    plain = client.get(url, headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers and plain.data == body


@pytest.mark.parametrize("runtime", ["sqlite"], indirect=True)
def test_without_a_basemap_nothing_changes(runtime: Any) -> None:
    app, rt = _app_with(runtime, "")
    client = app.test_client()
    login(client, rt)
    assert _page_config(client)["map"]["basemap"] is None
    res = client.get("/api/centre/basemap/0-0/10/843/414")
    assert res.status_code == 404 and res.get_json()["errors"][0]["field"] == "basemap"
