"""Socket.IO namespace /live: live events and resync from the event log (CONTRACT.md 2)."""

from __future__ import annotations

import logging
from typing import Any

from flask import request
from flask_socketio import SocketIO, emit
from sqlalchemy import func, select

from .. import models
from ..broadcast import NAMESPACE
from ..runtime import Runtime

log = logging.getLogger(__name__)
RESYNC_PAGE = 2000
RESYNC_MAX = 50_000  # beyond this a client is better off reloading the snapshot


def register(socketio: SocketIO, runtime: Runtime) -> None:
    @socketio.on("connect", namespace=NAMESPACE)
    def _connect(auth: Any = None) -> None:
        log.debug("live: client %s connected", request.sid)  # type: ignore[attr-defined]

    @socketio.on("resync", namespace=NAMESPACE)
    def _resync(data: Any = None) -> dict[str, Any]:
        since = data.get("since") if isinstance(data, dict) else None
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            log.info("live: ignored a resync with a bad 'since': %r", since)
            return {"ok": False, "error": "since must be a non-negative integer"}
        ev = models.Event
        with runtime.sessions() as session:
            latest = session.scalar(select(func.max(ev.seq))) or 0
            if latest - since > RESYNC_MAX:
                return {"ok": False, "error": "too far behind; reload", "seq": latest}
            sent = since
            # Hold the broadcaster's lock: no live event may slip in between replayed ones.
            with runtime.broadcaster.lock:
                while True:
                    rows = session.execute(
                        select(ev.seq, ev.kind, ev.payload)
                        .where(ev.seq > sent)
                        .order_by(ev.seq)
                        .limit(RESYNC_PAGE)
                    ).all()
                    for seq, kind, payload in rows:
                        emit(kind, {**payload, "seq": seq})
                        sent = seq
                    if len(rows) < RESYNC_PAGE:
                        break
        return {"ok": True, "seq": sent}

    @socketio.on_error(NAMESPACE)
    def _error(exc: Exception) -> None:
        log.warning("live: a client message failed: %s", exc)
