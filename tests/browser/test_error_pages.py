"""A page opened in the browser that cannot be shown says why in plain words on an HTML
page: a public ranking page of a week that is no ISO week, the site-visit route page
without stops or with an unknown segment, the monthly review of something that is no
month. They were the API's raw JSON (`{"errors": [...]}`) in the browser window. The API
itself, and scripts that do not ask for HTML, still get the JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.sync_api import Page

from tests.support.auth import PASSWORD, make_user
from tests.support.server import live_server

pytestmark = pytest.mark.browser


def _shown(page: Page, url: str, status: int) -> str:
    res = page.goto(url)
    assert res is not None and res.status == status
    assert res.headers["content-type"].startswith("text/html")
    body = page.inner_text("body")
    assert '"errors"' not in body and "{" not in body, body
    return page.inner_text("#rw-error-message")


def test_pages_that_cannot_be_shown_explain_in_plain_words(
    runtime: Any, page: Page, page_problems: Any
) -> None:
    page_problems.allow(r"HTTP 40[04]|status of 40[04]")
    user = make_user(runtime, "admin")
    with live_server(runtime) as server:
        # the public: no login
        text = _shown(page, server.url + "/rankings/bogus", 404)
        assert "2026-W47" in text and "没有找到" in page.inner_text("h1")

        page.goto(server.url + "/login?next=/rankings/")
        page.fill("input[name=username]", user.username)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_load_state("networkidle")
        assert "/login" not in page.url

        assert "1 to 30 segments" in _shown(page, server.url + "/leaders/route", 400)
        text = _shown(page, server.url + "/leaders/route?segments=NOPE-1", 400)
        assert "NOPE-1" in text
        assert "2026-11" in _shown(page, server.url + "/reviews/bogus", 404)
        assert page.get_attribute("text=返回首页", "href") == "/"

        # the API (and a script asking for anything) keeps its JSON
        got = page.evaluate(
            """async (u) => { const r = await fetch(u);
                 return [r.status, r.headers.get('content-type'), await r.text()]; }""",
            server.url + "/rankings/bogus",
        )
        assert got[0] == 404 and got[1].startswith("application/json")
        assert json.loads(got[2])["errors"][0]["code"] == "bad_week"
        api = page.goto(server.url + "/api/rankings/bogus")
        assert api is not None and api.status == 404
        assert api.headers["content-type"].startswith("application/json")
