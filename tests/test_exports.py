"""Case exports (GET /api/cases.csv and .xlsx) on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import pytest
from flask.testing import FlaskClient
from openpyxl import load_workbook
from sqlalchemy import update

from roadwatch.store import audit, models
from roadwatch.web.exports import HEADER, LABELS
from tests.support.examples import CST, contract_example
from tests.test_pipeline import inbound


@pytest.fixture
def client(login_as: Any) -> FlaskClient:
    """Here `client` is a logged-in admin: the staff API needs a login."""
    client: FlaskClient = login_as("admin")
    return client


@pytest.fixture
def cases(runtime: Any) -> dict[str, dict[str, Any]]:
    """Three cases: two in 金水区 (JS, one three days old), one in 中原区 (ZY)."""
    now = dt.datetime.now(CST)
    zy = next(s for s in runtime.ctx.network.segments if s.district == "ZY")
    mid = zy.geometry.interpolate(0.5, normalized=True)
    bodies = {
        "js_new": contract_example(
            observed_at=(now - dt.timedelta(hours=1)).isoformat(timespec="seconds"),
            note='=HYPERLINK("x") 占道经营',
        ),
        "js_old": contract_example(
            category="E0505",
            observed_at=(now - dt.timedelta(days=3)).isoformat(timespec="seconds"),
        ),
        "zy": contract_example(
            category="E0102",
            crs="WGS84",
            lat=mid.y,
            lon=mid.x,
            segment_hint=zy.id,
            reporter_id="zz-zhongyuan-0001",
            note="暴露垃圾，路口东北角",
        ),
    }
    outs = runtime.pipeline.process(
        [inbound(b, reporter=b["reporter_id"]) for b in bodies.values()]
    )
    assert [o.status for o in outs] == ["accepted"] * 3, outs
    with runtime.sessions.begin() as s:
        s.execute(
            update(models.Report)
            .where(models.Report.id == bodies["js_old"]["report_id"])
            .values(case_status="closed", closed_at=models.utcnow())
        )
    return bodies


def read_csv(res: Any) -> list[dict[str, str]]:
    assert res.status_code == 200, res.data[:300]
    assert res.content_type.startswith("text/csv")
    assert res.data.startswith(b"\xef\xbb\xbf")  # the UTF-8 BOM
    text = res.data.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == LABELS
    return [dict(zip(HEADER, r, strict=True)) for r in rows[1:]]


def q(value: str) -> str:
    return value.replace("+", "%2B")


def test_csv_all_cases(client: FlaskClient, cases: dict[str, dict[str, Any]]) -> None:
    res = client.get("/api/cases.csv")
    disposition = res.headers["Content-Disposition"]
    assert disposition.startswith("attachment;") and 'filename="cases.csv"' in disposition
    rows = read_csv(res)
    by_id = {r["id"]: r for r in rows}
    assert list(by_id) == [cases[k]["report_id"] for k in ("js_old", "js_new", "zy")]  # by time
    new = by_id[cases["js_new"]["report_id"]]
    assert new["category"] == "E0504" and new["category_name"] == "店外经营"
    assert new["district"] == "JS" and new["district_name"] == "金水区"
    assert new["segment_name"].startswith("花园路") and new["case_status"] == "dispatched"
    assert new["reporter_id"] == "zz-jinshui-0421" and new["assignee_id"]
    assert new["severity"] == "2" and new["overdue"] == "False"
    assert new["escalation_level"] == "0"
    assert new["note"] == '\'=HYPERLINK("x") 占道经营'  # never a formula in Excel
    observed = dt.datetime.fromisoformat(new["observed_at"])
    assert new["observed_at"].endswith("+08:00")
    assert observed == dt.datetime.fromisoformat(cases["js_new"]["observed_at"])
    assert new["due_at"].endswith("+08:00") and new["rectified_at"] == ""
    assert float(new["lat"]) == pytest.approx(34.774, abs=0.01)
    old = by_id[cases["js_old"]["report_id"]]
    assert old["case_status"] == "closed" and old["closed_at"].endswith("+08:00")
    assert by_id[cases["zy"]["report_id"]]["note"] == "暴露垃圾，路口东北角"


def test_csv_filters(client: FlaskClient, cases: dict[str, dict[str, Any]]) -> None:
    def ids(query: str) -> set[str]:
        return {r["id"] for r in read_csv(client.get(f"/api/cases.csv?{query}"))}

    js = {cases["js_new"]["report_id"], cases["js_old"]["report_id"]}
    assert ids("district=JS") == js
    assert ids("district=金水区") == js
    assert ids("district=ZY") == {cases["zy"]["report_id"]}
    day_ago = (dt.datetime.now(CST) - dt.timedelta(days=1)).isoformat()
    assert ids(f"district=JS&since={q(day_ago)}") == {cases["js_new"]["report_id"]}
    assert ids(f"until={q(day_ago)}") == {cases["js_old"]["report_id"]}
    assert ids("status=closed") == {cases["js_old"]["report_id"]}
    assert ids("status=dispatched,closed&district=JS") == js
    zy_segment = read_csv(client.get("/api/cases.csv?district=ZY"))[0]["segment_id"]
    assert ids(f"segment={zy_segment}") == {cases["zy"]["report_id"]}
    res = client.get(f"/api/cases.csv?district=JS&since={q(day_ago)}")
    assert 'filename="cases_JS_' in res.headers["Content-Disposition"]


@pytest.mark.parametrize("ext", ["csv", "xlsx"])
@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("since=yesterday", "since"),
        ("until=2026-11-01T00:00:00", "until"),  # no offset
        ("since=2026-11-02T00:00:00%2B08:00&until=2026-11-01T00:00:00%2B08:00", "until"),
        ("district=月球区", "district"),
        ("status=open", "status"),
    ],
)
def test_bad_filters_are_400_json(client: FlaskClient, ext: str, query: str, field: str) -> None:
    res = client.get(f"/api/cases.{ext}?{query}")
    assert res.status_code == 400
    (err,) = res.get_json()["errors"]
    assert err["field"] == field and err["message"]


def test_xlsx_rows_match(client: FlaskClient, cases: dict[str, dict[str, Any]]) -> None:
    res = client.get("/api/cases.xlsx?district=JS")
    assert res.status_code == 200
    assert res.content_type == ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    assert 'filename="cases_JS.xlsx"' in res.headers["Content-Disposition"]
    wb = load_workbook(io.BytesIO(res.data), read_only=True)
    ws = wb["cases"]
    rows = list(ws.iter_rows(values_only=True))
    wb.close()
    assert rows[0] == LABELS
    sheet = [dict(zip(HEADER, r, strict=True)) for r in rows[1:]]
    as_csv = read_csv(client.get("/api/cases.csv?district=JS"))
    assert (
        [r["id"] for r in sheet]
        == [r["id"] for r in as_csv]
        == [
            cases["js_old"]["report_id"],
            cases["js_new"]["report_id"],
        ]
    )
    for x, c in zip(sheet, as_csv, strict=True):
        assert x["category_name"] == c["category_name"] and x["segment_name"] == c["segment_name"]
        assert x["district_name"] == "金水区" and x["severity"] == int(c["severity"])
        assert x["note"] == c["note"] and x["overdue"] is False
        # Excel has no zones: local (configured zone) date-times, to the second as in the CSV
        local = dt.datetime.fromisoformat(c["observed_at"]).replace(tzinfo=None)
        assert isinstance(x["observed_at"], dt.datetime) and x["observed_at"] == local
        assert x["lat"] == pytest.approx(float(c["lat"]))
    assert sheet[0]["case_status"] == "closed" and sheet[0]["closed_at"] is not None
    assert sheet[1]["rectified_at"] is None


def test_empty_exports(client: FlaskClient) -> None:
    assert read_csv(client.get("/api/cases.csv")) == []
    res = client.get("/api/cases.xlsx")
    wb = load_workbook(io.BytesIO(res.data), read_only=True)
    assert list(wb["cases"].iter_rows(values_only=True)) == [LABELS]
    wb.close()


def test_csv_streams_in_chunks(client: FlaskClient, runtime: Any, monkeypatch: Any) -> None:
    from roadwatch.web import exports

    monkeypatch.setattr(exports, "CHUNK", 2)
    bodies = [contract_example(category=c) for c in ("E0504", "E0505", "E0506", "E0507", "E0102")]
    runtime.pipeline.process([inbound(b) for b in bodies])
    res = client.get("/api/cases.csv", buffered=False)
    chunks = list(res.response)
    res.close()
    assert len(chunks) >= 3 and chunks[0].startswith(b"\xef\xbb\xbf")
    assert b"".join(chunks).count(b"\xef\xbb\xbf") == 1
    rows = list(csv.reader(io.StringIO(b"".join(chunks).decode("utf-8-sig"))))
    assert len(rows) == 6


def test_header_is_chinese_with_the_codes_beside() -> None:
    assert (
        LABELS[0] == "编号 (id)" and LABELS[HEADER.index("category_name")] == "类别 (category_name)"
    )
    assert all(code in label for code, label in zip(HEADER, LABELS, strict=True))


def test_overdue_and_category_filters(
    client: FlaskClient, runtime: Any, cases: dict[str, dict[str, Any]]
) -> None:
    with runtime.sessions.begin() as s:
        s.execute(
            update(models.Report)
            .where(models.Report.id == cases["zy"]["report_id"])
            .values(overdue=True)
        )
    zy = [cases["zy"]["report_id"]]
    assert [r["id"] for r in read_csv(client.get("/api/cases.csv?overdue=1"))] == zy
    assert [r["id"] for r in read_csv(client.get("/api/cases.csv?status=overdue"))] == zy
    both = read_csv(client.get("/api/cases.csv?status=overdue,closed"))  # either of them
    assert sorted(r["id"] for r in both) == sorted([*zy, cases["js_old"]["report_id"]])
    with runtime.sessions.begin() as s:  # closed later: still flagged, no longer open
        s.execute(
            update(models.Report)
            .where(models.Report.id == cases["zy"]["report_id"])
            .values(case_status="closed")
        )
    assert read_csv(client.get("/api/cases.csv?status=overdue")) == []
    assert [r["id"] for r in read_csv(client.get("/api/cases.csv?overdue=1"))] == zy
    assert [r["id"] for r in read_csv(client.get("/api/cases.csv?category=E0102"))] == zy
    assert client.get("/api/cases.csv?category=NOPE").status_code == 400
    assert client.get("/api/cases.csv?severity=7").status_code == 400
    with runtime.sessions() as session:  # refused filters export (and audit) nothing
        (last,) = audit.entries(session, action="export", limit=1)
    assert last["detail"]["args"] == {"category": "E0102"} and last["target"] == "cases.csv"
    assert last["actor"] == client.get("/api/me").get_json()["username"]
