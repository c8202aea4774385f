"""Problem categories from config/categories.toml (GB/T 30428.2-2013 lineage)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from .settings import CONFIG_DIR


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
        """The code with its scheme, as DOMAIN.md asks: GB/T30428.2-2013:E0504."""
        return f"{self.scheme}:{code}"


def load_categories(path: Path | None = None) -> Categories:
    path = path or CONFIG_DIR / "categories.toml"
    with path.open("rb") as fh:
        doc = tomllib.load(fh)
    cats = {
        code: Category(
            code=code,
            name=spec["name"],
            name_en=spec.get("name_en", spec["name"]),
            group=spec.get("group", "order"),
            weight=float(spec.get("weight", 1)),
            component=bool(spec.get("component", False)),
            photo_required=bool(spec.get("photo_required", True)),
        )
        for code, spec in doc["categories"].items()
    }
    return Categories(scheme=doc.get("scheme", "local"), by_code=cats)
