"""Ranking formula and pure scoring: refused formula files, the 1,000-week simulation
(issue 6 a), and properties (a2): an unresolved finding never improves a rank, order and
renaming change nothing."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roadwatch.categories import load_categories
from roadwatch.ranking.formula import DEFAULT_FORMULA, FormulaError, load_formula
from roadwatch.ranking.score import (
    Finding,
    FindingGroup,
    Unit,
    group_findings,
    poisson_cdf,
    poisson_sf,
    score_week,
)

CODES = load_categories().codes
FORMULA = load_formula(DEFAULT_FORMULA, CODES)


def _broken(tmp_path: Path, old: str, new: str) -> Path:
    text = DEFAULT_FORMULA.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "broken.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def _line(path: Path, needle: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if needle in line)


@pytest.mark.parametrize(
    ("old", "new", "needle", "reason"),
    [
        ("E0504 = { points = 3.0", "E9999 = { points = 3.0", "E9999", "unknown category"),
        (
            "E0505 = { points = 2.0, cap = 20.0 }",
            "E0505 = { points = 2.0, cap = -5 }",
            "E0505",
            "cap cannot be below 0",
        ),
        ("evaluator = 3.0", 'evaluator = "3x"', 'evaluator = "3x"', "'3x' is not a number"),
        ("covert = 3.0", "covert = 3x", "covert = 3x", "not valid TOML"),
        ("self = 0.5", "self = 0.5\nboss = 2.0", "boss = 2.0", "unknown source"),
        ('mode = "quota" }', 'mode = "lottery" }', 'mode = "lottery"', "'quota' or"),
        ("3 = 4.0", "3 = -4.0", "3 = -4.0", "cannot be below 0"),
    ],
)
def test_bad_formula_is_refused_naming_line_and_reason(
    tmp_path: Path, old: str, new: str, needle: str, reason: str
) -> None:
    path = _broken(tmp_path, old, new)
    with pytest.raises(FormulaError) as info:
        load_formula(path, CODES)
    err = info.value
    assert err.line == _line(path, needle), str(err)
    assert reason in err.reason
    assert str(err).startswith(f"{path}:{err.line}: ")


def test_the_shipped_formula_loads_and_names_its_hash() -> None:
    assert FORMULA.version == "v1"
    assert len(FORMULA.sha256) == 64
    assert FORMULA.flag_rule("segment", "EQ").mode == "quota"
    assert FORMULA.flag_rule("segment", "ZZ").red == 10  # the default


def test_poisson_tails_match_exact_sums() -> None:
    import math

    for mu in (0.3, 2.5, 11.0):
        for k in range(0, 25):
            pmf = [math.exp(-mu) * mu**i / math.factorial(i) for i in range(k + 1)]
            assert poisson_cdf(k, mu) == pytest.approx(sum(pmf), rel=1e-9, abs=1e-14)
            assert poisson_sf(k, mu) == pytest.approx(1 - sum(pmf[:k]), rel=1e-9, abs=1e-14)


def test_a_tiny_lower_tail_keeps_its_digits() -> None:
    """Far fewer findings than expected: P(X ≤ k) is tiny and must keep its digits (it lost
    them all when computed as 1 − P(X ≥ k + 1))."""
    import math

    from roadwatch.ranking.score import poisson_tails

    for mu, k in ((40.0, 0), (40.0, 3), (200.0, 60), (1000.0, 800)):
        exact = math.fsum(
            math.exp(-mu + i * math.log(mu) - math.lgamma(i + 1)) for i in range(k + 1)
        )
        high, low = poisson_tails(k, mu)
        assert 0 < exact < 1e-9
        assert abs(low - exact) <= 1e-9 * exact, (mu, k, low, exact)
        assert abs(high - 1.0) < 1e-9


# -- a. simulation ----------------------------------------------------------------------
CATS = ("E0102", "E0201", "E0504", "E0505", "C0101")
SOURCES = ("evaluator", "public", "self")


def _simulated_week(
    rng: np.random.Generator, lengths: np.ndarray, classes: list[str], rates: np.ndarray
) -> list[Unit]:
    counts = rng.poisson(rates)
    units = []
    for i, k in enumerate(counts):
        groups: dict[tuple[str, int, str], int] = {}
        for c, s, src in zip(
            rng.integers(len(CATS), size=k),
            rng.choice([1, 2, 3], size=k, p=[0.6, 0.3, 0.1]),
            rng.integers(len(SOURCES), size=k),
            strict=True,
        ):
            key = (CATS[c], int(s), SOURCES[src])
            groups[key] = groups.get(key, 0) + 1
        units.append(
            Unit(
                "segment",
                f"S{i:03d}",
                f"路段{i}",
                "D1",
                ((float(lengths[i]), classes[i]),),
                tuple(FindingGroup(*key, n, unresolved=n) for key, n in sorted(groups.items())),
            )
        )
    return units


@pytest.mark.slow
def test_simulation_significant_mode_flags_almost_nothing_under_equal_rates() -> None:
    """1,000 weeks of a 300-segment district at one underlying rate: how often is anything
    flagged at all (the family-wise false-flag rate)? And a segment with 5x the rate?"""
    formula = replace(FORMULA, flags={"default": FORMULA.flag_rule("segment", "JS")})
    assert formula.flag_rule("segment", "D1").mode == "significant"
    rng = np.random.default_rng(20261201)
    n, weeks, worse = 300, 1000, 7
    lengths = rng.uniform(100, 1500, n)
    lengths[worse] = 1500.0
    classes = [str(c) for c in rng.choice(["local", "secondary", "arterial"], n)]
    classes[worse] = "arterial"
    exposure = np.array(
        [formula.exposure_km(float(x), c) for x, c in zip(lengths, classes, strict=False)]
    )
    base = 1.5 * exposure  # findings per week per segment, the same rate per km everywhere
    weeks_flagged = units_flagged = 0
    for _ in range(weeks):
        (lg,) = score_week(formula, _simulated_week(rng, lengths, classes, base))
        flagged = len(lg.red) + len(lg.black)
        weeks_flagged += flagged > 0
        units_flagged += flagged
    hits = {}
    for mult, runs in ((3.0, 200), (5.0, weeks)):
        rates = base.copy()
        rates[worse] *= mult
        hit = 0
        for _ in range(runs):
            (lg,) = score_week(formula, _simulated_week(rng, lengths, classes, rates))
            hit += any(s.unit.id == f"S{worse:03d}" for s in lg.black)
        hits[mult] = hit / runs
    false_week_rate = weeks_flagged / weeks
    print(
        f"\nsimulation over {weeks} weeks x {n} segments, significant mode: "
        f"weeks with any flag under equal rates {false_week_rate:.1%} "
        f"(flags per segment-week {units_flagged / (weeks * n):.4%}); "
        f"a segment with 3x the rate black in {hits[3.0]:.1%} of 200 weeks, 5x in "
        f"{hits[5.0]:.1%} of {weeks}"
    )
    assert false_week_rate <= 0.05
    assert hits[5.0] > 0.5


# -- a2. properties -----------------------------------------------------------------------
finding = st.builds(
    Finding,
    id=st.uuids().map(str),
    category=st.sampled_from(CATS),
    severity=st.integers(1, 3),
    source=st.sampled_from(("evaluator", "covert", "public", "self")),
    on_time=st.booleans(),
    overdue=st.booleans(),
    reopened=st.booleans(),
    unresolved=st.booleans(),
    recurrence=st.booleans(),
)
segment = st.tuples(
    st.floats(50, 3000),
    st.sampled_from(("local", "secondary", "arterial")),
    st.lists(finding, max_size=6),
)


def _units(spec: list[tuple[float, str, list[Finding]]], district: str = "D1") -> list[Unit]:
    return [
        Unit("segment", f"S{i:02d}", f"路{i}", district, ((ln, rc),), group_findings(fs))
        for i, (ln, rc, fs) in enumerate(spec)
    ]


def _ranks(units: list[Unit]) -> dict[str, int]:
    return {s.unit.id: s.rank for lg in score_week(FORMULA, units) for s in lg.scores}


@settings(max_examples=150, deadline=None)
@given(st.lists(segment, min_size=2, max_size=12), st.data())
def test_an_unresolved_finding_never_improves_a_rank(spec, data) -> None:
    i = data.draw(st.integers(0, len(spec) - 1))
    extra = replace(data.draw(finding), unresolved=True, on_time=False)
    before = _ranks(_units(spec))
    ln, rc, fs = spec[i]
    after = _ranks(_units([*spec[:i], (ln, rc, [*fs, extra]), *spec[i + 1 :]]))
    assert after[f"S{i:02d}"] >= before[f"S{i:02d}"]


@settings(max_examples=100, deadline=None)
@given(st.lists(segment, min_size=1, max_size=10), st.randoms(use_true_random=False))
def test_same_events_in_any_order_give_the_same_result(spec, rnd: random.Random) -> None:
    from roadwatch.ranking.score import league_to_dict

    units = _units(spec)
    shuffled = []
    for u in units:
        fs = [f for f in spec[int(u.id[1:])][2]]
        rnd.shuffle(fs)
        groups = list(group_findings(fs))
        rnd.shuffle(groups)
        shuffled.append(replace(u, groups=tuple(groups)))
    rnd.shuffle(shuffled)
    a = [league_to_dict(lg) for lg in score_week(FORMULA, units)]
    b = [league_to_dict(lg) for lg in score_week(FORMULA, shuffled)]
    assert a == b


@settings(max_examples=100, deadline=None)
@given(st.lists(segment, min_size=1, max_size=10))
def test_renaming_districts_and_segments_changes_nothing_but_names(spec) -> None:
    from roadwatch.ranking.score import league_to_dict

    units = _units(spec)
    renamed = [replace(u, name=f"改名{u.name}!") for u in units]
    a = [league_to_dict(lg) for lg in score_week(FORMULA, units, {"D1": "金水区"})]
    b = [league_to_dict(lg) for lg in score_week(FORMULA, renamed, {"D1": "新名字区"})]
    for lg in a + b:
        lg.pop("district_name")
        for s in lg["scores"]:
            s.pop("name")
    assert a == b


# -- the columnar path (columns.py) against the per-unit path -----------------------------
def _odd_formula() -> Any:
    """v1 with numbers that are not exact in binary (0.3, 2.7, …): sums in another order,
    or NumPy's rounding instead of Python's, would differ in the last digits."""
    import hashlib
    import tomllib

    from roadwatch.ranking.formula import parse_formula

    text = DEFAULT_FORMULA.read_text(encoding="utf-8")
    for old, new in (
        ("evaluator = 3.0", "evaluator = 2.7"),
        ("self = 0.5", "self = 0.35"),
        ("2 = 2.0", "2 = 1.7"),
        ("E0505 = { points = 2.0, cap = 20.0 }", "E0505 = { points = 2.3, cap = 9.1 }"),
        ("overdue = 2.0 ", "overdue = 1.3 "),
        ("own_fix_credit = 1.5", "own_fix_credit = 1.15"),
        ("missed_day = 1.0", "missed_day = 0.7"),
        ("prior_km = 1.0", "prior_km = 0.3"),
        ("arterial = 1.5", "arterial = 1.37"),
        (
            'default = { red = 10, black = 1, mode = "significant" }',
            'default = { red = 3, black = 4, mode = "quota" }',
        ),
    ):
        assert old in text, old
        text = text.replace(old, new)
    sha = hashlib.sha256(text.encode()).hexdigest()
    return parse_formula(tomllib.loads(text), text, "odd.toml", sha, CODES)


def _random_units(rng: random.Random, n: int) -> list[Unit]:
    cats = ("E0102", "E0201", "E0505", "C0101", "E0401", "E0999")  # E0999: default rule
    units = []
    for i in range(n):
        groups: dict[tuple[str, int, str], FindingGroup] = {}
        for _ in range(rng.choice([0, 0, 1, 3, 8, 20])):
            key = (rng.choice(cats), rng.choice([1, 2, 3]), rng.choice(SOURCE_NAMES))
            c = rng.randint(1, 9)
            groups[key] = FindingGroup(*key, c, *(rng.randint(0, c) for _ in range(5)))
        level = rng.choice([None, 0, 1, 2, 3])
        parts = tuple(
            (rng.uniform(20, 2000), rng.choice(["local", "arterial", "secondary", "path"]))
            for _ in range(rng.choice([1, 1, 2]))
        )
        units.append(
            Unit(
                rng.choice(["segment"] * 5 + ["partner_unit", "merchant"]),
                f"S{rng.randint(0, 10**6)}-{i}",
                f"路{i}",
                rng.choice(["D1", "EQ", "GC", "JS"]),
                parts,
                tuple(groups.values()),
                patrol_days=float(rng.randint(0, 7)) if level is not None else None,
                duty_level=level,
            )
        )
    return units


SOURCE_NAMES = ("evaluator", "covert", "public", "self")


@pytest.mark.parametrize("odd", [False, True], ids=["v1", "inexact-numbers"])
def test_columns_score_a_week_exactly_as_the_per_unit_path(odd: bool) -> None:
    """score_table (NumPy over columns) against score_week + league_to_dict on 120 random
    weeks: the same content, compared as the canonical JSON that is hashed."""
    import json

    from roadwatch.ranking.columns import score_table, table_from_units
    from roadwatch.ranking.score import league_to_dict

    formula = _odd_formula() if odd else FORMULA
    flags = 0
    for seed in range(120):
        rng = random.Random(seed)
        units = _random_units(rng, rng.choice([1, 5, 40, 300]))
        previous = {
            (u.kind, u.id): {
                "rank": rng.randint(1, 9),
                "flag": rng.choice([None, "red", "black"]),
                "streak": rng.randint(0, 3),
            }
            for u in units
            if rng.random() < 0.5
        }
        names = {"EQ": "二七区"}
        expected = [league_to_dict(lg) for lg in score_week(formula, units, names, previous)]
        got = score_table(formula, table_from_units(formula, units), names, previous).content()
        assert json.dumps(got, sort_keys=True) == json.dumps(expected, sort_keys=True), seed
        flags += sum(len(lg["red"]) + len(lg["black"]) for lg in expected)
    assert flags > 100  # flagged units (their groups spelled out) were compared too


def test_many_poisson_tails_at_once_are_the_same_bits() -> None:
    from roadwatch.ranking.score import poisson_tails, poisson_tails_many

    rng = random.Random(7)
    ks = [0, 0, 1, 3, 5, 0, 800, 60, 2] + [rng.randint(0, 120) for _ in range(3000)]
    mus = [0.0, 2.0, 0.0, 1e-9, 40.0, 40.0, 1000.0, 200.0, 1e6] + [
        rng.choice([rng.uniform(0, 3), rng.uniform(0, 150), rng.expovariate(0.05)])
        for _ in range(3000)
    ]
    high, low = poisson_tails_many(ks, mus)
    for k, mu, h, lo in zip(ks, mus, high.tolist(), low.tolist(), strict=True):
        assert (h, lo) == poisson_tails(k, mu), (k, mu)


def test_columns_round_as_python_rounds() -> None:
    from roadwatch.ranking.columns import round_exact

    rng = np.random.default_rng(3)
    values = np.concatenate(
        [
            rng.uniform(0, 100, 20_000),
            rng.integers(0, 10**6, 5_000) / 512,  # exact already
            rng.integers(0, 10**6, 5_000) / 10**9 + 5e-10,  # halfway in decimal
            rng.integers(0, 10**6, 5_000) / 10**12 + 5e-13,
            10.0 ** rng.uniform(-14, 9, 20_000),
            -rng.uniform(0, 1e-8, 1_000),
            np.array([0.0, -0.0, 1e-12, 2.5e-10, 123456.0000000005, 1e300, 2.0**53, -3.5]),
        ]
    )
    for digits in (9, 12):
        got = round_exact(values, digits).tolist()
        assert got == [round(v, digits) for v in values.tolist()]
