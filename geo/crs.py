"""Chinese map coordinate systems: WGS84, GCJ-02 and BD-09.

Phone map SDKs in China report GCJ-02 (Amap, Tencent, WeChat) or BD-09
(Baidu); road geometry is WGS84. In Zhengzhou GCJ-02 is ~0.55 km and BD-09
~1.2 km away from WGS84, so every report must be converted before snapping.

The forward formulas are the published ones (Krasovsky ellipsoid constants and
the well-known ``transformlat``/``transformlon`` polynomials). Both reverse
directions have no closed form; we invert the forward formula by fixed-point
iteration, which converges to far below a millimetre in a few steps because the
offset varies slowly with position.

Every function accepts Python floats or numpy arrays and returns the same kind:
floats go through :mod:`math` (numpy costs ~1 µs per call on 0-d arrays, which
would make the live path ~10x slower: measured ~2 µs forward, ~10 µs for an
iterated inverse), arrays through numpy.

The offsets are applied only inside China's bounding box (:func:`out_of_china`);
outside it every function returns its input unchanged, which is what the
Chinese SDKs do abroad. The box is tested on the *input* of each public
function, so within ~1 km of the box edge (open sea and empty land) a round
trip may not close; nothing in Zhengzhou is near it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, Final, TypeVar, overload

import numpy as np
import numpy.typing as npt

__all__ = [
    "utm_epsg",
    "SUPPORTED_CRS",
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "out_of_china",
    "to_wgs84",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
]

FloatArray = npt.NDArray[np.float64]
# float or float64 array in, the same kind out (np.float64 is a float subclass).
Coord = TypeVar("Coord", float, FloatArray)
Pair = tuple[Any, Any]
Kernel = Callable[[Any, Any, SimpleNamespace], Pair]

SUPPORTED_CRS: Final[tuple[str, ...]] = ("WGS84", "GCJ02", "BD09")

# Krasovsky 1940 ellipsoid, as used by the published GCJ-02 formula.
_A: Final = 6378245.0
_EE: Final = 0.00669342162296594323
_X_PI: Final = math.pi * 3000.0 / 180.0

# China's bounding box as used by every public implementation.
_LON_MIN, _LON_MAX = 72.004, 137.8347
_LAT_MIN, _LAT_MAX = 0.8293, 55.8271

# 1e-12 degrees is ~0.1 µm; the offsets change by <1e-4 per degree, so each
# iteration gains ~4 digits and 10 is a generous ceiling.
_TOL_DEG: Final = 1e-12
_MAX_ITER: Final = 10

# The same kernels run on floats and arrays; only the maths backend differs.
_M = SimpleNamespace(sin=math.sin, cos=math.cos, sqrt=math.sqrt, abs=abs, atan2=math.atan2)
_NP = SimpleNamespace(sin=np.sin, cos=np.cos, sqrt=np.sqrt, abs=np.abs, atan2=np.arctan2)


def _transform(x: Any, y: Any, m: SimpleNamespace) -> Pair:
    """The published transformlat/transformlon polynomials, as (dlat, dlon) in metres.

    Computed together because they share the sin(6x pi) and sin(2x pi) terms
    (the scalar live path is dominated by these sines).
    """
    pi = math.pi
    shared = (20.0 * m.sin(6.0 * x * pi) + 20.0 * m.sin(2.0 * x * pi)) * 2.0 / 3.0
    lat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * m.sqrt(m.abs(x))
    lat = lat + shared
    lat = lat + (20.0 * m.sin(y * pi) + 40.0 * m.sin(y / 3.0 * pi)) * 2.0 / 3.0
    lat = lat + (160.0 * m.sin(y / 12.0 * pi) + 320.0 * m.sin(y * pi / 30.0)) * 2.0 / 3.0
    lon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * m.sqrt(m.abs(x))
    lon = lon + shared
    lon = lon + (20.0 * m.sin(x * pi) + 40.0 * m.sin(x / 3.0 * pi)) * 2.0 / 3.0
    lon = lon + (150.0 * m.sin(x / 12.0 * pi) + 300.0 * m.sin(x / 30.0 * pi)) * 2.0 / 3.0
    return lat, lon


def _wgs_to_gcj(lon: Any, lat: Any, m: SimpleNamespace) -> Pair:
    dlat, dlon = _transform(lon - 105.0, lat - 35.0, m)
    radlat = lat / 180.0 * math.pi
    magic = m.sin(radlat)
    magic = 1.0 - _EE * magic * magic
    sqrtmagic = m.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrtmagic) * math.pi)
    dlon = (dlon * 180.0) / (_A / sqrtmagic * m.cos(radlat) * math.pi)
    return lon + dlon, lat + dlat


def _gcj_to_bd(lon: Any, lat: Any, m: SimpleNamespace) -> Pair:
    z = m.sqrt(lon * lon + lat * lat) + 0.00002 * m.sin(lat * _X_PI)
    theta = m.atan2(lat, lon) + 0.000003 * m.cos(lon * _X_PI)
    return z * m.cos(theta) + 0.0065, z * m.sin(theta) + 0.006


def _bd_to_gcj_published(lon: Any, lat: Any, m: SimpleNamespace) -> Pair:
    # The published reverse: only approximate (cm-level), used as first guess.
    x = lon - 0.0065
    y = lat - 0.006
    z = m.sqrt(x * x + y * y) - 0.00002 * m.sin(y * _X_PI)
    theta = m.atan2(y, x) - 0.000003 * m.cos(x * _X_PI)
    return z * m.cos(theta), z * m.sin(theta)


def _invert(forward: Kernel, lon: Any, lat: Any, x: Any, y: Any, m: SimpleNamespace) -> Pair:
    """Solve forward(x, y) == (lon, lat) by x <- x - (forward(x) - target)."""
    for _ in range(_MAX_ITER):
        fx, fy = forward(x, y, m)
        dx = fx - lon
        dy = fy - lat
        x = x - dx
        y = y - dy
        if m is _M:
            step = max(abs(dx), abs(dy))
        else:
            # Only finite points inside China get here (see _apply), so max is safe.
            step = max(float(np.max(np.abs(dx))), float(np.max(np.abs(dy))))
        if step < _TOL_DEG:
            break
    return x, y


def _gcj_to_wgs(lon: Any, lat: Any, m: SimpleNamespace) -> Pair:
    # Offset at the GCJ point is a good first guess: within metres of the answer.
    gx, gy = _wgs_to_gcj(lon, lat, m)
    return _invert(_wgs_to_gcj, lon, lat, 2.0 * lon - gx, 2.0 * lat - gy, m)


def _bd_to_gcj(lon: Any, lat: Any, m: SimpleNamespace) -> Pair:
    x, y = _bd_to_gcj_published(lon, lat, m)
    return _invert(_gcj_to_bd, lon, lat, x, y, m)


def _wgs_to_bd(lon: Any, lat: Any, m: SimpleNamespace) -> Pair:
    gx, gy = _wgs_to_gcj(lon, lat, m)
    return _gcj_to_bd(gx, gy, m)


def _bd_to_wgs(lon: Any, lat: Any, m: SimpleNamespace) -> Pair:
    gx, gy = _bd_to_gcj(lon, lat, m)
    return _gcj_to_wgs(gx, gy, m)


def _is_out(lon: Any, lat: Any) -> Any:
    return ~((lon >= _LON_MIN) & (lon <= _LON_MAX) & (lat >= _LAT_MIN) & (lat <= _LAT_MAX))


def _scalars(lon: Any, lat: Any) -> bool:
    # isinstance first: np.ndim costs ~1 µs, a third of a forward transform.
    if isinstance(lon, float | int) and isinstance(lat, float | int):
        return True
    return bool(np.ndim(lon) == 0 and np.ndim(lat) == 0)


def _apply(kernel: Kernel, lon: Any, lat: Any) -> Pair:
    """Run kernel on floats (math) or arrays (numpy), identity outside China."""
    if _scalars(lon, lat):
        flon, flat = float(lon), float(lat)
        if not (_LON_MIN <= flon <= _LON_MAX and _LAT_MIN <= flat <= _LAT_MAX):
            return flon, flat
        x, y = kernel(flon, flat, _M)
        return float(x), float(y)
    alon, alat = np.broadcast_arrays(
        np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
    )
    out = _is_out(alon, alat)
    # Compute only inside China: no wasted work, and no overflow warnings from
    # NaN/huge inputs under pytest's -W error.
    x = alon.copy()
    y = alat.copy()
    inside = ~out
    if inside.any():
        x[inside], y[inside] = kernel(alon[inside], alat[inside], _NP)
    return x, y


@overload
def out_of_china(lon: float, lat: float) -> bool: ...
@overload
def out_of_china(lon: FloatArray, lat: FloatArray) -> npt.NDArray[np.bool_]: ...
def out_of_china(lon: Any, lat: Any) -> Any:
    """True where the point is outside China's box (bool, or bool array for arrays).

    NaN counts as outside, so it passes through every conversion unchanged.
    """
    if _scalars(lon, lat):
        return not (_LON_MIN <= float(lon) <= _LON_MAX and _LAT_MIN <= float(lat) <= _LAT_MAX)
    return _is_out(np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64))


def wgs84_to_gcj02(lon: Coord, lat: Coord) -> tuple[Coord, Coord]:
    """WGS84 -> GCJ-02 (published formula)."""
    return _apply(_wgs_to_gcj, lon, lat)


def gcj02_to_wgs84(lon: Coord, lat: Coord) -> tuple[Coord, Coord]:
    """GCJ-02 -> WGS84, exact inverse of :func:`wgs84_to_gcj02` (< 1e-12 deg)."""
    return _apply(_gcj_to_wgs, lon, lat)


def gcj02_to_bd09(lon: Coord, lat: Coord) -> tuple[Coord, Coord]:
    """GCJ-02 -> BD-09 (published formula)."""
    return _apply(_gcj_to_bd, lon, lat)


def bd09_to_gcj02(lon: Coord, lat: Coord) -> tuple[Coord, Coord]:
    """BD-09 -> GCJ-02, exact inverse of :func:`gcj02_to_bd09`.

    The published reverse formula is only approximate, so it is refined by
    iterating the forward formula.
    """
    return _apply(_bd_to_gcj, lon, lat)


def wgs84_to_bd09(lon: Coord, lat: Coord) -> tuple[Coord, Coord]:
    """WGS84 -> BD-09 (via GCJ-02)."""
    return _apply(_wgs_to_bd, lon, lat)


def bd09_to_wgs84(lon: Coord, lat: Coord) -> tuple[Coord, Coord]:
    """BD-09 -> WGS84 (via GCJ-02, both steps exact inverses)."""
    return _apply(_bd_to_wgs, lon, lat)


_TO_WGS84: Final[dict[str, Kernel | None]] = {
    "WGS84": None,
    "GCJ02": _gcj_to_wgs,
    "BD09": _bd_to_wgs,
}


def to_wgs84(lon: Coord, lat: Coord, crs: str) -> tuple[Coord, Coord]:
    """Convert from ``crs`` (one of :data:`SUPPORTED_CRS`, any case) to WGS84."""
    key = crs.upper() if isinstance(crs, str) else crs
    if key not in _TO_WGS84:
        raise ValueError(
            f"unsupported coordinate system {crs!r}; expected one of {', '.join(SUPPORTED_CRS)}"
        )
    kernel = _TO_WGS84[key]
    if kernel is None:
        # Same return kind as the other branches: float stays float, array is copied.
        if _scalars(lon, lat):
            return float(lon), float(lat)  # type: ignore[return-value]
        alon, alat = np.broadcast_arrays(
            np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
        )
        return alon.copy(), alat.copy()  # type: ignore[return-value]
    return _apply(kernel, lon, lat)


def utm_epsg(lon: float, lat: float) -> int:
    """The EPSG code of the WGS84 UTM zone of a point (32649 for Zhengzhou).

    Zone 1 starts at 180°W, zone 60 ends at 180°E: a point on the antimeridian given as
    +180 is in zone 60 (the zone it borders from the west), given as -180 in zone 1.
    """
    zone = min(60, max(1, int(math.floor((lon + 180.0) / 6.0)) + 1))
    return (32600 if lat >= 0 else 32700) + zone
