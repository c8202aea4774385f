"""The review queue settles a reporter's similar pending reports (within 50 m) in one
decision from the page: the box appears for a report that has some, names how many, and
one tap settles them all (POST /api/review/<id>/similar with exactly the ids offered); a
report with none offers no box. The API existed (README, "Staff settle a reporter's similar
pending reports … in one action") but the page had no way to use it."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from roadwatch.store import models
from tests.support.auth import PASSWORD, make_user
from tests.support.review import in_review_beside
from tests.support.server import live_server

pytestmark = pytest.mark.browser


def _segment(rt: Any, district: str, skip: int) -> str:
    return [s.id for s in rt.ctx.network.segments if s.district == district][skip * 40]


def test_settle_a_reporters_similar_reports_together(
    runtime: Any, page: Page, screenshot: Any
) -> None:
    here = _segment(runtime, "JS", 0)
    # issue 21 (d): ten similar pending reports, settled in one action
    first, *others = [
        in_review_beside(runtime, here, reporter_id="zz-jinshui-0421") for _ in range(10)
    ]
    alone = in_review_beside(runtime, _segment(runtime, "JS", 1), reporter_id="zz-jinshui-0421")
    user = make_user(runtime, "admin")
    with live_server(runtime) as server:
        page.goto(f"{server.url}/login?next=/review")
        page.fill("input[name=username]", user.username)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_function("() => window.roadwatch && window.roadwatch.review.ready")
        expect(page.locator("#rw-review-count")).to_have_text("11")

        page.click(f"#rw-review-items li[data-id='{alone}']")
        page.wait_for_function(f"() => window.roadwatch.review.similarOf === '{alone}'")
        expect(page.locator("#rw-review-similar-box")).to_be_hidden()  # none similar

        page.click(f"#rw-review-items li[data-id='{first}']")
        box = page.locator("#rw-review-similar-box")
        expect(box).to_be_visible()
        expect(box).to_contain_text("另外 9 条")
        screenshot(page, "workbench_review_similar")
        page.check("#rw-review-similar")
        page.fill("#rw-review-note", "同一处")
        page.click(f"#rw-review-choices button[data-segment='{here}']")
        page.wait_for_function("() => window.roadwatch.review.settled === 10")
        expect(page.locator("#rw-review-count")).to_have_text("1")
        ids = page.locator("#rw-review-items li").evaluate_all("els => els.map(e => e.dataset.id)")
        assert ids == [alone]
        expect(box).to_be_hidden()

    with runtime.sessions() as s:
        rows = {i: s.get(models.Report, i) for i in (first, *others, alone)}
    settled = [rows[i] for i in (first, *others)]
    assert {(r.status, r.segment_id) for r in settled} == {("accepted", here)}
    assert rows[alone].status == "needs_review"
