"""Issue #4 points 3-5 on the database: segment history, dated responsibility, review queue."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import shapely
from flask.testing import FlaskClient
from sqlalchemy import select

from geo.network import Assignment as NetAssignment
from geo.network import Network, Person
from roadwatch.network.responsibility import (
    AssignmentImportError,
    apply_assignments,
    read_assignments,
    responsible_at,
)
from roadwatch.network.sync import sync
from roadwatch.store import db, models
from tests.support.examples import contract_example
from tests.support.review import in_review_beside
from tests.test_pipeline import inbound

TZ = dt.timezone(dt.timedelta(hours=8))


@pytest.fixture
def sessions(tmp_path: Path) -> Any:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'h.sqlite3'}")
    db.upgrade(engine)
    yield db.make_sessionmaker(engine)
    engine.dispose()


def shifted(net: Network, index: int, dx: float) -> Network:
    segs = list(net.segments)
    s = segs[index]
    segs[index] = dataclasses.replace(
        s, geometry=shapely.transform(s.geometry, lambda xy: xy + [dx, 0.0])
    )
    return dataclasses.replace(net, segments=tuple(segs))


def test_reimport_keeps_history(sessions: Any, network_ctx: Any) -> None:
    net = network_ctx.network
    t1 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    t2 = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    with sessions.begin() as s:
        first = sync(s, net, TZ, now=t1)
    assert (first.added, first.changed, first.retired) == (2495, 0, 0)

    changed_id, gone_id = net.segments[0].id, net.segments[1].id
    old_coords = json.loads(json.dumps(shapely.geometry.mapping(net.segments[0].geometry)))
    net2 = shifted(net, 0, 0.0005)  # ~45 m east
    net2 = dataclasses.replace(
        net2,
        segments=tuple(x for x in net2.segments if x.id != gone_id),
        assignments=tuple(a for a in net2.assignments if a.segment_id != gone_id),
    )
    with sessions.begin() as s:
        second = sync(s, net2, TZ, now=t2)
    assert (second.added, second.changed, second.retired) == (0, 1, 1)
    assert second.unchanged == 2493

    with sessions() as s:
        seg = s.get(models.Segment, changed_id)
        assert seg is not None and seg.version == 2 and seg.retired_at is None
        versions = s.scalars(
            select(models.SegmentVersion)
            .where(models.SegmentVersion.segment_id == changed_id)
            .order_by(models.SegmentVersion.version)
        ).all()
        assert [v.version for v in versions] == [1, 2]
        assert versions[0].valid_to == t2 and versions[1].valid_to is None
        assert versions[0].geometry["coordinates"][0][0] == pytest.approx(
            old_coords["coordinates"][0][0], abs=1e-7
        )
        gone = s.get(models.Segment, gone_id)
        assert gone is not None and gone.retired_at == t2  # kept, not deleted
        open_on_gone = s.scalars(
            select(models.Assignment).where(
                models.Assignment.segment_id == gone_id, models.Assignment.valid_to.is_(None)
            )
        ).all()
        assert open_on_gone == []

    with sessions.begin() as s:  # the same file again changes nothing
        again = sync(s, net2, TZ, now=t2)
    assert (again.added, again.changed, again.retired, again.assignments_opened) == (0, 0, 0, 0)
    with sessions.begin() as s:  # the retired segment comes back as a new version
        back = sync(s, net, TZ, now=t2 + dt.timedelta(days=1))
    assert back.changed == 2 and back.retired == 0


def test_chief_rotation_from_the_file_is_dated(sessions: Any, network_ctx: Any) -> None:
    net = network_ctx.network
    seg = net.segments[5].id
    with sessions.begin() as s:
        sync(s, net, TZ, now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    newcomer = Person(
        id="zz-test-9999",
        name="新路长",
        level=3,
        district=net.segments[5].district,
        subdistrict=None,
        title="路段长",
    )
    assignments = tuple(
        NetAssignment(
            segment_id=a.segment_id,
            person_id=newcomer.id,
            level=3,
            role=a.role,
            valid_from=dt.date(2026, 6, 1),
            valid_to=None,
        )
        if a.segment_id == seg and a.level == 3
        else a
        for a in net.assignments
    )
    net2 = dataclasses.replace(net, people=(*net.people, newcomer), assignments=assignments)
    with sessions.begin() as s:
        summary = sync(s, net2, TZ, now=dt.datetime(2026, 6, 2, tzinfo=dt.UTC))
    assert (summary.assignments_opened, summary.assignments_closed) == (1, 1)
    with sessions() as s:
        before = responsible_at(s, seg, dt.datetime(2026, 3, 1, tzinfo=dt.UTC))
        after = responsible_at(s, seg, dt.datetime(2026, 7, 1, tzinfo=dt.UTC))
    chief = lambda rs: [r["person"]["id"] for r in rs if r["level"] == 3]  # noqa: E731
    assert chief(after) == ["zz-test-9999"]
    assert chief(before) != ["zz-test-9999"] and len(chief(before)) == 1
    assert len(before) == len(after) == 4  # 总路长, 一级, 二级, 三级


def write_csv(path: Path, rows: list[str]) -> Path:
    header = ",".join(
        [
            "segment_id",
            "person_id",
            "person_name",
            "role",
            "level",
            "valid_from",
            "valid_to",
            "from_chainage_m",
            "to_chainage_m",
        ]
    )
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def test_chiefs_import_rows_checked_all_or_nothing(
    tmp_path: Path, sessions: Any, network_ctx: Any
) -> None:
    net = network_ctx.network
    seg = net.segments[7].id
    known = {s.id for s in net.segments}
    with sessions.begin() as s:
        sync(s, net, TZ, now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    bad = write_csv(
        tmp_path / "bad.csv",
        [
            f"{seg},unit-1,郑州市某局,partner_unit,,2026-03-01,,,",
            "ZZ-NOPE-1,p1,张三,road_chief,3,2026-03-01,,,",
            f"{seg},p2,李四,road_chief,7,2026-03-01,,,",
            f"{seg},p3,王五,road_chief,3,March,,,",
            f"{seg},m1,某某超市,merchant,,2026-03-01,,,",
            f"{seg},p4,赵六,road_chief,3,2026-03-01,2026-02-01,,",
            f"{seg},p5,钱七,road_chief,2,2026-03-01,,,",
            f"{seg},p6,孙八,road_chief,2,2026-04-01,,,",
        ],
    )
    with pytest.raises(AssignmentImportError) as exc:
        read_assignments(bad, known, TZ)
    msgs = exc.value.errors
    assert "row 3: segment ZZ-NOPE-1 does not exist" in msgs
    assert "row 4: level must be 0 (总路长), 1, 2 or 3" in msgs
    assert "row 5: valid_from 'March' is not a date such as 2026-03-01" in msgs
    assert any(m.startswith("row 6: a merchant row needs from_chainage_m") for m in msgs)
    assert "row 7: valid_to must be after valid_from" in msgs
    assert any(m.startswith("row 9: overlaps row 8") for m in msgs)
    assert str(exc.value).startswith(f"{len(msgs)} problem(s), nothing was imported")

    good = write_csv(
        tmp_path / "good.csv",
        [
            f"{seg},unit-1,郑州市某局,partner_unit,,2026-03-01,,,",
            f"{seg},m1,某某超市,merchant,,2026-03-01,,0,40",
            f"{seg},m2,某某药店,merchant,,2026-03-01,,40,90",
            f"{seg},p9,新二级,road_chief,2,2026-05-01,,,",
        ],
    )
    rows = read_assignments(good, known, TZ)
    with sessions.begin() as s:
        summary = apply_assignments(s, rows)
    assert (summary.opened, summary.closed, summary.people_added) == (4, 1, 4)
    at = dt.datetime(2026, 6, 1, tzinfo=TZ)
    with sessions() as s:
        near_start = responsible_at(s, seg, at, chainage_m=10)
        further = responsible_at(s, seg, at, chainage_m=60)
        in_march = responsible_at(s, seg, dt.datetime(2026, 3, 15, tzinfo=TZ))
    ids = lambda rs: {r["person"]["id"] for r in rs}  # noqa: E731
    assert {"unit-1", "m1"} <= ids(near_start) and "m2" not in ids(near_start)
    assert "m2" in ids(further) and "m1" not in ids(further)
    assert "p9" in ids(near_start) and "p9" not in ids(in_march)  # rotation is dated
    level2_march = [r for r in in_march if r["role"] == "road_chief" and r["level"] == 2]
    assert len(level2_march) == 1 and level2_march[0]["valid_to"] is not None


def test_chiefs_import_xlsx(tmp_path: Path, sessions: Any, network_ctx: Any) -> None:
    from openpyxl import Workbook

    seg = network_ctx.network.segments[9].id
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["segment_id", "person_id", "person_name", "role", "level", "valid_from"])
    ws.append([seg, "x1", "王路长", "road_chief", 3, dt.date(2026, 2, 1)])
    wb.save(tmp_path / "c.xlsx")
    rows = read_assignments(tmp_path / "c.xlsx", {seg}, TZ)
    assert rows[0].valid_from == dt.datetime(2026, 2, 1, tzinfo=TZ) and rows[0].level == 3


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("c.xlsx", b"not a workbook", "not an Excel workbook"),
        ("c.csv", "segment_id,person_id\n".encode("utf-16"), "not UTF-8"),
        ("c.xlsx", b"", "not an Excel workbook"),
    ],
)
def test_chiefs_import_of_a_file_it_cannot_read_says_so(
    tmp_path: Path, name: str, content: bytes, words: str
) -> None:
    """Found in the contract audit: a broken workbook or a UTF-16 CSV was a traceback."""
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(AssignmentImportError) as exc:
        read_assignments(path, {"ZZ-JS-0001"}, TZ)
    assert words in str(exc.value)


@pytest.fixture
def client(login_as: Any) -> FlaskClient:
    """Here `client` is a logged-in admin: the staff API needs a login."""
    client: FlaskClient = login_as("admin")
    return client


def test_report_shows_who_was_responsible_and_its_segment_version(
    client: FlaskClient, runtime: Any
) -> None:
    body = contract_example()
    (out,) = runtime.pipeline.process([inbound(body)])
    doc = client.get(f"/api/reports/{body['report_id']}").get_json()
    assert doc["segment"]["id"] == out.segment_id and doc["segment"]["version"] >= 1
    assert doc["segment"]["geometry"]["type"] == "LineString"
    levels = sorted(r["level"] for r in doc["responsible"] if r["role"] == "road_chief")
    # in the city's time zone, as every other time of the answer
    assert all(r["valid_from"].endswith("+08:00") for r in doc["responsible"])
    assert levels == [0, 1, 2, 3]
    seg = client.get(f"/api/segments/{out.segment_id}").get_json()["properties"]
    assert seg["versions"][0]["version"] == 1
    assert {r["level"] for r in seg["responsible_now"]} == {0, 1, 2, 3}
    assert seg["chief"]["id"]


def test_review_queue_settles_a_report(client: FlaskClient, runtime: Any) -> None:
    target = runtime.ctx.network.segments[3].id
    far = {"report_id": in_review_beside(runtime, target)}
    queue = client.get("/api/review").get_json()["items"]
    assert [q["id"] for q in queue] == [far["report_id"]]
    assert target in [c["segment_id"] for c in queue[0]["candidates"]]
    assert client.get("/api/review/count").get_json() == {"pending": 1}
    district = runtime.ctx.network.segments[3].district
    name = runtime.ctx.district_names[district]
    # by the district's name as acks and events give it, or by its code
    for d in (name, district):
        assert [q["id"] for q in client.get(f"/api/review?district={d}").get_json()["items"]] == [
            far["report_id"]
        ]
    other = next(c for c in runtime.ctx.district_names if c != district)
    assert client.get(f"/api/review?district={other}").get_json()["items"] == []
    # a segment that is no candidate near the point is refused, with a message
    away = next(
        s.id
        for s in runtime.ctx.network.segments
        if s.district == district and s.id not in {c["segment_id"] for c in queue[0]["candidates"]}
    )
    moved = client.post(f"/api/review/{far['report_id']}", json={"segment_id": away})
    assert moved.status_code == 422
    assert moved.get_json()["errors"][0]["code"] == "not_a_candidate"
    seen: list[Any] = []
    runtime.broadcaster.emitter = None
    runtime.broadcaster.publish = seen.extend  # type: ignore[method-assign]
    try:
        bad = client.post(f"/api/review/{far['report_id']}", json={"segment_id": "X"})
        assert bad.status_code == 422
        # the one who decides is the logged-in user: a body naming someone else is refused
        other = client.post(
            f"/api/review/{far['report_id']}", json={"segment_id": target, "by": "staff-7"}
        )
        assert other.status_code == 400 and other.get_json()["errors"][0]["field"] == "by"
        ok = client.post(
            f"/api/review/{far['report_id']}",
            json={"segment_id": target, "note": "照片可见路名牌"},
        )
        assert ok.status_code == 200 and ok.get_json()["status"] == "accepted"
        again = client.post(f"/api/review/{far['report_id']}", json={"segment_id": target})
        assert again.status_code == 409
    finally:
        del runtime.broadcaster.publish
    assert [e.kind for e in seen] == ["case", "case", "segment"]
    assert seen[0].payload["status"] == "accepted" and seen[1].payload["status"] == "dispatched"
    assert seen[1].payload["assignee_id"] and seen[2].payload["open"] == 1
    doc = client.get(f"/api/reports/{far['report_id']}").get_json()
    assert doc["segment_id"] == target and doc["status"] == "accepted"
    assert [h["status"] for h in doc["history"]] == ["needs_review", "accepted", "dispatched"]
    assert doc["history"][1]["by"] == client.get("/api/me").get_json()["username"]
    assert client.get("/api/review").get_json()["items"] == []


def test_chiefs_import_cli(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    runner: Any,
    network_ctx: Any,
) -> None:
    from roadwatch.cli import main
    from roadwatch.network.context import sync_network

    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    monkeypatch.setenv("ROADWATCH_DATABASE_URL", url)
    r = runner.invoke(main, ["chiefs", "import", str(tmp_path / "x.csv")])
    assert r.exit_code == 2, r.output  # no segments yet
    assert "no segments yet" in r.stderr
    engine = db.make_engine(url)
    db.upgrade(engine)
    with db.make_sessionmaker(engine).begin() as s:
        sync_network(s, network_ctx, TZ)
    engine.dispose()
    seg = network_ctx.network.segments[0].id
    bad = write_csv(tmp_path / "bad.csv", [f"{seg},p1,张三,boss,3,2026-03-01,,,"])
    r = runner.invoke(main, ["chiefs", "import", str(bad)])
    assert r.exit_code == 2, r.output
    err = r.stderr
    assert "row 2: role must be one of road_chief, partner_unit, merchant, not 'boss'" in err
    good = write_csv(tmp_path / "good.csv", [f"{seg},p1,张三,road_chief,3,2026-03-01,,,"])
    r = runner.invoke(main, ["chiefs", "import", str(good)])
    assert r.exit_code == 0, r.output
    assert "imported 1 assignments" in r.stdout


def test_dual_carriageway_segment_is_stored_and_recognised_unchanged(
    sessions: Any, network_ctx: Any
) -> None:
    net = network_ctx.network
    s0 = net.segments[0]
    other_side = shapely.transform(s0.geometry, lambda xy: xy + [0.0, 0.0002])  # ~22 m north
    dual = dataclasses.replace(s0, geometry=shapely.MultiLineString([s0.geometry, other_side]))
    net2 = dataclasses.replace(net, segments=(dual, *net.segments[1:]))
    with sessions.begin() as s:
        sync(s, net, TZ, now=dt.datetime(2026, 11, 1, tzinfo=dt.UTC))
    with sessions.begin() as s:
        second = sync(s, net2, TZ, now=dt.datetime(2026, 11, 2, tzinfo=dt.UTC))
    assert (second.changed, second.unchanged) == (1, 2494)
    with sessions() as s:
        seg = s.get(models.Segment, s0.id)
        assert seg is not None and seg.geometry["type"] == "MultiLineString"
        assert len(seg.geometry["coordinates"]) == 2
    with sessions.begin() as s:  # the same file again: nothing changes
        again = sync(s, net2, TZ, now=dt.datetime(2026, 11, 3, tzinfo=dt.UTC))
    assert (again.changed, again.unchanged) == (0, 2495)
