"""Issue 19 acceptance d: at 1366×768, in Chinese and in English, the box of every header
control (links, buttons, fields) lies inside the viewport: on the live map, the rankings
pages and the workbench's pages. Real PostgreSQL; screenshots in test-artifacts/."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from roadwatch.ranking.week import Week
from roadwatch.store import models
from tests.support.auth import make_user
from tests.support.server import LiveServer, live_server

from .test_workbench import log_in

pytestmark = [pytest.mark.browser, pytest.mark.integration]

WIDTH, HEIGHT = 1366, 768
CONTROLS = "header a, header button, header select, header input, header [tabindex]"


@pytest.fixture
def server(runtime: Any) -> Iterator[LiveServer]:
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("the workbench's acceptance runs on PostgreSQL")
    with live_server(runtime) as s:
        yield s


def header_boxes(page: Page) -> list[dict[str, Any]]:
    """Every visible header control: its text and its box."""
    return page.locator(CONTROLS).evaluate_all(
        """els => els.filter(e => e.offsetParent !== null).map(e => {
            const r = e.getBoundingClientRect();
            return {text: (e.textContent || e.id || '').trim(), x: r.left, y: r.top,
                    right: r.right, bottom: r.bottom};
        })"""
    )


def test_every_header_control_is_inside_the_viewport(
    runtime: Any, server: LiveServer, browser: Browser
) -> None:
    from tests.browser.conftest import save_screenshot

    user = make_user(runtime, "admin")
    week = Week.containing(models.utcnow(), runtime.settings.tz).label
    pages = {
        "live": ("/", "window.roadwatch && window.roadwatch.ready"),
        "review": ("/review", "window.roadwatch && window.roadwatch.review.ready"),
        "users": ("/admin/users", "window.roadwatch && window.roadwatch.users.ready"),
        "chiefs": ("/admin/chiefs", "window.roadwatch && window.roadwatch.chiefs.ready"),
        "rankings": ("/rankings/", None),
        "ranking_week": (f"/rankings/{week}", None),
    }
    checked = 0
    for lang in ("zh", "en"):
        context = browser.new_context(
            viewport={"width": WIDTH, "height": HEIGHT}, locale="zh-CN", service_workers="block"
        )
        page = context.new_page()
        try:
            log_in(page, server, user.username, "/review")
            for name, (path, ready) in pages.items():
                page.goto(f"{server.url}{path}?lang={lang}")
                if ready:
                    page.wait_for_function(ready, timeout=30_000)
                want = "en" if lang == "en" else "zh-CN"
                assert page.evaluate("document.documentElement.lang") == want, (name, lang)
                boxes = header_boxes(page)
                assert len(boxes) >= 3, (name, boxes)  # at least a link, the switch, log out
                outside = [
                    b
                    for b in boxes
                    if b["x"] < 0 or b["y"] < 0 or b["right"] > WIDTH or b["bottom"] > HEIGHT
                ]
                save_screenshot(page, f"header_{name}_{lang}_1366x768")
                assert not outside, (name, lang, outside)
                # every field of the page has a label (a <label>, or aria-label)
                unlabelled = page.locator(
                    "input:not([type=hidden]), select, textarea"
                ).evaluate_all(
                    "els => els.filter(e => !(e.labels && e.labels.length)"
                    " && !e.getAttribute('aria-label')).map(e => e.outerHTML.slice(0, 80))"
                )
                assert not unlabelled, (name, unlabelled)
                # and the keyboard reaches the language switch from the top of the page
                page.evaluate("document.activeElement && document.activeElement.blur()")
                for _ in range(40):
                    page.keyboard.press("Tab")
                    if page.evaluate("document.activeElement && document.activeElement.id") == (
                        "rw-lang"
                    ):
                        break
                else:
                    raise AssertionError(f"Tab never reached the language switch on {name}")
                texts = " ".join(b["text"] for b in boxes)
                assert ("中文" if lang == "en" else "EN") in texts, (name, lang, texts)
                checked += len(boxes)
        finally:
            context.close()
    assert checked > 30
