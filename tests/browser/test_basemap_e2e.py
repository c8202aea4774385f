"""The city's own basemap (ROADWATCH_BASEMAP, a PMTiles file) drawn under the network."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Page

from tests.support.pmtiles_files import raster_archive

from .served import Served, login

pytestmark = pytest.mark.browser
DEMO_BOUNDS = (113.45, 34.60, 113.95, 34.95)
TINT = (250, 120, 20)  # an orange no part of the page uses


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("basemap")
    archive = raster_archive(tmp / "city.pmtiles", DEMO_BOUNDS, range(8, 14), lambda *_: TINT)
    srv = Served(tmp, ROADWATCH_BASEMAP=str(archive)).start()
    try:
        yield srv
    finally:
        srv.stop()
    assert "Traceback" not in srv.logs()


def _share_of_warm(png: Path, box: tuple[int, int, int, int]) -> float:
    """The share of pixels in `box` tinted by the orange basemap (the page is all blues)."""
    with Image.open(png) as img:
        rgb = np.asarray(img.convert("RGB").crop(box), dtype=np.int32)
    return float((rgb[..., 0] > rgb[..., 2] + 15).mean())


def test_the_basemap_is_drawn_under_the_segments(
    served: Served, page: Page, screenshot: Callable[[Page, str], Path]
) -> None:
    tiles: list[int] = []
    page.on(
        "response",
        lambda r: tiles.append(r.status) if "/api/centre/basemap/" in r.url else None,
    )
    login(page, served)
    page.wait_for_function("window.roadwatch._map.areTilesLoaded()")
    assert tiles and set(tiles) <= {200, 204} and 200 in tiles
    style = page.evaluate("window.roadwatch._map.getStyle()")
    ids = [layer["id"] for layer in style["layers"]]
    assert style["sources"]["basemap"]["type"] == "raster"
    # under every segment layer, right above the background
    assert ids.index("basemap-raster") == 1 and ids[0] == "background"
    assert page.evaluate("window.roadwatch.segmentCount") == 2495
    shot = screenshot(page, "live-map-basemap")
    box = page.locator("#rw-map").bounding_box()
    assert box is not None
    # the middle of the map, where the city is: the basemap shows between the streets
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    middle = (int(cx - 200), int(cy - 150), int(cx + 200), int(cy + 150))
    assert _share_of_warm(shot, middle) > 0.5
    # and with the basemap hidden, the same spot has none of its tint
    page.evaluate("window.roadwatch._map.setLayoutProperty('basemap-raster', 'visibility', 'none')")
    page.wait_for_function("window.roadwatch._map.loaded()")
    page.wait_for_timeout(300)
    bare = screenshot(page, "live-map-basemap-hidden")
    assert _share_of_warm(bare, middle) < 0.01
