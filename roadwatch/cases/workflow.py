"""The case workflow (docs/domain.md: collect → file → dispatch → handle → report back → verify).

A report that is tied to a segment becomes a case and is dispatched at once to whoever
answered for that spot when it was observed: a merchant whose frontage zone covers it gets
a short grace window first, otherwise the segment's road chief (三级, else the next level
up). From there:

    dispatched ─rectify─► rectified ─verify ok─► closed
        ▲                     │
        └──────── reopened ◄──┘ verify failed
    needs_review ─review─► dispatched | invalid;   a corroborating report ─► duplicate

Every change is a ReportTransition (who, when, why); anything else is refused with a
reason in plain words. Functions here work inside the caller's transaction and return the
live events and MQTT notices to send after commit.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Connection, String, Table, bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from ..network.frontage import in_frontage
from ..store import models
from ..store.bulk import insert_rows
from .permissions import CaseFacts, Reporter, clamp_done_at, may

REPORTS: Table = models.Report.__table__  # type: ignore[assignment]
TRANSITIONS: Table = models.ReportTransition.__table__  # type: ignore[assignment]
VERSIONS: Table = models.ReportVersion.__table__  # type: ignore[assignment]
REPORTERS: Table = models.Reporter.__table__  # type: ignore[assignment]
# What the weekly ranking reads of a case (roadwatch.ranking.gather): kept as it was before
# each change after intake, so a published week is recomputed as it stood at its cut-off.
RANKED_FIELDS = ("segment_id", "case_status", "due_at", "rectified_at", "closed_at")
ASSIGNMENTS: Table = models.Assignment.__table__  # type: ignore[assignment]

# counted against the segment ("new": stored, waiting for the dispatcher)
OPEN_CASE = ("new", "dispatched", "reopened", "rectified")
CLOCK_RUNNING = ("dispatched", "reopened")  # rectified waits for verification: no clock
ALLOWED: dict[str | None, frozenset[str]] = {
    None: frozenset({"new", "dispatched", "needs_review", "duplicate"}),
    "new": frozenset({"dispatched", "duplicate", "invalid"}),
    "needs_review": frozenset({"dispatched", "invalid"}),
    "dispatched": frozenset({"rectified", "dispatched", "invalid"}),
    "reopened": frozenset({"rectified", "dispatched", "invalid"}),
    "rectified": frozenset({"closed", "reopened"}),
    "closed": frozenset(),
    "duplicate": frozenset(),
    "invalid": frozenset(),
}


class Sla(Protocol):
    """What the workflow needs from the time-limit configuration (roadwatch.cases.calendar)."""

    def deadline(self, category: str, severity: int, start: dt.datetime) -> dt.datetime: ...

    def merchant_deadline(self, start: dt.datetime) -> dt.datetime: ...

    def escalation_at(self, due_at: dt.datetime, step: int) -> dt.datetime | None: ...

    def escalation_steps(self, deadline: dt.datetime, responsible_level: int) -> list[Any]: ...

    def is_provisional(self, start: dt.datetime, due: dt.datetime) -> bool: ...

    def holiday_warning(self, now: dt.datetime) -> str | None: ...


class TransitionError(ValueError):
    """A change the workflow does not allow; the message says why, in plain words."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Notice:
    """A message to one person over MQTT (roadwatch/v1/notices/{person})."""

    person_id: str
    body: dict[str, Any]


@dataclass
class Effects:
    """What to send once the transaction has committed."""

    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    transitions: list[dict[str, Any]] = field(default_factory=list)
    case_status: dict[str, str] = field(default_factory=dict)  # report id -> its new state

    def extend(self, other: Effects) -> None:
        self.events += other.events
        self.notices += other.notices
        self.transitions += other.transitions
        self.case_status.update(other.case_status)


def check(current: str | None, new: str) -> None:
    if new not in ALLOWED.get(current, frozenset()):
        raise TransitionError(
            "illegal_transition",
            f"a case that is {current or 'new'} cannot become {new}",
        )


# -- responsibility lookup for a batch ---------------------------------------------
@dataclass(frozen=True, slots=True)
class Holder:
    person_id: str
    role: str
    level: int | None
    valid_from: dt.datetime
    valid_to: dt.datetime | None
    from_chainage_m: float | None
    to_chainage_m: float | None

    def holds(self, at: dt.datetime) -> bool:
        return self.valid_from <= at and (self.valid_to is None or at < self.valid_to)


def holders_of(
    session: Session | Connection, segment_ids: Iterable[str]
) -> dict[str, list[Holder]]:
    """All assignments of these segments (any period), one query for a whole batch."""
    ids = sorted(set(segment_ids))
    if not ids:
        return {}
    a = ASSIGNMENTS.c
    out: dict[str, list[Holder]] = {}
    utc = models.UTCDateTime()
    for r in session.execute(
        select(
            a.segment_id,
            a.reporter_id,
            a.role,
            a.level,
            a.valid_from,
            a.valid_to,
            a.from_chainage_m,
            a.to_chainage_m,
        ).where(a.segment_id.in_(ids))
    ):
        out.setdefault(r.segment_id, []).append(
            Holder(
                r.reporter_id,
                r.role,
                r.level,
                _aware(r.valid_from, utc),
                _aware(r.valid_to, utc),
                r.from_chainage_m,
                r.to_chainage_m,
            )
        )
    return out


class HoldersCache:
    """Assignments per segment, kept for a few seconds: they change a few times a year,
    while the ingest path would otherwise read them for every batch."""

    def __init__(self, ttl_s: float = 10.0) -> None:
        import threading
        import time

        self.ttl_s = ttl_s
        self._clock = time.monotonic
        self._lock = threading.Lock()
        self._data: dict[str, tuple[float, list[Holder]]] = {}

    def get(
        self, session: Session | Connection, segment_ids: Sequence[str]
    ) -> dict[str, list[Holder]]:
        now = self._clock()
        with self._lock:
            fresh = {s: v[1] for s in segment_ids if (v := self._data.get(s)) and v[0] > now}
        missing = [s for s in segment_ids if s not in fresh]
        if missing:
            loaded = holders_of(session, missing)
            with self._lock:
                for s in missing:
                    held = loaded.get(s, [])
                    self._data[s] = (now + self.ttl_s, held)
                    fresh[s] = held
        return fresh

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


def _aware(value: Any, utc: Any) -> Any:
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def pick_assignee(
    holders: Sequence[Holder], at: dt.datetime, chainage_m: float | None
) -> tuple[Holder | None, Holder | None]:
    """(merchant whose frontage covers the spot, the road chief closest to the segment)."""
    current = [h for h in holders if h.holds(at)]
    merchant = None
    if chainage_m is not None:
        for h in current:
            if h.role == "merchant" and in_frontage(h.from_chainage_m, h.to_chainage_m, chainage_m):
                merchant = h
                break
    chiefs = sorted(
        (h for h in current if h.role == "road_chief" and h.level is not None),
        key=lambda h: -(h.level or 0),
    )
    return merchant, (chiefs[0] if chiefs else None)


def chief_at_level(holders: Sequence[Holder], at: dt.datetime, level: int) -> Holder | None:
    for h in holders:
        if h.role == "road_chief" and h.level == level and h.holds(at):
            return h
    return None


# -- intake: a batch of freshly stored reports becomes cases ----------------------------
@dataclass(frozen=True, slots=True)
class NewCase:
    id: str
    segment_id: str
    category: str
    severity: int
    observed_at: dt.datetime
    chainage_m: float | None
    lat: float | None
    lon: float | None
    reporter_id: str


DUPLICATE_WINDOW = dt.timedelta(hours=24)
DUPLICATE_DISTANCE_M = 50.0


def _distance_m(
    a: tuple[float | None, float | None], b: tuple[float | None, float | None]
) -> float:
    if None in a or None in b:
        return math.inf
    lat1, lon1 = a
    lat2, lon2 = b
    assert lat1 is not None and lon1 is not None and lat2 is not None and lon2 is not None
    k = 111_320.0
    dx = (lon2 - lon1) * k * math.cos(math.radians((lat1 + lat2) / 2))
    dy = (lat2 - lat1) * 110_540.0
    return math.hypot(dx, dy)


def open_cases(
    session: Session | Connection,
    cases: Sequence[NewCase],
    sla: Sla,
    now: dt.datetime,
    *,
    duplicate_window: dt.timedelta = DUPLICATE_WINDOW,
    duplicate_distance_m: float = DUPLICATE_DISTANCE_M,
    holders: HoldersCache | None = None,
) -> Effects:
    """Dispatch new cases, or link them to an open case they corroborate. One batch."""
    fx = Effects()
    if not cases:
        return fx
    seg_ids = sorted({c.segment_id for c in cases})
    earliest = min(c.observed_at for c in cases) - duplicate_window
    existing = _open_cases_near(session, cases, earliest)
    open_by_key: dict[tuple[str, str], list[Any]] = {}
    batch_ids = {c.id for c in cases}
    for e in existing:
        if e.id not in batch_ids:  # this batch's own reports are decided in order below
            open_by_key.setdefault((e.segment_id, e.category), []).append(e)
    held = holders.get(session, seg_ids) if holders else holders_of(session, seg_ids)
    deadlines: dict[tuple[str, int], dt.datetime] = {}
    updates: list[dict[str, Any]] = []
    for c in cases:
        parent = None
        for e in open_by_key.get((c.segment_id, c.category), []):
            observed = _aware(e.observed_at, None)
            if (
                abs(observed - c.observed_at) <= duplicate_window
                and _distance_m((e.lat, e.lon), (c.lat, c.lon)) <= duplicate_distance_m
            ):
                parent = e
                break
        if parent is not None:
            fx.case_status[c.id] = "duplicate"
            updates.append(
                {
                    "rid": c.id,
                    "case_status": "duplicate",
                    "parent_id": parent.id,
                    "assignee_id": None,
                    "dispatched_at": None,
                    "due_at": None,
                    "due_provisional": False,
                    "next_escalation_at": None,
                    "updated_at": now,
                }
            )
            fx.transitions.append(
                _transition(
                    c.id,
                    None,
                    "duplicate",
                    "system",
                    now,
                    f"corroborates case {parent.id}",
                    {"parent_id": parent.id},
                )
            )
            fx.events.append(
                (
                    "case",
                    {
                        "id": c.id,
                        "status": "duplicate",
                        "segment_id": c.segment_id,
                        "parent_id": parent.id,
                    },
                )
            )
            continue
        merchant, chief = pick_assignee(held.get(c.segment_id, []), c.observed_at, c.chainage_m)
        target = merchant or chief
        fx.case_status[c.id] = "dispatched"
        # Everything in a batch is dispatched at `now`: one deadline per (category, severity).
        key = ("merchant", 0) if merchant else (c.category, c.severity)
        due = deadlines.get(key)
        if due is None:
            due = (
                sla.merchant_deadline(now)
                if merchant
                else sla.deadline(c.category, c.severity, now)
            )
            deadlines[key] = due
        updates.append(
            {
                "rid": c.id,
                "case_status": "dispatched",
                "parent_id": None,
                "assignee_id": target.person_id if target else None,
                "dispatched_at": now,
                "due_at": due,
                "due_provisional": sla.is_provisional(now, due),
                "next_escalation_at": due,
                "updated_at": now,
            }
        )
        why = "merchant grace window (门前三包)" if merchant else "responsible road chief"
        fx.transitions.append(
            _transition(
                c.id,
                None,
                "dispatched",
                "system",
                now,
                why,
                {
                    "assignee_id": target.person_id if target else None,
                    "due_at": due.isoformat(),
                    "grace": merchant is not None,
                },
            )
        )
        fx.events.append(
            (
                "case",
                {
                    "id": c.id,
                    "status": "dispatched",
                    "segment_id": c.segment_id,
                    "assignee_id": target.person_id if target else None,
                    "due_at": due.isoformat(),
                },
            )
        )
        # a new case joins the open list at once: a second report in this batch corroborates it
        open_by_key.setdefault((c.segment_id, c.category), []).append(
            _Row(c.id, c.segment_id, c.category, c.observed_at, c.lat, c.lon)
        )
        # A chief who reported it themselves needs no notice of it (issue 20).
        if target is not None and target.person_id != c.reporter_id:
            fx.notices.append(
                Notice(
                    target.person_id,
                    {
                        "v": 1,
                        "kind": "dispatch",
                        "case_id": c.id,
                        "segment_id": c.segment_id,
                        "category": c.category,
                        "severity": c.severity,
                        "due_at": due.isoformat(),
                        "grace": merchant is not None,
                    },
                )
            )
    if updates:
        _update_cases(session, updates)
    if fx.transitions:
        insert_rows(session, TRANSITIONS, fx.transitions)
        fx.transitions = []
    return fx


def _open_cases_near(
    session: Session | Connection, cases: Sequence[NewCase], earliest: dt.datetime
) -> list[Any]:
    """Open cases of the same segment and category as any of `cases`, seen since `earliest`.

    On PostgreSQL: one correlated lookup per (segment, category) pair in the open-cases
    partial index (LATERAL). The plain IN lists used before let the planner, on a table
    whose statistics lag behind (a young or fast-growing one), filter every open case in
    the window instead (measured: 46 ms instead of a few ms a pass at 5,000 open cases).
    """
    pairs = sorted({(c.segment_id, c.category) for c in cases})
    bind = session.get_bind() if isinstance(session, Session) else session
    if bind.dialect.name == "postgresql":
        return list(
            session.execute(
                _OPEN_NEAR_PG,
                {
                    "segs": [p[0] for p in pairs],
                    "cats": [p[1] for p in pairs],
                    "earliest": earliest,
                },
            )
        )
    r = REPORTS.c
    wanted = set(pairs)
    rows = session.execute(
        select(r.id, r.segment_id, r.category, r.observed_at, r.lat, r.lon).where(
            r.segment_id.in_(sorted({p[0] for p in pairs})),
            r.category.in_(sorted({p[1] for p in pairs})),
            text(models.OPEN_CASE_SQL),
            r.observed_at >= earliest,
        )
    )
    return [x for x in rows if (x.segment_id, x.category) in wanted]


# The open-case predicate is literal SQL, word for word the partial index's.
_OPEN_NEAR_PG = (
    text(
        "SELECT r.id, r.segment_id, r.category, r.observed_at, r.lat, r.lon "
        "FROM unnest(:segs, :cats) AS k(segment_id, category), LATERAL ("
        "SELECT id, segment_id, category, observed_at, lat, lon FROM reports "
        "WHERE segment_id = k.segment_id AND category = k.category "
        # OFFSET 0 keeps the planner from flattening the LATERAL into one hash join over
        # every open case (which it did: 45 ms instead of 7 ms a pass at 5,000 open cases).
        f"AND {models.OPEN_CASE_SQL} AND observed_at >= :earliest OFFSET 0) AS r"
    )
    .bindparams(
        bindparam("segs", type_=ARRAY(String())),
        bindparam("cats", type_=ARRAY(String())),
        bindparam("earliest", type_=models.UTCDateTime()),
    )
    .columns(observed_at=models.UTCDateTime())
)


@dataclass(frozen=True, slots=True)
class _Row:
    id: str
    segment_id: str
    category: str
    observed_at: dt.datetime
    lat: float | None
    lon: float | None


_PLAN_COLUMNS = (
    "case_status",
    "parent_id",
    "assignee_id",
    "dispatched_at",
    "due_at",
    "due_provisional",
    "next_escalation_at",
    "updated_at",
)


def _update_cases(session: Session | Connection, updates: list[dict[str, Any]]) -> None:
    """Write the planned case columns: on PostgreSQL one COPY and one UPDATE … FROM for the
    whole batch instead of an UPDATE per report."""
    from sqlalchemy import bindparam, update

    conn = session.connection() if isinstance(session, Session) else session
    if conn.dialect.name != "postgresql" or len(updates) < 16:
        cols: dict[str, Any] = {k: bindparam(k) for k in updates[0] if k != "rid"}
        conn.execute(
            update(REPORTS).where(REPORTS.c.id == bindparam("rid")).values(**cols), updates
        )
        return
    raw = conn.connection.driver_connection
    assert raw is not None
    naive = [c for c in _PLAN_COLUMNS if c.endswith("_at")]
    with raw.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS _case_plan (rid text, case_status text, "
            "parent_id text, assignee_id text, dispatched_at timestamp, due_at timestamp, "
            "due_provisional boolean, next_escalation_at timestamp, updated_at timestamp) "
            "ON COMMIT DELETE ROWS"
        )
        with cur.copy("COPY _case_plan FROM STDIN") as copy:
            for u in updates:
                copy.write_row(
                    [u["rid"]]
                    + [
                        (u[c].astimezone(dt.UTC).replace(tzinfo=None) if u[c] else None)
                        if c in naive
                        else u[c]
                        for c in _PLAN_COLUMNS
                    ]
                )
        sets = ", ".join(f"{c} = p.{c}" for c in _PLAN_COLUMNS)
        cur.execute(f"UPDATE reports SET {sets} FROM _case_plan p WHERE reports.id = p.rid")


def _transition(
    rid: str,
    frm: str | None,
    to: str,
    by: str | None,
    at: dt.datetime,
    note: str | None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "report_id": rid,
        "at": at,
        "from_status": frm,
        "to_status": to,
        "by": by,
        "note": note,
        "data": data,
    }


def keep_ranked_state(
    conn: Session | Connection, report_ids: Sequence[str], at: dt.datetime
) -> None:
    """Keep the ranked fields of these reports as they are now, before a change at `at`
    (a staff action, a fix or check from the phone, a review decision, a late photo, a
    deadline recomputed). Call it before the UPDATE, in its transaction: the weekly
    ranking's recomputation of a frozen week reads the earliest version after its cut-off
    as the state then (models.ReportVersion). The dispatcher's first dispatch is not kept:
    it runs at intake, and a report received after a cut-off counts in no week."""
    if not report_ids:
        return
    cols = ", ".join(RANKED_FIELDS)
    conn.execute(
        text(
            f"INSERT INTO report_versions (report_id, changed_at, {cols})"
            f" SELECT id, :at, {cols} FROM reports WHERE id IN :ids"
        ).bindparams(bindparam("at", type_=models.UTCDateTime()), bindparam("ids", expanding=True)),
        {"at": at, "ids": list(report_ids)},
    )


def record(session: Session | Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        insert_rows(session, TRANSITIONS, rows)


# -- rectification and verification -------------------------------------------------
MESSAGES: Table = models.CaseMessage.__table__  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class CaseOutcome:
    status: str  # accepted | duplicate | rejected
    case_status: str | None = None
    segment_id: str | None = None
    error: tuple[str, str, str] | None = None  # field, code, message


def _reject(field_: str, code: str, message: str, case_status: str | None = None) -> CaseOutcome:
    return CaseOutcome("rejected", case_status=case_status, error=(field_, code, message))


def apply_case_message(
    conn: Connection,
    msg: Any,  # roadwatch.cases.intake.CaseMessageIn
    raw: bytes,
    received_at: dt.datetime,
    now: dt.datetime,
    photo_optional: frozenset[str] = frozenset(),
    holders: HoldersCache | None = None,
) -> tuple[CaseOutcome, Effects]:
    """Apply one rectification or verification inside the caller's transaction.

    Who may send it is decided by roadwatch.cases.permissions (the one permission table);
    its done_at is first clamped between the start of the work it claims and its receipt.
    """
    fx = Effects()
    r = REPORTS.c
    seen = conn.execute(
        select(MESSAGES.c.reporter_id).where(MESSAGES.c.id == msg.message_id)
    ).first()
    if seen is not None and seen.reporter_id != msg.reporter_id:
        # Another reporter's message id: not a resend, so no silent "duplicate" (as for
        # report and patrol ids).
        return _reject(
            f"{msg.kind}_id",
            "not_yours",
            f"this {msg.kind}_id is another reporter's message; make a new UUID for each one",
        ), fx
    if seen is not None:
        row = conn.execute(select(r.case_status, r.segment_id).where(r.id == msg.report_id)).first()
        return CaseOutcome(
            "duplicate", row.case_status if row else None, row.segment_id if row else None
        ), fx
    q = select(
        r.id,
        r.case_status,
        r.segment_id,
        r.district,
        r.category,
        r.due_at,
        r.assignee_id,
        r.dispatched_at,
        r.rectified_at,
        r.snap,
        # who fixed it and who is asking, in the same round trip (only the case row is locked)
        _fixer_sql(r.id).label("fixer_id"),
        select(models.Reporter.kind)
        .where(models.Reporter.id == msg.reporter_id)
        .scalar_subquery()
        .label("actor_kind"),
    ).where(r.id == msg.report_id)
    if conn.dialect.name == "postgresql":
        q = q.with_for_update(of=REPORTS)
    case = conn.execute(q).first()
    if case is None:
        return _reject(
            "report_id",
            "unknown_report",
            f"there is no report {msg.report_id}; send the report first",
        ), fx
    target = (
        "rectified"
        if msg.kind == "rectification"
        else ("closed" if msg.result == "pass" else "reopened")
    )
    try:
        check(case.case_status, target)
    except TransitionError as exc:
        # the phone learns the state that refused it (a check of a case not yet fixed)
        return _reject("report_id", exc.code, str(exc), case.case_status), fx

    # When was it done? Not before the work could begin, not after the platform got it.
    received = _aware(received_at, None)
    fixer: str | None = None
    kind: str | None = None
    if msg.kind == "rectification":
        earliest = _aware(case.dispatched_at, None)
        what = "case was dispatched"
        if case.case_status == "reopened":
            reopened_at = _last_reopened_at(conn, msg.report_id)
            if reopened_at is not None and (earliest is None or reopened_at > earliest):
                earliest, what = reopened_at, "case was reopened"
    else:
        earliest, what = _aware(case.rectified_at, None), "rectification it verifies"
        fixer, kind = case.fixer_id, case.actor_kind
    clamp = clamp_done_at(msg.done_at, earliest, received, what)
    done_at = clamp.used
    seg = case.segment_id
    held = (
        (holders.get(conn, [seg]) if holders else holders_of(conn, [seg])).get(seg, [])
        if seg
        else []
    )
    facts = CaseFacts(
        id=case.id,
        segment_id=seg,
        district=case.district,
        assignee_id=case.assignee_id,
        at=done_at,
        holders=held,
        fixer_id=fixer,
        chainage_m=_chainage(case.snap),
    )
    decision = may(
        Reporter(msg.reporter_id, kind),
        "rectify" if msg.kind == "rectification" else "verify",
        facts,
    )
    if not decision.allowed:
        return _reject("reporter_id", decision.code, decision.reason), fx

    if msg.kind == "rectification":
        if case.category not in photo_optional and not msg.photos:
            return _reject(
                "photos",
                "photo_required",
                "an after photo is required to rectify this category",
                case.case_status,
            ), fx
        values: dict[str, Any] = {
            "case_status": "rectified",
            "rectified_at": done_at,
            "next_escalation_at": None,
            "updated_at": now,
        }
    elif target == "closed":
        values = {"case_status": "closed", "closed_at": done_at, "updated_at": now}
    else:
        due = case.due_at
        resume = due if due is not None and _aware(due, None) > now else now
        values = {"case_status": "reopened", "next_escalation_at": resume, "updated_at": now}
    conn.execute(
        MESSAGES.insert(),
        {
            "id": msg.message_id,
            "kind": msg.kind,
            "report_id": msg.report_id,
            "reporter_id": msg.reporter_id,
            "received_at": received_at,
            "done_at": done_at,
            "result": msg.result,
            "photos": list(msg.photos),
            "note": msg.note,
            "raw": raw,
        },
    )
    from sqlalchemy import update

    keep_ranked_state(conn, [msg.report_id], now)
    conn.execute(update(REPORTS).where(r.id == msg.report_id).values(**values))
    record(
        conn,
        [
            _transition(
                msg.report_id,
                case.case_status,
                target,
                msg.reporter_id,
                now,
                msg.note,
                {
                    "message_id": msg.message_id,
                    "photos": list(msg.photos),
                    "done_at": clamp.as_json(),
                },
            )
        ],
    )
    fx.events.append(
        (
            "case",
            {
                "id": msg.report_id,
                "status": target,
                "segment_id": case.segment_id,
                "by": msg.reporter_id,
            },
        )
    )
    if target == "reopened" and case.assignee_id:
        fx.notices.append(
            Notice(
                case.assignee_id,
                {
                    "v": 1,
                    "kind": "reopened",
                    "case_id": msg.report_id,
                    "segment_id": case.segment_id,
                    "category": case.category,
                    "note": msg.note,
                },
            )
        )
    return CaseOutcome("accepted", target, case.segment_id), fx


def _last_reopened_at(conn: Connection, report_id: str) -> dt.datetime | None:
    t = TRANSITIONS.c
    at = conn.execute(
        select(t.at)
        .where(t.report_id == report_id, t.to_status == "reopened")
        .order_by(t.at.desc())
        .limit(1)
    ).scalar()
    return _aware(at, None) if at is not None else None


def case_facts(
    conn: Session | Connection,
    report_id: str,
    at: dt.datetime,
    *,
    holders: HoldersCache | None = None,
) -> CaseFacts | None:
    """What the permission table needs to judge an action on a case at `at` (for a staff
    action: now), or None when there is no such report. The command centre's actions call
    `permissions.may(Staff(...), action, case_facts(...))`, as the chiefs' path does."""
    r = REPORTS.c
    finder_kind = select(REPORTERS.c.kind).where(REPORTERS.c.id == r.reporter_id).scalar_subquery()
    case = conn.execute(
        select(
            r.id,
            r.segment_id,
            r.district,
            r.assignee_id,
            r.case_status,
            r.snap,
            finder_kind.label("finder_kind"),
        ).where(r.id == report_id)
    ).first()
    if case is None:
        return None
    fixer = None
    if case.case_status == "rectified":
        fixer = _fixer(conn, report_id)
    seg = case.segment_id
    held = (
        (holders.get(conn, [seg]) if holders else holders_of(conn, [seg])).get(seg, [])
        if seg
        else []
    )
    return CaseFacts(
        id=case.id,
        segment_id=seg,
        district=case.district,
        assignee_id=case.assignee_id,
        at=at,
        holders=held,
        fixer_id=fixer,
        chainage_m=_chainage(case.snap),
        finder_kind=case.finder_kind,
    )


def _chainage(snap: Any) -> float | None:
    value = snap.get("chainage_m") if isinstance(snap, dict) else None
    return float(value) if isinstance(value, int | float) else None


def _fixer_sql(report_id: Any) -> Any:
    """Who sent the rectification a verification would check (the latest one)."""
    return (
        select(MESSAGES.c.reporter_id)
        .where(MESSAGES.c.report_id == report_id, MESSAGES.c.kind == "rectification")
        .order_by(MESSAGES.c.received_at.desc())
        .limit(1)
        .scalar_subquery()
    )


def _fixer(conn: Session | Connection, report_id: str) -> str | None:
    return conn.execute(select(_fixer_sql(report_id))).scalar()
