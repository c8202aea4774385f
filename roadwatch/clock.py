"""The one clock every part of roadwatch reads (issue 17).

Ingest's accepted window for `observed_at`, dispatch, the case clock and escalation, the
ranking schedule, publication, the audit log: all of them take "now" from `now()` (through
`roadwatch.models.utcnow`, the default `clock` of Pipeline, Dispatcher, the case clock's
Scheduler and the RankingScheduler). In production it is the wall clock. `roadwatch demo
seed` sets it (`use(SetClock(...))`) to play weeks of history through the real code paths in
a few minutes; tests may do the same. Times are aware datetimes in UTC.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Source = Callable[[], dt.datetime]

_source: Source | None = None  # None: the wall clock


def wall() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def now() -> dt.datetime:
    """The current time of this process: the wall clock unless one was set with `use`."""
    src = _source
    return wall() if src is None else src()


class SetClock:
    """A clock that stands still until it is set or advanced (never backwards)."""

    def __init__(self, start: dt.datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("SetClock needs an aware datetime")
        self._t = start.astimezone(dt.UTC)
        self._lock = threading.Lock()

    def __call__(self) -> dt.datetime:
        return self._t

    def set(self, t: dt.datetime) -> None:
        t = t.astimezone(dt.UTC)
        with self._lock:
            if t < self._t:
                raise ValueError(f"a clock does not go back ({t.isoformat()} < {self._t})")
            self._t = t

    def advance(self, delta: dt.timedelta) -> dt.datetime:
        self.set(self._t + delta)
        return self._t


@contextmanager
def use(source: Source) -> Iterator[Source]:
    """Make `source` this process's clock for the duration of the block."""
    global _source
    before = _source
    _source = source
    try:
        yield source
    finally:
        _source = before
