"""What command-centre staff do to a case (issue 19): reassign, verify, comment, extend,
suspend, close, merge, split, reopen.

The acting person is a `Staff` built from the login (never a field of the request), and
the permission table (roadwatch.cases.permissions) decides whether they may; the state
machine (workflow.ALLOWED) decides whether the case may change so. Every action is one
ReportTransition under the staff user's name, in the caller's transaction, and returns the
live events and notices to send after commit (the web layer adds the audit entry).

Deadlines are counted in working time (roadwatch.cases.calendar): an extension adds working
hours to the deadline; a suspension stops the clock until a stated time, so the deadline
moves by the working time the pause covers. Both move `next_escalation_at`, which is all
the clock (roadwatch.cases.clock) reads, so it honours them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, select, update

from ..geolocate import HINT_PLAUSIBLE_M, review_candidates
from ..network.context import NetworkContext
from ..store import models
from .calendar import Sla
from .permissions import Staff, may
from .workflow import (
    CLOCK_RUNNING,
    RANKED_FIELDS,
    REPORTS,
    Effects,
    Notice,
    TransitionError,
    case_facts,
    check,
    holders_of,
    keep_ranked_state,
    pick_assignee,
    record,
)

RANKED_FIELDS_SET = frozenset(RANKED_FIELDS)

# action -> the permission table's action that decides it (split undoes a merge: same rule)
STAFF_ACTIONS: dict[str, str] = {
    "reassign": "reassign",
    "verify": "verify",
    "comment": "comment",
    "extend": "extend",
    "suspend": "suspend",
    "close_invalid": "close_invalid",
    "close_duplicate": "close_duplicate",
    "merge": "merge",
    "split": "merge",
    "reopen": "reopen",
    # a chief's request (roadwatch.cases.extensions) is decided by whoever may extend
    "approve_extension": "extend",
    "refuse_extension": "extend",
}
MAX_TEXT = 2000
MAX_EXTENSION_H = 24 * 30  # working hours in one extension (a month of full days)
MAX_SUSPENSION = dt.timedelta(days=90)


class ActionRefused(Exception):
    """An action that is not done: `status` for HTTP, a field, a code, words for people."""

    def __init__(self, status: int, field: str, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.field, self.code, self.message = status, field, code, message


@dataclass
class Done:
    case_status: str | None
    effects: Effects
    detail: dict[str, Any]  # for the audit entry and the response


@dataclass(frozen=True)
class Env:
    """What the actions read besides the database: the time limits, the network, now."""

    sla: Sla
    ctx: NetworkContext
    now: dt.datetime


def act(
    conn: Connection, staff: Staff, action: str, report_id: str, body: Mapping[str, Any], env: Env
) -> Done:
    """Do `action` to case `report_id` as `staff`, or raise ActionRefused saying why."""
    if action not in STAFF_ACTIONS:
        raise ActionRefused(
            404,
            "action",
            "unknown_action",
            f"no case action {action!r} (one of {', '.join(STAFF_ACTIONS)})",
        )
    lock_rows(conn, action, report_id, body)
    case = _lock(conn, report_id)
    facts = case_facts(conn, report_id, env.now)
    assert facts is not None
    decision = may(staff, STAFF_ACTIONS[action], facts)
    if not decision:
        raise ActionRefused(403, "case", decision.code, decision.reason)
    handler = _HANDLERS[action]
    return handler(conn, staff, case, body, env)


# -- helpers -------------------------------------------------------------------------------
# the field naming the other case an action reads and must not see change under it
OTHER_CASE = {"merge": "into", "close_duplicate": "of"}


def lock_rows(conn: Connection, action: str, report_id: str, body: Mapping[str, Any]) -> None:
    """Lock the rows of every case `action` reads, in id order, before anything is read.

    A merge reads the case it goes into: unlocked, two officers merging A into B and B into
    A at once each saw the other still open and both were done, leaving two duplicates of
    each other (a cycle, with no case kept). Locking both in one order makes the second
    wait and see the first's result (409); the same order everywhere keeps two such
    transactions from deadlocking. The caller takes its `now` after this, so the order of
    the transitions' times is the order they were applied in."""
    if conn.dialect.name != "postgresql":
        return  # SQLite writes one transaction at a time
    ids = {report_id}
    other = body.get(OTHER_CASE[action]) if action in OTHER_CASE else None
    if isinstance(other, str) and other:
        ids.add(other)
    r = REPORTS.c
    conn.execute(select(r.id).where(r.id.in_(sorted(ids))).order_by(r.id).with_for_update())


def _lock(conn: Connection, report_id: str) -> Any:
    r = REPORTS.c
    q = select(REPORTS).where(r.id == report_id)
    if conn.dialect.name == "postgresql":
        q = q.with_for_update()
    row = conn.execute(q).first()
    if row is None:
        raise ActionRefused(404, "report_id", "not_found", f"no case {report_id} / 没有该案件")
    return row


def _text(body: Mapping[str, Any], name: str, *, required: bool, words: str) -> str | None:
    value = body.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ActionRefused(400, name, "required", f"give {words} / 请填写{_ZH.get(name, '')}")
        return None
    if not isinstance(value, str):
        raise ActionRefused(400, name, "invalid", f"{name} must be text")
    if len(value) > MAX_TEXT:
        raise ActionRefused(400, name, "too_long", f"{name} is longer than {MAX_TEXT} characters")
    return value.strip()


_ZH = {"reason": "原因", "text": "内容", "of": "原案件编号"}


# Changes only staff make, beside the state machine's (which the chiefs' messages follow:
# a chief's failed verification must not reopen a closed case).
STAFF_EDGES = {
    ("dispatched", "duplicate"),
    ("reopened", "duplicate"),
    ("closed", "reopened"),
    ("invalid", "reopened"),
}


def _check(current: str | None, new: str, *, staff_edges: bool = True) -> None:
    if staff_edges and (current, new) in STAFF_EDGES:
        return
    try:
        check(current, new)
    except TransitionError as exc:
        raise ActionRefused(409, "case", exc.code, f"{exc} / 当前状态不允许此操作") from None


def _aware(t: Any) -> dt.datetime | None:
    if t is None:
        return None
    assert isinstance(t, dt.datetime)
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _time(body: Mapping[str, Any], name: str) -> dt.datetime:
    raw = body.get(name)
    if not isinstance(raw, str):
        raise ActionRefused(400, name, "required", f"give {name} as an ISO time with its zone")
    try:
        t = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise ActionRefused(400, name, "invalid_time", f"{name} is not an ISO time") from None
    if t.tzinfo is None:
        raise ActionRefused(400, name, "missing_offset", f"{name} must include a UTC offset")
    return t.astimezone(dt.UTC)


def _transition(
    case: Any, to: str, staff: Staff, env: Env, note: str | None, data: dict[str, Any]
) -> dict[str, Any]:
    return {
        "report_id": case.id,
        "at": env.now,
        "from_status": case.case_status or case.status,
        "to_status": to,
        "by": staff.username,
        "note": note,
        "data": {"action": data.pop("action"), **data},
    }


def _event(case: Any, status: str, staff: Staff, **extra: Any) -> tuple[str, dict[str, Any]]:
    return (
        "case",
        {
            "id": case.id,
            "status": status,
            "segment_id": extra.pop("segment_id", case.segment_id),
            "district": extra.pop("district", case.district),
            "by": staff.username,
            **extra,
        },
    )


def _finish(
    conn: Connection,
    case: Any,
    staff: Staff,
    env: Env,
    to: str,
    values: dict[str, Any],
    note: str | None,
    data: dict[str, Any],
    notices: list[Notice] | None = None,
    **event: Any,
) -> Done:
    if values:
        if RANKED_FIELDS_SET.intersection(values):
            keep_ranked_state(conn, [case.id], env.now)
        conn.execute(
            update(REPORTS).where(REPORTS.c.id == case.id).values(updated_at=env.now, **values)
        )
    action = data["action"]
    record(conn, [_transition(case, to, staff, env, note, dict(data))])
    fx = Effects()
    fx.events.append(_event(case, to, staff, action=action, **event))
    fx.notices += notices or []
    detail = {k: v for k, v in data.items() if k != "action"}
    return Done(to, fx, {"from": case.case_status, "to": to, "note": note, **detail})


def _next_escalation(case: Any, due: dt.datetime, env: Env) -> dt.datetime | None:
    """When the clock should next look at a case whose deadline is now `due`."""
    if case.case_status not in CLOCK_RUNNING:
        return None
    level = int(case.escalation_level or 0)
    nxt = due if level == 0 else env.sla.escalation_at(due, level + 1)
    return max(nxt, env.now) if nxt is not None else None


def _notice(kind: str, person: str | None, case: Any, **body: Any) -> list[Notice]:
    if not person:
        return []
    return [
        Notice(
            person,
            {"v": 1, "kind": kind, "case_id": case.id, "segment_id": case.segment_id, **body},
        )
    ]


# -- the actions ------------------------------------------------------------------------------
def _reassign(conn: Connection, staff: Staff, case: Any, body: Mapping[str, Any], env: Env) -> Done:
    """Dispatch (or re-dispatch) to another responsible person; optionally onto another
    segment, which must be a candidate near the report's point and in the user's scope."""
    note = _text(body, "reason", required=False, words="a reason")
    seg_id = case.segment_id
    values: dict[str, Any] = {}
    new_seg = body.get("segment_id")
    if new_seg is not None and new_seg != case.segment_id:
        seg_id = _candidate_segment(case, new_seg, staff, env)
        seg = env.ctx.network.segments[env.ctx.position[seg_id]]
        values.update(
            segment_id=seg.id, district=seg.district, segment_version=env.ctx.versions.get(seg.id)
        )
    if seg_id is None:
        raise ActionRefused(
            409,
            "segment_id",
            "no_segment",
            "the case has no segment yet: settle it in review first / 请先在待核实队列中确定路段",
        )
    person = body.get("assignee_id")
    holders = holders_of(conn, [seg_id]).get(seg_id, [])
    if person is None:
        _merchant, chief = pick_assignee(holders, env.now, None)
        person = chief.person_id if chief else None
    if not isinstance(person, str) or not person:
        raise ActionRefused(400, "assignee_id", "required", "name the person to dispatch to")
    who = conn.execute(
        select(models.Reporter.id, models.Reporter.district, models.Reporter.disabled).where(
            models.Reporter.id == person
        )
    ).first()
    if who is None or who.disabled:
        raise ActionRefused(
            422,
            "assignee_id",
            "unknown_person",
            f"{person} is not a registered, active person / 该责任人不存在或已停用",
        )
    holds = any(h.person_id == person and h.holds(env.now) for h in holders)
    district = values.get("district", case.district)
    if not holds and who.district != district:
        raise ActionRefused(
            422,
            "assignee_id",
            "not_responsible",
            f"{person} neither answers for segment "
            f"{seg_id} now nor belongs to district {district} / 该人员不是本路段或本区的责任人",
        )
    target = "dispatched"
    _check(case.case_status, target)
    if case.case_status != target:
        # a case not yet dispatched (new) or reopened becomes dispatched, as its transition
        # says (the state was left as it was: a `new` case was then dispatched again)
        values["case_status"] = target
    start = env.now
    due = _aware(case.due_at)
    if case.case_status == "new" or due is None:
        due = env.sla.deadline(case.category, case.severity, start)
        values.update(dispatched_at=start, due_at=due, next_escalation_at=due)
    elif case.case_status == "reopened":
        values["next_escalation_at"] = max(due, env.now)
    values["assignee_id"] = person
    data = {
        "action": "reassign",
        "assignee_before": case.assignee_id,
        "assignee_id": person,
        "segment_before": case.segment_id if seg_id != case.segment_id else None,
        "segment_id": seg_id,
        "due_at": due.isoformat() if due else None,
    }
    notices = _notice(
        "dispatch",
        person,
        case,
        category=case.category,
        severity=case.severity,
        due_at=due.isoformat() if due else None,
    )
    return _finish(
        conn,
        case,
        staff,
        env,
        target,
        values,
        note,
        data,
        notices,
        segment_id=seg_id,
        district=district,
        assignee_id=person,
    )


def _candidate_segment(case: Any, new_seg: Any, staff: Staff, env: Env) -> str:
    ctx = env.ctx
    if not isinstance(new_seg, str) or new_seg not in ctx.position:
        raise ActionRefused(422, "segment_id", "unknown_segment", "no such current segment")
    # The same rule as the review queue's (one home: geolocate.review_candidates).
    snap = case.snap if isinstance(case.snap, dict) else None
    if new_seg not in dict(review_candidates(ctx, case.lon, case.lat, snap)):
        raise ActionRefused(
            422,
            "segment_id",
            "not_a_candidate",
            f"segment {new_seg} is not a candidate near "
            f"the report's point (none within {HINT_PLAUSIBLE_M:.0f} m) / "
            "该路段不在上报位置附近，不能改派到此路段",
        )
    seg = ctx.network.segments[ctx.position[new_seg]]
    if staff.role == "district_staff" and seg.district != staff.district:
        raise ActionRefused(
            403,
            "segment_id",
            "other_district",
            f"segment {new_seg} is in district "
            f"{seg.district}, outside your district {staff.district} / 不在本辖区",
        )
    return new_seg


def _verify(conn: Connection, staff: Staff, case: Any, body: Mapping[str, Any], env: Env) -> Done:
    result = body.get("result")
    if result not in ("pass", "fail"):
        raise ActionRefused(
            400, "result", "invalid", "result must be pass or fail / 请选择通过或不通过"
        )
    reason = _text(body, "reason", required=result == "fail", words="a reason for the failure")
    target = "closed" if result == "pass" else "reopened"
    # Only the state machine's edges: a verification is of a rectified case. The staff-only
    # closed/invalid -> reopened edges belong to `reopen`; through them a failed check sent
    # from a page loaded before someone else's passing one reopened the closed case.
    _check(case.case_status, target, staff_edges=False)
    if target == "closed":
        values: dict[str, Any] = {"case_status": "closed", "closed_at": env.now}
        notices: list[Notice] = []
    else:
        due = _aware(case.due_at)
        resume = due if due is not None and due > env.now else env.now
        values = {"case_status": "reopened", "next_escalation_at": resume}
        notices = _notice("reopened", case.assignee_id, case, note=reason)
    data = {"action": "verify", "result": result}
    return _finish(conn, case, staff, env, target, values, reason, data, notices, result=result)


def _comment(conn: Connection, staff: Staff, case: Any, body: Mapping[str, Any], env: Env) -> Done:
    text = _text(body, "text", required=True, words="the comment's text")
    current = case.case_status or case.status
    return _finish(conn, case, staff, env, current, {}, text, {"action": "comment"})


def hours_wanted(body: Mapping[str, Any]) -> float:
    """The working hours of an extension in a body: a number from 1 to MAX_EXTENSION_H."""
    hours = body.get("hours")
    if (
        isinstance(hours, bool)
        or not isinstance(hours, int | float)
        or not 0 < hours <= MAX_EXTENSION_H
    ):
        raise ActionRefused(
            400,
            "hours",
            "invalid",
            f"hours must be a number of working hours between 1 and "
            f"{MAX_EXTENSION_H} / 延期工时须在 1 到 {MAX_EXTENSION_H} 之间",
        )
    return hours


def _extend(conn: Connection, staff: Staff, case: Any, body: Mapping[str, Any], env: Env) -> Done:
    reason = _text(body, "reason", required=True, words="a reason for the extension")
    hours = hours_wanted(body)
    return _extend_by(conn, staff, case, env, reason, hours, {"action": "extend", "hours": hours})


def _extend_by(
    conn: Connection,
    staff: Staff,
    case: Any,
    env: Env,
    reason: str | None,
    hours: float,
    data: dict[str, Any],
) -> Done:
    return _move_deadline(
        conn,
        staff,
        case,
        env,
        reason,
        lambda due: env.sla.calendar.add_working(due, dt.timedelta(hours=float(hours))),
        data,
    )


def _suspend(conn: Connection, staff: Staff, case: Any, body: Mapping[str, Any], env: Env) -> Done:
    reason = _text(body, "reason", required=True, words="a reason for the suspension")
    until = _time(body, "until")
    if not env.now < until <= env.now + MAX_SUSPENSION:
        raise ActionRefused(
            400,
            "until",
            "out_of_range",
            "until must be after now and within 90 days / 暂停截止时间须在现在之后、90 天以内",
        )
    paused = env.sla.calendar.working_between(env.now, until)
    return _move_deadline(
        conn,
        staff,
        case,
        env,
        reason,
        lambda due: env.sla.calendar.add_working(due, paused),
        {
            "action": "suspend",
            "until": until.isoformat(),
            "paused_working_s": paused.total_seconds(),
        },
    )


def _move_deadline(
    conn: Connection,
    staff: Staff,
    case: Any,
    env: Env,
    reason: str | None,
    move: Any,
    data: dict[str, Any],
) -> Done:
    if case.case_status not in CLOCK_RUNNING:
        raise ActionRefused(
            409,
            "case",
            "no_clock",
            f"the case is {case.case_status}: only a dispatched or "
            "reopened case has a running deadline / 只有处置中的案件可以延期或暂停",
        )
    due = _aware(case.due_at)
    if due is None:
        raise ActionRefused(409, "case", "no_deadline", "the case has no deadline yet")
    new_due: dt.datetime = move(due)
    values = {
        "due_at": new_due,
        "due_provisional": env.sla.is_provisional(due, new_due) or bool(case.due_provisional),
        "overdue": new_due <= env.now,
        "next_escalation_at": _next_escalation(case, new_due, env),
    }
    data = {**data, "due_at_before": due.isoformat(), "due_at": new_due.isoformat()}
    notices = _notice(data["action"], case.assignee_id, case, due_at=new_due.isoformat())
    return _finish(
        conn,
        case,
        staff,
        env,
        case.case_status,
        values,
        reason,
        data,
        notices,
        due_at=new_due.isoformat(),
    )


def _close_invalid(
    conn: Connection, staff: Staff, case: Any, body: Mapping[str, Any], env: Env
) -> Done:
    reason = _text(body, "reason", required=True, words="why the case is invalid")
    _check(case.case_status, "invalid")
    values = {
        "case_status": "invalid",
        "status": "invalid" if case.status == "needs_review" else case.status,
        "next_escalation_at": None,
        "closed_at": env.now,
    }
    notices = _notice("closed", case.assignee_id, case, status="invalid", note=reason)
    return _finish(
        conn, case, staff, env, "invalid", values, reason, {"action": "close_invalid"}, notices
    )


def _duplicate_of(conn: Connection, staff: Staff, case: Any, other_id: Any) -> Any:
    if not isinstance(other_id, str) or other_id == case.id:
        raise ActionRefused(400, "of", "invalid", "name another case this one duplicates")
    other = conn.execute(
        select(REPORTS.c.id, REPORTS.c.district, REPORTS.c.case_status, REPORTS.c.parent_id).where(
            REPORTS.c.id == other_id
        )
    ).first()
    if other is None:
        raise ActionRefused(404, "of", "not_found", f"no case {other_id} / 没有该案件")
    if staff.role == "district_staff" and other.district != staff.district:
        raise ActionRefused(
            403, "of", "other_district", f"case {other_id} is outside your district / 不在本辖区"
        )
    if other.parent_id is not None or other.case_status in ("duplicate", "invalid"):
        raise ActionRefused(
            409,
            "of",
            "not_a_case",
            f"case {other_id} is itself {other.case_status}: name the "
            "case it belongs to / 请选择主案件",
        )
    return other


def _close_duplicate(
    conn: Connection, staff: Staff, case: Any, body: Mapping[str, Any], env: Env
) -> Done:
    reason = _text(body, "reason", required=True, words="a reason")
    other = _duplicate_of(conn, staff, case, body.get("of"))
    _check(case.case_status, "duplicate")
    return _as_duplicate(conn, staff, case, other.id, env, reason, "close_duplicate")


def _as_duplicate(
    conn: Connection,
    staff: Staff,
    case: Any,
    parent: str,
    env: Env,
    reason: str | None,
    action: str,
) -> Done:
    values = {"case_status": "duplicate", "parent_id": parent, "next_escalation_at": None}
    data = {"action": action, "parent_id": parent, "status_before": case.case_status}
    notices = _notice("closed", case.assignee_id, case, status="duplicate", parent_id=parent)
    return _finish(
        conn, case, staff, env, "duplicate", values, reason, data, notices, parent_id=parent
    )


def _merge(conn: Connection, staff: Staff, case: Any, body: Mapping[str, Any], env: Env) -> Done:
    """This case becomes a duplicate of `into` (the case kept)."""
    reason = _text(body, "reason", required=False, words="a reason")
    other = _duplicate_of(conn, staff, case, body.get("into"))
    _check(case.case_status, "duplicate")
    return _as_duplicate(conn, staff, case, other.id, env, reason, "merge")


def _split(conn: Connection, staff: Staff, case: Any, body: Mapping[str, Any], env: Env) -> Done:
    """Undo a wrong merge: a duplicate becomes a case of its own, dispatched afresh."""
    reason = _text(body, "reason", required=True, words="why the merge was wrong")
    if case.case_status != "duplicate" or case.parent_id is None:
        raise ActionRefused(
            409,
            "case",
            "not_merged",
            "only a merged (duplicate) case can be split / 只有已合并的案件可以拆分",
        )
    if case.segment_id is None:
        raise ActionRefused(409, "case", "no_segment", "the case has no segment to dispatch on")
    holders = holders_of(conn, [case.segment_id]).get(case.segment_id, [])
    _merchant, chief = pick_assignee(holders, env.now, None)
    person = chief.person_id if chief else None
    due = env.sla.deadline(case.category, case.severity, env.now)
    values = {
        "case_status": "dispatched",
        "parent_id": None,
        "assignee_id": person,
        "dispatched_at": env.now,
        "due_at": due,
        "overdue": False,
        "escalation_level": 0,
        "next_escalation_at": due,
    }
    data = {
        "action": "split",
        "parent_before": case.parent_id,
        "assignee_id": person,
        "due_at": due.isoformat(),
    }
    notices = _notice(
        "dispatch",
        person,
        case,
        category=case.category,
        severity=case.severity,
        due_at=due.isoformat(),
    )
    return _finish(
        conn, case, staff, env, "dispatched", values, reason, data, notices, assignee_id=person
    )


def _reopen(conn: Connection, staff: Staff, case: Any, body: Mapping[str, Any], env: Env) -> Done:
    """A closed or invalid case opens again with a fresh time limit from now."""
    reason = _text(body, "reason", required=True, words="why the case is reopened")
    if case.case_status not in ("closed", "invalid"):
        raise ActionRefused(
            409,
            "case",
            "illegal_transition",
            f"a case that is {case.case_status} cannot be "
            "reopened; only a closed or invalid one / 只有已结案或无效的案件可以重新打开",
        )
    if case.segment_id is None:
        raise ActionRefused(
            409,
            "case",
            "no_segment",
            "the case has no segment: settle it in review / 该案件没有路段",
        )
    due = env.sla.deadline(case.category, case.severity, env.now)
    values = {
        "case_status": "reopened",
        "status": "accepted" if case.status == "invalid" else case.status,
        "closed_at": None,
        "due_at": due,
        "overdue": False,
        "escalation_level": 0,
        "next_escalation_at": due,
    }
    data = {"action": "reopen", "due_at": due.isoformat()}
    notices = _notice("reopened", case.assignee_id, case, note=reason)
    return _finish(conn, case, staff, env, "reopened", values, reason, data, notices)


# -- a chief's extension request (roadwatch.cases.extensions), decided by staff -------------
EXTENSIONS: Table = models.ExtensionRequest.__table__  # type: ignore[assignment]
# the chief's side asks for its case and its fields as staff actions do
lock_case, text_field = _lock, _text


def _pending_request(conn: Connection, case: Any, body: Mapping[str, Any]) -> Any:
    rid = body.get("request_id")
    row = None
    if isinstance(rid, str):
        x = EXTENSIONS.c
        row = conn.execute(select(EXTENSIONS).where(x.id == rid, x.report_id == case.id)).first()
    if row is None:
        raise ActionRefused(
            404, "request_id", "not_found", "no such request of this case / 没有该延期申请"
        )
    if row.status != "pending":
        raise ActionRefused(
            409,
            "request_id",
            "decided",
            f"the request was {row.status} by {row.decided_by} already / 该申请已处理",
        )
    return row


def _decide(
    conn: Connection, req: Any, status: str, staff: Staff, env: Env, note: str | None, **more: Any
) -> None:
    conn.execute(
        update(EXTENSIONS)
        .where(EXTENSIONS.c.id == req.id)
        .values(
            status=status, decided_by=staff.username, decided_at=env.now, decision_note=note, **more
        )
    )


def _approve_extension(
    conn: Connection, staff: Staff, case: Any, body: Mapping[str, Any], env: Env
) -> Done:
    """Grant a pending request: the deadline moves as a staff `extend` would move it, by
    the hours asked for (or the `hours` the officer grants instead)."""
    req = _pending_request(conn, case, body)
    hours = hours_wanted(body) if body.get("hours") is not None else req.hours
    said = _text(body, "reason", required=False, words="a reason")  # the officer's own words
    data = {"action": "extend", "hours": hours, "request_id": req.id}
    data["requested_by"] = req.requested_by
    done = _extend_by(conn, staff, case, env, said or req.reason, hours, data)
    _decide(conn, req, "approved", staff, env, said, granted_hours=hours)
    # the assignee hears of the new deadline as after any extension; the one who asked,
    # of the decision (one notice when they are the same person)
    done.effects.notices = [
        n for n in done.effects.notices if n.person_id != req.requested_by
    ] + _notice(
        "extension",
        req.requested_by,
        case,
        request_id=req.id,
        decision="approved",
        hours=hours,
        due_at=done.detail["due_at"],
        note=said,
        message=f"延期申请已批准：延长 {hours:g} 个工作小时",
    )
    return done


def _refuse_extension(
    conn: Connection, staff: Staff, case: Any, body: Mapping[str, Any], env: Env
) -> Done:
    req = _pending_request(conn, case, body)
    reason = _text(body, "reason", required=True, words="why the request is refused")
    _decide(conn, req, "refused", staff, env, reason)
    data = {"action": "refuse_extension", "request_id": req.id, "requested_by": req.requested_by}
    notices = _notice(
        "extension",
        req.requested_by,
        case,
        request_id=req.id,
        decision="refused",
        hours=req.hours,
        note=reason,
        message=f"延期申请未批准：{reason}",
    )
    current = case.case_status or case.status
    return _finish(conn, case, staff, env, current, {}, reason, data, notices)


_HANDLERS: dict[str, Any] = {
    "reassign": _reassign,
    "verify": _verify,
    "comment": _comment,
    "extend": _extend,
    "suspend": _suspend,
    "close_invalid": _close_invalid,
    "close_duplicate": _close_duplicate,
    "merge": _merge,
    "split": _split,
    "reopen": _reopen,
    "approve_extension": _approve_extension,
    "refuse_extension": _refuse_extension,
}
