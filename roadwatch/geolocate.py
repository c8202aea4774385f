"""Tie a validated report to one segment, or say why it cannot be tied (→ needs_review)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from geo.crs import SUPPORTED_CRS, to_wgs84
from geo.noise import STATED_M
from geo.phones import distance_stat
from geo.robust import CATEGORY_KINDS, LOOK_SIGMA_DEG, MAX_CERTAIN_ACCURACY_M, RobustSnap
from geo.snap import Snap

from .ingest.errors import FieldError
from .ingest.payloads import ReportIn
from .network.context import NetworkContext

# A hand-picked segment is believed when the GPS fix is no farther from it than this.
HINT_PLAUSIBLE_M = 150.0

# A report's photos (issue 21): the camera's EXIF position and direction, read at upload
# (store.photos) into photo_meta. A photo counts only when it was taken (or, without an
# EXIF time, uploaded) within PHOTO_WINDOW of the report's observed_at and its fix lies
# within PHOTO_PLAUSIBLE_M of the report's own (a photo from yesterday or another street
# says nothing about this report).
PHOTO_WINDOW = dt.timedelta(minutes=10)
PHOTO_PLAUSIBLE_M = 200.0
PHOTO_DEFAULT_ACCURACY_M = 30.0  # a photo fix that states no error (GPSHPositioningError)
# GPSImgDirection against magnetic north (ref M) or an unstated reference: no declination
# is known here (about -4 degrees in Henan, up to -10 in the north-east), so the direction
# is used as it is, with a wider spread.
LOOK_SIGMA_UNSURE_DEG = 45.0
_EARTH_M = 6_371_008.8

# Where on the street cross-section a category's thing is (geo.robust weighs the
# pavement offset by it): on the carriageway (manholes, the road surface, standing
# water, parked cars) or at the frontage (stalls, shop overspill, signs, facades).
# Everything else: unknown (both).
CARRIAGEWAY = frozenset(
    {"E0104", "E0110", "E0112", "E0401", "E0404", "E0406", "E0407", "E0505"}
    | {"C0101", "C0102", "C0103", "C0104"}
)
FRONTAGE = frozenset(
    {"E0101", "E0113", "E0201", "E0202", "E0205", "E0501", "E0504", "E0510", "E0511"}
    | {"E0513", "C0307"}
)


def category_kind(code: str) -> str:
    if code in CARRIAGEWAY:
        return "carriageway"
    return "frontage" if code in FRONTAGE else "unknown"


@dataclass(frozen=True, slots=True)
class Placement:
    status: str  # accepted | needs_review | rejected
    lat: float | None  # WGS84
    lon: float | None
    segment_id: str | None
    district: str | None
    distance_m: float | None
    confidence: float | None
    snap: dict[str, Any] | None
    error: FieldError | None = None


@dataclass(frozen=True, slots=True)
class PhotoFix:
    """What a photo's EXIF said (a photo_meta row with a position or a direction)."""

    sha256: str
    lat: float | None  # WGS84
    lon: float | None
    accuracy_m: float | None
    bearing_deg: float | None  # GPSImgDirection, clockwise from north
    bearing_ref: str | None  # T true, M magnetic, None unstated
    taken_at: dt.datetime | None
    uploaded_at: dt.datetime | None

    @classmethod
    def of(cls, row: Any) -> PhotoFix:
        """From a photo_meta row (a Core row or the ORM object: the same names)."""
        return cls(
            row.sha256,
            row.lat,
            row.lon,
            row.accuracy_m,
            row.bearing_deg,
            row.bearing_ref,
            row.taken_at,
            row.uploaded_at,
        )


@dataclass(frozen=True, slots=True)
class _FromPhoto:
    """A report's position, accuracy and camera direction once its photo is weighed."""

    lon: float | None
    lat: float | None
    accuracy_m: float | None
    look_deg: float | None
    look_sigma_deg: float
    info: dict[str, Any]  # what the photo gave, for the stored snap details


def _metres(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Distance over a few hundred metres (equirectangular: plenty within a city)."""
    k = math.cos(math.radians((lat1 + lat2) / 2.0))
    return _EARTH_M * math.hypot(math.radians(lon2 - lon1) * k, math.radians(lat2 - lat1))


def photo_of(
    report: ReportIn, lon: float | None, lat: float | None, fixes: Mapping[str, PhotoFix]
) -> PhotoFix | None:
    """The first of the report's photos whose EXIF fits the report: taken within
    PHOTO_WINDOW of observed_at (no EXIF time: uploaded within it) and, when both have a
    position, within PHOTO_PLAUSIBLE_M of the report's own (WGS84)."""
    for sha in report.photos:
        p = fixes.get(sha)
        if p is not None and _fits(report, lon, lat, p):
            return p
    return None


def _fits(report: ReportIn, lon: float | None, lat: float | None, p: PhotoFix) -> bool:
    when = p.taken_at or p.uploaded_at
    if when is None or abs(when - report.observed_at) > PHOTO_WINDOW:
        return False
    if p.lat is None or p.lon is None:
        return p.bearing_deg is not None
    return lon is None or lat is None or _metres(lon, lat, p.lon, p.lat) <= PHOTO_PLAUSIBLE_M


def _from_photo(
    report: ReportIn, lon: float | None, lat: float | None, photo: PhotoFix, look: bool
) -> _FromPhoto | None:
    """What `photo` (plausible, see photo_of) changes for the report, or None.

    Position: a report without one is placed at the photo's; a report with one takes the
    photo's only when the photo states a smaller error. The two are never averaged: both
    fixes come from the same phone's GPS seconds apart (same satellites, same reflections
    off the same buildings), so their errors are strongly correlated and a mean would
    claim a precision neither has. Direction: the camera's, where it faced the problem
    (`look`: only when the snapper can weigh it)."""
    acc = report.accuracy_m
    info: dict[str, Any] = {"photo": photo.sha256}
    if photo.lat is not None and photo.lon is not None:
        better = photo.accuracy_m is not None and (acc is None or photo.accuracy_m < acc)
        if lon is None or lat is None or better:
            lon, lat = photo.lon, photo.lat
            acc = photo.accuracy_m if photo.accuracy_m is not None else PHOTO_DEFAULT_ACCURACY_M
            info["position"] = "photo"
            info["accuracy_m"] = round(acc, 1)
    look_deg = None
    sigma = LOOK_SIGMA_DEG
    if look and photo.bearing_deg is not None and lon is not None:
        look_deg = photo.bearing_deg % 360.0
        if photo.bearing_ref != "T":
            sigma = LOOK_SIGMA_UNSURE_DEG
        info["look_deg"] = round(look_deg, 1)
        info["look_ref"] = photo.bearing_ref or "?"
    if len(info) == 1:
        return None
    return _FromPhoto(lon, lat, acc, look_deg, sigma, info)


def place(
    report: ReportIn,
    ctx: NetworkContext,
    photos: Mapping[str, PhotoFix] | None = None,
    *,
    learn: bool = True,
) -> Placement:
    """One report (the scalar twin of place_many); `photos`: EXIF of photos by SHA-256.
    ``learn``: count the fix towards what geo.phones learns of the phone (not when a
    stored report is placed again: its fix was counted when it arrived)."""
    lon = lat = None
    if report.lat is not None and report.lon is not None:
        wlon, wlat = to_wgs84(report.lon, report.lat, report.crs)
        lon, lat = float(wlon), float(wlat)
    acc, look, sigma = report.accuracy_m, None, LOOK_SIGMA_DEG
    extra = None
    photo = photo_of(report, lon, lat, photos) if photos and report.photos else None
    if photo is not None:
        used = _from_photo(report, lon, lat, photo, ctx.robust is not None)
        if used is not None:
            lon, lat, acc = used.lon, used.lat, used.accuracy_m
            look, sigma, extra = used.look_deg, used.look_sigma_deg, used.info
    if lon is None or lat is None:
        return _decide(report, ctx, None, None, None, None)
    area = ctx.areas.locate(lon, lat)
    if ctx.robust is not None:
        snap_acc, factors = learned_accuracy(ctx, [report.reporter_id], [acc])
        a = None if math.isnan(snap_acc[0]) else float(snap_acc[0])
        snap = _robust(report, ctx, lon, lat, a, look, sigma)
        placed = _noted(_decide(report, ctx, lon, lat, area, snap, accuracy_m=a), extra)
        if learn:
            learn_accuracy(ctx, [report.reporter_id], [lon], [lat], [acc])
        return _scaled(placed, float(factors[0]))
    snap = ctx.index.snap(lon, lat, accuracy_m=acc, heading_deg=report.heading_deg)
    snap = _second_look(report, ctx, lon, lat, snap, acc)
    return _noted(_decide(report, ctx, lon, lat, area, snap), extra)


def _noted(p: Placement, extra: dict[str, Any] | None) -> Placement:
    """The placement with what the photo gave added to its snap details."""
    if not extra or p.snap is None:
        return p
    return replace(p, snap={**p.snap, **extra})


def _robust(
    report: ReportIn,
    ctx: NetworkContext,
    lon: float,
    lat: float,
    accuracy_m: float | None,
    look_deg: float | None = None,
    look_sigma_deg: float = LOOK_SIGMA_DEG,
) -> Snap:
    """geo.robust with every signal the report carries: accuracy (times what its phone's
    own fixes showed: see learned_accuracy), direction of travel, the reporter's own
    segments, road names in the note, the category's place, and the direction its
    photo's camera faced."""
    assert ctx.robust is not None
    r = ctx.robust.snap(
        lon,
        lat,
        accuracy_m=accuracy_m,
        heading_deg=report.heading_deg,
        prior=prior_of(ctx, report),
        road_hint=ctx.roads_in(report.note) or None,
        kind=category_kind(report.category),
        look_deg=look_deg,
        look_sigma_deg=look_sigma_deg,
    )
    return as_snap(r)


def learned_accuracy(
    ctx: NetworkContext, reporters: Sequence[str | None], accuracy_m: Sequence[float | None]
) -> tuple[np.ndarray, np.ndarray]:
    """The accuracy to snap with (NaN: none stated and none learnt) and the factor each
    reporter's phone earned (geo.phones: 1.0 until its fixes show it understates)."""
    acc = np.array([np.nan if a is None else a for a in accuracy_m], dtype=float)
    if ctx.phones is None:
        return acc, np.ones(acc.size)
    factor = ctx.phones.factors(reporters)
    scaled = factor != 1.0
    acc[scaled] = np.where(np.isnan(acc[scaled]), STATED_M, acc[scaled]) * factor[scaled]
    return acc, factor


def learn_accuracy(
    ctx: NetworkContext,
    reporters: Sequence[str | None],
    lons: Sequence[float] | np.ndarray,
    lats: Sequence[float] | np.ndarray,
    accuracy_m: Sequence[float | None] | np.ndarray,
) -> None:
    """Add placed reports' fixes (WGS84, with the accuracy their phone *stated*) to what
    geo.phones learns of each phone: one nearest-segment query for the batch."""
    if ctx.phones is None or not len(reporters):
        return
    acc = np.array([np.nan if a is None else a for a in accuracy_m], dtype=float)
    ctx.phones.observe(reporters, distance_stat(ctx.index, lons, lats, acc))


def _scaled(placed: Placement, factor: float) -> Placement:
    """Say in the stored snap details when the phone's stated accuracy was not believed."""
    if factor != 1.0 and placed.snap is not None and placed.snap.get("method") == "nearest":
        placed.snap["accuracy_factor"] = round(factor, 2)
    return placed


def prior_of(ctx: NetworkContext, report: ReportIn) -> frozenset[int]:
    """The reporter's own segments and those their patrol track was on in the last
    minutes (ctx.recent)."""
    own = ctx.own_segments.get(report.reporter_id, frozenset())
    recent = ctx.recent.of(report.reporter_id, report.observed_at)
    return own | recent if recent else own


def note_patrol(ctx: NetworkContext, reporter: str, points: Sequence[Any]) -> int:
    """Remember the segments of a patrol message's points (t, lon, lat, accuracy; WGS84)
    for prior_of: snapped once here, vectorised; only certain points count. Returns how
    many were new to ctx.recent."""
    if ctx.robust is None or not points:
        return 0
    lon = np.array([p[1] for p in points], dtype=float)
    lat = np.array([p[2] for p in points], dtype=float)
    acc = np.array([np.nan if p[3] is None else p[3] for p in points], dtype=float)
    got = ctx.robust.snap_many(lon, lat, accuracy_m=acc)
    keep = [(points[i][0], int(got.index[i])) for i in np.flatnonzero(got.certain).tolist()]
    return ctx.recent.note(reporter, keep) if keep else 0


def as_snap(r: RobustSnap) -> Snap:
    """A geo.robust answer in the Snap shape the decision below reads."""
    if r.index is None:
        return Snap(None, None, None, None, None, 0.0, False)
    return Snap(
        r.index,
        r.distance_m,
        r.chainage_m,
        r.runner_up,
        None,
        r.confidence,
        not r.certain,
        None,
        r.raw,
        r.candidates,
        r.boundary,
    )


def _second_look(
    report: ReportIn, ctx: NetworkContext, lon: float, lat: float, snap: Snap, acc: float | None
) -> Snap:
    """When geometry and heading leave two segments close, use the reporter's own segments
    and a road named in the note: honest signals that settle most such cases."""
    if not snap.ambiguous:
        return snap
    prior = ctx.own_segments.get(report.reporter_id)
    hint = ctx.roads_in(report.note)
    if not prior and not hint:
        return snap
    return ctx.index.snap(
        lon,
        lat,
        accuracy_m=acc,
        heading_deg=report.heading_deg,
        prior=prior,
        road_hint=hint or None,
    )


def place_many(
    reports: Sequence[ReportIn],
    ctx: NetworkContext,
    photos: Mapping[str, PhotoFix] | None = None,
) -> list[Placement]:
    """A batch of reports at once: CRS conversion, area lookup and snapping vectorised.
    `photos`: the EXIF of the batch's photos by SHA-256 (one query, pipeline._place)."""
    n = len(reports)
    lons = np.full(n, np.nan)
    lats = np.full(n, np.nan)
    acc = np.full(n, np.nan)
    heading = np.full(n, np.nan)
    has_pos = np.zeros(n, dtype=bool)
    for i, r in enumerate(reports):
        if r.heading_deg is not None:
            heading[i] = r.heading_deg
        if r.lat is not None and r.lon is not None:
            lons[i], lats[i], has_pos[i] = r.lon, r.lat, True
            if r.accuracy_m is not None:
                acc[i] = r.accuracy_m
    crs = np.array([r.crs for r in reports])
    for name in SUPPORTED_CRS:
        m = has_pos & (crs == name)
        if m.any():
            lons[m], lats[m] = to_wgs84(lons[m], lats[m], name)
    extras: list[dict[str, Any] | None] = [None] * n
    look: Any = None  # per report, NaN: none; None while no report has one
    sigma: Any = LOOK_SIGMA_DEG
    if photos:
        for i, r in enumerate(reports):
            if not r.photos:
                continue
            lon_i = float(lons[i]) if has_pos[i] else None
            lat_i = float(lats[i]) if has_pos[i] else None
            photo = photo_of(r, lon_i, lat_i, photos)
            if photo is None:
                continue
            used = _from_photo(r, lon_i, lat_i, photo, ctx.robust is not None)
            if used is None or used.lon is None or used.lat is None:
                continue
            lons[i], lats[i], has_pos[i] = used.lon, used.lat, True
            acc[i] = np.nan if used.accuracy_m is None else used.accuracy_m
            if used.look_deg is not None:
                if look is None:
                    look, sigma = np.full(n, np.nan), np.full(n, LOOK_SIGMA_DEG)
                look[i], sigma[i] = used.look_deg, used.look_sigma_deg
            extras[i] = used.info
    idx = np.flatnonzero(has_pos).tolist()
    areas = ctx.areas.locate_many(lons[idx], lats[idx])
    snaps: Any
    factors = np.ones(len(idx))
    snap_acc = np.full(len(idx), np.nan)
    if ctx.robust is not None:
        kinds = np.array([CATEGORY_KINDS[category_kind(reports[i].category)] for i in idx])
        reporters = [reports[i].reporter_id for i in idx]
        # the accuracy stated for the fix used (the phone's, or its photo's)
        stated = [None if math.isnan(acc[i]) else float(acc[i]) for i in idx]
        snap_acc, factors = learned_accuracy(ctx, reporters, stated)
        batch = ctx.robust.snap_many(
            lons[idx],
            lats[idx],
            accuracy_m=snap_acc,
            heading_deg=heading[idx],
            kind=kinds,
            priors=[prior_of(ctx, reports[i]) for i in idx],
            road_hints=[ctx.roads_in(reports[i].note) or None for i in idx],
            look_deg=None if look is None else look[idx],
            look_sigma_deg=sigma if look is None else sigma[idx],
        )
        snaps = [as_snap(batch[k]) for k in range(len(batch))]
        # learnt after the batch is placed: a phone is judged on its earlier fixes only
        learn_accuracy(ctx, reporters, lons[idx], lats[idx], stated)
    else:
        snaps = ctx.index.snap_many(
            lons[idx], lats[idx], accuracy_m=acc[idx], heading_deg=heading[idx]
        )
    out: list[Placement] = []
    k = 0
    for i, r in enumerate(reports):
        if not has_pos[i]:
            out.append(_decide(r, ctx, None, None, None, None))
            continue
        area = int(areas[k])
        lon, lat = float(lons[i]), float(lats[i])
        a = None if math.isnan(acc[i]) else float(acc[i])
        snap = snaps[k] if ctx.robust is not None else _second_look(r, ctx, lon, lat, snaps[k], a)
        used_acc = None if math.isnan(snap_acc[k]) else float(snap_acc[k])
        placed = _noted(
            _decide(r, ctx, lon, lat, area if area >= 0 else None, snap, accuracy_m=used_acc),
            extras[i],
        )
        out.append(_scaled(placed, float(factors[k])))
        k += 1
    return out


def _snapper_said(ctx: NetworkContext, snap: Snap) -> dict[str, Any]:
    """What the snapper would have decided for a hand-picked report: kept beside the pick,
    a labelled example when the snapper was not certain (pipeline stores it)."""
    if snap.index is None:
        return {"snapped": None}
    segs = ctx.network.segments
    return {
        "snapped": segs[snap.index].id,
        "snapped_confidence": round(snap.confidence, 3),
        "snapped_certain": not snap.ambiguous,
        "offered": [segs[pos].id for pos, _d, _p in snap.candidates],
    }


def _decide(
    report: ReportIn,
    ctx: NetworkContext,
    lon: float | None,
    lat: float | None,
    area: int | None,
    snap: Snap | None,
    *,
    accuracy_m: float | None = None,
) -> Placement:
    """Where the report goes. ``accuracy_m``: the one the fix was snapped with."""
    segments = ctx.network.segments
    hint_pos = ctx.position.get(report.segment_hint) if report.segment_hint else None

    if lon is None or lat is None or snap is None:
        if hint_pos is None:
            return Placement(
                "rejected",
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                FieldError(
                    "segment_hint",
                    "unknown_segment",
                    f"segment_hint {report.segment_hint!r} is not a known segment, and there is "
                    "no lat/lon to locate the report",
                ),
            )
        seg = segments[hint_pos]
        return Placement(
            "accepted",
            None,
            None,
            seg.id,
            seg.district,
            None,
            None,
            {"method": "hint", "distance_m": None, "confidence": None, "ambiguous": False},
        )

    # A hint too far from the fix is not trusted, one of no known segment cannot be: the
    # answer says so (the phone's pick, or a city system's, was otherwise dropped without a
    # word).
    ignored: dict[str, Any] = {}
    if report.segment_hint and hint_pos is None:
        ignored = {"hint_ignored": {"segment_id": report.segment_hint, "distance_m": None}}
    if hint_pos is not None:
        d_hint = ctx.index.distance_to(hint_pos, lon, lat)
        ignored = {
            "hint_ignored": {"segment_id": report.segment_hint, "distance_m": round(d_hint, 1)}
        }
        if d_hint <= HINT_PLAUSIBLE_M:
            seg = segments[hint_pos]
            return Placement(
                "accepted",
                lat,
                lon,
                seg.id,
                seg.district,
                round(d_hint, 1),
                1.0,
                {
                    "method": "hint",
                    "distance_m": round(d_hint, 1),
                    "confidence": 1.0,
                    "ambiguous": False,
                    **_snapper_said(ctx, snap),
                },
            )

    if snap.index is None:
        reason = "outside_city" if area is None else "too_far"
        return Placement(
            "needs_review",
            lat,
            lon,
            None,
            ctx.network.districts[area].code if area is not None else None,
            None,
            0.0,
            {
                "method": "nearest",
                "distance_m": None,
                "confidence": 0.0,
                "ambiguous": False,
                "reason": reason,
                **ignored,
            },
        )
    best = segments[snap.index]
    info: dict[str, Any] = {
        "method": "nearest",
        "distance_m": round(snap.distance_m or 0.0, 1),
        "confidence": round(snap.confidence, 3),
        "ambiguous": snap.ambiguous,
        **ignored,
    }
    if snap.chainage_m is not None:
        info["chainage_m"] = round(snap.chainage_m, 1)
    if snap.side is not None:
        info["side"] = snap.side
    if snap.boundary:
        info["boundary"] = True  # the chainage rule decided between two halves of a road
    # Not certain of the only segment in reach is an answer, unless the fix's own stated
    # error reaches beyond all the snapper looks at (a phone stating 10 km was accepted).
    wide = accuracy_m is not None and accuracy_m > MAX_CERTAIN_ACCURACY_M
    if snap.ambiguous and (snap.runner_up is not None or wide):
        info["reason"] = "ambiguous" if snap.runner_up is not None else "poor_accuracy"
        ids = [segments[pos].id for pos, _d, _p in snap.candidates] or [best.id]
        if snap.runner_up is not None and segments[snap.runner_up].id not in ids:
            ids.append(segments[snap.runner_up].id)
        info["candidates"] = ids
        return Placement(
            "needs_review",
            lat,
            lon,
            None,
            best.district,
            info["distance_m"],
            snap.confidence,
            info,
        )
    if area is None:
        info["reason"] = "outside_city"
        info["candidates"] = [best.id]
        return Placement(
            "needs_review", lat, lon, None, None, info["distance_m"], snap.confidence, info
        )
    return Placement(
        "accepted", lat, lon, best.id, best.district, info["distance_m"], snap.confidence, info
    )


def review_candidates(
    ctx: NetworkContext, lon: float | None, lat: float | None, snap: dict[str, Any] | None
) -> list[tuple[str, float | None]]:
    """The segments a reviewer may settle a report onto: (segment id, metres from its point).

    The snapper's own candidates, then any other segment within HINT_PLAUSIBLE_M of the
    point (a report too far from every road has no snap candidates, and a reviewer still
    picks among the nearest). Nothing else: a report is never moved across the city."""
    found: dict[str, float | None] = {}
    for seg_id in (snap or {}).get("candidates") or []:
        pos = ctx.position.get(seg_id)
        if pos is None:
            continue
        d = None if lon is None or lat is None else ctx.index.distance_to(pos, lon, lat)
        found[seg_id] = None if d is None or d == float("inf") else round(d, 1)
    if lon is not None and lat is not None:
        for pos, d in ctx.index.nearby(lon, lat, HINT_PLAUSIBLE_M, limit=6):
            found.setdefault(ctx.network.segments[pos].id, round(d, 1))
    return sorted(found.items(), key=lambda kv: (kv[1] is None, kv[1] or 0.0))


def ask_on_the_spot(
    ctx: NetworkContext,
    lon: float,
    lat: float,
    *,
    accuracy_m: float | None = None,
    heading_deg: float | None = None,
    reporter_id: str | None = None,
    category: str | None = None,
    look_deg: float | None = None,
    look_ref: str | None = None,
) -> dict[str, Any]:
    """The server's part of "ask the person on the spot" (issue 21): is the best segment
    certain for a report made here and now, and if not, the two or three candidates to
    offer (name, distance, share of the posterior), best first. The person's pick comes
    back as the report's ``segment_hint``, trusted within HINT_PLAUSIBLE_M of the fix.

    ``look_deg``/``look_ref``: the direction the camera of the report's photo faced and its
    reference (T true, M magnetic), weighed as place() will weigh it once the photo
    arrives, so a chief is not asked what the photo is about to settle."""
    if ctx.robust is None:
        return {"certain": None, "confidence": None, "candidates": []}
    acc, _ = learned_accuracy(ctx, [reporter_id], [accuracy_m])
    r = ctx.robust.snap(
        lon,
        lat,
        accuracy_m=None if np.isnan(acc[0]) else float(acc[0]),
        heading_deg=heading_deg,
        prior=(
            ctx.own_segments.get(reporter_id, frozenset())
            | ctx.recent.of(reporter_id, dt.datetime.now(dt.UTC))
            if reporter_id
            else None
        ),
        kind=category_kind(category) if category else "unknown",
        look_deg=None if look_deg is None else look_deg % 360.0,
        look_sigma_deg=LOOK_SIGMA_DEG if look_ref == "T" else LOOK_SIGMA_UNSURE_DEG,
    )
    segs = ctx.network.segments
    # "certain" here means sure enough not to ask: the asking bar (geo.robust.ASK) is
    # above the accepting one, since a tap on the spot is cheaper than a wrong chief
    return {
        "certain": not r.ask,
        "confidence": round(r.confidence, 3),
        "best": segs[r.index].id if r.index is not None else None,
        "candidates": [
            {
                "id": segs[pos].id,
                "name": segs[pos].name,
                "district": segs[pos].district,
                "distance_m": round(d, 1),
                "share": round(p, 3),
            }
            for pos, d, p in (r.candidates if r.ask else r.candidates[:1])
        ],
    }
