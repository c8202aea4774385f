"""Registering reporters who answer for no segment: third-party evaluators (第三方测评) and
covert checkers (暗访), whose findings the weekly ranking weighs more (formula [sources]).

Road chiefs, partner units and merchants come in with their assignments (`chiefs import`);
this is for everyone else. A reporter's kind is read when a week is ranked, so registering
an evaluator late still counts their earlier findings of an unpublished week as theirs.

Who may report at all (issue 15): a *known* reporter is a row of `reporters` (a chief or
partner unit or merchant from the network or `chiefs import`, an evaluator, covert checker
or person from `reporters add`, a city system from `apikeys add --system`) that is not
disabled (`reporters disable`, or its phone account disabled), plus the city systems that
post through Open311 (`open311-{owner}` of the setting open311_api_keys). Every transport
refuses the others (`ReporterDirectory`, read from a cached set, never a query per message).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from ..ingest.payloads import REPORTER_ID
from ..store import models

# `system`: a city system filing over HTTP with its API key (`apikeys add --system NAME`).
KINDS = ("person", "unit", "merchant", "evaluator", "covert", "system")
MAX_ID = 64


class ReporterError(ValueError):
    """A request that cannot be done; the message says why in plain words."""


@dataclass(frozen=True)
class Saved:
    id: str
    kind: str
    created: bool
    previous_kind: str | None  # when an existing reporter changed kind


def save_reporter(session: Session, rid: str, kind: str, name: str | None = None) -> Saved:
    rid = rid.strip()
    # The rule a report's reporter_id must meet: an id no report may carry is of no use.
    if len(rid) > MAX_ID or not REPORTER_ID.match(rid):
        raise ReporterError(
            f"a reporter id is 1 to {MAX_ID} letters, digits, '.', '_' or '-' "
            f"(its reports' reporter_id and its MQTT topic level), not {rid!r}"
        )
    if kind not in KINDS:
        raise ReporterError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    person = session.get(models.Reporter, rid)
    if person is None:
        session.add(models.Reporter(id=rid, name=(name or rid)[:100], kind=kind))
        return Saved(rid, kind, True, None)
    before = person.kind
    person.kind = kind
    if name:
        person.name = name[:100]
    return Saved(rid, kind, False, before if before != kind else None)


def list_reporters(session: Session, kind: str | None = None) -> list[models.Reporter]:
    q = select(models.Reporter).order_by(models.Reporter.id)
    if kind:
        q = q.where(models.Reporter.kind == kind)
    return list(session.scalars(q))


def set_disabled(session: Session, rid: str, disabled: bool) -> bool:
    """Disable (or enable again) a reporter; False if there is no such reporter."""
    done = session.execute(
        update(models.Reporter).where(models.Reporter.id == rid).values(disabled=disabled)
    )
    return bool(getattr(done, "rowcount", 0))


# -- who may report ---------------------------------------------------------------------
KNOWN, UNKNOWN, DISABLED = "known", "unknown", "disabled"


class ReporterDirectory:
    """Which reporter ids may report: a set held in memory, reloaded from the database every
    `ttl_s` seconds, and at most every `miss_reload_s` when an id it does not hold shows up
    (a reporter registered a moment ago is let in within that time). Thread-safe.

    A reload is one query over `reporters` (2,194 rows in the demo city: about 5 ms);
    a lookup is a dict access.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session] | Callable[[], Session],
        *,
        ttl_s: float = 30.0,
        miss_reload_s: float = 1.0,
        extra: Iterable[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sessions = sessions
        self.ttl_s = ttl_s
        self.miss_reload_s = miss_reload_s
        self.extra = frozenset(extra)  # always known (Open311's city systems)
        self.clock = clock
        self._status: dict[str, bool] = {}  # id -> disabled
        self._loaded_at: float | None = None
        self._lock = threading.Lock()

    def reload(self) -> None:
        r, a = models.Reporter, models.ChiefAccount
        q = select(r.id, r.disabled, a.disabled).outerjoin(a, a.reporter_id == r.id)
        with self.sessions() as session:
            rows = session.execute(q).all()
        status = {rid: bool(off) or bool(acc_off) for rid, off, acc_off in rows}
        with self._lock:
            self._status = status
            self._loaded_at = self.clock()

    def refresh(self, ids: Iterable[str | None] = (), verified: Iterable[str] = ()) -> None:
        """Reload when the set is older than ttl_s, or when one of `ids` is not in it and the
        last reload is older than miss_reload_s, or at once when one of `verified` (ids an
        API key or a sign-in vouched for: a miss there is real news, never a flood) is not
        in it. Called once per batch, before any lookup; a database error propagates (the
        transport retries the batch)."""
        now = self.clock()
        loaded = self._loaded_at
        status, extra = self._status, self.extra
        if (
            loaded is None
            or now - loaded >= self.ttl_s
            or any(rid not in status and rid not in extra for rid in verified)
            or now - loaded >= self.miss_reload_s
            and any(rid and rid not in status and rid not in extra for rid in ids)
        ):
            self.reload()

    def status(self, rid: str) -> str:
        """KNOWN, UNKNOWN or DISABLED, from the set as last loaded (never a query)."""
        if rid in self.extra:
            return KNOWN
        disabled = self._status.get(rid)
        if disabled is None:
            return UNKNOWN
        return DISABLED if disabled else KNOWN
