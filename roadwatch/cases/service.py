"""The case service as a process of its own: dispatcher and clock beside an ingest worker.

`roadwatch worker` runs it in a child process, so dispatching and escalating never take
the ingest process's one Python core (the GIL) from the acknowledgement path. It talks to
the others only through the database, the broker (notices) and, when configured, the
Socket.IO message queue (live events).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from typing import Any

log = logging.getLogger(__name__)

CASE_SERVICE_NICENESS = 10


def _serve(settings_values: dict[str, Any], ready: Any, parent_pid: int) -> None:
    from ..categories import load_categories
    from ..live.broadcast import Broadcaster
    from ..settings import load_settings
    from ..store import db
    from .calendar import load_sla
    from .clock import Scheduler
    from .dispatcher import Dispatcher
    from .outbox import Routing, publisher_for

    settings = load_settings(env={}, overrides=settings_values)
    # Phones wait for acks; nobody waits a second for a dispatch. On a busy machine the
    # ingest process gets the CPU first, and this one catches up in the gaps (the bench
    # prints how long after a burst's last ack its last case was dispatched).
    with contextlib.suppress(OSError):
        os.nice(CASE_SERVICE_NICENESS)
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )
    engine = db.engine_for(settings)
    categories = load_categories()
    sla = load_sla(categories=categories.codes)
    emitter = None
    if settings.socketio_queue:
        from flask_socketio import SocketIO

        emitter = SocketIO(message_queue=settings.socketio_queue)
    broadcaster = Broadcaster(emitter)
    routing = Routing.from_settings(settings, categories)
    outbox = publisher_for(engine, settings).start()  # the notices this process commits

    def deliver(events: list[Any], notices: list[Any]) -> None:
        broadcaster.publish(events)
        if notices:
            outbox.wake()

    dispatcher = Dispatcher(engine, sla, deliver, routing=routing)
    clock = Scheduler(engine, sla, deliver, interval=settings.case_sweep_s, routing=routing)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    clock.start()
    ready.set()
    log.info("case service: dispatching and escalating")
    while not stop.is_set():
        if os.getppid() != parent_pid:  # the worker died without stopping us: so do we
            log.warning("case service: the worker process is gone; stopping")
            break
        try:
            n = len(dispatcher.run_once())
        except Exception:
            log.exception("case service: a dispatch pass failed")
            n = 0
        if n < dispatcher.batch:
            stop.wait(0.2)  # new reports are polled: they arrive through the database
    clock.stop()
    outbox.stop()
    engine.dispose()


# Restarting a dead case process waits this long at first, doubling up to the maximum
# while it keeps dying young (a crash loop must not eat the CPU the ingest path needs);
# one that lived RESTART_RESET_S starts again from the minimum.
RESTART_MIN_S = 1.0
RESTART_MAX_S = 30.0
RESTART_RESET_S = 60.0


class CaseProcess:
    """The case service's child process, supervised: a child that dies (a crash, the OOM
    killer, a stray SIGKILL) is started again with backoff, so cases keep being dispatched
    and escalated without restarting the ingest worker. While it is down, /healthz says
    so ("case jobs"); `restarts` counts the restarts."""

    def __init__(self, settings_values: dict[str, Any]) -> None:
        self._ctx = mp.get_context("spawn")
        self._settings = settings_values
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None
        self.restarts = 0
        self.process = self._new_process()

    def _new_process(self) -> Any:
        self._ready = self._ctx.Event()
        return self._ctx.Process(
            target=_serve,
            args=(self._settings, self._ready, os.getpid()),
            name="roadwatch-cases",
            daemon=True,
        )

    def _launch(self, wait: float) -> None:
        self.process.start()
        t0 = time.monotonic()
        while not self._ready.wait(0.2):
            if not self.process.is_alive() or time.monotonic() - t0 > wait:
                raise RuntimeError("the case service process did not start")

    def start(self, wait: float = 30.0) -> None:
        self._launch(wait)
        self._supervisor = threading.Thread(
            target=self._supervise, name="case-supervisor", daemon=True
        )
        self._supervisor.start()

    @property
    def alive(self) -> bool:
        return bool(self.process.is_alive())

    def _supervise(self) -> None:
        backoff = RESTART_MIN_S
        started = time.monotonic()
        while not self._stopping.is_set():
            self.process.join(0.5)
            if self._stopping.is_set() or self.process.is_alive():
                continue
            if time.monotonic() - started >= RESTART_RESET_S:
                backoff = RESTART_MIN_S
            log.error(
                "case service: the child process exited (code %s); restarting in %.0f s",
                self.process.exitcode,
                backoff,
            )
            if self._stopping.wait(backoff):
                return
            backoff = min(backoff * 2, RESTART_MAX_S)
            self.process = self._new_process()
            started = time.monotonic()
            try:
                self._launch(30.0)
            except (RuntimeError, OSError) as exc:
                log.error("case service: restart failed (%s)", exc)
                continue
            self.restarts += 1
            log.warning("case service: restarted (pid %s)", self.process.pid)

    def stop(self) -> None:
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join(5)
            self._supervisor = None
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(10)
