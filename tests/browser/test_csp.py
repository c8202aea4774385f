"""Issue 15: the Content-Security-Policy allows no inline script, and the pages still work.

In headless Chromium against the real app: the login page, the live map (MapLibre starts
its blob worker and draws every segment; Socket.IO connects), the rankings and a week's
ranking, and the phone app's shell load with the CSP and raise no `securitypolicyviolation`
(nor any console error, which the `page` fixture fails on).
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page

from tests.support.auth import PASSWORD, make_user
from tests.support.server import live_server

pytestmark = pytest.mark.browser

# Runs before any of the page's own scripts: records every CSP violation of the page.
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__csp.push(e.violatedDirective + " " + e.blockedURI + " " + (e.sourceFile || ""));
});
"""


def _violations(page: Page) -> list[str]:
    got: list[str] = page.evaluate("window.__csp || []")
    return got


@pytest.mark.parametrize("runtime", ["sqlite"], indirect=True)
def test_pages_run_under_the_csp_without_a_violation(runtime: Any, page: Page) -> None:
    user = make_user(runtime, "admin")
    page.add_init_script(RECORD_VIOLATIONS)
    with live_server(runtime) as server:
        res = page.goto(server.url + "/")  # redirected to the login page
        assert res is not None
        csp = res.headers.get("content-security-policy", "")
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        page.wait_for_selector("#rw-login-form")
        assert _violations(page) == []
        page.fill("input[name=username]", user.username)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_function("window.roadwatch && window.roadwatch.ready", timeout=30_000)
        assert page.evaluate("window.roadwatch.segmentCount") == runtime.ctx.size
        drawn = page.evaluate(
            "new Set(window.roadwatch._map.querySourceFeatures('segments', "
            "{sourceLayer: 'segments'}).map(f => f.id)).size"
        )
        assert drawn == runtime.ctx.size  # MapLibre's blob worker ran and drew the tiles
        page.wait_for_selector("#rw-conn[data-state=live]", timeout=15_000)  # Socket.IO
        assert _violations(page) == []

        page.goto(server.url + "/rankings/")
        page.wait_for_selector("#rw-weeks")
        assert _violations(page) == []
        draft = page.locator("a").first.get_attribute("href")
        assert draft
        page.goto(server.url + "/rankings/" + draft.rsplit("/", 1)[-1])
        page.wait_for_selector("h1")
        assert "红黑旗" in page.inner_text("h1")
        assert _violations(page) == []

        page.goto(server.url + "/m/")
        page.wait_for_load_state("load")
        assert _violations(page) == []
