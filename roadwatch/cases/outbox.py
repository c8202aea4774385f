"""The notice outbox: notices are rows written with the case change, then published.

A case change (dispatch, overdue, escalation, reopened…) and the notices it causes commit
together: `enqueue` writes one `notice_outbox` row per notice and channel in the caller's
transaction, each with a fresh `notice_id` (a UUID) that is also put in the payload. The
`OutboxPublisher` (a thread of `roadwatch serve` and of `roadwatch jobs`) then sends the
pending rows through the channel's notifier (roadwatch.cases.notifiers) and marks a row
sent only once the notifier confirms it (MQTT: the broker's PUBACK; a webhook: its 2xx).

Guarantees (tests/test_outbox.py):
* a crash between commit and publish loses nothing: the row is still pending;
* SIGTERM finishes the rows in flight, marks them and stops: none is sent twice;
* SIGKILL may send again the rows that were in flight (claimed, not yet marked): receivers
  drop a repeated `notice_id`;
* a database outage repeats none: a row confirmed while the database cannot be written is
  kept as confirmed in memory and marked once it is back, never claimed and sent again.

Several publishers (two `jobs` processes, or `serve` beside `jobs`) never send one row at
the same time: a pass claims its rows with a lease (`next_attempt_at` moved `LEASE` ahead;
on PostgreSQL with SKIP LOCKED), and a row whose lease runs out (its publisher died) is
taken again. A failed send is retried with exponential backoff, for ever (the backlog and
the oldest pending age are health checks and gauges of `roadwatch jobs`).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, Table, and_, func, select, tuple_, update
from sqlalchemy.orm import Session

from ..store import models
from ..store.db import log_failed_pass
from .notices import names_from_db, with_text
from .notifiers import Delivery, Notifier, OutboxItem
from .workflow import Notice

log = logging.getLogger(__name__)

OUTBOX: Table = models.NoticeOutbox.__table__  # type: ignore[assignment]
LEASE = dt.timedelta(seconds=10)  # a claimed row is another publisher's again after this
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 300.0
# A send still unconfirmed after this (a PUBACK lost with its connection) counts as failed
# and is sent again: a repeat the receiver drops, never a notice lost.
UNCONFIRMED_S = 60.0


@dataclass(frozen=True)
class Routing:
    """Which channels a notice goes out on. Every notice goes to the person's MQTT topic
    (the phone app); a webhook too when a URL is configured for the person's district or
    for all (`notify_webhook_url`, `notify_webhook_district_urls`)."""

    channels: tuple[str, ...] = ("mqtt",)
    webhook_url: str = ""
    webhook_by_district: Mapping[str, str] = field(default_factory=dict)
    # The words of a notice (cases/notices.py): category code -> (Chinese, English) names,
    # and the city's time zone for its deadline; the shipped categories when not given.
    words: Mapping[str, tuple[str, str]] | None = None
    tz: dt.tzinfo | None = None

    @classmethod
    def from_settings(cls, settings: Any, categories: Any = None) -> Routing:
        """The routing of `settings`; `categories` (categories.Categories) name the
        problems in the notices' words, the shipped ones when not given."""
        words = (
            None
            if categories is None
            else {c.code: (c.name, c.name_en) for c in categories.by_code.values()}
        )
        return cls(
            webhook_url=settings.notify_webhook_url,
            webhook_by_district=settings.notify_webhook_urls_by_district,
            words=words,
            tz=settings.tz,
        )

    def category_words(self) -> Mapping[str, tuple[str, str]]:
        return self.words if self.words is not None else _shipped_category_words()

    @property
    def webhooks(self) -> bool:
        return bool(self.webhook_url or self.webhook_by_district)

    def webhook_for(self, district: str | None) -> str | None:
        return self.webhook_by_district.get(district or "") or self.webhook_url or None

    def channels_for(self, district: str | None) -> list[str]:
        out = list(self.channels)
        if self.webhook_for(district):
            out.append("webhook")
        return out


@functools.cache
def _shipped_category_words() -> Mapping[str, tuple[str, str]]:
    from ..categories import load_categories

    return {c.code: (c.name, c.name_en) for c in load_categories().by_code.values()}


MQTT_ONLY = Routing()
# Nobody to tell: the demo seed replays weeks of history, whose notices are never sent.
NOBODY = Routing(channels=())


def enqueue(
    session: Connection | Session, notices: Iterable[Notice], now: dt.datetime, routing: Routing
) -> int:
    """Write the notices as outbox rows in the caller's transaction; returns rows written."""
    notices = list(notices)
    if not notices or not (routing.channels or routing.webhooks):
        return 0
    conn = session.connection() if isinstance(session, Session) else session
    # The people's words (message, message_en) are written with the row, from the same
    # transaction's segment names, so every channel and every retry says the same.
    tz = routing.tz or dt.UTC
    notices = with_text(notices, routing.category_words(), names_from_db(conn), tz)
    districts: dict[str, str | None] = {}
    if routing.webhook_by_district:
        rep = models.Reporter.__table__.c
        people = sorted({n.person_id for n in notices})
        districts = {
            r.id: r.district
            for r in conn.execute(select(rep.id, rep.district).where(rep.id.in_(people)))
        }
    rows = []
    for n in notices:
        notice_id = str(uuid.uuid4())
        district = districts.get(n.person_id)
        for channel in routing.channels_for(district):
            rows.append(
                {
                    "notice_id": notice_id,
                    "channel": channel,
                    "person_id": n.person_id,
                    "district": district,
                    "body": {**n.body, "notice_id": notice_id},
                    "created_at": now,
                    "attempts": 0,
                    "next_attempt_at": now,
                }
            )
    if rows:
        conn.execute(OUTBOX.insert(), rows)
    return len(rows)


def backoff(attempts: int) -> dt.timedelta:
    """How long after its `attempts`-th failure a row is tried again (1 s, 2 s, 4 s… 5 min)."""
    return dt.timedelta(seconds=min(BACKOFF_FIRST_S * 2 ** max(attempts - 1, 0), BACKOFF_MAX_S))


@dataclass(frozen=True)
class Backlog:
    pending: int
    oldest_age_s: float  # 0 when nothing is pending


def backlog(engine: Engine, now: dt.datetime | None = None) -> Backlog:
    o = OUTBOX.c
    with engine.connect() as conn:
        n, oldest = conn.execute(
            select(func.count(), func.min(o.created_at)).where(o.sent_at.is_(None))
        ).one()
    if oldest is None:
        return Backlog(int(n), 0.0)
    oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=dt.UTC)
    return Backlog(int(n), max(((now or models.utcnow()) - oldest).total_seconds(), 0.0))


@dataclass
class _InFlight:
    item: OutboxItem
    delivery: Delivery
    attempts: int
    since: float = field(default_factory=time.monotonic)


class OutboxPublisher:
    """Sends pending outbox rows through the notifiers, one pass at a time, in a thread."""

    def __init__(
        self,
        engine: Engine,
        notifiers: Iterable[Notifier],
        *,
        batch: int = 200,
        poll_s: float = 1.0,
        ack_wait_s: float = 2.0,
        stop_wait_s: float = 10.0,
        clock: Callable[[], dt.datetime] = models.utcnow,
    ) -> None:
        self.engine = engine
        self.notifiers = {n.channel: n for n in notifiers}
        self.batch, self.poll_s, self.clock = batch, poll_s, clock
        self.ack_wait_s, self.stop_wait_s = ack_wait_s, stop_wait_s
        self.sent = 0  # rows marked sent by this publisher (tests, logs)
        self._inflight: dict[tuple[str, str], _InFlight] = {}
        # Confirmed by the notifier, not yet marked sent: the marking failed (the database
        # restarting). Their lease runs out meanwhile, so without this set the next pass
        # would claim and send them again (measured in tests/test_outbox.py: every row of
        # a pass whose marking failed arrived twice).
        self._confirmed: set[tuple[str, str]] = set()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one pass at a time

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> OutboxPublisher:
        for n in self.notifiers.values():
            n.start()
        self._thread = threading.Thread(target=self._run, name="outbox", daemon=True)
        self._thread.start()
        return self

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Stop taking rows, finish the ones in flight (marked sent or failed), disconnect."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(self.stop_wait_s + 5)
            self._thread = None
        for n in self.notifiers.values():
            n.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                n = self.run_once()
            except Exception as exc:
                log_failed_pass(log, "outbox: a pass", exc, "retrying")
                n = 0
            if n < self.batch:
                self._wake.wait(self.poll_s)  # rows of other processes are polled for
                self._wake.clear()
        try:
            self._settle(self.stop_wait_s)
        except Exception:
            log.exception("outbox: could not mark the notices in flight at stop")
        if self._inflight or self._confirmed:
            log.warning(
                "outbox: %d notices unconfirmed and %d confirmed but not marked at stop; "
                "sent again after %s",
                len(self._inflight),
                len(self._confirmed),
                LEASE,
            )

    # -- one pass -------------------------------------------------------------------
    def run_once(self) -> int:
        """Claim due rows, send them, wait a little for confirmations and mark them."""
        with self._lock:
            self._mark_confirmed()  # first: a failure here claims nothing
            rows = self._claim()
            # Slow sends (a webhook answering in seconds) must not outlive the lease, or
            # another publisher would take these rows too: stop at half of it and give
            # the rest back at once.
            deadline = time.monotonic() + LEASE.total_seconds() / 2
            for i, row in enumerate(rows):
                if time.monotonic() > deadline:
                    self._release(rows[i:])
                    break
                key = (row.notice_id, row.channel)
                if key in self._inflight or key in self._confirmed:
                    continue  # still waiting for its confirmation: never sent twice by us
                notifier = self.notifiers.get(row.channel)
                if notifier is None:
                    self._failed([(row, row.attempts)], f"no notifier for {row.channel!r}")
                    continue
                self._inflight[key] = _InFlight(row, notifier.send(row), row.attempts)
            self._settle(self.ack_wait_s)
            return len(rows)

    def _claim(self) -> list[OutboxItem]:
        o = OUTBOX.c
        now = self.clock()
        with self.engine.begin() as conn:
            q = (
                select(o.notice_id, o.channel)
                .where(o.sent_at.is_(None), o.next_attempt_at <= now)
                .order_by(o.next_attempt_at)
                .limit(self.batch)
            )
            if conn.dialect.name == "postgresql":
                q = q.with_for_update(skip_locked=True)  # another publisher takes other rows
            keys = [(k.notice_id, k.channel) for k in conn.execute(q)]
            if not keys:
                return []
            claimed = conn.execute(
                update(OUTBOX)
                .where(
                    tuple_(o.notice_id, o.channel).in_(keys),
                    # again: on SQLite (no row locks) another publisher may have taken one
                    o.sent_at.is_(None),
                    o.next_attempt_at <= now,
                )
                .values(attempts=o.attempts + 1, next_attempt_at=now + LEASE)
                .returning(o.notice_id, o.channel, o.person_id, o.district, o.body, o.attempts)
            ).all()
        return [
            OutboxItem(r.notice_id, r.channel, r.person_id, r.district, r.body, r.attempts)
            for r in claimed
        ]

    def _release(self, items: list[OutboxItem]) -> None:
        keys = [(i.notice_id, i.channel) for i in items]
        keys = [k for k in keys if k not in self._inflight and k not in self._confirmed]
        if not keys:
            return
        o = OUTBOX.c
        with self.engine.begin() as conn:
            conn.execute(
                update(OUTBOX)
                .where(tuple_(o.notice_id, o.channel).in_(keys), o.sent_at.is_(None))
                .values(next_attempt_at=self.clock(), attempts=o.attempts - 1)
            )

    def _settle(self, wait_s: float) -> None:
        """Wait up to wait_s for the rows in flight; mark the confirmed and the failed."""
        deadline = time.monotonic() + wait_s
        while self._inflight and time.monotonic() < deadline:
            if all(f.delivery.done() for f in self._inflight.values()):
                break
            time.sleep(0.01)
        done, failed = [], []
        now = time.monotonic()
        for key, f in list(self._inflight.items()):
            if not f.delivery.done():
                if now - f.since > UNCONFIRMED_S:
                    del self._inflight[key]
                    failed.append((f.item, f.attempts, "no confirmation"))
                continue
            del self._inflight[key]
            if f.delivery.error is None:
                done.append(key)
            else:
                failed.append((f.item, f.attempts, f.delivery.error))
        self._confirmed.update(done)
        self._mark_confirmed()
        by_error: dict[str, list[tuple[OutboxItem, int]]] = {}
        for item, attempts, error in failed:
            by_error.setdefault(error, []).append((item, attempts))
        for error, items in by_error.items():
            self._failed(items, error)

    def _mark_confirmed(self) -> None:
        """Mark the confirmed rows sent; on failure they stay in `_confirmed` for the next
        pass (the error goes up: the pass fails and is retried)."""
        if not self._confirmed:
            return
        o = OUTBOX.c
        keys = sorted(self._confirmed)
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    update(OUTBOX)
                    .where(tuple_(o.notice_id, o.channel).in_(keys))
                    .values(sent_at=self.clock(), last_error=None)
                )
        except Exception:
            log.warning(
                "outbox: %d notices confirmed, not yet marked sent; marked on a later pass, "
                "not sent again",
                len(keys),
            )
            raise
        self._confirmed.difference_update(keys)
        self.sent += len(keys)

    def _failed(self, items: list[tuple[OutboxItem, int]], error: str) -> None:
        o = OUTBOX.c
        now = self.clock()
        log.warning("outbox: %d notices not sent (%s); retried with backoff", len(items), error)
        with self.engine.begin() as conn:
            for item, attempts in items:
                conn.execute(
                    update(OUTBOX)
                    .where(and_(o.notice_id == item.notice_id, o.channel == item.channel))
                    .values(next_attempt_at=now + backoff(attempts), last_error=error[:300])
                )


def publisher_for(engine: Engine, settings: Any, **kw: Any) -> OutboxPublisher:
    """The publisher with the notifiers the settings ask for (MQTT always; webhooks when a
    URL is configured)."""
    from .notifiers import MqttNotifier, WebhookNotifier

    routing = Routing.from_settings(settings)
    notifiers: list[Notifier] = [MqttNotifier.from_settings(settings)]
    if routing.webhooks:
        notifiers.append(WebhookNotifier(routing.webhook_for, settings.notify_webhook_format))
    return OutboxPublisher(engine, notifiers, **kw)
