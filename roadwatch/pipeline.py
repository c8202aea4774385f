"""The one ingest path: validate → dedupe → geolocate → store → (ack) → broadcast.

Transports (MQTT, HTTP) hand over `Inbound` messages in batches and get one `Outcome`
per message back, in the same order, only after everything is committed. A database
error raises (the transport then neither acks nor drops: it retries); any other error
in one message turns into a stored rejection for that message alone.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Select,
    String,
    Table,
    any_,
    bindparam,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import (
    IntegrityError,
)
from sqlalchemy.orm import Session, sessionmaker

from .accounts.reporters import DISABLED, KNOWN, ReporterDirectory
from .cases.calendar import load_sla
from .cases.intake import CaseMessageIn, validate_case_message
from .cases.outbox import Routing, enqueue
from .cases.patrols import PatrolIn, belongs_to_another, store_patrol, validate_patrol
from .cases.workflow import (
    Effects,
    Notice,
    Sla,
    apply_case_message,
)
from .categories import Categories
from .geolocate import PhotoFix, Placement, note_patrol, place, place_many
from .ingest import park
from .ingest.errors import FieldError
from .ingest.messages import Inbound, Outcome
from .ingest.payloads import ReportIn, ReportRules, decode_json, message_id_of, validate_report
from .late_photos import PlacedAgain, place_with_late_photo
from .metrics import Metrics
from .network.context import NetworkContext
from .network.phones import prime_phones
from .network.tracks import REFRESH_S as TRACK_REFRESH_S
from .network.tracks import read_tracks
from .settings import Settings
from .store import audit, models
from .store.bulk import insert_rows
from .store.db import dialect_of, is_outage
from .store.events import LiveEvent, record_events
from .store.segments import segment_states

log = logging.getLogger(__name__)

OPEN311_PREFIX = "open311-"  # reporter ids of Open311's city systems (web/open311.py)
VECTOR_MIN = 24  # batches at least this big are geolocated with numpy
MAX_RAW_KEPT = 256 * 1024  # bytes of a rejected payload kept verbatim (the size is kept too)


REPORTS: Table = models.Report.__table__  # type: ignore[assignment]
REJECTED: Table = models.RejectedMessage.__table__  # type: ignore[assignment]
LABELS: Table = models.SnapLabel.__table__  # type: ignore[assignment]
PHOTO_META: Table = models.PhotoMeta.__table__  # type: ignore[assignment]


class StorageError(RuntimeError):
    """The database could not commit a batch; nothing was stored, nothing may be acked."""


@dataclass(slots=True)
class _Item:
    msg: Inbound
    report: ReportIn | None = None
    errors: list[FieldError] | None = None
    # a rejected rectification or verification: the state of the case it left unchanged
    case_status: str | None = None
    message_id: str | None = None
    placement: Placement | None = None
    outcome: Outcome | None = None
    case_msg: CaseMessageIn | None = None
    patrol: PatrolIn | None = None
    parked: park.ParkedToken | None = None  # a retry of a parked message
    # photos the report names that were not uploaded (or had no EXIF fix) when it was placed
    photos_unseen: tuple[str, ...] = ()


PARKED = "parked"  # an Outcome status never sent to a phone: the message waits (ingest/park.py)


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        ctx: NetworkContext,
        categories: Categories,
        metrics: Metrics | None = None,
        on_events: Callable[[list[LiveEvent]], None] | None = None,
        clock: Callable[[], dt.datetime] = models.utcnow,
        sla: Sla | None = None,
        on_notices: Callable[[list[Notice]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.engine: Engine = sessions.kw["bind"]
        self.ctx = ctx
        self.categories = categories
        self.metrics = metrics or Metrics()
        self.on_events = on_events
        self.clock = clock
        self.rules = ReportRules(
            categories=categories.codes,
            max_note_chars=settings.max_note_chars,
            observed_window=dt.timedelta(days=settings.observed_window_days),
            future_skew=dt.timedelta(seconds=settings.future_skew_s),
        )
        self.tz = settings.tz
        if sla is None:
            sla = load_sla(categories=categories.codes)
        self.sla = sla
        self.on_notices = on_notices  # after a commit that wrote notices to the outbox
        self.routing = Routing.from_settings(settings, categories)  # which channels, what words
        # Called after each commit that stored new reports (wakes the dispatcher); with
        # none set, new cases are dispatched inline, before process() returns.
        self.on_stored: Callable[[], None] | None = None
        # Whether a report this process is not certain of is placed again with its chief's
        # stored patrol track (roadwatch.network.tracks): a worker of several, or the web
        # role, never sees some of the patrol messages. `serve` takes them all (both
        # transports) and turns this off, sparing a query a batch; the web's nearby query
        # follows the same flag.
        self.reads_stored_tracks = True
        self.dispatcher: Any = None
        # Categories whose rectification needs no after photo (categories.toml).
        self.photo_optional = frozenset(
            c.code for c in categories.by_code.values() if not c.photo_required
        )
        # Who may report (issue 15): registered, enabled reporters (and Open311's systems).
        self.reporters = ReporterDirectory(sessions, ttl_s=settings.reporter_cache_s)
        self.park_max_age = dt.timedelta(seconds=settings.park_max_age_s)
        # Parked messages (ingest/park.py): the transport that sends their acks once they
        # are applied (set by MqttIngest), and whether any may be parked (a hint: set when
        # this process parks one or its periodic look finds some) so that the look-up on
        # each stored report costs nothing while none is.
        self.on_unparked: Callable[[list[tuple[Inbound, Outcome]]], None] | None = None
        self.parked_hint = False

    # -- public -------------------------------------------------------------------
    def process(self, batch: Sequence[Inbound]) -> list[Outcome]:
        """Outcomes in the order of `batch`; raises StorageError if nothing could be stored."""
        if not batch:
            return []
        now = self.clock()
        try:
            self.reporters.refresh(
                (m.topic_reporter for m in batch if m.transport != "http"),
                [m.topic_reporter for m in batch if m.transport == "http" and m.topic_reporter],
            )
        except Exception as exc:  # the database is away: the transport retries
            self.metrics.db_retries.inc()
            raise StorageError(f"database error: {exc.__class__.__name__}: {exc}") from exc
        items = [self._check(msg, now) for msg in batch]
        self._place(items)
        try:
            events, notices = self._store_all(items, now)
        except Exception as exc:  # the database is away: nothing stored, the transport retries
            self.metrics.db_retries.inc()
            raise StorageError(f"database error: {exc.__class__.__name__}: {exc}") from exc
        events += self._late_photos(items, now)
        outcomes = []
        for item in items:
            assert item.outcome is not None
            outcomes.append(item.outcome)
        self._count(items)
        if events and self.on_events is not None:
            try:
                self.on_events(events)
            except Exception:  # the live feed must never undo a committed batch
                log.exception("broadcasting %d events failed", len(events))
        if notices and self.on_notices is not None:
            try:
                self.on_notices(notices)
            except Exception:
                log.exception("sending %d notices failed", len(notices))
        if any(o.case_status == "new" for o in outcomes):
            outcomes = self._dispatch(items, outcomes)
        if any(o.status == PARKED for o in outcomes):
            self.parked_hint = True
        if self.parked_hint and self.on_unparked is not None:
            self._unpark(items)  # after an inline dispatch: a rectification may follow it
        return outcomes

    def _unpark(self, items: list[_Item]) -> None:
        """Messages parked for the reports this batch stored are tried at once."""
        stored = [
            it.report.report_id
            for it in items
            if it.report is not None
            and it.outcome is not None
            and it.outcome.status in ("accepted", "needs_review")
        ]
        if not stored or self.on_unparked is None:
            return
        try:
            done = self.retry_parked(stored)
        except StorageError:  # committed all the same; the periodic retry takes them
            log.exception("retrying parked messages failed")
            return
        if done:
            self.on_unparked(done)

    def retry_parked(
        self, report_ids: list[str] | None = None, limit: int = 200
    ) -> list[tuple[Inbound, Outcome]]:
        """Try parked messages again: those waiting for `report_ids` (just stored), else
        those due. Returns the ones now applied or rejected, with their outcome (the caller
        sends each its ack); raises StorageError like `process`."""
        now = self.clock()
        try:
            with self.engine.connect() as conn:
                msgs = park.due(conn, now, self.park_max_age, report_ids, limit)
        except Exception as exc:
            raise StorageError(f"database error: {exc.__class__.__name__}: {exc}") from exc
        if not msgs:
            return []
        outcomes = self.process(msgs)
        return [(m, o) for m, o in zip(msgs, outcomes, strict=True) if o.status != PARKED]

    def _store_retrying(
        self, items: list[_Item], now: dt.datetime
    ) -> tuple[list[LiveEvent], list[Notice]]:
        for attempt in range(3):
            try:
                return self._store(items, now)
            except Exception as exc:
                # A concurrent writer (another worker on the shared subscription given the
                # phone's resend) stored one of these report ids first; the next attempt
                # answers it as a duplicate.
                if not _is_conflict(exc) or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _store_all(
        self, items: list[_Item], now: dt.datetime
    ) -> tuple[list[LiveEvent], list[Notice]]:
        """Store a batch in one transaction; if the database refuses something in it that is
        not an outage, store its messages one by one, and the one it refuses as a rejection.

        One message the database cannot take (a value past a column's limit, text it cannot
        encode, a bug) must never block the batch, and with it every later one, for ever.
        """
        try:
            return self._store_retrying(items, now)
        except Exception as exc:
            if _is_outage(exc):
                raise
            log.exception("storing a batch of %d failed; storing one by one", len(items))
        events: list[LiveEvent] = []
        notices: list[Notice] = []
        for it in items:
            try:
                ev, no = self._store_retrying([it], now)
            except Exception as exc:
                if _is_outage(exc):
                    raise
                log.exception("the database refused the message on %s; rejecting it", it.msg.topic)
                it.report = it.case_msg = it.patrol = None
                it.errors = [
                    FieldError(
                        "payload",
                        "unstorable",
                        "the platform could not store this message "
                        f"({exc.__class__.__name__}); it is kept here as it was sent",
                    )
                ]
                ev, no = self._store_retrying([it], now)
            events += ev
            notices += no
        return events, notices

    def _count(self, items: list[_Item]) -> None:
        """Metrics for a committed batch: counted per batch, not per message (hot path)."""
        done = time.time()
        by_kind = Counter((it.msg.transport, it.msg.kind) for it in items)
        by_status = Counter(it.outcome.status for it in items if it.outcome is not None)
        for (transport, kind), n in by_kind.items():
            self.metrics.messages_in.labels(transport, kind).inc(n)
        for status, n in by_status.items():
            self.metrics.outcomes.labels(status).inc(n)
        for it in items:
            self.metrics.latency.observe(max(0.0, done - it.msg.received_at.timestamp()))
        self.metrics.batch_size.observe(len(items))

    def dispatch_new(self) -> dict[str, str]:
        """Wake the dispatcher thread, or (none running) dispatch the new reports inline:
        their new case status by report id (empty when the thread was woken)."""
        if self.on_stored is not None:
            self.on_stored()
            return {}
        if self.dispatcher is None:
            return {}
        try:
            statuses: dict[str, str] = self.dispatcher.run_once()
            return statuses
        except Exception:  # the reports are stored; the dispatcher thread retries later
            log.exception("inline dispatch failed")
            return {}

    def _dispatch(self, items: list[_Item], outcomes: list[Outcome]) -> list[Outcome]:
        """Wake the dispatcher thread, or (none running) dispatch inline and say so in the acks."""
        statuses = self.dispatch_new()
        if not statuses:
            return outcomes
        out = []
        for it, o in zip(items, outcomes, strict=True):
            rid = it.report.report_id if it.report is not None else None
            if o.case_status == "new" and rid in statuses:
                o = replace(o, case_status=statuses[rid])
            out.append(o)
        return out

    # -- steps --------------------------------------------------------------------
    def _check(self, msg: Inbound, now: dt.datetime) -> _Item:
        """Decode, validate and geolocate one message; never raises."""
        item = _Item(msg)
        if isinstance(msg.token, park.ParkedToken):
            item.parked = msg.token
        try:
            data, errors = decode_json(msg.payload, self.settings.max_payload_bytes)
            item.message_id = message_id_of(data)
            if msg.refused:
                item.errors = list(msg.refused)
                return item
            if msg.kind in ("rectification", "verification"):
                item.message_id = message_id_of(data, f"{msg.kind}_id")
                if not errors:
                    item.case_msg, errors = validate_case_message(
                        msg.kind, data, now, msg.topic_reporter, self.settings.max_note_chars
                    )
            elif msg.kind == "patrol":
                item.message_id = message_id_of(data, "patrol_id")
                if not errors:
                    item.patrol, errors = validate_patrol(
                        data, now, msg.topic_reporter, self.rules.observed_window
                    )
            elif msg.kind != "report":
                errors = [
                    FieldError("topic", "unknown_topic", f"nothing is served on topic {msg.topic}")
                ]
            elif not errors:
                item.report, errors = validate_report(data, self.rules, now, msg.topic_reporter)
            if not errors:
                errors = self._check_reporter(item, msg)
            item.errors = errors
        except Exception as exc:  # a bug must cost one message a rejection, not the batch
            log.exception("unexpected error while checking a message on %s", msg.topic)
            item.report = None
            item.errors = [
                FieldError("payload", "internal_error", f"the platform could not read it ({exc})")
            ]
        return item

    def _check_reporter(self, item: _Item, msg: Inbound) -> list[FieldError]:
        """A valid message from an unknown or disabled reporter is refused (issue 15).

        Its form is checked first (a malformed message is answered for what is wrong with
        it); the reporter is the topic's (MQTT) or the identity's (HTTP), which the payload
        had to match. With neither, an in-process caller checked its own credentials:
        Open311's POST (its api_key, setting open311_api_keys) files as open311-{owner}, a
        city system that is no row of `reporters`; such an id never comes over MQTT."""
        valid = item.report or item.case_msg or item.patrol
        if valid is None:
            return []
        rid = msg.topic_reporter
        if rid is None:
            rid = valid.reporter_id
            if rid.startswith(OPEN311_PREFIX):
                return []
        refusal = self._refuse_reporter(rid)
        if refusal is None:
            return []
        item.report = item.case_msg = item.patrol = None
        return [refusal]

    def _refuse_reporter(self, rid: str) -> FieldError | None:
        """Why `rid` may not report (unknown or disabled), or None; a dict lookup."""
        status = self.reporters.status(rid)
        if status == KNOWN:
            return None
        shown = rid if len(rid) <= 64 else rid[:64] + "…"
        if status == DISABLED:
            return FieldError(
                "reporter_id",
                "disabled_reporter",
                f"上报人 {shown} 已停用，请联系指挥中心 "
                f"(reporter {shown} is disabled; ask the command centre)",
            )
        return FieldError(
            "reporter_id",
            "unknown_reporter",
            f"上报人 {shown} 未登记，请联系指挥中心登记 "
            f"(reporter {shown} is not registered; ask the command centre to register it)",
        )

    def _place(self, items: list[_Item]) -> None:
        """Geolocate the valid reports, vectorised; raises StorageError only when the
        database is away (looking up the photos' EXIF), like process() itself."""
        todo = [it for it in items if it.report is not None]
        if not todo:
            return
        reports = [it.report for it in todo if it.report]
        photos = self._photo_fixes(reports) or None
        # the stored fixes of reporters this process has not met yet (geo.phones)
        prime_phones(self.engine, self.ctx, [r.reporter_id for r in reports])
        try:
            # numpy's per-call overhead only pays off from a few dozen points on.
            if len(reports) < VECTOR_MIN:
                placements = [place(r, self.ctx, photos) for r in reports]
            else:
                placements = place_many(reports, self.ctx, photos)
        except Exception:  # find the message that trips it, one by one
            log.exception("batch geolocation failed; placing %d reports one by one", len(todo))
            placements = []
            for it in todo:
                assert it.report is not None
                try:
                    placements.append(place(it.report, self.ctx, photos))
                except Exception as exc:
                    log.exception("could not place report %s", it.report.report_id)
                    placements.append(_unplaceable(exc))
        for it, p in zip(todo, placements, strict=True):
            it.placement = p
            assert it.report is not None
            it.photos_unseen = tuple(h for h in it.report.photos if h not in (photos or ()))
            if p.error is not None:
                it.errors = [p.error]
                it.report = None
        self._with_stored_tracks(todo, photos)

    def _with_stored_tracks(self, todo: list[_Item], photos: dict[str, PhotoFix] | None) -> None:
        """Place again, with their chief's stored patrol track, the reports that were not
        certain: another worker on the shared subscription may have stored the patrol
        messages this one never saw (roadwatch.network.tracks). Only when the read adds
        points this process did not hold; the fix is not learnt twice."""
        if not self.reads_stored_tracks:
            return
        unsure = [
            it
            for it in todo
            if it.report is not None
            and it.placement is not None
            and it.placement.status == "needs_review"
        ]
        if not unsure:
            return
        around: dict[str, list[dt.datetime]] = {}
        for it in unsure:
            assert it.report is not None
            around.setdefault(it.report.reporter_id, []).append(it.report.observed_at)
        gained = read_tracks(self.engine, self.ctx, around, refresh_s=TRACK_REFRESH_S)
        for it in unsure:
            assert it.report is not None
            if it.report.reporter_id in gained:
                try:
                    it.placement = place(it.report, self.ctx, photos, learn=False)
                except Exception:  # keeps the first answer: the report waits in review
                    log.exception("placing report %s again failed", it.report.report_id)

    def _late_photos(self, items: list[_Item], now: dt.datetime) -> list[LiveEvent]:
        """Reports just stored in review that name a photo not there when they were placed:
        place them again if it has arrived since (roadwatch.late_photos); their ack then says
        what the photo settled. Returns the live events of what changed.

        A photo uploaded while its report is being placed would otherwise be used by
        neither side: the report was placed without it, and the upload looked for the
        report before it was committed. Reading the photos again after the commit closes
        that gap: whichever of the two commits last sees the other. Never raises: the
        batch is committed, and a report left in review is settled by staff."""
        waiting = [
            it
            for it in items
            if it.report is not None
            and it.photos_unseen
            and it.outcome is not None
            and it.outcome.status == "needs_review"
        ]
        if not waiting:
            return []
        # One query for the batch: which of those photos are here now with a fix (a report
        # may name 20 photos that never come; each is not looked up alone)
        hashes = sorted({h for it in waiting for h in it.photos_unseen})
        try:
            with self.engine.connect() as conn:
                stmt = _photo_meta_sql(dialect_of(conn))
                arrived = {row.sha256 for row in conn.execute(stmt, {"ids": hashes})}
        except Exception:
            log.exception("looking for %d photos again failed; their reports wait", len(hashes))
            return []
        events: list[LiveEvent] = []
        placed: dict[str, PlacedAgain] = {}  # by report id: one call may place several
        tried: set[tuple[str, str]] = set()
        for it in waiting:
            assert it.report is not None
            reporter = it.report.reporter_id
            for sha in (h for h in it.photos_unseen if h in arrived):
                if it.report.report_id in placed:
                    break  # the first photo that changed it decides, as at upload
                if (reporter, sha) in tried:
                    continue
                tried.add((reporter, sha))
                try:
                    again, ev = place_with_late_photo(
                        self.engine,
                        self.sessions,
                        self.ctx,
                        sha,
                        reporter,
                        audit.Actor(f"reporter:{reporter}"),
                        now,
                    )
                except Exception:
                    log.exception("placing reports with photo %s again failed", sha[:12])
                    continue
                events += ev
                placed.update((a.report_id, a) for a in again)
        for it in waiting:
            assert it.report is not None and it.outcome is not None
            a = placed.get(it.report.report_id)
            if a is not None and a.status == "accepted":
                it.outcome = replace(
                    it.outcome,
                    status="accepted",
                    segment_id=a.segment_id,
                    segment_name=self._segment_name(a.segment_id),
                    case_status="new",  # the dispatcher opens its case, as at intake
                )
        return events

    def _photo_fixes(self, reports: list[ReportIn]) -> dict[str, PhotoFix]:
        """The EXIF position and direction of the photos a batch's reports name, by
        SHA-256: one query for the batch, and none when no report names a photo. Only
        photos already uploaded count (a report may arrive before its photos)."""
        hashes = sorted({h for r in reports for h in r.photos})
        if not hashes:
            return {}
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(_photo_meta_sql(dialect_of(conn)), {"ids": hashes}).all()
        except Exception as exc:
            if _is_outage(exc):  # the transport retries the batch, as for any outage
                self.metrics.db_retries.inc()
                raise StorageError(f"database error: {exc.__class__.__name__}: {exc}") from exc
            log.exception("reading the EXIF of %d photos failed; placing without", len(hashes))
            return {}
        return {row.sha256: PhotoFix.of(row) for row in rows}

    def _store(self, items: list[_Item], now: dt.datetime) -> tuple[list[LiveEvent], list[Notice]]:
        reports_t, rejected_t = REPORTS, REJECTED
        # Core, not the ORM: this is the hot path and every statement is plain SQL.
        with self.engine.begin() as session:
            valid = [it for it in items if it.report is not None]
            known, owners = self._existing(
                session, [it.report.report_id for it in valid if it.report]
            )
            rows: list[dict[str, Any]] = []
            fresh: dict[str, _Item] = {}
            for it in valid:
                assert it.report is not None and it.placement is not None
                rid = it.report.report_id
                owner = owners.get(rid)
                first = fresh[rid].report if rid in fresh else None
                if owner is None and first is not None:
                    owner = first.reporter_id
                if owner is not None and owner != it.report.reporter_id:
                    # Another reporter's id: not a resend of this reporter's message, so
                    # neither a silent "duplicate" nor a look at the other one's report.
                    it.errors = [
                        FieldError(
                            "report_id",
                            "not_yours",
                            "this report_id is another reporter's report; make a new UUID "
                            "for each report",
                        )
                    ]
                    it.report = None  # falls through to the rejections below
                    continue
                if rid in known or rid in fresh:
                    continue  # answered below as duplicate
                fresh[rid] = it
                rows.append(self._report_row(it))
            # A new report is stored with case_status "new": the dispatcher (its own thread,
            # or inline after this commit) turns it into a case. Acks never wait for that.
            # If another worker inserts one of these ids meanwhile, the primary key stops
            # this transaction and process() runs the batch again, when _existing answers
            # that id as a duplicate.
            fx = Effects()
            for row in rows:
                row.update(_CASE_DEFAULTS)
                if row["status"] == "accepted" and row["segment_id"]:
                    row["case_status"] = "new"
            insert_rows(session, reports_t, rows)
            insert_rows(session, LABELS, phone_labels(rows, now))
            inserted: set[str] = set(fresh)
            touched_by_cases: list[str] = []
            held = self._claim_parked(session, items)
            waiting: set[str] = set()  # reports with a message parked in this transaction
            for it in items:
                if it.case_msg is None:
                    continue
                reason = self._behind(session, it, held, waiting)
                if reason is None:
                    co, fx_msg = apply_case_message(
                        session,
                        it.case_msg,
                        it.msg.payload,
                        it.msg.received_at,
                        now,
                        self.photo_optional,
                    )
                    if co.error is not None:
                        reason = self._park_reason(session, it, co.error[1])
                if reason is not None:
                    rid = it.case_msg.report_id
                    park.park(session, it.msg, it.case_msg.message_id, rid, reason, now, it.parked)
                    waiting.add(rid)
                    it.outcome = Outcome(id=it.message_id, status=PARKED)
                    it.case_msg = None
                    continue
                fx.extend(fx_msg)
                if co.error is not None:
                    it.errors = [FieldError(*co.error)]
                    it.case_status = co.case_status
                    it.case_msg = None  # falls through to the rejections below
                    continue
                it.outcome = Outcome(
                    id=it.message_id,
                    status=co.status,
                    segment_id=co.segment_id,
                    segment_name=self._segment_name(co.segment_id),
                    case_status=co.case_status,
                )
                if co.segment_id and co.status == "accepted":
                    touched_by_cases.append(co.segment_id)
            for it in items:
                if it.patrol is not None and belongs_to_another(session, it.patrol):
                    it.errors = [
                        FieldError(
                            "patrol_id",
                            "not_yours",
                            "this patrol_id is another reporter's patrol; start a new one",
                        )
                    ]
                    it.patrol = None  # falls through to the rejections below
                if it.patrol is not None:
                    covered = store_patrol(session, it.patrol, self.ctx, now)
                    note_patrol(self.ctx, it.patrol.reporter_id, it.patrol.points)
                    it.outcome = Outcome(
                        id=it.message_id,
                        status="accepted",
                        covered=tuple(covered) if it.patrol.state == "end" else None,
                    )
            rejected_rows = []
            for it in items:
                if it.case_msg is not None or it.patrol is not None:
                    continue
                if it.outcome is not None and it.outcome.status == PARKED:
                    continue
                if it.report is None:
                    errs = tuple(it.errors or ())
                    it.outcome = Outcome(
                        id=it.message_id,
                        status="rejected",
                        errors=errs,
                        case_status=it.case_status,
                    )
                    rejected_rows.append(self._rejected_row(it, now))
                    continue
                if it.report.report_id in inserted and fresh.get(it.report.report_id) is it:
                    outcome = self._outcome(it.report.report_id, it.placement)
                    state = "needs_review" if outcome.status == "needs_review" else "new"
                    outcome = replace(outcome, case_status=state)
                else:
                    outcome = self._duplicate(it.report.report_id, known)
                # The ack echoes the id exactly as the phone wrote it (case, braces…).
                it.outcome = replace(outcome, id=it.message_id)
            if rejected_rows:
                insert_rows(session, rejected_t, rejected_rows)
            park.release(
                session,
                [
                    it.parked.row_id
                    for it in items
                    if it.parked is not None
                    and it.parked.row_id in held
                    and not (it.outcome is not None and it.outcome.status == PARKED)
                ],
            )

            payloads = self._event_payloads(
                session,
                [fresh[r] for r in fresh if r in inserted],
                fx.events,
                touched_by_cases,
            )
            enqueue(session, fx.notices, now, self.routing)  # sent from the outbox after commit
            return record_events(session, payloads, now), fx.notices

    # -- parking (ingest/park.py) ---------------------------------------------------
    def _claim_parked(self, session: Connection, items: list[_Item]) -> set[int]:
        """Take the parked rows retried in this batch; a row another worker holds (or has
        applied) is answered PARKED here and left to it."""
        ids = [it.parked.row_id for it in items if it.parked is not None]
        if not ids:
            return set()
        held = park.claim(session, ids)
        for it in items:
            if it.parked is not None and it.parked.row_id not in held:
                it.report = it.case_msg = it.patrol = None
                it.outcome = Outcome(id=it.message_id, status=PARKED)
        return held

    def _may_park(self, it: _Item) -> bool:
        # Only over MQTT, where a later worker may still commit the report; an HTTP caller
        # is answered at once. A last try past the maximum age gets its normal outcome.
        return (
            it.msg.transport == "mqtt"
            and it.case_msg is not None
            and (it.parked is None or not it.parked.final)
        )

    def _behind(
        self, session: Connection, it: _Item, held: set[int], waiting: set[str]
    ) -> str | None:
        """`behind` if an earlier message for the same report is parked: they are applied
        in the order they arrived."""
        if not self._may_park(it):
            return None
        assert it.case_msg is not None
        rid = it.case_msg.report_id
        if rid in waiting:
            return "behind"
        if it.parked is not None:  # its own row (and its siblings in this batch) are held
            return None
        return "behind" if park.has_parked(session, rid) else None

    def _park_reason(self, session: Connection, it: _Item, code: str) -> str | None:
        """Why a refused case message should wait rather than be rejected, or None."""
        if not self._may_park(it):
            return None
        assert it.case_msg is not None
        if code == "unknown_report":
            return "unknown_report"
        if code == "illegal_transition" and it.case_msg.kind == "rectification":
            status = session.execute(
                select(REPORTS.c.case_status).where(REPORTS.c.id == it.case_msg.report_id)
            ).scalar()
            if status == "new":
                return "not_dispatched"
        return None

    # -- helpers ------------------------------------------------------------------
    def _existing(
        self, session: Connection, ids: list[str]
    ) -> tuple[dict[str, Outcome], dict[str, str]]:
        """The stored reports among `ids`: their duplicate answers, and their reporters."""
        if not ids:
            return {}, {}
        rows = session.execute(_known_reports_sql(dialect_of(session)), {"ids": ids}).all()
        known = {
            row.id: Outcome(
                id=row.id,
                status="duplicate",
                segment_id=row.segment_id,
                segment_name=self._segment_name(row.segment_id),
                district=self._district_name(row.district),
                snap=_ack_snap(row.snap),
                case_status=row.case_status,
            )
            for row in rows
        }
        return known, {row.id: row.reporter_id for row in rows}

    def _duplicate(self, rid: str, known: dict[str, Outcome]) -> Outcome:
        return known.get(rid) or Outcome(id=rid, status="duplicate")

    def _outcome(self, rid: str, p: Placement | None) -> Outcome:
        assert p is not None
        return Outcome(
            id=rid,
            status=p.status,
            segment_id=p.segment_id,
            segment_name=self._segment_name(p.segment_id),
            district=self._district_name(p.district),
            snap=_ack_snap(p.snap),
        )

    def _segment_name(self, segment_id: str | None) -> str | None:
        pos = self.ctx.position.get(segment_id) if segment_id else None
        return self.ctx.network.segments[pos].name if pos is not None else None

    def _district_name(self, code: str | None) -> str | None:
        if code is None:
            return None
        return self.ctx.district_names.get(code, code)

    def _report_row(self, it: _Item) -> dict[str, Any]:
        r, p, m = it.report, it.placement, it.msg
        assert r is not None and p is not None
        return {
            "id": r.report_id,
            "reporter_id": r.reporter_id,
            "category": r.category,
            "scheme": self.categories.scheme,
            "severity": r.severity,
            "note": r.note,
            "photos": list(r.photos),
            "observed_at": r.observed_at,
            "received_at": m.received_at,
            "crs": r.crs,
            "lat_in": r.lat,
            "lon_in": r.lon,
            "lat": p.lat,
            "lon": p.lon,
            "accuracy_m": r.accuracy_m,
            "heading_deg": r.heading_deg,
            "segment_hint": r.segment_hint,
            "segment_id": p.segment_id,
            "segment_version": self.ctx.versions.get(p.segment_id) if p.segment_id else None,
            "district": p.district,
            "snap_distance_m": p.distance_m,
            "snap_confidence": p.confidence,
            "snap": p.snap,
            "status": p.status,
            "case_status": "needs_review" if p.status == "needs_review" else None,
            "transport": m.transport,
            "topic": m.topic,
            "raw": m.payload,
        }

    def _rejected_row(self, it: _Item, now: dt.datetime) -> dict[str, Any]:
        errs = it.errors or []
        topic, reporter = it.msg.topic, it.msg.topic_reporter or it.msg.sender
        return {
            "received_at": it.msg.received_at,
            "transport": it.msg.transport,
            # cut to the columns: an overlong topic is a reason to reject, not to fail
            "topic": topic if topic is None or len(topic) <= 255 else topic[:254] + "…",
            "reporter_id": reporter if reporter is None or len(reporter) <= 64 else reporter[:64],
            "message_id": it.message_id,
            "reason": "; ".join(e.message for e in errs) or "rejected",
            "errors": [e.as_dict() for e in errs],
            "raw": it.msg.payload[:MAX_RAW_KEPT],
            "raw_size": len(it.msg.payload),
        }

    def _event_payloads(
        self,
        session: Connection,
        items: list[_Item],
        case_events: list[tuple[str, dict[str, Any]]],
        touched_by_cases: list[str],
    ) -> list[tuple[str, dict[str, Any]]]:
        out: list[tuple[str, dict[str, Any]]] = []
        touched: list[str] = []
        for it in items:
            r, p, m = it.report, it.placement, it.msg
            assert r is not None and p is not None
            out.append(
                (
                    "report",
                    {
                        "id": r.report_id,
                        "segment_id": p.segment_id,
                        "district": p.district,
                        "category": r.category,
                        "severity": r.severity,
                        "status": p.status,
                        "lat": p.lat,
                        "lon": p.lon,
                        "observed_at": r.observed_at.astimezone(self.tz).isoformat(),
                        "received_at": m.received_at.astimezone(self.tz).isoformat(),
                    },
                )
            )
            if p.segment_id and p.segment_id not in touched:
                touched.append(p.segment_id)
        out += case_events
        for sid in touched_by_cases:
            if sid not in touched:
                touched.append(sid)
        for state in segment_states(session, touched):
            out.append(("segment", state))
        return out


@functools.cache
def _known_reports_sql(dialect: str) -> Select[Any]:
    """Reports already stored under some of a batch's ids (built once: every batch asks)."""
    r = REPORTS.c
    match = _among_ids(r.id, dialect)
    return select(
        r.id, r.reporter_id, r.status, r.segment_id, r.district, r.snap, r.case_status
    ).where(match)


def _among_ids(column: Any, dialect: str) -> Any:
    """``column`` is one of the bound list ``ids``: one array parameter on PostgreSQL (the
    statement's text stays the same for any number of ids), an expanding IN elsewhere."""
    if dialect == "postgresql":
        return column == any_(bindparam("ids", type_=ARRAY(String())))
    return column.in_(bindparam("ids", expanding=True))


@functools.cache
def _photo_meta_sql(dialect: str) -> Select[Any]:
    """The EXIF fixes of some photos (only rows with a position or a direction)."""
    p = PHOTO_META.c
    match = _among_ids(p.sha256, dialect)
    return select(
        p.sha256,
        p.lat,
        p.lon,
        p.accuracy_m,
        p.bearing_deg,
        p.bearing_ref,
        p.taken_at,
        p.uploaded_at,
    ).where(match, or_(p.lat.is_not(None) & p.lon.is_not(None), p.bearing_deg.is_not(None)))


# Case columns of a report that opens no case (needs_review); overridden by the plan.
_CASE_DEFAULTS: dict[str, Any] = {
    "assignee_id": None,
    "dispatched_at": None,
    "due_at": None,
    "next_escalation_at": None,
    "parent_id": None,
    "updated_at": None,
    "escalation_level": 0,
    "overdue": False,
    "rectified_at": None,
    "closed_at": None,
}


def _is_conflict(exc: BaseException) -> bool:
    """A unique key taken by a concurrent writer? Through SQLAlchemy it is an IntegrityError;
    the reports' COPY (store.bulk) runs on the raw psycopg cursor, which raises psycopg's own."""
    if isinstance(exc, IntegrityError):
        return True
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return False
    return isinstance(exc, psycopg.errors.UniqueViolation)


def _is_outage(exc: BaseException) -> bool:
    """Is this the database being away (retry later), rather than refusing the data?"""
    return is_outage(exc)


def _unplaceable(exc: Exception) -> Placement:
    err = FieldError("payload", "internal_error", f"the platform could not locate it ({exc})")
    return Placement("rejected", None, None, None, None, None, None, None, err)


def _ack_snap(snap: dict[str, Any] | None) -> dict[str, Any] | None:
    if snap is None:
        return None
    keys = (
        "distance_m",
        "confidence",
        "ambiguous",
        "chainage_m",
        "candidates",
        "reason",
        "method",
        "hint_ignored",
    )
    return {k: snap[k] for k in keys if k in snap}


def phone_labels(rows: list[dict[str, Any]], now: dt.datetime) -> list[dict[str, Any]]:
    """Issue 21: a chief's pick of a segment where the snapper was not certain is a
    labelled example (models.SnapLabel, source "phone"), beside what the snapper said."""
    out = []
    for row in rows:
        snap = row.get("snap") or {}
        if snap.get("method") != "hint" or snap.get("snapped_certain", True):
            continue
        out.append(
            {
                "report_id": row["id"],
                "source": "phone",
                "decided_at": now,
                "by": row["reporter_id"],
                "segment_id": row["segment_id"],
                "snapped_id": snap.get("snapped"),
                "confidence": snap.get("snapped_confidence"),
                "candidates": snap.get("offered", []),
                "lat": row.get("lat"),
                "lon": row.get("lon"),
                "accuracy_m": row.get("accuracy_m"),
                "heading_deg": row.get("heading_deg"),
                "category": row["category"],
            }
        )
    return out
