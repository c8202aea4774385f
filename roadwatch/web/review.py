"""The review queue: reports that could not be tied to one segment with confidence.

GET  /api/review                 needs_review reports, oldest first, with their candidates
POST /api/review/<report_id>     settle one: {"segment_id": …, "note": …}
                                 or {"invalid": true, "note": …}
The one who decides is the logged-in user (a `by` naming anyone else is refused); viewers
may not decide, district staff only for a report of their district onto a segment of their
district. Every decision is stored as a report transition, written to the audit log in the
same transaction, and pushed live (`case` and `segment`).
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import select

from ..cases.outbox import enqueue
from ..cases.workflow import NewCase, open_cases
from ..store import audit, models
from ..store.events import record_events
from ..store.segments import segment_states
from .authz import acting_name, actor, require_district, require_writer, scope_district
from .context import runtime
from .errors import ApiError
from .params import district_arg, limit_arg

bp = Blueprint("review", __name__, url_prefix="/api/review")


@bp.get("")
def queue() -> Response:
    rt = runtime()
    r = models.Report
    limit = limit_arg(100, 1000)
    q = select(r).where(r.status == "needs_review")
    if "district" in request.args:
        q = q.where(r.district == district_arg(request.args["district"]))
    if scope_district() is not None:
        q = q.where(r.district == scope_district())
    with rt.sessions() as session:
        rows = session.scalars(q.order_by(r.received_at, r.id).limit(limit)).all()
    names = {s.id: s.name for s in rt.ctx.network.segments}
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
                "observed_at": row.observed_at.astimezone(tz).isoformat(),
                "note": row.note,
                "reason": snap.get("reason"),
                "candidates": [
                    {"segment_id": c, "name": names.get(c)} for c in snap.get("candidates", [])
                ],
            }
        )
    return jsonify({"items": items})


@bp.post("/<report_id>")
def settle(report_id: str) -> tuple[Response, int]:
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
    try:
        rid = str(uuid.UUID(report_id))
    except ValueError:
        raise ApiError(404, "report_id", "not_found", f"no report with id {report_id}") from None
    now = models.utcnow()
    with rt.sessions.begin() as session:
        row = session.get(models.Report, rid, with_for_update=True)
        if row is None:
            raise ApiError(404, "report_id", "not_found", f"no report with id {report_id}")
        require_district(row.district, "this report")
        if not invalid:
            target = rt.ctx.network.segments[rt.ctx.position[str(seg_id)]]
            require_district(target.district, f"segment {target.id}")
        if row.status != "needs_review":
            raise ApiError(
                409, "report_id", "not_in_review", f"the report is {row.status}, not in review"
            )
        new_status = "invalid" if invalid else "accepted"
        row.status = new_status
        row.case_status = "invalid" if invalid else None  # dispatched below when settled
        if not invalid:
            assert isinstance(seg_id, str)
            seg = rt.ctx.network.segments[rt.ctx.position[seg_id]]
            row.segment_id, row.district = seg.id, seg.district
            row.segment_version = rt.ctx.versions.get(seg.id)
            row.snap = {**(row.snap or {}), "method": "review", "reviewed_by": by}
        session.add(
            models.ReportTransition(
                report_id=rid,
                at=now,
                from_status="needs_review",
                to_status=new_status,
                by=by,
                note=note,
                data={"segment_id": None if invalid else seg_id},
            )
        )
        session.flush()
        audit.record(
            session,
            actor(),
            "review.settle",
            rid,
            at=now,
            status=new_status,
            segment_id=None if invalid else seg_id,
            district=row.district,
            note=note,
        )
        payloads: list[tuple[str, dict[str, Any]]] = [
            (
                "case",
                {
                    "id": rid,
                    "status": new_status,
                    "segment_id": row.segment_id,
                    "district": row.district,
                    "by": by,
                },
            )
        ]
        notices: list[Any] = []
        if not invalid:
            fx = open_cases(
                session,
                [
                    NewCase(
                        id=rid,
                        segment_id=seg.id,
                        category=row.category,
                        severity=row.severity,
                        observed_at=row.observed_at,
                        chainage_m=None,
                        lat=row.lat,
                        lon=row.lon,
                        reporter_id=row.reporter_id,
                    )
                ],
                rt.pipeline.sla,
                now,
            )
            payloads += fx.events
            notices = fx.notices
            payloads += [("segment", st) for st in segment_states(session, [seg.id])]
        events = record_events(session, payloads, now)
        enqueue(session, notices, now, rt.pipeline.routing)  # sent from the outbox
    rt.broadcaster.publish(events)
    rt.send_notices(notices)
    return jsonify({"id": rid, "status": new_status, "segment_id": row.segment_id}), 200
