"""Each phone's real accuracy, learnt from its own reports (issue 21: phones that understate).

A phone that states 10 m but is really off by 20 m makes any snapper sure of answers it
should doubt: the likelihood is only as good as the accuracy it is given. No single fix
tells an honest phone from an understating one, but a phone's run of fixes does. The
statistic is the fix's distance to the *nearest* segment over its stated accuracy
(independent of what the snapper then decided, so learning cannot feed on itself),
clipped at ``CAP_RATIO`` and squared: the tail of the distances is what tells the phones
apart (the median barely moves: most of a near fix's distance is where on the pavement
the person stood), and the clip keeps one fix from a square or a courtyard from deciding.
Its mean for any real/stated ratio follows from the noise model of :mod:`geo.noise`
on this very network -- a dense grid caps the distances a sparse network does not --
so :func:`distance_table` simulates it once per network, for a ladder of ratios.

:class:`PhoneScales` keeps each reporter's last ``WINDOW`` ratios. From ``MIN_REPORTS`` on,
their mean read against the table is the phone's real/stated factor, and the snapper is
given the stated accuracy times that factor (once a phone is found to understate, the
factor read at its mean plus one standard error: a factor too small costs wrong answers,
one too large only review). It only ever inflates: a phone that overstates
its error costs review, not wrong answers, and a deflated accuracy would make the snapper
bolder than the phone deserves. And it inflates only from ``INFLATE_FROM`` on, and only
past what honest phones' means of as many fixes stay below 95 % of the time on this
network (``HONEST_FALSE_FLAGS``), so an honest phone's sampling noise (the mean of 30-60
heavy-tailed values) leaves it as it is at least 95 % of the time on any network.

Pure: numpy, shapely (through :class:`geo.snap.SegmentIndex`). The store is in memory per
process (several workers each learn from the share of reports they see) and bounded.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from geo.noise import STATED_M, sample_index
from geo.snap import SegmentIndex

__all__ = [
    "INFLATE_FROM",
    "MIN_REPORTS",
    "SCALES",
    "WINDOW",
    "DistanceTable",
    "PhoneScales",
    "distance_stat",
    "distance_table",
]

FloatArray = npt.NDArray[np.float64]

# Real/stated ratios the table is simulated at (2: the "understated" phones of the bench).
SCALES: Final = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0)
WINDOW: Final = 60  # a phone's last reports that count
MIN_REPORTS: Final = 30  # before these, the stated accuracy is taken as it is
INFLATE_FROM: Final = 1.4  # an estimate below this is sampling noise of an honest phone
UPPER_SE: Final = 1.0  # an understating phone's factor: from its mean plus this many SE
# A fix farther than this many stated accuracies from every street says "far", not how
# far (a phone indoors, a report from a square): clipped, so one such fix cannot swing it.
CAP_RATIO: Final = 3.0
MIN_ACCURACY_M: Final = 5.0  # the snapper's own floor (geo.robust)
# At most this share of honest phones may read as understating by chance (per network and
# window size: DistanceTable.honest_bound).
HONEST_FALSE_FLAGS: Final = 0.05
BOUND_RESAMPLES: Final = 4_000  # resampled windows behind each bound
MAX_PHONES: Final = 100_000  # reporters remembered; the least recently seen go first
TABLE_REPORTS: Final = 10_000  # simulated reports per rung of the ladder


@dataclass(frozen=True, slots=True)
class DistanceTable:
    """The mean statistic (:func:`distance_stat`) at each real/stated ratio on one network,
    and the simulated statistic of honest phones on it (``honest``: what bounds how often
    an honest phone's run of fixes reads as understating, :meth:`honest_bound`)."""

    scales: FloatArray
    means: FloatArray  # non-decreasing
    honest: FloatArray = field(default_factory=lambda: np.empty(0))
    _bounds: dict[int, float] = field(default_factory=dict, compare=False, repr=False)

    def factor(self, mean_stat: float) -> float:
        """The real/stated ratio whose simulated mean is ``mean_stat`` (linear between
        rungs; beyond the ladder's ends, its ends)."""
        return float(np.interp(mean_stat, self.means, self.scales))

    def honest_bound(self, n: int) -> float:
        """The mean of ``n`` statistics that honest phones on this network stay below
        ``1 - HONEST_FALSE_FLAGS`` of the time (resampled from ``honest``; -inf without it).

        The bar of ``INFLATE_FROM`` alone let sampling noise inflate 10-20 % of honest
        phones at 30 reports where the statistic tells phones apart least (a grid of short
        blocks, a hillside of hairpins: the honest mean and that of a phone off by half as
        much again lie close), each then sent to review more than it deserves. The
        statistic is skewed (squared, clipped), so the bound is resampled, not a normal one.
        """
        if self.honest.size == 0:
            return -math.inf
        got = self._bounds.get(n)
        if got is None:
            rng = np.random.default_rng([n, 47])
            draws = self.honest[rng.integers(0, self.honest.size, size=(BOUND_RESAMPLES, n))]
            got = float(np.quantile(draws.mean(axis=1), 1.0 - HONEST_FALSE_FLAGS))
            self._bounds[n] = got
        return got


def distance_stat(
    index: SegmentIndex, lons: npt.ArrayLike, lats: npt.ArrayLike, accuracy_m: npt.ArrayLike
) -> FloatArray:
    """Per fix, the learning statistic: its distance to the nearest segment over its stated
    accuracy (floored as the snapper floors it; NaN: the snapper's default, 10 m), clipped
    at ``CAP_RATIO``, squared."""
    acc = np.asarray(accuracy_m, dtype=float)
    acc = np.maximum(np.where(np.isfinite(acc), acc, STATED_M), MIN_ACCURACY_M)
    d = index.nearest_distance_many(lons, lats)
    out: FloatArray = np.minimum(d / acc, CAP_RATIO) ** 2
    return out


def distance_table(
    index: SegmentIndex, *, reports: int = TABLE_REPORTS, seed: int = 0
) -> DistanceTable:
    """Simulate :mod:`geo.noise`'s reports on ``index`` at every rung of ``SCALES``."""
    means = []
    honest = np.empty(0)
    for i, k in enumerate(SCALES):
        s = sample_index(index, reports, np.random.default_rng([seed, 31, i]), real_scale=k)
        stat = distance_stat(index, s.lon, s.lat, s.accuracy)
        means.append(float(np.mean(stat)))
        if k == 1.0:
            honest = stat
    return DistanceTable(
        np.asarray(SCALES, dtype=float), np.maximum.accumulate(np.asarray(means)), honest
    )


class PhoneScales:
    """Per reporter, the factor their stated accuracy is multiplied by (1.0 until known).

    ``table``: the network's :class:`DistanceTable`, or a function that makes it, called
    the first time some phone has ``MIN_REPORTS`` (so a process that never sees that many
    does not pay for the simulation at start-up). Thread-safe: ingest workers' threads
    observe, the web's nearby query reads."""

    def __init__(
        self, table: DistanceTable | Callable[[], DistanceTable], max_phones: int = MAX_PHONES
    ) -> None:
        self._table = table
        self._max = max_phones
        self._lock = threading.Lock()
        self._by: OrderedDict[str, deque[float]] = OrderedDict()
        self._factor: dict[str, float] = {}
        # reporter -> when their stored history was last read (a clock of the caller's)
        self._primed: OrderedDict[str, float] = OrderedDict()

    def table(self) -> DistanceTable:
        """The network's table (made now if it was given as a function)."""
        if not isinstance(self._table, DistanceTable):
            self._table = self._table()
        return self._table

    def clear(self) -> None:
        """Forget every phone (the table stays)."""
        with self._lock:
            self._by.clear()
            self._factor.clear()
            self._primed.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._by)

    def factor(self, reporter: str | None) -> float:
        if reporter is None:
            return 1.0
        with self._lock:
            return self._factor.get(reporter, 1.0)

    def factors(self, reporters: Sequence[str | None]) -> FloatArray:
        with self._lock:
            return np.array(
                [1.0 if r is None else self._factor.get(r, 1.0) for r in reporters], dtype=float
            )

    def unprimed(
        self, reporters: Iterable[str | None], now: float, refresh_s: float | None = None
    ) -> list[str]:
        """Of ``reporters``, those whose stored history was never read (or, with
        ``refresh_s``, not within that many seconds of ``now``): what :meth:`prime` wants."""
        with self._lock:
            out = []
            for r in dict.fromkeys(reporters):
                if r is None:
                    continue
                at = self._primed.get(r)
                if at is None or (refresh_s is not None and now - at > refresh_s):
                    out.append(r)
            return out

    def prime(self, history: Mapping[str, npt.ArrayLike], asked: Iterable[str], now: float) -> None:
        """Set each reporter's window to their stored statistics (oldest first, as
        :func:`distance_stat` gives them), and mark every one of ``asked`` as read at
        ``now`` (those with no history too; their window is left as it is). The stored
        reports include those this process placed before (they were committed), so the
        history replaces the window rather than adding to it: a process that starts, that
        sees only its share of a phone's reports, or that places none (the web role)
        judges the phone on its last WINDOW stored reports all the same."""
        with self._lock:
            for r in asked:
                self._primed[r] = now
                self._primed.move_to_end(r)
                while len(self._primed) > self._max:
                    self._primed.popitem(last=False)
            for r, values in history.items():
                old = [v for v in np.asarray(values, dtype=float).tolist() if np.isfinite(v)]
                if not old:
                    continue
                self._set_window(r, deque(old, maxlen=WINDOW))
                self._refresh(r)

    def _set_window(self, r: str, q: deque[float]) -> deque[float]:
        """Give ``r`` the window ``q`` as the most recently seen phone, forgetting the least
        recently seen past the bound (the lock held)."""
        self._by[r] = q
        self._by.move_to_end(r)
        while len(self._by) > self._max:
            gone, _ = self._by.popitem(last=False)
            self._factor.pop(gone, None)
        return q

    def _refresh(self, r: str) -> None:
        """Recompute one reporter's factor from their window (the lock held)."""
        q = self._by.get(r)
        if q is None or len(q) < MIN_REPORTS:
            self._factor.pop(r, None)
            return
        v = np.fromiter(q, float, len(q))
        mean = float(v.mean())
        table = self.table()
        if table.factor(mean) < INFLATE_FROM or mean <= table.honest_bound(v.size):
            self._factor.pop(r, None)
            return
        # Found to understate: snapped with the upper end of one standard error on its
        # statistic, since taking its error too small costs wrong answers and too large
        # only review. (The test above uses the plain mean, so honest phones' sampling
        # noise is not made worse.)
        upper = mean + UPPER_SE * float(v.std()) / math.sqrt(v.size)
        self._factor[r] = table.factor(upper)

    def observe(self, reporters: Sequence[str | None], ratios: npt.ArrayLike) -> None:
        """Add each report's statistic (in arrival order) to its reporter's window."""
        values = np.asarray(ratios, dtype=float)
        with self._lock:
            touched: set[str] = set()
            for r, v in zip(reporters, values.tolist(), strict=True):
                if r is None or not np.isfinite(v):
                    continue
                q = self._by.get(r)
                if q is None:
                    q = self._set_window(r, deque(maxlen=WINDOW))
                else:
                    self._by.move_to_end(r)
                q.append(v)
                touched.add(r)
            for r in touched:
                self._refresh(r)
