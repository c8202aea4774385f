"""Issue 22 acceptance a: hot spots and the forecast on generated histories."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest

from roadwatch.recurrence import forecast, hotspots, synth
from roadwatch.recurrence.history import LOCAL, Finding, History, SegmentInfo, window_of

# The history's parameters, written out: 25 planted hot spots at 4× the base rate, 12 weeks,
# the last 4 held out, three fixed seeds.
SEEDS = (11, 22, 33)
DISTRICTS, PER_DISTRICT, HOT, FACTOR, WEEKS, BASE_RATE, HELD_OUT = 5, 120, 25, 4.0, 12, 1.5, 4


def params(seed: int) -> synth.Params:
    return synth.Params(
        seed=seed,
        districts=DISTRICTS,
        segments_per_district=PER_DISTRICT,
        hot=HOT,
        factor=FACTOR,
        weeks=WEEKS,
        base_rate=BASE_RATE,
    )


@pytest.fixture(scope="module", params=SEEDS)
def generated(request: pytest.FixtureRequest) -> synth.Generated:
    return synth.generate(params(request.param))


def test_planted_hot_spots_rank_in_their_districts_top_5_percent(
    generated: synth.Generated,
) -> None:
    train = slice(0, WEEKS - HELD_OUT)
    ranked = hotspots.rank_hot_spots(generated.history, train)
    size = PER_DISTRICT
    top = math.ceil(0.05 * size)
    worst = max(h.rank for h in ranked if h.segment in generated.hot)
    print(f"worst rank of a planted hot spot: {worst} (top 5 % = {top} of {size})")
    assert worst <= top
    for h in ranked:
        assert h.lower <= h.rate <= h.upper


def test_forecast_beats_same_as_last_week(generated: synth.Generated) -> None:
    ev = forecast.evaluate(generated.history, HELD_OUT)
    print(
        f"MAE model {ev.model_mae:.3f} naive {ev.naive_mae:.3f}; "
        f"deviance model {ev.model_deviance:.3f} naive {ev.naive_deviance:.3f}; "
        f"penalties {ev.penalties}"
    )
    assert ev.model_mae < ev.naive_mae
    assert ev.model_deviance < ev.naive_deviance


def test_forecast_recovers_the_hour_of_week_shape(generated: synth.Generated) -> None:
    model = forecast.fit(generated.history, slice(0, 8))
    truth = generated.rates
    # Correlation of forecast and true rates over (segment, window) cells.
    r = float(np.corrcoef(model.rates.ravel(), truth.ravel())[0, 1])
    assert r > 0.8, r


def test_the_empirical_bayes_rank_is_not_the_raw_count() -> None:
    """Five findings in one week of record are less sure than 30 in ten weeks."""
    segs = [SegmentInfo(f"S{i}", "D") for i in range(20)]
    start = dt.datetime(2026, 8, 3, tzinfo=LOCAL)
    found: list[Finding] = []
    for i in range(20):
        per_week = 3 if i == 1 else 1
        for w in range(10):
            found += [Finding(f"S{i}", "E0504", start + dt.timedelta(weeks=w, hours=10))] * (
                per_week
            )
    history = History.build(segs, found, start=start, weeks=10)
    burst = History.build(
        segs,
        [*found, *[Finding("S0", "E0504", start + dt.timedelta(weeks=9, hours=12))] * 6],
        start=start,
        weeks=10,
    )
    ranks = {h.segment: h for h in hotspots.rank_hot_spots(burst, slice(9, 10))}
    assert ranks["S0"].findings > ranks["S1"].findings  # raw count on the last week says S0
    ranked = {h.segment: h for h in hotspots.rank_hot_spots(history)}
    assert ranked["S1"].rank == 1
    wide = {h.segment: h for h in hotspots.rank_hot_spots(burst)}
    assert wide["S1"].rank == 1 and wide["S0"].rank == 2
    assert wide["S0"].upper - wide["S0"].lower > 0


def test_gamma_quantile_matches_sampling() -> None:
    rng = np.random.default_rng(0)
    for shape, rate in ((5.0, 1.0), (30.0, 8.0), (150.0, 12.0)):
        sample = rng.gamma(shape, 1.0 / rate, 200_000)
        got = float(hotspots.gamma_quantile(np.array([shape]), np.array([rate]))[0])
        assert got == pytest.approx(float(np.quantile(sample, 0.05)), rel=0.02)


def test_recurrence_after_close() -> None:
    t0 = dt.datetime(2026, 8, 3, 9, tzinfo=LOCAL)
    h = dt.timedelta(hours=1)
    found = [
        Finding("S1", "E0504", t0, t0 + 2 * h),
        Finding("S1", "E0504", t0 + 26 * h, t0 + 28 * h),  # back 1 day after closing
        Finding("S1", "E0504", t0 + 28 * h + 10 * 24 * h, None),  # back after 10 days: late
        Finding("S1", "E0201", t0 + 5 * h, t0 + 6 * h),  # never back
        Finding("S2", "E0504", t0 + h, None),  # never closed
    ]
    rec = {(r.segment, r.category): r for r in hotspots.recurrence(found)}
    r = rec[("S1", "E0504")]
    assert (r.closed, r.came_back, r.share) == (2, 1, 0.5)
    assert r.median_days_away == 1.0
    assert r.windows == (window_of(t0 + 26 * h),)
    assert rec[("S1", "E0201")].came_back == 0 and rec[("S1", "E0201")].median_days_away is None
    assert ("S2", "E0504") not in rec


def test_planted_hot_spots_come_back_more_often(generated: synth.Generated) -> None:
    rec = hotspots.recurrence(generated.history.findings)
    hot = [r.share for r in rec if r.segment in generated.hot]
    cold = [r.share for r in rec if r.segment not in generated.hot]
    assert np.mean(hot) > 1.5 * np.mean(cold)
