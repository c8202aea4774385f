"""A road chief asks for more time on a case (issue 19): the request, pending until staff
decide it.

The chief is the one the phone's device credential signed in (roadwatch.web.mobile), never
a body field; the permission table's `request_extension` (the people RESPONSIBLE for the
case at the time of asking) decides whether they may. The request is a row of
`extension_requests` and a transition on the case's timeline (the state does not change).
Staff grant it with `approve_extension` (the deadline moves as their own `extend` moves it,
so the clock honours it) or refuse it with `refuse_extension`, both in
roadwatch.cases.actions; the chief gets a notice either way.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.orm import Session

from ..store import models
from .actions import EXTENSIONS, ActionRefused, Done, Env, hours_wanted, lock_case, text_field
from .permissions import Reporter, may
from .workflow import CLOCK_RUNNING, Effects, case_facts, record


def request_extension(
    conn: Connection, chief_id: str, report_id: str, body: Mapping[str, Any], env: Env
) -> Done:
    """Record `chief_id`'s request for `hours` more working hours, or raise ActionRefused."""
    case = lock_case(conn, report_id)
    facts = case_facts(conn, report_id, env.now)
    assert facts is not None
    decision = may(Reporter(chief_id), "request_extension", facts)
    if not decision:
        raise ActionRefused(403, "case", decision.code, decision.reason)
    reason = text_field(body, "reason", required=True, words="a reason for the extension")
    assert reason is not None
    hours = hours_wanted(body)
    if case.case_status not in CLOCK_RUNNING:
        raise ActionRefused(
            409,
            "case",
            "no_clock",
            f"the case is {case.case_status}: only a case being handled has a deadline to "
            "extend / 只有处置中的案件可以申请延期",
        )
    waiting = conn.execute(
        select(EXTENSIONS.c.id).where(
            EXTENSIONS.c.report_id == report_id, EXTENSIONS.c.status == "pending"
        )
    ).first()
    if waiting is not None:
        raise ActionRefused(
            409,
            "case",
            "pending",
            f"an extension request of this case ({waiting.id}) awaits a decision / "
            "该案件已有待审批的延期申请",
        )
    request_id = str(uuid.uuid4())
    conn.execute(
        insert(EXTENSIONS).values(
            id=request_id,
            report_id=report_id,
            requested_by=chief_id,
            requested_at=env.now,
            hours=float(hours),
            reason=reason,
            status="pending",
        )
    )
    status = case.case_status
    data = {"action": "request_extension", "request_id": request_id, "hours": hours}
    record(
        conn,
        [
            {
                "report_id": report_id,
                "at": env.now,
                "from_status": status,
                "to_status": status,
                "by": chief_id,
                "note": reason,
                "data": data,
            }
        ],
    )
    fx = Effects()
    fx.events.append(
        (
            "case",
            {
                "id": report_id,
                "status": status,
                "segment_id": case.segment_id,
                "district": case.district,
                "by": chief_id,
                "action": "request_extension",
                "request_id": request_id,
                "hours": hours,
            },
        )
    )
    return Done(status, fx, {"request_id": request_id, "hours": hours, "reason": reason})


def requests_of(session: Session, report_id: str) -> list[dict[str, Any]]:
    """Every extension request of a case, newest first (the case page's section)."""
    x = models.ExtensionRequest
    rows = session.scalars(
        select(x).where(x.report_id == report_id).order_by(x.requested_at.desc(), x.id)
    ).all()
    return [
        {
            "id": r.id,
            "requested_by": r.requested_by,
            "requested_at": r.requested_at.isoformat(),
            "hours": r.hours,
            "reason": r.reason,
            "status": r.status,
            "decided_by": r.decided_by,
            "decided_at": r.decided_at.isoformat() if r.decided_at else None,
            "decision_note": r.decision_note,
            "granted_hours": r.granted_hours,
        }
        for r in rows
    ]
