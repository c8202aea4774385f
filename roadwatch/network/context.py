"""The loaded segment network: geometry indexes for geolocation plus its rows in the database."""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import logging
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from geo.network import Network, load_network, segment_feature
from geo.noise import load_fitted
from geo.phones import PhoneScales, distance_table
from geo.robust import Bars, Calibration, RobustSnapper
from geo.snap import AreaIndex, SegmentIndex

from ..settings import Settings, SettingsError
from ..store import models
from .sync import sync

log = logging.getLogger(__name__)
DEMO_NETWORK = Path(__file__).resolve().parents[2] / "geo" / "data" / "zhengzhou_demo.geojson.gz"


def network_path(settings: Settings) -> Path:
    return DEMO_NETWORK if settings.network == "demo" else Path(settings.network)


class RecentSegments:
    """Per reporter, the segments their patrol track was on in the last WINDOW (issue 21:
    a signal for placing their next report). Points are snapped when the patrol message
    is stored, so a report only reads a small set here: no snapping on the live path.
    A process that does not store a chief's patrols reads them back from the database
    (roadwatch.network.tracks). Thread-safe: ingest writes, the web's nearby query reads."""

    WINDOW = dt.timedelta(minutes=10)
    KEEP = 200  # points per reporter at most (the latest by time)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # per reporter, POSIX seconds and segments in time order, in two parallel lists:
        # the read is on the live snapping path, and two bisects and a slice of plain
        # ints cost a few microseconds where a scan of every point cost ~17
        self._by: dict[str, tuple[list[float], list[int]]] = {}
        # per reporter, when (time.monotonic) their stored track was last read back
        self._read_at: dict[str, float] = {}

    def note(self, reporter: str, points: list[tuple[dt.datetime, int]]) -> int:
        """Add points (time, segment position); a point already here (the same time and
        segment, from a resend or read back from the store) is not added twice. Returns
        how many were added."""
        added = 0
        with self._lock:
            times, segs = self._by.setdefault(reporter, ([], []))
            for t, pos in sorted((t.timestamp(), pos) for t, pos in points):
                lo = bisect.bisect_left(times, t)
                hi = bisect.bisect_right(times, t, lo)
                if pos in segs[lo:hi]:
                    continue
                # in time order; a late message's points go in their place
                times.insert(hi, t)
                segs.insert(hi, pos)
                added += 1
            if len(times) > self.KEEP:
                del times[: len(times) - self.KEEP], segs[: len(segs) - self.KEEP]
        return added

    def clear(self) -> None:
        """Forget every track (what a process holds is a cache of the stored patrols)."""
        with self._lock:
            self._by.clear()
            self._read_at.clear()

    def due_for_reading(self, reporter: str, clock: float, refresh_s: float) -> bool:
        """Whether the reporter's stored track should be read back now (never read, or
        longer than ``refresh_s`` ago); if so it counts as read at ``clock``."""
        with self._lock:
            last = self._read_at.get(reporter)
            if last is not None and clock - last < refresh_s:
                return False
            self._read_at[reporter] = clock
            return True

    def of(self, reporter: str | None, at: dt.datetime) -> frozenset[int]:
        """Segments of the reporter's track within WINDOW before ``at`` (or up to a
        minute after: clocks differ)."""
        if reporter is None:
            return frozenset()
        with self._lock:
            track = self._by.get(reporter)
            if track is None:
                return frozenset()
            times, segs = track
            now = at.timestamp()
            lo = bisect.bisect_left(times, now - self.WINDOW.total_seconds())
            hi = bisect.bisect_right(times, now + 60.0)
            return frozenset(segs[lo:hi])


@dataclass(frozen=True)
class NetworkContext:
    network: Network
    digest: str  # sha256 of the file: tells whether the database holds this network
    index: SegmentIndex
    areas: AreaIndex
    position: dict[str, int] = field(repr=False)  # segment id -> position in network.segments
    district_names: dict[str, str] = field(repr=False)  # code -> name
    features: list[dict[str, Any]] = field(repr=False)  # GeoJSON of each segment, for the API
    # segment id -> its current version in the database (filled by sync_network)
    versions: dict[str, int] = field(default_factory=dict, repr=False)
    # reporter id -> positions of the segments they answer for (a prior for snapping)
    own_segments: dict[str, frozenset[int]] = field(default_factory=dict, repr=False)
    road_pattern: re.Pattern[str] | None = field(default=None, repr=False)
    # the live decider (issue 21): heavy-tailed, pavement-aware, calibrated; built on index
    robust: RobustSnapper | None = field(default=None, repr=False)
    recent: RecentSegments = field(default_factory=RecentSegments, repr=False)
    # each phone's real accuracy as its own fixes show it (issue 21: phones that understate)
    phones: PhoneScales | None = field(default=None, repr=False)

    def roads_in(self, text: str | None) -> set[str]:
        """Road names of this network mentioned in a note (longest match first)."""
        if not text or self.road_pattern is None:
            return set()
        return set(self.road_pattern.findall(text))

    def district_of_event(self, payload: dict[str, Any]) -> str | None:
        """The district a live event belongs to: its own, or its segment's."""
        district = payload.get("district")
        if isinstance(district, str) and district:
            return district
        pos = self.position.get(payload.get("segment_id") or "")
        return self.network.segments[pos].district if pos is not None else None

    @property
    def size(self) -> int:
        return len(self.network.segments)


def segment_index(net: Network, settings: Settings) -> SegmentIndex:
    """The index the pipeline snaps with (also what `network import` fits the bars on)."""
    return SegmentIndex(
        [s.geometry for s in net.segments],
        roads=[s.road for s in net.segments],
        max_distance_m=settings.snap_max_distance_m,
        ambiguity_m=settings.snap_ambiguity_m,
        min_confidence=settings.snap_min_confidence,
        distance_only_min_confidence=settings.snap_distance_only_min_confidence,
    )


def network_bars(path: Path, digest: str) -> Bars:
    """The bars fitted for this network file at import, or the shared defaults."""
    return network_fit(path, digest)[0]


def network_fit(path: Path, digest: str) -> tuple[Bars, Calibration | None]:
    """The bars and calibration fitted for this network file at import, or the shared
    defaults (the behaviour before per-network fits) when there are none or they cannot
    be used; calibration None also for a sidecar fitted before networks had their own."""
    try:
        bars, calibration = load_fitted(path, digest)
    except FileNotFoundError:  # a network from before per-network bars, or the demo's
        log.info(
            "network %s: no fitted bars (roadwatch network fit-bars); the shared defaults",
            path.name,
        )
        return Bars(), None
    except ValueError as exc:
        log.warning("network %s: fitted bars not used, the shared defaults: %s", path.name, exc)
        return Bars(), None
    log.info(
        "network %s: fitted bars %s, %s calibration",
        path.name,
        bars,
        "its own" if calibration is not None else "the global",
    )
    return bars, calibration


def _robust(index: SegmentIndex, path: Path, digest: str) -> RobustSnapper:
    bars, calibration = network_fit(path, digest)
    return RobustSnapper(index, **asdict(bars), calibration=calibration)


def load_network_context(settings: Settings) -> NetworkContext:
    path = network_path(settings)
    if not path.exists():
        raise FileNotFoundError(f"ROADWATCH_NETWORK: no such file: {path}")
    t0 = time.perf_counter()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    try:
        net = load_network(path)
    except ValueError as exc:
        raise SettingsError(f"ROADWATCH_NETWORK: {path} cannot be used: {exc}") from None
    index = segment_index(net, settings)
    position = {s.id: i for i, s in enumerate(net.segments)}
    own: dict[str, set[int]] = {}
    for a in net.assignments:
        if a.role == "road_chief" and a.segment_id in position:
            own.setdefault(a.person_id, set()).add(position[a.segment_id])
    # Long names first, so 花园路 is not also found as a shorter name inside it.
    names = sorted({s.road for s in net.segments if len(s.road) >= 2}, key=len, reverse=True)
    pattern = re.compile("|".join(re.escape(n) for n in names)) if names else None
    areas = AreaIndex([d.geometry for d in net.districts])
    ctx = NetworkContext(
        network=net,
        digest=digest,
        index=index,
        areas=areas,
        position=position,
        district_names={d.code: d.name for d in net.districts},
        features=[segment_feature(s) for s in net.segments],
        own_segments={k: frozenset(v) for k, v in own.items()},
        road_pattern=pattern,
        robust=_robust(index, path, digest),
        phones=PhoneScales(lambda: distance_table(index)),
    )
    log.info(
        "network %s: %d segments in %d districts, loaded in %.2f s",
        path.name,
        len(net.segments),
        len(net.districts),
        time.perf_counter() - t0,
    )
    return ctx


def sync_network(session: Session, ctx: NetworkContext, tz: dt.tzinfo = dt.UTC) -> bool:
    """Write the network into the database (with history) unless this file is already there.

    Either way, afterwards ctx.versions holds each segment's current version number.
    """
    current = session.get(models.Meta, "network_digest")
    changed = current is None or current.value != ctx.digest
    if changed:
        summary = sync(session, ctx.network, tz)
        log.info("network: %s", summary)
        session.merge(models.Meta(key="network_digest", value=ctx.digest))
        session.flush()
    ctx.versions.clear()
    ctx.versions.update(
        (sid, version)
        for sid, version in session.execute(select(models.Segment.id, models.Segment.version))
    )
    return changed
