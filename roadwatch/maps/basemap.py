"""A city's own offline basemap: one PMTiles archive, served tile by tile from our origin.

PMTiles (https://github.com/protomaps/PMTiles) keeps a whole tile pyramid in one file
with an index, so a city can copy a single file onto the server: no tile server, no web
tiles. The command centre asks for `/api/centre/basemap/Z/X/Y` like any XYZ source and
this module answers from the file (memory-mapped; directories parsed once and kept).

Raster archives (PNG, JPEG, WebP, AVIF) are drawn as they are; vector archives (MVT) are
drawn with a plain generic style built from the archive's own `vector_layers` (areas
filled, lines stroked, faintly, under the segments), so any schema works without a style
file. Nothing here knows Flask.
"""

from __future__ import annotations

import gzip
import mmap
import os
import threading
from dataclasses import dataclass
from typing import Any

import orjson
from pmtiles.tile import (
    Compression,
    Entry,
    MagicNumberNotFound,
    SpecVersionUnsupported,
    TileType,
    deserialize_header,
    find_tile,
    zxy_to_tileid,
)

CONTENT_TYPES = {
    TileType.MVT: "application/vnd.mapbox-vector-tile",
    TileType.PNG: "image/png",
    TileType.JPEG: "image/jpeg",
    TileType.WEBP: "image/webp",
    TileType.AVIF: "image/avif",
}
MAX_DIRECTORY_DEPTH = 4  # the spec's limit: root plus three levels of leaves
MAX_CACHED_DIRECTORIES = 512  # a leaf directory is a few KB parsed


class BasemapError(ValueError):
    """The file is not a usable basemap; the message is meant for the operator."""


@dataclass(frozen=True)
class BasemapInfo:
    kind: str  # "raster" or "vector"
    tile_type: str  # "png", "mvt", …
    minzoom: int
    maxzoom: int
    bounds: tuple[float, float, float, float]
    attribution: str
    vector_layers: tuple[str, ...]
    version: str  # changes when the file does (size and modification time)


class Basemap:
    """An open PMTiles archive. Thread-safe: reads only; parsed directories are kept."""

    def __init__(
        self, path: str, info: BasemapInfo, mapped: mmap.mmap, header: dict[str, Any]
    ) -> None:
        self.path, self.info, self._map, self._header = path, info, mapped, header
        self._lock = threading.Lock()
        self._dirs: dict[tuple[int, int], list[Entry]] = {}

    @classmethod
    def open(cls, path: str) -> Basemap:
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < 127:
                    raise BasemapError(f"{path} is not a PMTiles archive (too short)")
                mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError as exc:
            raise BasemapError(f"cannot read {path}: {exc.strerror or exc}") from None
        try:
            header: dict[str, Any] = dict(deserialize_header(mapped[0:127]))
        except MagicNumberNotFound:
            raise BasemapError(f"{path} is not a PMTiles archive (no PMTiles magic)") from None
        except SpecVersionUnsupported:
            raise BasemapError(f"{path} is a PMTiles version other than 3") from None
        except Exception as exc:  # a truncated or damaged header
            raise BasemapError(f"{path} has a damaged PMTiles header ({exc})") from None
        for what in ("internal_compression", "tile_compression"):
            if header[what] not in (Compression.NONE, Compression.GZIP):
                raise BasemapError(
                    f"{path} is compressed with {header[what].name.lower()} ({what}); "
                    "roadwatch reads archives compressed with gzip or not at all "
                    "(`pmtiles convert` can rewrite it)"
                )
        tile_type = header["tile_type"]
        if tile_type not in CONTENT_TYPES:
            raise BasemapError(f"{path} holds tiles of an unknown type ({tile_type})")
        end = max(
            header["root_offset"] + header["root_length"],
            header["metadata_offset"] + header["metadata_length"],
            header["tile_data_offset"] + header["tile_data_length"],
        )
        if end > size:
            raise BasemapError(f"{path} is truncated ({size:,} bytes, its index says {end:,})")
        metadata = _metadata(mapped, header, path)
        layers = tuple(
            str(layer["id"])
            for layer in metadata.get("vector_layers") or []
            if isinstance(layer, dict) and isinstance(layer.get("id"), str)
        )
        if tile_type == TileType.MVT and not layers:
            raise BasemapError(f"{path} is a vector archive without vector_layers metadata")
        stat = os.stat(path)
        info = BasemapInfo(
            kind="vector" if tile_type == TileType.MVT else "raster",
            tile_type=str(tile_type.name).lower(),
            minzoom=int(header["min_zoom"]),
            maxzoom=int(header["max_zoom"]),
            bounds=(
                header["min_lon_e7"] / 1e7,
                header["min_lat_e7"] / 1e7,
                header["max_lon_e7"] / 1e7,
                header["max_lat_e7"] / 1e7,
            ),
            attribution=str(metadata.get("attribution") or ""),
            vector_layers=layers,
            version=f"{stat.st_size:x}-{int(stat.st_mtime):x}",
        )
        return cls(path, info, mapped, header)

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self._header["tile_type"]]

    @property
    def gzipped(self) -> bool:
        """Tiles are stored gzip-compressed (sent as they are, with Content-Encoding)."""
        return bool(self._header["tile_compression"] == Compression.GZIP)

    def tile(self, z: int, x: int, y: int) -> bytes | None:
        """The stored bytes of one tile, or None when the archive has none there."""
        if not (self.info.minzoom <= z <= self.info.maxzoom) or not (
            0 <= x < (1 << z) and 0 <= y < (1 << z)
        ):
            return None
        tile_id = zxy_to_tileid(z, x, y)
        h = self._header
        offset, length = h["root_offset"], h["root_length"]
        for _ in range(MAX_DIRECTORY_DEPTH):
            entry = find_tile(self._directory(offset, length), tile_id)
            if entry is None:
                return None
            if entry.run_length > 0:
                start = h["tile_data_offset"] + entry.offset
                return bytes(self._map[start : start + entry.length])
            offset, length = h["leaf_directory_offset"] + entry.offset, entry.length
        return None

    def _directory(self, offset: int, length: int) -> list[Entry]:
        key = (offset, length)
        with self._lock:
            found = self._dirs.get(key)
        if found is not None:
            return found
        raw = self._map[offset : offset + length]
        try:
            if self._header["internal_compression"] == Compression.GZIP:
                raw = gzip.decompress(raw)
            entries = _directory_entries(raw)
        except (OSError, EOFError, IndexError, ValueError) as exc:
            raise BasemapError(f"{self.path} has a damaged directory ({exc})") from None
        with self._lock:
            if len(self._dirs) >= MAX_CACHED_DIRECTORIES:
                self._dirs.clear()
            self._dirs[key] = entries
        return entries

    def close(self) -> None:
        self._map.close()


def _directory_entries(raw: bytes) -> list[Entry]:
    """A PMTiles v3 directory (uncompressed): ids, run lengths, lengths, then offsets."""
    pos = 0

    def varint() -> int:
        nonlocal pos
        value, shift = 0, 0
        while True:
            byte = raw[pos]  # IndexError on a cut directory
            pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7
            if shift > 63:
                raise ValueError("a varint longer than 64 bits")

    n = varint()
    if n > len(raw):  # each entry takes at least a byte per column
        raise ValueError(f"a directory of {n} entries in {len(raw)} bytes")
    entries: list[Entry] = []
    tile_id = 0
    for _ in range(n):
        tile_id += varint()
        entries.append(Entry(tile_id, 0, 0, 0))
    for e in entries:
        e.run_length = varint()
    for e in entries:
        e.length = varint()
    for i, e in enumerate(entries):
        v = varint()
        e.offset = entries[i - 1].offset + entries[i - 1].length if i > 0 and v == 0 else v - 1
    return entries


def _metadata(mapped: mmap.mmap, header: dict[str, Any], path: str) -> dict[str, Any]:
    raw = mapped[header["metadata_offset"] : header["metadata_offset"] + header["metadata_length"]]
    if not raw:
        return {}
    try:
        if header["internal_compression"] == Compression.GZIP:
            raw = gzip.decompress(raw)
        doc = orjson.loads(raw)
    except (OSError, EOFError, orjson.JSONDecodeError) as exc:
        raise BasemapError(f"{path} has unreadable metadata ({exc})") from None
    return doc if isinstance(doc, dict) else {}


def style_layers(info: BasemapInfo, source: str = "basemap") -> list[dict[str, Any]]:
    """MapLibre layers that draw the basemap plainly, under everything else."""
    if info.kind == "raster":
        return [
            {
                "id": f"{source}-raster",
                "type": "raster",
                "source": source,
                "paint": {"raster-opacity": 0.55, "raster-saturation": -0.6},
            }
        ]
    layers: list[dict[str, Any]] = []
    for name in info.vector_layers:
        layers.append(
            {
                "id": f"{source}-{name}-area",
                "type": "fill",
                "source": source,
                "source-layer": name,
                "filter": ["==", ["geometry-type"], "Polygon"],
                "paint": {"fill-color": "#8a94a6", "fill-opacity": 0.12},
            }
        )
        layers.append(
            {
                "id": f"{source}-{name}-line",
                "type": "line",
                "source": source,
                "source-layer": name,
                "filter": ["==", ["geometry-type"], "LineString"],
                "paint": {"line-color": "#8a94a6", "line-opacity": 0.35, "line-width": 0.8},
            }
        )
    return layers
