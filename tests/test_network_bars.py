"""Per-network accepting and asking bars (issue 21): geo.noise.fit_bars on a real OSM
network (Kotka, tests/data, ODbL), and the fit stored beside a network file."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.bench_phone_noise import HELD_OUT, build_index, load_network
from geo.noise import (
    BAR_GRID,
    CHOICE_WRONG_BUDGET,
    FIT_MIN_SEGMENT_M,
    FIT_PER_SEGMENT,
    WRONG_BUDGET,
    Sample,
    bars_path,
    fit_bars,
    right_of,
    sample_index,
)
from geo.robust import Bars, RobustSnapper
from geo.snap import SegmentIndex
from roadwatch.network.context import DEMO_NETWORK, load_network_context
from roadwatch.settings import load_settings

FIT_SEED = 3
REPORTS = 20_000


@pytest.fixture(scope="module")
def kotka() -> SegmentIndex:
    return build_index(load_network(HELD_OUT))


def _wrong(rb: RobustSnapper, s: Sample, heading: bool) -> tuple[float, float, float]:
    """(confidently wrong, review, wrong when the phone asks below the asking bar)."""
    new = rb.snap_many(
        s.lon, s.lat, accuracy_m=s.accuracy, heading_deg=s.heading if heading else None
    )
    ok = right_of(rb.index, new.index, s) & (new.index >= 0)
    certain = new.certain & (new.index >= 0)
    unasked = ~new.ask & (new.index >= 0)
    return (
        float((certain & ~ok).mean()),
        float((~certain).mean()),
        float((unasked & ~ok).mean()),
    )


def test_the_fit_picks_the_lowest_bars_within_the_budgets(kotka: SegmentIndex) -> None:
    fit = fit_bars(kotka, reports=REPORTS, seed=FIT_SEED)
    again = fit_bars(kotka, reports=REPORTS, seed=FIT_SEED)
    assert (fit.bars, fit.fell_back) == (again.bars, again.fell_back)
    assert fit.calibration is not None and again.calibration is not None
    for h in (True, False):  # the network's own calibration, as reproducible as its bars
        for a, b in zip(fit.calibration[h], again.calibration[h], strict=True):
            np.testing.assert_array_equal(a, b)
    assert not fit.fell_back
    # the fit's own reports, checked through the snapper itself rather than the fit's
    # tables: drawn per metre of street, and drawn per segment (each segment as often)
    per_metre = sample_index(kotka, REPORTS, np.random.default_rng([FIT_SEED, 21]))
    per_segment = sample_index(
        kotka, REPORTS, np.random.default_rng([FIT_SEED, 23]), per_segment=1.0
    )
    per_long_segment = sample_index(  # as issue 21's check draws: segments of 30 m or more
        kotka,
        REPORTS,
        np.random.default_rng([FIT_SEED, 24]),
        per_segment=1.0,
        min_segment_m=FIT_MIN_SEGMENT_M,
    )
    drawn = (per_metre, per_segment, per_long_segment)
    step = float(BAR_GRID[1] - BAR_GRID[0])
    for h, accept, ask in (
        (True, "certain", "ask"),
        (False, "certain_no_heading", "ask_no_heading"),
    ):
        rb = fit.snapper(kotka)
        for s in drawn:  # the bars hold however the reports are drawn
            wrong, _, asked_wrong = _wrong(rb, s, h)
            assert wrong <= WRONG_BUDGET
            assert asked_wrong <= CHOICE_WRONG_BUDGET
        # one step lower breaks its budget on one of them (unless at the grid's floor)
        for name, budget, col in ((accept, WRONG_BUDGET, 0), (ask, CHOICE_WRONG_BUDGET, 2)):
            bar = getattr(fit.bars, name)
            if bar - step < float(BAR_GRID[0]):
                continue
            lower = dataclasses.replace(fit.bars, **{name: bar - step})
            if name.startswith("ask"):  # the asking bar alone moves; keep accept <= ask
                lower = dataclasses.replace(
                    lower, **{accept: min(getattr(lower, accept), bar - step)}
                )
            lower_rb = RobustSnapper(
                kotka, **dataclasses.asdict(lower), calibration=fit.calibration
            )
            assert max(_wrong(lower_rb, s, h)[col] for s in drawn) > budget
    # Kotka is sparser than central Helsinki, which sets the shared bars: its own are lower
    assert fit.bars.certain < Bars().certain and fit.bars.ask < Bars().ask


def test_fitted_bars_review_no_more_than_the_shared_on_fresh_reports(kotka: SegmentIndex) -> None:
    fit = fit_bars(kotka, reports=REPORTS, seed=FIT_SEED)
    n = 40_000
    s = sample_index(kotka, n, np.random.default_rng([FIT_SEED + 500, 0]))  # never fitted on
    own, shared = fit.snapper(kotka), RobustSnapper(kotka)
    # the fit stops at the budget on its own reports, so on fresh ones the share lands on
    # either side of it: allowed three standard errors of the two samples' difference
    slack = 3.0 * math.sqrt(WRONG_BUDGET * (1 - WRONG_BUDGET) * (1 / n + 1 / REPORTS))
    for h in (True, False):
        o_wrong, o_review, _ = _wrong(own, s, h)
        s_wrong, s_review, _ = _wrong(shared, s, h)
        assert o_wrong <= WRONG_BUDGET + slack
        assert o_review <= s_review
    o_wrong, o_review, _ = _wrong(own, s, True)
    s_wrong, s_review, _ = _wrong(shared, s, True)
    assert o_review < s_review - 0.02  # with direction: issue 21's 6 % target, met on Kotka
    assert o_review <= 0.06


def _demo_copy(tmp_path: Path) -> Path:
    path = tmp_path / "net.geojson.gz"
    shutil.copyfile(DEMO_NETWORK, path)
    return path


def _robust_bars(path: Path) -> Bars:
    ctx = load_network_context(load_settings(env={"ROADWATCH_NETWORK": str(path)}))
    rb = ctx.robust
    assert rb is not None
    return Bars(rb.certain, rb.certain_no_heading, rb.ask, rb.ask_no_heading)


@pytest.mark.parametrize(
    "sidecar",
    [
        None,
        "{not json",
        '{"format": "roadwatch-bars", "version": 1, "network_sha256": "0", '
        '"bars": {"certain": 0.8, "certain_no_heading": 0.8, "ask": 0.8, "ask_no_heading": 0.8}}',
        "BARS_OF_THIS_FILE_BUT_OUT_OF_RANGE",
    ],
    ids=["missing", "garbled", "another-file", "out-of-range"],
)
def test_a_network_without_usable_fitted_bars_uses_the_shared_ones(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, sidecar: str | None
) -> None:
    import hashlib

    path = _demo_copy(tmp_path)
    if sidecar is not None:
        if sidecar.startswith("BARS_"):
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            sidecar = json.dumps(
                {
                    "format": "roadwatch-bars",
                    "version": 1,
                    "network_sha256": digest,
                    "bars": {
                        "certain": 1.5,
                        "certain_no_heading": 0.9,
                        "ask": 0.9,
                        "ask_no_heading": 0.9,
                    },
                }
            )
        bars_path(path).write_text(sidecar, encoding="utf-8")
    with caplog.at_level(logging.INFO, logger="roadwatch.network.context"):
        assert _robust_bars(path) == Bars()
    # Missing is the normal case of a network from before per-network bars (info); a
    # sidecar that cannot be used is a warning.
    level = logging.INFO if sidecar is None else logging.WARNING
    assert any("shared defaults" in r.getMessage() and r.levelno == level for r in caplog.records)


def _fitted_demo(tmp_path: Path, runner: object) -> tuple[Path, dict[str, Any]]:
    """A copy of the demo network with its bars fitted by `roadwatch network fit-bars`
    (5,000 reports a mode, its calibration on 20,000), and the sidecar it wrote."""
    from click.testing import CliRunner

    from roadwatch.cli import main

    path = _demo_copy(tmp_path)
    assert isinstance(runner, CliRunner)
    argv = ["network", "fit-bars", str(path), "--reports", "5000"]
    r = runner.invoke(main, [*argv, "--calibration-reports", "20000"])
    assert r.exit_code == 0, r.output
    return path, json.loads(bars_path(path).read_text(encoding="utf-8"))


def test_the_runtime_snaps_with_the_bars_fitted_beside_its_network(
    tmp_path: Path, runner: object
) -> None:
    path, doc = _fitted_demo(tmp_path, runner)
    assert doc["reports_per_mode"] == 5000
    assert doc["calibration_reports_per_mode"] == 20_000
    got = _robust_bars(path)
    assert dataclasses.asdict(got) == doc["bars"]
    assert got != Bars()  # the sparse demo grid meets the budgets below the shared bars


def _excess(conf: np.ndarray, right: np.ndarray) -> list[float]:
    """Per 10-point band of stated confidence with at least 200 reports: how far the
    share right is from the mean stated beyond what sampling explains, max(2 points,
    2.5 standard errors) (> 0: off)."""
    out = []
    for lo in np.arange(0.0, 1.0, 0.1):
        m = (conf >= lo) & ((conf < lo + 0.1) if lo < 0.85 else (conf <= 1.0))
        n = int(m.sum())
        if n >= 200:
            p = float(conf[m].mean())
            allowed = max(0.02, 2.5 * math.sqrt(p * (1.0 - p) / n))
            out.append(abs(float(right[m].mean()) - p) - allowed)
    return out


def test_a_network_nothing_was_fitted_on_gets_its_own_calibration() -> None:
    """Central Aguascalientes (a street grid; tests/data, ODbL) was never used to fit the
    global calibration, and it shows: with a direction, the 0.6-0.7 band is 3.8 points
    off (2.7 standard errors). The calibration fitted at import on the network itself
    states confidences that hold on fresh reports drawn as the fit draws them (half per
    metre of street, half per segment of 30 m or more: FIT_PER_SEGMENT,
    FIT_MIN_SEGMENT_M), within 2 points where a band has over a thousand reports and its
    sparse bands within sampling error."""
    from bench.bench_accuracy import GRID

    grid = build_index(load_network(GRID))
    fit = fit_bars(grid, seed=FIT_SEED)
    s = sample_index(
        grid,
        40_000,
        np.random.default_rng([FIT_SEED + 500, 1]),
        per_segment=FIT_PER_SEGMENT,
        min_segment_m=FIT_MIN_SEGMENT_M,
    )
    worst_global = -1.0
    for h in (True, False):
        head = s.heading if h else None
        own = fit.snapper(grid).snap_many(s.lon, s.lat, accuracy_m=s.accuracy, heading_deg=head)
        glob = RobustSnapper(grid).snap_many(s.lon, s.lat, accuracy_m=s.accuracy, heading_deg=head)
        for got, is_own in ((own, True), (glob, False)):
            placed = got.index >= 0
            ok = right_of(grid, got.index, s)[placed]
            excess = _excess(got.confidence[placed], ok)
            assert len(excess) >= 5
            if is_own:
                assert max(excess) <= 0.0, (h, excess)
            else:
                worst_global = max(worst_global, *excess)
    assert worst_global > 0.0  # what the global table alone gave on this network


def _sidecar(path: Path, **change: object) -> None:
    doc = json.loads(bars_path(path).read_text(encoding="utf-8"))
    doc.update(change)
    bars_path(path).write_text(json.dumps(doc), encoding="utf-8")


def test_the_runtime_snaps_with_the_calibration_fitted_beside_its_network(
    tmp_path: Path, runner: object, caplog: pytest.LogCaptureFixture
) -> None:
    path, doc = _fitted_demo(tmp_path, runner)
    assert doc["version"] == 2

    def robust() -> RobustSnapper:
        ctx = load_network_context(load_settings(env={"ROADWATCH_NETWORK": str(path)}))
        assert ctx.robust is not None
        return ctx.robust

    rb = robust()
    for mode, h in (("heading", True), ("none", False)):
        np.testing.assert_array_equal(rb.calibration[h][0], doc["calibration"][mode]["x"])
        np.testing.assert_array_equal(rb.calibration[h][1], doc["calibration"][mode]["y"])
    # a sidecar from before networks had their own calibration: its bars, the global table
    _sidecar(path, version=1)
    rb = robust()
    assert rb.certain == doc["bars"]["certain"]
    assert rb.calibration is RobustSnapper(rb.index).calibration
    # knots that are not a calibration: the whole sidecar is refused, with a warning
    bad = dict(doc["calibration"], none={"x": [0.0, 0.5, 1.0], "y": [0.9, 0.2, 1.0]})
    _sidecar(path, version=2, calibration=bad)
    with caplog.at_level(logging.WARNING, logger="roadwatch.network.context"):
        rb = robust()
    assert rb.certain == Bars().certain
    assert any("non-decreasing" in rec.getMessage() for rec in caplog.records)


def test_the_bundled_demo_network_snaps_with_its_own_bars_and_calibration() -> None:
    """The demo ships its fit beside it (`roadwatch network fit-bars`), for this very file:
    a sidecar of another version of the file would be refused and the shared bars used."""
    import hashlib

    from roadwatch.network.context import network_fit

    digest = hashlib.sha256(DEMO_NETWORK.read_bytes()).hexdigest()
    bars, calibration = network_fit(DEMO_NETWORK, digest)
    assert calibration is not None
    assert bars != Bars()
    assert 0.8 <= bars.certain <= 0.995 and bars.certain <= bars.ask
