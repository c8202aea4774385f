"""Small PMTiles archives for the basemap tests, written with the pmtiles package."""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

from pmtiles.tile import Compression, TileType, zxy_to_tileid
from pmtiles.writer import write


def png(rgb: tuple[int, int, int], size: int = 256) -> bytes:
    """A plain one-colour PNG (no imaging library needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * size
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(row * size))
        + chunk(b"IEND", b"")
    )


def tiles_covering(
    bounds: tuple[float, float, float, float], zooms: Iterable[int]
) -> list[tuple[int, int, int]]:
    """Every z/x/y of `zooms` that touches lon/lat `bounds`."""
    w, s, e, n = bounds

    def xy(lon: float, lat: float, z: int) -> tuple[int, int]:
        k = 1 << z
        x = int((lon + 180) / 360 * k)
        y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * k)
        return min(max(x, 0), k - 1), min(max(y, 0), k - 1)

    out = []
    for z in zooms:
        x0, y0 = xy(w, n, z)
        x1, y1 = xy(e, s, z)
        out += [(z, x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]
    return out


def write_archive(
    path: Path,
    tile_type: TileType,
    tiles: dict[tuple[int, int, int], bytes],
    bounds: tuple[float, float, float, float],
    metadata: dict[str, object],
    *,
    gzip_tiles: bool = False,
) -> Path:
    zooms = [z for z, _, _ in tiles]
    with write(str(path)) as writer:
        for key in sorted(tiles, key=lambda t: zxy_to_tileid(*t)):
            data = tiles[key]
            writer.write_tile(zxy_to_tileid(*key), gzip.compress(data) if gzip_tiles else data)
        writer.finalize(
            {
                "tile_type": tile_type,
                "tile_compression": Compression.GZIP if gzip_tiles else Compression.NONE,
                "min_lon_e7": int(bounds[0] * 1e7),
                "min_lat_e7": int(bounds[1] * 1e7),
                "max_lon_e7": int(bounds[2] * 1e7),
                "max_lat_e7": int(bounds[3] * 1e7),
                "center_zoom": min(zooms),
                "center_lon_e7": int((bounds[0] + bounds[2]) / 2 * 1e7),
                "center_lat_e7": int((bounds[1] + bounds[3]) / 2 * 1e7),
            },
            metadata,
        )
    return path


def raster_archive(
    path: Path,
    bounds: tuple[float, float, float, float],
    zooms: Iterable[int],
    colour: Callable[[int, int, int], tuple[int, int, int]] = lambda z, x, y: (200, 220, 240),
) -> Path:
    keys = tiles_covering(bounds, zooms)
    tiles = {k: png(colour(*k)) for k in keys}
    return write_archive(path, TileType.PNG, tiles, bounds, {"attribution": "© test city"})
