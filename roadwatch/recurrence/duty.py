"""Each chief's duty hours (`roadwatch chiefs duty`), the windows their patrol plan may use.

A spec is `;`-separated parts of days and a time range: `mon-fri 08:00-18:00; sat
09:00-12:00` (days mon..sun, a range `mon-fri` or a list `mon,wed`; times HH:MM, the end
after the start, up to 24:00). A plan uses the two-hour windows wholly inside the hours, so
`sat 09:00-12:00` gives Saturday 10:00–12:00. A chief with no stored hours has DEFAULT_SPEC.
"""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from ..store import models
from .history import WINDOW_HOURS

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_SPEC = "mon-fri 08:00-18:00"
MAX_SPEC = 200
_PART = re.compile(r"^\s*([a-z,\-]+)\s+(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


class DutyError(ValueError):
    pass


def _days(text: str) -> list[int]:
    out: list[int] = []
    for item in text.split(","):
        lo, _, hi = item.partition("-")
        if lo not in DAYS or (hi and hi not in DAYS):
            raise DutyError(f"unknown day in {item!r} (mon..sun)")
        a, b = DAYS.index(lo), DAYS.index(hi or lo)
        if b < a:
            raise DutyError(f"{item!r}: the range runs backwards")
        out += range(a, b + 1)
    return out


def parse(spec: str) -> tuple[int, ...]:
    """The hour-of-week windows of `spec` (sorted, distinct); DutyError if malformed or
    if no whole two-hour window fits."""
    if len(spec) > MAX_SPEC:
        raise DutyError(f"longer than {MAX_SPEC} characters")
    windows: set[int] = set()
    for part in filter(str.strip, spec.lower().split(";")):
        m = _PART.match(part)
        if m is None:
            raise DutyError(f"{part.strip()!r}: write days and hours, e.g. mon-fri 08:00-18:00")
        h0, m0, h1, m1 = (int(x) for x in m.groups()[1:])
        start, end = h0 * 60 + m0, h1 * 60 + m1
        if m0 > 59 or m1 > 59 or end > 24 * 60 or end <= start:
            raise DutyError(f"{part.strip()!r}: the hours must run forwards within a day")
        step = WINDOW_HOURS * 60
        first, last = -(-start // step), end // step  # whole windows only
        for d in _days(m.group(1)):
            windows.update(d * 24 // WINDOW_HOURS + s for s in range(first, last))
    if not windows:
        raise DutyError("no whole two-hour patrol window fits in these hours")
    return tuple(sorted(windows))


def load(engine: Engine) -> dict[str, str]:
    """reporter id → their stored spec (chiefs without one are absent: DEFAULT_SPEC)."""
    q = select(models.ChiefDutyHours.reporter_id, models.ChiefDutyHours.spec)
    with engine.connect() as conn:
        return {rid: spec for rid, spec in conn.execute(q)}


def windows_of(specs: dict[str, str]) -> dict[str, tuple[int, ...]]:
    """Parsed windows per chief; a spec that no longer parses falls back to the default."""
    out = {}
    for rid, spec in specs.items():
        try:
            out[rid] = parse(spec)
        except DutyError:
            out[rid] = parse(DEFAULT_SPEC)
    return out


def store(session: Session, reporter_id: str, spec: str | None, now: dt.datetime) -> None:
    """Set (checked by `parse`) or, with None, clear a chief's duty hours."""
    row = session.get(models.ChiefDutyHours, reporter_id)
    if spec is None:
        if row is not None:
            session.delete(row)
        return
    parse(spec)
    if session.get(models.Reporter, reporter_id) is None:
        raise LookupError(f"no such reporter: {reporter_id}")
    text = "; ".join(p.strip() for p in spec.lower().split(";") if p.strip())
    if row is None:
        session.add(models.ChiefDutyHours(reporter_id=reporter_id, spec=text, updated_at=now))
    else:
        row.spec, row.updated_at = text, now
    session.flush()
