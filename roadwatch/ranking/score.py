"""Scoring a week: pure functions of the week's findings and measures under a Formula.

No database, web or clock here: `roadwatch.ranking.gather` brings the week's numbers
(aggregated in SQL), this module turns them into scores, ranks and flags, each with its
drill-down. The same inputs in any order give the same result.

Model (docs/domain.md 红黑旗; fair league tables as for hospitals and schools):

* demerit points y of a unit (a segment, a partner unit's segments, a merchant's zone) =
  per category min(cap, Σ points × severity factor × source weight) + process measures
  (overdue, reopened, unresolved at the cut-off, recurrence) + missed patrol duty
  − credit for self-reported problems fixed on time; never below 0;
* exposure E in km-equivalents (length × road-class factor);
* the district's rate λ = Σy / ΣE; each unit's rate is shrunk towards it with a gamma prior
  worth `prior_km` km-equivalents: r̃ = (y + prior·λ) / (E + prior) (empirical Bayes);
* significance (mode "significant") asks whether a unit has more (black) or fewer (red)
  findings than its exposure explains at the district's finding rate: an exact one-sided
  Poisson test on the count, Bonferroni-corrected over the district's units, so equal
  underlying rates flag almost nothing (tests/test_ranking_score.py simulates 1,000 weeks).
  The points decide the order; the count decides whether a difference is real. (Testing
  the points themselves, a compound Poisson sum in which one urgent evaluator finding weighs
  120 times a minor self-report, had almost no power: measured 7 % of weeks for a segment
  with four times the rate, against 80 % on counts.)
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from .formula import SOURCES, Formula

PRECISION = 9  # digits kept in scores: sums in another order must not change a rank


@dataclass(frozen=True, slots=True)
class Finding:
    """One report counted against a unit, with its process facts at the cut-off."""

    id: str
    category: str
    severity: int
    source: str  # evaluator | covert | public | self
    on_time: bool = False  # rectified by its deadline
    overdue: bool = False
    reopened: bool = False
    unresolved: bool = True  # not closed at the cut-off
    recurrence: bool = False  # same category on the same segment within N days before


class FindingGroup(NamedTuple):
    """Findings of one unit with the same category, severity and source (a SQL GROUP BY row).

    A named tuple, not a dataclass: a 250,000-segment week builds millions of them, and a
    tuple is made several times faster than a frozen dataclass."""

    category: str
    severity: int
    source: str
    count: int  # type: ignore[assignment]  # the field shadows tuple.count, on purpose
    on_time: int = 0
    overdue: int = 0
    reopened: int = 0
    unresolved: int = 0
    recurrence: int = 0


@dataclass(frozen=True)
class Unit:
    """Something ranked: a segment, or a partner unit / merchant over the zones it holds."""

    kind: str  # segment | partner_unit | merchant
    id: str
    name: str
    district: str
    parts: tuple[tuple[float, str], ...]  # (length_m, road_class) of what it answers for
    groups: tuple[FindingGroup, ...] = ()
    patrol_days: float | None = None  # distinct days walked in the week
    duty_level: int | None = None  # level of the most local road chief (None: no duty)
    findings: tuple[Finding, ...] = ()  # the individual findings, when known (drill-down)


def group_findings(findings: Iterable[Finding]) -> tuple[FindingGroup, ...]:
    """What the SQL aggregation computes, for findings known one by one (tests, drill-down)."""
    acc: dict[tuple[str, int, str], list[int]] = defaultdict(lambda: [0] * 6)
    for f in findings:
        a = acc[(f.category, f.severity, f.source)]
        a[0] += 1
        a[1] += f.on_time
        a[2] += f.overdue
        a[3] += f.reopened
        a[4] += f.unresolved
        a[5] += f.recurrence
    return tuple(FindingGroup(c, s, src, *vals) for (c, s, src), vals in sorted(acc.items()))


@dataclass
class UnitScore:
    unit: Unit
    exposure_km: float
    points: float
    # per category: raw, capped, and the groups behind it as (severity, source, count, points
    # each) tuples
    deductions: list[dict[str, Any]]
    measures: list[dict[str, Any]]  # process and patrol measures with their points
    findings: int
    third_party: int  # evaluator + covert findings
    rate: float = 0.0  # y / E
    shrunk: float = 0.0  # r̃
    index: float = 0.0  # r̃ / λ (1 = the district's rate)
    expected: float = 0.0  # findings expected at the district's finding rate
    p_high: float = 1.0
    p_low: float = 1.0
    eligible_black: bool = False
    eligible_red: bool = False
    why_not: list[str] = field(default_factory=list)
    rank: int = 0
    flag: str | None = None  # red | black
    streak: int = 0
    card: str | None = None  # yellow_card | commendation
    prev_rank: int | None = None
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)  # finding id → when, who


_WEIGHTS: dict[str, dict[tuple[str, int, str], float]] = {}  # formula hash → (cat, …) → w


def _weight_table(formula: Formula) -> dict[tuple[str, int, str], float]:
    table = _WEIGHTS.get(formula.sha256)
    if table is None:
        if len(_WEIGHTS) > 100:
            _WEIGHTS.clear()
        table = _WEIGHTS[formula.sha256] = {}
    return table


def _weight(formula: Formula, g: FindingGroup) -> float:
    table = _weight_table(formula)
    key = (g.category, g.severity, g.source)
    w = table.get(key)
    if w is None:
        w = table[key] = formula.finding_weight(g.category, g.severity, g.source)
    return w


def score_unit(formula: Formula, unit: Unit) -> UnitScore:
    # (category, severity, source, …) order: every sum below in the same order every time
    groups = sorted(unit.groups)
    deductions: list[dict[str, Any]] = []
    total = 0.0
    n = overdue = reopened = unresolved = recurrence = own_fixed = third_party = 0
    i = 0
    while i < len(groups):  # one category at a time (groups are sorted by category)
        cat = groups[i].category
        rule = formula.rule(cat)
        lines = []
        raw = 0.0
        while i < len(groups) and groups[i].category == cat:
            g = groups[i]
            w = _weight(formula, g)
            raw += w * g.count  # in (severity, source) order: the same sum every time
            lines.append((g.severity, g.source, g.count, w))
            n += g.count
            overdue += g.overdue
            reopened += g.reopened
            unresolved += g.unresolved
            recurrence += g.recurrence
            if g.source == "self":
                own_fixed += g.on_time
            elif g.source in ("evaluator", "covert"):
                third_party += g.count
            i += 1
        raw = round(raw, PRECISION)
        capped = min(raw, rule.cap)
        total += capped
        # the groups as tuples: only a flagged unit's content spells them out (score_to_dict)
        deductions.append(
            {"category": cat, "raw": raw, "points": capped, "cap": rule.cap, "groups": lines}
        )
    measures: list[dict[str, Any]] = []

    def measure(name: str, count: float, each: float, cap: float | None = None) -> float:
        pts = count * each
        if cap is not None:
            pts = min(pts, cap)
        pts = round(pts, PRECISION)
        if count:
            measures.append({"measure": name, "count": count, "points": pts})
        return pts

    total += measure("overdue", overdue, formula.overdue)
    total += measure("reopened", reopened, formula.reopened)
    total += measure("unresolved", unresolved, formula.unresolved)
    total += measure("recurrence", recurrence, formula.recurrence)
    total -= measure("own_fix_credit", own_fixed, formula.own_fix_credit)
    if measures and measures[-1]["measure"] == "own_fix_credit":
        measures[-1]["points"] = -measures[-1]["points"]
    duty = formula.duty_days.get(unit.duty_level) if unit.duty_level is not None else None
    walked = unit.patrol_days or 0.0
    if duty:
        missed = max(0.0, duty - walked)
        pts = measure("patrol_missed_days", missed, formula.missed_day, formula.patrol_cap)
        total += pts
        if not missed:
            measures.append({"measure": "patrol_missed_days", "count": 0, "points": 0.0})
        measures[-1].update({"duty_days": duty, "walked_days": walked})
    return UnitScore(
        unit=unit,
        exposure_km=round(sum(formula.exposure_km(ln, rc) for ln, rc in unit.parts), PRECISION),
        points=round(max(0.0, total), PRECISION),
        deductions=deductions,
        measures=measures,
        findings=n,
        third_party=third_party,
    )


# -- Poisson tails through the regularized incomplete gamma function --------------------
def _gamma_pq(a: float, x: float) -> tuple[float, float]:
    """Regularized incomplete gamma (P(a, x), Q(a, x) = 1 − P) (Numerical Recipes 6.2),
    a > 0, x ≥ 0: the series gives P accurately, the continued fraction Q."""
    if x <= 0:
        return 0.0, 1.0
    lg = math.lgamma(a)
    if x < a + 1:  # series
        term = total = 1.0 / a
        ap = a
        for _ in range(10_000):
            ap += 1
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        p = min(1.0, total * math.exp(-x + a * math.log(x) - lg))
        return p, 1.0 - p
    # continued fraction for Q, then P = 1 - Q
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    q = min(1.0, math.exp(-x + a * math.log(x) - lg) * h)
    return 1.0 - q, q


def poisson_sf(k: float, mu: float) -> float:
    """P(X ≥ k) for X ~ Poisson(mu), continuous in k (exact at whole k)."""
    if k <= 0:
        return 1.0
    return poisson_tails(k, mu)[0]


def poisson_cdf(k: float, mu: float) -> float:
    """P(X ≤ k) for X ~ Poisson(mu), continuous in k (exact at whole k)."""
    if k < 0:
        return 0.0
    return poisson_tails(k, mu)[1]


def poisson_tails(k: float, mu: float) -> tuple[float, float]:
    """(P(X ≥ k), P(X ≤ k)) for X ~ Poisson(mu), k ≥ 0, from one incomplete gamma.

    P(X ≥ k) = P(k, mu) and P(X ≤ k) = Q(k + 1, mu) = Q(k, mu) + mu^k e^−mu / k!: a sum of
    two positive terms, so a tiny lower tail keeps its digits (1 − P(k + 1, mu) lost them).
    """
    if mu <= 0:
        return (1.0 if k <= 0 else 0.0), 1.0
    pmf = math.exp(-mu + k * math.log(mu) - math.lgamma(k + 1))
    if k <= 0:
        return 1.0, pmf
    p, q = _gamma_pq(k, mu)
    return p, min(1.0, q + pmf)


def poisson_tails_many(ks: Sequence[int], mus: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """poisson_tails(k, mu) for many whole k at once, bit for bit the same.

    The series and the continued fraction run on arrays, each element stopping at the
    iteration where poisson_tails stops (NumPy's element-wise +, −, ×, ÷ round exactly as
    Python's floats do); exp, log and lgamma stay math's, called per element (NumPy's own
    may differ in the last bit).
    """
    k_list = [int(k) for k in ks]
    mu_list = [float(m) for m in mus]
    n = len(k_list)
    high = np.ones(n)
    low = np.ones(n)
    gamma: list[int] = []  # the elements that need the incomplete gamma
    pmf = np.zeros(n)
    for i, (k, mu) in enumerate(zip(k_list, mu_list, strict=True)):
        if mu <= 0:
            high[i] = 1.0 if k <= 0 else 0.0
            continue
        pmf[i] = math.exp(-mu + k * math.log(mu) - math.lgamma(k + 1))
        if k <= 0:
            low[i] = pmf[i]
            continue
        gamma.append(i)
    if gamma:
        idx = np.array(gamma)
        a = np.array([k_list[i] for i in gamma], dtype=np.float64)
        x = np.array([mu_list[i] for i in gamma])
        p, q = _gamma_pq_many(a, x)
        high[idx] = p
        s = q + pmf[idx]
        low[idx] = np.where(s < 1.0, s, 1.0)
    return high, low


def _gamma_pq_many(a: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """_gamma_pq over arrays (a whole and > 0, x > 0), the same operations in the same order."""
    n = len(a)
    # exp(-x + a log x - lgamma(a)), by math, per element
    factor = np.array(
        [
            math.exp(-xi + ai * math.log(xi) - math.lgamma(ai))
            for ai, xi in zip(a.tolist(), x.tolist(), strict=True)
        ]
    )
    p = np.zeros(n)
    q = np.ones(n)
    series = np.flatnonzero(x < a + 1)
    if series.size:
        aa, xx = a[series], x[series]
        term = 1.0 / aa
        total = term.copy()
        ap = aa.copy()
        act = np.arange(series.size)
        for _ in range(10_000):
            ap[act] += 1
            term[act] *= xx[act] / ap[act]
            total[act] += term[act]
            done = np.abs(term[act]) < np.abs(total[act]) * 1e-15
            act = act[~done]
            if not act.size:
                break
        ps = total * factor[series]
        ps = np.where(ps < 1.0, ps, 1.0)
        p[series] = ps
        q[series] = 1.0 - ps
    frac = np.flatnonzero(~(x < a + 1))
    if frac.size:
        aa, xx = a[frac], x[frac]
        tiny = 1e-300
        b = xx + 1 - aa
        c = np.full(frac.size, 1 / tiny)
        d = 1 / b
        h = d.copy()
        act = np.arange(frac.size)
        for i in range(1, 10_000):
            an = -i * (i - aa[act])
            bb = b[act] + 2
            b[act] = bb
            dd = an * d[act] + bb
            dd = np.where(np.abs(dd) < tiny, tiny, dd)
            cc = bb + an / c[act]
            cc = np.where(np.abs(cc) < tiny, tiny, cc)
            c[act] = cc
            dd = 1 / dd
            d[act] = dd
            delta = dd * cc
            h[act] *= delta
            act = act[~(np.abs(delta - 1) < 1e-15)]
            if not act.size:
                break
        qs = factor[frac] * h
        qs = np.where(qs < 1.0, qs, 1.0)
        q[frac] = qs
        p[frac] = 1.0 - qs
    return p, q


# -- leagues ----------------------------------------------------------------------------
@dataclass
class League:
    """The units of one kind in one district, compared with each other."""

    kind: str
    district: str
    district_name: str
    mode: str
    red_quota: int
    black_quota: int
    scores: list[UnitScore]
    rate: float = 0.0  # demerit points per km-equivalent
    count_rate: float = 0.0  # findings per km-equivalent
    prior_km: float = 0.0
    alpha_per_unit: float = 0.0
    insufficient: str | None = None

    @property
    def red(self) -> list[UnitScore]:
        return [s for s in self.scores if s.flag == "red"]

    @property
    def black(self) -> list[UnitScore]:
        return [s for s in self.scores if s.flag == "black"]


def _sort_key(s: UnitScore) -> tuple[float, int, int, float, str]:
    """Best first; the published tie rule (Formula.tie_rule)."""
    return (round(s.shrunk, PRECISION), s.third_party, s.findings, -s.exposure_km, s.unit.id)


def rank_league(
    formula: Formula,
    kind: str,
    district: str,
    district_name: str,
    scores: list[UnitScore],
    previous: Mapping[tuple[str, str], Mapping[str, Any]] | None = None,
) -> League:
    rule = formula.flag_rule(kind, district)
    scores = sorted(scores, key=lambda s: s.unit.id)  # a fixed order for every sum below
    lg = League(kind, district, district_name, rule.mode, rule.red, rule.black, scores)
    total_e = sum(s.exposure_km for s in scores)
    total_y = sum(s.points for s in scores)
    findings = sum(s.findings for s in scores)
    lg.rate = round(total_y / total_e, PRECISION) if total_e > 0 else 0.0
    lg.count_rate = round(findings / total_e, PRECISION) if total_e > 0 else 0.0
    lg.prior_km = formula.prior_km
    lg.alpha_per_unit = formula.alpha / max(1, len(scores))
    for s in scores:
        e = s.exposure_km
        s.rate = round(s.points / e, PRECISION) if e > 0 else 0.0
        prior = formula.prior_km
        s.shrunk = round((s.points + prior * lg.rate) / (e + prior), PRECISION)
        s.index = round(s.shrunk / lg.rate, PRECISION) if lg.rate > 0 else 1.0
        mu = lg.count_rate * e  # findings expected at the district's rate
        s.expected = round(mu, PRECISION)
        high, low = poisson_tails(s.findings, mu)
        s.p_high = round(high, 12) if s.findings else 1.0
        s.p_low = round(low, 12)
        s.eligible_black = s.findings >= formula.min_findings_black
        if not s.eligible_black:
            s.why_not.append(f"black: {s.findings} findings < {formula.min_findings_black}")
        reasons = []
        if mu < formula.min_expected_red:
            reasons.append(
                f"red: expected {mu:.2f} findings < {formula.min_expected_red:g} "
                "(too little exposure for a quiet record to mean something)"
            )
        duty = formula.duty_days.get(s.unit.duty_level) if s.unit.duty_level is not None else None
        if duty and (s.unit.patrol_days or 0) < formula.min_patrol_share_red * duty:
            reasons.append(
                f"red: patrol {s.unit.patrol_days or 0:g}/{duty:g} days "
                f"< {formula.min_patrol_share_red:.0%}"
            )
        if any(g.source in ("evaluator", "covert") and g.unresolved for g in s.unit.groups):
            reasons.append("red: an evaluator or covert finding is unresolved")
        s.eligible_red = not reasons
        s.why_not += reasons
    ordered = sorted(scores, key=_sort_key)
    for i, s in enumerate(ordered, 1):
        s.rank = i
    if findings < formula.min_district_findings:
        need = formula.min_district_findings
        lg.insufficient = (
            f"数据不足：本周只有 {findings} 条有效发现，至少需要 {need} 条，本周不评红黑旗"
            f" / too little data: {findings} findings this week, at least {need} needed; no flags"
        )
    else:
        significant = rule.mode == "significant"
        black = [
            s
            for s in reversed(ordered)
            if s.eligible_black and (not significant or s.p_high < lg.alpha_per_unit)
        ][: rule.black]
        for s in black:
            s.flag = "black"
        red = [
            s
            for s in ordered
            if s.flag is None
            and s.eligible_red
            and (not significant or s.p_low < lg.alpha_per_unit)
        ][: rule.red]
        for s in red:
            s.flag = "red"
    prev = previous or {}
    for s in scores:
        before = prev.get((kind, s.unit.id))
        if before:
            s.prev_rank = before.get("rank")
        if s.flag is None:
            continue
        same = before is not None and before.get("flag") == s.flag
        s.streak = 1 + (int(before.get("streak", 0)) if before is not None and same else 0)
        if s.streak >= 2:
            s.card = "yellow_card" if s.flag == "black" else "commendation"
    return lg


def score_week(
    formula: Formula,
    units: Sequence[Unit],
    district_names: Mapping[str, str] | None = None,
    previous: Mapping[tuple[str, str], Mapping[str, Any]] | None = None,
) -> list[League]:
    """Score, rank and flag every league (kind × district) of a week."""
    by_league: dict[tuple[str, str], list[UnitScore]] = defaultdict(list)
    for u in units:
        by_league[(u.kind, u.district)].append(score_unit(formula, u))
    names = district_names or {}
    return [
        rank_league(formula, kind, d, names.get(d, d), scores, previous)
        for (kind, d), scores in sorted(by_league.items(), key=lambda kv: _league_order(kv[0]))
    ]


def _league_order(key: tuple[str, str]) -> tuple[int, str]:
    kinds = ("segment", "partner_unit", "merchant")
    return (kinds.index(key[0]) if key[0] in kinds else len(kinds), key[1])


def score_to_dict(s: UnitScore) -> dict[str, Any]:
    """The frozen form of one score, with its drill-down."""
    out: dict[str, Any] = {
        "id": s.unit.id,
        "name": s.unit.name,
        "rank": s.rank,
        "flag": s.flag,
        "card": s.card,
        "streak": s.streak,
        "prev_rank": s.prev_rank,
        "shrunk_rate": s.shrunk,
        "index": s.index,
        "rate": s.rate,
        "points": s.points,
        "exposure_km": s.exposure_km,
        "findings": s.findings,
        "expected": s.expected,
        "third_party": s.third_party,
        "p_high": s.p_high,
        "p_low": s.p_low,
        "eligible": {"black": s.eligible_black, "red": s.eligible_red, "why_not": s.why_not},
        # flagged: every (severity, source) group behind each category; the others keep
        # the per-category sums (a 250,000-segment week stays a few hundred bytes a unit)
        "deductions": [_spelled_out(d) if s.flag else _summary(d) for d in s.deductions],
        "measures": s.measures,
    }
    if s.unit.findings:
        out["drilldown"] = drilldown_to_dicts(s.unit.findings, s.facts)
    return out


def drilldown_to_dicts(
    findings: Iterable[Finding], facts: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """A flagged unit's findings one by one (by id), with the facts that identify each."""
    return [
        {
            "id": f.id,
            "category": f.category,
            "severity": f.severity,
            "source": f.source,
            "on_time": f.on_time,
            "overdue": f.overdue,
            "reopened": f.reopened,
            "unresolved": f.unresolved,
            "recurrence": f.recurrence,
            **facts.get(f.id, {}),
        }
        for f in sorted(findings, key=lambda f: f.id)
    ]


def _spelled_out(d: dict[str, Any]) -> dict[str, Any]:
    return {
        **d,
        "groups": [
            {"severity": sev, "source": src, "count": n, "points_each": round(w, PRECISION)}
            for sev, src, n, w in d["groups"]
        ],
    }


def _summary(d: dict[str, Any]) -> dict[str, Any]:
    return {
        "category": d["category"],
        "count": sum(g[2] for g in d["groups"]),
        "raw": d["raw"],
        "points": d["points"],
        "cap": d["cap"],
    }


def league_to_dict(lg: League) -> dict[str, Any]:
    return {
        "kind": lg.kind,
        "district": lg.district,
        "district_name": lg.district_name,
        "mode": lg.mode,
        "red_quota": lg.red_quota,
        "black_quota": lg.black_quota,
        "units": len(lg.scores),
        "findings": sum(s.findings for s in lg.scores),
        "rate": lg.rate,
        "count_rate": lg.count_rate,
        "prior_km": lg.prior_km,
        "alpha_per_unit": lg.alpha_per_unit,
        "insufficient": lg.insufficient,
        "red": [s.unit.id for s in sorted(lg.red, key=lambda s: s.rank)],
        "black": [s.unit.id for s in sorted(lg.black, key=lambda s: -s.rank)],
        "scores": [score_to_dict(s) for s in sorted(lg.scores, key=lambda s: s.rank)],
    }


__all__ = [
    "SOURCES",
    "Finding",
    "FindingGroup",
    "League",
    "Unit",
    "UnitScore",
    "drilldown_to_dicts",
    "group_findings",
    "league_to_dict",
    "poisson_cdf",
    "poisson_sf",
    "poisson_tails",
    "poisson_tails_many",
    "rank_league",
    "score_to_dict",
    "score_unit",
    "score_week",
]
