"""Computing, freezing, verifying and contesting a week's ranking (the jobs around score.py).

* `compute` gathers a week (SQL aggregation), scores it and returns its content: plain JSON
  with every league, score, flag and drill-down, the formula's version and hash, the
  cut-off. The same stored events and cut-off give byte-identical content.
* `publish` freezes it: one `rankings` row per week (a unique week, inserted with ON
  CONFLICT DO NOTHING, so two publishers at once still leave one), its SHA-256 and a chain
  hash over the previous published week's.
* `verify` checks the stored bytes against their hash, the chain, and recomputes the week
  from the events at its cut-off: an edited finding shows up as a difference.
* disputes: within the contest window a chief disputes a finding with evidence; an
  arbiter (not the filer) upholds or rejects it; an upheld finding no longer counts.
"""

from __future__ import annotations

import datetime as dt
import gc
import hashlib
import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, Table, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..store import audit, models
from ..store.events import record_events
from .columns import ScoredTable, score_table
from .formula import Formula
from .gather import findings_of, gather_table, gather_week, ranking_session, snapshot
from .score import Finding, League, Unit, group_findings, league_to_dict, score_week
from .week import Week

RANKINGS: Table = models.Ranking.__table__  # type: ignore[assignment]
DISPUTES: Table = models.RankingDispute.__table__  # type: ignore[assignment]
JOBS: Table = models.RankingJob.__table__  # type: ignore[assignment]
GENESIS = "0" * 64  # the chain's start: the "previous hash" of the first published week


class RankingError(ValueError):
    """A ranking request that cannot be done; the message says why in plain words."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def canonical(content: Mapping[str, Any]) -> str:
    """The exact text that is stored and hashed (sorted keys, no spaces, UTF-8)."""
    return json.dumps(content, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def sha256(text_: str) -> str:
    return hashlib.sha256(text_.encode("utf-8")).hexdigest()


def chain(prev: str | None, content_sha: str) -> str:
    return sha256((prev or GENESIS) + content_sha)


def default_as_of(week: Week, contest_hours: float) -> dt.datetime:
    """The cut-off: the end of the contest window after the week."""
    return week.end + dt.timedelta(hours=contest_hours)


def _insert(conn: Connection, table: Table) -> Any:
    return (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(table)


def previous_flags(conn: Connection, week: Week) -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, id) → rank, flag and streak in the published week before `week`."""
    row = conn.execute(
        select(RANKINGS.c.content).where(RANKINGS.c.week == week.previous().label)
    ).first()
    if row is None:
        return {}
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for lg in orjson.loads(row.content)["leagues"]:  # the same values, faster than json
        for s in lg["scores"]:
            out[(lg["kind"], s["id"])] = {
                "rank": s["rank"],
                "flag": s["flag"],
                "streak": s["streak"],
            }
    return out


def compute(
    conn: Connection,
    formula: Formula,
    week: Week,
    as_of: dt.datetime,
    phases: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The week's full ranking content (not stored).

    Gathered and scored as columns (gather_table, columns.score_table): the same content
    as `compute_per_unit`, byte for byte once canonical, for a fraction of the time at
    250,000 segments. `phases`, when given, receives the seconds spent in each step
    (gather, score, drilldown, content): the benchmark prints them.
    """
    clock = _PhaseClock(phases)
    with _no_gc_pauses():
        with ranking_session(conn, formula, week, as_of):
            table, names = gather_table(conn, formula, week, as_of)
            clock.lap("gather")
            previous = previous_flags(conn, week)
            scored = score_table(formula, table, names, previous)
            clock.lap("score")
            drilldowns = _table_drilldowns(conn, formula, week, as_of, scored)
            clock.lap("drilldown")
        content = _content(formula, week, as_of, scored.content(drilldowns))
    clock.lap("content")
    return content


def compute_per_unit(
    conn: Connection,
    formula: Formula,
    week: Week,
    as_of: dt.datetime,
    phases: dict[str, float] | None = None,
) -> dict[str, Any]:
    """`compute` the plain way: a Unit and a UnitScore per unit (gather_week, score.py).
    The reference the columns are checked against (tests/test_ranking_jobs.py)."""
    clock = _PhaseClock(phases)
    with _no_gc_pauses():
        with ranking_session(conn, formula, week, as_of):
            data = gather_week(conn, formula, week, as_of)
            clock.lap("gather")
            previous = previous_flags(conn, week)
            leagues = score_week(formula, data.units, data.district_names, previous)
            clock.lap("score")
            _attach_drilldowns(conn, formula, week, as_of, leagues)
            clock.lap("drilldown")
        content = _content(formula, week, as_of, [league_to_dict(lg) for lg in leagues])
    clock.lap("content")
    return content


def _content(
    formula: Formula, week: Week, as_of: dt.datetime, leagues: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "week": week.label,
        "start": week.start.astimezone(week.tz).isoformat(),
        "end": week.end.astimezone(week.tz).isoformat(),
        "as_of": as_of.astimezone(week.tz).isoformat(),
        "timezone": str(week.tz),
        "formula": {
            "version": formula.version,
            "sha256": formula.sha256,
            "description": formula.description,
            "tie_rule": formula.tie_rule,
        },
        "leagues": leagues,
    }


def _table_drilldowns(
    conn: Connection, formula: Formula, week: Week, as_of: dt.datetime, scored: ScoredTable
) -> dict[int, tuple[tuple[Finding, ...], dict[str, dict[str, Any]]]]:
    """The findings behind each flag, one by one (one query per kind of unit); they must
    add up to the score's groups."""
    out: dict[int, tuple[tuple[Finding, ...], dict[str, dict[str, Any]]]] = {}
    ids = scored.table.ids
    for kind, flagged in scored.flagged().items():
        found = findings_of(conn, formula, week, as_of, kind, [ids[i] for i in flagged])
        for i in flagged:
            items = found.get(ids[i], [])
            findings = tuple(f for f, _ in items)
            if group_findings(findings) != group_findings_of(scored.unit(i)):
                raise RuntimeError(f"drill-down of {ids[i]} does not match its score")
            out[i] = (findings, {f.id: facts for f, facts in items})
    return out


@contextmanager
def _no_gc_pauses() -> Iterator[None]:
    """Hold the cyclic garbage collector during a ranking.

    A ranking makes millions of small objects that live until its content is written (no
    cycles among them); every few thousand allocations the collector would walk all of them
    again (measured: a third of the scoring time). Reference counting still frees what the
    ranking drops; the collector runs once afterwards.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class _PhaseClock:
    def __init__(self, sink: dict[str, float] | None) -> None:
        self.sink = sink
        self.t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        if self.sink is not None:
            self.sink[name] = self.sink.get(name, 0.0) + now - self.t
        self.t = now


def _attach_drilldowns(
    conn: Connection, formula: Formula, week: Week, as_of: dt.datetime, leagues: list[League]
) -> None:
    """The findings behind each flag, one by one; they must add up to the score's groups."""
    for lg in leagues:
        flagged = [s for s in lg.scores if s.flag]
        if not flagged:
            continue
        found = findings_of(conn, formula, week, as_of, lg.kind, [s.unit.id for s in flagged])
        for s in flagged:
            items = found.get(s.unit.id, [])
            findings = tuple(f for f, _ in items)
            if group_findings(findings) != group_findings_of(s.unit):
                raise RuntimeError(f"drill-down of {s.unit.id} does not match its score")
            s.unit = replace(s.unit, findings=findings)
            s.facts = {f.id: facts for f, facts in items}


def group_findings_of(unit: Unit) -> Any:
    return tuple(sorted(unit.groups, key=lambda g: (g.category, g.severity, g.source)))


def ranking_row(conn: Connection, week: str) -> Any:
    return conn.execute(select(RANKINGS).where(RANKINGS.c.week == week)).first()


@dataclass
class Published:
    week: str
    created: bool  # False: it was already published (by us earlier or another process)
    content_sha256: str
    chain_sha256: str
    events: list[Any] = field(default_factory=list)


def publish(
    engine: Engine,
    formula: Formula,
    week: Week,
    as_of: dt.datetime,
    by: str,
    now: dt.datetime,
    url: str | None = None,
    actor: audit.Actor | None = None,
) -> Published:
    """Freeze the week exactly once; a second call (from anywhere) changes nothing.

    Audited (`ranking.publish`, by `actor`, else `by`) in the same transaction."""
    if now < as_of:
        raise RankingError(
            "contest_open",
            f"{week.label} can be published from {as_of.astimezone(week.tz):%Y-%m-%d %H:%M} "
            "on, when its contest window has closed",
        )
    # the content from one snapshot (its figures and drill-downs agree), then the row in a
    # short write transaction of its own
    with snapshot(engine) as snap:
        existing = ranking_row(snap, week.label)
        if existing is not None:
            return Published(week.label, False, existing.content_sha256, existing.chain_sha256)
        _check_order(snap, week)
        pending = snap.execute(
            select(func.count())
            .select_from(DISPUTES)
            .where(DISPUTES.c.week == week.label, DISPUTES.c.decision.is_(None))
        ).scalar_one()
        content = compute(snap, formula, week, as_of)
    content["published_at"] = now.astimezone(week.tz).isoformat()
    content["published_by"] = by
    content["pending_disputes"] = int(pending)  # undecided at the cut-off: still counted
    text_ = canonical(content)
    digest = sha256(text_)
    with engine.begin() as conn:
        existing = ranking_row(conn, week.label)
        if existing is not None:  # another process published it meanwhile
            return Published(week.label, False, existing.content_sha256, existing.chain_sha256)
        _check_order(conn, week)
        prev = conn.execute(
            select(RANKINGS.c.chain_sha256)
            .where(RANKINGS.c.week < week.label)
            .order_by(RANKINGS.c.week.desc())
            .limit(1)
        ).scalar()
        link = chain(prev, digest)
        inserted = conn.execute(
            _insert(conn, RANKINGS)
            .values(
                week=week.label,
                formula_version=formula.version,
                formula_sha256=formula.sha256,
                as_of=as_of,
                published_at=now,
                published_by=by,
                content=text_,
                content_sha256=digest,
                prev_sha256=prev,
                chain_sha256=link,
            )
            .on_conflict_do_nothing(index_elements=["week"])
            .returning(RANKINGS.c.id)  # (rowcount is -1 for this statement under psycopg)
        ).first()
        if inserted is None:  # another process won the race in the meantime
            row = ranking_row(conn, week.label)
            return Published(week.label, False, row.content_sha256, row.chain_sha256)
        audit.record(
            conn,
            actor or by,
            "ranking.publish",
            week.label,
            at=now,
            published_by=by,
            content_sha256=digest,
            formula=formula.version,
        )

        events = record_events(
            conn,
            [("ranking", {"week": week.label, "url": url or f"/rankings/{week.label}"})],
            now,
        )
    return Published(week.label, True, digest, link, events)


def _check_order(conn: Connection, week: Week) -> None:
    later = conn.execute(
        select(func.min(RANKINGS.c.week)).where(RANKINGS.c.week > week.label)
    ).scalar()
    if later:
        raise RankingError(
            "out_of_order", f"{later} is already published: weeks are published in order"
        )


def draft(
    engine: Engine, formula: Formula, week: Week, now: dt.datetime, contest_hours: float
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A week not yet published as it stands at `now` (at most its cut-off), with its
    disputes: every query from one snapshot of the database."""
    as_of = min(now, default_as_of(week, contest_hours))
    with snapshot(engine) as snap:
        return compute(snap, formula, week, as_of), disputes_of(snap, week.label)


@dataclass
class Verification:
    week: str
    ok: bool
    problems: list[str]


def chain_problems(
    conn: Connection, key: Any, label: str, row: Any, what: str, period: str
) -> list[str]:
    """What is wrong with a published, hash-chained row (`row` of `key`'s table at `label`):
    its content against its SHA-256, its link to the previous period's chain hash, and its
    own chain hash. One check for the weekly rankings and the monthly review packs."""
    problems = []
    if sha256(row.content) != row.content_sha256:
        problems.append(f"the stored {what} no longer matches its SHA-256: it was edited")
    prev = conn.execute(
        select(key.table.c.chain_sha256).where(key < label).order_by(key.desc()).limit(1)
    ).scalar()
    if row.prev_sha256 != prev:
        problems.append(f"the chain to the previous published {period} is broken")
    if chain(row.prev_sha256, row.content_sha256) != row.chain_sha256:
        problems.append("the chain hash does not match the content hash")
    return problems


def verify(engine: Engine, formula: Formula, week: Week) -> Verification:
    """Stored bytes vs their hash, the chain link, and a recomputation from the events."""
    problems: list[str] = []
    with snapshot(engine) as conn:
        row = ranking_row(conn, week.label)
        if row is None:
            raise RankingError("not_published", f"{week.label} is not published")
        problems += chain_problems(conn, RANKINGS.c.week, week.label, row, "ranking", "week")
        stored = json.loads(row.content)
        if formula.sha256 != row.formula_sha256:
            problems.append(
                f"cannot recompute: it was published under formula {row.formula_version} "
                f"({row.formula_sha256[:12]}…), not the one given"
            )
            return Verification(week.label, False, problems)
        fresh = compute(conn, formula, week, row.as_of)
    for key in ("published_at", "published_by", "pending_disputes"):
        fresh[key] = stored.get(key)
    if canonical(fresh) != canonical(stored):
        problems += describe_differences(stored, fresh)
    return Verification(week.label, not problems, problems)


def describe_differences(stored: dict[str, Any], fresh: dict[str, Any]) -> list[str]:
    """Which units' scores differ between the frozen week and a recomputation, in words."""
    out: list[str] = []
    old = {(lg["kind"], s["id"]): s for lg in stored["leagues"] for s in lg["scores"]}
    new = {(lg["kind"], s["id"]): s for lg in fresh["leagues"] for s in lg["scores"]}
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if a is None or b is None:
            out.append(f"{key[0]} {key[1]}: {'added' if a is None else 'missing'} on recomputation")
            continue
        fields = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        out.append(
            f"{key[0]} {key[1]}: the stored findings changed since publication "
            f"(differs in {', '.join(fields)})"
        )
    if not out:
        out.append("the recomputed week differs from the frozen one")
    return out[:50]


def what_if(
    conn: Connection, base: Formula, other: Formula, week: Week, as_of: dt.datetime
) -> dict[str, Any]:
    """The same week under two formulas, and what changes between them."""
    a = compute(conn, base, week, as_of)
    b = compute(conn, other, week, as_of)
    changes: list[dict[str, Any]] = []
    old = {(lg["kind"], s["id"]): s for lg in a["leagues"] for s in lg["scores"]}
    new = {(lg["kind"], s["id"]): s for lg in b["leagues"] for s in lg["scores"]}
    for key in sorted(set(old) & set(new)):
        x, y = old[key], new[key]
        if x["flag"] != y["flag"] or x["rank"] != y["rank"]:
            changes.append(
                {
                    "kind": key[0],
                    "id": key[1],
                    "name": x["name"],
                    "rank": [x["rank"], y["rank"]],
                    "flag": [x["flag"], y["flag"]],
                }
            )
    flag_changes = [c for c in changes if c["flag"][0] != c["flag"][1]]
    return {
        "week": week.label,
        "base": a["formula"]["version"],
        "other": b["formula"]["version"],
        "rank_changes": len(changes),
        "flag_changes": flag_changes,
        "changes": changes,
    }


# -- the contest window ------------------------------------------------------------------
def file_dispute(
    engine: Engine,
    week: Week,
    report_id: str,
    by: str,
    reason: str,
    evidence: list[str],
    now: dt.datetime,
    contest_hours: float,
    actor: audit.Actor | None = None,
) -> int:
    """File a dispute as `by` (on the web: the logged-in user); audited (`dispute.file`)."""
    reason = (reason or "").strip()
    if not reason:
        raise RankingError("reason_required", "say why the finding is disputed")
    if not evidence or not all(isinstance(e, str) and e.strip() for e in evidence):
        raise RankingError(
            "evidence_required", "a dispute needs evidence: photo hashes or links, as strings"
        )
    closes = default_as_of(week, contest_hours)
    with engine.begin() as conn:
        if ranking_row(conn, week.label) is not None or now >= closes:
            raise RankingError("contest_closed", f"the contest window of {week.label} has closed")
        rep = conn.execute(
            select(models.Report.observed_at).where(models.Report.id == report_id)
        ).first()
        if rep is None:
            raise RankingError("unknown_report", f"no report {report_id}")
        if not week.start <= rep.observed_at < week.end:
            raise RankingError("wrong_week", f"report {report_id} was not observed in {week}")
        inserted = conn.execute(
            _insert(conn, DISPUTES)
            .values(
                week=week.label,
                report_id=report_id,
                filed_by=by,
                filed_at=now,
                reason=reason,
                evidence=evidence,
            )
            .on_conflict_do_nothing(index_elements=["week", "report_id"])
            .returning(DISPUTES.c.id)
        ).first()
        if inserted is None:
            raise RankingError("already_disputed", f"report {report_id} is already disputed")
        audit.record(
            conn,
            actor or by,
            "dispute.file",
            str(inserted.id),
            at=now,
            week=week.label,
            report_id=report_id,
        )
    return int(inserted.id)


def decide_dispute(
    engine: Engine,
    dispute_id: int,
    decision: str,
    by: str,
    note: str,
    now: dt.datetime,
    tz: Any,
    contest_hours: float,
    actor: audit.Actor | None = None,
) -> None:
    """Decide as `by`, never the filer (RankingError own_dispute); audited (`dispute.decide`)."""
    if decision not in ("upheld", "rejected"):
        raise RankingError("bad_decision", "decision must be 'upheld' or 'rejected'")
    with engine.begin() as conn:
        d = conn.execute(select(DISPUTES).where(DISPUTES.c.id == dispute_id)).first()
        if d is None:
            raise RankingError("unknown_dispute", f"no dispute {dispute_id}")
        if d.filed_by == by:
            raise RankingError("own_dispute", "the arbiter cannot be the one who filed it")
        week = Week.parse(d.week, tz)
        if ranking_row(conn, d.week) is not None or now >= default_as_of(week, contest_hours):
            raise RankingError("contest_closed", f"the contest window of {d.week} has closed")
        done = conn.execute(
            update(DISPUTES)
            .where(DISPUTES.c.id == dispute_id, DISPUTES.c.decision.is_(None))
            .values(decision=decision, decided_by=by, decided_at=now, decision_note=note or None)
        ).rowcount
        if done != 1:
            raise RankingError("already_decided", f"dispute {dispute_id} is already decided")
        audit.record(
            conn,
            actor or by,
            "dispute.decide",
            str(dispute_id),
            at=now,
            week=d.week,
            report_id=d.report_id,
            decision=decision,
        )


def disputes_of(conn: Connection, week: str) -> list[dict[str, Any]]:
    rows = conn.execute(select(DISPUTES).where(DISPUTES.c.week == week).order_by(DISPUTES.c.id))
    out = []
    for r in rows:
        item = dict(r._mapping)
        for k in ("filed_at", "decided_at"):
            if item[k] is not None:
                item[k] = item[k].isoformat()
        out.append(item)
    return out
