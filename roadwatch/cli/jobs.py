"""`roadwatch jobs`: dispatcher, case clock, weekly ranking and notice outbox (roadwatch.jobs)."""

from __future__ import annotations

import signal
import threading

import click

from .common import freeze_startup_heap, log, settings_for, setup_logging


@click.command(help="the scheduled jobs: dispatcher, case clock, weekly ranking, notice outbox")
@click.option(
    "--health-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="serve /healthz and /metrics on this port (0: any free one); none if not given",
)
@click.option("--health-host", default="127.0.0.1", show_default=True)
def jobs(health_port: int | None, health_host: str) -> int:
    settings = settings_for()
    setup_logging(settings.log_level)
    # Handlers first: a SIGTERM during start-up must still stop cleanly.
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    from ..jobs import Jobs
    from .serve import check_formula

    check_formula(settings)
    emitter = None
    if settings.socketio_queue:
        from flask_socketio import SocketIO

        emitter = SocketIO(message_queue=settings.socketio_queue)
    running = Jobs(settings, emitter=emitter).start(health_port, health_host)
    freeze_startup_heap()
    if running.server is not None:
        log.info("jobs: /healthz and /metrics on %s:%d", health_host, running.server.port)
    code = 0
    while not stop.wait(1.0):
        dead = running.dead()
        if dead:  # exit with an error: the service manager restarts the whole process
            log.error("jobs: %s stopped unexpectedly; exiting", ", ".join(dead))
            code = 1
            break
    running.stop()
    return code
