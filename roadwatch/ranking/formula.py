"""The versioned ranking formula (config/ranking/vN.toml), validated when it is loaded.

Pure: reads a TOML file, imports nothing of the database or the web. A mistake is refused
with a `FormulaError` naming the file, the line and the reason, so an operator can fix it
and the schedule can keep using the last good version meanwhile.
"""

from __future__ import annotations

import hashlib
import math
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..settings import CONFIG_DIR

FORMULA_DIR = CONFIG_DIR / "ranking"
DEFAULT_FORMULA = FORMULA_DIR / "v1.toml"
SOURCES = ("evaluator", "covert", "public", "self")
MODES = ("quota", "significant")
LEAGUE_KINDS = ("segment", "partner_unit", "merchant")
_CODE = re.compile(r"^[EC]\d{4}$")


class FormulaError(ValueError):
    """A formula file that cannot be used; str() is `file:line: reason`."""

    def __init__(self, path: str, line: int | None, reason: str) -> None:
        self.path, self.line, self.reason = path, line, reason
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {reason}")


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


class _Reader:
    """Typed access to the parsed document that reports the offending line on a mistake."""

    def __init__(self, path: str, text: str, doc: dict[str, Any]) -> None:
        self.path, self.lines, self.doc = path, text.splitlines(), doc

    def line_of(self, section: str, key: str | None = None) -> int | None:
        current = ""
        header = re.compile(r"^\s*\[([^\]]+)\]\s*(#.*)?$")
        for no, line in enumerate(self.lines, 1):
            m = header.match(line)
            if m:
                current = m.group(1).strip()
                if key is None and current == section:
                    return no
                continue
            if key is None:
                continue
            stripped = line.strip()
            if current == section and re.match(rf"^\"?{re.escape(key)}\"?\s*=", stripped):
                return no
            # a key of an inline table on its parent's line: `duty_days = { 0 = 0.5 }`
            parent, _, leaf = section.rpartition(".")
            if (
                parent == current
                and re.match(rf"^{re.escape(leaf)}\s*=", stripped)
                and re.search(rf"[{{,]\s*\"?{re.escape(key)}\"?\s*=", stripped)
            ):
                return no
        return self.line_of(section) if key is not None else None

    def fail(self, section: str, key: str | None, reason: str) -> FormulaError:
        return FormulaError(self.path, self.line_of(section, key), reason)

    def table(self, section: str, required: bool = True) -> dict[str, Any]:
        node: Any = self.doc
        for part in section.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            if required:
                raise FormulaError(self.path, None, f"the [{section}] table is missing")
            return {}
        if not isinstance(node, dict):
            raise self.fail(section.rpartition(".")[0], section.rpartition(".")[2], "not a table")
        return node

    def number(
        self,
        section: str,
        key: str,
        value: Any,
        *,
        minimum: float = 0.0,
        what: str = "value",
    ) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(section, key, f"{section}.{key}: {value!r} is not a number")
        number = float(value)
        if not math.isfinite(number):
            raise self.fail(section, key, f"{section}.{key}: {value!r} is not a finite number")
        if number < minimum:
            raise self.fail(
                section, key, f"{section}.{key}: a {what} cannot be below {minimum:g} (got {value})"
            )
        return number

    def get_number(self, section: str, key: str, **kw: Any) -> float:
        table = self.table(section)
        if key not in table:
            raise self.fail(section, None, f"{section}.{key} is missing")
        return self.number(section, key, table[key], **kw)

    def get_int(self, section: str, key: str, minimum: int = 0) -> int:
        value = self.table(section).get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(section, key, f"{section}.{key}: {value!r} is not a whole number")
        if value < minimum:
            raise self.fail(section, key, f"{section}.{key}: cannot be below {minimum}")
        return value

    def strings(self, section: str, key: str) -> tuple[str, ...]:
        value = self.table(section).get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(section, key, f"{section}.{key}: must be a list of strings")
        return tuple(value)


def load_formula(path: Path | str | None = None, known_categories: Iterable[str] = ()) -> Formula:
    """Load and check a formula file. `known_categories`: the codes a rule may name."""
    p = Path(path) if path else DEFAULT_FORMULA
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise FormulaError(str(p), None, f"cannot read the formula file ({exc.strerror})") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormulaError(str(p), None, "the file is not UTF-8 text") from exc
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        line = int(m.group(1)) if m else None
        reason = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise FormulaError(str(p), line, f"not valid TOML: {reason}") from exc
    return parse_formula(doc, text, str(p), hashlib.sha256(raw).hexdigest(), known_categories)


def parse_formula(
    doc: dict[str, Any], text: str, path: str, sha256: str, known_categories: Iterable[str] = ()
) -> Formula:
    r = _Reader(path, text, doc)
    known = frozenset(known_categories)
    version = doc.get("version")
    if not isinstance(version, str) or not version.strip():
        raise r.fail("", "version", 'version must be a non-empty string, e.g. "v1"')

    weights_t = r.table("weights")
    for key in weights_t:
        if key not in SOURCES:
            known_sources = ", ".join(SOURCES)
            raise r.fail("weights", key, f"weights.{key}: unknown source (use {known_sources})")
    weights = {s: r.get_number("weights", s, what="weight") for s in SOURCES}

    sev_t = r.table("severity")
    severity: dict[int, float] = {}
    for key, value in sev_t.items():
        if key not in ("1", "2", "3"):
            raise r.fail("severity", key, f"severity.{key}: severity is 1, 2 or 3")
        severity[int(key)] = r.number("severity", key, value, what="factor")
    for s in (1, 2, 3):
        if s not in severity:
            raise r.fail("severity", None, f"severity.{s} is missing")

    cats_t = r.table("categories")
    rules: dict[str, CategoryRule] = {}
    default: CategoryRule | None = None
    for code, spec in cats_t.items():
        if code != "default" and (not _CODE.match(code) or (known and code not in known)):
            raise r.fail("categories", code, f"categories.{code}: unknown category")
        if not isinstance(spec, dict) or set(spec) - {"points", "cap"}:
            raise r.fail(
                "categories", code, f"categories.{code}: must be {{ points = N, cap = N }}"
            )
        rule = CategoryRule(
            points=r.number("categories", code, spec.get("points"), what="deduction"),
            cap=r.number("categories", code, spec.get("cap"), what="cap"),
        )
        if code == "default":
            default = rule
        else:
            rules[code] = rule
    if default is None:
        raise r.fail("categories", None, "categories.default is missing")

    duty_t = r.table("patrol").get("duty_days", {})
    if not isinstance(duty_t, dict):
        raise r.fail("patrol", "duty_days", "patrol.duty_days must be a table by level")
    duty: dict[int, float] = {}
    for key, value in duty_t.items():
        if key not in ("0", "1", "2", "3"):
            raise r.fail("patrol.duty_days", key, f"patrol.duty_days.{key}: level is 0 to 3")
        duty[int(key)] = r.number("patrol.duty_days", key, value, what="number of days")

    cf_t = r.table("exposure").get("class_factor", {})
    if not isinstance(cf_t, dict):
        raise r.fail("exposure", "class_factor", "exposure.class_factor must be a table")
    class_factor = {
        k: r.number("exposure.class_factor", k, v, minimum=1e-9, what="factor")
        for k, v in cf_t.items()
    }

    flags_t = r.table("flags")
    flags: dict[str, FlagRule] = {}
    for key, spec in flags_t.items():
        if not isinstance(spec, dict) or set(spec) - {"red", "black", "mode"}:
            raise r.fail("flags", key, f"flags.{key}: must be {{ red = N, black = M, mode = … }}")
        counts = []
        for part in ("red", "black"):
            v = spec.get(part)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise r.fail("flags", key, f"flags.{key}.{part}: must be a whole number ≥ 0")
            counts.append(v)
        mode = spec.get("mode", "significant")
        if mode not in MODES:
            raise r.fail("flags", key, f"flags.{key}.mode: must be 'quota' or 'significant'")
        flags[key] = FlagRule(counts[0], counts[1], mode)
    if "default" not in flags:
        raise r.fail("flags", None, "flags.default is missing")

    alpha = r.get_number("statistics", "alpha")
    if not 0 < alpha < 1:
        raise r.fail("statistics", "alpha", "statistics.alpha must be between 0 and 1")
    share = r.get_number("statistics", "min_patrol_share_red")
    if share > 1:
        raise r.fail("statistics", "min_patrol_share_red", "must be a share between 0 and 1")

    return Formula(
        version=version.strip(),
        description=str(doc.get("description", "")),
        sha256=sha256,
        evaluator_kinds=r.strings("sources", "evaluator_kinds"),
        covert_kinds=r.strings("sources", "covert_kinds"),
        weights=weights,
        severity=severity,
        default_category=default,
        categories=rules,
        overdue=r.get_number("measures", "overdue", what="deduction"),
        reopened=r.get_number("measures", "reopened", what="deduction"),
        unresolved=r.get_number("measures", "unresolved", what="deduction"),
        recurrence=r.get_number("measures", "recurrence", what="deduction"),
        recurrence_days=r.get_int("measures", "recurrence_days"),
        own_fix_credit=r.get_number("measures", "own_fix_credit", what="credit"),
        duty_days=duty,
        missed_day=r.get_number("patrol", "missed_day", what="deduction"),
        patrol_cap=r.get_number("patrol", "cap", what="cap"),
        min_length_m=r.get_number("exposure", "min_length_m", minimum=1.0),
        class_factor=class_factor,
        prior_km=r.get_number("statistics", "prior_km", minimum=1e-9),
        alpha=alpha,
        min_findings_black=r.get_int("statistics", "min_findings_black"),
        min_expected_red=r.get_number("statistics", "min_expected_red"),
        min_patrol_share_red=share,
        min_district_findings=r.get_int("statistics", "min_district_findings"),
        default_flags=flags["default"],
        flags=flags,
    )
