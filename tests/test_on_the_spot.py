"""Issue 21.4, server side: the nearby-segments answer says whether the best segment is
certain and offers 2-3 candidates; the chosen one is trusted within a distance limit."""

from __future__ import annotations

import math
from typing import Any

import pytest
import shapely
from sqlalchemy import select

from roadwatch.accounts import chiefs as ca
from roadwatch.geolocate import HINT_PLAUSIBLE_M, ask_on_the_spot
from roadwatch.store import models
from tests.support.examples import contract_example
from tests.test_chief_accounts import _chiefs, js
from tests.test_pipeline import inbound


def _spots(ctx: Any) -> tuple[tuple[float, float], tuple[float, float]]:
    """A junction where distance alone cannot tell the roads apart, and a mid-block spot."""
    unsure = sure = None
    for seg in ctx.network.segments[:400]:
        line = (
            shapely.get_geometry(seg.geometry, 0)
            if seg.geometry.geom_type != "LineString"
            else seg.geometry
        )
        x, y = line.coords[0]
        if unsure is None and ctx.robust.snap(x, y, accuracy_m=10.0).ask:
            unsure = (x, y)
        mid = line.interpolate(0.5, normalized=True)
        if sure is None and not ctx.robust.snap(mid.x, mid.y, accuracy_m=10.0).ask:
            sure = (mid.x, mid.y)
        if unsure and sure:
            return unsure, sure
    pytest.fail("no junction or mid-block spot found on the demo network")


def sign_in_a_chief(runtime: Any, client: Any) -> str:
    """Provision one chief of the demo network and sign `client` in as them."""
    ((chief, _),) = _chiefs(runtime, 1)
    with runtime.sessions.begin() as s:
        s.query(models.ChiefAccount).delete()
        password = ca.provision(s, only=[chief]).created[chief]
    res = client.post("/m/api/session", json={"reporter_id": chief, "password": password})
    assert res.status_code == 200
    return chief


def test_nearby_answer_flags_uncertainty_and_offers_candidates(runtime: Any, client: Any) -> None:
    sign_in_a_chief(runtime, client)
    (ux, uy), (sx, sy) = _spots(runtime.ctx)

    near = js(client.get(f"/m/api/segments/near?lat={uy}&lon={ux}&radius=80&accuracy=10"))
    assert near["certain"] is False
    assert 2 <= len(near["candidates"]) <= 3
    assert near["candidates"][0]["id"] == near["best"]
    names = {s.id: s.name for s in runtime.ctx.network.segments}
    for c in near["candidates"]:
        assert c["name"] == names[c["id"]] and c["distance_m"] <= 80 and 0 < c["share"] <= 1
    assert near["items"]  # the plain pick-list is still there

    sure = js(client.get(f"/m/api/segments/near?lat={sy}&lon={sx}&accuracy=10"))
    assert sure["certain"] is True and len(sure["candidates"]) == 1
    assert sure["confidence"] >= 0.93
    bad = client.get(f"/m/api/segments/near?lat={sy}&lon={sx}&heading=400")
    assert bad.status_code == 400


def test_a_pick_of_no_known_segment_is_named_in_the_answer(runtime: Any) -> None:
    """A segment_hint the network does not have (a retired segment, an old app's pick list)
    beside a usable fix: the report was placed by its fix and the pick dropped without a word,
    where one too far away is named. Now it is named too, with no distance."""
    body = contract_example(segment_hint="ZZ-GONE-0001")
    (out,) = runtime.pipeline.process([inbound(body)])
    assert out.status == "accepted" and out.segment_id == "ZZ-JS-0123"
    assert out.snap is not None
    assert out.snap["hint_ignored"] == {"segment_id": "ZZ-GONE-0001", "distance_m": None}


def test_the_chosen_segment_is_trusted_within_the_limit(runtime: Any) -> None:
    ctx = runtime.ctx
    (ux, uy), _ = _spots(ctx)
    offer = ask_on_the_spot(ctx, ux, uy, accuracy_m=10.0)
    assert not offer["certain"]
    picked = offer["candidates"][1]["id"]  # not the snapper's best: the chief knows better
    body = contract_example(lat=uy, lon=ux, crs="WGS84", heading_deg=None, segment_hint=picked)
    (out,) = runtime.pipeline.process([inbound(body)])
    assert (out.status, out.segment_id) == ("accepted", picked)
    # the pick where the snapper was not certain is a labelled example
    with runtime.sessions() as s:
        label = s.scalars(
            select(models.SnapLabel).where(models.SnapLabel.report_id == body["report_id"])
        ).one()
    assert (label.source, label.segment_id, label.snapped_id) == ("phone", picked, offer["best"])
    assert picked in label.candidates and label.by == body["reporter_id"]
    # a pick far beyond the limit from the fix is not believed
    far = next(
        s
        for s in ctx.network.segments
        if ctx.index.distance_to(ctx.position[s.id], ux, uy) > HINT_PLAUSIBLE_M
    )
    body = contract_example(lat=uy, lon=ux, crs="WGS84", heading_deg=None, segment_hint=far.id)
    (out,) = runtime.pipeline.process([inbound(body)])
    assert out.segment_id != far.id
    # and the answer says so (the pick was dropped without a word)
    assert out.snap is not None and out.snap["hint_ignored"]["segment_id"] == far.id
    assert out.snap["hint_ignored"]["distance_m"] > HINT_PLAUSIBLE_M
    # a mid-block report, certain without the pick, is no label
    _, (sx, sy) = _spots(ctx)
    mine = ctx.robust.snap(sx, sy, accuracy_m=12.0)
    sure = contract_example(
        lat=sy,
        lon=sx,
        crs="WGS84",
        heading_deg=None,
        segment_hint=ctx.network.segments[mine.index].id,
    )
    runtime.pipeline.process([inbound(sure)])
    with runtime.sessions() as s:
        assert (
            s.scalars(
                select(models.SnapLabel).where(models.SnapLabel.report_id == sure["report_id"])
            ).all()
            == []
        )


def track_turning_spot(ctx: Any, own: frozenset[int]) -> tuple[float, float, int]:
    """A spot (WGS84) where a fix stated as 10 m leaves the answer uncertain and a patrol
    track on another candidate segment (its position returned) turns the answer to it."""
    spots = (
        seg.geometry.interpolate(d / seg.length_m, normalized=True)
        for seg in ctx.network.segments[:600]
        if seg.geometry.geom_type == "LineString" and seg.length_m > 60
        for d in (4.0, 8.0, 12.0, 16.0)
    )
    for spot in spots:
        x, y = spot.x, spot.y
        r = ctx.robust.snap(x, y, accuracy_m=10.0, prior=own)
        if r.certain:
            continue
        for pos, _d, _p in r.candidates[1:]:
            again = ctx.robust.snap(x, y, accuracy_m=10.0, prior=own | {pos})
            if again.index == pos:  # the track turns the answer (certain or not)
                return x, y, pos
    pytest.fail("no junction where a track turns the answer on the demo network")


def test_the_patrol_track_of_the_last_minutes_is_a_signal(runtime: Any) -> None:
    import datetime as dt
    import uuid

    from tests.test_patrols import patrol_msg, walk_along

    ctx, me = runtime.ctx, "zz-jinshui-0421"
    x, y, pos = track_turning_spot(ctx, ctx.own_segments.get(me, frozenset()))
    seg = ctx.network.segments[pos]
    report = {"lat": y, "lon": x, "crs": "WGS84", "heading_deg": None, "accuracy_m": 10.0}
    (before,) = runtime.pipeline.process([inbound(contract_example(**report))])
    assert before.status == "needs_review" and before.segment_id is None
    # the chief has been walking along that segment for the last minutes
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=3)
    pts: Any = list(enumerate(walk_along([seg], spacing_m=10, noise_m=2, seed=1)))
    (p,) = runtime.pipeline.process([patrol_msg(str(uuid.uuid4()), me, "start", pts, start)])
    assert p.status == "accepted"
    body = contract_example(**report)
    (after,) = runtime.pipeline.process([inbound(body)])
    if after.status == "accepted":
        assert after.segment_id == seg.id
    else:  # still for a person to decide, but now the walked segment comes first
        with runtime.sessions() as s:
            row = s.get(models.Report, body["report_id"])
            assert row is not None and row.snap is not None
            assert row.snap["candidates"][0] == seg.id
    # someone else's track is no signal for this reporter, and an old track neither
    assert pos not in ctx.recent.of("zz-zhongyuan-0001", dt.datetime.now(dt.UTC))
    assert pos not in ctx.recent.of(me, dt.datetime.now(dt.UTC) + dt.timedelta(minutes=30))


def test_the_chainage_rule_decides_between_two_halves_of_a_road(runtime: Any) -> None:
    from tests.test_patrols import chain_of_two

    a, b = chain_of_two(runtime.ctx.network)
    # just before the joint on a (its last 6 m), and just after it on b
    for seg, frac in ((a, 1.0 - 6.0 / a.length_m), (b, 6.0 / b.length_m)):
        p = seg.geometry.interpolate(frac, normalized=True)
        # walking along the road: a crossing road at the joint is no rival then
        q = seg.geometry.interpolate(frac + 2.0 / seg.length_m, normalized=True)
        east = (q.x - p.x) * math.cos(math.radians(p.y))
        heading = math.degrees(math.atan2(east, q.y - p.y)) % 360.0
        body = contract_example(lat=p.y, lon=p.x, crs="WGS84", heading_deg=heading, accuracy_m=10.0)
        (out,) = runtime.pipeline.process([inbound(body)])
        assert (out.status, out.segment_id) == ("accepted", seg.id)
        assert _stored_snap(runtime, body)["boundary"] is True
    mid = a.geometry.interpolate(0.5, normalized=True)
    body = contract_example(lat=mid.y, lon=mid.x, crs="WGS84", accuracy_m=10.0)
    (out,) = runtime.pipeline.process([inbound(body)])
    assert out.status == "accepted" and "boundary" not in _stored_snap(runtime, body)


def _stored_snap(runtime: Any, body: dict[str, Any]) -> dict[str, Any]:
    with runtime.sessions() as s:
        row = s.get(models.Report, body["report_id"])
        assert row is not None and row.snap is not None
        return dict(row.snap)


def test_the_photo_s_camera_direction_is_weighed_before_the_chief_is_asked(
    runtime: Any, client: Any
) -> None:
    """Between two parallel streets the fix leans north; the photo about to go with the
    report faced south (true north reference): the answer already weighs it, as place()
    will, so the chief is offered the southern street first."""
    from tests.test_photo_geolocation import BETWEEN, CATEGORY, NORTH, SOUTH

    lon, lat = BETWEEN
    ask = f"/m/api/segments/near?lat={lat}&lon={lon}&accuracy=10&category={CATEGORY}"
    # only a signed-in chief may ask, with or without a camera direction
    assert client.get(ask + "&look=184&look_ref=T").status_code == 401
    sign_in_a_chief(runtime, client)
    plain = js(client.get(ask))
    assert plain["certain"] is False and plain["best"] == NORTH
    facing = js(client.get(ask + "&look=184&look_ref=T"))
    assert facing["best"] == SOUTH and facing["candidates"][0]["id"] == SOUTH
    # a magnetic (or unstated) reference is weighed more loosely, never ignored
    loose = js(client.get(ask + "&look=184&look_ref=M"))

    def south_share(answer: dict[str, Any]) -> float:
        return next(c["share"] for c in answer["candidates"] if c["id"] == SOUTH)

    assert south_share(plain) < south_share(loose) < south_share(facing)
    for bad in ("&look=400", "&look=south", "&look=184&look_ref=X"):
        assert client.get(ask + bad).status_code == 400, bad


def test_a_track_stored_by_another_process_reaches_the_nearby_answer(
    runtime: Any, client: Any
) -> None:
    """Under separate roles a worker stores the chief's patrol (sent over MQTT) and the web
    role answers the nearby query: it reads the stored track back."""
    import datetime as dt
    import uuid

    from tests.test_patrols import patrol_msg, walk_along

    ctx = runtime.ctx
    me = sign_in_a_chief(runtime, client)
    x, y, pos = track_turning_spot(ctx, ctx.own_segments.get(me, frozenset()))
    seg = ctx.network.segments[pos]
    ask = f"/m/api/segments/near?lat={y}&lon={x}&accuracy=10"
    assert js(client.get(ask))["best"] != seg.id
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=3)
    pts: Any = list(enumerate(walk_along([seg], spacing_m=10, noise_m=2, seed=1)))
    (p,) = runtime.pipeline.process([patrol_msg(str(uuid.uuid4()), me, "start", pts, start)])
    assert p.status == "accepted"
    # this process forgets what it noted, as a web process that stored none of it
    ctx.recent.clear()
    after = js(client.get(ask))
    assert after["best"] == seg.id and after["candidates"][0]["id"] == seg.id
    assert pos in ctx.recent.of(me, dt.datetime.now(dt.UTC))


def test_a_worker_reads_the_track_another_worker_stored(runtime: Any) -> None:
    """Workers share one subscription: the chief's patrol went to another worker. A report
    this worker cannot place for certain is placed again with the stored track."""
    import datetime as dt
    import uuid

    from tests.test_patrols import patrol_msg, walk_along

    ctx, me = runtime.ctx, "zz-jinshui-0421"
    x, y, pos = track_turning_spot(ctx, ctx.own_segments.get(me, frozenset()))
    seg = ctx.network.segments[pos]
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=3)
    pts: Any = list(enumerate(walk_along([seg], spacing_m=10, noise_m=2, seed=1)))
    (p,) = runtime.pipeline.process([patrol_msg(str(uuid.uuid4()), me, "start", pts, start)])
    assert p.status == "accepted"
    ctx.recent.clear()  # this worker stored none of it
    # a `serve` alone on a plain subscription reads none back: the track is missing there
    runtime.pipeline.reads_stored_tracks = False
    try:
        blind = contract_example(lat=y, lon=x, crs="WGS84", heading_deg=None, accuracy_m=10.0)
        (out,) = runtime.pipeline.process([inbound(blind)])
        assert out.status == "needs_review"
        assert _stored_snap(runtime, blind)["candidates"][0] != seg.id
    finally:
        runtime.pipeline.reads_stored_tracks = True
    body = contract_example(lat=y, lon=x, crs="WGS84", heading_deg=None, accuracy_m=10.0)
    assert body["reporter_id"] == me
    (out,) = runtime.pipeline.process([inbound(body)])
    if out.status == "accepted":
        assert out.segment_id == seg.id
    else:  # still for a person to decide, but now the walked segment comes first
        assert _stored_snap(runtime, body)["candidates"][0] == seg.id
    # the track read back is held here now, for the next reports
    assert pos in ctx.recent.of(me, dt.datetime.now(dt.UTC))


def test_each_chief_s_track_is_read_for_their_own_window(runtime: Any) -> None:
    import datetime as dt

    from roadwatch.network.tracks import read_tracks
    from tests.test_patrols import walk_along

    ctx = runtime.ctx
    seg = next(s for s in ctx.network.segments if s.length_m > 150)
    pos = ctx.position[seg.id]
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    pts = walk_along([seg], spacing_m=10, noise_m=1, seed=2)
    with runtime.sessions.begin() as s:
        for chief, when in (("a-chief", now), ("b-chief", now - dt.timedelta(hours=2))):
            pid = f"patrol-of-{chief}"
            s.add(models.Patrol(id=pid, reporter_id=chief, started_at=when, state="track"))
            for i, (lon, lat) in enumerate(pts):
                t = when - dt.timedelta(seconds=10 * i)
                s.add(models.PatrolPoint(patrol_id=pid, t=t, lon=lon, lat=lat, accuracy_m=5.0))
    # b walked two hours ago: within the union of the windows asked, not within b's own
    two_hours_ago = now - dt.timedelta(hours=2)
    gained = read_tracks(runtime.engine, ctx, {"a-chief": [two_hours_ago, now], "b-chief": [now]})
    assert gained == {"a-chief"}
    assert ctx.recent.of("a-chief", now) == {pos}
    assert ctx.recent.of("b-chief", two_hours_ago) == frozenset()
    # read again: nothing new (and within the refresh, not read at all)
    assert read_tracks(runtime.engine, ctx, {"a-chief": [now]}) == set()
    assert read_tracks(runtime.engine, ctx, {"b-chief": [two_hours_ago]}) == {"b-chief"}
    assert ctx.recent.of("b-chief", two_hours_ago) == {pos}
    assert not read_tracks(runtime.engine, ctx, {"b-chief": [now]}, refresh_s=60.0)
