"""The command centre's case workbench (issue 19): the case list, the case page, actions.

GET  /api/cases                       cases by filter, sorted, paged, with the total count
GET  /api/cases/<report_id>           one case: timeline, photos, segment, people, deadline
POST /api/cases/<report_id>/<action>  a staff action (roadwatch.cases.actions.STAFF_ACTIONS)
GET  /cases, /cases/<report_id>       the pages (staff only; district users see their own)

The list's filters are query parameters with the same names on the page and the API, so
other pages link `/cases?district=JS&status=overdue`: district (code or name), status (a
comma list of case states, `overdue` = dispatched or reopened past its deadline), category,
severity, segment, assignee, since/until (the observation time; ISO or a plain date, see
params.py), source (the reporter's kind: person, unit, merchant, evaluator, covert), q (a
plain substring of the note, the road segment's name, the reporter's or the assignee's
name, or a case id), sort, limit and offset.

Text search is a substring match (ILIKE '%…%', escaped): a trigram index cannot serve a
two-character Chinese term such as 占道, and a scan of the notes meets the time target at
100,000 cases (bench/bench_cases.py prints the figures).
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from flask import Blueprint, Response, jsonify, render_template, request, url_for
from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session

from ..cases.actions import STAFF_ACTIONS, ActionRefused, Env, act, lock_rows
from ..cases.calendar import Sla
from ..cases.extensions import requests_of
from ..cases.outbox import enqueue
from ..cases.permissions import Staff
from ..cases.workflow import CLOCK_RUNNING, REPORTS
from ..network.responsibility import responsible_at
from ..store import audit, models
from ..store.events import record_events
from ..store.segments import segment_states
from .authz import acting_name, actor, require_login, require_writer, scope_district
from .context import iso, runtime
from .errors import ApiError
from .params import CASE_STATUSES, REPORT_STATUSES, district_arg, status_list, time_arg

bp = Blueprint("cases", __name__)

DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET = 50, 200, 100_000
SORTS = {
    f"{sign}{name}": (name, sign == "-")
    for name in ("observed_at", "due_at", "severity", "updated_at")
    for sign in ("", "-")
}
SOURCES = ("person", "unit", "merchant", "evaluator", "covert")
FILTERS = (
    "district",
    "status",
    "category",
    "severity",
    "segment",
    "assignee",
    "since",
    "until",
    "source",
    "q",
)


# -- the list ----------------------------------------------------------------------------
def _int_arg(name: str, default: int, lo: int, hi: int) -> int:
    raw = request.args.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, name, "invalid", f"{name} must be a whole number") from None
    if not lo <= value <= hi:
        raise ApiError(400, name, "out_of_range", f"{name} must be between {lo} and {hi}")
    return value


def _list(name: str) -> list[str]:
    return [x.strip() for x in request.args.get(name, "").split(",") if x.strip()]


def overdue_clause(now: Any) -> Any:
    """A case whose deadline has passed while its clock runs (the live map's `overdue`)."""
    r = models.Report
    return and_(r.case_status.in_(CLOCK_RUNNING), r.due_at < now)


def case_filter(now: Any) -> list[Any]:
    """The WHERE clauses of this request's filters (and the user's district)."""
    r = models.Report
    out: list[Any] = []
    district = request.args.get("district", "")
    if district:
        out.append(r.district == district_arg(district))
    only = scope_district()
    if only is not None:
        out.append(r.district == only)
    if request.args.get("status"):
        known = tuple(dict.fromkeys((*CASE_STATUSES, *REPORT_STATUSES, "overdue")))
        wanted = status_list(request.args["status"], known)
        ors = []  # only the parts asked for: an empty IN () beside them keeps an index out
        if cases := [s for s in wanted if s in CASE_STATUSES]:
            ors.append(r.case_status.in_(cases))
        if reports := [s for s in wanted if s in REPORT_STATUSES]:
            ors.append(r.status.in_(reports))
        if "overdue" in wanted:
            ors.append(overdue_clause(now))
        out.append(or_(*ors))
    cats = _list("category")
    if cats:
        unknown = [c for c in cats if c not in runtime().categories.by_code]
        if unknown:
            raise ApiError(400, "category", "unknown_category", f"unknown category {unknown[0]}")
        out.append(r.category.in_(cats))
    sev = _list("severity")
    if sev:
        if any(s not in ("1", "2", "3") for s in sev):
            raise ApiError(400, "severity", "invalid", "severity must be 1, 2 or 3 (a comma list)")
        out.append(r.severity.in_([int(s) for s in sev]))
    if request.args.get("segment"):
        out.append(r.segment_id == request.args["segment"])
    if request.args.get("assignee"):
        out.append(r.assignee_id == request.args["assignee"])
    since, until = time_arg("since"), time_arg("until")
    if since:
        out.append(r.observed_at >= since)
    if until:
        out.append(r.observed_at < until)
    src = _list("source")
    if src:
        if any(s not in SOURCES for s in src):
            raise ApiError(400, "source", "invalid", f"source must be one of {', '.join(SOURCES)}")
        out.append(
            r.reporter_id.in_(select(models.Reporter.id).where(models.Reporter.kind.in_(src)))
        )
    text = request.args.get("q", "").strip()
    if text:
        if len(text) > 100:
            raise ApiError(400, "q", "too_long", "q must be at most 100 characters")
        out.append(_text_match(text))
    return out


def _text_match(text: str) -> Any:
    r, s, p = models.Report, models.Segment, models.Reporter

    def has(col: Any) -> Any:
        # A term without letters that have a case (Chinese, digits) is matched with LIKE:
        # the same answer as ILIKE, measured 2.6 times faster (no case folding per row).
        if text.lower() == text.upper():
            return col.contains(text, autoescape=True)
        return col.icontains(text, autoescape=True)

    people = select(p.id).where(has(p.name))
    ors = [
        has(r.note),
        r.segment_id.in_(select(s.id).where(has(s.name))),
        r.reporter_id.in_(people),
        r.assignee_id.in_(people),
    ]
    with contextlib.suppress(ValueError):
        ors.append(r.id == str(uuid.UUID(text)))
    return or_(*ors)


def _order(q: Select[Any], cols: Any) -> Select[Any]:
    """Sorted by ?sort= (then the id, for a stable order); `cols`: where the columns are."""
    key = request.args.get("sort") or "-observed_at"
    if key not in SORTS:
        raise ApiError(400, "sort", "invalid", f"sort must be one of {', '.join(SORTS)}")
    name, desc = SORTS[key]
    col = cols[name]
    # NULLS LAST only where a column has nulls: on a NOT NULL column it would keep the
    # planner from reading its index backwards (a sort of every row instead: 67 ms at 100k)
    first = col.desc() if desc else col.asc()  # ascending: nulls last already
    if desc and REPORTS.c[name].nullable:
        first = col.desc().nulls_last()
    return q.order_by(first, cols["id"].desc() if desc else cols["id"].asc())


def _names(session: Session, ids: set[str]) -> dict[str, str]:
    if not ids:
        return {}
    p = models.Reporter
    return {i: n for i, n in session.execute(select(p.id, p.name).where(p.id.in_(sorted(ids))))}


def _row_json(r: Any, names: dict[str, str], now: Any) -> dict[str, Any]:
    rt = runtime()
    ctx = rt.ctx
    pos = ctx.position.get(r.segment_id or "")
    cat = rt.categories.by_code.get(r.category)
    due = r.due_at
    overdue = r.case_status in CLOCK_RUNNING and due is not None and due < now
    return {
        "id": r.id,
        "observed_at": iso(r.observed_at),
        "category": r.category,
        "category_name": cat.name if cat else None,
        "category_name_en": cat.name_en if cat else None,
        "severity": r.severity,
        "status": r.status,
        "case_status": r.case_status,
        "overdue": overdue,
        "due_at": iso(due),
        "segment_id": r.segment_id,
        "segment_name": ctx.network.segments[pos].name if pos is not None else None,
        "district": r.district,
        "district_name": ctx.district_names.get(r.district or ""),
        "assignee_id": r.assignee_id,
        "assignee_name": names.get(r.assignee_id or ""),
        "reporter_id": r.reporter_id,
        "reporter_name": names.get(r.reporter_id),
        "note": r.note,
        "escalation_level": r.escalation_level,
        "parent_id": r.parent_id,
        "photos": len(r.photos or []),
    }


LIST_COLUMNS = (
    "id",
    "observed_at",
    "category",
    "severity",
    "status",
    "case_status",
    "due_at",
    "segment_id",
    "district",
    "assignee_id",
    "reporter_id",
    "note",
    "escalation_level",
    "parent_id",
    "photos",
)


@bp.get("/api/cases")
def case_list() -> Response:
    require_login()
    rt = runtime()
    r = models.Report
    limit = _int_arg("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = _int_arg("offset", 0, 0, MAX_OFFSET)
    now = models.utcnow()
    where = case_filter(now)
    cols = [getattr(r, c) for c in LIST_COLUMNS]
    total: int | None = None
    with rt.sessions() as session:
        if request.args.get("q", "").strip():
            # A text match cannot use an index and its share of rows is unknown to the
            # planner: read the matches once (a CTE used twice is materialised), count and
            # sort them. A plain ORDER BY … LIMIT made it walk the whole observed_at index
            # for a rare term (680 ms at 100k), and a separate count scanned the notes again.
            found = select(*cols).where(*where).cte("found")
            counted = select(func.count()).select_from(found).scalar_subquery()
            q = _order(select(found, counted.label("total_found")), found.c)
            rows = session.execute(q.limit(limit).offset(offset)).all()
            if rows or offset == 0:  # none from the start: none at all
                total = rows[0].total_found if rows else 0
        else:
            q = _order(select(*cols).where(*where), REPORTS.c)
            rows = session.execute(q.limit(limit).offset(offset)).all()
        if total is None:
            total = session.scalar(select(func.count()).select_from(r).where(*where)) or 0
        names = _names(
            session, {x.assignee_id for x in rows if x.assignee_id} | {x.reporter_id for x in rows}
        )
    items = [_row_json(x, names, now) for x in rows]
    nxt = None
    if offset + len(items) < total:
        args = {k: v for k, v in request.args.items() if k != "offset"}
        nxt = url_for("cases.case_list", _external=True, offset=offset + limit, **args)
    return jsonify({"items": items, "total": total, "offset": offset, "limit": limit, "next": nxt})


# -- one case ------------------------------------------------------------------------------
def _case_id(report_id: str) -> str:
    try:
        return str(uuid.UUID(report_id))
    except ValueError:
        raise ApiError(404, "report_id", "not_found", f"no case {report_id} / 没有该案件") from None


@bp.get("/api/cases/<report_id>")
def case_detail(report_id: str) -> Response:
    require_login()
    rt = runtime()
    rid = _case_id(report_id)
    now = models.utcnow()
    with rt.sessions() as session:
        row = session.get(models.Report, rid)
        if row is None or scope_district() not in (None, row.district):
            raise ApiError(404, "report_id", "not_found", f"no case {report_id} / 没有该案件")
        transitions = session.scalars(
            select(models.ReportTransition)
            .where(models.ReportTransition.report_id == rid)
            .order_by(models.ReportTransition.at, models.ReportTransition.id)
        ).all()
        messages = session.scalars(
            select(models.CaseMessage)
            .where(models.CaseMessage.report_id == rid)
            .order_by(models.CaseMessage.received_at)
        ).all()
        related = session.execute(
            select(models.Report.id, models.Report.case_status, models.Report.observed_at).where(
                or_(
                    models.Report.parent_id == rid,
                    models.Report.id == (row.parent_id or ""),
                )
            )
        ).all()
        people = {t.by for t in transitions if t.by} | {row.reporter_id}
        people |= {row.assignee_id} if row.assignee_id else set()
        names = _names(session, {p for p in people if p})
        chainage = (row.snap or {}).get("chainage_m")
        responsible = (
            responsible_at(
                session, row.segment_id, row.observed_at, chainage, runtime().settings.tz
            )
            if row.segment_id
            else []
        )
        responsible_now = (
            responsible_at(session, row.segment_id, now, chainage, runtime().settings.tz)
            if row.segment_id
            else []
        )
        segment = _segment_of(session, row)
        extension_requests = requests_of(session, rid)
    out = _row_json(row, names, now)
    out.update(
        lat=row.lat,
        lon=row.lon,
        accuracy_m=row.accuracy_m,
        received_at=iso(row.received_at),
        dispatched_at=iso(row.dispatched_at),
        rectified_at=iso(row.rectified_at),
        closed_at=iso(row.closed_at),
        due_provisional=row.due_provisional,
        snap_candidates=(row.snap or {}).get("candidates") or [],
        photos_before=list(row.photos or []),
        photos_after=[
            {"sha256": p, "kind": m.kind, "by": m.reporter_id, "at": iso(m.done_at)}
            for m in messages
            for p in (m.photos or [])
        ],
        # the case's last change as loaded: an action may send it back as `expect_last_change`
        # (the page does), and is refused if the case changed meanwhile
        last_change=max((t.id for t in transitions), default=None),
        timeline=[
            {
                "at": iso(row.received_at),
                "from": None,
                "to": "accepted" if row.status != "needs_review" else "needs_review",
                "by": row.reporter_id,
                "by_name": names.get(row.reporter_id),
                "note": row.note,
                "action": "report",
                "data": None,
            }
        ]
        + [
            {
                "at": iso(t.at),
                "from": t.from_status,
                "to": t.to_status,
                "by": t.by,
                "by_name": names.get(t.by or ""),
                "note": t.note,
                "action": (t.data or {}).get("action") if isinstance(t.data, dict) else None,
                "data": t.data,
            }
            for t in transitions
        ],
        responsible_then=responsible,
        responsible_now=responsible_now,
        segment=segment,
        related=[
            {"id": x.id, "case_status": x.case_status, "observed_at": iso(x.observed_at)}
            for x in related
        ],
        deadline=_deadline(row, now),
        actions=_allowed_actions(row),
        extension_requests=[
            {**x, "requested_by_name": names.get(x["requested_by"])} for x in extension_requests
        ],
    )
    return jsonify(out)


def _segment_of(session: Session, row: models.Report) -> dict[str, Any] | None:
    if not row.segment_id:
        return None
    ver = session.scalar(
        select(models.SegmentVersion).where(
            models.SegmentVersion.segment_id == row.segment_id,
            models.SegmentVersion.version == (row.segment_version or 1),
        )
    )
    if ver is None:
        return None
    return {
        "id": row.segment_id,
        "version": ver.version,
        "name": ver.name,
        "geometry": ver.geometry,
    }


def _deadline(row: models.Report, now: Any) -> dict[str, Any] | None:
    """The deadline and the working time left (negative: overdue by), per the calendar."""
    if row.due_at is None:
        return None
    cal = _sla().calendar
    running = row.case_status in CLOCK_RUNNING
    left = cal.working_between(now, row.due_at) if running else None
    return {
        "due_at": iso(row.due_at),
        "running": running,
        "working_hours_left": round(left.total_seconds() / 3600, 2) if left is not None else None,
        "overdue": bool(running and row.due_at < now),
        "provisional": row.due_provisional,
    }


def _sla() -> Sla:
    """The time limits with their working-time calendar (what deadlines are counted in)."""
    sla = runtime().pipeline.sla
    assert isinstance(sla, Sla)
    return sla


def _allowed_actions(row: models.Report) -> list[str]:
    """The actions the page offers for this case's state (the server checks again)."""
    s = row.case_status
    out = ["comment"]
    if s in ("new", "dispatched", "reopened"):
        out.append("reassign")
    if s == "rectified":
        out.append("verify")
    if s in CLOCK_RUNNING:
        out += ["extend", "suspend", "close_duplicate", "merge"]
    if s in ("new", "needs_review", "dispatched", "reopened"):
        out.append("close_invalid")
    if s == "duplicate" and row.parent_id:
        out.append("split")
    if s in ("closed", "invalid"):
        out.append("reopen")
    return out


# -- actions --------------------------------------------------------------------------------
def _check_unchanged(session: Session, rid: str, expected: Any) -> None:
    """An action sent from a page loaded before the case changed (another officer's action,
    a fix from the phone, or this page's own first click of a double click) is refused
    rather than stacked on a case the officer has not seen: 409 `stale`, saying what
    changed. `expected` is the case's `last_change` as loaded (null: none yet)."""
    if expected is not None and (isinstance(expected, bool) or not isinstance(expected, int)):
        raise ApiError(
            400,
            "expect_last_change",
            "invalid_type",
            "expect_last_change is the case's last_change (an integer or null)",
        )
    t = models.ReportTransition
    last = session.execute(
        select(t.id, t.to_status, t.by, t.at)
        .where(t.report_id == rid)
        .order_by(t.id.desc())
        .limit(1)
    ).first()
    if (last.id if last else None) == expected:
        return
    assert last is not None  # a change the page had not seen
    raise ApiError(
        409,
        "case",
        "stale",
        f"the case changed since this page was loaded ({last.to_status} by {last.by} at "
        f"{iso(last.at)}): reload it and decide again / 案件已被更新，请刷新后再操作",
    )


@bp.post("/api/cases/<report_id>/<action>")
def case_action(report_id: str, action: str) -> tuple[Response, int]:
    rt = runtime()
    user = require_writer()  # viewers only watch
    if action not in STAFF_ACTIONS:
        raise ApiError(404, "action", "unknown_action", f"no case action {action!r}")
    body: Any = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "body", "invalid_json", "send a JSON object / 请求格式错误")
    acting_name(body, user)  # a `by` naming anyone else is refused
    rid = _case_id(report_id)
    staff = Staff.of(user)
    with rt.sessions.begin() as session:
        conn = session.connection()
        # The case's rows are locked first and the time taken after: an action that waited
        # for another officer's is recorded after it (times taken before the wait put a
        # reassign done first after the close_invalid that followed it on the timeline).
        lock_rows(conn, action, rid, body)
        now = models.utcnow()
        env = Env(_sla(), rt.ctx, now)
        row = session.get(models.Report, rid)
        if row is None:
            raise ApiError(404, "report_id", "not_found", f"no case {report_id} / 没有该案件")
        if "expect_last_change" in body:
            _check_unchanged(session, rid, body["expect_last_change"])
        # another district's case: the permission table refuses it, in plain words (403)
        try:
            done = act(conn, staff, action, rid, body, env)
        except ActionRefused as exc:
            raise ApiError(exc.status, exc.field, exc.code, exc.message) from None
        audit.record(session, actor(), f"case.{action}", rid, at=now, **done.detail)
        segs = sorted(
            {s for s in (row.segment_id, done.effects.events[0][1].get("segment_id")) if s}
        )
        payloads = done.effects.events + [("segment", st) for st in segment_states(conn, segs)]
        # the phone's notices are outbox rows of this transaction (the outbox sends them)
        enqueue(conn, done.effects.notices, now, rt.pipeline.routing)
        events = record_events(conn, payloads, now)  # last: it orders the commits
    rt.broadcaster.publish(events)
    rt.send_notices(done.effects.notices)
    return jsonify(
        {"id": rid, "action": action, "case_status": done.case_status, **done.detail}
    ), 200


# -- pages ---------------------------------------------------------------------------------
def _page_config() -> dict[str, Any]:
    rt = runtime()
    u = require_login()  # the guard sends anonymous visitors to the login page first
    return {
        "user": {"name": u.username, "role": u.role, "district": u.sees_district},
        "namespace": "/live",  # the live feed: alerts (static/live/alerts.js), live redraws
        "socketio_path": "socket.io",
        "timezone": rt.settings.timezone,
        "district_names": rt.ctx.district_names,
        "filters": list(FILTERS),
        "sorts": list(SORTS),
        "statuses": [*CASE_STATUSES, "overdue"],
        "sources": list(SOURCES),
        "categories": {
            c.code: {"name": c.name, "name_en": c.name_en} for c in rt.categories.by_code.values()
        },
    }


@bp.get("/cases")
def cases_page() -> Any:
    return render_template("cases.html", title="案件 · 路长制", config=_page_config())


@bp.get("/cases/<report_id>")
def case_page(report_id: str) -> Any:
    from .mapdata import basemap_config

    config = {
        **_page_config(),
        "case_id": report_id,
        "basemap": basemap_config(runtime(), request.script_root),
    }
    return render_template("case.html", title="案件详情 · 路长制", config=config)
