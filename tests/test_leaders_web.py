"""Issue 22 on the web: hot spots, plans (staff, printable, the chief's phone), routes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import delete, func, select

from roadwatch import clock
from roadwatch.accounts import chiefs as ca
from roadwatch.recurrence import duty, synth
from roadwatch.recurrence.history import week_start
from roadwatch.recurrence.plans import DEFAULT_DUTY, DEFAULT_PATROLS
from roadwatch.store import models
from tests.support.ranking import add_report

NOW = dt.datetime(2026, 11, 18, 3, tzinfo=dt.UTC)  # a Wednesday


@pytest.fixture
def seeded(runtime: Any) -> dict[str, Any]:
    """12 weeks of generated findings on 40 real segments of one district, 3 planted hot
    spots at 4× (the same generator as the tests of roadwatch.recurrence)."""
    with runtime.engine.begin() as conn:  # the shared runtime keeps tables between tests
        conn.execute(delete(models.LeadersAnalysis))
        conn.execute(delete(models.ChiefDutyHours))
        conn.execute(delete(models.SiteVisitRoute))
    net = runtime.ctx.network
    district = net.segments[0].district
    real = [s.id for s in net.segments if s.district == district][:40]
    start = week_start(NOW) - dt.timedelta(weeks=12)
    g = synth.generate(
        synth.Params(seed=5, districts=1, segments_per_district=40, hot=3, start=start)
    )
    real_of = {s.id: real[i] for i, s in enumerate(g.history.segments)}
    with runtime.engine.begin() as conn:
        for f in g.history.findings:
            add_report(
                conn,
                real_of[f.segment],
                district,
                f.at,
                category=f.category,
                case_status="closed",
                closed_at=f.closed_at,
            )
    return {"district": district, "hot": {real_of[s] for s in g.hot}, "segments": real}


def test_hot_spots_plans_and_pages(
    seeded: dict[str, Any], runtime: Any, login_as: Callable[..., FlaskClient]
) -> None:
    staff = login_as("admin")
    with clock.use(lambda: NOW):
        res = staff.get(f"/api/leaders/hotspots?district={seeded['district']}&top=3")
        assert res.status_code == 200
        top = res.get_json()["segments"]
        assert {r["segment"] for r in top} == seeded["hot"]
        assert all(r["lower"] <= r["rate"] <= r["upper"] for r in top)
        assert all(r["recurrence"] is None or 0 <= r["recurrence"]["share"] <= 1 for r in top)
        page = staff.get(f"/leaders/hotspots?district={seeded['district']}")
        assert page.status_code == 200 and "问题高发路段" in page.text
        # the leaders' pages lead to one another, the month before NOW's included
        for href in ("/leaders/plans", "/reviews/2026-10", "/rankings/", "/leaders/hotspots"):
            assert f'href="{href}"' in page.text, href
        for url in ("/api/leaders/hotspots", "/leaders/hotspots", "/leaders/plans"):
            unknown = staff.get(f"{url}?district=XX")  # no such district: not a blank "全市"
            assert unknown.status_code == 404, url
        assert 'href="/leaders/hotspots"' in staff.get("/").text  # from the command centre

        fc = staff.get(f"/api/leaders/forecast?district={seeded['district']}").get_json()
        expected = {r["segment"]: r["expected"] for r in fc["segments"]}
        assert (
            min(expected[s] for s in seeded["hot"])
            > 2 * sorted(expected.values())[len(expected) // 2]
        )

        plan = staff.get(f"/api/leaders/plans?district={seeded['district']}").get_json()
        assert plan["chiefs"] > 0
        for p in plan["plans"]:
            assert len(p["visits"]) <= DEFAULT_PATROLS
            assert all(v["window"] in DEFAULT_DUTY for v in p["visits"])
            assert len({v["window"] for v in p["visits"]}) == len(p["visits"])
        bases = {p["basis"] for p in plan["plans"]}
        assert "forecast" in bases  # chiefs of the 40 seeded segments
        assert "default" in bases  # the district's other chiefs: no history at all
        chief = next(p for p in plan["plans"] if p["basis"] == "forecast")["chief"]
        one = staff.get(f"/api/leaders/plans/{chief}").get_json()
        assert one["chief"] == chief and one["visits"]
        assert staff.get("/api/leaders/plans/nobody").status_code == 404
        printable = staff.get(f"/leaders/plans?district={seeded['district']}")
        assert (
            printable.status_code == 200
            and chief in printable.text
            and "巡查计划" in printable.text
        )

        # The chief's own phone reads the same plan.
        with runtime.sessions.begin() as s:
            # (reset: an earlier test on the shared database may have given them an account)
            made = ca.provision(s, only=[chief], reset=[chief])
            password = {**made.created, **made.reset}[chief]
        phone = runtime_app_client(staff)
        assert phone.get("/m/api/plan").status_code == 401
        phone.post("/m/api/session", json={"reporter_id": chief, "password": password})
        mine = phone.get("/m/api/plan").get_json()
        assert mine == one


def runtime_app_client(staff: FlaskClient) -> FlaskClient:
    return staff.application.test_client()


def test_staff_only_and_district_scope(
    seeded: dict[str, Any], client: FlaskClient, login_as: Callable[..., FlaskClient]
) -> None:
    with clock.use(lambda: NOW):
        assert client.get("/api/leaders/hotspots").status_code == 401
        assert (
            client.post("/api/leaders/route", json={"segments": seeded["segments"][:2]}).status_code
            == 401
        )
        other = login_as("district_staff", "ZZ-NOT-" + seeded["district"])
        assert other.get(f"/api/leaders/hotspots?district={seeded['district']}").status_code == 403


def test_route_api_and_itinerary(
    runtime: Any, seeded: dict[str, Any], login_as: Callable[..., FlaskClient]
) -> None:
    staff = login_as("admin")
    stops = seeded["segments"][:6]
    res = staff.post("/api/leaders/route", json={"segments": stops, "first": stops[2]})
    assert res.status_code == 200
    r = res.get_json()
    assert [s["segment"] for s in r["stops"]][0] == stops[2]
    assert sorted(s["segment"] for s in r["stops"]) == sorted(stops)
    assert r["metres"] == pytest.approx(sum(leg["metres"] for leg in r["legs"]), abs=0.5)
    assert r["minutes"] > r["metres"] / r["walk_mps"] / 60
    page = staff.get("/leaders/route?segments=" + ",".join(stops))
    assert page.status_code == 200 and "观摩路线" in page.text and "<svg" in page.text
    assert page.text.count("<li>") == len(stops)
    bad = staff.post("/api/leaders/route", json={"segments": ["ZZ-NOPE"]})
    assert bad.status_code == 400
    assert staff.post("/api/leaders/route", json={"segments": []}).status_code == 400
    with runtime.sessions() as s:
        assert s.scalar(select(models.Segment.id).where(models.Segment.id == stops[0]))


# -- duty hours (stored per chief) ---------------------------------------------------------
def test_duty_hours_parse() -> None:
    weekdays = duty.parse("mon-fri 08:00-18:00")
    assert weekdays == DEFAULT_DUTY == duty.parse(duty.DEFAULT_SPEC)
    with_sat = duty.parse("Mon-Fri 08:00-18:00; sat 09:00-12:00")
    assert set(with_sat) - set(weekdays) == {window_of_local(5, 10)}  # 09:00 → whole 10–12
    assert duty.parse("mon,wed 00:00-24:00") == tuple(range(12)) + tuple(range(24, 36))
    for bad in ("xyz", "mon 10:00-09:00", "mon 08:30-09:30", "fri-mon 08:00-10:00", "mon 8-10"):
        with pytest.raises(duty.DutyError):
            duty.parse(bad)


def window_of_local(day: int, hour: int) -> int:
    from roadwatch.recurrence.history import LOCAL, window_of

    monday = dt.datetime(2026, 11, 16, tzinfo=LOCAL)
    return window_of(monday + dt.timedelta(days=day, hours=hour))


def test_a_chiefs_plan_fits_their_stored_duty_hours(
    seeded: dict[str, Any],
    runtime: Any,
    login_as: Callable[..., FlaskClient],
    runner: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    from roadwatch.cli import main

    monkeypatch.setenv("ROADWATCH_DATABASE_URL", runtime.settings.database_url)
    staff = login_as("admin")
    with clock.use(lambda: NOW):
        plan = staff.get(f"/api/leaders/plans?district={seeded['district']}").get_json()
        chief, other = [p["chief"] for p in plan["plans"] if p["basis"] == "forecast"][:2]
        before = staff.get(f"/api/leaders/plans/{chief}").get_json()
        assert before["duty_hours"] == duty.DEFAULT_SPEC
        assert {v["window"] for v in before["visits"]} <= set(DEFAULT_DUTY)

        spec = "sat,sun 06:00-12:00; wed 18:00-22:00"
        r = runner.invoke(main, ["chiefs", "duty", chief, spec])
        assert r.exit_code == 0, r.output
        allowed = set(duty.parse(spec))
        after = staff.get(f"/api/leaders/plans/{chief}").get_json()
        assert after["duty_hours"] == spec and after["visits"]
        assert {v["window"] for v in after["visits"]} <= allowed
        assert len(after["visits"]) == min(DEFAULT_PATROLS, len(allowed))
        district = staff.get(f"/api/leaders/plans?district={seeded['district']}").get_json()
        mine = next(p for p in district["plans"] if p["chief"] == chief)
        assert mine == after
        untouched = next(p for p in district["plans"] if p["chief"] == other)
        assert {v["window"] for v in untouched["visits"]} <= set(DEFAULT_DUTY)

        # The phone's plan is the same one.
        with runtime.sessions.begin() as s:
            made = ca.provision(s, only=[chief], reset=[chief])  # an earlier test may have one
            password = {**made.created, **made.reset}[chief]
        phone = staff.application.test_client()
        phone.post("/m/api/session", json={"reporter_id": chief, "password": password})
        assert phone.get("/m/api/plan").get_json() == after

        # A bad spec changes nothing; a CSV imports; --clear goes back to the default.
        bad = runner.invoke(main, ["chiefs", "duty", chief, "sat 25:00-26:00"])
        assert bad.exit_code != 0 and "hours" in bad.output + (bad.stderr or "")
        assert staff.get(f"/api/leaders/plans/{chief}").get_json() == after
        sheet = tmp_path / "duty.csv"
        sheet.write_text(f"reporter_id,duty_hours\n{other},tue 14:00-18:00\n", encoding="utf-8")
        assert runner.invoke(main, ["chiefs", "duty", "--file", str(sheet)]).exit_code == 0
        two = staff.get(f"/api/leaders/plans/{other}").get_json()
        assert {v["window"] for v in two["visits"]} == set(duty.parse("tue 14:00-18:00"))
        listed = runner.invoke(main, ["chiefs", "duty"])
        assert f"{chief}\t{spec}" in listed.output and other in listed.output
        assert runner.invoke(main, ["chiefs", "duty", chief, "--clear"]).exit_code == 0
        assert staff.get(f"/api/leaders/plans/{chief}").get_json() == before


# -- the stored weekly analysis --------------------------------------------------------------
def test_the_api_answers_from_the_stored_analysis(
    seeded: dict[str, Any],
    runtime: Any,
    login_as: Callable[..., FlaskClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from roadwatch.recurrence import stored

    computed: list[dt.datetime] = []
    real_compute = stored.compute

    def counting(*args: Any) -> stored.Analysis:
        computed.append(args[-1])
        return real_compute(*args)

    monkeypatch.setattr(stored, "compute", counting)
    staff = login_as("admin")
    district = seeded["district"]
    refresher = stored.Refresher(runtime.engine, lambda: runtime.ctx.network, lambda: NOW)
    assert refresher.run_once() is True and len(computed) == 1
    assert refresher.run_once() is False and len(computed) == 1  # this week's is there
    with clock.use(lambda: NOW):
        staff.application.extensions.pop("roadwatch_leaders_cache", None)
        res = staff.get(f"/api/leaders/hotspots?district={district}&top=3").get_json()
        assert res["source"] == "stored" and len(computed) == 1  # read, not refitted
        assert {r["segment"] for r in res["segments"]} == seeded["hot"]
        fc = staff.get(f"/api/leaders/forecast?district={district}").get_json()
        plan = staff.get(f"/api/leaders/plans?district={district}").get_json()
        assert fc["segments"] and plan["plans"] and len(computed) == 1

        # The stored figures are the computed ones.
        fresh = real_compute(runtime.engine, runtime.ctx.network, NOW)
        back = stored.decode(stored.encode(fresh))
        assert back.hot == fresh.hot and back.recurrence == fresh.recurrence
        assert fresh.rates is not None and back.rates is not None
        assert (back.rates == fresh.rates).all()

        # No stored row (a new week, no refresh yet): computed once on demand, then stored.
        with runtime.engine.begin() as conn:
            conn.execute(delete(models.LeadersAnalysis))
        staff.application.extensions.pop("roadwatch_leaders_cache", None)
        again = staff.get(f"/api/leaders/hotspots?district={district}&top=3").get_json()
        assert again["source"] == "computed" and len(computed) == 2
        assert again["segments"] == res["segments"]
        assert stored.load_exists(runtime.engine, NOW)


def test_hot_spots_carry_every_category_and_their_hours(
    seeded: dict[str, Any], login_as: Callable[..., FlaskClient]
) -> None:
    staff = login_as("admin")
    with clock.use(lambda: NOW):
        rows = staff.get(f"/api/leaders/hotspots?district={seeded['district']}").get_json()
        assert rows["segments"]
        several = 0
        for r in rows["segments"]:
            cats = r["categories"]
            assert [c["category"] for c in cats] == sorted(
                {c["category"] for c in cats}, key=[c["category"] for c in cats].index
            )
            assert all(0 <= c["share"] <= 1 and c["came_back"] <= c["closed"] for c in cats)
            assert [c["share"] for c in cats] == sorted((c["share"] for c in cats), reverse=True)
            assert r["recurrence"] == (cats[0] if cats else None)
            several += len(cats) > 1
            counts = [w["findings"] for w in r["windows"]]
            assert counts == sorted(counts, reverse=True) and sum(counts) <= r["findings"]
            assert r["windows"][0]["window"] == r["peak_window"] or counts[0] == counts[1]
        assert several > 0  # the generator draws several categories a segment
        page = staff.get(f"/leaders/hotspots?district={seeded['district']}&top=40").text
        top = rows["segments"][0]
        names = {
            c.code: c.name
            for c in staff.application.extensions["roadwatch"].categories.by_code.values()
        }
        for c in top["categories"]:
            assert f'data-category="{c["category"]}"' in page
            # leaders read the category's name, not its code (the code is the tooltip)
            assert f'title="{c["category"]}">{names[c["category"]]} ' in page
        assert top["windows"][0]["when"] in page


# -- the route on the visitors' phones -------------------------------------------------------
def _phone(staff: FlaskClient, runtime: Any, chief: str) -> FlaskClient:
    with runtime.sessions.begin() as s:
        made = ca.provision(s, only=[chief], reset=[chief])
        password = {**made.created, **made.reset}[chief]
    phone = staff.application.test_client()
    res = phone.post("/m/api/session", json={"reporter_id": chief, "password": password})
    assert res.status_code in (200, 201), res.text
    return phone


def test_a_route_sent_to_chiefs_phones(
    runtime: Any, seeded: dict[str, Any], login_as: Callable[..., FlaskClient]
) -> None:
    from roadwatch.recurrence.load import current_chiefs

    staff = login_as("admin")
    holders = current_chiefs(runtime.engine)
    ctx = runtime.ctx
    with runtime.sessions() as s:
        home = dict(s.execute(select(models.Reporter.id, models.Reporter.district)).all())
    # chiefs of the route's districts (another test may have left a chief without one)
    a, b, c = sorted(
        {
            holders[seg]
            for seg in seeded["segments"]
            if seg in holders
            and home.get(holders[seg]) == ctx.network.segments[ctx.position[seg]].district
        }
    )[:3]
    phones = {who: _phone(staff, runtime, who) for who in (a, b, c)}
    stops = seeded["segments"][:5]
    page = staff.get("/leaders/route?segments=" + ",".join(stops)).text
    assert f'value="{a}"' in page and "desk/routeshare.js" in page  # to choose from

    sent = staff.post(
        "/api/leaders/routes",
        json={"segments": stops, "first": stops[1], "title": "十一月观摩", "chiefs": [a, b]},
    )
    assert sent.status_code == 201, sent.text
    body = sent.get_json()
    assert body["chiefs"] == sorted([a, b]) and body["url"] == f"/m/?route={body['id']}"
    planned = staff.post("/api/leaders/route", json={"segments": stops, "first": stops[1]})

    listed = phones[a].get("/m/api/routes").get_json()["routes"]
    assert [r["id"] for r in listed] == [body["id"]] and listed[0]["title"] == "十一月观摩"
    assert phones[c].get("/m/api/routes").get_json()["routes"] == []  # not sent to c
    for who in (a, c):  # c opens it from the short URL, after signing in
        got = phones[who].get(f"/m/api/routes/{body['id']}").get_json()
        assert [s["segment"] for s in got["stops"]] == [
            s["segment"] for s in planned.get_json()["stops"]
        ]
        assert got["stops"][0]["segment"] == stops[1] and all(s["name"] for s in got["stops"])
        assert got["metres"] == planned.get_json()["metres"] and got["minutes"] > 0
        assert got["paths"] and all(len(p) >= 2 for p in got["paths"])
    assert phones[a].get("/m/api/routes/nope").status_code == 404
    assert staff.application.test_client().get("/m/api/routes").status_code == 401

    bad = staff.post("/api/leaders/routes", json={"segments": stops, "chiefs": ["ZZ-NOBODY"]})
    assert bad.status_code == 400 and bad.get_json()["errors"][0]["code"] == "unknown_chief"
    viewer = login_as("viewer")
    assert viewer.post("/api/leaders/routes", json={"segments": stops}).status_code == 403
    other = login_as("district_staff", "ZZ-NOT-" + seeded["district"])
    assert other.post("/api/leaders/routes", json={"segments": stops}).status_code == 403
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(models.SiteVisitRoute)) == 1

    # A district user sent routes (and their titles) to any district's chiefs' phones; now
    # only to chiefs of their own district (another's: 403, nothing stored or listed).
    stranger = next(
        who
        for seg, who in sorted(holders.items())
        if home.get(who) not in (None, seeded["district"])
        and ctx.network.segments[ctx.position[seg]].district == home.get(who)
    )
    far = _phone(staff, runtime, stranger)
    own = login_as("district_staff", seeded["district"])
    res = own.post("/api/leaders/routes", json={"segments": stops, "chiefs": [stranger]})
    assert res.status_code == 403 and res.get_json()["errors"][0]["code"] == "other_district"
    assert far.get("/m/api/routes").get_json()["routes"] == []
    mine = own.post("/api/leaders/routes", json={"segments": stops, "chiefs": [a]})
    assert mine.status_code == 201, mine.text


def test_jobs_and_serve_refresh_the_analysis(runtime: Any, seeded: dict[str, Any]) -> None:
    """The refresher `jobs` builds (network read from the settings, as that role has none
    loaded), off with leaders_refresh_s = 0; Jobs holds one."""
    from roadwatch.jobs import Jobs
    from roadwatch.recurrence import stored
    from tests.conftest import make_settings

    off = make_settings(Path(runtime.settings.photo_dir).parent, leaders_refresh_s=0)
    assert stored.refresher_for(off, runtime.engine) is None
    on = stored.refresher_for(runtime.settings, runtime.engine)
    assert on is not None and on.interval == runtime.settings.leaders_refresh_s > 0
    on.now = lambda: NOW
    assert not stored.load_exists(runtime.engine, NOW)
    assert on.run_once() and stored.load_exists(runtime.engine, NOW)
    assert len(on.network().segments) == len(runtime.ctx.network.segments)
    a = stored.load(runtime.engine, NOW)
    assert a is not None and {h.segment for h in a.hot if h.rank <= 3} >= seeded["hot"]
    jobs = Jobs(runtime.settings, migrate=False)
    try:
        assert isinstance(jobs.leaders, stored.Refresher)
    finally:
        jobs.engine.dispose()
