"""Weekly patrol timetables from the forecast: which segment in which duty window.

A chief walks one segment per two-hour window (a patrol of PATROL_HOURS within it), at most
one a window, only in their duty windows. The plan first gives every segment one visit (no
segment left unwatched for a week) in its best free window, then spends the remaining
patrols on the (segment, window) pairs with the most expected findings. The uniform rotation
it is measured against visits the segments in turn and moves the time of day each day.
A chief with no history gets the rotation, put into the windows that are busiest in their
district (or city-wide) — never an empty plan.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .history import WINDOW_HOURS, WINDOWS, FloatArray, History, window_label

PATROL_HOURS = 1.0  # a walk of one segment, inside its two-hour window
DEFAULT_PATROLS = 10  # a week: two walks a working day (三级路长 patrol daily)


def duty_windows(
    days: Iterable[int] = range(5), start_hour: int = 8, end_hour: int = 18
) -> tuple[int, ...]:
    """The windows wholly inside [start_hour, end_hour) on the given weekdays (0 = Monday)."""
    first = -(-start_hour // WINDOW_HOURS)
    last = end_hour // WINDOW_HOURS
    return tuple(d * 24 // WINDOW_HOURS + s for d in sorted(set(days)) for s in range(first, last))


DEFAULT_DUTY = duty_windows()  # Monday to Friday, 08:00–18:00


@dataclass(frozen=True, slots=True)
class Visit:
    window: int
    segment: str
    expected: float  # findings expected in this window on this segment, a week

    def as_json(self) -> dict[str, object]:
        return {
            "window": self.window,
            "when": window_label(self.window),
            "segment": self.segment,
            "expected": round(self.expected, 3),
        }


@dataclass(frozen=True)
class Plan:
    chief: str
    visits: tuple[Visit, ...]  # by window
    basis: str  # "forecast" | "default"

    @property
    def hours(self) -> float:
        return len(self.visits) * PATROL_HOURS

    @property
    def expected(self) -> float:
        return sum(v.expected for v in self.visits)

    def as_json(self) -> dict[str, object]:
        return {
            "chief": self.chief,
            "basis": self.basis,
            "hours": self.hours,
            "expected_findings": round(self.expected, 3),
            "per_hour": round(self.expected / self.hours, 3) if self.visits else 0.0,
            "visits": [v.as_json() for v in self.visits],
        }


def plan_chief(
    chief: str,
    segments: Sequence[str],
    rates: FloatArray | None,
    *,
    duty: Sequence[int] = DEFAULT_DUTY,
    patrols: int = DEFAULT_PATROLS,
    profile: FloatArray | None = None,
) -> Plan:
    """The chief's week. `rates[i, w]`: expected findings of segments[i] in window w a week,
    or None (no history): then the rotation in the windows `profile` ranks busiest."""
    free = sorted(set(duty))
    patrols = min(patrols, len(free))
    if not segments or patrols <= 0:
        return Plan(chief, (), "default")
    if rates is None:
        order = free if profile is None else sorted(free, key=lambda w: (-profile[w], w))
        chosen = sorted(order[:patrols])
        visits = [
            Visit(w, segments[k % len(segments)], float(profile[w]) if profile is not None else 0)
            for k, w in enumerate(chosen)
        ]
        return Plan(chief, tuple(visits), "default")
    value = rates[:, free]  # [segment, free window]
    taken: set[int] = set()
    visits = []
    # One visit each (as far as the patrols go), the segments with the most to find first.
    for i in sorted(range(len(segments)), key=lambda i: -float(value[i].max()))[:patrols]:
        j = max((j for j in range(len(free)) if j not in taken), key=lambda j: value[i, j])
        taken.add(j)
        visits.append(Visit(free[j], segments[i], float(value[i, j])))
    # The rest: each free window's best segment, best windows first.
    best = value.argmax(axis=0)
    rest = sorted((j for j in range(len(free)) if j not in taken), key=lambda j: -value[best[j], j])
    for j in rest[: patrols - len(visits)]:
        visits.append(Visit(free[j], segments[int(best[j])], float(value[best[j], j])))
    return Plan(chief, tuple(sorted(visits, key=lambda v: v.window)), "forecast")


def uniform_rotation(
    chief: str,
    segments: Sequence[str],
    *,
    duty: Sequence[int] = DEFAULT_DUTY,
    patrols: int = DEFAULT_PATROLS,
) -> Plan:
    """The segments in turn; the patrols spread over the duty days, each day's time of day
    one slot later than the day before (so no hour of the day is favoured)."""
    by_day: dict[int, list[int]] = {}
    for w in sorted(set(duty)):
        by_day.setdefault(w * WINDOW_HOURS // 24, []).append(w)
    days = [by_day[d] for d in sorted(by_day)]
    patrols = min(patrols, sum(len(d) for d in days))
    chosen: list[int] = []
    k = 0
    while len(chosen) < patrols:
        day = days[k % len(days)]
        candidates = [w for w in day if w not in chosen]
        if candidates:
            chosen.append(candidates[(k // len(days) + k) % len(candidates)])
        k += 1
    visits = tuple(Visit(w, segments[n % len(segments)], 0.0) for n, w in enumerate(sorted(chosen)))
    return Plan(chief, visits if segments else (), "rotation")


def plan_all(
    history: History,
    rates: FloatArray | None,
    *,
    duty: Mapping[str, Sequence[int]] | None = None,
    patrols: int = DEFAULT_PATROLS,
    profile: FloatArray | None = None,
) -> dict[str, Plan]:
    """A plan per chief of the history's segments (the district plan is those of its
    chiefs); `duty` per chief, else DEFAULT_DUTY. A chief whose segments have no finding in
    the history gets the default plan (busiest windows of `profile`)."""
    return plan_chiefs(
        history.chiefs(),
        [s.id for s in history.segments],
        rates,
        history.counts.sum(axis=(0, 2)),
        duty=duty,
        patrols=patrols,
        profile=profile,
    )


def plan_chiefs(
    chiefs: Mapping[str, Sequence[int]],
    segment_ids: Sequence[str],
    rates: FloatArray | None,
    seen: npt.NDArray[np.int64],
    *,
    duty: Mapping[str, Sequence[int]] | None = None,
    patrols: int = DEFAULT_PATROLS,
    profile: FloatArray | None = None,
) -> dict[str, Plan]:
    """plan_all from its parts: chief → indices of their segments, the segments' ids, the
    rates and findings per segment (`seen`) of the analysis (roadwatch.recurrence.stored)."""
    out = {}
    for chief, idx in sorted(chiefs.items()):
        pick = list(idx)
        segs = [segment_ids[i] for i in pick]
        hours = (duty or {}).get(chief, DEFAULT_DUTY)
        sub = rates[pick] if rates is not None and int(seen[pick].sum()) > 0 else None
        out[chief] = plan_chief(chief, segs, sub, duty=hours, patrols=patrols, profile=profile)
    return out


def findings_caught(plans: Iterable[Plan], history: History, weeks: slice) -> tuple[int, float]:
    """(findings, patrol hours) the plans would have caught over `weeks` of the history: a
    visit catches the findings made on its segment in its window that week."""
    counts = history.counts[weeks]
    caught = 0
    hours = 0.0
    for plan in plans:
        for v in plan.visits:
            caught += int(counts[:, history.index[v.segment], v.window].sum())
        hours += plan.hours * counts.shape[0]
    return caught, hours


def fits_duty(plan: Plan, duty: Sequence[int], patrols: int) -> bool:
    windows = [v.window for v in plan.visits]
    return (
        len(windows) == len(set(windows))
        and set(windows) <= set(duty)
        and len(windows) <= patrols
        and all(0 <= w < WINDOWS for w in windows)
    )
