"""A photo uploaded after its report places the report again while it waits in review.

The contract lets a report arrive before its photos (it names them by SHA-256), and the
pipeline places a report when it arrives, with the photos uploaded by then. A phone that
sends the report first, or a script that uploads afterwards, used to lose what the photo's
EXIF says (the camera's position and direction) for geolocation. So when a photo arrives,
the uploader's reports that name it and still wait in review (``needs_review``) are placed
again, as the pipeline would have placed them with every photo they name now uploaded:

* certain now: the report is accepted on that segment and waits for the dispatcher
  (``case_status`` "new", as a report accepted at intake), with a transition by
  ``geolocation`` naming the photo, an audit entry by the uploader, and live events;
* still uncertain: its position and candidates are updated (the review screen then offers
  what the photo says), and it stays in review;
* nothing changes when the photo does not fit the report (another time or place: the
  rules of :func:`roadwatch.geolocate.photo_of`) or says nothing new.

Only the uploader's own reports: a photo is evidence about its author's report, and an
upload must never move anyone else's. A report staff have settled meanwhile is left alone
(each row is locked and read again before it changes). A report's fix was counted towards
what geo.phones learns of the phone when it arrived; placing it again does not count it
twice. Core code: no Flask; the web layer publishes the events and wakes the dispatcher.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from .cases.workflow import keep_ranked_state
from .geolocate import PHOTO_WINDOW, PhotoFix, place
from .ingest.payloads import ReportIn
from .network.context import NetworkContext
from .network.phones import prime_phones
from .network.tracks import read_tracks
from .store import audit, models
from .store.events import LiveEvent, record_events
from .store.segments import segment_states

log = logging.getLogger(__name__)

BY = "geolocation"  # the transition's `by`: the snapper decided, on the uploader's photo
# At most this many pending reports are placed again per upload (a phone names a photo in
# one report; a script may reuse one for a few).
MAX_REPORTS = 50


@dataclass(frozen=True, slots=True)
class PlacedAgain:
    """One report the photo changed: its status now, and its segment when accepted."""

    report_id: str
    status: str  # accepted | needs_review
    segment_id: str | None
    confidence: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "report_id": self.report_id,
            "status": self.status,
            "segment_id": self.segment_id,
            "confidence": None if self.confidence is None else round(self.confidence, 3),
        }


def place_with_late_photo(
    engine: Engine,
    sessions: sessionmaker[Session],
    ctx: NetworkContext,
    sha256: str,
    reporter_id: str,
    who: audit.Actor,
    now: dt.datetime | None = None,
) -> tuple[list[PlacedAgain], list[LiveEvent]]:
    """Place again the uploader's pending reports that name photo ``sha256``; returns what
    changed and the live events to publish (already in the event log)."""
    now = now or models.utcnow()
    with sessions() as session:
        meta = session.get(models.PhotoMeta, sha256)
        if meta is None or (meta.lat is None or meta.lon is None) and meta.bearing_deg is None:
            return [], []  # nothing in the photo can place a report
        when = meta.taken_at or meta.uploaded_at
        r = models.Report
        rows = [
            row
            for row in session.scalars(
                select(r)
                .where(
                    r.status == "needs_review",
                    r.reporter_id == reporter_id,
                    r.observed_at.between(when - PHOTO_WINDOW, when + PHOTO_WINDOW),
                )
                .order_by(r.received_at, r.id)
                .limit(MAX_REPORTS * 4)
            )
            if sha256 in (row.photos or [])
        ][:MAX_REPORTS]
        if not rows:
            return [], []
        fixes = _fixes(session, sorted({h for row in rows for h in row.photos or []}))
        reports = [(row.id, _report_in(row), (row.snap or {}).get("photo")) for row in rows]
    prime_phones(engine, ctx, [reporter_id])  # the phone's learnt accuracy, as at intake
    # the chief's patrol track around each report, which this process may never have seen
    read_tracks(engine, ctx, {reporter_id: [report.observed_at for _, report, _ in reports]})
    changed: dict[str, Any] = {}
    for rid, report, photo_before in reports:
        p = place(report, ctx, fixes, learn=False)
        used = (p.snap or {}).get("photo")
        if used is None or used == photo_before or p.status not in ("accepted", "needs_review"):
            continue  # no photo fits it, the one used before still decides, or refused
        changed[rid] = p
    if not changed:
        return [], []
    out: list[PlacedAgain] = []
    payloads: list[tuple[str, dict[str, Any]]] = []
    touched: list[str] = []
    with sessions.begin() as session:
        for rid, p in changed.items():
            row = session.get(models.Report, rid, with_for_update=True)
            if row is None or row.status != "needs_review":
                continue  # settled by staff meanwhile
            snap = {**(p.snap or {}), "late_photo": True}
            row.lat, row.lon = p.lat, p.lon
            row.snap, row.snap_confidence, row.snap_distance_m = snap, p.confidence, p.distance_m
            out.append(PlacedAgain(rid, p.status, p.segment_id, p.confidence))
            if p.status != "accepted" or p.segment_id is None:
                row.district = p.district or row.district
                continue
            keep_ranked_state(session, [rid], now)  # the week's frozen ranking reads it
            row.status, row.case_status = "accepted", "new"  # the dispatcher opens its case
            row.segment_id, row.district = p.segment_id, p.district
            row.segment_version = ctx.versions.get(p.segment_id)
            session.add(
                models.ReportTransition(
                    report_id=rid,
                    at=now,
                    from_status="needs_review",
                    to_status="accepted",
                    by=BY,
                    note="placed by its photo, uploaded after the report",
                    data={
                        "segment_id": p.segment_id,
                        "photo": snap["photo"],
                        "confidence": p.confidence,
                    },
                )
            )
            session.flush()
            audit.record(
                session,
                who,
                "report.photo_placed",
                rid,
                at=now,
                segment_id=p.segment_id,
                district=p.district,
                photo=snap["photo"],
            )
            payloads.append(
                (
                    "case",
                    {
                        "id": rid,
                        "status": "accepted",
                        "segment_id": p.segment_id,
                        "district": p.district,
                        "by": BY,
                    },
                )
            )
            if p.segment_id not in touched:
                touched.append(p.segment_id)
        payloads += [("segment", st) for st in segment_states(session, touched)]
        events = record_events(session, payloads, now)
    for one in out:
        log.info(
            "report %s placed again with photo %s, uploaded after it: %s%s",
            one.report_id,
            sha256[:12],
            one.status,
            f" on {one.segment_id}" if one.status == "accepted" else "",
        )
    return out, events


def _fixes(session: Session, hashes: Sequence[str]) -> dict[str, PhotoFix]:
    """The EXIF fixes of the uploaded ones among ``hashes``."""
    p = models.PhotoMeta
    rows = session.scalars(select(p).where(p.sha256.in_(list(hashes))))
    return {m.sha256: PhotoFix.of(m) for m in rows}


def _report_in(row: models.Report) -> ReportIn:
    """A stored report as validation gave it to the pipeline: the fix as sent (in its
    CRS), the stated accuracy and direction, the chief's pick."""
    return ReportIn(
        report_id=row.id,
        reporter_id=row.reporter_id,
        observed_at=row.observed_at,
        lat=row.lat_in,
        lon=row.lon_in,
        crs=row.crs,
        accuracy_m=row.accuracy_m,
        heading_deg=row.heading_deg,
        category=row.category,
        severity=row.severity,
        note=row.note,
        photos=tuple(row.photos or ()),
        segment_hint=row.segment_hint,
    )
