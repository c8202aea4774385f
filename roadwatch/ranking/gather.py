"""Gathering a week from the database for scoring: the aggregation is done in SQL.

One GROUP BY query per kind of unit turns the week's reports into (unit, category, severity,
source) rows with their process counts at the cut-off `as_of`; segments, patrol days and
duty levels come from three more small queries. Python then only loops over units, never
over reports. The findings behind the flags are fetched afterwards, one by one, for the
drill-down (`findings_of`).

What counts (as of `as_of`):
* a finding: a report observed in the week, tied to a segment, not a duplicate (those
  corroborate a case and are never counted twice), not invalid, not under review, and not
  struck out by an upheld dispute decided before the cut-off;
* its source: the reporter's kind (formula [sources]) for evaluators and covert checks;
  "self" when the reporter answered for that segment when it was observed; else "public";
* on time: rectified before its deadline and the cut-off; overdue: its deadline passed
  unrectified; reopened: a verification failed before the cut-off; unresolved: not closed;
  recurrence: the same category on the same segment within recurrence_days before it.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, TextClause, bindparam, text

from ..models import UTCDateTime
from .formula import Formula
from .score import Finding, FindingGroup, Unit
from .week import Week

EXCLUDED_CASES = ("duplicate", "invalid", "needs_review")


@dataclass(frozen=True)
class WeekData:
    units: list[Unit]
    district_names: dict[str, str]


def _sql(conn: Connection, body: str) -> TextClause:
    stmt = text(body)
    params = [bindparam(k, type_=UTCDateTime()) for k in ("start", "end", "as_of", "lookback")]
    present = [p for p in params if f":{p.key}" in body]
    stmt = stmt.bindparams(*present)
    for name in ("ev", "cv", "ids"):
        if f":{name}" in body:
            stmt = stmt.bindparams(bindparam(name, expanding=True))
    return stmt


def _findings_cte(conn: Connection, formula: Formula) -> str:
    """The week's findings with their source and process flags (one row per report)."""
    pg = conn.dialect.name == "postgresql"
    days = int(formula.recurrence_days)
    if pg:
        gap = f"w.observed_at - w.prev_at <= interval '{days} days'"
        chainage = "(r.snap->>'chainage_m')::float"
    else:
        gap = f"julianday(w.observed_at) - julianday(w.prev_at) <= {days}"
        chainage = "CAST(json_extract(r.snap, '$.chainage_m') AS REAL)"
    none = "('__none__')"
    ev = ":ev" if formula.evaluator_kinds else none
    cv = ":cv" if formula.covert_kinds else none
    c = ' COLLATE "C"' if pg else ""  # byte order: only grouping matters, not the language
    return f"""
    windowed AS (
      SELECT r.id, r.segment_id, r.category, r.severity, r.observed_at, r.reporter_id,
             r.due_at, r.rectified_at, r.closed_at, r.case_status, {chainage} AS chainage_m,
             LAG(r.observed_at) OVER (
               PARTITION BY r.segment_id{c}, r.category{c} ORDER BY r.observed_at, r.id{c}
             ) AS prev_at
      FROM reports r
      WHERE r.observed_at >= :lookback AND r.observed_at < :end
        AND r.segment_id IS NOT NULL
        AND COALESCE(r.case_status, '') NOT IN ('duplicate', 'invalid', 'needs_review')
    ),
    reopened AS (
      SELECT t.report_id, COUNT(*) AS n FROM report_transitions t
      WHERE t.to_status = 'reopened' AND t.at <= :as_of GROUP BY t.report_id
    ),
    selfrep AS (
      -- reports by someone who answered for the segment when they observed it: a hash
      -- join, not a subquery per report (measured: 3.8 s → 0.2 s for 100,000 reports)
      SELECT DISTINCT w.id FROM windowed w
      JOIN assignments a ON a.segment_id = w.segment_id AND a.reporter_id = w.reporter_id
        AND a.valid_from <= w.observed_at
        AND (a.valid_to IS NULL OR a.valid_to > w.observed_at)
      WHERE w.observed_at >= :start
    ),
    struck AS (
      SELECT d.report_id FROM ranking_disputes d
      WHERE d.week = :week AND d.decision = 'upheld' AND d.decided_at <= :as_of
    ),
    findings AS (
      SELECT w.id, w.segment_id, w.category, w.severity, w.observed_at, w.reporter_id,
             w.chainage_m,
             CASE WHEN rp.kind IN {ev} THEN 'evaluator'
                  WHEN rp.kind IN {cv} THEN 'covert'
                  WHEN sr.id IS NOT NULL THEN 'self'
                  ELSE 'public' END AS source,
             CASE WHEN w.rectified_at IS NOT NULL AND w.rectified_at <= :as_of
                       AND w.due_at IS NOT NULL AND w.rectified_at <= w.due_at
                  THEN 1 ELSE 0 END AS on_time,
             CASE WHEN w.due_at IS NOT NULL AND w.due_at < :as_of
                       AND (w.rectified_at IS NULL OR w.rectified_at > w.due_at)
                  THEN 1 ELSE 0 END AS overdue,
             CASE WHEN ro.n IS NOT NULL THEN 1 ELSE 0 END AS reopened,
             CASE WHEN w.closed_at IS NULL OR w.closed_at > :as_of THEN 1 ELSE 0 END
               AS unresolved,
             CASE WHEN w.prev_at IS NOT NULL AND {gap} THEN 1 ELSE 0 END AS recurrence
      FROM windowed w
      LEFT JOIN reporters rp ON rp.id = w.reporter_id
      LEFT JOIN reopened ro ON ro.report_id = w.id
      LEFT JOIN selfrep sr ON sr.id = w.id
      WHERE w.observed_at >= :start
        AND NOT EXISTS (SELECT 1 FROM struck s WHERE s.report_id = w.id)
    )"""


def _params(formula: Formula, week: Week, as_of: dt.datetime) -> dict[str, Any]:
    p: dict[str, Any] = {
        "start": week.start,
        "end": week.end,
        "as_of": as_of,
        "lookback": week.start - dt.timedelta(days=formula.recurrence_days),
        "week": week.label,
    }
    if formula.evaluator_kinds:
        p["ev"] = list(formula.evaluator_kinds)
    if formula.covert_kinds:
        p["cv"] = list(formula.covert_kinds)
    return p


_GROUP_COLS = """f.category, f.severity, f.source, COUNT(*) AS n, SUM(f.on_time) AS on_time,
    SUM(f.overdue) AS overdue, SUM(f.reopened) AS reopened, SUM(f.unresolved) AS unresolved,
    SUM(f.recurrence) AS recurrence"""

# Who holds a zone of the segment at the moment a finding was observed (partner units: the
# whole segment; merchants: only findings whose chainage lies in their frontage zone).
_HOLDS = """a.segment_id = f.segment_id AND a.valid_from <= f.observed_at
    AND (a.valid_to IS NULL OR a.valid_to > f.observed_at)"""


TMP = "rw_rank_findings"


@contextmanager
def week_findings(
    conn: Connection, formula: Formula, week: Week, as_of: dt.datetime
) -> Iterator[None]:
    """The week's findings, computed once into a temporary table for every query after.

    The league queries (segments, partner units, merchants) and the drill-downs all read
    it, so the window over the reports and the joins run once per ranking.
    """
    if conn.dialect.name == "postgresql":
        # sorts and hashes of millions of rows in memory, not in temporary files; no JIT
        # compilation (measured: a quarter of a second lost on every query here)
        conn.execute(text("SET LOCAL work_mem = '256MB'"))
        conn.execute(text("SET LOCAL jit = off"))
    conn.execute(text(f"DROP TABLE IF EXISTS {TMP}"))
    conn.execute(
        _sql(
            conn,
            f"CREATE TEMPORARY TABLE {TMP} AS WITH {_findings_cte(conn, formula)}"
            " SELECT * FROM findings",
        ),
        _params(formula, week, as_of),
    )
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"ANALYZE {TMP}"))  # row counts for the joins that follow
    try:
        yield
    finally:
        conn.execute(text(f"DROP TABLE IF EXISTS {TMP}"))


def gather_week(
    conn: Connection,
    formula: Formula,
    week: Week,
    as_of: dt.datetime,
    kinds: Sequence[str] = ("segment", "partner_unit", "merchant"),
) -> WeekData:
    params = _params(formula, week, as_of)
    names = {
        str(code): str(name)
        for code, name in conn.execute(text("SELECT code, name FROM districts"))
    }
    segs = conn.execute(
        _sql(
            conn,
            "SELECT id, name, district, length_m, road_class FROM segments"
            " WHERE retired_at IS NULL OR retired_at > :start",
        ),
        {"start": week.start},
    ).all()
    seg_info = {s.id: s for s in segs}

    groups: dict[tuple[str, str], list[FindingGroup]] = defaultdict(list)

    def collect(kind: str, sql: str) -> None:
        for unit, cat, sev, src, n, ot, od, ro, un, rc in conn.execute(_sql(conn, sql), params):
            groups[(kind, unit)].append(
                FindingGroup(
                    cat, int(sev), src, int(n), int(ot), int(od), int(ro), int(un), int(rc)
                )
            )

    if "segment" in kinds:
        collect(
            "segment",
            f"SELECT f.segment_id AS unit, {_GROUP_COLS} FROM {TMP} f"
            " GROUP BY f.segment_id, f.category, f.severity, f.source",
        )
    if "partner_unit" in kinds:
        collect(
            "partner_unit",
            f"SELECT a.reporter_id AS unit, {_GROUP_COLS} FROM {TMP} f"
            f" JOIN assignments a ON a.role = 'partner_unit' AND {_HOLDS}"
            " GROUP BY a.reporter_id, f.category, f.severity, f.source",
        )
    if "merchant" in kinds:
        collect(
            "merchant",
            f"SELECT a.reporter_id AS unit, {_GROUP_COLS} FROM {TMP} f"
            f" JOIN assignments a ON a.role = 'merchant' AND {_HOLDS}"
            " AND f.chainage_m IS NOT NULL AND a.from_chainage_m <= f.chainage_m"
            " AND (a.to_chainage_m IS NULL OR f.chainage_m <= a.to_chainage_m)"
            " GROUP BY a.reporter_id, f.category, f.severity, f.source",
        )

    # Patrol days walked by a road chief of the segment, counted by local calendar day.
    offset = int((week.start.astimezone(week.tz).utcoffset() or dt.timedelta()).total_seconds())
    if conn.dialect.name == "postgresql":
        day = f"date(pc.first_at + interval '{offset} seconds')"
    else:
        day = f"date(pc.first_at, '{offset:+d} seconds')"
    patrol = {
        sid: float(n)
        for sid, n in conn.execute(
            _sql(
                conn,
                f"SELECT pc.segment_id, COUNT(DISTINCT {day}) FROM patrol_coverage pc"
                " JOIN assignments a ON a.segment_id = pc.segment_id"
                " AND a.reporter_id = pc.reporter_id AND a.role = 'road_chief'"
                " AND a.valid_from <= pc.first_at"
                " AND (a.valid_to IS NULL OR a.valid_to > pc.first_at)"
                " WHERE pc.first_at >= :start AND pc.first_at < :end GROUP BY pc.segment_id",
            ),
            {"start": week.start, "end": week.end},
        )
    }
    held = conn.execute(
        _sql(
            conn,
            "SELECT a.segment_id, a.reporter_id, a.role, a.level, a.from_chainage_m,"
            " a.to_chainage_m, p.name AS person FROM assignments a"
            " LEFT JOIN reporters p ON p.id = a.reporter_id"
            " WHERE a.valid_from < :end AND (a.valid_to IS NULL OR a.valid_to > :start)"
            " ORDER BY a.segment_id, a.role, a.reporter_id, a.from_chainage_m",
        ),
        {"start": week.start, "end": week.end},
    ).all()
    duty: dict[str, int] = {}
    holders: dict[tuple[str, str], dict[str, Any]] = {}
    for h in held:
        seg = seg_info.get(h.segment_id)
        if seg is None:
            continue
        if h.role == "road_chief" and h.level is not None:
            duty[h.segment_id] = max(duty.get(h.segment_id, -1), int(h.level))
        elif h.role in ("partner_unit", "merchant") and h.role in kinds:
            entry = holders.setdefault(
                (h.role, h.reporter_id),
                {"name": h.person or h.reporter_id, "parts": [], "districts": defaultdict(float)},
            )
            if h.role == "merchant" and h.from_chainage_m is not None:
                hi = h.to_chainage_m if h.to_chainage_m is not None else seg.length_m
                length = max(0.0, min(hi, seg.length_m) - h.from_chainage_m)
            else:
                length = float(seg.length_m)
            entry["parts"].append((length, seg.road_class))
            entry["districts"][seg.district] += length

    units: list[Unit] = []
    if "segment" in kinds:
        for s in segs:
            units.append(
                Unit(
                    kind="segment",
                    id=s.id,
                    name=s.name,
                    district=s.district,
                    parts=((float(s.length_m), s.road_class),),
                    groups=tuple(groups.get(("segment", s.id), ())),
                    patrol_days=patrol.get(s.id, 0.0) if s.id in duty else None,
                    duty_level=duty.get(s.id),
                )
            )
    for (role, rid), entry in sorted(holders.items()):
        # a unit or merchant is compared within the district where most of its zones lie
        district = max(sorted(entry["districts"]), key=lambda d: entry["districts"][d])
        units.append(
            Unit(
                kind=role,
                id=rid,
                name=entry["name"],
                district=district,
                parts=tuple(entry["parts"]),
                groups=tuple(groups.get((role, rid), ())),
            )
        )
    return WeekData(units, names)


def findings_of(
    conn: Connection,
    formula: Formula,
    week: Week,
    as_of: dt.datetime,
    kind: str,
    unit_ids: Sequence[str],
) -> dict[str, list[tuple[Finding, dict[str, Any]]]]:
    """The individual findings behind some units' scores, with the facts that identify each
    (inside `week_findings`)."""
    if not unit_ids:
        return {}
    params = _params(formula, week, as_of)
    select_cols = (
        "f.id, f.category, f.severity, f.source, f.on_time, f.overdue, f.reopened,"
        " f.unresolved, f.recurrence, f.observed_at, f.reporter_id, f.segment_id"
    )
    if kind == "segment":
        sql = f"SELECT f.segment_id AS unit, {select_cols} FROM {TMP} f WHERE f.segment_id IN :ids"
    else:
        extra = (
            " AND f.chainage_m IS NOT NULL AND a.from_chainage_m <= f.chainage_m"
            " AND (a.to_chainage_m IS NULL OR f.chainage_m <= a.to_chainage_m)"
            if kind == "merchant"
            else ""
        )
        sql = (
            f"SELECT a.reporter_id AS unit, {select_cols} FROM {TMP} f"
            f" JOIN assignments a ON a.role = '{kind}' AND {_HOLDS}{extra}"
            " WHERE a.reporter_id IN :ids"
        )
    out: dict[str, list[tuple[Finding, dict[str, Any]]]] = defaultdict(list)
    ids = sorted(set(unit_ids))
    for row in conn.execute(_sql(conn, sql), {**params, "ids": ids}):
        finding = Finding(
            id=row.id,
            category=row.category,
            severity=int(row.severity),
            source=row.source,
            on_time=bool(row.on_time),
            overdue=bool(row.overdue),
            reopened=bool(row.reopened),
            unresolved=bool(row.unresolved),
            recurrence=bool(row.recurrence),
        )
        observed = row.observed_at
        if isinstance(observed, str):  # SQLite through text(): the stored string
            observed = dt.datetime.fromisoformat(observed)
        if isinstance(observed, dt.datetime) and observed.tzinfo is None:
            observed = observed.replace(tzinfo=dt.UTC)
        facts = {
            "observed_at": (
                observed.astimezone(week.tz).isoformat()
                if isinstance(observed, dt.datetime)
                else None
            ),
            "reporter_id": row.reporter_id,
            "segment_id": row.segment_id,
        }
        out[row.unit].append((finding, facts))
    return dict(out)
