"""ISO weeks in the city's time zone: Monday 00:00 to the next Monday 00:00, local."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


@dataclass(frozen=True, slots=True)
class Week:
    year: int
    number: int
    tz: ZoneInfo

    @classmethod
    def parse(cls, label: str, tz: ZoneInfo) -> Week:
        m = _WEEK.match(label.strip())
        if not m:
            raise ValueError(f"{label!r} is not an ISO week; write it like 2026-W47")
        year, number = int(m.group(1)), int(m.group(2))
        try:
            dt.date.fromisocalendar(year, number, 1)
        except ValueError:
            raise ValueError(f"{label!r}: {year} has no week {number}") from None
        return cls(year, number, tz)

    @classmethod
    def containing(cls, when: dt.datetime, tz: ZoneInfo) -> Week:
        year, number, _ = when.astimezone(tz).isocalendar()
        return cls(year, number, tz)

    @property
    def label(self) -> str:
        return f"{self.year}-W{self.number:02d}"

    @property
    def start(self) -> dt.datetime:
        """Monday 00:00 local, as an aware UTC datetime."""
        monday = dt.date.fromisocalendar(self.year, self.number, 1)
        return dt.datetime.combine(monday, dt.time(), self.tz).astimezone(dt.UTC)

    @property
    def end(self) -> dt.datetime:
        """The next Monday 00:00 local (Sunday 24:00), exclusive."""
        return self.next().start

    def next(self) -> Week:
        monday = dt.date.fromisocalendar(self.year, self.number, 1) + dt.timedelta(days=7)
        year, number, _ = monday.isocalendar()
        return Week(year, number, self.tz)

    def previous(self) -> Week:
        monday = dt.date.fromisocalendar(self.year, self.number, 1) - dt.timedelta(days=7)
        year, number, _ = monday.isocalendar()
        return Week(year, number, self.tz)

    def __str__(self) -> str:
        return self.label
