"""Problem categories from config/categories.toml (GB/T 30428.2-2013 lineage).

The file is checked by the pydantic model `CategoriesModel`; a mistake is refused with a
`CategoriesError` naming the file, the line and the field (roadwatch.configfile).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, PlainValidator, StrictBool

from .configfile import ConfigFileError, ConfigProblem, read_toml, validate
from .settings import CONFIG_DIR

_CODE = re.compile(r"^[EC][0-9]{4}$")
_CLASS = re.compile(r"^[EC][0-9]{2}$")


class CategoriesError(ConfigFileError):
    """config/categories.toml cannot be used: `file:line: field: reason`."""


@dataclass(frozen=True, slots=True)
class Category:
    code: str
    name: str
    name_en: str
    group: str
    weight: float
    component: bool
    photo_required: bool = True  # an after photo to rectify it


@dataclass(frozen=True)
class Categories:
    scheme: str
    by_code: dict[str, Category]

    @property
    def codes(self) -> frozenset[str]:
        return frozenset(self.by_code)

    def qualified(self, code: str) -> str:
        """The code with its scheme, as docs/domain.md says: GB/T30428.2-2013:E0504."""
        return f"{self.scheme}:{code}"


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a non-empty text (got {value!r})")
    return value


def _weight(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{value!r} is not a number")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"a weight must be a finite number ≥ 0 (got {value!r})")
    return float(value)


Name = Annotated[str, PlainValidator(_name)]


class CategoryModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    name_en: Name | None = None
    group: Literal["order", "clean", "facade", "facility"] = "order"
    weight: Annotated[float, PlainValidator(_weight)] = 1.0
    component: StrictBool = False
    photo_required: StrictBool = True


def _codes(value: dict[str, CategoryModel]) -> dict[str, CategoryModel]:
    for code in value:
        if not _CODE.match(code):
            raise ConfigProblem(("categories", code), f"{code!r} is not a code like E0102")
    return value


def _classes(value: dict[str, str]) -> dict[str, str]:
    for code in value:
        if not _CLASS.match(code):
            raise ConfigProblem(("classes", code), f"{code!r} is not a class like E01")
    return value


class CategoriesModel(BaseModel):
    """config/categories.toml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scheme: Name = "local"
    classes: Annotated[dict[str, Name], AfterValidator(_classes)] = {}
    categories: Annotated[dict[str, CategoryModel], AfterValidator(_codes)]


def load_categories(path: Path | None = None) -> Categories:
    f = read_toml(path or CONFIG_DIR / "categories.toml", CategoriesError)
    m = validate(CategoriesModel, f.doc, error=CategoriesError, path=f.path, text=f.text)
    cats = {
        code: Category(
            code=code,
            name=spec.name,
            name_en=spec.name_en or spec.name,
            group=spec.group,
            weight=spec.weight,
            component=spec.component,
            photo_required=spec.photo_required,
        )
        for code, spec in m.categories.items()
    }
    return Categories(scheme=m.scheme, by_code=cats)
