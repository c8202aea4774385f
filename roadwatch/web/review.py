"""The review queue: reports that could not be tied to one segment with confidence.

GET  /api/review                 needs_review reports, oldest first, with their candidates
GET  /api/review/count           how many are pending (in the user's district)
POST /api/review/<report_id>     settle one: {"segment_id": …, "note": …}
                                 or {"invalid": true, "note": …}
GET  /api/review/labels          the labelled examples and the snapper's agreement
GET  /api/review/<id>/similar    pending reports of the same reporter within SIMILAR_M
POST /api/review/<id>/similar    settle them all with one decision (optional "ids")
The one who decides is the logged-in user (a `by` naming anyone else is refused); viewers
may not decide, district staff only for a report of their district onto a segment of their
district, and only onto a candidate near the report's point (geolocate.review_candidates:
the snapper's candidates and segments within 150 m). Every decision is stored as a report
transition, written to the audit log in the same transaction, pushed live (`case` and
`segment`), and kept as labelled data for measuring the snapper (models.SnapLabel: the
decision beside what the snapper said).
"""

from __future__ import annotations

import math
import uuid
from typing import Any

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import func, select

from ..cases.outbox import enqueue
from ..cases.workflow import NewCase, keep_ranked_state, open_cases
from ..geolocate import HINT_PLAUSIBLE_M, review_candidates
from ..store import audit, models
from ..store.events import record_events
from ..store.segments import segment_states
from .authz import (
    acting_name,
    actor,
    in_scope,
    require_district,
    require_writer,
    scope_district,
)
from .context import runtime
from .errors import ApiError
from .params import district_arg, limit_arg

bp = Blueprint("review", __name__, url_prefix="/api/review")


def _pending_query() -> Any:
    """The select of pending reports this user may see (?district= by code or name)."""
    r = models.Report
    q = select(r).where(r.status == "needs_review")
    if "district" in request.args:
        q = q.where(r.district == district_arg(request.args["district"]))
    if scope_district() is not None:
        q = q.where(r.district == scope_district())
    return q


@bp.get("")
def queue() -> Response:
    rt = runtime()
    r = models.Report
    limit = limit_arg(100, 1000)
    with rt.sessions() as session:
        rows = session.scalars(_pending_query().order_by(r.received_at, r.id).limit(limit)).all()
    segments, position = rt.ctx.network.segments, rt.ctx.position
    tz = rt.settings.tz
    items = []
    for row in rows:
        snap = row.snap or {}
        items.append(
            {
                "id": row.id,
                "reporter_id": row.reporter_id,
                "category": row.category,
                "severity": row.severity,
                "lat": row.lat,
                "lon": row.lon,
                "district": row.district,
                "observed_at": row.observed_at.astimezone(tz).isoformat(),
                "note": row.note,
                "photos": list(row.photos or []),
                "reason": snap.get("reason"),
                "candidates": [
                    {
                        "segment_id": c,
                        "name": segments[position[c]].name,
                        "district": segments[position[c]].district,
                        "distance_m": d,
                        "geometry": rt.ctx.features[position[c]]["geometry"],
                    }
                    for c, d in review_candidates(rt.ctx, row.lon, row.lat, snap)
                ],
            }
        )
    return jsonify({"items": items})


@bp.get("/count")
def count() -> Response:
    """The pending count for the header: {"pending": n} in the user's district."""
    rt = runtime()
    with rt.sessions() as session:
        n = session.scalar(select(func.count()).select_from(_pending_query().subquery()))
    return jsonify({"pending": int(n or 0)})


@bp.post("/<report_id>")
def settle(report_id: str) -> tuple[Response, int]:
    decision = _decision()
    rid = _report_uuid(report_id)
    return _settle_all(rid, [rid], decision)


@bp.get("/labels")
def labels() -> Response:
    """The labelled examples (review decisions and phone picks beside the snapper's
    answer), newest first, and how often the snapper's best agreed. Hard cases only:
    they measure the snapper where it was unsure; they cannot calibrate it alone."""
    rt = runtime()
    lb = models.SnapLabel
    limit = limit_arg(1000, 100_000)
    q = select(lb)
    only = scope_district()
    if only is not None:  # a district user reads the labels of their district's reports only
        q = q.where(
            lb.report_id.in_(select(models.Report.id).where(models.Report.district == only))
        )
    if request.args.get("source") in ("review", "phone"):
        q = q.where(lb.source == request.args["source"])
    with rt.sessions() as session:
        rows = session.scalars(q.order_by(lb.decided_at.desc(), lb.id.desc()).limit(limit)).all()
    tz = rt.settings.tz
    items = [
        {
            "report_id": r.report_id,
            "source": r.source,
            "decided_at": r.decided_at.astimezone(tz).isoformat(),
            "by": r.by,
            "segment_id": r.segment_id,
            "snapped_id": r.snapped_id,
            "confidence": r.confidence,
            "candidates": r.candidates,
            "lat": r.lat,
            "lon": r.lon,
            "accuracy_m": r.accuracy_m,
            "heading_deg": r.heading_deg,
            "category": r.category,
        }
        for r in rows
    ]
    placed = [r for r in rows if r.segment_id is not None]
    agreed = sum(1 for r in placed if r.snapped_id == r.segment_id)
    offered = sum(1 for r in placed if r.segment_id in (r.candidates or []))
    return jsonify(
        {
            "count": len(items),
            "placed": len(placed),
            "snapper_best_agreed": agreed,
            "among_candidates": offered,
            "items": items,
        }
    )


@bp.get("/<report_id>/similar")
def similar(report_id: str) -> Response:
    """Pending reports like this one: the same reporter, within SIMILAR_M of it (itself
    first). Staff settle them together with POST /api/review/<id>/similar."""
    rid = _report_uuid(report_id)
    rt = runtime()
    with rt.sessions() as session:
        row = _pending(session, rid, scoped=True)
        ids = [r.id for r in _similar_rows(session, row)]
    return jsonify({"id": rid, "similar_m": SIMILAR_M, "ids": ids})


@bp.post("/<report_id>/similar")
def settle_similar(report_id: str) -> tuple[Response, int]:
    """Settle this report and its similar pending ones with one decision. An optional
    ``ids`` narrows the set (each must be among the similar ones)."""
    decision = _decision()
    rid = _report_uuid(report_id)
    rt = runtime()
    with rt.sessions() as session:
        ids = [r.id for r in _similar_rows(session, _pending(session, rid))]
    wanted = decision.body.get("ids")
    if wanted is not None:
        if not isinstance(wanted, list) or not all(isinstance(i, str) for i in wanted):
            raise ApiError(422, "ids", "invalid", "ids must be a list of report ids")
        unknown = sorted(set(wanted) - set(ids))
        if unknown:
            raise ApiError(
                422, "ids", "not_similar", f"not similar pending reports: {', '.join(unknown)}"
            )
        ids = [i for i in ids if i in set(wanted)]
    return _settle_all(rid, ids, decision)


# Reports of one reporter this close (metres) are "the same place" for settling together.
SIMILAR_M = 50.0
_M_PER_DEG = 111_195.0


class _Decision:
    def __init__(self, body: dict[str, Any], by: str, note: str | None, seg_id: str | None):
        self.body, self.by, self.note, self.segment_id = body, by, note, seg_id


def _decision() -> _Decision:
    rt = runtime()
    user = require_writer()  # viewers only watch
    body: Any = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "body", "invalid_json", "send a JSON object")
    by = acting_name(body, user)  # the logged-in user, whatever the body says
    note = body.get("note") if isinstance(body.get("note"), str) else None
    invalid = body.get("invalid") is True
    seg_id = body.get("segment_id")
    if not invalid and (not isinstance(seg_id, str) or seg_id not in rt.ctx.position):
        raise ApiError(
            422, "segment_id", "unknown_segment", "segment_id must be a current segment's id"
        )
    return _Decision(body, by, note, None if invalid else str(seg_id))


def _report_uuid(report_id: str) -> str:
    try:
        return str(uuid.UUID(report_id))
    except ValueError:
        raise ApiError(404, "report_id", "not_found", f"no report with id {report_id}") from None


def _pending(session: Any, rid: str, scoped: bool = False) -> models.Report:
    """The report in review; `scoped`: another district's reads as never sent (404)."""
    row = session.get(models.Report, rid)
    if row is None or (scoped and not in_scope(row.district)):
        raise ApiError(404, "report_id", "not_found", f"no report with id {rid}")
    if row.status != "needs_review":
        raise ApiError(
            409, "report_id", "not_in_review", f"the report is {row.status}, not in review"
        )
    return row


def _similar_rows(session: Any, row: models.Report) -> list[models.Report]:
    """Pending reports of the same reporter within SIMILAR_M of ``row`` (row first); a
    report without a position is only similar to itself."""
    r = models.Report
    out = [row]
    if row.lat is None or row.lon is None:
        return out
    dlat = SIMILAR_M / _M_PER_DEG
    dlon = dlat / max(math.cos(math.radians(row.lat)), 0.01)
    q = select(r).where(
        r.status == "needs_review",
        r.reporter_id == row.reporter_id,
        r.id != row.id,
        r.lat.between(row.lat - dlat, row.lat + dlat),
        r.lon.between(row.lon - dlon, row.lon + dlon),
    )
    for other in session.scalars(q.order_by(r.received_at, r.id)):
        assert other.lat is not None and other.lon is not None
        dy = (other.lat - row.lat) * _M_PER_DEG
        dx = (other.lon - row.lon) * _M_PER_DEG * math.cos(math.radians(row.lat))
        if math.hypot(dx, dy) <= SIMILAR_M:
            out.append(other)
    return out


def _settle_all(rid: str, ids: list[str], decision: _Decision) -> tuple[Response, int]:
    """One decision for reports ``ids`` (rid among them), in one transaction: a report
    transition, an audit entry and a labelled example (models.SnapLabel) each."""
    rt = runtime()
    by, note, seg_id = decision.by, decision.note, decision.segment_id
    invalid = seg_id is None
    new_status = "invalid" if invalid else "accepted"
    seg = None if seg_id is None else rt.ctx.network.segments[rt.ctx.position[seg_id]]
    now = models.utcnow()
    payloads: list[tuple[str, dict[str, Any]]] = []
    new_cases: list[NewCase] = []
    notices: list[Any] = []
    with rt.sessions.begin() as session:
        if session.get_bind().dialect.name == "postgresql":
            # Lock them all in one order first: each in its list's order (the one asked
            # about first), two reviewers settling the same group from two of its reports
            # deadlocked, and PostgreSQL's abort reached one of them as 503 "database
            # unavailable" instead of this 409 "not in review".
            r = models.Report
            session.execute(
                select(r.id).where(r.id.in_(sorted(ids))).order_by(r.id).with_for_update()
            )
        for one in ids:
            row = session.get(models.Report, one, with_for_update=True)
            if row is None:
                raise ApiError(404, "report_id", "not_found", f"no report with id {one}")
            require_district(row.district, "this report")
            if seg is not None:
                require_district(seg.district, f"segment {seg.id}")
                near = [c for c, _d in review_candidates(rt.ctx, row.lon, row.lat, row.snap)]
                if seg.id not in near:
                    raise ApiError(
                        422,
                        "segment_id",
                        "not_a_candidate",
                        f"segment {seg.id} is not a candidate near the report's point (within "
                        f"{HINT_PLAUSIBLE_M:.0f} m); choose one of {', '.join(near) or 'none'} "
                        "or mark the report invalid (不是该点附近的候选路段)",
                    )
            if row.status != "needs_review":
                raise ApiError(
                    409, "report_id", "not_in_review", f"the report is {row.status}, not in review"
                )
            keep_ranked_state(session, [one], now)  # the week's frozen ranking reads it
            snap = row.snap or {}
            session.add(
                models.SnapLabel(
                    report_id=one,
                    source="review",
                    decided_at=now,
                    by=by,
                    segment_id=seg_id,
                    snapped_id=(snap.get("candidates") or [None])[0],
                    confidence=row.snap_confidence,
                    candidates=list(snap.get("candidates", [])),
                    lat=row.lat,
                    lon=row.lon,
                    accuracy_m=row.accuracy_m,
                    heading_deg=row.heading_deg,
                    category=row.category,
                )
            )
            row.status = new_status
            row.case_status = "invalid" if invalid else None  # dispatched below when settled
            if seg is not None:
                row.segment_id, row.district = seg.id, seg.district
                row.segment_version = rt.ctx.versions.get(seg.id)
                row.snap = {**snap, "method": "review", "reviewed_by": by}
            session.add(
                models.ReportTransition(
                    report_id=one,
                    at=now,
                    from_status="needs_review",
                    to_status=new_status,
                    by=by,
                    note=note,
                    data={"segment_id": seg_id}
                    if one == rid
                    else {"segment_id": seg_id, "with": rid},
                )
            )
            session.flush()
            audit.record(
                session,
                actor(),
                "review.settle",
                one,
                at=now,
                status=new_status,
                segment_id=seg_id,
                district=row.district,
                note=note,
            )
            payloads.append(
                (
                    "case",
                    {
                        "id": one,
                        "status": new_status,
                        "segment_id": row.segment_id,
                        "district": row.district,
                        "by": by,
                    },
                )
            )
            if seg is not None:
                new_cases.append(
                    NewCase(
                        id=one,
                        segment_id=seg.id,
                        category=row.category,
                        severity=row.severity,
                        observed_at=row.observed_at,
                        chainage_m=None,
                        lat=row.lat,
                        lon=row.lon,
                        reporter_id=row.reporter_id,
                    )
                )
        if seg is not None:
            fx = open_cases(session, new_cases, rt.pipeline.sla, now)
            payloads += fx.events
            notices = fx.notices
            payloads += [("segment", st) for st in segment_states(session, [seg.id])]
        enqueue(session, notices, now, rt.pipeline.routing)  # sent from the outbox
        events = record_events(session, payloads, now)  # last: it orders the commits
    rt.broadcaster.publish(events)
    rt.send_notices(notices)
    body: dict[str, Any] = {"id": rid, "status": new_status, "segment_id": seg_id}
    if ids != [rid]:
        body["settled"] = ids
    return jsonify(body), 200
