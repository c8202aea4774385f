"""The loaded segment network: geometry indexes for geolocation plus its rows in the database."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shapely.geometry import mapping
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from geo.network import Network, load_network, segment_feature
from geo.snap import AreaIndex, SegmentIndex

from . import models
from .settings import Settings, SettingsError

log = logging.getLogger(__name__)
DEMO_NETWORK = Path(__file__).resolve().parent.parent / "geo" / "data" / "zhengzhou_demo.geojson.gz"


def network_path(settings: Settings) -> Path:
    return DEMO_NETWORK if settings.network == "demo" else Path(settings.network)


@dataclass(frozen=True)
class NetworkContext:
    network: Network
    digest: str  # sha256 of the file: tells whether the database holds this network
    index: SegmentIndex
    areas: AreaIndex
    position: dict[str, int] = field(repr=False)  # segment id -> position in network.segments
    district_names: dict[str, str] = field(repr=False)  # code -> name
    features: list[dict[str, Any]] = field(repr=False)  # GeoJSON of each segment, for the API

    @property
    def size(self) -> int:
        return len(self.network.segments)


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
    index = SegmentIndex(
        [s.geometry for s in net.segments],
        roads=[s.road for s in net.segments],
        max_distance_m=settings.snap_max_distance_m,
        ambiguity_m=settings.snap_ambiguity_m,
    )
    areas = AreaIndex([d.geometry for d in net.districts])
    ctx = NetworkContext(
        network=net,
        digest=digest,
        index=index,
        areas=areas,
        position={s.id: i for i, s in enumerate(net.segments)},
        district_names={d.code: d.name for d in net.districts},
        features=[segment_feature(s) for s in net.segments],
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
    """Write the network's districts, segments, chiefs and assignments unless already there.

    Returns True when rows were written. Segments that reports point to are never deleted:
    rows are merged by id (issue #4 adds full history across re-imports).
    """
    current = session.get(models.Meta, "network_digest")
    if current is not None and current.value == ctx.digest:
        return False
    net = ctx.network
    t0 = time.perf_counter()
    for d in net.districts:
        session.merge(
            models.District(code=d.code, name=d.name, kind=d.kind, geometry=mapping(d.geometry))
        )
    session.flush()
    known = set(session.scalars(select(models.Segment.id)))
    new_rows = []
    for s in net.segments:
        row = models.Segment(
            id=s.id,
            name=s.name,
            road=s.road,
            from_road=s.from_road,
            to_road=s.to_road,
            district=s.district,
            subdistrict=s.subdistrict,
            road_class=s.road_class,
            length_m=s.length_m,
            geometry=mapping(s.geometry),
        )
        if s.id in known:
            session.merge(row)
        else:
            new_rows.append(row)
    session.add_all(new_rows)
    known_people = set(session.scalars(select(models.Reporter.id)))
    for p in net.people:
        row_p = models.Reporter(
            id=p.id,
            name=p.name,
            level=p.level,
            district=p.district,
            subdistrict=p.subdistrict,
            title=p.title,
        )
        if p.id in known_people:
            session.merge(row_p)
        else:
            session.add(row_p)
    session.flush()
    # Assignments come with the network file; replace the file's set wholesale.
    session.execute(delete(models.Assignment).where(models.Assignment.role == "road_chief"))
    session.add_all(
        models.Assignment(
            segment_id=a.segment_id,
            reporter_id=a.person_id,
            level=a.level,
            role=a.role,
            valid_from=_day_start(a.valid_from, tz),
            valid_to=_day_start(a.valid_to, tz) if a.valid_to else None,
        )
        for a in net.assignments
    )
    session.merge(models.Meta(key="network_digest", value=ctx.digest))
    log.info("network written to the database in %.2f s", time.perf_counter() - t0)
    return True


def _day_start(day: dt.date, tz: dt.tzinfo) -> dt.datetime:
    """Midnight of `day` in the city's zone: assignments change at local midnight."""
    return dt.datetime(day.year, day.month, day.day, tzinfo=tz)
