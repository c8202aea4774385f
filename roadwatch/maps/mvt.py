"""Mapbox Vector Tiles (MVT 2.1) of the segment network, built with NumPy and shapely.

The command centre's map draws the network from these tiles: MapLibre's worker only decodes
them, where a GeoJSON source would first have to cut the whole network into tiles in the
browser (geojson-vt: 0.3 s for 2,495 segments and 1.2 s for 25,000 in software-rendering
Chromium, before anything is drawn).

A tile holds one layer, `segments`, with one LineString feature per segment that crosses
the tile (both carriageways of a paired segment are one feature) and two properties: `id`
(the segment id: the map's feature-state key) and `road` (for the road-name labels). The
live state is never in a tile: the page colours segments through feature state, so a
tile's bytes depend only on the network, and are cached for as long as it is loaded.

No dependency beyond NumPy and shapely: the protobuf is written here (the format is small:
https://github.com/mapbox/vector-tile-spec/tree/master/2.1).
"""

from __future__ import annotations

import gzip
import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict

import numpy as np
import shapely
from shapely import STRtree
from shapely.geometry.base import BaseGeometry

LAYER = "segments"
EXTENT = 4096
# Around each tile, as MapLibre's GeoJSON source keeps: lines that leave the tile are cut
# this far outside it, so their ends and joins are drawn across tile edges.
BUFFER = 64
MAXZOOM = 14  # tiles exist for zoom 0-14; MapLibre over-zooms the z14 ones beyond
SIMPLIFY = 3.0  # tile units (of EXTENT): geojson-vt's default tolerance
MAX_LAT = 85.0511287798066

_MOVE_TO_1 = (1 & 0x7) | (1 << 3)
_LINE_TO = 2
_LINESTRING = 2


# -- protobuf ------------------------------------------------------------------------------
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint((number << 3) | 2) + _varint(len(payload)) + payload


def _varints(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unsigned varints of `values` (any integer array < 2**35): (bytes, bytes per value)."""
    v = values.astype(np.uint64, copy=False)
    size = np.ones(v.shape, np.int64)
    for k in (7, 14, 21, 28):
        size += v >= (1 << k)
    starts = np.cumsum(size) - size
    out = np.empty(int(size.sum()), np.uint8)
    for k in range(5):
        has = size > k
        if not has.any():
            break
        byte = (v[has] >> np.uint64(7 * k)) & np.uint64(0x7F)
        more = size[has] > k + 1
        out[starts[has] + k] = (byte | (more.astype(np.uint64) << np.uint64(7))).astype(np.uint8)
    return out, size


def _zigzag(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.int64, copy=False)
    return ((a << 1) ^ (a >> 63)).astype(np.uint64)


def _put(
    out: np.ndarray,
    dest: np.ndarray,
    src: np.ndarray,
    lengths: np.ndarray,
    src_starts: np.ndarray | None = None,
) -> None:
    """Copy runs of `src` (consecutive, or from `src_starts`) to `out` at `dest`."""
    lengths = lengths.astype(np.int64, copy=False)
    n = int(lengths.sum())
    if src_starts is None:
        src_starts = np.cumsum(lengths) - lengths
    run_at = np.cumsum(lengths) - lengths
    within = np.arange(n) - np.repeat(run_at, lengths)
    out[np.repeat(dest, lengths) + within] = src[np.repeat(src_starts, lengths) + within]


def _take(src: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The runs src[starts[i]:starts[i] + lengths[i]], one after another."""
    out = np.empty(int(lengths.sum()), np.uint8)
    _put(out, np.cumsum(lengths) - lengths, src, lengths, src_starts=starts)
    return out


# -- projection ----------------------------------------------------------------------------
def _to_world(coords: np.ndarray) -> np.ndarray:
    """lon/lat (WGS84) -> Web Mercator in world units: x, y in [0, 1], y down."""
    lon = coords[:, 0]
    lat = np.clip(coords[:, 1], -MAX_LAT, MAX_LAT)
    x = (lon + 180.0) / 360.0
    s = np.sin(np.radians(lat))
    y = 0.5 - np.log((1 + s) / (1 - s)) / (4 * math.pi)
    return np.column_stack([x, y])


def lonlat_bounds(geoms: Sequence[BaseGeometry]) -> tuple[float, float, float, float] | None:
    if not len(geoms):
        return None
    b = shapely.total_bounds(np.asarray(geoms, dtype=object))
    return (float(b[0]), float(b[1]), float(b[2]), float(b[3]))


@dataclass(frozen=True)
class Tile:
    body: bytes  # the MVT, uncompressed
    gzipped: bytes
    etag: str
    features: int


class SegmentTiles:
    """Tiles of a set of segments (a city's, or one district's), built on demand and cached.

    `ids`, `roads` and `geoms` are parallel; geometries are lon/lat LineStrings or
    MultiLineStrings.
    """

    def __init__(
        self,
        ids: Sequence[str],
        roads: Sequence[str],
        geoms: Sequence[BaseGeometry],
        *,
        cache_size: int = 4096,
    ) -> None:
        self.ids = list(ids)
        self.roads = [r or "" for r in roads]
        # Each segment's id and each road as a layer's Value (field 4), encoded once.
        id_values = [_field(4, _field(1, i.encode())) for i in self.ids]
        self._id_len = np.fromiter((len(v) for v in id_values), np.int64, len(id_values))
        self._id_at = np.cumsum(self._id_len) - self._id_len
        self._id_values = np.frombuffer(b"".join(id_values), np.uint8)
        road_names = sorted(set(self.roads))
        code = {r: k for k, r in enumerate(road_names)}
        self._road_code = np.fromiter((code[r] for r in self.roads), np.int64, len(self.roads))
        self._road_values = [_field(4, _field(1, r.encode())) for r in road_names]
        world = shapely.transform(np.asarray(geoms, dtype=object), _to_world)
        self.world = np.asarray(world, dtype=object)
        self.tree = STRtree(self.world)
        self.tree.query(shapely.box(0, 0, 0, 0))  # built now, not by two requests at once
        self._world_bounds = shapely.bounds(self.world)
        self.bounds = lonlat_bounds(geoms)
        self._cache: OrderedDict[tuple[int, int, int], Tile] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.ids)

    def tile(self, z: int, x: int, y: int) -> Tile:
        key = (z, x, y)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        body, n = self.encode(z, x, y)
        tile = Tile(
            body=body,
            gzipped=gzip.compress(body, compresslevel=6, mtime=0),
            etag=hashlib.sha256(body).hexdigest()[:32],
            features=n,
        )
        with self._lock:
            self._cache[key] = tile
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return tile

    def encode(self, z: int, x: int, y: int) -> tuple[bytes, int]:
        """The MVT of tile z/x/y and how many features it holds (b"" when none)."""
        n = 1 << z
        if not (0 <= z <= 30 and 0 <= x < n and 0 <= y < n):
            raise ValueError(f"no tile {z}/{x}/{y}")
        pad = BUFFER / EXTENT
        x0, y0 = (x - pad) / n, (y - pad) / n
        x1, y1 = (x + 1 + pad) / n, (y + 1 + pad) / n
        hits = self.tree.query(shapely.box(x0, y0, x1, y1))
        if not len(hits):
            return b"", 0
        hits.sort()  # the network's order: stable tiles, and the same order on every zoom
        geoms = self.world[hits]
        # Only the lines that leave the tile (and its buffer) need cutting.
        b = self._world_bounds[hits]
        out = (b[:, 0] < x0) | (b[:, 1] < y0) | (b[:, 2] > x1) | (b[:, 3] > y1)
        clipped = geoms.copy()
        if out.any():
            clipped[out] = shapely.clip_by_rect(geoms[out], x0, y0, x1, y1)
        if z < MAXZOOM:
            # as MapLibre's GeoJSON tiles (geojson-vt) do: points that move a line by less
            # than 3/8 of a pixel go (a city tile at zoom 11 keeps half the demo's points);
            # the z14 tiles, over-zoomed beyond 14, keep every point
            clipped = shapely.simplify(clipped, SIMPLIFY * (1 / (n * EXTENT)))
        parts, part_feature = shapely.get_parts(clipped, return_index=True)
        keep = ~shapely.is_empty(parts)
        parts, part_feature = parts[keep], part_feature[keep]
        if not len(parts):
            return b"", 0
        coords, point_part = shapely.get_coordinates(parts, return_index=True)
        scale = n * EXTENT
        tx = np.rint((coords[:, 0] - x / n) * scale).astype(np.int64)
        ty = np.rint((coords[:, 1] - y / n) * scale).astype(np.int64)

        # Drop a point that lands on the one before it (same part): at low zoom a
        # segment shrinks to a few tile units. A part never shrinks below two points
        # (a segment never vanishes from a tile it crosses).
        first = np.ones(len(tx), bool)
        first[1:] = point_part[1:] != point_part[:-1]
        last = np.ones(len(tx), bool)
        last[:-1] = point_part[1:] != point_part[:-1]
        same = np.zeros(len(tx), bool)
        same[1:] = (tx[1:] == tx[:-1]) & (ty[1:] == ty[:-1])
        drop = same & ~first
        # keep the part's last point if everything after its first was dropped
        part_kept = np.bincount(point_part[~drop], minlength=len(parts))
        drop &= ~(last & (part_kept[point_part] < 2))
        tx, ty, point_part = tx[~drop], ty[~drop], point_part[~drop]
        first = np.ones(len(tx), bool)
        first[1:] = point_part[1:] != point_part[:-1]
        feature_of_point = part_feature[point_part]
        feature_first = np.ones(len(tx), bool)
        feature_first[1:] = feature_of_point[1:] != feature_of_point[:-1]

        # Geometry commands: the cursor starts at (0, 0) for each feature and carries on
        # from one part to the next within a feature.
        dx = np.diff(tx, prepend=0)
        dy = np.diff(ty, prepend=0)
        dx[feature_first] = tx[feature_first]
        dy[feature_first] = ty[feature_first]
        zx, zy = _zigzag(dx), _zigzag(dy)
        part_len = np.bincount(point_part, minlength=len(parts))
        slots = np.where(first, 4, 2)
        offset = np.cumsum(slots) - slots
        vals = np.empty(int(slots.sum()), np.uint64)
        f, o = first, offset[first]
        vals[o] = _MOVE_TO_1
        vals[o + 1] = zx[f]
        vals[o + 2] = zy[f]
        vals[o + 3] = _LINE_TO | ((part_len[point_part[f]] - 1) << 3)
        r, o = ~first, offset[~first]
        vals[o] = zx[r]
        vals[o + 1] = zy[r]
        val_feature = np.repeat(feature_of_point, slots)
        raw, size = _varints(vals)

        # Each feature's geometry bytes: [start, end) in `raw`.
        features, first_val = np.unique(val_feature, return_index=True)
        byte_at = np.concatenate([[0], np.cumsum(size)])
        g_start = byte_at[first_val]
        g_len = np.append(g_start[1:], len(raw)) - g_start
        segs = hits[features]
        nf = len(segs)

        # The values table: every feature's id, then the roads of this tile.
        road_codes, road_rank = np.unique(self._road_code[segs], return_inverse=True)
        tags = np.column_stack([np.zeros(nf), np.arange(nf), np.ones(nf), nf + road_rank]).astype(
            np.uint64
        )
        tag_raw, tag_size = _varints(tags.ravel())
        t_len = tag_size.reshape(nf, 4).sum(axis=1)
        t_hdr, t_hdr_size = _varints(t_len)
        g_hdr, g_hdr_size = _varints(g_len)
        # feature = 0x12 len(tags) tags 0x18 0x02 0x22 len(geometry) geometry
        body_len = 1 + t_hdr_size + t_len + 3 + g_hdr_size + g_len
        f_hdr, f_hdr_size = _varints(body_len)
        total = 1 + f_hdr_size + body_len  # each feature is field 2 of the layer
        at = np.cumsum(total) - total
        out = np.empty(int(total.sum()), np.uint8)
        out[at] = 0x12
        _put(out, at + 1, f_hdr, f_hdr_size)
        at = at + 1 + f_hdr_size
        out[at] = 0x12
        _put(out, at + 1, t_hdr, t_hdr_size)
        at = at + 1 + t_hdr_size
        _put(out, at, tag_raw, t_len)
        at = at + t_len
        out[at] = 0x18
        out[at + 1] = 0x02
        out[at + 2] = 0x22
        _put(out, at + 3, g_hdr, g_hdr_size)
        at = at + 3 + g_hdr_size
        _put(out, at, raw, g_len, src_starts=g_start)

        ids = _take(self._id_values, self._id_at[segs], self._id_len[segs])
        roads = b"".join(self._road_values[c] for c in road_codes.tolist())
        layer = b"".join(
            [
                b"\x78\x02",  # version = 2 (field 15, varint)
                _field(1, LAYER.encode()),
                out.tobytes(),
                _field(3, b"id"),
                _field(3, b"road"),
                ids.tobytes(),
                roads,
                b"\x28" + _varint(EXTENT),  # extent (field 5, varint)
            ]
        )
        return _field(3, layer), nf


# -- decoding (tests and the benchmark check what the server sends) -------------------------
def _read_varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _messages(buf: bytes) -> list[tuple[int, int | bytes]]:
    out: list[tuple[int, int | bytes]] = []
    i = 0
    while i < len(buf):
        key, i = _read_varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _read_varint(buf, i)
            out.append((number, value))
        elif wire == 2:
            length, i = _read_varint(buf, i)
            out.append((number, buf[i : i + length]))
            i += length
        else:
            raise ValueError(f"unexpected wire type {wire}")
    return out


class Feature(TypedDict):
    properties: dict[str, str | int]
    lines: list[list[tuple[int, int]]]  # in tile units


def decode(buf: bytes) -> dict[str, list[Feature]]:
    """{layer: [{"properties": {...}, "lines": [[(x, y), ...], ...]}]} (tests, benchmarks)."""
    result: dict[str, list[Feature]] = {}
    for number, layer in _messages(buf):
        if number != 3 or not isinstance(layer, bytes):
            continue
        fields = _messages(layer)
        name = next(v for n, v in fields if n == 1)
        keys = [v.decode() for n, v in fields if n == 3 and isinstance(v, bytes)]
        values: list[str | int] = []
        for n, v in fields:
            if n == 4 and isinstance(v, bytes):
                (_, s), *_ = _messages(v)
                values.append(s.decode() if isinstance(s, bytes) else s)
        feats: list[Feature] = []
        for n, v in fields:
            if n != 2 or not isinstance(v, bytes):
                continue
            props: dict[str, str | int] = {}
            lines: list[list[tuple[int, int]]] = []
            for fn, fv in _messages(v):
                if fn == 2 and isinstance(fv, bytes):
                    tags, j = [], 0
                    while j < len(fv):
                        t, j = _read_varint(fv, j)
                        tags.append(t)
                    props.update(
                        {keys[tags[k]]: values[tags[k + 1]] for k in range(0, len(tags), 2)}
                    )
                elif fn == 4 and isinstance(fv, bytes):
                    ints, j = [], 0
                    while j < len(fv):
                        t, j = _read_varint(fv, j)
                        ints.append(t)
                    cx = cy = k = 0
                    while k < len(ints):
                        cmd, count = ints[k] & 7, ints[k] >> 3
                        k += 1
                        for _ in range(count):
                            px, py = ints[k], ints[k + 1]
                            k += 2
                            cx += (px >> 1) ^ -(px & 1)
                            cy += (py >> 1) ^ -(py & 1)
                            if cmd == 1:
                                lines.append([])
                            lines[-1].append((cx, cy))
            feats.append({"properties": props, "lines": lines})
        result[name.decode() if isinstance(name, bytes) else str(name)] = feats
    return result
