"""Gathering a week from the database for scoring: the aggregation is done in SQL.

One GROUP BY over the week's reports turns them into (segment, category, severity, source)
rows with their process counts at the cut-off `as_of` (`_segment_groups`); partner units,
merchants, the rare ambiguous segment and the drill-downs behind flags (`findings_of`) take
the exact per-report path (`_exact_cte`) over the segments they concern. Segments, patrol
days and duty levels come from small queries. Python loops over groups and units, never
over reports.

What counts (as of `as_of`; a report changed after it is read as it was then, from its
versions: `ranking_session`):
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
import io
import re
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, TextClause, bindparam, text

from ..network.frontage import FRONTAGE_SQL
from ..settings import MAX_FUTURE_SKEW
from ..store.models import UTCDateTime
from .columns import (
    SOURCE_ORDER,
    WeekTable,
    runs,
    segment_exposure,
    table_from_units,
)
from .formula import Formula
from .score import Finding, FindingGroup, Unit
from .week import Week

EXCLUDED_CASES = ("duplicate", "invalid", "needs_review")


@dataclass(frozen=True)
class WeekData:
    units: list[Unit]
    district_names: dict[str, str]


# Set by `ranking_session` when some report of the week changed after the cut-off: every
# query then reads the reports as they stood at `as_of` (`_REPORTS_AS_OF`).
_AS_OF_KEY = "roadwatch.ranking.reports_as_of"
_REPORT_REF = re.compile(r"(?<![\w.])reports r(?!\w)")
# The reports with their ranked fields as of :as_of: a report changed after it takes them
# from its earliest version written after it (models.ReportVersion: what they were just
# before that change), every other report as it is.
_REPORTS_AS_OF = """(SELECT r0.id, r0.reporter_id, r0.category, r0.severity, r0.observed_at,
         r0.received_at, r0.snap,
         CASE WHEN v.report_id IS NULL THEN r0.segment_id ELSE v.segment_id END AS segment_id,
         CASE WHEN v.report_id IS NULL THEN r0.case_status ELSE v.case_status END
           AS case_status,
         CASE WHEN v.report_id IS NULL THEN r0.due_at ELSE v.due_at END AS due_at,
         CASE WHEN v.report_id IS NULL THEN r0.rectified_at ELSE v.rectified_at END
           AS rectified_at,
         CASE WHEN v.report_id IS NULL THEN r0.closed_at ELSE v.closed_at END AS closed_at
       FROM reports r0 LEFT JOIN report_versions v ON v.report_id = r0.id AND v.id IN (
         SELECT MIN(v1.id) FROM report_versions v1 WHERE v1.changed_at > :as_of
         GROUP BY v1.report_id))"""


def _sql(conn: Connection, body: str) -> TextClause:
    if conn.info.get(_AS_OF_KEY):
        body = _REPORT_REF.sub(lambda _m: f"{_REPORTS_AS_OF} r", body)
    stmt = text(body)
    params = [
        bindparam(k, type_=UTCDateTime())
        for k in ("start", "end", "as_of", "lookback", "reopened_from")
    ]
    present = [p for p in params if f":{p.key}" in body]
    stmt = stmt.bindparams(*present)
    for name in ("ev", "cv", "ids", "segs"):
        if f":{name}" in body:
            stmt = stmt.bindparams(bindparam(name, expanding=True))
    return stmt


def _source_sql(self_match: str) -> str:
    return f"""CASE WHEN rp.kind = 'evaluator' THEN 'evaluator'
                  WHEN rp.kind = 'covert' THEN 'covert'
                  WHEN {self_match} THEN 'self'
                  ELSE 'public' END"""


def _source_code_sql(self_match: str) -> str:
    code = {src: i for i, src in enumerate(SOURCE_ORDER)}
    return f"""CASE WHEN rp.kind = 'evaluator' THEN {code["evaluator"]}
                  WHEN rp.kind = 'covert' THEN {code["covert"]}
                  WHEN {self_match} THEN {code["self"]}
                  ELSE {code["public"]} END"""


def _kinds_join(formula: Formula) -> str:
    """The reporters whose findings are third-party (evaluator) or covert checks, by kind."""
    none = "('__none__')"
    ev = ":ev" if formula.evaluator_kinds else none
    cv = ":cv" if formula.covert_kinds else none
    # one row per reporter at most (its primary key): a hash join that cannot repeat reports
    return f"""LEFT JOIN (
        SELECT id, CASE WHEN kind IN {ev} THEN 'evaluator' ELSE 'covert' END AS kind
        FROM reporters WHERE kind IN {ev} OR kind IN {cv}
      ) rp ON rp.id = r.reporter_id"""


# A finding counts in the week it was observed, as the platform knew it at the cut-off: a
# report received after `as_of` (a phone's outbox sent days later, within the accepted
# `observed_window_days`) cannot change a frozen week, nor its recomputation (`verify`).
_VALID = (
    "r.segment_id IS NOT NULL AND r.received_at <= :as_of"
    " AND COALESCE(r.case_status, '') NOT IN ({})".format(
        ", ".join(f"'{c}'" for c in EXCLUDED_CASES)
    )
)


def _base_cte(
    conn: Connection,
    formula: Formula,
    restrict: str,
    single_holder: bool,
    chainage: bool = True,
    strike: bool = True,
    coded: bool = False,
) -> str:
    """`base`: one row per finding of the week with its source and process flags (no
    recurrence: that needs the reports before it, see `_exact_cte` and `_segment_groups`).

    `restrict` narrows the reports (e.g. to some segments); `single_holder` says no person
    holds two overlapping assignments on one segment, so a plain outer join with the
    assignments cannot repeat a report. `strike=False` keeps the reports struck by upheld
    disputes (the caller recomputes their segments exactly). `coded`: the source as its
    position in SOURCE_ORDER (a number, not a word: columns.py's code), and on PostgreSQL
    `base` is kept a subquery of its own (OFFSET 0) so that the parallel workers scan and
    join and the leader aggregates once (partial aggregates in each worker would hold
    nearly every group again: measured slower for millions of groups).
    """
    pg = conn.dialect.name == "postgresql"
    if not chainage:  # reading it parses every report's snap: only the exact path needs it
        chainage_sql = "NULL"
    elif pg:
        chainage_sql = "(r.snap->>'chainage_m')::float"
    else:
        chainage_sql = "CAST(json_extract(r.snap, '$.chainage_m') AS REAL)"
    held = """a.segment_id = r.segment_id AND a.reporter_id = r.reporter_id
              AND a.valid_from <= r.observed_at
              AND (a.valid_to IS NULL OR a.valid_to > r.observed_at)"""
    if single_holder:
        self_join = f"LEFT JOIN assignments a ON {held}"
        self_match = "a.segment_id IS NOT NULL"
        selfrep = ""
    else:
        # someone holds two overlapping assignments: a DISTINCT set of report ids, so the
        # join counts each report once
        self_join = "LEFT JOIN selfrep sr ON sr.id = r.id"
        self_match = "sr.id IS NOT NULL"
        selfrep = f"""
    selfrep AS (
      SELECT DISTINCT r.id FROM reports r JOIN assignments a ON {held}
      WHERE r.observed_at >= :start AND r.observed_at < :end AND {_VALID} {restrict}
    ),"""
    return f"""
    reopened AS (
      SELECT t.report_id, COUNT(*) AS n FROM report_transitions t
      WHERE t.to_status = 'reopened' AND t.at >= :reopened_from AND t.at <= :as_of
      GROUP BY t.report_id
    ),
    struck AS (
      SELECT d.report_id FROM ranking_disputes d
      WHERE d.week = :week AND d.decision = 'upheld' AND d.decided_at <= :as_of
    ),{selfrep}
    base AS (
      SELECT r.id, r.segment_id, r.category, r.severity, r.observed_at, r.reporter_id,
             {chainage_sql} AS chainage_m,
             {(_source_code_sql if coded else _source_sql)(self_match)} AS source,
             CASE WHEN r.rectified_at IS NOT NULL AND r.rectified_at <= :as_of
                       AND r.due_at IS NOT NULL AND r.rectified_at <= r.due_at
                  THEN 1 ELSE 0 END AS on_time,
             CASE WHEN r.due_at IS NOT NULL AND r.due_at < :as_of
                       AND (r.rectified_at IS NULL OR r.rectified_at > r.due_at)
                  THEN 1 ELSE 0 END AS overdue,
             CASE WHEN ro.n IS NOT NULL THEN 1 ELSE 0 END AS reopened,
             CASE WHEN r.closed_at IS NULL OR r.closed_at > :as_of THEN 1 ELSE 0 END
               AS unresolved
      FROM reports r
      {_kinds_join(formula)}
      {self_join}
      LEFT JOIN reopened ro ON ro.report_id = r.id
      WHERE r.observed_at >= :start AND r.observed_at < :end AND {_VALID} {restrict}
        {"AND r.id NOT IN (SELECT s.report_id FROM struck s)" if strike else ""}
        {"OFFSET 0" if coded and pg else ""}
    )"""


def _exact_cte(conn: Connection, formula: Formula, restrict: str, single_holder: bool) -> str:
    """`findings`: `base` with each finding's recurrence from a window over the reports of
    the week and the `recurrence_days` before it (for a few segments, or when
    recurrence_days is shorter than a week)."""
    pg = conn.dialect.name == "postgresql"
    days = int(formula.recurrence_days)
    if pg:
        gap = f"w.observed_at - w.prev_at <= interval '{days} days'"
    else:
        gap = f"julianday(w.observed_at) - julianday(w.prev_at) <= {days}"
    c = ' COLLATE "C"' if pg else ""  # byte order: only grouping matters, not the language
    return f"""{_base_cte(conn, formula, restrict, single_holder)},
    windowed AS (
      -- narrow rows: the sort carries four columns, not the whole report
      SELECT r.id, r.observed_at,
             LAG(r.observed_at) OVER (
               PARTITION BY r.segment_id{c}, r.category{c} ORDER BY r.observed_at, r.id{c}
             ) AS prev_at
      FROM reports r
      WHERE r.observed_at >= :lookback AND r.observed_at < :end AND {_VALID} {restrict}
    ),
    findings AS (
      SELECT b.*,
             CASE WHEN w.prev_at IS NOT NULL AND {gap} THEN 1 ELSE 0 END AS recurrence
      FROM base b JOIN windowed w ON w.id = b.id
    )"""


def _params(formula: Formula, week: Week, as_of: dt.datetime) -> dict[str, Any]:
    p: dict[str, Any] = {
        "start": week.start,
        "end": week.end,
        "as_of": as_of,
        "lookback": week.start - dt.timedelta(days=formula.recurrence_days),
        # a finding of the week is reopened after the platform received it, so after the
        # week began less a phone's allowed clock skew (future_skew_s, at most
        # MAX_FUTURE_SKEW); the partial index ix_report_transitions_reopened_at reads those
        "reopened_from": week.start - MAX_FUTURE_SKEW,
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


@contextmanager
def snapshot(engine: Engine) -> Iterator[Connection]:
    """One connection whose every query sees the same state of the database.

    A ranking is a dozen queries (segments, groups, patrol, holders, then the drill-downs
    behind each flag); reports keep arriving between them. Read at different moments, a
    flag's drill-down could list a finding its score did not count (the draft page then
    failed with "drill-down of … does not match its score"). So every query of one ranking
    runs in one transaction over one snapshot: on PostgreSQL a READ ONLY REPEATABLE READ
    transaction (its snapshot is taken at the first query and kept to the end; never a
    serialization failure for a reader), on SQLite one read transaction (BEGIN: in WAL mode
    the snapshot of the first read holds until the end; the driver itself would run each
    SELECT on its own). Writers are not blocked in either.
    """
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with conn.begin():
            if conn.dialect.name == "sqlite":
                # pysqlite opens a transaction only before writes: open it ourselves; the
                # driver's commit or rollback at the end closes it
                conn.exec_driver_sql("BEGIN")
            yield conn


@contextmanager
def ranking_session(
    conn: Connection, formula: Formula, week: Week, as_of: dt.datetime
) -> Iterator[None]:
    """Session settings for the queries of one ranking (inside the caller's transaction)."""
    if conn.dialect.name == "postgresql":
        # sorts and hashes of millions of rows in memory, not in temporary files; no JIT
        # compilation (measured: a quarter of a second lost on every query here)
        conn.execute(text("SET LOCAL work_mem = '256MB'"))
        # the week's groups in one hash table (3.9 M groups, about 1 GB, at 250,000
        # segments): spilling part of it to disk cost a second there
        conn.execute(text("SET LOCAL hash_mem_multiplier = 4"))
        conn.execute(text("SET LOCAL jit = off"))
        # the week's scan in parallel workers: the default costs keep a million-report scan
        # in one process (measured: 4.1 → 3.0 s for the segment groups of 1 M reports)
        conn.execute(text("SET LOCAL parallel_setup_cost = 100"))
        conn.execute(text("SET LOCAL parallel_tuple_cost = 0.01"))
    # A published week's cases go on after its cut-off (extended, reassigned, closed,
    # reviewed, fixed): its recomputation must read them as they were then, or every routine
    # action reads as tampering in `verify`. Most weeks have no such change when drafted, so
    # the plain table is read unless one exists (one indexed probe).
    changed = conn.execute(
        _sql(
            conn,
            "SELECT 1 FROM report_versions v JOIN reports r ON r.id = v.report_id"
            " WHERE v.changed_at > :as_of AND r.observed_at >= :lookback"
            " AND r.observed_at < :end LIMIT 1",
        ),
        _params(formula, week, as_of),
    ).first()
    conn.info[_AS_OF_KEY] = changed is not None
    try:
        yield
    finally:
        conn.info.pop(_AS_OF_KEY, None)


def _single_holder(conn: Connection, params: dict[str, Any]) -> bool:
    """True when nobody holds two overlapping assignments on one segment in the window."""
    row = conn.execute(
        _sql(
            conn,
            "SELECT 1 FROM assignments a1 JOIN assignments a2"
            " ON a2.segment_id = a1.segment_id AND a2.reporter_id = a1.reporter_id"
            " AND a2.id > a1.id"
            " AND a2.valid_from < COALESCE(a1.valid_to, :end)"
            " AND a1.valid_from < COALESCE(a2.valid_to, :end)"
            " WHERE a1.valid_from < :end AND (a1.valid_to IS NULL OR a1.valid_to > :lookback)"
            " LIMIT 1",
        ),
        params,
    ).first()
    return row is None


def _as_naive_utc(value: Any) -> dt.datetime:
    if isinstance(value, str):  # SQLite through text(): the stored string
        value = dt.datetime.fromisoformat(value)
    assert isinstance(value, dt.datetime)
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


GroupMap = dict[str, list[FindingGroup]]


def _tuples(result: Any) -> list[tuple[Any, ...]]:
    """All rows as the driver's plain tuples: hundreds of thousands of group rows, and a
    SQLAlchemy Row costs more to make than the group itself (no type processing is lost:
    these queries select only text and numbers, and times go through _as_naive_utc)."""
    try:
        return list(result.cursor.fetchall())
    finally:
        result.close()


def _group_rows(rows: Any) -> GroupMap:
    out: GroupMap = defaultdict(list)
    for unit, cat, sev, src, n, ot, od, ro, un, rc in _tuples(rows):
        out[unit].append(
            FindingGroup(cat, int(sev), src, int(n), int(ot), int(od), int(ro), int(un), int(rc))
        )
    return out


def _exact_groups(
    conn: Connection,
    formula: Formula,
    params: dict[str, Any],
    single: bool,
    segments: Sequence[str] | None = None,
) -> GroupMap:
    """Segment groups from the exact per-report path (all segments, or some)."""
    restrict = "AND r.segment_id IN :segs" if segments is not None else ""
    sql = (
        f"WITH {_exact_cte(conn, formula, restrict, single)}"
        f" SELECT f.segment_id AS unit, {_GROUP_COLS} FROM findings f"
        " GROUP BY f.segment_id, f.category, f.severity, f.source"
    )
    extra = {"segs": sorted(segments)} if segments is not None else {}
    return _group_rows(conn.execute(_sql(conn, sql), {**params, **extra}))


def _segment_groups(
    conn: Connection, formula: Formula, week: Week, params: dict[str, Any], single: bool
) -> GroupMap:
    """Every segment's groups in one aggregation over the week, without sorting reports.

    When recurrence_days is at least the week's length, every finding of a (segment,
    category) after its first in the week is a recurrence (any two findings of one week are
    less than a week apart), and the first is one when the last report of the
    recurrence_days before the week is close enough. So a GROUP BY with the first finding's
    time per group, and one more over the days before, give exactly what a window over
    every report would. The rare (segment, category) whose first finding is ambiguous (two
    groups start at the same instant, or an upheld dispute struck a report in between) is
    computed by the exact path.
    """
    window = dt.timedelta(days=formula.recurrence_days)
    if window < week.end - week.start:
        return _exact_groups(conn, formula, params, single)
    sql = (
        f"WITH {_base_cte(conn, formula, '', single, chainage=False, strike=False)}"
        " SELECT b.segment_id, b.category, b.severity, b.source, COUNT(*),"
        " SUM(b.on_time), SUM(b.overdue), SUM(b.reopened), SUM(b.unresolved),"
        " MIN(b.observed_at) FROM base b"
        " GROUP BY b.segment_id, b.category, b.severity, b.source"
    )
    before = {
        (seg, cat): _as_naive_utc(at)
        for seg, cat, at in conn.execute(
            _sql(
                conn,
                "SELECT r.segment_id, r.category, MAX(r.observed_at) FROM reports r"
                f" WHERE r.observed_at >= :lookback AND r.observed_at < :start AND {_VALID}"
                " GROUP BY r.segment_id, r.category",
            ),
            params,
        )
    }
    ambiguous: set[str] = {
        seg
        for (seg,) in conn.execute(
            _sql(
                conn,
                "SELECT DISTINCT r.segment_id FROM ranking_disputes d"
                " JOIN reports r ON r.id = d.report_id"
                " WHERE d.week = :week AND d.decision = 'upheld' AND d.decided_at <= :as_of"
                " AND r.segment_id IS NOT NULL",
            ),
            params,
        )
    }
    # (segment, category) → the groups, each with the time of its first finding
    pending: dict[tuple[str, str], list[tuple[Any, ...]]] = defaultdict(list)
    for row in _tuples(conn.execute(_sql(conn, sql), params)):
        pending[(row[0], row[1])].append(row)
    out: GroupMap = defaultdict(list)
    for (seg, cat), rows in pending.items():
        if seg in ambiguous:
            continue
        if len(rows) == 1:
            starter = rows[0]
            first_at = _as_naive_utc(starter[9])
        else:
            firsts = [_as_naive_utc(r[9]) for r in rows]
            first_at = min(firsts)
            if firsts.count(first_at) > 1:
                ambiguous.add(seg)
                continue
            starter = rows[firsts.index(first_at)]
        prev = before.get((seg, cat))
        first_recurs = prev is not None and first_at - prev <= window
        unit = out[seg]
        for r in rows:
            n = int(r[4])
            rc = n if first_recurs or r is not starter else n - 1
            unit.append(
                FindingGroup(
                    cat, int(r[2]), r[3], n, int(r[5]), int(r[6]), int(r[7]), int(r[8]), rc
                )
            )
    if ambiguous:
        for seg in ambiguous:
            out.pop(seg, None)
        out.update(_exact_groups(conn, formula, params, single, sorted(ambiguous)))
    return out


_EPOCH = dt.datetime(1970, 1, 1)
_MICROSECOND = dt.timedelta(microseconds=1)


def _micros(value: Any) -> int:
    """A time from the database as whole microseconds since 1970 (naive UTC)."""
    return (_as_naive_utc(value) - _EPOCH) // _MICROSECOND


def _columns(conn: Connection, body: str, params: dict[str, Any], kinds: str) -> list[np.ndarray]:
    """A query's result as one array per column, without a Python object per value.

    `kinds` has a letter per column: t text, i whole number, m a time (microseconds after
    the week's start on PostgreSQL: see `_micros_sql`; a time elsewhere). On PostgreSQL
    the rows come as CSV text in a few hundred large values (string_agg over buckets of
    the first column), parsed by pandas: millions of rows were millions of Python tuples,
    and through COPY still a Python call per row.
    """
    dtypes = [object if k == "t" else np.int64 for k in kinds]
    names = [f"c{i}" for i in range(len(kinds))]
    if conn.dialect.name == "postgresql":
        fields = ", ".join(
            f"""coalesce('"' || replace(q.{c}::text, '"', '""') || '"', '')"""
            if k == "t"
            else f"coalesce(q.{c}::text, '')"
            for c, k in zip(names, kinds, strict=True)
        )
        sql = (
            f"SELECT string_agg(concat_ws(',', {fields}), E'\\n')"
            f" FROM ({body}) q({', '.join(names)}) GROUP BY hashtext(q.c0::text) & 255"
        )
        chunks = [c for (c,) in _tuples(conn.execute(_sql(conn, sql), params))]
        if not chunks:
            return [np.zeros(0, dtype=d) for d in dtypes]
        frame = pd.read_csv(
            io.BytesIO("\n".join(chunks).encode()),
            header=None,
            names=names,
            dtype=dict(zip(names, dtypes, strict=True)),
            na_filter=False,
            low_memory=False,
        )
        return [frame[c].to_numpy() for c in names]
    rows = _tuples(conn.execute(_sql(conn, body), params))
    cols = list(zip(*rows, strict=True)) if rows else [()] * len(kinds)
    start = _micros(params["start"])
    out = []
    for k, d, col in zip(kinds, dtypes, cols, strict=True):
        if k == "m":
            col = tuple(_micros(v) - start for v in col)
        arr = np.empty(len(col), dtype=d)
        arr[:] = col
        out.append(arr)
    return out


def _micros_sql(conn: Connection, expr: str) -> str:
    """A time as whole microseconds after the week's start (exact: the float's error at
    ± weeks is far below a microsecond), or the time itself where `_columns` converts it."""
    if conn.dialect.name == "postgresql":
        return f"round(date_part('epoch', {expr} - :start) * 1000000)::int8"
    return expr


def _codes(values: np.ndarray, known: Sequence[str] | None = None) -> tuple[list[str], np.ndarray]:
    """Distinct strings (sorted, as Python sorts them) and each value's position there."""
    codes, uniques = pd.factorize(values)
    words = sorted(set(uniques.tolist()) | set(known or ()))
    pos = {w: i for i, w in enumerate(words)}
    remap = np.array([pos[w] for w in uniques.tolist()] or [0], dtype=np.int64)
    return words, remap[codes] if len(codes) else np.zeros(0, dtype=np.int64)


_GROUP_ARRAYS = (
    "g_unit",
    "g_cat",
    "g_sev",
    "g_src",
    "g_n",
    "g_on_time",
    "g_overdue",
    "g_reopened",
    "g_unresolved",
    "g_recurrence",
)


def _map_columns(groups: GroupMap, unit_of: dict[str, int]) -> dict[str, Any]:
    """Groups from the exact path as columns (in score_unit's order)."""
    rows = [(unit_of[seg], g) for seg, gs in groups.items() if seg in unit_of for g in sorted(gs)]
    rows.sort(key=lambda r: r[0])
    cats = sorted({g.category for _, g in rows})
    pos = {c: i for i, c in enumerate(cats)}
    values = [
        (u, pos[g.category], g.severity, SOURCE_ORDER.index(g.source), *g[3:]) for u, g in rows
    ]
    arrays = np.array(values, dtype=np.int64).reshape(len(values), len(_GROUP_ARRAYS))
    return {"categories": cats, **{k: arrays[:, i] for i, k in enumerate(_GROUP_ARRAYS)}}


def _merge_columns(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two sets of group columns for different units as one, still by unit (b's rows go
    in before a's rows of the next unit: each unit's rows come from one side)."""
    cats = sorted(set(a["categories"]) | set(b["categories"]))
    pos = {c: i for i, c in enumerate(cats)}
    # b's rows land at these places (b is by unit too), a's rows fill the rest
    at = np.searchsorted(a["g_unit"], b["g_unit"]) + np.arange(len(b["g_unit"]))
    from_b = np.zeros(len(a["g_unit"]) + len(b["g_unit"]), dtype=bool)
    from_b[at] = True
    from_a = np.flatnonzero(~from_b)
    out: dict[str, Any] = {"categories": cats}
    for k in _GROUP_ARRAYS:
        xa, xb = a[k], b[k]
        if k == "g_cat":
            xa = np.array([pos[c] for c in a["categories"]] or [0], dtype=np.int64)[xa]
            xb = np.array([pos[c] for c in b["categories"]] or [0], dtype=np.int64)[xb]
        merged = np.empty(len(from_b), dtype=np.int64)
        merged[from_a] = xa
        merged[at] = xb
        out[k] = merged
    return out


def _segment_group_columns(
    conn: Connection,
    formula: Formula,
    week: Week,
    params: dict[str, Any],
    single: bool,
    ids: Sequence[str],
) -> dict[str, Any]:
    """`_segment_groups` as columns for the segments `ids` (their positions are the units):
    the same aggregation, the same rule for recurrences and ambiguous segments, done on
    arrays instead of a Python object per group."""
    unit_of = {sid: i for i, sid in enumerate(ids)}
    window = dt.timedelta(days=formula.recurrence_days)
    if window < week.end - week.start:
        return _map_columns(_exact_groups(conn, formula, params, single), unit_of)
    base = _base_cte(conn, formula, "", single, chainage=False, strike=False, coded=True)
    sql = (
        f"WITH {base}"
        " SELECT b.segment_id, b.category, b.severity, b.source, COUNT(*),"
        " SUM(b.on_time), SUM(b.overdue), SUM(b.reopened), SUM(b.unresolved),"
        f" {_micros_sql(conn, 'MIN(b.observed_at)')} FROM base b"
        " GROUP BY b.segment_id, b.category, b.severity, b.source"
    )
    seg, cat, sev, src, n, on_time, overdue, reopened, unresolved, first = _columns(
        conn, sql, params, "ttiiiiiiim"
    )
    # segments that are units only (a retired one's findings count nowhere), by unit
    seg_words, seg_code = _codes(seg)
    unit_of_word = np.array([unit_of.get(w, -1) for w in seg_words] or [-1], dtype=np.int64)
    unit = unit_of_word[seg_code] if len(seg_code) else np.zeros(0, dtype=np.int64)
    cats, cat_code = _codes(cat)
    # by unit, category, severity and source (score_unit's order), as one number
    low = int(sev.min()) if len(sev) else 0
    span = int(sev.max()) - low + 1 if len(sev) else 1
    key = ((unit * len(cats) + cat_code) * span + (sev - low)) * len(SOURCE_ORDER) + src
    order = np.argsort(key)
    order = order[unit[order] >= 0]
    # each (segment, category): its first finding's time, and whether two groups share it
    unit_s, cat_s, first_s = unit[order], cat_code[order], first[order]
    run, starts, _ = runs([unit_s, cat_s])
    first_at = np.minimum.reduceat(first_s, starts) if len(starts) else first_s
    starter = first_s == first_at[run]
    tied = np.add.reduceat(starter.astype(np.int64), starts) > 1 if len(starts) else starter
    ambiguous = set(unit_s[starts[tied]].tolist())
    for (sid,) in conn.execute(
        _sql(
            conn,
            "SELECT DISTINCT r.segment_id FROM ranking_disputes d"
            " JOIN reports r ON r.id = d.report_id"
            " WHERE d.week = :week AND d.decision = 'upheld' AND d.decided_at <= :as_of"
            " AND r.segment_id IS NOT NULL",
        ),
        params,
    ):
        if sid in unit_of:
            ambiguous.add(unit_of[sid])
    # the ambiguous segments go the exact way: drop their rows (whole runs) before the
    # other columns are put in order
    if ambiguous:
        keep = ~np.isin(unit_s, np.array(sorted(ambiguous), dtype=np.int64))
        order, unit_s, cat_s, first_s, starter = (
            a[keep] for a in (order, unit_s, cat_s, first_s, starter)
        )
        run_keep = keep[starts]
        first_at = first_at[run_keep]
        run, starts, _ = runs([unit_s, cat_s])
    unit, cat_code = unit_s, cat_s
    sev, src, n, on_time, overdue, reopened, unresolved = (
        a[order] for a in (sev, src, n, on_time, overdue, reopened, unresolved)
    )
    # the last report of the days before the week, per (segment, category)
    b_seg, b_cat, b_last = _columns(
        conn,
        (
            f"SELECT r.segment_id, r.category, {_micros_sql(conn, 'MAX(r.observed_at)')}"
            " FROM reports r"
            f" WHERE r.observed_at >= :lookback AND r.observed_at < :start AND {_VALID}"
            " GROUP BY r.segment_id, r.category"
        ),
        params,
        "ttm",
    )
    run_key = unit[starts] * (len(cats) + 1) + cat_code[starts]
    cat_pos = {c: i for i, c in enumerate(cats)}
    b_unit = pd.Index(ids).get_indexer(b_seg).astype(np.int64)  # −1: not a unit
    b_code = np.array([cat_pos.get(x, -1) for x in b_cat.tolist()], dtype=np.int64)
    ok = (b_unit >= 0) & (b_code >= 0)
    b_key = b_unit[ok] * (len(cats) + 1) + b_code[ok]
    at = np.searchsorted(run_key, b_key)
    found = at < len(run_key)
    found[found] &= run_key[at[found]] == b_key[found]
    recurs = np.zeros(len(starts), dtype=bool)  # the first finding is itself a recurrence
    hit = at[found]
    recurs[hit] = first_at[hit] - b_last[ok][found] <= window // _MICROSECOND
    recurrence = np.where(recurs[run] | ~starter, n, n - 1)
    cols: dict[str, Any] = {
        "categories": cats,
        **dict(
            zip(
                _GROUP_ARRAYS,
                (unit, cat_code, sev, src, n, on_time, overdue, reopened, unresolved, recurrence),
                strict=True,
            )
        ),
    }
    if ambiguous:
        exact = _exact_groups(conn, formula, params, single, sorted(ids[u] for u in ambiguous))
        cols = _merge_columns(cols, _map_columns(exact, unit_of))
    return cols


def _holder_groups(
    conn: Connection, formula: Formula, params: dict[str, Any], single: bool, role: str
) -> GroupMap:
    """Partner units' and merchants' groups: the exact path over the segments they hold."""
    restrict = (
        "AND r.segment_id IN (SELECT h.segment_id FROM assignments h"
        f" WHERE h.role = '{role}' AND h.valid_from < :end"
        " AND (h.valid_to IS NULL OR h.valid_to > :start))"
    )
    zone = f" AND {FRONTAGE_SQL}" if role == "merchant" else ""
    sql = (
        f"WITH {_exact_cte(conn, formula, restrict, single)}"
        f" SELECT a.reporter_id AS unit, {_GROUP_COLS} FROM findings f"
        f" JOIN assignments a ON a.role = '{role}' AND {_HOLDS}{zone}"
        " GROUP BY a.reporter_id, f.category, f.severity, f.source"
    )
    return _group_rows(conn.execute(_sql(conn, sql), params))


@dataclass
class _Frame:
    """What both ways of gathering a week share: segments, duty, patrol, holders."""

    params: dict[str, Any]
    names: dict[str, str]
    segs: list[tuple[Any, ...]]  # (id, name, district, length_m, road_class)
    single: bool
    patrol: dict[str, float]
    duty: dict[str, int]
    holders: dict[tuple[str, str], dict[str, Any]]


def _segments_sql(conn: Connection, params: dict[str, Any]) -> str:
    """The week's segments (id, name, district, length, road class): every segment not
    retired before the week began, as it was at the cut-off.

    A network re-imported after the cut-off (renamed, redrawn, moved to another district,
    segments added) must not change a frozen week's recomputation: then each segment is
    read from its version in force at the cut-off (segment_versions), and one added later
    is not the week's. When no version is that old (the network was loaded after the week:
    a new installation ranking its first weeks), the segments are read as they are."""
    plain = (
        "SELECT id, name, district, length_m, road_class FROM segments"
        " WHERE retired_at IS NULL OR retired_at > :start"
    )
    newer = conn.execute(
        _sql(conn, "SELECT 1 FROM segment_versions WHERE valid_from > :as_of LIMIT 1"), params
    ).first()
    older = conn.execute(
        _sql(conn, "SELECT 1 FROM segment_versions WHERE valid_from <= :as_of LIMIT 1"), params
    ).first()
    if newer is None or older is None:
        return plain
    return (
        "SELECT s.id, v.name, v.district, v.length_m, v.road_class FROM segments s"
        " JOIN segment_versions v ON v.segment_id = s.id AND v.version = ("
        "   SELECT MAX(v2.version) FROM segment_versions v2"
        "   WHERE v2.segment_id = s.id AND v2.valid_from <= :as_of)"
        " WHERE v.valid_to IS NULL OR v.valid_to > :start"
    )


def _frame(
    conn: Connection, formula: Formula, week: Week, as_of: dt.datetime, kinds: Sequence[str]
) -> _Frame:
    params = _params(formula, week, as_of)
    names = {
        str(code): str(name)
        for code, name in conn.execute(text("SELECT code, name FROM districts"))
    }
    segs = _tuples(conn.execute(_sql(conn, _segments_sql(conn, params)), params))
    seg_info = {s[0]: s for s in segs}
    single = _single_holder(conn, params)

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
                " WHERE pc.first_at >= :start AND pc.first_at < :end"
                # a walk the platform had only after the cut-off (a phone's outbox sent it
                # later) cannot change a frozen week, nor its recomputation (`verify`)
                " AND (pc.recorded_at IS NULL OR pc.recorded_at <= :as_of)"
                " GROUP BY pc.segment_id",
            ),
            {"start": week.start, "end": week.end, "as_of": as_of},
        )
    }
    held = _tuples(
        conn.execute(
            _sql(
                conn,
                "SELECT a.segment_id, a.reporter_id, a.role, a.level, a.from_chainage_m,"
                " a.to_chainage_m, p.name AS person FROM assignments a"
                " LEFT JOIN reporters p ON p.id = a.reporter_id"
                " WHERE a.valid_from < :end AND (a.valid_to IS NULL OR a.valid_to > :start)"
                " ORDER BY a.segment_id, a.role, a.reporter_id, a.from_chainage_m",
            ),
            {"start": week.start, "end": week.end},
        )
    )
    duty: dict[str, int] = {}
    holders: dict[tuple[str, str], dict[str, Any]] = {}
    for segment_id, reporter_id, role, level, from_m, to_m, person in held:
        seg = seg_info.get(segment_id)
        if seg is None:
            continue
        if role == "road_chief" and level is not None:
            duty[segment_id] = max(duty.get(segment_id, -1), int(level))
        elif role in ("partner_unit", "merchant") and role in kinds:
            entry = holders.setdefault(
                (role, reporter_id),
                {"name": person or reporter_id, "parts": [], "districts": defaultdict(float)},
            )
            seg_length, seg_class, seg_district = seg[3], seg[4], seg[2]
            if role == "merchant" and from_m is not None:
                hi = to_m if to_m is not None else seg_length
                length = max(0.0, min(hi, seg_length) - from_m)
            else:
                length = float(seg_length)
            entry["parts"].append((length, seg_class))
            entry["districts"][seg_district] += length
    return _Frame(params, names, segs, single, patrol, duty, holders)


def _holder_units(
    conn: Connection, formula: Formula, frame: _Frame, kinds: Sequence[str]
) -> list[Unit]:
    """Partner units and merchants, with their groups (the exact path)."""
    groups: dict[tuple[str, str], list[FindingGroup]] = {}
    for role in ("partner_unit", "merchant"):
        if role in kinds:
            for unit, gs in _holder_groups(conn, formula, frame.params, frame.single, role).items():
                groups[(role, unit)] = gs
    units = []
    for (role, rid), entry in sorted(frame.holders.items()):
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
    return units


def gather_week(
    conn: Connection,
    formula: Formula,
    week: Week,
    as_of: dt.datetime,
    kinds: Sequence[str] = ("segment", "partner_unit", "merchant"),
) -> WeekData:
    """The week as Units (score.py's input); `gather_table` gives the same as columns."""
    frame = _frame(conn, formula, week, as_of, kinds)
    units: list[Unit] = []
    if "segment" in kinds:
        groups = _segment_groups(conn, formula, week, frame.params, frame.single)
        for sid, name, district, length_m, road_class in frame.segs:
            units.append(
                Unit(
                    kind="segment",
                    id=sid,
                    name=name,
                    district=district,
                    parts=((float(length_m), road_class),),
                    groups=tuple(groups.get(sid, ())),
                    patrol_days=frame.patrol.get(sid, 0.0) if sid in frame.duty else None,
                    duty_level=frame.duty.get(sid),
                )
            )
    units += _holder_units(conn, formula, frame, kinds)
    return WeekData(units, frame.names)


def gather_table(
    conn: Connection,
    formula: Formula,
    week: Week,
    as_of: dt.datetime,
    kinds: Sequence[str] = ("segment", "partner_unit", "merchant"),
) -> tuple[WeekTable, dict[str, str]]:
    """The week as columns (columns.py's input) and the districts' names: the same units
    and groups as `gather_week`, without a Python object per group."""
    frame = _frame(conn, formula, week, as_of, kinds)
    tables = []
    if "segment" in kinds:
        tables.append(_segment_table(conn, formula, week, frame))
    tables.append(table_from_units(formula, _holder_units(conn, formula, frame, kinds)))
    return WeekTable.concat(tables), frame.names


def _segment_table(conn: Connection, formula: Formula, week: Week, frame: _Frame) -> WeekTable:
    ids = [s[0] for s in frame.segs]
    lengths = np.array([float(s[3]) for s in frame.segs], dtype=np.float64)
    classes = [s[4] for s in frame.segs]
    duty, patrol = frame.duty, frame.patrol
    cols = _segment_group_columns(conn, formula, week, frame.params, frame.single, ids)
    return WeekTable(
        kinds=["segment"] * len(ids),
        ids=ids,
        names=[s[1] for s in frame.segs],
        districts=[s[2] for s in frame.segs],
        exposure=segment_exposure(formula, lengths, classes),
        walked=[(patrol.get(sid, 0.0) if sid in duty else None) or 0.0 for sid in ids],
        duty_levels=[duty.get(sid) for sid in ids],
        **cols,
    )


def findings_of(
    conn: Connection,
    formula: Formula,
    week: Week,
    as_of: dt.datetime,
    kind: str,
    unit_ids: Sequence[str],
) -> dict[str, list[tuple[Finding, dict[str, Any]]]]:
    """The individual findings behind some units' scores, with the facts that identify each,
    from the exact per-report path (`_exact_cte`) over the segments concerned."""
    if not unit_ids:
        return {}
    params = _params(formula, week, as_of)
    single = _single_holder(conn, params)
    select_cols = (
        "f.id, f.category, f.severity, f.source, f.on_time, f.overdue, f.reopened,"
        " f.unresolved, f.recurrence, f.observed_at, f.reporter_id, f.segment_id"
    )
    if kind == "segment":
        cte = _exact_cte(conn, formula, "AND r.segment_id IN :ids", single)
        sql = f"WITH {cte} SELECT f.segment_id AS unit, {select_cols} FROM findings f"
    else:
        restrict = (
            "AND r.segment_id IN (SELECT h.segment_id FROM assignments h"
            f" WHERE h.role = '{kind}' AND h.reporter_id IN :ids)"
        )
        extra = f" AND {FRONTAGE_SQL}" if kind == "merchant" else ""
        sql = (
            f"WITH {_exact_cte(conn, formula, restrict, single)}"
            f" SELECT a.reporter_id AS unit, {select_cols} FROM findings f"
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
        observed = _as_naive_utc(row.observed_at).replace(tzinfo=dt.UTC)
        facts = {
            "observed_at": observed.astimezone(week.tz).isoformat(),
            "reporter_id": row.reporter_id,
            "segment_id": row.segment_id,
        }
        out[row.unit].append((finding, facts))
    return dict(out)
