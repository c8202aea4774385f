"""Hot spots ranked with their uncertainty, and how problems come back after closing.

Ranking by raw counts rewards luck on short or quiet records; instead each district's
segments share a gamma prior on their weekly rate (method of moments over the district, the
empirical-Bayes step), each segment's posterior is Gamma(a + y, b + t), and segments are
ranked by the posterior's 5th percentile: a segment ranks high only when its record is long
and consistent enough to be sure it is high.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .history import WINDOWS, Finding, FloatArray, History, window_of

Z05 = -1.6448536269514722  # the standard normal's 5th percentile
RECUR_DAYS = 7  # a problem seen again within a week of closing "came back"


def gamma_quantile(shape: FloatArray, rate: FloatArray, z: float = Z05) -> FloatArray:
    """Wilson–Hilferty approximation of a gamma quantile (normal quantile z): about 3 %
    low at shape 2, within 2 % from shape 5 (tested against sampling); a ranking needs the
    order more than the third digit."""
    k = np.maximum(shape, 1e-9)
    cube = np.maximum(1.0 - 1.0 / (9.0 * k) + z / (3.0 * np.sqrt(k)), 0.0) ** 3
    out: FloatArray = k * cube / rate
    return out


@dataclass(frozen=True, slots=True)
class HotSpot:
    segment: str
    district: str
    rank: int  # 1 = hottest in its district
    findings: int
    weeks: int
    rate: float  # posterior mean, findings per week
    lower: float  # posterior 5th percentile
    upper: float  # posterior 95th percentile
    peak_window: int  # the hour-of-week window with most findings


def rank_hot_spots(history: History, weeks: slice | None = None) -> list[HotSpot]:
    """Every segment with its rank in its district (by posterior lower bound)."""
    counts = history.counts[weeks] if weeks is not None else history.counts
    t = counts.shape[0]
    per_segment = counts.sum(axis=(0, 2)).astype(np.float64)
    by_window = counts.sum(axis=0)
    out: list[HotSpot] = []
    for district, idx in sorted(history.districts().items()):
        y = per_segment[idx]
        a, b = gamma_prior(y, t)
        shape, rate = a + y, b + t
        lower = gamma_quantile(shape, rate)
        upper = gamma_quantile(shape, rate, -Z05)
        order = np.lexsort((np.array(idx), -lower))
        for rank, j in enumerate(order.tolist(), start=1):
            i = idx[j]
            out.append(
                HotSpot(
                    history.segments[i].id,
                    district,
                    rank,
                    int(y[j]),
                    t,
                    round(float(shape[j] / rate), 3),
                    round(float(lower[j]), 3),
                    round(float(upper[j]), 3),
                    int(np.argmax(by_window[i])),
                )
            )
    return out


def gamma_prior(y: FloatArray, t: int) -> tuple[float, float]:
    """(shape, rate) of the gamma prior on weekly rates, by the method of moments: the
    spread of y/t beyond what Poisson noise alone gives is the spread of the true rates."""
    if t <= 0 or y.size == 0:
        return 1.0, 1.0
    r = y / t
    mean = max(float(r.mean()), 1e-3)
    between = float(r.var()) - mean / t
    var = max(between, mean * mean * 0.01)  # never certain that all rates are equal
    return mean * mean / var, mean / var


@dataclass(frozen=True, slots=True)
class Recurrence:
    segment: str
    category: str
    closed: int  # findings closed
    came_back: int  # ...followed by another of the same category within RECUR_DAYS
    share: float
    median_days_away: float | None  # closed → next finding, over those that came back
    windows: tuple[int, ...]  # hour-of-week windows of the returns, most frequent first


def recurrence(findings: Iterable[Finding]) -> list[Recurrence]:
    """Per (segment, category): how often a closed problem comes back, and after how long."""
    groups: dict[tuple[str, str], list[Finding]] = defaultdict(list)
    for f in findings:
        groups[(f.segment, f.category)].append(f)
    limit = dt.timedelta(days=RECUR_DAYS)
    out: list[Recurrence] = []
    for (segment, category), items in sorted(groups.items()):
        items.sort(key=lambda f: f.at)
        closed = back = 0
        gaps: list[float] = []
        windows: dict[int, int] = defaultdict(int)
        for k, f in enumerate(items):
            if f.closed_at is None:
                continue
            closed += 1
            nxt = next((g for g in items[k + 1 :] if g.at >= f.closed_at), None)
            if nxt is not None and nxt.at - f.closed_at <= limit:
                back += 1
                gaps.append((nxt.at - f.closed_at).total_seconds() / 86400)
                windows[window_of(nxt.at)] += 1
        if closed:
            out.append(
                Recurrence(
                    segment,
                    category,
                    closed,
                    back,
                    round(back / closed, 3),
                    round(statistics.median(gaps), 2) if gaps else None,
                    tuple(sorted(windows, key=lambda w: (-windows[w], w))),
                )
            )
    return out


def window_profile(history: History, weeks: slice | None = None) -> FloatArray:
    """City-wide share of findings per hour-of-week window (sums to 1; flat if empty)."""
    counts = history.counts[weeks] if weeks is not None else history.counts
    total = counts.sum(axis=(0, 1)).astype(np.float64)
    s = float(total.sum())
    flat: FloatArray = np.full(WINDOWS, 1.0 / WINDOWS)
    return total / s if s > 0 else flat


__all__ = ["HotSpot", "Recurrence", "gamma_prior", "rank_hot_spots", "recurrence"]
