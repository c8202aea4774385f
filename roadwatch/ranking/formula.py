"""The versioned ranking formula (config/ranking/vN.toml), validated when it is loaded.

Pure: reads a TOML file, imports nothing of the database or the web. The file is checked
by the pydantic model `FormulaModel`; a mistake is refused with a `FormulaError` naming
the file, the line, the field and the reason (roadwatch.configfile), so an operator can fix it
and the schedule can keep using the last good version meanwhile.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainValidator,
    ValidationInfo,
)

from ..configfile import ConfigFileError, ConfigProblem, read_toml, validate
from ..settings import CONFIG_DIR

FORMULA_DIR = CONFIG_DIR / "ranking"
DEFAULT_FORMULA = FORMULA_DIR / "v1.toml"
SOURCES = ("evaluator", "covert", "public", "self")
MODES = ("quota", "significant")
LEAGUE_KINDS = ("segment", "partner_unit", "merchant")
_CODE = re.compile(r"^[EC]\d{4}$")


class FormulaError(ConfigFileError):
    """A formula file that cannot be used; str() is `file:line: field: reason`."""


@dataclass(frozen=True, slots=True)
class CategoryRule:
    points: float
    cap: float


@dataclass(frozen=True, slots=True)
class FlagRule:
    red: int
    black: int
    mode: str


@dataclass(frozen=True)
class Formula:
    version: str
    description: str
    sha256: str  # of the file's bytes: a ranking names exactly the formula it used
    evaluator_kinds: tuple[str, ...]
    covert_kinds: tuple[str, ...]
    weights: Mapping[str, float]
    severity: Mapping[int, float]
    default_category: CategoryRule
    categories: Mapping[str, CategoryRule]
    overdue: float
    reopened: float
    unresolved: float
    recurrence: float
    recurrence_days: int
    own_fix_credit: float
    duty_days: Mapping[int, float]
    missed_day: float
    patrol_cap: float
    min_length_m: float
    class_factor: Mapping[str, float]
    prior_km: float
    alpha: float
    min_findings_black: int
    min_expected_red: float
    min_patrol_share_red: float
    min_district_findings: int
    default_flags: FlagRule
    flags: Mapping[str, FlagRule] = field(default_factory=dict)

    def finding_weight(self, category: str, severity: int, source: str) -> float:
        """What one finding weighs: its category's points × severity factor × source weight.

        The one definition, used by the scoring (score.py) and its columnar twin (columns.py).
        """
        return (
            self.rule(category).points
            * self.severity.get(severity, 1.0)
            * self.weights.get(source, 1.0)
        )

    def rule(self, category: str) -> CategoryRule:
        return self.categories.get(category, self.default_category)

    def flag_rule(self, kind: str, district: str) -> FlagRule:
        """Segments: the district's entry, else `default`; partner units and merchants: the
        entry of their kind (one league per district each), else `default`."""
        if kind == "segment":
            return self.flags.get(district, self.default_flags)
        return self.flags.get(kind, self.default_flags)

    def exposure_km(self, length_m: float, road_class: str) -> float:
        return max(length_m, self.min_length_m) / 1000.0 * self.class_factor.get(road_class, 1.0)

    @property
    def tie_rule(self) -> str:
        return TIE_RULE


TIE_RULE = (
    "同分（收缩后扣分率相同）时依次比较：第三方测评与暗访发现少者在前；发现总数少者在前；"
    "暴露量（折算里程）大者在前；最后按编号升序。"
    " / Ties on the shrunk rate: fewer evaluator and covert findings first, then fewer "
    "findings, then more exposure, then the id in ascending order."
)


def _number(minimum: float = 0.0, what: str = "value") -> Any:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{value!r} is not a number")
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"{value!r} is not a finite number")
        if number < minimum:
            raise ValueError(f"a {what} cannot be below {minimum:g} (got {value})")
        return number

    return PlainValidator(check)


def _whole(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{value!r} is not a whole number")
    if value < 0:
        raise ValueError(f"cannot be below 0 (got {value})")
    return value


Number = Annotated[float, _number()]
Deduction = Annotated[float, _number(what="deduction")]
Factor = Annotated[float, _number(what="factor")]
Cap = Annotated[float, _number(what="cap")]
Whole = Annotated[int, PlainValidator(_whole)]


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("must be a list of strings")
    return tuple(value)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourcesModel(_Strict):
    evaluator_kinds: Annotated[tuple[str, ...], PlainValidator(_strings)] = ()
    covert_kinds: Annotated[tuple[str, ...], PlainValidator(_strings)] = ()


def _keyed(allowed: tuple[str, ...], unknown: str, required: bool = True) -> Any:
    """A table whose keys are fixed names that are no identifiers ("self", "1", "2")."""

    def check(value: Any, info: ValidationInfo) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise ValueError("must be a table")
        for key in value:
            if key not in allowed:
                if required:  # a top-level table: name the key's own line
                    raise ConfigProblem((info.field_name or "", key), unknown)
                raise ValueError(f"{key}: {unknown}")
        if required:
            for key in allowed:
                if key not in value:
                    raise ValueError(f"{key} is missing")
        return value

    return BeforeValidator(check)


class CategoryModel(_Strict):
    points: Deduction
    cap: Cap


class FlagModel(_Strict):
    red: Whole
    black: Whole
    mode: Annotated[str, PlainValidator(lambda v: _mode(v))] = "significant"


def _mode(value: Any) -> str:
    if value not in MODES:
        raise ValueError("must be 'quota' or 'significant'")
    return str(value)


class MeasuresModel(_Strict):
    overdue: Deduction
    reopened: Deduction
    unresolved: Deduction
    recurrence: Deduction
    recurrence_days: Whole
    own_fix_credit: Annotated[float, _number(what="credit")]


class PatrolModel(_Strict):
    duty_days: Annotated[
        dict[str, Annotated[float, _number(what="number of days")]],
        _keyed(("0", "1", "2", "3"), "level is 0 to 3", required=False),
    ] = {}
    missed_day: Deduction
    cap: Cap


class ExposureModel(_Strict):
    min_length_m: Annotated[float, _number(1.0)]
    class_factor: dict[str, Annotated[float, _number(1e-9, "factor")]] = {}


def _share(value: Any) -> float:
    if not 0 <= value <= 1:
        raise ValueError("must be a share between 0 and 1")
    return float(value)


def _alpha(value: Any) -> float:
    if not 0 < value < 1:
        raise ValueError("must be between 0 and 1")
    return float(value)


class StatisticsModel(_Strict):
    prior_km: Annotated[float, _number(1e-9)]
    alpha: Annotated[float, _number(), AfterValidator(_alpha)]
    min_findings_black: Whole
    min_expected_red: Number
    min_patrol_share_red: Annotated[float, _number(), AfterValidator(_share)]
    min_district_findings: Whole


def _version(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError('version must be a non-empty string, e.g. "v1"')
    return value.strip()


def _categories(value: Any, info: ValidationInfo) -> Any:
    if not isinstance(value, dict):
        raise ValueError("must be a table")
    known = (info.context or {}).get("known_categories") or frozenset()
    for code, spec in value.items():
        if code != "default" and (not _CODE.match(code) or (known and code not in known)):
            raise ConfigProblem(("categories", code), "unknown category")
        if not isinstance(spec, dict) or set(spec) - {"points", "cap"}:
            raise ConfigProblem(("categories", code), "must be { points = N, cap = N }")
    if "default" not in value:
        raise ConfigProblem(("categories",), "categories.default is missing")
    return value


def _flags(value: Any) -> Any:
    if not isinstance(value, dict):
        raise ValueError("must be a table")
    for key, spec in value.items():
        if not isinstance(spec, dict) or set(spec) - {"red", "black", "mode"}:
            raise ConfigProblem(("flags", key), "must be { red = N, black = M, mode = … }")
    if "default" not in value:
        raise ConfigProblem(("flags",), "flags.default is missing")
    return value


class FormulaModel(_Strict):
    """A formula file (config/ranking/vN.toml)."""

    version: Annotated[str, PlainValidator(_version)]
    description: Any = ""
    sources: SourcesModel
    weights: Annotated[
        dict[str, Annotated[float, _number(what="weight")]],
        _keyed(SOURCES, f"unknown source (use {', '.join(SOURCES)})"),
    ]
    severity: Annotated[dict[str, Factor], _keyed(("1", "2", "3"), "severity is 1, 2 or 3")]
    categories: Annotated[dict[str, CategoryModel], BeforeValidator(_categories)]
    measures: MeasuresModel
    patrol: PatrolModel
    exposure: ExposureModel
    statistics: StatisticsModel
    flags: Annotated[dict[str, FlagModel], BeforeValidator(_flags)]


def load_formula(path: Path | str | None = None, known_categories: Iterable[str] = ()) -> Formula:
    """Load and check a formula file. `known_categories`: the codes a rule may name."""
    f = read_toml(Path(path) if path else DEFAULT_FORMULA, FormulaError)
    return parse_formula(f.doc, f.text, f.path, hashlib.sha256(f.raw).hexdigest(), known_categories)


def parse_formula(
    doc: dict[str, Any], text: str, path: str, sha256: str, known_categories: Iterable[str] = ()
) -> Formula:
    m = validate(
        FormulaModel,
        doc,
        error=FormulaError,
        path=path,
        text=text,
        context={"known_categories": frozenset(known_categories)},
    )
    rule = {k: CategoryRule(points=c.points, cap=c.cap) for k, c in m.categories.items()}
    flags = {k: FlagRule(f.red, f.black, f.mode) for k, f in m.flags.items()}
    return Formula(
        version=m.version,
        description=str(m.description),
        sha256=sha256,
        evaluator_kinds=m.sources.evaluator_kinds,
        covert_kinds=m.sources.covert_kinds,
        weights={s: m.weights[s] for s in SOURCES},
        severity={int(k): v for k, v in m.severity.items()},
        default_category=rule.pop("default"),
        categories=rule,
        overdue=m.measures.overdue,
        reopened=m.measures.reopened,
        unresolved=m.measures.unresolved,
        recurrence=m.measures.recurrence,
        recurrence_days=m.measures.recurrence_days,
        own_fix_credit=m.measures.own_fix_credit,
        duty_days={int(k): v for k, v in m.patrol.duty_days.items()},
        missed_day=m.patrol.missed_day,
        patrol_cap=m.patrol.cap,
        min_length_m=m.exposure.min_length_m,
        class_factor=dict(m.exposure.class_factor),
        prior_km=m.statistics.prior_km,
        alpha=m.statistics.alpha,
        min_findings_black=m.statistics.min_findings_black,
        min_expected_red=m.statistics.min_expected_red,
        min_patrol_share_red=m.statistics.min_patrol_share_red,
        min_district_findings=m.statistics.min_district_findings,
        default_flags=flags["default"],
        flags=flags,
    )
