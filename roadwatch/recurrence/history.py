"""Findings bucketed by week, segment and hour-of-week window (local time)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

WINDOW_HOURS = 2  # a patrol slot: long enough to walk a segment, short enough to aim
WINDOWS = 7 * 24 // WINDOW_HOURS  # 84 windows a week, Monday 00:00 local first
LOCAL = dt.timezone(dt.timedelta(hours=8))  # the city's offset (China has no DST)
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Finding:
    segment: str
    category: str
    at: dt.datetime  # aware
    closed_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    id: str
    district: str
    chief: str | None = None  # the 三级路长 who patrols it, if any


def window_of(when: dt.datetime) -> int:
    """0..83: the two-hour window of the (local) week that `when` falls in."""
    local = when.astimezone(LOCAL)
    return (local.weekday() * 24 + local.hour) // WINDOW_HOURS


def window_label(window: int) -> str:
    days = "一二三四五六日"
    day, slot = divmod(window * WINDOW_HOURS, 24)
    return f"周{days[day]} {slot:02d}:00–{slot + WINDOW_HOURS:02d}:00"


def week_start(when: dt.datetime) -> dt.datetime:
    """Monday 00:00 local of the week holding `when` (aware, local)."""
    local = when.astimezone(LOCAL)
    monday = local.date() - dt.timedelta(days=local.weekday())
    return dt.datetime.combine(monday, dt.time(), LOCAL)


@dataclass
class History:
    """Counts[week, segment, window] for `weeks` weeks from `start` (a local Monday)."""

    segments: tuple[SegmentInfo, ...]
    start: dt.datetime
    weeks: int
    findings: tuple[Finding, ...] = ()
    counts: IntArray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.index = {s.id: i for i, s in enumerate(self.segments)}
        self.counts = np.zeros((self.weeks, len(self.segments), WINDOWS), dtype=np.int64)
        end = self.start + dt.timedelta(weeks=self.weeks)
        for f in self.findings:
            i = self.index.get(f.segment)
            if i is None or not (self.start <= f.at < end):
                continue
            week = (f.at - self.start) // dt.timedelta(weeks=1)
            self.counts[week, i, window_of(f.at)] += 1

    @classmethod
    def build(
        cls,
        segments: Sequence[SegmentInfo],
        findings: Iterable[Finding],
        *,
        start: dt.datetime,
        weeks: int,
    ) -> History:
        return cls(tuple(segments), week_start(start), weeks, tuple(findings))

    def districts(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = defaultdict(list)
        for i, s in enumerate(self.segments):
            out[s.district].append(i)
        return dict(out)

    def chiefs(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = defaultdict(list)
        for i, s in enumerate(self.segments):
            if s.chief:
                out[s.chief].append(i)
        return dict(out)
