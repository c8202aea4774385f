"""Rankings on the web (issue 6 c): JSON, CSV, XLSX, a PDF whose extracted text shows the
Chinese segment names, disputes over HTTP, plain errors for bad weeks."""

from __future__ import annotations

import io
import json
import unicodedata
from typing import Any

import pytest

from roadwatch.ranking import publish as pub
from roadwatch.ranking.week import Week
from tests.browser.conftest import ARTIFACTS
from tests.support.auth import login
from tests.test_ranking_jobs import GOLDEN, formula, golden_fixture, rank_rt, rt  # noqa: F401


@pytest.fixture
def published(rt: Any, formula: Any, monkeypatch: pytest.MonkeyPatch) -> Any:  # noqa: F811
    tz = rt.settings.tz
    ids = golden_fixture(rt, tz)
    for label in ("2026-W46", "2026-W47"):
        w = Week.parse(label, tz)
        pub.publish(rt.engine, formula, w, pub.default_as_of(w, 8), "test", w.end + 9 * pub_h())
    from roadwatch.web import create_app

    # Not conftest's `app`: this runs on test_ranking_jobs' `rt` with the golden formula set
    # before the app is built, over the weeks published above.
    monkeypatch.setattr(
        rt, "settings", rt.settings.model_copy(update={"ranking_formula": str(GOLDEN)})
    )
    app, _ = create_app(rt)
    return app.test_client(), ids


def pub_h() -> Any:
    import datetime as dt

    return dt.timedelta(hours=1)


def _names(runtime: Any, ids: list[str]) -> list[str]:
    from sqlalchemy import select

    from roadwatch.store import models

    with runtime.engine.connect() as conn:
        rows = dict(conn.execute(select(models.Segment.id, models.Segment.name)).all())
    return [rows[i] for i in ids]


def test_json_csv_xlsx(rt: Any, published: Any) -> None:  # noqa: F811
    client, ids = published
    s1, s2 = ids["segments"][:2]
    body = client.get("/api/rankings/2026-W47").get_json()
    assert body["status"]["published"] is True
    eq = next(lg for lg in body["leagues"] if lg["district"] == "EQ" and lg["kind"] == "segment")
    assert eq["black"] == [s1, s2]
    csv_text = client.get("/api/rankings/2026-W47.csv").data.decode("utf-8-sig")
    names = _names(rt, [s1, s2])
    lines = [ln for ln in csv_text.splitlines() if ",black," in ln]
    assert len(lines) == 2 and all(any(n in ln for n in names) for ln in lines)
    from openpyxl import load_workbook

    wb = load_workbook(io.BytesIO(client.get("/api/rankings/2026-W47.xlsx").data))
    drill = list(wb["drilldown"].iter_rows(values_only=True))
    assert {r[4] for r in drill[1:] if r[2] == s1} == set(ids["s1"])
    assert client.get("/api/rankings/2026-W61").status_code == 404
    bad = client.get("/api/rankings/2026-W47.docx")
    assert bad.status_code == 404 and bad.get_json()["errors"][0]["code"] == "unknown_format"
    assert client.get("/api/rankings/2026-W47/verify").get_json() == {
        "week": "2026-W47",
        "ok": True,
        "problems": [],
    }


def test_pdf_text_shows_chinese_segment_names(rt: Any, published: Any) -> None:  # noqa: F811
    from pypdf import PdfReader

    client, ids = published
    resp = client.get("/api/rankings/2026-W47.pdf")
    assert resp.status_code == 200 and resp.data.startswith(b"%PDF")
    raw = "".join(p.extract_text() for p in PdfReader(io.BytesIO(resp.data)).pages)
    ARTIFACTS.mkdir(exist_ok=True)  # a fresh clone has none until a screenshot is taken
    (ARTIFACTS / "ranking_2026-W47.pdf").write_bytes(resp.data)
    # Noto CJK maps some glyphs to their Kangxi-radical twins (⿊ for 黑): NFKC folds them
    # …and table cells wrap lines: compare without the line breaks
    text = "".join(unicodedata.normalize("NFKC", raw).split())
    for name in _names(rt, ids["segments"][:2]):
        assert unicodedata.normalize("NFKC", name) in text  # glyphs, not empty boxes
    assert "示意图" in text and "黑旗" in text and "黄牌警告" in text
    assert json.loads(json.dumps(text)).count("□") == 0


def test_disputes_over_http_and_the_index(rt: Any, published: Any) -> None:  # noqa: F811
    client, _ = published
    # readable by everyone, written only by staff
    anon = client.post("/api/rankings/2026-W47/disputes", json={"report_id": "x"})
    assert anon.status_code == 401
    viewer = client.application.test_client()
    login(viewer, rt, "viewer")
    refused = viewer.post("/api/rankings/disputes/1", json={"decision": "upheld"})
    assert refused.status_code == 403  # only an administrator arbitrates
    login(client, rt, "admin")
    no_reason = client.post("/api/rankings/2026-W47/disputes", json={"report_id": "x"})
    assert no_reason.get_json()["errors"][0]["code"] == "reason_required"
    r = client.post(
        "/api/rankings/2026-W47/disputes",
        json={"report_id": "x", "reason": "r", "evidence": ["e"]},
    )
    assert r.status_code == 409  # published: the contest window is closed
    assert client.post("/api/rankings/2026-W47/disputes", data="nope").status_code == 400
    r = client.post("/api/rankings/disputes/999", json={"decision": "upheld"})
    assert r.status_code == 404
    index = client.get("/rankings/").data.decode()
    assert "2026-W47" in index and "2026-W46" in index and "黄牌警告" in index
    page = client.get("/rankings/2026-W47").data.decode()
    assert "示意图" in page and "golden-1" in page
    with rt.engine.connect() as conn:
        assert pub.ranking_row(conn, "2026-W47").content_sha256 in page
