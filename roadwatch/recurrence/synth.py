"""Histories with planted hot spots, for the tests and benchmarks of this package.

Every figure is a parameter: the tests write theirs out, so what is being recovered is
visible beside the check that recovers it. Findings per (segment, window) are Poisson with
rate base × (factor if planted) × the district's hour-of-week profile.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from .history import LOCAL, WINDOW_HOURS, WINDOWS, Finding, FloatArray, History, SegmentInfo

CATEGORIES = ("E0504", "E0505", "E0102", "E0201", "C0101")
CATEGORY_SHARES = (0.3, 0.25, 0.2, 0.15, 0.1)


@dataclass(frozen=True)
class Params:
    seed: int
    districts: int = 5
    segments_per_district: int = 120
    hot: int = 25  # planted hot-spot segments, city-wide
    factor: float = 4.0  # their rate over the base rate
    weeks: int = 12
    base_rate: float = 1.5  # findings per segment per week, averaged over the week
    segments_per_chief: int = 4
    close_hours: float = 6.0  # mean time from a finding to its case closed
    start: dt.datetime = dt.datetime(2026, 8, 3, tzinfo=LOCAL)  # a Monday


@dataclass
class Generated:
    history: History
    hot: frozenset[str]
    profile: FloatArray  # [district, window], mean 1 per district
    rates: FloatArray  # [segment, window], findings per week: the truth the model estimates


def day_profile(rng: np.random.Generator) -> FloatArray:
    """A district's hour-of-week shape: quiet nights, morning and evening peaks (stalls,
    parking), livelier weekend evenings; each district's own perturbation on top."""
    shape = np.empty(WINDOWS)
    for w in range(WINDOWS):
        day, hour = divmod(w * WINDOW_HOURS, 24)
        if hour < 6:
            v = 0.15
        elif hour in (10, 18):
            v = 2.4
        elif 6 <= hour < 22:
            v = 1.0
        else:
            v = 0.5
        if day >= 5 and hour >= 16:
            v *= 1.4
        shape[w] = v
    shape *= rng.lognormal(0.0, 0.3, WINDOWS)
    out: FloatArray = shape / shape.mean()
    return out


def generate(p: Params) -> Generated:
    rng = np.random.default_rng(p.seed)
    segments: list[SegmentInfo] = []
    for d in range(p.districts):
        for k in range(p.segments_per_district):
            chief = f"chief-{d}-{k // p.segments_per_chief:03d}"
            segments.append(SegmentInfo(f"ZZ-D{d}-{k:04d}", f"D{d}", chief))
    n = len(segments)
    # Planted round the districts in turn (as even as `hot` allows), at random within each.
    per = p.segments_per_district
    picks = [rng.permutation(per) for _ in range(p.districts)]
    hot_idx = np.array([d * per + picks[d][k] for k, d in _round_robin(p.hot, p.districts)])
    mult = np.ones(n)
    mult[hot_idx] = p.factor
    profile = np.stack([day_profile(rng) for _ in range(p.districts)])
    district_of = np.repeat(np.arange(p.districts), p.segments_per_district)
    rates = (p.base_rate / WINDOWS) * mult[:, None] * profile[district_of]  # per week
    counts = rng.poisson(rates[None, :, :].repeat(p.weeks, axis=0))
    findings: list[Finding] = []
    window = dt.timedelta(hours=WINDOW_HOURS)
    for week, seg, w in zip(*np.nonzero(counts), strict=True):
        base = p.start + dt.timedelta(weeks=int(week)) + window * int(w)
        for _ in range(int(counts[week, seg, w])):
            at = base + window * float(rng.random())
            cat = CATEGORIES[int(rng.choice(len(CATEGORIES), p=CATEGORY_SHARES))]
            closed = at + dt.timedelta(hours=float(rng.exponential(p.close_hours)))
            findings.append(Finding(segments[seg].id, cat, at, closed))
    history = History.build(segments, findings, start=p.start, weeks=p.weeks)
    return Generated(history, frozenset(segments[i].id for i in hot_idx), profile, rates)


def _round_robin(count: int, districts: int) -> list[tuple[int, int]]:
    """(k-th pick, district) for `count` picks dealt round the districts."""
    return [divmod(i, districts) for i in range(count)]
