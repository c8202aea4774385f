"""Working-time calendar and time limits (SLA) for the case workflow.

Pure module: standard library and pydantic (numpy is imported lazily by
`WorkCalendar.deadlines`). config/sla.toml is checked by the pydantic models at the end
(`CalendarModel`, `SlaModel`); a mistake names file, line and field (roadwatch.configfile).

Rules (also documented in config/sla.toml):

* Instants are aware datetimes in any zone; computation happens in the calendar's zone and a
  result is returned in the zone of the input. Naive datetimes are refused (ValueError).
* Working periods are half-open local intervals [start, end): 17:30 is not a working moment.
  Each period is converted to real instants with zoneinfo, so working time is elapsed real
  time and DST transitions inside a period are handled.
* `add_working(start, timedelta)` returns the EARLIEST instant at which `delta` of working time
  has elapsed since `start`; a start outside working hours counts from the next working moment.
  A deadline that exhausts a day therefore lands on the end of its last period (Friday 17:30),
  never on the start of the next working day. `delta == 0` returns `start` unchanged.
* `add_working(start, WorkingDays(n))`: s = the next working moment at or after start; the
  deadline is s's local time of day on the n-th working day after s's day; if that time of day
  is not inside (or at the end of) a working period of that day, the end of that day's last
  period. A fractional remainder is then added as that fraction of a standard day (`hours`).
* `working_between(a, b)` is signed: the working time in [a, b], negative if b < a.
* With `pause_outside_hours = false` every moment is working: hours are wall-clock elapsed
  time and "d" are calendar days (same local time n days later).
* Unknown years (the holiday rule): `known_years` are the years whose public holidays are
  configured. A year outside them counts its weekdays only (no holidays, no make-up days);
  a deadline whose span touches such a year is *provisional* (`is_provisional`), to be
  recomputed once the year is configured, and from 1 November of the last configured year
  `missing_years(now)` names the next year, so /healthz and the log can warn.

Performance: a lazily grown per-day table (working intervals as epoch microseconds, prefix
sums of working time and of working days) makes `add_working`/`working_between` O(log days)
by bisection; `deadlines()` does the same for whole numpy arrays.
"""

from __future__ import annotations

import math
import re
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast, get_args, overload
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    PlainValidator,
    StrictBool,
    ValidationInfo,
    model_validator,
)

from ..configfile import ConfigFileError, ConfigProblem, read_toml, validate

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "LEVEL_NAMES",
    "EscalationRule",
    "EscalationStep",
    "Limit",
    "Sla",
    "SlaConfigError",
    "Unit",
    "WorkCalendar",
    "WorkingDays",
    "load_sla",
]

Unit = Literal["m", "h", "d", "cm", "ch", "cd"]
UNITS: tuple[str, ...] = get_args(Unit)
LEVEL_NAMES = {0: "总路长", 1: "一级路长", 2: "二级路长", 3: "三级路长"}
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_US = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UNIT_US = {"m": 60_000_000, "cm": 60_000_000, "h": 3_600_000_000, "ch": 3_600_000_000}
_DAY_US = 86_400_000_000
_DAY_S = 86_400

Periods = tuple[tuple[int, int], ...]  # (start, end) in seconds after local midnight
Loc = tuple[str | int, ...]


class SlaConfigError(ConfigFileError):
    """config/sla.toml (or a table given in code) is invalid: `file:line: field: reason`."""


# --------------------------------------------------------------------------- limits


_LIMIT_RE = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*([A-Za-z]*)\s*$")


@dataclass(frozen=True)
class Limit:
    """A time limit: `amount` of `unit` (m/h/d working, cm/ch/cd clock time)."""

    amount: int | float
    unit: Unit

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f"unknown unit {self.unit!r} (expected one of {', '.join(UNITS)})")
        if isinstance(self.amount, bool) or not math.isfinite(self.amount):
            raise ValueError(f"amount must be a finite number, not {self.amount!r}")
        if self.amount < 0:
            raise ValueError(f"negative amount {self.amount!r}")

    @classmethod
    def parse(cls, text: str) -> Limit:
        """Parse "4h", "15d", "2ch", "30m", "1.5d"; ValueError with the reason otherwise."""
        if not isinstance(text, str):
            raise ValueError(f'expected a string like "4h", not {text!r}')
        m = _LIMIT_RE.match(text)
        if m is None:
            raise ValueError(f'{text!r} is not a time limit like "4h", "15d" or "2ch"')
        number, unit = m.groups()
        if not unit:
            raise ValueError(f"{text!r} has no unit (expected one of {', '.join(UNITS)})")
        if unit not in UNITS:
            raise ValueError(
                f"{text!r}: unknown unit {unit!r} (expected one of {', '.join(UNITS)})"
            )
        amount: int | float = float(number) if "." in number else int(number)
        if amount < 0:
            raise ValueError(f"{text!r}: negative amount")
        return cls(amount, cast(Unit, unit))

    def __str__(self) -> str:
        return f"{self.amount:g}{self.unit}"

    @property
    def clock(self) -> bool:
        """True for wall-clock units (cm, ch, cd) that run 24/7."""
        return self.unit.startswith("c")

    @property
    def in_days(self) -> bool:
        return self.unit in ("d", "cd")

    def duration(self) -> timedelta:
        """The limit as a timedelta (m, h, cm, ch only: a day has no fixed length)."""
        if self.in_days:
            raise ValueError(f"{self}: a day limit has no fixed duration")
        return timedelta(microseconds=round(self.amount * _UNIT_US[self.unit]))

    def scaled(self, factor: float) -> Limit:
        amount = self.amount * factor
        if isinstance(amount, float) and amount.is_integer():
            amount = int(amount)
        return Limit(amount, self.unit)


@dataclass(frozen=True)
class WorkingDays:
    """A delta of working days for `WorkCalendar.add_working` (see the module rules)."""

    days: int | float

    def __post_init__(self) -> None:
        if not math.isfinite(self.days) or self.days < 0:
            raise ValueError(f"working days must be a finite number >= 0, not {self.days!r}")


# --------------------------------------------------------------------------- helpers


def _to_us(t: datetime) -> int:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"naive datetime {t.isoformat()}: attach a tzinfo (e.g. ZoneInfo)")
    return (t - _EPOCH) // _US


def _from_us(us: int, tz: tzinfo) -> datetime:
    return (_EPOCH + timedelta(microseconds=us)).astimezone(tz)


def _local_us(d: date, seconds: int, tz: tzinfo) -> int:
    """Epoch µs of local wall time `seconds` after midnight of `d` (24:00 = next midnight)."""
    wall = datetime.combine(d, time()) + timedelta(seconds=seconds)
    return (wall.replace(tzinfo=tz) - _EPOCH) // _US


class _Table:
    """Per-day working intervals for days base .. base+n-1, with prefix sums."""

    __slots__ = ("arrays", "base", "cum", "day_start", "ivals", "wcum")

    def __init__(self, base: int, day_start: list[int], ivals: list[tuple[tuple[int, int], ...]]):
        self.base = base
        self.day_start = day_start  # n+1 local midnights (µs)
        self.ivals = ivals  # n tuples of (start µs, end µs), non-empty iff a working day
        cum = [0]
        wcum = [0]
        for iv in ivals:
            cum.append(cum[-1] + sum(e - s for s, e in iv))
            wcum.append(wcum[-1] + (1 if iv else 0))
        self.cum = cum  # working µs before day i
        self.wcum = wcum  # working days before day i
        self.arrays: tuple[Any, ...] | None = None  # numpy views, built on demand

    @property
    def last(self) -> int:
        return self.base + len(self.ivals) - 1

    def day(self, us: int) -> int:
        return bisect_right(self.day_start, us) - 1

    def cum_at(self, us: int) -> int:
        i = self.day(us)
        total = self.cum[i]
        for s, e in self.ivals[i]:
            if us <= s:
                break
            total += min(us, e) - s
        return total


@dataclass
class _Cache:
    table: _Table | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


# --------------------------------------------------------------------------- calendar


_DEFAULT_HOURS: Periods = ((8 * 3600 + 1800, 12 * 3600), (13 * 3600 + 1800, 17 * 3600 + 1800))


@dataclass(frozen=True)
class WorkCalendar:
    """Working time: periods per weekday, public holidays and make-up working days.

    `week[i]` are the periods of weekday i (Monday = 0), `hours` the standard day (used for
    make-up days unless `makeup` is given, and for fractional working days).
    """

    timezone: str = "Asia/Shanghai"
    hours: Periods = _DEFAULT_HOURS
    week: tuple[Periods, ...] = (_DEFAULT_HOURS,) * 5 + ((), ())
    makeup: Periods | None = None
    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()
    pause_outside_hours: bool = True
    known_years: frozenset[int] | None = None  # years with configured holidays; None: untracked
    _tz: ZoneInfo = field(init=False, repr=False, compare=False, hash=False)
    _cache: _Cache = field(
        init=False, repr=False, compare=False, hash=False, default_factory=_Cache
    )

    def __post_init__(self) -> None:
        try:
            tz = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise SlaConfigError(
                f"unknown time zone {self.timezone!r}", field="calendar.timezone"
            ) from exc
        object.__setattr__(self, "_tz", tz)
        if len(self.week) != 7:
            raise SlaConfigError("must have 7 entries (Monday first)", field="calendar.week")
        named = [("hours", self.hours)] + [(WEEKDAYS[i], p) for i, p in enumerate(self.week)]
        if self.makeup is not None:
            named.append(("makeup_hours", self.makeup))
        for name, periods in named:
            problem = _periods_problem(periods)
            if problem:
                raise SlaConfigError(problem, field=f"calendar.{name}")
        both = self.holidays & self.workdays
        if both:
            raise SlaConfigError(
                f"{min(both).isoformat()} is both a holiday and a make-up workday",
                field="calendar.workdays",
            )
        if self.pause_outside_hours and not any(self.week):
            raise SlaConfigError(
                "no weekday has working hours: time would never pass", field="calendar.weekdays"
            )

    # ---- construction

    @classmethod
    def from_toml_table(
        cls,
        d: Mapping[str, Any],
        *,
        _path: str | None = None,
        _text: str | None = None,
    ) -> WorkCalendar:
        """Build from the `[calendar]` table (see config/sla.toml for the keys)."""
        m = validate(
            CalendarModel, d, error=SlaConfigError, path=_path, text=_text, prefix=("calendar",)
        )
        return m.build()

    # ---- the per-day table

    @property
    def tz(self) -> ZoneInfo:
        return self._tz

    def periods_on(self, d: date) -> Periods:
        """The working periods (seconds after local midnight) of local date `d`."""
        if d in self.holidays:
            return ()
        if d in self.workdays:
            return self.makeup if self.makeup is not None else self.hours
        return self.week[d.weekday()]

    def _build(self, lo: int, hi: int) -> _Table:
        tz = self._tz
        starts: list[int] = []
        ivals: list[tuple[tuple[int, int], ...]] = []
        for o in range(lo, hi + 1):
            d = date.fromordinal(o)
            starts.append(_local_us(d, 0, tz))
            out: list[tuple[int, int]] = []
            prev_end = starts[-1]
            for s_sec, e_sec in self.periods_on(d):
                s = max(_local_us(d, s_sec, tz), prev_end)
                e = _local_us(d, e_sec, tz)
                if e > s:  # a period swallowed by a DST gap has no length
                    out.append((s, e))
                    prev_end = e
            ivals.append(tuple(out))
        starts.append(_local_us(date.fromordinal(hi + 1), 0, tz))
        return _Table(lo, starts, ivals)

    def _table(self, lo: int, hi: int) -> _Table:
        """A table covering ordinal days lo..hi (grown in whole-year steps)."""
        tab = self._cache.table
        if tab is not None and tab.base <= lo and hi <= tab.last:
            return tab
        with self._cache.lock:
            tab = self._cache.table
            if tab is not None and tab.base <= lo and hi <= tab.last:
                return tab
            if tab is None:
                new_lo, new_hi = lo - 31, hi + 400
            else:
                new_lo = tab.base if lo >= tab.base else min(lo, tab.base - 366)
                new_hi = tab.last if hi <= tab.last else max(hi, tab.last + 400)
            new_lo = max(new_lo, 2)
            new_hi = min(new_hi, date.max.toordinal() - 2)
            tab = self._build(new_lo, new_hi)
            self._cache.table = tab
            return tab

    def _ordinal(self, us: int) -> int:
        return _from_us(us, self._tz).toordinal()

    def _table_for(self, *instants: int) -> _Table:
        ords = [self._ordinal(u) for u in instants]
        return self._table(min(ords) - 1, max(ords) + 1)

    def _grow_until(self, tab: _Table, *, cum: int = -1, wcum: int = -1) -> _Table:
        while tab.cum[-1] < cum or tab.wcum[-1] < wcum:
            if tab.last >= date.max.toordinal() - 2:
                raise OverflowError("deadline beyond the year 9999")
            tab = self._table(tab.base, tab.last + 1)
        return tab

    # ---- scalar API

    def is_working(self, t: datetime) -> bool:
        """True if `t` is inside a working period (periods are half-open [start, end))."""
        us = _to_us(t)
        if not self.pause_outside_hours:
            return True
        tab = self._table_for(us)
        return any(s <= us < e for s, e in tab.ivals[tab.day(us)])

    def next_working(self, t: datetime) -> datetime:
        """`t` if it is a working moment, else the start of the next working period."""
        if not self.pause_outside_hours:
            _to_us(t)
            return t
        us = _to_us(t)
        return _from_us(self._next_working_us(us), t.tzinfo or UTC)

    def _next_working_us(self, us: int) -> int:
        tab = self._table_for(us)
        i = tab.day(us)
        for s, e in tab.ivals[i]:
            if us < e:
                return max(s, us)
        tab = self._grow_until(tab, wcum=tab.wcum[i + 1] + 1)
        j = bisect_left(tab.wcum, tab.wcum[i + 1] + 1) - 1
        return tab.ivals[j][0][0]

    def add_working(self, start: datetime, delta: timedelta | WorkingDays) -> datetime:
        """The deadline `delta` of working time (or working days) after `start`."""
        out_tz = start.tzinfo or UTC
        us = _to_us(start)
        if isinstance(delta, WorkingDays):
            return _from_us(self._add_days_us(us, delta.days), out_tz)
        if delta < timedelta(0):
            raise ValueError(f"negative working time {delta}")
        return _from_us(self._add_us(us, delta // _US), out_tz)

    def _add_us(self, us: int, d: int) -> int:
        if d == 0:
            return us
        if not self.pause_outside_hours:
            return us + d
        tab = self._table_for(us)
        target = tab.cum_at(us) + d
        tab = self._grow_until(tab, cum=target)
        i = bisect_left(tab.cum, target) - 1
        rem = target - tab.cum[i]
        for s, e in tab.ivals[i]:
            if rem <= e - s:
                return s + rem
            rem -= e - s
        raise AssertionError("unreachable: prefix sums inconsistent")  # pragma: no cover

    def _add_days_us(self, us: int, days: float) -> int:
        whole = int(days)
        frac = days - whole
        tz = self._tz
        if not self.pause_outside_hours:
            return self._clock_days_us(us, days)
        s = self._next_working_us(us)
        res = s
        if whole:
            tab = self._table_for(s)
            i = tab.day(s)
            target = tab.wcum[i] + whole
            tab = self._grow_until(tab, wcum=target + 1)
            j = bisect_left(tab.wcum, target + 1) - 1
            wall = _from_us(s, tz).replace(tzinfo=None)
            on_day = datetime.combine(date.fromordinal(tab.base + j), wall.time())
            cand = (on_day.replace(tzinfo=tz) - _EPOCH) // _US
            ivals = tab.ivals[j]
            res = cand if any(a <= cand <= b for a, b in ivals) else ivals[-1][1]
        if frac:
            res = self._add_us(res, round(frac * self.standard_day // _US))
        return res

    def _clock_days_us(self, us: int, days: float) -> int:
        """Same local wall time `days` calendar days later (fraction: × 24 h elapsed)."""
        whole = int(days)
        wall = _from_us(us, self._tz).replace(tzinfo=None) + timedelta(days=whole)
        res = (wall.replace(tzinfo=self._tz) - _EPOCH) // _US
        return res + round((days - whole) * _DAY_US)

    @property
    def standard_day(self) -> timedelta:
        """Length of a standard working day (the `hours` periods); 24 h without pausing."""
        if not self.pause_outside_hours:
            return timedelta(days=1)
        return timedelta(seconds=sum(e - s for s, e in self.hours))

    # ---- the holiday rule: years whose holidays are not configured

    def is_provisional(self, start: datetime, end: datetime) -> bool:
        """True if [start, end] touches a local year whose holidays are not configured: the
        deadline was counted on weekdays only there and must be recomputed later."""
        if self.known_years is None or not self.pause_outside_hours:
            return False
        _to_us(start), _to_us(end)
        a, b = start.astimezone(self._tz).year, end.astimezone(self._tz).year
        return any(y not in self.known_years for y in range(min(a, b), max(a, b) + 1))

    def missing_years(self, now: datetime) -> list[int]:
        """The years that should be configured by `now` and are not: the current year, and
        from 1 November (local) the next one. [] when years are not tracked."""
        if self.known_years is None or not self.pause_outside_hours:
            return []
        _to_us(now)
        local = now.astimezone(self._tz)
        wanted = [local.year] + ([local.year + 1] if local.month >= 11 else [])
        return [y for y in wanted if y not in self.known_years]

    def holiday_warning(self, now: datetime) -> str | None:
        """A plain-words warning while `missing_years(now)` is not empty, else None."""
        missing = self.missing_years(now)
        if not missing:
            return None
        years = ", ".join(str(y) for y in missing)
        return (
            f"{years}年法定节假日未配置 / public holidays for {years} are not configured "
            f"(config/sla.toml [calendar] holidays): deadlines in {years} count weekdays "
            "only and are marked provisional until the year is added"
        )

    def working_between(self, a: datetime, b: datetime) -> timedelta:
        """Working time elapsed between `a` and `b` (signed: negative if b is before a)."""
        ua, ub = _to_us(a), _to_us(b)
        if not self.pause_outside_hours:
            return timedelta(microseconds=ub - ua)
        tab = self._table_for(ua, ub)
        return timedelta(microseconds=tab.cum_at(ub) - tab.cum_at(ua))

    def add_limit(self, start: datetime, limit: Limit) -> datetime:
        """The deadline for `limit` counted from `start` (any unit)."""
        out_tz = start.tzinfo or UTC
        return _from_us(self._add_limit_us(_to_us(start), limit), out_tz)

    def _add_limit_us(self, us: int, limit: Limit) -> int:
        if limit.unit == "d":
            return self._add_days_us(us, limit.amount)
        if limit.unit == "cd":
            return self._clock_days_us(us, limit.amount)
        d = limit.duration() // _US
        return us + d if limit.clock else self._add_us(us, d)

    # ---- vectorised

    @overload
    def deadlines(self, dispatched_at: Sequence[datetime], limit: Limit) -> list[datetime]: ...
    @overload
    def deadlines(
        self, dispatched_at: npt.NDArray[np.datetime64], limit: Limit
    ) -> npt.NDArray[np.datetime64]: ...

    def deadlines(
        self, dispatched_at: Sequence[datetime] | npt.NDArray[np.datetime64], limit: Limit
    ) -> list[datetime] | npt.NDArray[np.datetime64]:
        """Deadlines for many dispatch instants at once.

        A list of aware datetimes gives a list of aware datetimes (each in its input's zone);
        a numpy datetime64 array (read as UTC, numpy's convention) gives a datetime64[us]
        array in UTC. Working hours/minutes are fully vectorised; day units loop in Python.
        """
        import numpy as np

        if isinstance(dispatched_at, np.ndarray):
            us = dispatched_at.astype("datetime64[us]").astype(np.int64)
            return self._deadlines_us(us, limit).astype("datetime64[us]")
        items = list(dispatched_at)
        arr = np.fromiter((_to_us(t) for t in items), dtype=np.int64, count=len(items))
        res = self._deadlines_us(arr, limit)
        return [_from_us(int(r), t.tzinfo or UTC) for r, t in zip(res, items, strict=True)]

    def _deadlines_us(self, us: npt.NDArray[np.int64], limit: Limit) -> npt.NDArray[np.int64]:
        import numpy as np

        if us.size == 0:
            return us.copy()
        if limit.in_days:
            return np.fromiter(
                (self._add_limit_us(int(u), limit) for u in us), dtype=np.int64, count=us.size
            )
        d = limit.duration() // _US
        if limit.clock or not self.pause_outside_hours or d == 0:
            return us + d
        tab = self._table_for(int(us.min()), int(us.max()))
        while True:
            day_start, cum, starts, ends, lens_cum = self._arrays(tab)
            idx = np.searchsorted(day_start, us, side="right") - 1
            s_i, e_i = starts[idx], ends[idx]
            worked = np.clip(us[:, None] - s_i, 0, e_i - s_i).sum(axis=1)
            target = cum[idx] + worked + d
            top = int(target.max())
            if top <= tab.cum[-1]:
                break
            tab = self._grow_until(tab, cum=top)
        day = np.searchsorted(cum, target, side="left") - 1
        rem = target - cum[day]
        lc = lens_cum[day]
        k = np.argmax(lc >= rem[:, None], axis=1)
        rows = np.arange(us.size)
        before = np.where(k > 0, lc[rows, np.maximum(k - 1, 0)], 0)
        return cast("npt.NDArray[np.int64]", starts[day, k] + (rem - before))

    def _arrays(self, tab: _Table) -> tuple[Any, ...]:
        import numpy as np

        if tab.arrays is None:
            n = len(tab.ivals)
            width = max(1, max(len(iv) for iv in tab.ivals))
            starts = np.zeros((n, width), dtype=np.int64)
            ends = np.zeros((n, width), dtype=np.int64)
            for i, iv in enumerate(tab.ivals):
                pad = iv[-1][1] if iv else tab.day_start[i]
                row = list(iv) + [(pad, pad)] * (width - len(iv))
                starts[i] = [s for s, _ in row]
                ends[i] = [e for _, e in row]
            lens_cum = np.cumsum(ends - starts, axis=1)
            tab.arrays = (
                np.asarray(tab.day_start, dtype=np.int64),
                np.asarray(tab.cum, dtype=np.int64),
                starts,
                ends,
                lens_cum,
            )
        return tab.arrays


def _periods_problem(periods: Periods) -> str | None:
    prev: tuple[int, int] | None = None
    for s, e in periods:
        if not (0 <= s < e <= _DAY_S):
            return f"period {_hm(s)}–{_hm(e)} must start before it ends, within 00:00–24:00"
        if prev is not None:
            if s < prev[0]:
                return f"periods are not in ascending order ({_hm(s)} after {_hm(prev[0])})"
            if s < prev[1]:
                return f"period {_hm(s)}–{_hm(e)} overlaps {_hm(prev[0])}–{_hm(prev[1])}"
        prev = (s, e)
    return None


def _hm(seconds: int) -> str:
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h:02d}:{m:02d}" + (f":{s:02d}" if s else "")


# --------------------------------------------------------------------------- SLA


@dataclass(frozen=True)
class EscalationRule:
    """Notify road-chief `level` (None = the responsible chief's superior) `after` the deadline."""

    level: int | None
    after: Limit


@dataclass(frozen=True)
class EscalationStep:
    level: int
    at: datetime
    rule: EscalationRule

    @property
    def level_name(self) -> str:
        return LEVEL_NAMES.get(self.level, f"level {self.level}")


_DEFAULT_ESCALATION = (
    EscalationRule(None, Limit(0, "m")),
    EscalationRule(1, Limit(2, "h")),
    EscalationRule(0, Limit(1, "d")),
)


@dataclass(frozen=True)
class Sla:
    """Time limits per category, severity factors, escalation ladder and merchant grace."""

    calendar: WorkCalendar
    limits: Mapping[str, Limit]
    default: Limit = Limit(1, "d")
    severity_factor: Mapping[int, float] = field(default_factory=dict)
    escalation: tuple[EscalationRule, ...] = _DEFAULT_ESCALATION
    merchant_grace: Limit = Limit(30, "m")

    def __post_init__(self) -> None:
        object.__setattr__(self, "limits", MappingProxyType(dict(self.limits)))
        object.__setattr__(self, "severity_factor", MappingProxyType(dict(self.severity_factor)))

    def limit_for(self, category: str, severity: int | None = None) -> Limit:
        """The category's limit (or the default) times the severity factor (1.0 if unset)."""
        base = self.limits.get(category, self.default)
        if severity is None:
            return base
        factor = self.severity_factor.get(severity, 1.0)
        return base if factor == 1.0 else base.scaled(factor)

    def deadline(self, category: str, severity: int | None, dispatched_at: datetime) -> datetime:
        return self.calendar.add_limit(dispatched_at, self.limit_for(category, severity))

    @overload
    def deadlines(
        self, category: str, severity: int | None, dispatched_at: Sequence[datetime]
    ) -> list[datetime]: ...
    @overload
    def deadlines(
        self, category: str, severity: int | None, dispatched_at: npt.NDArray[np.datetime64]
    ) -> npt.NDArray[np.datetime64]: ...

    def deadlines(
        self,
        category: str,
        severity: int | None,
        dispatched_at: Sequence[datetime] | npt.NDArray[np.datetime64],
    ) -> list[datetime] | npt.NDArray[np.datetime64]:
        return self.calendar.deadlines(dispatched_at, self.limit_for(category, severity))

    def escalation_steps(self, deadline: datetime, responsible_level: int) -> list[EscalationStep]:
        """Who is notified when, for a case due at `deadline` held by a chief of that level.

        Takes the (possibly extended or paused) deadline rather than recomputing it. Levels
        only go up (3 → 0); a step naming the responsible level, a lower one or a level
        already notified is skipped; times never go backwards.
        """
        if not 0 <= responsible_level <= 3:
            raise ValueError(f"road-chief level must be 0..3, not {responsible_level}")
        steps: list[EscalationStep] = []
        last_level = responsible_level
        for rule in self.escalation:
            level = responsible_level - 1 if rule.level is None else rule.level
            if level < 0 or level >= last_level:
                continue
            at = self.calendar.add_limit(deadline, rule.after)
            if steps and at < steps[-1].at:
                at = steps[-1].at
            steps.append(EscalationStep(level, at, rule))
            last_level = level
        return steps

    def escalation_at(self, due_at: datetime, step: int) -> datetime | None:
        """When escalation rule number `step` (1-based, in config order) fires for a case due
        at `due_at`; None past the last rule. Level bookkeeping is the caller's (see
        `escalation_steps` for the level-aware ladder)."""
        if not 1 <= step <= len(self.escalation):
            return None
        at = self.calendar.add_limit(due_at, self.escalation[step - 1].after)
        if step > 1:
            at = max(at, self.escalation_at(due_at, step - 1) or at)
        return at

    def is_provisional(self, start: datetime, due: datetime) -> bool:
        """A deadline from `start` to `due` runs into a year without configured holidays."""
        return self.calendar.is_provisional(start, due)

    def holiday_warning(self, now: datetime) -> str | None:
        """The warning that next year's (or this year's) holidays are missing, or None."""
        return self.calendar.holiday_warning(now)

    def merchant_deadline(self, reported_at: datetime) -> datetime:
        """End of the merchant's grace window (门前三包) before dispatch to the road chief."""
        return self.calendar.add_limit(reported_at, self.merchant_grace)

    @classmethod
    def from_toml(
        cls,
        doc: Mapping[str, Any],
        *,
        known_categories: Collection[str] | None = None,
        source: str | None = None,
        text: str | None = None,
    ) -> Sla:
        """Build from a parsed sla.toml document; `source`/`text` give file and line in errors."""
        known = sorted(known_categories) if known_categories is not None else None
        m = validate(
            SlaModel,
            doc,
            error=SlaConfigError,
            path=source,
            text=text,
            context={"known_categories": known},
        )
        calendar = WorkCalendar.from_toml_table(m.calendar, _path=source, _text=text)
        return cls(
            calendar=calendar,
            limits={k: v for k, v in m.limits.items() if k != "default"},
            default=m.limits.get("default", Limit(1, "d")),
            severity_factor=m.severity_factor,
            escalation=m.escalation.rules(),
            merchant_grace=m.merchant.grace,
        )


def load_sla(
    path: str | Path | None = None,
    known_categories: Collection[str] | None = None,
    *,
    categories: Collection[str] | None = None,
) -> Sla:
    """Read and validate an sla.toml (default: sla.toml in the config directory).

    `known_categories` (alias `categories`) are the valid codes; a [limits] key outside them
    is refused. SlaConfigError names the file, line and key.
    """
    if path is None:
        from ..settings import CONFIG_DIR  # lazy: only for the default location

        path = CONFIG_DIR / "sla.toml"
    path = Path(path)
    if known_categories is None:
        known_categories = categories
    f = read_toml(path, SlaConfigError)
    return Sla.from_toml(f.doc, known_categories=known_categories, source=f.path, text=f.text)


# --------------------------------------------------------------------------- parsing

_CODE_RE = re.compile(r"^[A-Z][0-9]{4}$")
_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")
_YEAR_RE = re.compile(r"^[0-9]{4}$")
_DEFAULT_HOURS_TOML = [["08:30", "12:00"], ["13:30", "17:30"]]


def _parse_time(value: Any, *, end: bool) -> int:
    if isinstance(value, time):
        return value.hour * 3600 + value.minute * 60 + value.second
    if not isinstance(value, str):
        raise ValueError(f'expected a time like "08:30", not {value!r}')
    m = _TIME_RE.match(value.strip())
    if m is None:
        raise ValueError(f'{value!r} is not a time like "08:30"')
    h, mi, s = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
    if (h, mi, s) == (24, 0, 0) and end:
        return _DAY_S
    if h > 23 or mi > 59 or s > 59:
        raise ValueError(
            f"{value!r} is not a valid time of day"
            + (" (24:00 only ends a period)" if h == 24 else "")
        )
    return h * 3600 + mi * 60 + s


def _periods(value: Any) -> Periods:
    if not isinstance(value, list):
        raise ValueError(f"expected a list of [start, end] pairs, not {value!r}")
    out: list[tuple[int, int]] = []
    for item in value:
        if not (isinstance(item, list) and len(item) == 2):
            raise ValueError(f"expected a [start, end] pair, not {item!r}")
        out.append((_parse_time(item[0], end=False), _parse_time(item[1], end=True)))
    periods = tuple(out)
    problem = _periods_problem(periods)
    if problem:
        raise ValueError(problem)
    return periods


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        raise ValueError(f"a date-time, give a date YYYY-MM-DD (got {value.isoformat()})")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"not a date (got {value!r})") from None
    raise ValueError(f"expected a date YYYY-MM-DD (got {value!r})")


def _span(item: Any) -> tuple[date, date]:
    """A list entry of holidays/workdays: a date or an inclusive [first, last] range."""
    if not isinstance(item, list):
        d = _as_date(item)
        return d, d
    if len(item) != 2:
        raise ValueError(f"a date range is [first, last] (got {item!r})")
    first, last = _as_date(item[0]), _as_date(item[1])
    if last < first:
        raise ValueError(f"date range {first}..{last} ends before it starts")
    if (last - first).days > 366:
        raise ValueError(f"date range {first}..{last} is longer than a year")
    return first, last


@dataclass(frozen=True)
class _Dates:
    """The dates of `holidays` or `workdays`, where each came from, and the years given."""

    spans: tuple[tuple[Loc, date, date], ...] = ()
    years: frozenset[int] = frozenset()  # the years this list configures

    @property
    def dates(self) -> frozenset[date]:
        out: set[date] = set()
        for _, first, last in self.spans:
            out.update(first + timedelta(days=i) for i in range((last - first).days + 1))
        return frozenset(out)

    def where(self, d: date) -> Loc:
        return next(loc for loc, first, last in self.spans if first <= d <= last)


def _dates_by_year(value: Any, info: ValidationInfo) -> _Dates:
    """`holidays`/`workdays`: a list of dates and ranges, or a table by year
    (`2027 = [...]`; an empty list says the year has none). A year is configured when it
    has its own entry in the table, or any date in the list."""
    key = info.field_name or "dates"
    groups: list[tuple[Loc, int | None, Any]]
    if isinstance(value, list):
        groups = [((key,), None, value)]
    elif isinstance(value, Mapping):
        groups = []
        for year, items in value.items():
            if not _YEAR_RE.match(str(year)):
                raise ConfigProblem((key, str(year)), f"not a year like 2027 (got {year!r})")
            if not isinstance(items, list):
                raise ConfigProblem((key, str(year)), f"expected a list of dates (got {items!r})")
            groups.append(((key, str(year)), int(year), items))
    else:
        raise ValueError(f"expected a list of dates or a table by year (got {value!r})")
    spans: list[tuple[Loc, date, date]] = []
    years: set[int] = set()
    for where, year, items in groups:
        if year is not None:
            years.add(year)
        for i, item in enumerate(items):
            try:
                first, last = _span(item)
            except ValueError as exc:
                raise ConfigProblem((*where, i), str(exc)) from None
            if year is not None and not (first.year == year or last.year == year):
                raise ConfigProblem((*where, i), f"{first} is not in {year}")
            if year is None:
                years.update(range(first.year, last.year + 1))
            spans.append(((*where, i), first, last))
    return _Dates(tuple(spans), frozenset(years))


def _weekday(value: Any) -> str:
    if not isinstance(value, str) or value.lower() not in WEEKDAYS:
        raise ValueError(f"unknown weekday {value!r} (use {' '.join(WEEKDAYS)})")
    return value.lower()


def _timezone(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a zone name (got {value!r})")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}") from None
    return value


def _limit(value: Any) -> Limit:
    return Limit.parse(value)


def _positive_limit(value: Any) -> Limit:
    lim = Limit.parse(value)
    if lim.amount == 0:
        raise ValueError(f"{value!r}: a time limit must be greater than zero")
    return lim


PeriodsT = Annotated[Periods, PlainValidator(_periods)]
DatesT = Annotated[_Dates, PlainValidator(_dates_by_year)]
WeekdayT = Annotated[str, PlainValidator(_weekday)]
LimitT = Annotated[Limit, PlainValidator(_limit)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


HOLIDAY_SOURCES = ("chinesecalendar",)


class CalendarModel(_Strict):
    """The `[calendar]` table of sla.toml."""

    timezone: Annotated[str, PlainValidator(_timezone)] = "Asia/Shanghai"
    hours: PeriodsT = _DEFAULT_HOURS
    weekdays: list[WeekdayT] = list(WEEKDAYS[:5])
    weekday_hours: dict[WeekdayT, PeriodsT] = {}
    makeup_hours: PeriodsT | None = None
    holidays: DatesT = _Dates()
    workdays: DatesT = _Dates()
    holiday_source: Literal["chinesecalendar"] | None = None
    pause_outside_hours: StrictBool = True

    @model_validator(mode="after")
    def _consistent(self) -> CalendarModel:
        both = self.holidays.dates & self.workdays.dates
        if both:
            first = min(both)
            raise ConfigProblem(
                self.workdays.where(first), f"{first} is listed both in holidays and in workdays"
            )
        if self.pause_outside_hours and not any(self.week()):
            raise ConfigProblem(
                ("weekdays",), "no weekday has working hours: time would never pass"
            )
        return self

    def week(self) -> list[Periods]:
        worked = set(self.weekdays)
        week = [self.hours if name in worked else () for name in WEEKDAYS]
        for name, periods in self.weekday_hours.items():
            week[WEEKDAYS.index(name)] = periods
        return week

    def build(self) -> WorkCalendar:
        holidays, workdays = self.holidays.dates, self.workdays.dates
        years = self.holidays.years | self.workdays.years
        if self.holiday_source == "chinesecalendar":
            extra_h, extra_w, extra_years = _chinese_calendar(exclude=years)
            holidays, workdays = holidays | extra_h, workdays | extra_w
            years = years | extra_years
        return WorkCalendar(
            timezone=self.timezone,
            hours=self.hours,
            week=tuple(self.week()),
            makeup=self.makeup_hours,
            holidays=holidays,
            workdays=workdays,
            pause_outside_hours=self.pause_outside_hours,
            known_years=years or None,
        )


def _chinese_calendar(exclude: Collection[int]) -> tuple[set[date], set[date], set[int]]:
    """Holidays and make-up workdays from the `chinesecalendar` package (State Council
    notices, maintained upstream) for the years it covers, except `exclude` (the years the
    configuration lists itself: local entries win for a whole year)."""
    try:
        from chinese_calendar import constants  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise ConfigProblem(
            ("holiday_source",),
            "the chinesecalendar package is not installed (pip install chinesecalendar)",
        ) from None
    holidays = {d for d in constants.holidays if d.year not in exclude}
    workdays = {d for d in constants.workdays if d.year not in exclude}
    return holidays, workdays, {d.year for d in holidays}


def _limits(value: Any, info: ValidationInfo) -> dict[str, Limit]:
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a table (got {value!r})")
    known = (info.context or {}).get("known_categories")
    out: dict[str, Limit] = {}
    for key, item in value.items():
        if isinstance(item, Mapping):
            raise ConfigProblem(
                ("limits", key),
                f"sub-table [limits.{key}] is not supported: "
                'write clock-time limits with a unit suffix, e.g. E0401 = "2ch"',
            )
        try:
            lim = _positive_limit(item)
        except ValueError as exc:
            raise ConfigProblem(("limits", key), str(exc)) from None
        if key != "default":
            if not _CODE_RE.match(key):
                raise ConfigProblem(("limits", key), f"{key!r} is not a category code like E0102")
            if known is not None and key not in known:
                raise ConfigProblem(("limits", key), f"unknown category code {key!r}")
        out[key] = lim
    return out


def _factors(value: Any) -> dict[int, float]:
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a table (got {value!r})")
    out: dict[int, float] = {}
    for key, v in value.items():
        try:
            sev = int(key)
        except ValueError:
            raise ConfigProblem(
                ("severity_factor", key), f"severity must be an integer, not {key!r}"
            ) from None
        if (
            isinstance(v, bool)
            or not isinstance(v, int | float)
            or not (math.isfinite(v) and v > 0)
        ):
            raise ConfigProblem(
                ("severity_factor", key), f"factor must be a positive number, not {v!r}"
            )
        out[sev] = float(v)
    return out


def _notify(value: Any) -> int | None:
    if value == "superior":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 3:
        return value
    raise ValueError(f'expected "superior" or a level 0..3, not {value!r}')


class StepModel(_Strict):
    notify: Annotated[int | None, PlainValidator(_notify)]
    after: LimitT


class EscalationModel(_Strict):
    step: list[StepModel] = []

    def rules(self) -> tuple[EscalationRule, ...]:
        return tuple(EscalationRule(s.notify, s.after) for s in self.step)


class MerchantModel(_Strict):
    grace: LimitT = Limit(30, "m")


class SlaModel(_Strict):
    """The whole of sla.toml; [calendar] is checked by `CalendarModel` on its own."""

    calendar: dict[str, Any] = {}
    limits: Annotated[dict[str, Limit], PlainValidator(_limits)] = {}
    severity_factor: Annotated[dict[int, float], PlainValidator(_factors)] = {}
    escalation: EscalationModel = EscalationModel(step=[])
    merchant: MerchantModel = MerchantModel()

    @model_validator(mode="before")
    @classmethod
    def _default_ladder(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "escalation" not in data:
            return {**data, "escalation": {"step": _DEFAULT_ESCALATION_TOML}}
        return data

    @model_validator(mode="after")
    def _ladder_rises(self) -> SlaModel:
        last: int | None = None
        for i, step in enumerate(self.escalation.step):
            where = ("escalation", "step", i, "notify")
            if step.notify is None and i > 0:
                raise ConfigProblem(where, '"superior" may only be the first step')
            if step.notify is not None:
                if last is not None and step.notify >= last:
                    raise ConfigProblem(
                        where, f"levels must rise (3 → 0): {step.notify} after {last}"
                    )
                last = step.notify
        return self


_DEFAULT_ESCALATION_TOML = [
    {"notify": "superior", "after": "0m"},
    {"notify": 1, "after": "2h"},
    {"notify": 0, "after": "1d"},
]
