"""Socket.IO namespace /live: live events and resync from the event log (docs/protocol.md 5).

Only logged-in staff may connect (the Flask session cookie of the handshake, or a staff
account's name and password in the handshake's `auth` or HTTP Basic header); a district
user joins their district's room only, and a resync replays only that district's events.
Anything else a client sends (unknown events, wrong types, floods) is ignored and logged,
and never affects the other viewers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import socketio
from flask import request, session
from flask_socketio import ConnectionRefusedError as Refused
from flask_socketio import SocketIO, emit, join_room
from sqlalchemy import func, select

from ..accounts.users import StaffUser
from ..live.broadcast import CITY_ROOM, NAMESPACE, district_room
from ..runtime import Runtime
from ..store import models
from .auth import TooManyAttempts, basic_credentials, session_login, user_with_password

log = logging.getLogger(__name__)
RESYNC_PAGE = 2000
RESYNC_MAX = 50_000  # beyond this a client is better off reloading the snapshot
# A client needs one resync per connection; more than this in RESYNC_WINDOW_S is abuse.
RESYNC_BURST, RESYNC_WINDOW_S = 5, 10.0
LOG_EVERY_S = 10.0  # at most one warning per client in this time (a flood must not fill logs)


class _Viewers:
    """Who is connected (sid -> user), their recent resyncs, and log throttling."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users: dict[str, StaffUser] = {}
        self.logins: dict[str, str] = {}  # sid -> the login token it connected with
        self.resyncs: dict[str, list[float]] = {}
        self.last_log: dict[str, float] = {}
        self.ignored = 0

    def add(self, sid: str, user: StaffUser, login: str | None = None) -> None:
        with self.lock:
            self.users[sid] = user
            if login:
                self.logins[sid] = login

    def of_login(self, login: str) -> list[str]:
        """The connections opened with this login cookie (to close them at logout)."""
        with self.lock:
            return [sid for sid, token in self.logins.items() if token == login]

    def of_user(self, user_id: int) -> list[str]:
        """The connections of this account, whatever login opened them (to close them when
        an administrator disables it or changes its role, district or password)."""
        with self.lock:
            return [sid for sid, user in self.users.items() if user.id == user_id]

    def drop(self, sid: str) -> None:
        with self.lock:
            self.users.pop(sid, None)
            self.logins.pop(sid, None)
            self.resyncs.pop(sid, None)
            self.last_log.pop(sid, None)

    def allow_resync(self, sid: str) -> bool:
        now = time.monotonic()
        with self.lock:
            recent = [t for t in self.resyncs.get(sid, []) if now - t < RESYNC_WINDOW_S]
            ok = len(recent) < RESYNC_BURST
            if ok:
                recent.append(now)
            self.resyncs[sid] = recent
            return ok

    def ignore(self, sid: str, what: str, detail: Any) -> None:
        """Count and (throttled per client) log a message that was not acted on."""
        now = time.monotonic()
        with self.lock:
            self.ignored += 1
            if now - self.last_log.get(sid, -LOG_EVERY_S) < LOG_EVERY_S:
                return
            self.last_log[sid] = now
            user = self.users.get(sid)
        text = repr(detail)
        log.warning(
            "live: ignored %s from client %s (%s): %s",
            what,
            sid,
            user.username if user else "?",
            text[:200] + ("…" if len(text) > 200 else ""),
        )


class _ClosedByClient(logging.Filter):
    """A client that hangs up while the server writes to it (e.g. one refused at connect)
    is no server error: werkzeug's development server logs it with two tracebacks. Say it
    in one line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        while exc is not None:
            if type(exc).__name__ == "ConnectionClosed":
                log.info("live: a client closed its connection while being written to")
                return False
            exc = exc.__context__
        # werkzeug's request handler logs an unhandled error as rendered text, without
        # exc_info (e.g. a client that hangs up during the WebSocket upgrade's probe)
        if (
            record.exc_info is None
            and isinstance(record.msg, str)
            and "Error on request" in (record.msg)
        ):
            text = record.getMessage()
            if "simple_websocket.errors.ConnectionClosed" in text:
                log.info("live: a client closed its connection while being written to")
                return False
        return True


def _replay_filter(user: StaffUser, district_of: Callable[[dict[str, Any]], str | None]) -> Any:
    district = user.sees_district
    if district is None:
        return lambda _payload: True
    return lambda payload: district_of(payload) == district


def register(socketio: SocketIO, runtime: Runtime) -> _Viewers:
    """Wire the /live namespace; returns its viewers (the app keeps them: logout closes
    the connections opened with its login)."""
    viewers = _Viewers()
    werkzeug_log = logging.getLogger("werkzeug")
    if not any(isinstance(f, _ClosedByClient) for f in werkzeug_log.filters):
        werkzeug_log.addFilter(_ClosedByClient())

    def sid() -> str:
        return str(request.sid)  # type: ignore[attr-defined]

    def _password_user(auth: Any) -> StaffUser | None:
        if isinstance(auth, dict) and isinstance(auth.get("username"), str):
            # a script's client: socketio.Client().connect(..., auth={"username", "password"})
            password = auth.get("password")
            if isinstance(password, str):
                return user_with_password(runtime.sessions, auth["username"][:64], password)
        elif (creds := basic_credentials()) is not None:
            return user_with_password(runtime.sessions, *creds)
        return None

    @socketio.on("connect")
    def _default_namespace(auth: Any = None) -> None:
        # Nothing is served on Socket.IO's default namespace, and an accepted connection
        # there (anyone's, without a login) only holds a socket open: refuse it.
        raise Refused(f"the live feed is the {NAMESPACE} namespace, and it needs a login")

    @socketio.on("connect", namespace=NAMESPACE)
    def _connect(auth: Any = None) -> None:
        user, token = None, None
        if "sid" in session:
            # the login cookie, checked against the server-side sessions (logout ends it)
            user = session_login()
            token = session.get("sid")
        else:
            try:
                user = _password_user(auth)
            except TooManyAttempts as exc:
                raise Refused(str(exc)) from None
        if user is None:
            log.info("live: refused a connection without a login from %s", request.remote_addr)
            raise Refused("login required")
        viewers.add(sid(), user, token if isinstance(token, str) else None)
        district = user.sees_district
        # None is the whole city; "" (a district account without a district) is no
        # district's room, so it receives nothing (it fails closed, as its reads do)
        join_room(CITY_ROOM if district is None else district_room(district))
        log.debug("live: %s connected as %s", sid(), user.username)

    @socketio.on("disconnect", namespace=NAMESPACE)
    def _disconnect(*_: Any) -> None:
        viewers.drop(sid())

    @socketio.on("resync", namespace=NAMESPACE)
    def _resync(data: Any = None) -> dict[str, Any]:
        since = data.get("since") if isinstance(data, dict) else None
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            viewers.ignore(sid(), "a resync with a bad 'since'", data)
            return {"ok": False, "error": "since must be a non-negative integer"}
        if not viewers.allow_resync(sid()):
            viewers.ignore(sid(), "a resync flood", data)
            return {"ok": False, "error": "too many resyncs; wait a few seconds"}
        user = viewers.users.get(sid())
        if user is None:  # cannot happen after a refused connect; be safe anyway
            return {"ok": False, "error": "login required"}
        wanted = _replay_filter(user, runtime.broadcaster.district_of)
        ev = models.Event
        with runtime.sessions() as db:
            latest = db.scalar(select(func.max(ev.seq))) or 0
            if since > latest:
                # Not this log's seq (another server's, a wiped database): the client would
                # believe it is ahead and drop what comes next. It must reload the snapshot.
                viewers.ignore(sid(), "a resync from beyond the event log", data)
                return {
                    "ok": False,
                    "error": f"since is ahead of the event log (its newest seq is {latest}); "
                    "reload the snapshot",
                    "seq": latest,
                }
            if latest - since > RESYNC_MAX:
                return {"ok": False, "error": "too far behind; reload", "seq": latest}
            sent = since
            # Hold the broadcaster's lock: no live event may slip in between replayed ones.
            with runtime.broadcaster.lock:
                while True:
                    rows = db.execute(
                        select(ev.seq, ev.kind, ev.payload)
                        .where(ev.seq > sent)
                        .order_by(ev.seq)
                        .limit(RESYNC_PAGE)
                    ).all()
                    for seq, kind, payload in rows:
                        if wanted(payload):
                            emit(kind, {**payload, "seq": seq})
                        sent = seq
                    if len(rows) < RESYNC_PAGE:
                        break
        return {"ok": True, "seq": sent}

    # Every other event a client may send: none is expected.
    @socketio.on("*", namespace=NAMESPACE)
    def _unknown(event: Any, *args: Any) -> None:
        viewers.ignore(sid(), f"an unknown event {str(event)[:40]!r}", args)

    @socketio.on_error(NAMESPACE)
    def _error(exc: Exception) -> None:
        viewers.ignore(sid(), "a message that failed", exc)

    return viewers


# The event that tells a browser to resync now, without a reconnect (docs/protocol.md 5).
RESYNC_NEEDED = "resync_needed"


class ResyncingRedisManager(socketio.RedisManager):
    """The Redis message queue of a web process, which tells its browsers to resync when
    the queue comes back after an outage.

    While Redis is down (restarted, failed over), what other processes emit through it is
    lost: python-socketio drops a message it cannot publish, and this process's listener
    hears nothing until it has subscribed again. The events are in the event log, so the
    browsers of this process are told `resync_needed` the moment the listener has
    subscribed again, before any message from the new subscription is handed on (one
    thread does both, in that order): each browser then resyncs from the last seq it has
    and holds back the live events until the replay is in, so nothing shown is missing and
    nothing is shown twice.

    The listening loop is python-socketio's `_redis_listen_with_retries` (5.x) with that
    one step added; the emit skips the queue (`ignore_queue`): this process's clients only.
    """

    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(url, channel="flask-socketio", **kwargs)
        self.resubscribed = 0

    def _redis_listen_with_retries(self) -> Any:
        retry_sleep = 1
        lost = False
        while True:
            try:
                self._redis_connect()
                self.pubsub.subscribe(self.channel)
                retry_sleep = 1
                if lost:
                    lost = False
                    self.resubscribed += 1
                    log.warning("Socket.IO queue: Redis is back; the browsers resync")
                    self.emit(RESYNC_NEEDED, {}, namespace=NAMESPACE, ignore_queue=True)
                yield from self.pubsub.listen()
            except Exception as exc:
                lost = True
                log.error("Socket.IO queue: Redis lost (%s); retrying in %d s", exc, retry_sleep)
                time.sleep(retry_sleep)
                retry_sleep = min(retry_sleep * 2, 8)
