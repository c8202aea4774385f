"""Ranking jobs on SQLite and PostgreSQL: the golden week (issue 6 b), publishing once and
tamper evidence (d), disputes, what-if, the schedule's claim."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, insert, select, text, update

from roadwatch.ranking import publish as pub
from roadwatch.ranking.formula import load_formula
from roadwatch.ranking.schedule import RankingScheduler, due_week
from roadwatch.ranking.week import Week
from roadwatch.store import models
from tests.conftest import make_settings
from tests.support.ranking import (
    add_assignment,
    add_person,
    add_report,
    add_transition,
    clean,
)

GOLDEN = Path(__file__).parent / "data" / "ranking_golden.toml"
H = dt.timedelta(hours=1)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)]
)
def rank_rt(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, network_ctx: Any
) -> Iterator[Any]:
    """A runtime of its own (the ranking tests clear people and assignments too)."""
    from roadwatch.runtime import Runtime

    url = None
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_database").rsplit("/", 1)[0]
        import uuid

        import psycopg

        from tests.conftest import PG_ADMIN_URL

        name = f"rw_rank_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = f"{url}/{name}"
    settings = make_settings(
        tmp_path_factory.mktemp("rank"), **({"database_url": url} if url else {})
    )
    rt = Runtime.build(settings, ctx=network_ctx)
    yield rt
    rt.stop()
    if url:
        import psycopg

        from tests.conftest import PG_ADMIN_URL

        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


@pytest.fixture
def rt(rank_rt: Any) -> Any:
    with rank_rt.engine.begin() as conn:
        clean(conn)
    return rank_rt


@pytest.fixture
def formula(rt: Any) -> Any:
    return load_formula(GOLDEN, rt.categories.codes)


def _eq_segments(rt: Any) -> list[str]:
    with rt.engine.connect() as conn:
        return list(
            conn.execute(
                text("SELECT id FROM segments WHERE district = 'EQ' ORDER BY id LIMIT 6")
            ).scalars()
        )


def golden_fixture(rt: Any, tz: Any) -> dict[str, Any]:
    """Two weeks of events in 二七区 (EQ, quota 2 red / 2 black in the golden formula)."""
    w46, w47 = Week.parse("2026-W46", tz), Week.parse("2026-W47", tz)
    s1, s2, s3, s4, s5, s6 = _eq_segments(rt)
    ids: dict[str, Any] = {"segments": (s1, s2, s3, s4, s5, s6)}
    with rt.engine.begin() as c:
        add_person(c, "ev-1", "evaluator", "第三方测评一组")
        add_person(c, "chief-2", name="张路长")
        add_person(c, "chief-4", name="李路长")
        add_assignment(c, s2, "chief-2", level=3)
        add_assignment(c, s4, "chief-4", level=3)
        # week 46: S1 is already bad (evaluator finds fly-posting four times)
        for i in range(4):
            add_report(c, s1, "EQ", w46.start + (30 + i) * H, category="E0201", reporter="ev-1")
        for i in range(3):
            add_report(c, s3, "EQ", w46.start + (40 + i) * H, category="E0505")
        # week 47
        ids["s1"] = [
            add_report(c, s1, "EQ", w47.start + (10 + i) * H, category="E0201", reporter="ev-1")
            for i in range(4)
        ]
        # a corroborating duplicate: never counted twice
        add_report(c, s1, "EQ", w47.start + 11 * H, category="E0201", case_status="duplicate")
        ids["s2"] = [
            add_report(
                c,
                s2,
                "EQ",
                w47.start + (20 + i) * H,
                category="E0102",
                severity=2,
                reporter="public-1",
                due_at=w47.start + (24 + i) * H,
            )
            for i in range(3)
        ]
        add_transition(c, ids["s2"][0], w47.start + 30 * H, "reopened", "rectified")
        ids["s3"] = [add_report(c, s3, "EQ", w47.start + 50 * H, category="E0505")]
        ids["s4"] = [
            add_report(
                c,
                s4,
                "EQ",
                w47.start + (60 + i) * H,
                category="E0504",
                reporter="chief-4",
                due_at=w47.start + (70 + i) * H,
                rectified_at=w47.start + (62 + i) * H,
                closed_at=w47.start + (65 + i) * H,
                case_status="closed",
            )
            for i in range(3)
        ]
        ids["s5"] = [
            add_report(c, s5, "EQ", w47.start + (80 + i) * H, category="E0506") for i in range(2)
        ]
        # outside the week (Sunday 24:00 local is the next week): not counted
        add_report(c, s6, "EQ", w47.end, category="E0504")
        add_report(c, s6, "EQ", w47.end - dt.timedelta(seconds=1), category="E0504")
    return ids


def _league(content: dict[str, Any], district: str = "EQ", kind: str = "segment") -> Any:
    return next(
        lg for lg in content["leagues"] if lg["district"] == district and lg["kind"] == kind
    )


def test_golden_week(rt: Any, formula: Any) -> None:
    tz = rt.settings.tz
    ids = golden_fixture(rt, tz)
    s1, s2, s3, s4, s5, s6 = ids["segments"]
    w46, w47 = Week.parse("2026-W46", tz), Week.parse("2026-W47", tz)
    # S5 disputes one finding before the cut-off; the arbiter upholds it: it no longer counts
    now = w47.end + H
    did = pub.file_dispute(
        rt.engine, w47, ids["s5"][0], "chief-5", "已当场整改", ["a" * 64], now, 8
    )
    pub.decide_dispute(rt.engine, did, "upheld", "arbiter-1", "照片属实", now + H, tz, 8)
    first = pub.publish(rt.engine, formula, w46, pub.default_as_of(w46, 8), "t", w47.start + 9 * H)
    assert first.created
    out = pub.publish(rt.engine, formula, w47, pub.default_as_of(w47, 8), "t", w47.end + 9 * H)
    with rt.engine.connect() as conn:
        content = __import__("json").loads(pub.ranking_row(conn, "2026-W47").content)
    eq = _league(content)
    assert eq["mode"] == "quota" and eq["insufficient"] is None
    assert eq["findings"] == 4 + 3 + 1 + 3 + 1 + 1  # the duplicate and the struck one do not
    assert eq["black"] == [s1, s2]  # worst first
    by_id = {s["id"]: s for s in eq["scores"]}
    # each black flag's drill-down lists exactly the findings that caused it
    assert [f["id"] for f in by_id[s1]["drilldown"]] == sorted(ids["s1"])
    assert [f["id"] for f in by_id[s2]["drilldown"]] == sorted(ids["s2"])
    assert {f["source"] for f in by_id[s1]["drilldown"]} == {"evaluator"}
    assert by_id[s1]["deductions"] == [
        {
            "category": "E0201",
            "raw": 36.0,
            "points": 36.0,
            "cap": 40.0,
            "groups": [{"severity": 1, "source": "evaluator", "count": 4, "points_each": 9.0}],
        }
    ]
    # 4 unresolved, 4 recurrences (the first within 7 days of week 46's)
    assert {m["measure"]: m["points"] for m in by_id[s1]["measures"]} == {
        "unresolved": 4.0,
        "recurrence": 4.0,
    }
    s2m = {m["measure"]: m for m in by_id[s2]["measures"]}
    assert s2m["overdue"]["count"] == 3 and s2m["reopened"]["count"] == 1
    assert s2m["patrol_missed_days"]["points"] == 7.0
    # two black weeks in a row: a yellow card; S2 is new on the list
    assert (by_id[s1]["streak"], by_id[s1]["card"]) == (2, "yellow_card")
    assert (by_id[s2]["streak"], by_id[s2]["card"]) == (1, None)
    # S3 (one finding) and S5 (one left after the dispute) lack the evidence for black
    assert by_id[s3]["flag"] is None and not by_id[s3]["eligible"]["black"]
    assert by_id[s5]["findings"] == 1 and not by_id[s5]["eligible"]["black"]
    # self-reported, fixed on time: the credit takes the findings' points back (3 x 1.5);
    # what is left is 2 recurrences and 7 patrol days not walked
    assert by_id[s4]["points"] == 4.5 + 2.0 + 7.0 - 4.5 and by_id[s4]["flag"] is None
    assert {m["measure"]: m["points"] for m in by_id[s4]["measures"]}["own_fix_credit"] == -4.5
    assert by_id[s6]["findings"] == 1  # Sunday 23:59:59 counts, Monday 00:00 does not
    # red: the two best by the shrunk rate among the quiet segments, tie rule applied
    reds = [by_id[r] for r in eq["red"]]
    assert len(reds) == 2 and all(r["findings"] == 0 for r in reds)
    assert reds[0]["rank"] == 1 and reds[1]["rank"] == 2
    quiet = sorted((s for s in eq["scores"] if s["findings"] == 0), key=lambda s: -s["exposure_km"])
    assert [r["id"] for r in reds] == [q["id"] for q in quiet[:2]]
    # other districts had too little data: they say so instead of inventing flags
    js = _league(content, "JS")
    assert js["red"] == js["black"] == [] and "数据不足" in js["insufficient"]
    # the frozen week names its formula and chains to the week before
    assert content["formula"]["version"] == "golden-1"
    assert out.chain_sha256 == pub.chain(first.chain_sha256, out.content_sha256)
    assert pub.verify(rt.engine, formula, w47).ok


def test_publish_twice_and_concurrently_freezes_one_week(rt: Any, formula: Any) -> None:
    tz = rt.settings.tz
    golden_fixture(rt, tz)
    w47 = Week.parse("2026-W47", tz)
    as_of = pub.default_as_of(w47, 8)
    with pytest.raises(pub.RankingError, match="contest window"):
        pub.publish(rt.engine, formula, w47, as_of, "early", as_of - H)
    results: list[Any] = []
    barrier = threading.Barrier(4)

    def go(n: int) -> None:
        barrier.wait()
        results.append(pub.publish(rt.engine, formula, w47, as_of, f"p{n}", as_of + n * H))

    threads = [threading.Thread(target=go, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    again = pub.publish(rt.engine, formula, w47, as_of, "late", as_of + 9 * H)
    assert sum(r.created for r in results) == 1 and not again.created
    assert len({r.content_sha256 for r in [*results, again]}) == 1
    with rt.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(pub.RANKINGS)).scalar_one() == 1
        events = conn.execute(
            select(func.count()).select_from(models.Event).where(models.Event.kind == "ranking")
        ).scalar_one()
    assert events == 1


def test_editing_a_stored_finding_afterwards_is_detected(rt: Any, formula: Any) -> None:
    tz = rt.settings.tz
    ids = golden_fixture(rt, tz)
    w47 = Week.parse("2026-W47", tz)
    as_of = pub.default_as_of(w47, 8)
    pub.publish(rt.engine, formula, w47, as_of, "t", as_of)
    assert pub.verify(rt.engine, formula, w47).ok
    with rt.engine.begin() as conn:  # someone downgrades an evaluator finding's severity
        conn.execute(
            update(models.Report).where(models.Report.id == ids["s1"][0]).values(severity=3)
        )
    v = pub.verify(rt.engine, formula, w47)
    assert not v.ok
    assert any(ids["segments"][0] in p and "changed since publication" in p for p in v.problems)
    with rt.engine.begin() as conn:  # put it back: the week verifies again
        conn.execute(
            update(models.Report).where(models.Report.id == ids["s1"][0]).values(severity=1)
        )
    assert pub.verify(rt.engine, formula, w47).ok
    with rt.engine.begin() as conn:  # now edit the frozen content itself
        conn.execute(update(pub.RANKINGS).values(content=pub.RANKINGS.c.content + text("' '")))
    v = pub.verify(rt.engine, formula, w47)
    assert any("SHA-256" in p for p in v.problems)


def test_a_report_received_after_the_cut_off_leaves_the_frozen_week_alone(
    rt: Any, formula: Any
) -> None:
    """A phone's outbox may deliver a finding observed on Sunday night days later (within
    observed_window_days). The week was frozen at its cut-off without it: the published
    week must still verify, and a draft of the week computed later gives the same flags."""
    tz = rt.settings.tz
    ids = golden_fixture(rt, tz)
    w47 = Week.parse("2026-W47", tz)
    as_of = pub.default_as_of(w47, 8)
    s5 = ids["segments"][4]
    with rt.engine.begin() as c:  # observed Sunday 23:59, received before the cut-off: counts
        add_report(
            c,
            s5,
            "EQ",
            w47.end - 60 * dt.timedelta(seconds=1),
            category="E0506",
            received_at=as_of - H,
        )
    pub.publish(rt.engine, formula, w47, as_of, "t", as_of)
    assert pub.verify(rt.engine, formula, w47).ok
    with rt.engine.connect() as conn:
        before = pub.compute(conn, formula, w47, as_of)
    with rt.engine.begin() as c:  # observed Sunday 23:59, received Monday 09:00
        late = add_report(
            c,
            s5,
            "EQ",
            w47.end - 60 * dt.timedelta(seconds=1),
            category="E0506",
            received_at=as_of + H,
        )
    v = pub.verify(rt.engine, formula, w47)
    assert v.ok, v.problems
    with rt.engine.connect() as conn:
        after = pub.compute(conn, formula, w47, as_of)
    assert pub.canonical(after) == pub.canonical(before)
    s5_score = next(s for s in _league(after)["scores"] if s["id"] == s5)
    assert s5_score["findings"] == 3  # the two of the fixture and the one in time
    with rt.engine.connect() as conn:  # and it is no finding of the next week either
        nxt = pub.compute(conn, formula, w47.next(), pub.default_as_of(w47.next(), 8))
    assert late not in str(nxt)


def test_a_patrol_received_after_the_cut_off_leaves_the_frozen_week_alone(
    rt: Any, formula: Any
) -> None:
    """A chief's walk on Sunday that the phone's outbox delivers after the cut-off (its
    `end` matched then) added a patrol day to the frozen week: `verify` answered "the
    stored findings changed since publication" for the district's segments. A walk counts
    only if the platform had it by the cut-off, as a report does; one in time still counts."""
    from roadwatch.cases.patrols import PatrolIn, store_patrol

    tz = rt.settings.tz
    ids = golden_fixture(rt, tz)
    w47 = Week.parse("2026-W47", tz)
    as_of = pub.default_as_of(w47, 8)
    s2 = ids["segments"][1]
    line = rt.ctx.network.segments[rt.ctx.position[s2]].geometry
    if line.geom_type == "MultiLineString":
        line = line.geoms[0]
    sunday = w47.end - 10 * H

    def walk(pid: str, at: dt.datetime, now: dt.datetime) -> None:
        points = tuple(
            (
                at + i * dt.timedelta(seconds=20),
                *line.interpolate(i / 11, normalized=True).coords[0],
                5.0,
            )
            for i in range(12)
        )
        with rt.engine.begin() as conn:
            covered = store_patrol(conn, PatrolIn(pid, "chief-2", "end", points), rt.ctx, now)
        assert s2 in covered

    def missed(content: dict[str, Any]) -> float:
        s = next(s for s in _league(content)["scores"] if s["id"] == s2)
        by = {m["measure"]: m for m in s["measures"]}
        return float(by["patrol_missed_days"]["points"])

    walk("p-in-time", sunday - 24 * H, as_of - H)  # Saturday's walk, had before the cut-off
    pub.publish(rt.engine, formula, w47, as_of, "t", as_of)
    assert pub.verify(rt.engine, formula, w47).ok
    with rt.engine.connect() as conn:
        before = pub.compute(conn, formula, w47, as_of)
    assert missed(before) == 6.0  # the walk in time counts
    walk("p-late", sunday, as_of + 2 * H)  # Sunday's walk, delivered Monday 10:00
    v = pub.verify(rt.engine, formula, w47)
    assert v.ok, v.problems
    with rt.engine.connect() as conn:
        assert pub.canonical(pub.compute(conn, formula, w47, as_of)) == pub.canonical(before)
    # points of the walk in time that come late match it again: it still counts
    walk("p-in-time", sunday - 24 * H - H, as_of + 3 * H)
    assert pub.verify(rt.engine, formula, w47).ok


def test_routine_case_work_after_the_cut_off_leaves_the_frozen_week_verifiable(
    rt: Any, formula: Any
) -> None:
    """Cases of a published week go on: staff extend one, close another as invalid and
    reopen a closed one. The recomputation read the cases as they are now, so `verify`
    called each such action tampering ("the stored findings changed since publication").
    It reads them as they stood at the cut-off (models.ReportVersion)."""
    from roadwatch.cases.actions import Env, act
    from roadwatch.cases.permissions import Staff

    tz = rt.settings.tz
    ids = golden_fixture(rt, tz)
    w47 = Week.parse("2026-W47", tz)
    as_of = pub.default_as_of(w47, 8)
    pub.publish(rt.engine, formula, w47, as_of, "t", as_of)
    assert pub.verify(rt.engine, formula, w47).ok
    with rt.engine.connect() as conn:
        before = pub.compute(conn, formula, w47, as_of)
    admin, env = Staff("admin", "admin"), Env(rt.pipeline.sla, rt.ctx, as_of + 3 * H)
    with rt.engine.begin() as conn:
        act(conn, admin, "extend", ids["s2"][1], {"hours": 40, "reason": "施工"}, env)
        act(conn, admin, "close_invalid", ids["s3"][0], {"reason": "重复上报"}, env)
        act(conn, admin, "reopen", ids["s4"][0], {"reason": "复查未通过"}, env)
    with rt.engine.connect() as conn:
        now = {
            r.id: r
            for r in conn.execute(
                select(models.Report).where(
                    models.Report.id.in_([ids["s2"][1], ids["s3"][0], ids["s4"][0]])
                )
            )
        }
    assert now[ids["s3"][0]].case_status == "invalid"  # the cases did change
    assert now[ids["s4"][0]].closed_at is None
    v = pub.verify(rt.engine, formula, w47)
    assert v.ok, v.problems
    with rt.engine.connect() as conn:
        assert pub.canonical(pub.compute(conn, formula, w47, as_of)) == pub.canonical(before)
    # the versions are what holds it: without them the recomputation reads today's cases
    with rt.engine.begin() as conn:
        conn.execute(text("DELETE FROM report_versions"))
    v = pub.verify(rt.engine, formula, w47)
    assert not v.ok and any("changed since publication" in p for p in v.problems)


def test_a_network_reimported_after_the_cut_off_leaves_the_frozen_week_alone(
    rt: Any, formula: Any
) -> None:
    """The city re-imports its network after a week was published: a segment renamed and
    moved to another district, one added, one retired. The recomputation read the segments
    as they are now, so `verify` called it tampering; it reads them as they were at the
    cut-off (segment_versions)."""
    import dataclasses

    from roadwatch.network.sync import sync

    tz = rt.settings.tz
    ids = golden_fixture(rt, tz)
    w47 = Week.parse("2026-W47", tz)
    as_of = pub.default_as_of(w47, 8)
    net = rt.ctx.network
    with rt.sessions.begin() as session:  # the network as it was before the week
        session.execute(update(models.SegmentVersion).values(valid_from=w47.start - 30 * 24 * H))
    pub.publish(rt.engine, formula, w47, as_of, "t", as_of)
    assert pub.verify(rt.engine, formula, w47).ok
    with rt.engine.connect() as conn:
        before = pub.compute(conn, formula, w47, as_of)
    s1, s3 = ids["segments"][0], ids["segments"][2]
    other = next(d.code for d in net.districts if d.code != "EQ")
    gone = next(s.id for s in net.segments if s.district == "EQ" and s.id not in ids["segments"])
    changed = [
        dataclasses.replace(s, name=s.name + "（改）", district=other) if s.id == s3 else s
        for s in net.segments
        if s.id != gone
    ]
    added = dataclasses.replace(net.segment_by_id(s1), id="EQ-NEW-0001", name="新建路（甲至乙）")
    again = dataclasses.replace(net, segments=(*changed, added), people=(), assignments=())
    with rt.engine.connect() as conn:  # the module's other tests rank the network as shipped
        kept = {
            t: [dict(r._mapping) for r in conn.execute(select(t))]
            for t in (models.Segment.__table__, models.SegmentVersion.__table__)
        }
    try:
        with rt.sessions.begin() as session:
            summary = sync(session, again, tz, now=as_of + 24 * H)
        assert (summary.added, summary.changed, summary.retired) == (1, 1, 1)
        v = pub.verify(rt.engine, formula, w47)
        assert v.ok, v.problems
        with rt.engine.connect() as conn:
            assert pub.canonical(pub.compute(conn, formula, w47, as_of)) == pub.canonical(before)
            # and a week after the re-import is ranked on the network as it is now
            w49 = w47.next().next()
            nxt = pub.compute(conn, formula, w49, pub.default_as_of(w49, 8))
        assert "EQ-NEW-0001" in str(nxt) and gone not in str(nxt)
    finally:
        with rt.engine.begin() as conn:
            clean(conn)
            conn.execute(delete(models.SegmentVersion))
            conn.execute(delete(models.Segment))
            for table, rows in kept.items():
                conn.execute(insert(table), rows)


def test_disputes_are_checked_and_kept(rt: Any, formula: Any) -> None:
    tz = rt.settings.tz
    ids = golden_fixture(rt, tz)
    w47 = Week.parse("2026-W47", tz)
    now = w47.end
    rid = ids["s2"][1]
    with pytest.raises(pub.RankingError, match="evidence"):
        pub.file_dispute(rt.engine, w47, rid, "chief-2", "不是我的路段", [], now, 8)
    with pytest.raises(pub.RankingError, match="not observed in"):
        pub.file_dispute(rt.engine, Week.parse("2026-W48", tz), rid, "chief-2", "x", ["e"], now, 8)
    did = pub.file_dispute(rt.engine, w47, rid, "chief-2", "不是我的路段", ["photo:1"], now, 8)
    with pytest.raises(pub.RankingError, match="already disputed"):
        pub.file_dispute(rt.engine, w47, rid, "chief-2", "again", ["photo:1"], now, 8)
    with pytest.raises(pub.RankingError, match="cannot be the one"):
        pub.decide_dispute(rt.engine, did, "upheld", "chief-2", "", now, tz, 8)
    pub.decide_dispute(rt.engine, did, "rejected", "arbiter", "位置在本路段内", now + H, tz, 8)
    with pytest.raises(pub.RankingError, match="already decided"):
        pub.decide_dispute(rt.engine, did, "upheld", "arbiter", "", now + H, tz, 8)
    with pytest.raises(pub.RankingError, match="closed"):
        pub.file_dispute(rt.engine, w47, ids["s2"][2], "chief-2", "late", ["p"], now + 8 * H, 8)
    with rt.engine.connect() as conn:
        (d,) = pub.disputes_of(conn, "2026-W47")
    assert (d["decision"], d["decided_by"], d["decision_note"]) == (
        "rejected",
        "arbiter",
        "位置在本路段内",
    )
    # a rejected dispute leaves the finding counted
    with rt.engine.connect() as conn:
        content = pub.compute(conn, formula, w47, pub.default_as_of(w47, 8))
    s2 = next(s for s in _league(content)["scores"] if s["id"] == ids["segments"][1])
    assert s2["findings"] == 3


def test_what_if_under_another_formula_shows_the_difference(
    rt: Any, formula: Any, tmp_path: Path
) -> None:
    tz = rt.settings.tz
    ids = golden_fixture(rt, tz)
    w47 = Week.parse("2026-W47", tz)
    other_path = tmp_path / "v2.toml"
    other_path.write_text(
        GOLDEN.read_text(encoding="utf-8")
        .replace('version = "golden-1"', 'version = "golden-2"')
        .replace("evaluator = 3.0", "evaluator = 0.1"),
        encoding="utf-8",
    )
    other = load_formula(other_path, rt.categories.codes)
    with rt.engine.connect() as conn:
        diff = pub.what_if(conn, formula, other, w47, pub.default_as_of(w47, 8))
    assert (diff["base"], diff["other"]) == ("golden-1", "golden-2")
    moved = {c["id"]: c for c in diff["flag_changes"]}
    s1 = ids["segments"][0]
    assert s1 in moved and moved[s1]["flag"][0] == "black"


def test_the_schedule_publishes_each_week_exactly_once(rt: Any) -> None:
    tz = rt.settings.tz
    golden_fixture(rt, tz)
    monday_0801 = Week.parse("2026-W48", tz).start + 8 * H + dt.timedelta(minutes=1)
    assert due_week(monday_0801, tz, 8).label == "2026-W47"
    assert due_week(monday_0801 - 2 * dt.timedelta(minutes=1), tz, 8).label == "2026-W46"
    delivered: list[Any] = []
    schedulers = [
        RankingScheduler(
            rt.engine,
            GOLDEN,
            tz,
            8,
            delivered.extend,
            rt.categories.codes,
            clock=lambda: monday_0801,
        )
        for _ in range(4)
    ]
    results: list[Any] = []
    barrier = threading.Barrier(len(schedulers))

    def go(s: RankingScheduler) -> None:
        barrier.wait()
        results.append(s.run_once())
        results.append(s.run_once())

    threads = [threading.Thread(target=go, args=(s,)) for s in schedulers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done = [r for r in results if r is not None]
    assert len(done) == 1 and done[0].week == "2026-W47" and done[0].created
    assert [e.kind for e in delivered] == ["ranking"]
    assert delivered[0].payload["url"] == "/rankings/2026-W47"
    with rt.engine.connect() as conn:
        job = conn.execute(select(pub.JOBS)).one()
    assert job.outcome == "published" and job.finished_at is not None


def test_the_schedule_waits_for_the_first_report(rt: Any, caplog: Any) -> None:
    """A fresh install does not freeze the week before it as an empty week."""
    tz = rt.settings.tz
    monday_0801 = Week.parse("2026-W48", tz).start + 8 * H + dt.timedelta(minutes=1)
    s = RankingScheduler(
        rt.engine, GOLDEN, tz, 8, lambda _: None, rt.categories.codes, clock=lambda: monday_0801
    )
    with caplog.at_level(logging.INFO, logger="roadwatch.ranking.schedule"):
        assert s.run_once() is None and s.run_once() is None
    assert caplog.text.count("2026-W47 not published: no report was observed") == 1
    with rt.engine.connect() as conn:
        assert conn.execute(select(pub.JOBS)).first() is None
        assert conn.execute(select(pub.RANKINGS)).first() is None
    golden_fixture(rt, tz)  # reports observed in W47: now it is a week to rank
    done = s.run_once()
    assert done is not None and done.week == "2026-W47" and done.created


def test_the_schedule_keeps_the_last_good_formula(rt: Any, tmp_path: Path, caplog: Any) -> None:
    path = tmp_path / "f.toml"
    path.write_text(GOLDEN.read_text(encoding="utf-8"), encoding="utf-8")
    s = RankingScheduler(rt.engine, path, rt.settings.tz, 8, lambda _: None, rt.categories.codes)
    path.write_text(
        GOLDEN.read_text(encoding="utf-8").replace("cap = 20.0", "cap = -1"), encoding="utf-8"
    )
    assert s.reload_formula().version == "golden-1"
    assert "formula refused" in caplog.text and "cap cannot be below 0" in caplog.text


def test_cli_rank_draft_publish_verify_what_if(
    rt: Any, monkeypatch: pytest.MonkeyPatch, runner: Any, tmp_path: Path
) -> None:
    from roadwatch.cli import main

    ids = golden_fixture(rt, rt.settings.tz)
    monkeypatch.setenv("ROADWATCH_DATABASE_URL", rt.settings.database_url)
    monkeypatch.setenv("ROADWATCH_RANKING_FORMULA", str(GOLDEN))
    s1 = ids["segments"][0]
    r = runner.invoke(main, ["rank", "--week", "2026-W47"])
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert "2026-W47 (draft" in out and f"黑旗 {s1}" in out and "数据不足" in out
    r = runner.invoke(main, ["rank", "--week", "2026-W47", "--publish"])
    assert r.exit_code == 0, r.output
    assert "2026-W47 published: sha256 " in r.stdout
    r = runner.invoke(main, ["rank", "--week", "2026-W47", "--publish"])
    assert r.exit_code == 0, r.output
    assert "was already published" in r.stdout
    r = runner.invoke(main, ["rank", "--week", "2026-W47", "--verify"])
    assert r.exit_code == 0, r.output
    assert "verified" in r.stdout
    r = runner.invoke(main, ["rank", "--week", "2026-W47", "--what-if", str(GOLDEN)])
    assert r.exit_code == 0, r.output
    assert "0 ranks move, 0 flags change" in r.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text(GOLDEN.read_text(encoding="utf-8").replace("E0102", "E9999"), "utf-8")
    r = runner.invoke(main, ["rank", "--week", "2026-W47", "--formula", str(bad)])
    assert r.exit_code == 2, r.output
    err = r.stderr
    assert "bad.toml:" in err and "E9999: unknown category" in err
    r = runner.invoke(main, ["rank", "--week", "2027-W53"])
    assert r.exit_code == 2, r.output  # 2027 has 52 weeks
    assert "has no week 53" in r.stderr


def test_two_processes_publishing_at_once_freeze_one_week(rt: Any) -> None:
    import os
    import subprocess
    import sys

    golden_fixture(rt, rt.settings.tz)
    env = {
        **os.environ,
        "ROADWATCH_DATABASE_URL": rt.settings.database_url,
        "ROADWATCH_RANKING_FORMULA": str(GOLDEN),
    }
    cmd = [sys.executable, "-m", "roadwatch.cli", "rank", "--week", "2026-W47", "--publish"]
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    said = sorted(out.split(":")[0] for out, _ in outs)
    assert said == ["2026-W47 published", "2026-W47 was already published"]
    with rt.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(pub.RANKINGS)).scalar_one() == 1


def test_partner_units_and_merchants_are_ranked_on_the_zones_they_hold(
    rt: Any, formula: Any
) -> None:
    tz = rt.settings.tz
    ids = golden_fixture(rt, tz)
    s1, s2 = ids["segments"][:2]
    w47 = Week.parse("2026-W47", tz)
    with rt.engine.begin() as c:
        add_person(c, "unit-1", "unit", "郑州某局")
        add_person(c, "shop-1", "merchant", "老王烩面馆")
        add_assignment(c, s1, "unit-1", role="partner_unit")
        add_assignment(c, s2, "unit-1", role="partner_unit")
        add_assignment(c, s1, "shop-1", role="merchant", from_chainage_m=0.0, to_chainage_m=80.0)
        for i in range(3):
            add_report(c, s1, "EQ", w47.start + (90 + i) * H, chainage_m=40.0 + i)
        add_report(c, s1, "EQ", w47.start + 95 * H, chainage_m=300.0)  # outside the zone
        add_report(c, s2, "EQ", w47.start + 96 * H)
    with rt.engine.connect() as conn:
        content = pub.compute(conn, formula, w47, pub.default_as_of(w47, 8))
        road_class = conn.execute(
            text("SELECT road_class FROM segments WHERE id = :s"), {"s": s1}
        ).scalar_one()
    (unit,) = _league(content, kind="partner_unit")["scores"]
    (shop,) = _league(content, kind="merchant")["scores"]
    assert unit["id"] == "unit-1" and unit["name"] == "郑州某局"
    # everything on S1 (4 + 3 + 1) and S2 (3 + 1) in the week is the partner unit's
    assert unit["findings"] == 12
    # only the three whose chainage lies in the frontage zone are the merchant's
    assert shop["id"] == "shop-1" and shop["findings"] == 3
    # and its exposure is the 80 m zone (the minimum length applies), not the segment
    zone_km = max(80.0, formula.min_length_m) / 1000 * formula.class_factor.get(road_class, 1)
    assert shop["exposure_km"] == pytest.approx(zone_km)
    assert shop["exposure_km"] < unit["exposure_km"]


def _random_week(rt: Any, overlapping: bool, holders: bool = False) -> list[str]:
    """A random week built to hit every case the fast aggregation must get right: findings
    at the same instant in different groups, reports in the days before the week (inside
    and outside recurrence_days), findings struck by upheld disputes (and one rejected),
    the chief's own reports, evaluators, reopened and rectified cases, and
    (`overlapping`) a chief holding two overlapping assignments on one segment; with
    `holders`, a partner unit and merchants too. Returns the struck report ids."""
    import random

    rng = random.Random(47)
    spots = random.Random(11)  # chainages (merchants' zones), apart from the rest
    w47 = Week.parse("2026-W47", rt.settings.tz)
    with rt.engine.connect() as conn:
        segs = list(
            conn.execute(
                text("SELECT id FROM segments WHERE district = 'EQ' ORDER BY id LIMIT 40")
            ).scalars()
        )
    with rt.engine.begin() as c:
        add_person(c, "ev-1", "evaluator")
        for i, s in enumerate(segs):
            add_person(c, f"chief-{i}")
            add_assignment(c, s, f"chief-{i}", level=3)
        if overlapping:
            add_assignment(c, segs[0], "chief-0", role="partner_unit", level=None)
        struck = []
        for n in range(1500):
            seg = rng.choice(segs)
            minutes = rng.randrange(-9 * 24 * 60, 7 * 24 * 60)
            if n % 50 == 0:  # now and then two findings at one instant
                minutes = rng.randrange(0, 7 * 24) * 60
            at = w47.start + dt.timedelta(minutes=minutes)
            reporter = rng.choice(["ev-1", f"chief-{segs.index(seg)}", "public-1"])
            rid = add_report(
                c,
                seg,
                "EQ",
                at,
                category=rng.choice(["E0201", "E0505", "C0101"]),
                severity=rng.choice([1, 1, 2, 3]),
                reporter=reporter,
                due_at=at + 4 * H,
                rectified_at=at + rng.choice([2, 6]) * H if rng.random() < 0.5 else None,
                closed_at=at + 8 * H if rng.random() < 0.4 else None,
                case_status=rng.choice(["dispatched"] * 8 + ["duplicate", "needs_review"]),
                chainage_m=spots.uniform(0.0, 150.0),
            )
            if rng.random() < 0.05:
                add_transition(c, rid, at + 7 * H, "reopened", "rectified")
            if at >= w47.start and seg in segs[:3] and rng.random() < 0.1:
                struck.append(rid)
        for seg in segs[5:8]:  # the week's first two findings of a category: one instant
            for severity in (1, 3):
                add_report(c, seg, "EQ", w47.start, category="E0201", severity=severity)
        for i, rid in enumerate(struck):
            c.execute(
                models.RankingDispute.__table__.insert().values(
                    week="2026-W47",
                    report_id=rid,
                    filed_by="chief",
                    filed_at=w47.end,
                    reason="not ours",
                    evidence=[],
                    decision="rejected" if i == 0 else "upheld",
                    decided_by="arbiter",
                    decided_at=w47.end + H,
                )
            )
    if holders:
        with rt.engine.begin() as c:
            add_person(c, "unit-1", "unit", "郑州某局")
            for seg in segs[:12]:
                add_assignment(c, seg, "unit-1", role="partner_unit")
            for i, seg in enumerate(segs[10:20]):
                add_person(c, f"shop-{i}", "merchant", f"商户{i}")
                add_assignment(
                    c, seg, f"shop-{i}", role="merchant", from_chainage_m=0.0, to_chainage_m=60.0
                )
    return struck


@pytest.mark.parametrize("overlapping", [False, True], ids=["one-holder", "two-holders"])
def test_the_one_pass_aggregation_equals_the_window_over_every_report(
    rt: Any, formula: Any, overlapping: bool
) -> None:
    """The fast segment groups (one GROUP BY, no sort) against the exact per-report path.

    A random week built to hit every case the fast path must get right: findings at the
    same instant in different groups, reports in the days before the week (inside and
    outside recurrence_days), findings struck by upheld disputes (and one rejected), the
    chief's own reports, evaluators, reopened and rectified cases, and (`two-holders`) a
    chief holding two overlapping assignments on one segment.
    """
    from roadwatch.ranking import gather
    from roadwatch.ranking.columns import SOURCE_ORDER
    from roadwatch.ranking.score import FindingGroup

    w47 = Week.parse("2026-W47", rt.settings.tz)
    struck = _random_week(rt, overlapping)
    with rt.engine.connect() as conn:
        segs = list(
            conn.execute(
                text("SELECT id FROM segments WHERE district = 'EQ' ORDER BY id LIMIT 40")
            ).scalars()
        )
    assert len(struck) >= 3
    as_of = pub.default_as_of(w47, 8)
    params = gather._params(formula, w47, as_of)

    def tidy(groups: Any) -> dict[str, list[Any]]:
        return {
            k: sorted(v, key=lambda g: (g.category, g.severity, g.source))
            for k, v in groups.items()
            if v
        }

    exact_path = gather._exact_groups
    resolved_exactly: list[str] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        resolved_exactly.extend(args[4] if len(args) > 4 else kwargs.get("segments") or [])
        return exact_path(*args, **kwargs)

    with rt.engine.connect() as conn:
        single = gather._single_holder(conn, params)
        assert single is not overlapping
        import unittest.mock

        with unittest.mock.patch.object(gather, "_exact_groups", spy):
            fast = tidy(gather._segment_groups(conn, formula, w47, params, single))
        exact = tidy(gather._exact_groups(conn, formula, params, single))
        # the same groups as columns (what compute reads), positions of `segs` as units
        cols = gather._segment_group_columns(conn, formula, w47, params, single, segs)
    as_columns: dict[str, list[Any]] = {}
    for row in zip(*(cols[k].tolist() for k in gather._GROUP_ARRAYS), strict=True):
        unit, cat, sev, src, *rest = row
        group = FindingGroup(cols["categories"][cat], sev, SOURCE_ORDER[src], *rest)
        as_columns.setdefault(segs[unit], []).append(group)
    assert as_columns == exact  # in score_unit's order already
    # the struck segments and the ties went the exact way, the rest the fast way
    assert set(segs[:3] + segs[5:8]) <= set(resolved_exactly)
    assert len(resolved_exactly) < len(segs) // 2
    assert fast == exact
    assert sum(g.recurrence for gs in exact.values() for g in gs) > 0
    assert any(g.source == "self" for gs in exact.values() for g in gs)
    assert any(g.source == "evaluator" for gs in exact.values() for g in gs)


@pytest.mark.parametrize("overlapping", [False, True], ids=["one-holder", "two-holders"])
def test_compute_by_columns_gives_the_per_unit_content_byte_for_byte(
    rt: Any, formula: Any, overlapping: bool, tmp_path: Path
) -> None:
    """compute (gather_table + columns.score_table) against compute_per_unit (gather_week
    + score.py) on the random week, with partner units, merchants, flags with drill-downs,
    a published week before it (streaks, cards), under the golden formula and under one
    whose recurrence_days is shorter than a week (the exact path for every segment): the
    same canonical JSON, so a week published either way verifies the other."""
    _random_week(rt, overlapping, holders=True)
    tz = rt.settings.tz
    w46, w47 = Week.parse("2026-W46", tz), Week.parse("2026-W47", tz)
    pub.publish(rt.engine, formula, w46, pub.default_as_of(w46, 8), "t", w47.start + 9 * H)
    short_path = tmp_path / "short.toml"
    short_path.write_text(
        GOLDEN.read_text(encoding="utf-8").replace("recurrence_days = 7", "recurrence_days = 2"),
        encoding="utf-8",
    )
    short = load_formula(short_path, rt.categories.codes)
    as_of = pub.default_as_of(w47, 8)
    for f in (formula, short):
        with rt.engine.connect() as conn:
            by_columns = pub.compute(conn, f, w47, as_of)
            per_unit = pub.compute_per_unit(conn, f, w47, as_of)
        assert pub.canonical(by_columns) == pub.canonical(per_unit)
        leagues = by_columns["leagues"]
        assert {lg["kind"] for lg in leagues} == {"segment", "partner_unit", "merchant"}
        scores = [s for lg in leagues for s in lg["scores"]]
        assert any(s["flag"] and s.get("drilldown") for s in scores)
        assert any(s["prev_rank"] is not None for s in scores)
        assert any(s["streak"] == 2 for s in scores)


def test_registered_evaluators_and_covert_checks_weigh_more(
    rt: Any, formula: Any, monkeypatch: pytest.MonkeyPatch, runner: Any
) -> None:
    """`roadwatch reporters add` makes a reporter an evaluator or covert checker; the week's
    ranking then counts their findings as such (read when the week is ranked)."""
    from roadwatch.cli import main
    from roadwatch.ranking import gather

    w47 = Week.parse("2026-W47", rt.settings.tz)
    s1, s2 = _eq_segments(rt)[:2]
    with rt.engine.begin() as c:
        add_report(c, s1, "EQ", w47.start + 5 * H, category="E0201", reporter="insp-1")
        add_report(c, s2, "EQ", w47.start + 6 * H, category="E0201", reporter="insp-2")
    as_of = pub.default_as_of(w47, 8)

    def sources() -> dict[str, str]:
        with rt.engine.connect() as conn:
            data = gather.gather_week(conn, formula, w47, as_of, kinds=("segment",))
        return {u.id: u.groups[0].source for u in data.units if u.groups}

    assert sources() == {s1: "public", s2: "public"}
    monkeypatch.setenv("ROADWATCH_DATABASE_URL", rt.settings.database_url)
    r = runner.invoke(
        main, ["reporters", "add", "insp-1", "--kind", "evaluator", "--name", "测评一组"]
    )
    assert r.exit_code == 0, r.output
    assert "added insp-1 (evaluator)" in r.stdout
    r = runner.invoke(main, ["reporters", "add", "insp-2", "--kind", "evaluator"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["reporters", "add", "insp-2", "--kind", "covert"])
    assert r.exit_code == 0, r.output
    assert "insp-2 is now covert (was evaluator)" in r.stdout
    assert sources() == {s1: "evaluator", s2: "covert"}
    with rt.engine.connect() as conn:
        weights = {
            u.id: score_unit_points(formula, u)
            for u in gather.gather_week(conn, formula, w47, as_of, kinds=("segment",)).units
            if u.id in (s1, s2)
        }
    # E0201: 3 points × the evaluator/covert weight (3.0) instead of public's 1.0
    assert weights[s1] == weights[s2] > 3.0 * formula.weights["public"]
    r = runner.invoke(main, ["reporters", "add", "a/b", "--kind", "covert"])
    assert r.exit_code == 2, r.output
    assert "a reporter id is 1 to 64 letters, digits" in r.stderr
    r = runner.invoke(main, ["reporters", "list", "--kind", "covert"])
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == ["insp-2\tcovert\tinsp-2"]


def score_unit_points(formula: Any, unit: Any) -> float:
    from roadwatch.ranking.score import score_unit

    return float(score_unit(formula, unit).deductions[0]["raw"])


def test_group_rows_come_through_as_columns_whatever_the_text(rt: Any, formula: Any) -> None:
    """_columns hands text over as CSV on PostgreSQL: commas, quotes, line breaks, spaces,
    CJK and empty strings must come back unchanged, and times as exact microseconds."""
    from roadwatch.ranking import gather

    w47 = Week.parse("2026-W47", rt.settings.tz)
    params = gather._params(formula, w47, pub.default_as_of(w47, 8))
    words = ["a,b", 'say "hi"', "two\nlines", " padded ", "郑州,路", "", "x\\y", "1e5"]
    start = w47.start.astimezone(dt.UTC).replace(tzinfo=None)
    pg = rt.engine.dialect.name == "postgresql"

    def at(i: int) -> str:
        stamp = (start + dt.timedelta(microseconds=i * 1_000_001)).isoformat(" ")
        return f"timestamp '{stamp}'" if pg else f"'{stamp}'"

    values = " UNION ALL ".join(
        f"SELECT {i} AS k, '{w}' AS w, {i * 1000} AS n, {at(i)} AS t" for i, w in enumerate(words)
    )
    with rt.engine.connect() as conn:
        micros = gather._micros_sql(conn, "MIN(v.t)")
        body = f"SELECT v.w, MAX(v.n), {micros} FROM ({values}) v GROUP BY v.k, v.w"
        w, n, t = gather._columns(conn, body, params, "tim")
    got = sorted(zip(w.tolist(), n.tolist(), t.tolist(), strict=True), key=lambda r: r[1])
    assert got == [(word, i * 1000, i * 1_000_001) for i, word in enumerate(words)]
