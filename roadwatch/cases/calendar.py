"""Working-time calendar and time limits (SLA) for the case workflow.

Pure module: standard library only (numpy is imported lazily by `WorkCalendar.deadlines`).

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

Performance: a lazily grown per-day table (working intervals as epoch microseconds, prefix
sums of working time and of working days) makes `add_working`/`working_between` O(log days)
by bisection; `deadlines()` does the same for whole numpy arrays.
"""

from __future__ import annotations

import math
import re
import threading
import tomllib
from bisect import bisect_left, bisect_right
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, cast, get_args, overload
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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


class SlaConfigError(ValueError):
    """config/sla.toml (or a table given in code) is invalid; the message names key and line."""


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
    _tz: ZoneInfo = field(init=False, repr=False, compare=False, hash=False)
    _cache: _Cache = field(
        init=False, repr=False, compare=False, hash=False, default_factory=_Cache
    )

    def __post_init__(self) -> None:
        try:
            tz = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise SlaConfigError(f"[calendar] timezone: unknown zone {self.timezone!r}") from exc
        object.__setattr__(self, "_tz", tz)
        if len(self.week) != 7:
            raise SlaConfigError("[calendar] week must have 7 entries (Monday first)")
        named = [("hours", self.hours)] + [(WEEKDAYS[i], p) for i, p in enumerate(self.week)]
        if self.makeup is not None:
            named.append(("makeup_hours", self.makeup))
        for name, periods in named:
            problem = _periods_problem(periods)
            if problem:
                raise SlaConfigError(f"[calendar] {name}: {problem}")
        both = self.holidays & self.workdays
        if both:
            raise SlaConfigError(
                f"[calendar] {min(both).isoformat()} is both a holiday and a make-up workday"
            )
        if self.pause_outside_hours and not any(self.week):
            raise SlaConfigError("[calendar] no weekday has working hours: time would never pass")

    # ---- construction

    @classmethod
    def from_toml_table(cls, d: Mapping[str, Any], *, _src: _Source | None = None) -> WorkCalendar:
        """Build from the `[calendar]` table (see config/sla.toml for the keys)."""
        src = _src or _Source(None, None)
        t = "calendar"
        _no_unknown(src, t, d, _CALENDAR_KEYS)
        tz = d.get("timezone", "Asia/Shanghai")
        if not isinstance(tz, str):
            raise src.error(t, "timezone", f"expected a zone name, not {tz!r}")
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise src.error(t, "timezone", f"unknown time zone {tz!r}") from None
        hours = _parse_periods(
            src, t, "hours", d.get("hours", [["08:30", "12:00"], ["13:30", "17:30"]])
        )
        names = d.get("weekdays", list(WEEKDAYS[:5]))
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise src.error(t, "weekdays", f'expected a list like ["mon", "tue"], not {names!r}')
        for n in names:
            if n.lower() not in WEEKDAYS:
                raise src.error(t, "weekdays", f"unknown weekday {n!r} (use {' '.join(WEEKDAYS)})")
        worked = {n.lower() for n in names}
        week = [hours if name in worked else () for name in WEEKDAYS]
        overrides = d.get("weekday_hours", {})
        if not isinstance(overrides, Mapping):
            raise src.error(t, "weekday_hours", "expected a table of weekday = periods")
        for key, value in overrides.items():
            if key.lower() not in WEEKDAYS:
                raise src.error(
                    "calendar.weekday_hours",
                    key,
                    f"unknown weekday {key!r} (use {' '.join(WEEKDAYS)})",
                )
            week[WEEKDAYS.index(key.lower())] = _parse_periods(
                src, "calendar.weekday_hours", key, value
            )
        makeup = None
        if "makeup_hours" in d:
            makeup = _parse_periods(src, t, "makeup_hours", d["makeup_hours"])
        holidays = _parse_dates(src, t, "holidays", d.get("holidays", []))
        workdays = _parse_dates(src, t, "workdays", d.get("workdays", []))
        both = holidays & workdays
        if both:
            first = min(both).isoformat()
            raise src.error(
                t, "workdays", f"{first} is listed both in holidays and in workdays", needle=first
            )
        pause = d.get("pause_outside_hours", True)
        if not isinstance(pause, bool):
            raise src.error(t, "pause_outside_hours", f"expected true or false, not {pause!r}")
        if pause and not any(week):
            raise src.error(t, "weekdays", "no weekday has working hours: time would never pass")
        return cls(
            timezone=tz,
            hours=hours,
            week=tuple(week),
            makeup=makeup,
            holidays=holidays,
            workdays=workdays,
            pause_outside_hours=pause,
        )

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
        src = _Source(source, text)
        _no_unknown(src, None, doc, _TOP_KEYS)
        for key in _TOP_KEYS:
            if key in doc and not isinstance(doc[key], Mapping):
                raise src.error(None, key, "expected a table")
        calendar = WorkCalendar.from_toml_table(doc.get("calendar", {}), _src=src)
        known = frozenset(known_categories) if known_categories is not None else None
        limits: dict[str, Limit] = {}
        default = Limit(1, "d")
        for key, value in doc.get("limits", {}).items():
            if isinstance(value, Mapping):
                raise src.error(
                    "limits",
                    key,
                    f"sub-table [limits.{key}] is not supported: "
                    'write clock-time limits with a unit suffix, e.g. E0401 = "2ch"',
                    header=f"limits.{key}",
                )
            lim = _parse_limit(src, "limits", key, value, positive=True)
            if key == "default":
                default = lim
            elif not _CODE_RE.match(key):
                raise src.error("limits", key, f"{key!r} is not a category code like E0102")
            elif known is not None and key not in known:
                raise src.error("limits", key, f"unknown category code {key!r}")
            else:
                limits[key] = lim
        factors: dict[int, float] = {}
        for key, value in doc.get("severity_factor", {}).items():
            try:
                sev = int(key)
            except ValueError:
                raise src.error(
                    "severity_factor", key, f"severity must be an integer, not {key!r}"
                ) from None
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not (math.isfinite(value) and value > 0)
            ):
                raise src.error(
                    "severity_factor", key, f"factor must be a positive number, not {value!r}"
                )
            factors[sev] = float(value)
        escalation = _parse_escalation(src, doc.get("escalation"))
        merchant = doc.get("merchant", {})
        _no_unknown(src, "merchant", merchant, {"grace"})
        grace = Limit(30, "m")
        if "grace" in merchant:
            grace = _parse_limit(src, "merchant", "grace", merchant["grace"], positive=False)
        return cls(
            calendar=calendar,
            limits=limits,
            default=default,
            severity_factor=factors,
            escalation=escalation,
            merchant_grace=grace,
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
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SlaConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SlaConfigError(f"{path}: not valid TOML: {exc}") from exc
    return Sla.from_toml(doc, known_categories=known_categories, source=str(path), text=text)


# --------------------------------------------------------------------------- parsing


_TOP_KEYS = {"calendar", "limits", "severity_factor", "escalation", "merchant"}
_CALENDAR_KEYS = {
    "timezone",
    "hours",
    "weekdays",
    "weekday_hours",
    "makeup_hours",
    "holidays",
    "workdays",
    "pause_outside_hours",
}
_CODE_RE = re.compile(r"^[A-Z][0-9]{4}$")
_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")
_HEADER_RE = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")


class _Source:
    """Where a table came from, to put file and line into error messages."""

    def __init__(self, name: str | None, text: str | None):
        self.name = name
        self.lines = text.splitlines() if text is not None else None

    def line_of(
        self,
        table: str | None,
        key: str | None,
        *,
        needle: str | None = None,
        header: str | None = None,
        occurrence: int = 0,
    ) -> int | None:
        if self.lines is None:
            return None
        current: str | None = None
        seen = 0 if table is None else -1
        key_re = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=") if key is not None else None
        in_key = False
        for n, raw in enumerate(self.lines, start=1):
            line = raw.split("#", 1)[0]
            m = _HEADER_RE.match(raw)
            if m:
                current = m.group(1)
                in_key = False
                if current == header:
                    return n
                if current == table:
                    seen += 1
                continue
            if current != table or seen != occurrence:
                continue
            if key_re is not None and key_re.match(line):
                if needle is None or needle in line:
                    return n
                in_key = True
                continue
            if needle is not None and (in_key or key_re is None) and needle in line:
                return n
        return None

    def error(
        self,
        table: str | None,
        key: str | None,
        message: str,
        *,
        needle: str | None = None,
        header: str | None = None,
        occurrence: int = 0,
        where: str | None = None,
    ) -> SlaConfigError:
        line = self.line_of(table, key, needle=needle, header=header, occurrence=occurrence)
        prefix = ""
        if self.name:
            prefix = f"{self.name}:{line}: " if line else f"{self.name}: "
        if where is None:
            where = f"[{table}] {key}" if table else str(key)
        return SlaConfigError(f"{prefix}{where}: {message}")


def _no_unknown(src: _Source, table: str | None, d: Mapping[str, Any], allowed: set[str]) -> None:
    for key in d:
        if key not in allowed:
            raise src.error(
                table,
                key,
                f"unknown key (expected one of {', '.join(sorted(allowed))})",
                header=key if table is None else f"{table}.{key}",
            )


def _parse_limit(src: _Source, table: str, key: str, value: Any, *, positive: bool) -> Limit:
    try:
        lim = Limit.parse(value)
    except ValueError as exc:
        raise src.error(table, key, str(exc)) from None
    if positive and lim.amount == 0:
        raise src.error(table, key, f"{value!r}: a time limit must be greater than zero")
    return lim


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


def _parse_periods(src: _Source, table: str, key: str, value: Any) -> Periods:
    if not isinstance(value, list):
        raise src.error(table, key, f"expected a list of [start, end] pairs, not {value!r}")
    out: list[tuple[int, int]] = []
    for item in value:
        if not (isinstance(item, list) and len(item) == 2):
            raise src.error(table, key, f"expected a [start, end] pair, not {item!r}")
        try:
            s = _parse_time(item[0], end=False)
            e = _parse_time(item[1], end=True)
        except ValueError as exc:
            raise src.error(table, key, str(exc)) from None
        out.append((s, e))
    periods = tuple(out)
    problem = _periods_problem(periods)
    if problem:
        raise src.error(table, key, problem)
    return periods


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        raise ValueError(f"{value.isoformat()} is a date-time; give a date (YYYY-MM-DD)")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not a date YYYY-MM-DD") from None
    raise ValueError(f"expected a date YYYY-MM-DD, not {value!r}")


def _parse_dates(src: _Source, table: str, key: str, value: Any) -> frozenset[date]:
    if not isinstance(value, list):
        raise src.error(table, key, f"expected a list of dates, not {value!r}")
    out: set[date] = set()
    for item in value:
        try:
            if isinstance(item, list):
                if len(item) != 2:
                    raise ValueError(f"a date range is [first, last], not {item!r}")
                first, last = _as_date(item[0]), _as_date(item[1])
                if last < first:
                    raise ValueError(f"date range {first}..{last} ends before it starts")
                if (last - first).days > 366:
                    raise ValueError(f"date range {first}..{last} is longer than a year")
                out.update(first + timedelta(days=i) for i in range((last - first).days + 1))
            else:
                out.add(_as_date(item))
        except ValueError as exc:
            needle = item.isoformat() if isinstance(item, date) else None
            raise src.error(table, key, str(exc), needle=needle) from None
    return frozenset(out)


def _parse_escalation(src: _Source, value: Any) -> tuple[EscalationRule, ...]:
    if value is None:
        return _DEFAULT_ESCALATION
    _no_unknown(src, "escalation", value, {"step"})
    steps = value.get("step", [])
    if not isinstance(steps, list):
        raise src.error("escalation", "step", "expected [[escalation.step]] tables")
    rules: list[EscalationRule] = []
    last_level: int | None = None
    for i, step in enumerate(steps):
        where = f"[[escalation.step]] #{i + 1}"

        def err(key: str | None, msg: str, where: str = where, i: int = i) -> SlaConfigError:
            return src.error("escalation.step", key, msg, occurrence=i, where=where)

        if not isinstance(step, Mapping):
            raise err(None, "expected a table")
        for key in step:
            if key not in ("notify", "after"):
                raise err(key, f"unknown key {key!r} (expected notify, after)")
        if "notify" not in step or "after" not in step:
            raise err(None, "needs both notify and after")
        notify = step["notify"]
        level: int | None
        if notify == "superior":
            if rules:
                raise err("notify", '"superior" may only be the first step')
            level = None
        elif isinstance(notify, int) and not isinstance(notify, bool) and 0 <= notify <= 3:
            level = notify
            if last_level is not None and level >= last_level:
                raise err("notify", f"levels must rise (3 → 0): {level} after {last_level}")
            last_level = level
        else:
            raise err("notify", f'expected "superior" or a level 0..3, not {notify!r}')
        try:
            after = Limit.parse(step["after"])
        except ValueError as exc:
            raise err("after", str(exc)) from None
        rules.append(EscalationRule(level, after))
    return tuple(rules)
