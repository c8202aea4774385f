"""Headless Chromium for browser tests (Debian's chromium, never `playwright install`).

Fixtures:
    browser        session-scoped Playwright Browser.
    page           a fresh page (1920x1080, zh-CN, Asia/Shanghai). The test FAILS if
                   the page logged a console error or uncaught exception, a request
                   failed or got an HTTP error, or anything was requested from
                   another origin than the page's own.
    page_problems  the recorder behind `page`: `.allow(regex)` tolerates expected
                   problems (e.g. while a test stops the server on purpose).
    screenshot     `screenshot(page, name) -> Path` writes test-artifacts/<name>.png
                   (also importable as conftest.save_screenshot).

Mark browser tests with @pytest.mark.browser.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts"
DEFAULT_CHROMIUM = "/usr/bin/chromium"

CHROMIUM_ARGS = [
    "--no-sandbox",  # we run as root
    "--disable-gpu",
    # WebGL (MapLibre) in software: ANGLE on SwiftShader.
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    # No phoning home: the machine has no internet and tests must not wait on it.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-quic",
]

_problems_key = pytest.StashKey["PageProblems"]()


def chromium_path() -> str:
    path = os.environ.get("ROADWATCH_CHROMIUM", DEFAULT_CHROMIUM)
    resolved = path if os.path.isabs(path) else shutil.which(path)
    if not resolved or not os.access(resolved, os.X_OK):
        pytest.fail(
            f"Chromium not found at {path!r} (set ROADWATCH_CHROMIUM, or install Debian's "
            "`chromium` package: apt-get install chromium). Browser tests never download a "
            "browser (`playwright install` is not used).",
            pytrace=False,
        )
    return resolved


def _origin(url: str) -> str:
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return f"{scheme}://{parts.netloc}"


class PageProblems:
    """Console errors, page errors, failed and off-origin requests of one page."""

    def __init__(self) -> None:
        self.origin: str | None = None
        self.items: list[str] = []
        self._allowed: list[re.Pattern[str]] = []

    def allow(self, pattern: str) -> None:
        """Tolerate problems matching this regular expression (re.search)."""
        self._allowed.append(re.compile(pattern))

    def add(self, text: str) -> None:
        self.items.append(text)

    def check_url(self, kind: str, url: str) -> None:
        scheme = urlsplit(url).scheme
        if scheme in ("data", "about"):
            return
        if scheme == "blob":  # blob:http://host:port/uuid (MapLibre's worker)
            url = url[len("blob:") :]
        origin = _origin(url)
        if self.origin is None:  # the first navigation fixes the page's origin
            self.origin = origin
        elif origin != self.origin:
            self.add(f"off-origin {kind}: {url} (page origin {self.origin})")

    def unexpected(self) -> list[str]:
        return [p for p in self.items if not any(a.search(p) for a in self._allowed)]


@pytest.fixture
def page_problems(request: pytest.FixtureRequest) -> PageProblems:
    problems = PageProblems()
    request.node.stash[_problems_key] = problems
    return problems


@pytest.fixture
def page(browser: Browser, page_problems: PageProblems) -> Iterator[Page]:
    context = browser.new_context(
        viewport={"width": 1920, "height": 1080},
        locale="zh-CN",
        timezone_id="Asia/Shanghai",
        service_workers="block",
    )
    page = context.new_page()
    rec = page_problems
    page.on(
        "console",
        lambda m: (
            rec.add(f"console.{m.type}: {m.text} @ {m.location.get('url', '')}")
            if m.type in ("error", "assert")
            else None
        ),
    )
    page.on("pageerror", lambda e: rec.add(f"uncaught: {e}"))
    page.on("request", lambda r: rec.check_url("request", r.url))
    page.on("websocket", lambda ws: rec.check_url("websocket", ws.url))
    page.on("requestfailed", lambda r: rec.add(f"request failed: {r.url} ({r.failure})"))
    page.on(
        "response",
        lambda r: rec.add(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None,
    )
    try:
        yield page
    finally:
        context.close()


_FUNCTION = re.compile(r"^\s*(async\s+)?(function\b|\(|[A-Za-z_$][\w$]*\s*=>)")


@pytest.fixture(autouse=True)
def _polling_without_eval(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pages' Content-Security-Policy forbids eval, and Playwright polls a plain
    `wait_for_function("expr")` with eval: pass it on as a function, which needs none
    (for every page of a browser test, whichever way it was opened)."""
    original = Page.wait_for_function

    def wait_for_function(self: Page, expression: str, *args: Any, **kwargs: Any) -> Any:
        if not _FUNCTION.match(expression):
            expression = f"() => ({expression})"
        return original(self, expression, *args, **kwargs)

    monkeypatch.setattr(Page, "wait_for_function", wait_for_function)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    result = yield
    problems = item.stash.get(_problems_key, None)
    if problems is not None:
        bad = problems.unexpected()
        if bad:
            pytest.fail("browser problems during the test:\n  " + "\n  ".join(bad), pytrace=False)
    return result


def save_screenshot(page: Page, name: str) -> Path:
    """Save a PNG of the page under test-artifacts/ (gitignored) and return its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


@pytest.fixture
def screenshot() -> Callable[[Page, str], Path]:
    return save_screenshot
