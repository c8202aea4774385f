"""A week's units and finding groups as columns, scored with NumPy: the same content as
score.py's per-unit path, bit for bit.

score.py scores one unit at a time (Unit → UnitScore → dict): the reference, and what the
tests and the simulation call. A city of 250,000 segments makes that millions of Python
objects. Here the same numbers are arrays — one row per unit, one per (unit, category,
severity, source) group in score_unit's order — and `score_table` gives the same league
dicts (`league_to_dict`) without a Python object per group or per score:

* every float is computed with the same IEEE operations in the same order as score.py
  (NumPy's element-wise +, −, ×, ÷ round exactly as Python's floats do; a sum over a
  unit's groups is one array addition per position, in the groups' order; sums over a
  league are Python's own sum());
* rounding is Python's round(), exactly (`round_exact`; NumPy's round multiplies by
  10^digits and can differ in the last bit);
* Poisson tails: `poisson_tails_many`, step for step poisson_tails;
* per-unit Python remains only where the content is written, and for flagged units
  (their groups spelled out, their drill-downs).

No database or web here. tests/test_ranking_score.py checks both paths give the same
content on randomized weeks; tests/test_ranking_jobs.py the same canonical JSON from the
database.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .formula import SOURCES, Formula
from .score import (
    PRECISION,
    Finding,
    FindingGroup,
    Unit,
    _league_order,
    drilldown_to_dicts,
    poisson_tails_many,
)

SOURCE_ORDER: tuple[str, ...] = tuple(sorted(SOURCES))  # codes in score_unit's sort order
SELF = SOURCE_ORDER.index("self")
THIRD_PARTY = (SOURCE_ORDER.index("evaluator"), SOURCE_ORDER.index("covert"))
_INT = np.int64
_GROUP_FIELDS = ("n", "on_time", "overdue", "reopened", "unresolved", "recurrence")


def round_exact(values: np.ndarray, digits: int) -> np.ndarray:
    """Python's round(x, digits) of each value, exactly.

    round(x, d) is the double nearest to the integer nearest to x·10^d, divided by 10^d
    (CPython rounds the exact binary value to d decimals, then reads that decimal back).
    Here that integer comes from the float product x·10^d wherever the product's error
    (below |x·10^d|·2^−53) cannot move it across a half; a multiple of 2^−d is kept as it
    is (it has at most d decimals); whatever is left — near-halves, negative or huge
    values — goes through round() itself.
    """
    values = np.asarray(values, dtype=np.float64)
    scale = 10.0**digits  # exact for digits ≤ 22
    with np.errstate(over="ignore", invalid="ignore"):  # huge values: round() below
        scaled = values * scale
        whole = np.floor(scaled)
        frac = scaled - whole  # exact (Sterbenz)
        r = whole + (frac > 0.5)
        out = r / scale  # the nearest double to r·10^−d: IEEE division rounds correctly
        safe = (values > 0) & (scaled < 2.0**52) & (np.abs(frac - 0.5) > scaled * 2.0**-50)
        binary = values * float(2**digits)  # exact: a power of two
        kept = np.floor(binary) == binary
    out = np.where(kept, values, out)
    todo = np.flatnonzero(~(safe | kept))
    if todo.size:
        out[todo] = [round(v, digits) for v in values[todo].tolist()]
    return out


@dataclass
class WeekTable:
    """A week's units (U rows) and their finding groups (G rows) as columns.

    Groups are in score_unit's order: by unit, then category, severity and source (as
    `sorted(unit.groups)` orders them); `categories` is sorted, `g_cat` indexes it and
    `g_src` indexes SOURCE_ORDER, so the codes sort as the strings do.
    """

    kinds: list[str]
    ids: list[str]
    names: list[str]
    districts: list[str]
    exposure: np.ndarray  # km-equivalents, rounded as score_unit rounds them
    walked: list[Any]  # unit.patrol_days or 0.0
    duty_levels: list[int | None]
    categories: list[str]
    g_unit: np.ndarray
    g_cat: np.ndarray
    g_sev: np.ndarray
    g_src: np.ndarray
    g_n: np.ndarray
    g_on_time: np.ndarray
    g_overdue: np.ndarray
    g_reopened: np.ndarray
    g_unresolved: np.ndarray
    g_recurrence: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def groups_of(self, i: int) -> tuple[FindingGroup, ...]:
        """Unit i's groups as score.py has them (in their order)."""
        lo, hi = np.searchsorted(self.g_unit, [i, i + 1])
        cols = [
            a[lo:hi].tolist()
            for a in (
                self.g_cat,
                self.g_sev,
                self.g_src,
                self.g_n,
                self.g_on_time,
                self.g_overdue,
                self.g_reopened,
                self.g_unresolved,
                self.g_recurrence,
            )
        ]
        return tuple(
            FindingGroup(self.categories[c], s, SOURCE_ORDER[src], *rest)
            for c, s, src, *rest in zip(*cols, strict=True)
        )

    @staticmethod
    def concat(tables: Sequence[WeekTable]) -> WeekTable:
        """One table of several (units in the order given)."""
        cats = sorted({c for t in tables for c in t.categories})
        pos = {c: i for i, c in enumerate(cats)}
        offsets = np.cumsum([0] + [len(t) for t in tables])
        out: dict[str, Any] = {
            "kinds": [x for t in tables for x in t.kinds],
            "ids": [x for t in tables for x in t.ids],
            "names": [x for t in tables for x in t.names],
            "districts": [x for t in tables for x in t.districts],
            "exposure": _cat([t.exposure for t in tables], np.float64),
            "walked": [x for t in tables for x in t.walked],
            "duty_levels": [x for t in tables for x in t.duty_levels],
            "categories": cats,
            "g_unit": _cat([t.g_unit + off for t, off in zip(tables, offsets, strict=False)]),
            # sorted categories map to sorted categories: each table keeps its order
            "g_cat": _cat(
                [
                    np.array([pos[c] for c in t.categories], dtype=_INT)[t.g_cat]
                    if len(t.categories)
                    else t.g_cat
                    for t in tables
                ]
            ),
        }
        for name in ("g_sev", "g_src") + tuple(f"g_{f}" for f in _GROUP_FIELDS):
            out[name] = _cat([getattr(t, name) for t in tables])
        return WeekTable(**out)


def _cat(arrays: Sequence[np.ndarray], dtype: Any = _INT) -> np.ndarray:
    return np.concatenate([np.asarray(a, dtype=dtype) for a in arrays]).astype(dtype, copy=False)


def unit_exposure(formula: Formula, parts: Iterable[tuple[float, str]]) -> float:
    """A unit's exposure exactly as score_unit computes it."""
    return round(sum(formula.exposure_km(ln, rc) for ln, rc in parts), PRECISION)


def segment_exposure(formula: Formula, lengths: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """unit_exposure for single-part units, as arrays: max(length, minimum) / 1000 × the
    road class's factor (the same operations, in the same order)."""
    lengths = np.asarray(lengths, dtype=np.float64)
    factors = {c: formula.class_factor.get(c, 1.0) for c in set(classes)}
    factor = np.array([factors[c] for c in classes], dtype=np.float64)
    minimum = formula.min_length_m
    longer = np.where(minimum > lengths, minimum, lengths)  # max(length, minimum)
    return round_exact(longer / 1000.0 * factor, PRECISION)


def table_from_units(formula: Formula, units: Sequence[Unit]) -> WeekTable:
    """The columns of some Units (partner units and merchants; tests)."""
    rows: list[tuple[int, FindingGroup]] = []
    for i, u in enumerate(units):
        for g in sorted(u.groups):
            if g.source not in SOURCE_ORDER:
                raise ValueError(f"unknown source {g.source!r} in {u.id}")
            rows.append((i, g))
    cats = sorted({g.category for _, g in rows})
    pos = {c: i for i, c in enumerate(cats)}

    def col(values: Iterable[int]) -> np.ndarray:
        return np.fromiter(values, dtype=_INT, count=len(rows))

    return WeekTable(
        kinds=[u.kind for u in units],
        ids=[u.id for u in units],
        names=[u.name for u in units],
        districts=[u.district for u in units],
        exposure=np.array([unit_exposure(formula, u.parts) for u in units], dtype=np.float64),
        walked=[u.patrol_days or 0.0 for u in units],
        duty_levels=[u.duty_level for u in units],
        categories=cats,
        g_unit=col(i for i, _ in rows),
        g_cat=col(pos[g.category] for _, g in rows),
        g_sev=col(g.severity for _, g in rows),
        g_src=col(SOURCE_ORDER.index(g.source) for _, g in rows),
        g_n=col(g.count for _, g in rows),
        g_on_time=col(g.on_time for _, g in rows),
        g_overdue=col(g.overdue for _, g in rows),
        g_reopened=col(g.reopened for _, g in rows),
        g_unresolved=col(g.unresolved for _, g in rows),
        g_recurrence=col(g.recurrence for _, g in rows),
    )


def runs(keys: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of equal consecutive keys: (run of each row, first row of each run, position
    of each row within its run)."""
    n = len(keys[0])
    new = np.ones(n, dtype=bool)
    if n > 1:
        change = np.zeros(n - 1, dtype=bool)
        for k in keys:
            change |= k[1:] != k[:-1]
        new[1:] = change
    starts = np.flatnonzero(new)
    run = np.cumsum(new) - 1
    pos = np.arange(n) - starts[run]
    return run, starts, pos


def _ordered_sum(out: np.ndarray, target: np.ndarray, pos: np.ndarray, values: np.ndarray) -> None:
    """out[target[i]] += values[i], one position at a time: each out element adds its
    values in row order, as a Python loop would (runs have distinct targets per position)."""
    if not len(pos):
        return
    for k in range(int(pos.max()) + 1):
        m = pos == k
        out[target[m]] += values[m]


@dataclass
class _League:
    kind: str
    district: str
    district_name: str
    mode: str
    red_quota: int
    black_quota: int
    members: np.ndarray  # unit indices by rank
    findings: int
    rate: float
    count_rate: float
    alpha_per_unit: float
    insufficient: str | None
    red: list[int] = field(default_factory=list)  # by rank
    black: list[int] = field(default_factory=list)  # worst first


@dataclass
class ScoredTable:
    """score_week's results as columns; `content` writes the league dicts."""

    formula: Formula
    table: WeekTable
    leagues: list[_League]
    weights: np.ndarray  # per group
    run_unit: np.ndarray  # per (unit, category) run
    run_start: np.ndarray
    raw: np.ndarray
    capped: np.ndarray
    run_count: np.ndarray
    run_cap: np.ndarray
    unit_runs: np.ndarray  # first run of each unit (U + 1 bounds)
    measures: dict[str, np.ndarray]
    points: np.ndarray
    findings: np.ndarray
    third_party: np.ndarray
    duty: list[float | None]
    rank: np.ndarray
    flag: list[str | None]
    streak: np.ndarray
    card: list[str | None]
    prev_rank: list[Any]
    rate: np.ndarray
    shrunk: np.ndarray
    index: np.ndarray
    expected: np.ndarray
    mu: np.ndarray
    p_high: np.ndarray
    p_low: np.ndarray
    eligible_black: np.ndarray
    red_reasons: np.ndarray  # bit 1: too little exposure, 2: patrol, 4: third-party open
    open_third: np.ndarray  # an evaluator's or covert finding is unresolved

    def flagged(self) -> dict[str, list[int]]:
        """Flagged units by kind (league order, then rank)."""
        out: dict[str, list[int]] = defaultdict(list)
        for lg in self.leagues:
            out[lg.kind] += sorted(lg.red + lg.black, key=lambda i: int(self.rank[i]))
        return dict(out)

    def unit(self, i: int) -> Unit:
        """Unit i as score.py sees it (with its groups): for a flagged unit's drill-down."""
        t = self.table
        return Unit(
            kind=t.kinds[i],
            id=t.ids[i],
            name=t.names[i],
            district=t.districts[i],
            parts=(),
            groups=self.table.groups_of(i),
            patrol_days=t.walked[i],
            duty_level=t.duty_levels[i],
        )

    def content(
        self,
        drilldowns: Mapping[int, tuple[Sequence[Finding], Mapping[str, Mapping[str, Any]]]]
        | None = None,
    ) -> list[dict[str, Any]]:
        """league_to_dict of every league; `drilldowns`: unit → (findings, facts by id)."""
        return [self._league_dict(lg, drilldowns or {}) for lg in self.leagues]

    def _league_dict(
        self,
        lg: _League,
        drilldowns: Mapping[int, tuple[Sequence[Finding], Mapping[str, Mapping[str, Any]]]],
    ) -> dict[str, Any]:
        t, f = self.table, self.formula
        members = lg.members
        m = members.tolist()
        ids = [t.ids[i] for i in m]
        flags = [self.flag[i] for i in m]
        summaries = self._summaries(members)
        ml = self.measures
        cols = zip(
            m,
            ids,
            [t.names[i] for i in m],
            self.rank[members].tolist(),
            flags,
            [self.card[i] for i in m],
            self.streak[members].tolist(),
            [self.prev_rank[i] for i in m],
            self.shrunk[members].tolist(),
            self.index[members].tolist(),
            self.rate[members].tolist(),
            self.points[members].tolist(),
            t.exposure[members].tolist(),
            self.findings[members].tolist(),
            self.expected[members].tolist(),
            self.third_party[members].tolist(),
            self.p_high[members].tolist(),
            self.p_low[members].tolist(),
            self.eligible_black[members].tolist(),
            self.red_reasons[members].tolist(),
            self.mu[members].tolist(),
            summaries,
            ml["overdue"][members].tolist(),
            ml["overdue_pts"][members].tolist(),
            ml["reopened"][members].tolist(),
            ml["reopened_pts"][members].tolist(),
            ml["unresolved"][members].tolist(),
            ml["unresolved_pts"][members].tolist(),
            ml["recurrence"][members].tolist(),
            ml["recurrence_pts"][members].tolist(),
            ml["own"][members].tolist(),
            ml["own_pts"][members].tolist(),
            ml["missed"][members].tolist(),
            ml["missed_pts"][members].tolist(),
            strict=True,
        )
        black_min = f.min_findings_black
        red_exposure = (
            "red: expected {:.2f} findings < "
            f"{f.min_expected_red:g} (too little exposure for a quiet record to mean something)"
        )
        share = f.min_patrol_share_red
        scores = []
        for (
            i,
            uid,
            name,
            rank,
            flag,
            card,
            streak,
            prev_rank,
            shrunk,
            index,
            rate,
            points,
            exposure,
            findings,
            expected,
            third,
            p_high,
            p_low,
            eligible_black,
            reasons,
            mu,
            deductions,
            od,
            od_pts,
            ro,
            ro_pts,
            un,
            un_pts,
            rc,
            rc_pts,
            own,
            own_pts,
            missed,
            missed_pts,
        ) in cols:
            why_not = [] if eligible_black else [f"black: {findings} findings < {black_min}"]
            duty = self.duty[i]
            if reasons:
                if reasons & 1:
                    why_not.append(red_exposure.format(mu))
                if reasons & 2:
                    walked = t.walked[i]
                    why_not.append(f"red: patrol {walked or 0:g}/{duty:g} days < {share:.0%}")
                if reasons & 4:
                    why_not.append("red: an evaluator or covert finding is unresolved")
            measures = []
            if od:
                measures.append({"measure": "overdue", "count": od, "points": od_pts})
            if ro:
                measures.append({"measure": "reopened", "count": ro, "points": ro_pts})
            if un:
                measures.append({"measure": "unresolved", "count": un, "points": un_pts})
            if rc:
                measures.append({"measure": "recurrence", "count": rc, "points": rc_pts})
            if own:
                measures.append({"measure": "own_fix_credit", "count": own, "points": -own_pts})
            if duty:
                walked = t.walked[i]
                if missed:
                    measures.append(
                        {
                            "measure": "patrol_missed_days",
                            "count": missed,
                            "points": missed_pts,
                            "duty_days": duty,
                            "walked_days": walked,
                        }
                    )
                else:
                    measures.append(
                        {
                            "measure": "patrol_missed_days",
                            "count": 0,
                            "points": 0.0,
                            "duty_days": duty,
                            "walked_days": walked,
                        }
                    )
            if flag:
                deductions = self._spelled_out(i)
            out = {
                "id": uid,
                "name": name,
                "rank": rank,
                "flag": flag,
                "card": card,
                "streak": streak,
                "prev_rank": prev_rank,
                "shrunk_rate": shrunk,
                "index": index,
                "rate": rate,
                "points": points,
                "exposure_km": exposure,
                "findings": findings,
                "expected": expected,
                "third_party": third,
                "p_high": p_high,
                "p_low": p_low,
                "eligible": {
                    "black": eligible_black,
                    "red": not reasons,
                    "why_not": why_not,
                },
                "deductions": deductions,
                "measures": measures,
            }
            found = drilldowns.get(i)
            if found and found[0]:
                out["drilldown"] = drilldown_to_dicts(found[0], found[1])
            scores.append(out)
        return {
            "kind": lg.kind,
            "district": lg.district,
            "district_name": lg.district_name,
            "mode": lg.mode,
            "red_quota": lg.red_quota,
            "black_quota": lg.black_quota,
            "units": len(m),
            "findings": lg.findings,
            "rate": lg.rate,
            "count_rate": lg.count_rate,
            "prior_km": f.prior_km,
            "alpha_per_unit": lg.alpha_per_unit,
            "insufficient": lg.insufficient,
            "red": [t.ids[i] for i in lg.red],
            "black": [t.ids[i] for i in lg.black],
            "scores": scores,
        }

    def _summaries(self, members: np.ndarray) -> list[list[dict[str, Any]]]:
        """Each member's per-category sums (score.py's `_summary`), in one pass over runs."""
        lo = self.unit_runs[members]
        hi = self.unit_runs[members + 1]
        lengths = hi - lo
        # the runs of every member, in order: lo[j], lo[j] + 1, …, hi[j] − 1 for each j
        before = np.cumsum(lengths) - lengths
        runs = np.arange(int(lengths.sum())) - np.repeat(before - lo, lengths)
        cats = self.table.categories
        flat = [
            {"category": cats[c], "count": n, "raw": raw, "points": pts, "cap": cap}
            for c, n, raw, pts, cap in zip(
                self.table.g_cat[self.run_start[runs]].tolist(),
                self.run_count[runs].tolist(),
                self.raw[runs].tolist(),
                self.capped[runs].tolist(),
                self.run_cap[runs].tolist(),
                strict=True,
            )
        ]
        bounds = [0, *np.cumsum(lengths).tolist()]
        return [flat[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    def _spelled_out(self, i: int) -> list[dict[str, Any]]:
        """A flagged unit's deductions with every (severity, source) group behind them."""
        t = self.table
        out = []
        ends = [*self.run_start.tolist(), len(t.g_unit)]
        for r in range(int(self.unit_runs[i]), int(self.unit_runs[i + 1])):
            lo, hi = ends[r], ends[r + 1]
            out.append(
                {
                    "category": t.categories[int(t.g_cat[lo])],
                    "raw": float(self.raw[r]),
                    "points": float(self.capped[r]),
                    "cap": float(self.run_cap[r]),
                    "groups": [
                        {
                            "severity": sev,
                            "source": SOURCE_ORDER[src],
                            "count": n,
                            "points_each": round(w, PRECISION),
                        }
                        for sev, src, n, w in zip(
                            t.g_sev[lo:hi].tolist(),
                            t.g_src[lo:hi].tolist(),
                            t.g_n[lo:hi].tolist(),
                            self.weights[lo:hi].tolist(),
                            strict=True,
                        )
                    ],
                }
            )
        return out


def _unit_sum(t: WeekTable, values: np.ndarray) -> np.ndarray:
    """Per-unit sums of whole numbers (exact below 2^53)."""
    return np.bincount(t.g_unit, weights=values, minlength=len(t)).astype(_INT)


def score_table(
    formula: Formula,
    t: WeekTable,
    district_names: Mapping[str, str] | None = None,
    previous: Mapping[tuple[str, str], Mapping[str, Any]] | None = None,
) -> ScoredTable:
    """score_week over columns (see the module's docstring)."""
    n_units = len(t)
    f = formula
    # -- per group: the weight of one finding (Formula.finding_weight)
    low = int(t.g_sev.min()) if len(t.g_sev) else 0
    present = np.bincount(t.g_sev - low) if len(t.g_sev) else np.zeros(0, dtype=_INT)
    sevs = (np.flatnonzero(present) + low).tolist()  # the severities there are, in order
    lookup = np.cumsum(present > 0) - 1
    sev_pos = lookup[t.g_sev - low] if len(t.g_sev) else t.g_sev
    wtab = np.zeros((max(1, len(t.categories)), max(1, len(sevs)), len(SOURCE_ORDER)))
    for ci, cat in enumerate(t.categories):
        for si, sev in enumerate(sevs):
            for k, src in enumerate(SOURCE_ORDER):
                wtab[ci, si, k] = f.finding_weight(cat, sev, src)
    weights = wtab[t.g_cat, sev_pos, t.g_src] if len(t.g_unit) else np.zeros(0)
    # -- per (unit, category): raw = Σ weight × count in the groups' order, then the cap
    run, run_start, pos = runs([t.g_unit, t.g_cat])
    raw = np.zeros(len(run_start))
    _ordered_sum(raw, run, pos, weights * t.g_n)
    raw = round_exact(raw, PRECISION)
    caps = np.array([f.rule(c).cap for c in t.categories] or [0.0], dtype=np.float64)
    run_cat = t.g_cat[run_start]
    run_cap = caps[run_cat] if len(run_start) else np.zeros(0)
    capped = np.where(run_cap < raw, run_cap, raw)  # min(raw, cap)
    run_count = np.add.reduceat(t.g_n, run_start) if len(run_start) else np.zeros(0, dtype=_INT)
    run_unit = t.g_unit[run_start]
    unit_runs = np.searchsorted(run_unit, np.arange(n_units + 1))
    # -- per unit: the capped categories in order, then the measures (score_unit's order)
    _, _, run_pos = runs([run_unit]) if len(run_unit) else (None, None, np.zeros(0))
    total = np.zeros(n_units)
    _ordered_sum(total, run_unit, run_pos, capped)
    findings = _unit_sum(t, t.g_n)
    is_self = t.g_src == SELF
    third = np.isin(t.g_src, THIRD_PARTY)
    measures: dict[str, np.ndarray] = {
        "overdue": _unit_sum(t, t.g_overdue),
        "reopened": _unit_sum(t, t.g_reopened),
        "unresolved": _unit_sum(t, t.g_unresolved),
        "recurrence": _unit_sum(t, t.g_recurrence),
        "own": _unit_sum(t, np.where(is_self, t.g_on_time, 0)),
    }
    for name, each in (
        ("overdue", f.overdue),
        ("reopened", f.reopened),
        ("unresolved", f.unresolved),
        ("recurrence", f.recurrence),
    ):
        pts = round_exact(measures[name] * each, PRECISION)
        measures[f"{name}_pts"] = pts
        total = total + pts
    own_pts = round_exact(measures["own"] * f.own_fix_credit, PRECISION)
    measures["own_pts"] = own_pts
    total = total - own_pts
    duty: list[float | None] = [
        f.duty_days.get(lv) if lv is not None else None for lv in t.duty_levels
    ]
    duty_arr = np.array([d or 0.0 for d in duty], dtype=np.float64)
    walked = np.array([w or 0.0 for w in t.walked], dtype=np.float64)
    has_duty = duty_arr != 0.0
    missed = duty_arr - walked
    missed = np.where(missed > 0.0, missed, 0.0)  # max(0.0, duty − walked)
    missed_pts = missed * f.missed_day
    missed_pts = np.where(f.patrol_cap < missed_pts, f.patrol_cap, missed_pts)  # min
    missed_pts = round_exact(missed_pts, PRECISION)
    measures["missed"] = np.where(has_duty, missed, 0.0)
    measures["missed_pts"] = missed_pts
    total = np.where(has_duty, total + missed_pts, total)
    points = round_exact(np.where(total > 0.0, total, 0.0), PRECISION)
    third_party = _unit_sum(t, np.where(third, t.g_n, 0))
    open_third = _unit_sum(t, np.where(third, t.g_unresolved, 0)) != 0  # any(...) of ≥ 0

    s = ScoredTable(
        formula=f,
        table=t,
        leagues=[],
        weights=weights,
        run_unit=run_unit,
        run_start=run_start,
        raw=raw,
        capped=capped,
        run_count=run_count,
        run_cap=run_cap,
        unit_runs=unit_runs,
        measures=measures,
        points=points,
        findings=findings,
        third_party=third_party,
        duty=duty,
        rank=np.zeros(n_units, dtype=_INT),
        flag=[None] * n_units,
        streak=np.zeros(n_units, dtype=_INT),
        card=[None] * n_units,
        prev_rank=[None] * n_units,
        rate=np.zeros(n_units),
        shrunk=np.zeros(n_units),
        index=np.zeros(n_units),
        expected=np.zeros(n_units),
        mu=np.zeros(n_units),
        p_high=np.ones(n_units),
        p_low=np.ones(n_units),
        eligible_black=np.zeros(n_units, dtype=bool),
        red_reasons=np.zeros(n_units, dtype=_INT),
        open_third=open_third,
    )
    by_league: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, key in enumerate(zip(t.kinds, t.districts, strict=True)):
        by_league[key].append(i)
    names = district_names or {}
    prev = previous or {}
    for key in sorted(by_league, key=_league_order):
        kind, district = key
        s.leagues.append(
            _rank_league(s, kind, district, names.get(district, district), by_league[key], prev)
        )
    return s


def _rank_league(
    s: ScoredTable,
    kind: str,
    district: str,
    district_name: str,
    members: list[int],
    prev: Mapping[tuple[str, str], Mapping[str, Any]],
) -> _League:
    """rank_league over columns."""
    f, t = s.formula, s.table
    rule = f.flag_rule(kind, district)
    ids = t.ids
    members = sorted(members, key=ids.__getitem__)  # a fixed order for every sum below
    ix = np.array(members, dtype=_INT)
    e = t.exposure[ix]
    pts = s.points[ix]
    nf = s.findings[ix]
    total_e = sum(e.tolist())
    total_y = sum(pts.tolist())
    findings = sum(nf.tolist())
    rate = round(total_y / total_e, PRECISION) if total_e > 0 else 0.0
    count_rate = round(findings / total_e, PRECISION) if total_e > 0 else 0.0
    alpha = f.alpha / max(1, len(members))
    prior = f.prior_km
    unit_rate = np.zeros(len(ix))
    np.divide(pts, e, out=unit_rate, where=e > 0)
    s.rate[ix] = np.where(e > 0, round_exact(unit_rate, PRECISION), 0.0)
    shrunk = round_exact((pts + prior * rate) / (e + prior), PRECISION)
    s.shrunk[ix] = shrunk
    s.index[ix] = round_exact(shrunk / rate, PRECISION) if rate > 0 else 1.0
    mu = count_rate * e
    s.mu[ix] = mu
    s.expected[ix] = round_exact(mu, PRECISION)
    high, low = poisson_tails_many(nf.tolist(), mu.tolist())
    p_high = np.where(nf != 0, round_exact(high, 12), 1.0)
    p_low = round_exact(low, 12)
    s.p_high[ix] = p_high
    s.p_low[ix] = p_low
    eligible_black = nf >= f.min_findings_black
    s.eligible_black[ix] = eligible_black
    duty = np.array([s.duty[i] or 0.0 for i in members], dtype=np.float64)
    walked = np.array([t.walked[i] or 0 for i in members], dtype=np.float64)
    reasons = np.where(mu < f.min_expected_red, 1, 0)
    reasons |= np.where((duty != 0.0) & (walked < f.min_patrol_share_red * duty), 2, 0)
    reasons |= np.where(s.open_third[ix], 4, 0)
    s.red_reasons[ix] = reasons
    eligible_red = reasons == 0
    # best first: the published tie rule (score._sort_key), the id order breaking ties
    order = np.lexsort((np.arange(len(ix)), -e, nf, s.third_party[ix], shrunk))
    ranked = ix[order]
    s.rank[ranked] = np.arange(1, len(ranked) + 1)
    lg = _League(
        kind=kind,
        district=district,
        district_name=district_name,
        mode=rule.mode,
        red_quota=rule.red,
        black_quota=rule.black,
        members=ranked,
        findings=findings,
        rate=rate,
        count_rate=count_rate,
        alpha_per_unit=alpha,
        insufficient=None,
    )
    if findings < f.min_district_findings:
        need = f.min_district_findings
        lg.insufficient = (
            f"数据不足：本周只有 {findings} 条有效发现，至少需要 {need} 条，本周不评红黑旗"
            f" / too little data: {findings} findings this week, at least {need} needed; no flags"
        )
    else:
        significant = rule.mode == "significant"
        worst = order[::-1]
        ok = eligible_black[worst]
        if significant:
            ok &= p_high[worst] < alpha
        black = worst[ok][: rule.black]
        flagged = np.zeros(len(ix), dtype=bool)
        flagged[black] = True
        ok = eligible_red[order] & ~flagged[order]
        if significant:
            ok &= p_low[order] < alpha
        red = order[ok][: rule.red]
        lg.black = ix[black].tolist()
        lg.red = ix[red].tolist()
        for i in lg.black:
            s.flag[i] = "black"
        for i in lg.red:
            s.flag[i] = "red"
    if prev or lg.red or lg.black:
        for i in members:
            before = prev.get((kind, ids[i]))
            if before:
                s.prev_rank[i] = before.get("rank")
            flag = s.flag[i]
            if flag is None:
                continue
            same = before is not None and before.get("flag") == flag
            streak = 1 + (int(before.get("streak", 0)) if before is not None and same else 0)
            s.streak[i] = streak
            if streak >= 2:
                s.card[i] = "yellow_card" if flag == "black" else "commendation"
    return lg
