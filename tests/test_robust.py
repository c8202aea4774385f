"""geo.robust: heavy-tailed, pavement-aware, calibrated snapping (issue 21).

Small synthetic layouts in metres near Zhengzhou (helpers of tests/test_snap.py), and
the benchmark's phone-noise model on the real OSM extracts (tests/data, ODbL).
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from bench.bench_phone_noise import (
    DATA,
    HELD_OUT,
    build_index,
    load_network,
    right_of,
    sample,
    t2_noise,
)
from geo.robust import BOUNDARY_TOL_M, RobustSnapper, calibrate, fit_isotonic
from geo.snap import SegmentIndex
from tests.test_snap import FAR, line, ll


def _snapper(lines: list[object], roads: list[str]) -> RobustSnapper:
    return RobustSnapper(SegmentIndex([*lines, *FAR], roads=[*roads, "far1", "far2"]))


def test_noise_model_is_as_hard_as_the_issue_asks() -> None:
    dx, dy = t2_noise(200_000, 10.0, np.random.default_rng(3))
    r = np.hypot(dx, dy)
    assert np.percentile(r, 68) == pytest.approx(10.0, abs=0.15)
    assert np.percentile(r, 95) >= 20.0


def test_consecutive_segments_of_one_road_are_decided_by_chainage() -> None:
    # one road in two segments joined at x = 100; a crossing road far enough away
    rb = _snapper([line((0, 0), (100, 0)), line((100, 0), (200, 0))], ["Main", "Main"])
    for x, want, near_joint in ((96.0, 0, True), (104.0, 1, True), (40.0, 0, False)):
        s = rb.snap(*ll(x, 6.0), accuracy_m=10.0)
        assert s.index == want  # the segment whose chainage holds the foot point
        assert s.boundary is near_joint
        assert s.certain  # one road: never a coin toss between its halves
    s = rb.snap(*ll(100.0 - BOUNDARY_TOL_M - 1.0, 6.0), accuracy_m=10.0)
    assert not s.boundary


def test_live_and_batch_paths_pick_the_same_of_two_short_halves_of_a_road() -> None:
    # a road cut at a corner into two pieces shorter than the boundary tolerance: each
    # lies within 15 m of the other over its whole length, so both score their own weight
    # plus the other's and tie up to the last bit of a sum the two paths add up in another
    # order. Found on Monaco's hairpins (OSM): the nearby query said one segment, the
    # pipeline placed the report on the other (0.3 % of reports differed).
    rb = _snapper([line((0, 0), (13, 0)), line((13, 0), (13, 9))], ["Main", "Main"])
    xs, ys = np.meshgrid(np.arange(-12.0, 30.0, 1.3), np.arange(-14.0, 24.0, 1.3))
    pts = np.array([ll(float(x), float(y)) for x, y in zip(xs.ravel(), ys.ravel(), strict=True)])
    for heading in (None, 30.0, 300.0):
        batch = rb.snap_many(
            pts[:, 0],
            pts[:, 1],
            accuracy_m=10.0,
            heading_deg=None if heading is None else np.full(len(pts), heading),
        )
        for i, (lon, lat) in enumerate(pts.tolist()):
            one = rb.snap(lon, lat, accuracy_m=10.0, heading_deg=heading)
            assert one.index == batch.index[i], (heading, xs.ravel()[i], ys.ravel()[i])
            assert one.raw == pytest.approx(batch.raw[i], rel=1e-9)
    # of two equally likely halves the nearer takes it, in both paths
    at = ll(15.0, 3.0)  # 2 m from the second half, 3.6 m from the first
    assert rb.snap(*at, accuracy_m=10.0).index == 1
    assert rb.snap_many(*np.array([at]).T, accuracy_m=10.0).index[0] == 1


def test_a_same_road_neighbour_counts_only_within_the_tolerance_of_the_joint() -> None:
    # halves of one road joined at x = 100: near the joint the true spot may lie on the
    # other half beyond the tolerance (then the answer is wrong), mid-segment hardly
    rb = _snapper([line((0, 0), (100, 0)), line((100, 0), (200, 0))], ["Main", "Main"])
    mid = rb.snap(*ll(40.0, 6.0), accuracy_m=10.0)
    joint = rb.snap(*ll(96.0, 6.0), accuracy_m=10.0)
    assert (mid.index, joint.index) == (0, 0)
    assert joint.raw < mid.raw
    assert joint.raw < 0.999  # merging the halves whole would say 1.0
    batch = rb.snap_many(*np.array([ll(40.0, 6.0), ll(96.0, 6.0)]).T, accuracy_m=10.0)
    assert batch.raw.tolist() == pytest.approx([mid.raw, joint.raw], rel=1e-9)


def test_a_far_fix_looks_beyond_the_radius_before_it_is_sure() -> None:
    # 40 m from road A and 55 m from road B: B lies beyond the first radius (50 m at a
    # stated 10 m), yet under heavy tails it may well be the true one
    rb = _snapper([line((0, 0), (300, 0)), line((0, 95), (300, 95))], ["A", "B"])
    s = rb.snap(*ll(150.0, 40.0), accuracy_m=10.0)
    assert s.index == 0 and not s.certain
    assert {c[0] for c in s.candidates} == {0, 1}
    b = rb.snap_many(*np.array([ll(150.0, 40.0)]).T, accuracy_m=10.0)
    assert b.index[0] == 0 and not b.certain[0] and set(b.cand[0][:2].tolist()) == {0, 1}


def test_heavy_tail_keeps_a_far_fix_on_the_only_road() -> None:
    # 35 m off the only road: a Gaussian of sigma 10 m would call this a 3.5-sigma
    # outlier; phones do this one time in fifty, and there is nothing else nearby
    rb = _snapper([line((0, 0), (300, 0))], ["Main"])
    s = rb.snap(*ll(150.0, 35.0), accuracy_m=10.0)
    assert s.index == 0 and s.certain


@pytest.mark.parametrize("accuracy_m", [1_000.0, 10_000.0])
def test_a_fix_stating_an_error_beyond_reach_is_never_certain(accuracy_m: float) -> None:
    # on the only road: certain at 10 m. A phone stating 1 or 10 km (accuracy_m allows up
    # to 10,000) was as certain (0.999, sent to that road's chief): its likelihood is flat
    # over all the snapper looks at (150 m at most), so the posterior was only a share of
    # what happens to lie next to the fix. The phone asks, a report goes to review.
    rb = _snapper([line((0, 0), (300, 0))], ["Main"])
    at = ll(150.0, 2.0)
    assert rb.snap(*at, accuracy_m=10.0).certain
    s = rb.snap(*at, accuracy_m=accuracy_m)
    assert s.index == 0 and not s.certain and s.ask
    b = rb.snap_many(*np.array([at]).T, accuracy_m=accuracy_m)
    assert b.index[0] == 0 and not b.certain[0] and b.ask[0]


def test_parallel_roads_are_not_certain_and_offer_both() -> None:
    rb = _snapper([line((0, 0), (300, 0)), line((0, 20), (300, 20))], ["A", "B"])
    s = rb.snap(*ll(150.0, 10.0), accuracy_m=10.0)
    assert not s.certain
    assert {c[0] for c in s.candidates} == {0, 1}
    assert 0.4 < s.confidence < 0.6
    # direction of travel cannot tell parallel roads apart; the reporter's own can
    own = rb.snap(*ll(150.0, 10.0), accuracy_m=10.0, prior={1})
    assert own.index == 1 and own.confidence > s.confidence
    named = rb.snap(*ll(150.0, 10.0), accuracy_m=10.0, road_hint="B")
    assert named.index == 1


def test_heading_settles_a_junction() -> None:
    # a crossing at (150, 0): "A" runs east, "B" runs north
    rb = _snapper([line((0, 0), (300, 0)), line((150, -150), (150, 150))], ["A", "B"])
    east = rb.snap(*ll(146.0, 5.0), accuracy_m=10.0, heading_deg=88.0)
    north = rb.snap(*ll(146.0, 5.0), accuracy_m=10.0, heading_deg=2.0)
    assert (east.index, north.index) == (0, 1)
    assert east.certain and north.certain
    assert not rb.snap(*ll(146.0, 5.0), accuracy_m=10.0).certain


def test_heading_on_a_bend_counts_every_edge_of_the_segment() -> None:
    # "A" runs east and turns north at (100, 0); "B" runs north 40 m farther east. A fix
    # just before the bend with a heading north: the person may well have turned already
    # (A's northbound edge is 11 m away), so A stays the answer, and a sure one -- its
    # nearest edge alone (running east) would leave B a third of the weight.
    rb = _snapper([line((0, 0), (100, 0), (100, 100)), line((140, -100), (140, 100))], ["A", "B"])
    s = rb.snap(*ll(92.0, -8.0), accuracy_m=10.0, heading_deg=0.0)
    assert s.index == 0
    assert s.raw > 0.95
    b = rb.snap_many(*np.array([ll(92.0, -8.0)]).T, accuracy_m=10.0, heading_deg=0.0)
    assert b.index[0] == 0 and b.raw[0] == pytest.approx(s.raw, rel=1e-9)


def test_a_neighbour_alongside_counts_as_right_over_its_whole_length_within_tolerance() -> None:
    # one road "Main": a segment east, then its continuation turns back along it 8 m to
    # the north (a slip road, or the other carriageway): every spot of the continuation
    # lies within the tolerance of the first segment, so answering the first is right
    # wherever along it the person is -- not only in the first 15 m from the joint
    rb = _snapper([line((0, 0), (100, 0)), line((100, 0), (100, 8), (0, 8))], ["Main", "Main"])
    s = rb.snap(*ll(50.0, 4.0), accuracy_m=10.0)
    assert s.index in (0, 1)
    assert s.raw > 0.99
    b = rb.snap_many(*np.array([ll(50.0, 4.0)]).T, accuracy_m=10.0)
    assert b.index[0] == s.index and b.raw[0] == pytest.approx(s.raw, rel=1e-9)


def test_within_a_road_the_answer_is_the_segment_most_likely_right() -> None:
    # "Main" runs east through (100, 0) and branches north there under the same name. A
    # fix 10 m from the branch but heading east, 15 m from the road that runs east: the
    # branch is the nearest segment of the road, the western half the likely one
    rb = _snapper(
        [line((0, 0), (100, 0)), line((100, 0), (200, 0)), line((100, 0), (100, 60))],
        ["Main", "Main", "Main"],
    )
    s = rb.snap(*ll(90.0, 15.0), accuracy_m=10.0, heading_deg=90.0)
    assert s.index == 0 and s.raw > 0.95
    b = rb.snap_many(*np.array([ll(90.0, 15.0)]).T, accuracy_m=10.0, heading_deg=90.0)
    assert b.index[0] == 0 and b.raw[0] == pytest.approx(s.raw, rel=1e-9)


def test_category_moves_the_answer_across_the_street() -> None:
    # a carriageway at y = 0 and another at y = 9: a fix at y = 8 is on the second
    # road's carriageway, or on the first road's pavement (a stall at its shop front)
    rb = _snapper([line((0, 0), (300, 0)), line((0, 9), (300, 9))], ["A", "B"])
    hole = rb.snap(*ll(150.0, 8.0), accuracy_m=6.0, kind="carriageway")
    stall = rb.snap(*ll(150.0, 8.0), accuracy_m=6.0, kind="frontage")
    share_a = {c[0]: c[2] for c in hole.candidates}.get(0, 0.0)
    share_a_stall = {c[0]: c[2] for c in stall.candidates}.get(0, 0.0)
    assert hole.index == 1
    assert share_a_stall > share_a + 0.1


def test_the_camera_s_direction_moves_a_fix_between_parallel_streets() -> None:
    # streets at y = 0 and y = 30; a fix at y = 12 leans to A. The photo's camera faced
    # north (EXIF GPSImgDirection 5): the problem is on B, and B is the answer.
    rb = _snapper([line((0, 0), (300, 0)), line((0, 30), (300, 30))], ["A", "B"])
    at = ll(150.0, 12.0)
    plain = rb.snap(*at, accuracy_m=10.0)
    north = rb.snap(*at, accuracy_m=10.0, look_deg=5.0)
    south = rb.snap(*at, accuracy_m=10.0, look_deg=185.0)
    along = rb.snap(*at, accuracy_m=10.0, look_deg=90.0)
    assert plain.index == 0 and not plain.certain
    assert north.index == 1 and south.index == 0
    assert south.raw > plain.raw  # facing A makes A surer
    assert along.raw == pytest.approx(plain.raw, abs=1e-6)  # along both streets: no help
    # a wider spread (magnetic north, no declination known) is a weaker push
    wide = rb.snap(*at, accuracy_m=10.0, look_deg=185.0, look_sigma_deg=45.0)
    assert plain.raw < wide.raw < south.raw
    # the batch path decides the same, per point; NaN is no direction
    pts = np.array([at, at, at, at]).T
    b = rb.snap_many(*pts, accuracy_m=10.0, look_deg=np.array([np.nan, 5.0, 185.0, 90.0]))
    assert b.index.tolist() == [0, 1, 0, 0]
    assert b.raw.tolist() == pytest.approx([plain.raw, north.raw, south.raw, along.raw], rel=1e-9)


def test_the_camera_s_direction_cannot_overturn_clear_geometry() -> None:
    # a good fix 3 or 6 m from A, 24-27 m from B: the camera facing B (away from A) is a
    # weak signal with a floor, and A stays the certain answer
    rb = _snapper([line((0, 0), (300, 0)), line((0, 30), (300, 30))], ["A", "B"])
    for y in (3.0, 6.0):
        at = ll(150.0, y)
        for look in (0.0, 10.0, 350.0):
            s = rb.snap(*at, accuracy_m=5.0, look_deg=look)
            assert s.index == 0 and s.certain
            b = rb.snap_many(*np.array([at]).T, accuracy_m=5.0, look_deg=look)
            assert b.index[0] == 0 and b.certain[0]
    # 10 m from A, 20 m from B: less sure, still A
    assert rb.snap(*ll(150.0, 10.0), accuracy_m=5.0, look_deg=0.0).index == 0
    # and a segment the camera turned its back on keeps a share of its weight (never 0)
    behind = rb.snap(*ll(150.0, 15.0), accuracy_m=10.0, look_deg=0.0)
    assert behind.index == 1
    assert {c[0]: c[2] for c in behind.candidates}[0] > 0.05


def test_nothing_in_reach() -> None:
    rb = _snapper([line((0, 0), (300, 0))], ["A"])
    s = rb.snap(*ll(150.0, 500.0), accuracy_m=10.0)
    assert s.index is None and not s.certain and s.candidates == ()
    assert rb.snap(float("nan"), 0.0).index is None


def test_isotonic_fit_recovers_a_known_calibration() -> None:
    rng = np.random.default_rng(5)
    raw = rng.uniform(0, 1, 50_000)
    right = rng.uniform(0, 1, raw.size) < raw**2  # overconfident raw scores
    xs, ys = fit_isotonic(raw, right)
    assert np.all(np.diff(ys) >= 0)
    got = calibrate(np.array([0.3, 0.6, 0.9]), xs, ys)
    assert got == pytest.approx([0.09, 0.36, 0.81], abs=0.04)


def test_isotonic_fit_of_identical_or_no_raw_scores() -> None:
    # a network of one segment: every report's raw posterior is the same
    xs, ys = fit_isotonic(np.ones(500), np.ones(500, dtype=bool))
    assert calibrate(np.array([1.0, 0.5]), xs, ys) == pytest.approx([1.0, 0.5])
    xs, ys = fit_isotonic(np.zeros(0), np.zeros(0, dtype=bool))  # nothing placed
    assert calibrate(np.array([0.3]), xs, ys) == pytest.approx([0.3])


@pytest.fixture(scope="module", params=["helsinki", "kotka"])
def network(request: pytest.FixtureRequest) -> object:
    return load_network(DATA if request.param == "helsinki" else HELD_OUT)


def test_live_and_batch_paths_agree(network: object) -> None:
    net = network
    index = build_index(net)  # type: ignore[arg-type]
    rb = RobustSnapper(index)
    s = sample(net, 400, np.random.default_rng(11), False)  # type: ignore[arg-type]
    # each report its own signals: own segments on every third, a road name on every fifth
    priors = [{int(t), int(t) + 1} if i % 3 == 0 else None for i, t in enumerate(s.truth)]
    hints = [{net.roads[int(t)]} if i % 5 == 0 else None for i, t in enumerate(s.truth)]  # type: ignore[attr-defined]
    # a photo's camera direction on every other report (anywhere: the formulas must agree)
    rng = np.random.default_rng(12)
    looks = np.where(np.arange(s.lon.size) % 2 == 0, rng.uniform(0, 360, s.lon.size), np.nan)
    for heading, look in ((None, None), (s.heading, None), (s.heading, looks)):
        batch = rb.snap_many(
            s.lon,
            s.lat,
            accuracy_m=s.accuracy,
            heading_deg=heading,
            priors=priors,
            road_hints=hints,
            look_deg=look,
        )
        for i in range(s.lon.size):
            one = rb.snap(
                float(s.lon[i]),
                float(s.lat[i]),
                accuracy_m=float(s.accuracy[i]),
                heading_deg=None if heading is None else float(heading[i]),
                prior=priors[i],
                road_hint=hints[i],
                look_deg=None if look is None or np.isnan(look[i]) else float(look[i]),
            )
            b = batch[i]
            assert one.index == b.index
            assert one.certain == b.certain and one.boundary == b.boundary
            assert one.ask == b.ask
            assert one.confidence == pytest.approx(b.confidence, rel=1e-9, abs=1e-12)
            # the asking bar is above the accepting one: whatever is not accepted is asked
            assert one.index is None or one.ask or one.certain
            assert one.raw == pytest.approx(b.raw, rel=1e-9, abs=1e-12)
            assert [c[0] for c in one.candidates] == [c[0] for c in b.candidates]


def test_confidently_wrong_at_most_one_percent_and_below_todays(network: object) -> None:
    net = network
    index = build_index(net)  # type: ignore[arg-type]
    rb = RobustSnapper(index)
    s = sample(net, 6000, np.random.default_rng(21), False)  # type: ignore[arg-type]
    for heading in (s.heading, None):
        new = rb.snap_many(s.lon, s.lat, accuracy_m=s.accuracy, heading_deg=heading)
        old = index.snap_many(s.lon, s.lat, accuracy_m=s.accuracy, heading_deg=heading)
        wrong = (new.certain & ~right_of(index, new.index, s)).mean()
        old_wrong = (~old.ambiguous & (old.index >= 0) & ~right_of(index, old.index, s)).mean()
        assert wrong <= 0.012
        assert wrong < old_wrong
        # where the person on the spot can choose, only the unasked are taken as they are
        unasked = ~new.ask & (new.index >= 0)
        asked_wrong = (unasked & ~right_of(index, new.index, s)).mean()
        assert asked_wrong <= 0.007 and asked_wrong < wrong
        # stated confidence is honest on the certain ones: right as often as it says
        ok = right_of(index, new.index, s)[new.certain]
        assert abs(ok.mean() - new.confidence[new.certain].mean()) < 0.01


def test_chunks_change_nothing(network: object, monkeypatch: pytest.MonkeyPatch) -> None:
    import geo.robust

    net = network
    rb = RobustSnapper(build_index(net))  # type: ignore[arg-type]
    s = sample(net, 300, np.random.default_rng(4), False)  # type: ignore[arg-type]
    whole = rb.snap_many(s.lon, s.lat, accuracy_m=s.accuracy, heading_deg=s.heading)
    monkeypatch.setattr(geo.robust, "_CHUNK", 70)
    parts = rb.snap_many(s.lon, s.lat, accuracy_m=s.accuracy, heading_deg=s.heading)
    for f in ("index", "raw", "certain", "cand"):
        np.testing.assert_array_equal(getattr(whole, f), getattr(parts, f))


def test_the_grouped_sort_is_numpy_s_lexsort() -> None:
    from geo.robust import _lexsort_grouped

    rng = np.random.default_rng(5)
    for n in (0, 1, 7, 5_000):
        group = np.sort(rng.integers(0, max(1, n // 2), n))  # groups of 1 to a few rows
        group[rng.random(n) < 0.05] = rng.integers(0, max(1, n // 2))  # a few out of order
        d = np.round(rng.uniform(0, 50, n), 1)  # ties in the second key
        d[rng.random(n) < 0.1] = -0.0
        e = rng.permutation(n)
        for keys in ((e, d, group), (d, -d, group)):
            assert np.array_equal(_lexsort_grouped(keys), np.lexsort(keys))


def test_the_batch_s_envelope_query_finds_every_edge_within_reach() -> None:
    net = load_network(DATA)
    ix = build_index(net)
    s = sample(net, 20_000, np.random.default_rng(9), False)
    x, y = (np.asarray(v) for v in ix._to_xy.transform(s.lon, s.lat))
    x[:50] = np.nan  # no fix
    radius = np.random.default_rng(4).uniform(40.0, 150.0, x.size)
    pts = shapely.points(x, y)
    pts[:50] = None
    want = ix._tree.query(pts, predicate="dwithin", distance=radius)
    got = ix._near_pairs(x, y, radius)
    exact = ix._nearest_on_edges(x, y, got[0], got[1], radius)
    assert set(zip(*want, strict=True)) <= set(zip(got[0], got[1], strict=True))
    assert set(zip(*want, strict=True)) == set(zip(exact[0], exact[1], strict=True))
    assert got[0].size > want[0].size  # envelopes reach a little farther, then dropped
