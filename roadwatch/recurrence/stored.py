"""The week's hot-spot, recurrence and forecast analysis, computed once and stored.

Fitting the forecast on the demo city takes seconds, too long for a request, so the
`jobs` role and `serve` compute it in the background (Refresher: at start, then whenever
the week has none) and keep it in `leaders_analysis`, one row per week; the leaders' API
reads the row (roadwatch.web.leaders) and computes on demand only when it is missing.
Patrol plans are not stored: they depend on the chiefs in office and their duty hours,
and take milliseconds from the stored rates.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import threading
import zlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from geo.network import Network

from .. import clock
from ..settings import Settings
from ..store import models
from . import forecast, hotspots
from .history import FloatArray, week_start
from .load import load_history

log = logging.getLogger(__name__)
ANALYSIS_WEEKS = 12
REFRESH_CHECK_S = 600.0  # how often the refresher looks for a week without its analysis


@dataclass
class Analysis:
    start: dt.datetime  # first day of the history (a local Monday)
    weeks: int
    segments: list[tuple[str, str]]  # (id, district), the rates' row order
    hot: list[hotspots.HotSpot]
    recurrence: dict[str, list[dict[str, Any]]]  # segment → per category, most recurrent first
    by_window: dict[str, dict[int, int]]  # segment → hour-of-week window → findings
    rates: FloatArray | None  # [segment, window] next week's expected findings
    seen: npt.NDArray[np.int64]  # findings per segment over the history
    profile: FloatArray  # city-wide share of findings per window
    as_of: dt.datetime
    source: str = "computed"  # "stored" when read from leaders_analysis

    @property
    def index(self) -> dict[str, int]:
        return {sid: i for i, (sid, _) in enumerate(self.segments)}


def week_key(when: dt.datetime) -> str:
    return week_start(when).date().isoformat()


def compute(engine: Engine, network: Network, end: dt.datetime) -> Analysis:
    h = load_history(engine, network, end=end, weeks=ANALYSIS_WEEKS)
    rec: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in hotspots.recurrence(h.findings):
        rec[r.segment].append({**asdict(r), "windows": list(r.windows)})  # as JSON has it
    for items in rec.values():
        items.sort(key=lambda r: (-r["share"], -r["closed"], r["category"]))
    totals = h.counts.sum(axis=0)
    by_window = {
        s.id: {int(w): int(totals[i, w]) for w in np.flatnonzero(totals[i])}
        for i, s in enumerate(h.segments)
        if totals[i].any()
    }
    model = forecast.fit(h, slice(0, ANALYSIS_WEEKS)) if h.counts.any() else None
    return Analysis(
        h.start,
        ANALYSIS_WEEKS,
        [(s.id, s.district) for s in h.segments],
        hotspots.rank_hot_spots(h),
        dict(rec),
        by_window,
        model.rates if model is not None else None,
        h.counts.sum(axis=(0, 2)),
        hotspots.window_profile(h),
        end,
    )


def encode(a: Analysis) -> bytes:
    body = {
        "start": a.start.isoformat(),
        "weeks": a.weeks,
        "segments": a.segments,
        "hot": [asdict(h) for h in a.hot],
        "recurrence": a.recurrence,
        "by_window": a.by_window,
        # raw little-endian doubles: JSON lists of 200,000 floats take most of a second to read
        "rates": None
        if a.rates is None
        else base64.b64encode(a.rates.astype("<f8").tobytes()).decode(),
        "seen": a.seen.tolist(),
        "profile": a.profile.tolist(),
        "as_of": a.as_of.isoformat(),
    }
    return zlib.compress(json.dumps(body, separators=(",", ":")).encode(), 6)


def decode(blob: bytes) -> Analysis:
    body = json.loads(zlib.decompress(blob))
    return Analysis(
        dt.datetime.fromisoformat(body["start"]),
        int(body["weeks"]),
        [(str(i), str(d)) for i, d in body["segments"]],
        [hotspots.HotSpot(**h) for h in body["hot"]],
        body["recurrence"],
        {s: {int(w): n for w, n in ws.items()} for s, ws in body["by_window"].items()},
        None if body["rates"] is None else _rates(body["rates"], len(body["segments"])),
        np.array(body["seen"], dtype=np.int64),
        np.array(body["profile"], dtype=np.float64),
        dt.datetime.fromisoformat(body["as_of"]),
        "stored",
    )


def _rates(text: str, segments: int) -> FloatArray:
    out: FloatArray = np.frombuffer(base64.b64decode(text), dtype="<f8").astype(np.float64)
    return out.reshape(segments, -1)


def load(engine: Engine, when: dt.datetime) -> Analysis | None:
    """The stored analysis of the week holding `when`, if any."""
    q = select(models.LeadersAnalysis.payload).where(models.LeadersAnalysis.week == week_key(when))
    with engine.connect() as conn:
        blob = conn.execute(q).scalar()
    return decode(blob) if blob is not None else None


def save(engine: Engine, a: Analysis, now: dt.datetime) -> None:
    """Store (or replace) the analysis of its week; two processes at once: the later wins."""
    key = week_key(a.as_of)
    row = {"week": key, "computed_at": now, "payload": encode(a)}
    table = models.LeadersAnalysis.__table__
    with engine.begin() as conn:
        done = conn.execute(
            table.update().where(table.c.week == key).values(**row)  # type: ignore[attr-defined]
        ).rowcount
        if not done:
            try:
                conn.execute(table.insert().values(**row))  # type: ignore[attr-defined]
            except IntegrityError:  # another process stored it a moment ago: same data
                log.info("leaders analysis of %s stored meanwhile by another process", key)


def refresh(engine: Engine, network: Network, now: dt.datetime, *, force: bool = False) -> bool:
    """Compute and store this week's analysis unless it is there; True if computed."""
    if not force and load_exists(engine, now):
        return False
    save(engine, compute(engine, network, now), now)
    return True


def load_exists(engine: Engine, when: dt.datetime) -> bool:
    q = select(models.LeadersAnalysis.week).where(models.LeadersAnalysis.week == week_key(when))
    with engine.connect() as conn:
        return conn.execute(q).first() is not None


class Refresher:
    """A daemon thread: this week's analysis at start, then again when a new week begins."""

    def __init__(
        self,
        engine: Engine,
        network: Callable[[], Network],
        now: Callable[[], dt.datetime],
        *,
        interval: float = REFRESH_CHECK_S,
    ) -> None:
        self.engine, self.now, self.interval = engine, now, interval
        self._network_of = network
        self._network: Network | None = None
        self.computed = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def network(self) -> Network:
        """Loaded once, in this thread (the network does not change while a process runs)."""
        if self._network is None:
            self._network = self._network_of()
        return self._network

    def run_once(self) -> bool:
        done = refresh(self.engine, self.network(), self.now())
        self.computed += done
        return done

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # a failed pass is retried next time; the API falls back
                log.exception("leaders analysis refresh failed")
            self._stop.wait(self.interval)

    def start(self) -> Refresher:
        self._thread = threading.Thread(target=self._loop, name="leaders-analysis", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


def refresher_for(
    settings: Settings, engine: Engine, network: Callable[[], Network] | None = None
) -> Refresher | None:
    """The background refresh of `jobs` and `serve`, or None when leaders_refresh_s is 0;
    without `network`, the configured network file is read in the thread."""
    if settings.leaders_refresh_s <= 0:
        return None
    if network is None:
        from geo.network import load_network

        from ..network.context import network_path

        def network() -> Network:
            return load_network(network_path(settings))

    return Refresher(engine, network, clock.now, interval=settings.leaders_refresh_s)
