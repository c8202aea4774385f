"""The one place that emits to Socket.IO, from any thread or process.

The ingest thread hands committed events over through a queue, so a slow Socket.IO
client can never hold up acknowledgements. In a process without the web app (e.g.
`roadwatch worker`) the emitter is a write-only `SocketIO(message_queue=...)`, and the
web processes subscribed to the same queue deliver to browsers.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol

log = logging.getLogger(__name__)

NAMESPACE = "/live"
# Socket.IO rooms: every viewer of the whole city joins CITY_ROOM; a district user joins
# only district_room(code). An event goes to CITY_ROOM and to its district's room, so a
# district user never receives another district's events (filtered on the server).
CITY_ROOM = "city"


def district_room(code: str) -> str:
    return f"district:{code}"


class Emitter(Protocol):
    def emit(self, event: str, *args: Any, **kwargs: Any) -> Any: ...


class Broadcaster:
    def __init__(self, emitter: Emitter | None, namespace: str = NAMESPACE) -> None:
        self.emitter = emitter
        self.namespace = namespace
        # Unbounded on purpose: a dropped live event would leave a gap that a connected
        # browser never notices (it only resyncs on reconnect). Events are small.
        self._queue: queue.Queue[list[Any] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.emitted = 0
        # Events committed and queued here but not yet emitted: the event-log lag of this
        # process's live feed (gauge roadwatch_event_log_lag_events in /metrics).
        self.pending = 0
        self._pending_lock = threading.Lock()
        # payload -> the district code it belongs to (None: only the whole-city room)
        self.district_of: Callable[[dict[str, Any]], str | None] = lambda p: p.get("district")
        # Held while emitting live events and while replaying missed ones to a client
        # (resync), so the two never interleave on one connection.
        self.lock = threading.Lock()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="broadcast", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def publish(self, events: Iterable[Any]) -> None:
        """Queue committed events (objects with .kind and .payload) for emission, in order."""
        batch = list(events)
        if not batch or self.emitter is None:
            return
        if self._thread is None:
            self._emit(batch)
            return
        with self._pending_lock:
            self.pending += len(batch)
        self._queue.put(batch)

    def rooms(self, payload: dict[str, Any]) -> list[str]:
        district = self.district_of(payload)
        return [CITY_ROOM, district_room(district)] if district else [CITY_ROOM]

    def _run(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            self._emit(batch)
            with self._pending_lock:
                self.pending -= len(batch)

    def _emit(self, batch: list[Any]) -> None:
        assert self.emitter is not None
        with self.lock:
            for ev in batch:
                try:
                    self.emitter.emit(
                        ev.kind, ev.payload, namespace=self.namespace, to=self.rooms(ev.payload)
                    )
                    self.emitted += 1
                except Exception:
                    log.exception("emitting %s failed", ev.kind)
