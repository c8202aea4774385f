"""What the command centre's map is drawn from: built once per network and viewer scope.

The page draws the network from pre-built vector tiles (`roadwatch.maps.mvt`) and keeps a
compact table of the segments' attributes (name, road, cross roads, district, length) for
its panel, ticker and counters. Both depend only on the network file and on which segments
a viewer may see (all, or one district's), so they are built once, kept as bytes (and
gzipped), and served under a versioned URL (`key`: the network's digest and the scope)
that a browser may cache for good. The live state never goes into them: it comes from
`GET /api/centre/state` and the live feed, and colours the map through feature state.

The page's configuration carries the scope's bounds (the first view is fitted before the
map is created, so the first frame is the final view) and each district's bounds (the big
screen's tour).
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import shapely
from flask import Response, request
from shapely.geometry.base import BaseGeometry

from ..maps.basemap import Basemap, BasemapError, style_layers
from ..maps.mvt import MAXZOOM, SegmentTiles, lonlat_bounds

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Blob:
    """A response body kept as bytes, gzipped, with its ETag."""

    body: bytes
    gzipped: bytes
    etag: str

    @classmethod
    def of(cls, body: bytes) -> Blob:
        return cls(
            body=body,
            gzipped=gzip.compress(body, compresslevel=6, mtime=0),
            etag=hashlib.sha256(body).hexdigest()[:32],
        )


def send_blob(
    body: bytes, gzipped: bytes, etag: str, mimetype: str, *, immutable: bool
) -> Response:
    """Answer with `body` (gzipped if the client takes it), or 304 if its copy is current."""
    tag = f'"{etag}"'
    cache = "private, max-age=31536000, immutable" if immutable else "private, no-cache"
    if tag in request.headers.get("If-None-Match", ""):
        res = Response(status=304)
    elif (
        gzipped
        and len(gzipped) < len(body)
        and "gzip" in request.headers.get("Accept-Encoding", "")
    ):
        res = Response(gzipped, mimetype=mimetype)
        res.headers["Content-Encoding"] = "gzip"
    else:
        res = Response(body, mimetype=mimetype)
    res.headers["ETag"] = tag
    res.headers["Cache-Control"] = cache
    res.headers["Vary"] = "Accept-Encoding"
    return res


@dataclass(frozen=True)
class SegmentRow:
    id: str
    name: str
    road: str
    from_road: str
    to_road: str
    district: str
    subdistrict: str
    length_m: float
    geometry: BaseGeometry  # lon/lat LineString or MultiLineString


@dataclass
class ScopedMap:
    """The map data of one scope: every segment (scope None) or one district's."""

    key: str
    count: int
    tiles: SegmentTiles
    table: Blob
    bounds: tuple[float, float, float, float] | None
    district_views: list[dict[str, Any]]

    def config(self, root: str) -> dict[str, Any]:
        """The page's `map` configuration."""
        base = f"{root}/api/centre"
        return {
            "key": self.key,
            "segments": self.count,
            "tiles": f"{base}/tiles/{self.key}/{{z}}/{{x}}/{{y}}.pbf",
            "table": f"{base}/segments/{self.key}.json",
            "state": f"{base}/state",
            "chiefs": f"{base}/chiefs",
            "maxzoom": MAXZOOM,
            "bounds": self.bounds,
            "district_views": self.district_views,
        }


def _table(rows: Sequence[SegmentRow]) -> bytes:
    """The segments' attributes as columns; repeated words once, in `strings`."""
    strings: dict[str, int] = {}

    def code(text: str | None) -> int:
        text = text or ""
        k = strings.get(text)
        if k is None:
            k = strings[text] = len(strings)
        return k

    doc = {
        "count": len(rows),
        "id": [r.id for r in rows],
        "name": [r.name for r in rows],
        "road": [code(r.road) for r in rows],
        "from": [code(r.from_road) for r in rows],
        "to": [code(r.to_road) for r in rows],
        "district": [code(r.district) for r in rows],
        "subdistrict": [code(r.subdistrict) for r in rows],
        "length_m": [round(r.length_m, 1) for r in rows],
    }
    doc["strings"] = list(strings)
    return orjson.dumps(doc)


def _bounds_list(b: tuple[float, float, float, float] | None) -> list[float] | None:
    return [round(v, 6) for v in b] if b is not None else None


class MapData:
    """The map data of one network, per scope, built on first use and then kept."""

    def __init__(self, rows: Sequence[SegmentRow], version: str) -> None:
        self.rows = list(rows)
        self.version = version
        self._scoped: dict[str | None, ScopedMap] = {}
        self._lock = threading.Lock()

    def scoped(self, district: str | None) -> ScopedMap:
        with self._lock:
            hit = self._scoped.get(district)
            if hit is None:
                hit = self._scoped[district] = self._build(district)
            return hit

    def _build(self, district: str | None) -> ScopedMap:
        rows = [r for r in self.rows if district is None or r.district == district]
        geoms = [r.geometry for r in rows]
        by_district: dict[str, list[BaseGeometry]] = {}
        for r in rows:
            if r.district:
                by_district.setdefault(r.district, []).append(r.geometry)
        views = [
            {"code": code, "bounds": _bounds_list(lonlat_bounds(g))}
            for code, g in sorted(by_district.items())
        ]
        return ScopedMap(
            key=f"{self.version}-{district or 'all'}",
            count=len(rows),
            tiles=SegmentTiles([r.id for r in rows], [r.road for r in rows], geoms),
            table=Blob.of(_table(rows)),
            bounds=_bounds_list(lonlat_bounds(geoms)),  # type: ignore[arg-type]
            district_views=views,
        )


def basemap_of(runtime: Any) -> Basemap | None:
    """The configured basemap, opened once per process (None without one)."""
    path = runtime.settings.basemap
    if not path:
        return None
    opened: Basemap | None = runtime.extras.get("basemap")
    if opened is None or opened.path != path:
        opened = runtime.extras["basemap"] = Basemap.open(path)
    return opened


def basemap_config(runtime: Any, root: str) -> dict[str, Any] | None:
    """The page's `map.basemap`: a MapLibre source and its layers, or None."""
    basemap = basemap_of(runtime)
    if basemap is None:
        return None
    info = basemap.info
    source: dict[str, Any] = {
        "type": info.kind,
        "tiles": [f"{root}/api/centre/basemap/{info.version}/{{z}}/{{x}}/{{y}}"],
        "minzoom": info.minzoom,
        "maxzoom": info.maxzoom,
        "bounds": list(info.bounds),
    }
    if info.kind == "raster":
        source["tileSize"] = 256
    if info.attribution:
        source["attribution"] = info.attribution
    return {"source": source, "layers": style_layers(info)}


def map_data_of(runtime: Any) -> MapData:
    """The runtime's network as map data (built once per loaded network)."""
    ctx = runtime.ctx
    cached: MapData | None = runtime.extras.get("map_data")
    if cached is not None and cached.version == ctx.digest[:16]:
        return cached
    rows = [
        SegmentRow(
            id=s.id,
            name=s.name,
            road=s.road,
            from_road=s.from_road,
            to_road=s.to_road,
            district=s.district,
            subdistrict=s.subdistrict,
            length_m=s.length_m,
            geometry=s.geometry,
        )
        for s in ctx.network.segments
    ]
    data = MapData(rows, ctx.digest[:16])
    runtime.extras["map_data"] = data
    return data


def rows_from_features(features: Sequence[dict[str, Any]]) -> list[SegmentRow]:
    """SegmentRows from GeoJSON features as /api/segments serves them (tests, stand-ins)."""
    out = []
    for f in features:
        p = f["properties"]
        out.append(
            SegmentRow(
                id=str(p.get("id", f.get("id"))),
                name=p.get("name") or "",
                road=p.get("road") or "",
                from_road=p.get("from") or "",
                to_road=p.get("to") or "",
                district=p.get("district") or "",
                subdistrict=p.get("subdistrict") or "",
                length_m=float(p.get("length_m") or 0.0),
                geometry=shapely.geometry.shape(f["geometry"]),
            )
        )
    return out


def tile_response(scoped: ScopedMap, z: int, x: int, y: int) -> Response:
    tile = scoped.tiles.tile(z, x, y)
    return send_blob(tile.body, tile.gzipped, tile.etag, "application/x-protobuf", immutable=True)


def table_response(scoped: ScopedMap) -> Response:
    t = scoped.table
    return send_blob(t.body, t.gzipped, t.etag, "application/json", immutable=True)


def state_doc(
    states: Sequence[dict[str, Any]], seq: int, stats: dict[str, Any], visible: Any
) -> dict[str, Any]:
    """The live-state snapshot: only segments with something open (the rest are calm)."""
    return {
        "seq": seq,
        "stats": stats,
        "states": {
            s["segment_id"]: [s["open"], s["overdue"], s["score"]]
            for s in states
            if visible(s["segment_id"])
        },
    }


def basemap_tile_response(runtime: Any, version: str, z: int, x: int, y: int) -> Response:
    """One tile of the city's basemap (staff: /api/centre/basemap, chiefs: /m/api/basemap)."""
    from .errors import ApiError

    basemap = basemap_of(runtime)
    if basemap is None or version != basemap.info.version:
        raise ApiError(404, "basemap", "not_found", "no such basemap (none, or a newer file)")
    try:
        data = basemap.tile(z, x, y)
    except BasemapError as exc:
        log.error("basemap: %s", exc)
        raise ApiError(500, "basemap", "damaged", "the basemap file is damaged") from None
    if data is None:  # outside the archive: an empty tile, not an error
        res = Response(status=204)
    elif basemap.gzipped and "gzip" not in request.headers.get("Accept-Encoding", ""):
        res = Response(gzip.decompress(data), mimetype=basemap.content_type)
    else:
        res = Response(data, mimetype=basemap.content_type)
        if basemap.gzipped:
            res.headers["Content-Encoding"] = "gzip"
    res.headers["Cache-Control"] = "private, max-age=31536000, immutable"  # V is versioned
    res.headers["Vary"] = "Accept-Encoding"
    return res
