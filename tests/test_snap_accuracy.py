"""The σ = 10 m accuracy floors on a real OSM network (central Helsinki, ODbL; tests/data).

Road level (``group_by_road=True``), ``RECOMMENDED_MIN_CONFIDENCE``, a fixed
sample; bench/bench_accuracy.py prints the full table.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.bench_accuracy import Case, build_index, load_network, run_case

N = 6000
SEED = 1


@pytest.fixture(scope="module")
def cases() -> dict[bool, Case]:
    net = load_network()
    index = build_index(net, road_level=True)
    return {h: run_case(index, net, 10.0, h, N, SEED, with_prior=True) for h in (False, True)}


def test_with_heading_floor(cases: dict[bool, Case]) -> None:
    c = cases[True]
    assert c.ours.wrong <= 0.01
    assert c.ours.right >= 0.93
    assert c.nearest.wrong > 0.05  # the problem is real on this network


def test_without_heading_floor(cases: dict[bool, Case]) -> None:
    c = cases[False]
    assert c.ours.wrong <= 0.01
    # Distance alone is no better than the gap rule at the same error (same information) ...
    assert c.ours.right >= c.gap.right - 0.02
    # ... the reporter's own segments (an honest extra signal) beat it.
    assert c.prior is not None
    assert c.prior.wrong <= c.ours.wrong
    assert c.prior.right > c.gap.right


def test_prior_never_hurts(cases: dict[bool, Case]) -> None:
    for c in cases.values():
        assert c.prior is not None
        assert c.prior.right >= c.ours.right
        assert c.prior.wrong <= c.ours.wrong + 0.002
        assert np.isfinite(c.gap_m)
