"""Tests for geo.crs: published reference values plus mathematical properties."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo import crs
from geo.crs import (
    SUPPORTED_CRS,
    bd09_to_gcj02,
    bd09_to_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    out_of_china,
    to_wgs84,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)

# Reference pairs from the README of wandergis/coordTransform (MIT, the most
# widely copied implementation; https://github.com/wandergis/coordTransform),
# all for the input (116.404, 39.915) in Beijing.
BEIJING = (116.404, 39.915)
REF_WGS_TO_GCJ = (116.41024449916938, 39.91640428150164)
REF_GCJ_TO_BD = (116.41036949371029, 39.92133699351021)
# Those two are forward formulas: we must match them to the last digits.
# coordTransform's reverse directions are one-step approximations, so ours
# (exact inverses) must only be close to them:
REF_BD_TO_GCJ_APPROX = (116.39762729119315, 39.90865673957631)
REF_GCJ_TO_WGS_APPROX = (116.39775550083061, 39.91359571849836)

ZHENGZHOU = (113.65, 34.75)
Conv = Callable[..., tuple[Any, Any]]

# Points well inside China's box, so a converted point never leaves the box.
china_lon = st.floats(min_value=74.0, max_value=135.0, allow_nan=False)
china_lat = st.floats(min_value=18.0, max_value=53.0, allow_nan=False)


def metres(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Haversine distance in metres (mean Earth radius)."""
    r = 6371008.8
    p1, p2 = math.radians(lat1), math.radians(lat2)
    h = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * r * math.asin(math.sqrt(h))


# --- published reference values -------------------------------------------------


def test_wgs84_to_gcj02_reference() -> None:
    lon, lat = wgs84_to_gcj02(*BEIJING)
    assert lon == pytest.approx(REF_WGS_TO_GCJ[0], abs=1e-12)
    assert lat == pytest.approx(REF_WGS_TO_GCJ[1], abs=1e-12)
    # The figure usually quoted in prose.
    assert (round(lon, 5), round(lat, 5)) == (116.41024, 39.9164)


def test_gcj02_to_bd09_reference() -> None:
    lon, lat = gcj02_to_bd09(*BEIJING)
    assert lon == pytest.approx(REF_GCJ_TO_BD[0], abs=1e-12)
    assert lat == pytest.approx(REF_GCJ_TO_BD[1], abs=1e-12)


def test_published_bd_reverse_is_our_first_guess() -> None:
    lon, lat = crs._bd_to_gcj_published(*BEIJING, crs._M)
    assert lon == pytest.approx(REF_BD_TO_GCJ_APPROX[0], abs=1e-12)
    assert lat == pytest.approx(REF_BD_TO_GCJ_APPROX[1], abs=1e-12)


def test_exact_reverses_are_close_to_published_approximations() -> None:
    # The approximations are a few cm off; ours are exact (see round trips).
    assert metres(*bd09_to_gcj02(*BEIJING), *REF_BD_TO_GCJ_APPROX) < 0.1
    assert metres(*gcj02_to_wgs84(*BEIJING), *REF_GCJ_TO_WGS_APPROX) < 0.5


def test_exact_bd_reverse_beats_published_one() -> None:
    exact = bd09_to_gcj02(*BEIJING)
    residual_exact = metres(*gcj02_to_bd09(*exact), *BEIJING)
    residual_published = metres(*gcj02_to_bd09(*REF_BD_TO_GCJ_APPROX), *BEIJING)
    assert residual_exact < 1e-6
    assert residual_published > 1e-3


# --- Zhengzhou ------------------------------------------------------------------


def test_zhengzhou_offset_magnitudes() -> None:
    # docs/protocol.md 1: GCJ-02 ~0.5-0.6 km, BD-09 ~1.1-1.3 km from WGS84 in Zhengzhou.
    for dlon in (-0.1, 0.0, 0.1):
        for dlat in (-0.07, 0.0, 0.1):
            lon, lat = ZHENGZHOU[0] + dlon, ZHENGZHOU[1] + dlat
            assert 500 <= metres(lon, lat, *wgs84_to_gcj02(lon, lat)) <= 600
            assert 1100 <= metres(lon, lat, *wgs84_to_bd09(lon, lat)) <= 1300


def test_zhengzhou_offset_direction() -> None:
    # GCJ-02 is shifted east and slightly south here; BD-09 further north-east.
    glon, glat = wgs84_to_gcj02(*ZHENGZHOU)
    blon, blat = wgs84_to_bd09(*ZHENGZHOU)
    assert glon > ZHENGZHOU[0] and glat < ZHENGZHOU[1]
    assert blon > glon and blat > glat


# --- round trips ----------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(china_lon, china_lat)
def test_round_trip_gcj02(lon: float, lat: float) -> None:
    assert metres(lon, lat, *gcj02_to_wgs84(*wgs84_to_gcj02(lon, lat))) < 1e-3
    # and the other way: the inverse really solves the forward equation
    assert metres(lon, lat, *wgs84_to_gcj02(*gcj02_to_wgs84(lon, lat))) < 1e-3


@settings(max_examples=300, deadline=None)
@given(china_lon, china_lat)
def test_round_trip_bd09(lon: float, lat: float) -> None:
    assert metres(lon, lat, *bd09_to_gcj02(*gcj02_to_bd09(lon, lat))) < 1e-3
    assert metres(lon, lat, *gcj02_to_bd09(*bd09_to_gcj02(lon, lat))) < 1e-3
    assert metres(lon, lat, *bd09_to_wgs84(*wgs84_to_bd09(lon, lat))) < 1e-3
    assert metres(lon, lat, *wgs84_to_bd09(*bd09_to_wgs84(lon, lat))) < 1e-3


def test_round_trip_vectorised_many_points() -> None:
    rng = np.random.default_rng(7)
    lon = rng.uniform(74.0, 135.0, 100_000)
    lat = rng.uniform(18.0, 53.0, 100_000)
    for fwd, inv in ((wgs84_to_gcj02, gcj02_to_wgs84), (wgs84_to_bd09, bd09_to_wgs84)):
        blon, blat = inv(*fwd(lon, lat))
        # metres at these latitudes: 1e-3 m is ~9e-9 degrees
        assert np.max(np.abs(blon - lon) * 111_320 * np.cos(np.radians(lat))) < 1e-3
        assert np.max(np.abs(blat - lat) * 110_574) < 1e-3


def test_inverse_converges_to_micrometres() -> None:
    lon, lat = gcj02_to_wgs84(*ZHENGZHOU)
    assert metres(*wgs84_to_gcj02(lon, lat), *ZHENGZHOU) < 1e-6
    lon, lat = bd09_to_wgs84(*ZHENGZHOU)
    assert metres(*wgs84_to_bd09(lon, lat), *ZHENGZHOU) < 1e-6


# --- outside China ----------------------------------------------------------------

OUTSIDE = [
    (2.3522, 48.8566),  # Paris
    (-74.006, 40.7128),  # New York
    (139.6917, 35.6895),  # Tokyo: east of 137.8347
    (103.8198, 0.5),  # south of 0.8293
    (100.0, 56.0),  # north of 55.8271
    (71.9, 40.0),  # west of 72.004
]

ALL_FUNCTIONS = [
    wgs84_to_gcj02,
    gcj02_to_wgs84,
    gcj02_to_bd09,
    bd09_to_gcj02,
    wgs84_to_bd09,
    bd09_to_wgs84,
]


@pytest.mark.parametrize("fn", ALL_FUNCTIONS)
@pytest.mark.parametrize(("lon", "lat"), OUTSIDE)
def test_outside_china_unchanged(fn: Conv, lon: float, lat: float) -> None:
    assert out_of_china(lon, lat) is True
    assert fn(lon, lat) == (lon, lat)
    x, y = fn(np.array([lon, ZHENGZHOU[0]]), np.array([lat, ZHENGZHOU[1]]))
    assert (x[0], y[0]) == (lon, lat)
    assert (x[1], y[1]) != ZHENGZHOU  # the inside point in the same array moves


def test_out_of_china_bounds() -> None:
    assert out_of_china(*ZHENGZHOU) is False
    assert out_of_china(72.004, 0.8293) is False  # inclusive bounds
    assert out_of_china(137.8347, 55.8271) is False
    mask = out_of_china(np.array([113.0, 150.0, 113.0]), np.array([34.0, 34.0, -10.0]))
    assert mask.dtype == bool
    assert mask.tolist() == [False, True, True]


@pytest.mark.parametrize("fn", ALL_FUNCTIONS)
def test_nan_passes_through_without_warnings(fn: Conv) -> None:
    x, y = fn(np.array([np.nan, 113.65]), np.array([34.75, np.nan]))
    assert np.isnan(x[0]) and np.isnan(y[1])
    sx, sy = fn(math.nan, 34.75)
    assert math.isnan(sx) and sy == 34.75


# --- vectorised vs scalar, return kinds -------------------------------------------


@pytest.mark.parametrize("fn", ALL_FUNCTIONS)
def test_vectorised_equals_scalar(fn: Conv) -> None:
    rng = np.random.default_rng(3)
    lon = np.concatenate([rng.uniform(74.0, 135.0, 200), [2.35, 139.7]])
    lat = np.concatenate([rng.uniform(18.0, 53.0, 200), [48.85, 35.7]])
    vx, vy = fn(lon, lat)
    sx = np.array([fn(float(a), float(b))[0] for a, b in zip(lon, lat, strict=True)])
    sy = np.array([fn(float(a), float(b))[1] for a, b in zip(lon, lat, strict=True)])
    # math and numpy sin/cos may differ in the last bit; 1e-11 deg is ~1 µm.
    np.testing.assert_allclose(vx, sx, rtol=0, atol=1e-11)
    np.testing.assert_allclose(vy, sy, rtol=0, atol=1e-11)


@pytest.mark.parametrize("fn", ALL_FUNCTIONS)
def test_return_kinds(fn: Conv) -> None:
    x, y = fn(113.65, 34.75)
    assert type(x) is float and type(y) is float
    x, y = fn(113, 34)  # ints are fine too
    assert type(x) is float
    grid = np.full((3, 4), 113.65)
    ax, ay = fn(grid, np.full((3, 4), 34.75))
    assert isinstance(ax, np.ndarray) and ax.shape == (3, 4) and ax.dtype == np.float64
    assert isinstance(ay, np.ndarray) and ay.shape == (3, 4)
    # broadcasting a scalar latitude against an array of longitudes
    bx, by = fn(np.array([113.6, 113.7]), 34.75)
    assert bx.shape == by.shape == (2,)
    ex, ey = fn(np.array([]), np.array([]))
    assert ex.shape == ey.shape == (0,)


def test_input_arrays_not_modified() -> None:
    lon = np.array([113.65, 113.7])
    lat = np.array([34.75, 34.8])
    gcj02_to_wgs84(lon, lat)
    assert lon.tolist() == [113.65, 113.7] and lat.tolist() == [34.75, 34.8]


# --- to_wgs84 ----------------------------------------------------------------------


def test_supported_crs() -> None:
    assert SUPPORTED_CRS == ("WGS84", "GCJ02", "BD09")


@pytest.mark.parametrize("name", ["WGS84", "wgs84", "Wgs84"])
def test_to_wgs84_identity(name: str) -> None:
    assert to_wgs84(113.65, 34.75, name) == (113.65, 34.75)
    x, y = to_wgs84(np.array([113.65]), np.array([34.75]), name)
    assert isinstance(x, np.ndarray) and x.tolist() == [113.65] and y.tolist() == [34.75]


@pytest.mark.parametrize(
    ("name", "forward"),
    [("gcj02", wgs84_to_gcj02), ("GCJ02", wgs84_to_gcj02), ("BD09", wgs84_to_bd09)],
)
def test_to_wgs84_converts(name: str, forward: Conv) -> None:
    lon, lat = to_wgs84(*forward(*ZHENGZHOU), name)
    assert metres(lon, lat, *ZHENGZHOU) < 1e-3


@pytest.mark.parametrize("name", ["GCJ-02", "EPSG:4326", "", "bd-09", "CGCS2000"])
def test_to_wgs84_rejects_unknown(name: str) -> None:
    with pytest.raises(ValueError, match="unsupported coordinate system"):
        to_wgs84(113.65, 34.75, name)
