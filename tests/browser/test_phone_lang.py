"""Issue 20.6: the phone app in Chinese by default, English only through the switch, and
the choice kept across reloads. Real Chromium on an emulated phone (Chinese locale)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser import test_phone_app as phone_app
from tests.browser.conftest import save_screenshot
from tests.browser.test_phone_app import (
    Problems,
    Stack,
    _segment_midpoint,
    pick_category,
    sign_in,
    wait_for_fix,
)

# The phone tests' fixtures (a server, Mosquitto, chiefs; an emulated phone), this module's own.
stack = phone_app.stack
phone = phone_app.phone

pytestmark = [pytest.mark.browser, pytest.mark.integration]

VIEWS = ["report", "work", "outbox"]
# Every text node the chief can see (rendered, not hidden), with its parent's id for messages.
VISIBLE_TEXTS = """() => {
  const out = [];
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walk.nextNode(); n; n = walk.nextNode()) {
    const t = n.nodeValue.trim();
    const p = n.parentElement;
    if (!t || !p || !p.checkVisibility()) continue;
    out.push(t);
  }
  for (const e of document.querySelectorAll('[placeholder]')) {
    if (e.checkVisibility()) out.push(e.getAttribute('placeholder'));
  }
  return out;
}"""


def _texts(page: Page) -> list[str]:
    texts: list[str] = page.evaluate(VISIBLE_TEXTS)
    return texts


def _names(stack: Stack) -> list[str]:
    """Names that stay as they are in both languages: segments, roads, people."""
    ctx = stack.runtime.ctx
    names = {s.name for s in ctx.network.segments if s.name}
    with stack.runtime.sessions() as s:
        from sqlalchemy import select

        from roadwatch.store import models

        names |= {n for n in s.scalars(select(models.Reporter.name)) if n}
    return sorted(names, key=len, reverse=True)


def test_chinese_by_default_english_through_the_switch_kept_across_reloads(
    phone: tuple[BrowserContext, Problems], stack: Stack
) -> None:
    context, _ = phone
    chief, segment = stack.chiefs[2]
    lat, lon = _segment_midpoint(stack.runtime, segment)
    context.set_geolocation({"latitude": lat, "longitude": lon, "accuracy": 5})
    page = context.new_page()
    page.goto(stack.url + "/m/")
    page.wait_for_function("window.__rwReady === true")
    expect(page.locator("#lang")).to_have_text("EN")
    latin = re.compile(r"[A-Za-z]{3,}")
    shown = [t for t in _texts(page) if latin.search(t)]
    assert shown == [], f"English on the Chinese sign-in screen: {shown}"
    sign_in(page, stack, chief)
    wait_for_fix(page)
    for view in VIEWS:
        page.click(f"#tabs [data-view={view}]")
        page.wait_for_timeout(300)
        shown = [t for t in _texts(page) if latin.search(t)]
        assert shown == [], f"English on the Chinese {view} screen: {shown}"

    page.click("#tabs [data-view=report]")
    page.click("#lang")
    page.wait_for_function("window.__rwReady === true")
    expect(page.locator("#lang")).to_have_text("中文")
    expect(page.locator("#tabs [data-view=report]")).to_have_text("Report")
    expect(page.locator("#tabs [data-view=work]")).to_have_text("My work")
    expect(page.locator("#net")).to_have_text(re.compile(r"^Online"), timeout=15000)
    expect(page.locator("#report-send")).to_have_text("Report")
    expect(page.locator("#gps")).to_contain_text("Located: ±5 m")
    assert page.evaluate("document.documentElement.lang") == "en"
    cat = stack.runtime.categories.by_code["E0504"]
    assert cat.name_en and cat.name_en != cat.name
    pick_category(page, "E0504")
    expect(page.locator("#cat-chosen")).to_have_text(f"Chosen: {cat.name_en}")
    page.click("#report-send")
    name = stack.runtime.ctx.network.segments[stack.runtime.ctx.position[segment]].name
    expect(page.locator("#report-done")).to_have_text(f"Accepted · {name}", timeout=20000)
    save_screenshot(page, "phone-english-report")

    page.reload()  # the choice is kept on the phone
    page.wait_for_function("window.__rwReady === true")
    expect(page.locator("#tabs [data-view=outbox]")).to_contain_text("Sent")
    names = _names(stack)
    han = re.compile(r"[\u4e00-\u9fff]")
    for view in VIEWS:
        page.click(f"#tabs [data-view={view}]")
        expect(page.locator("#net")).to_have_text(re.compile(r"^Online"), timeout=15000)
        page.wait_for_timeout(300)
        left = []
        for t in _texts(page):
            rest = t
            for n in names:
                rest = rest.replace(n, "")
            if han.search(rest) and t != "中文":
                left.append(t)
        assert left == [], f"Chinese left on the English {view} screen: {left}"
    save_screenshot(page, "phone-english-outbox")

    page.click("#lang")  # and back
    page.wait_for_function("window.__rwReady === true")
    expect(page.locator("#tabs [data-view=report]")).to_have_text("上报")
