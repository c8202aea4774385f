"""`roadwatch serve` (everything in one process) and `roadwatch worker` (MQTT ingest only:
the case jobs and the weekly ranking run in `roadwatch jobs`)."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import click

from ..settings import Settings, SettingsError, redact_url
from .common import Positive, freeze_startup_heap, log, settings_for, setup_logging


def check_listen(settings: Settings) -> None:
    """Can serve listen where it is told to? Checked before anything starts: a second
    `serve` by mistake must not take the running platform's MQTT session and then fail."""
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(settings.host, settings.port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise SettingsError(
            f"ROADWATCH_HOST: cannot listen on {settings.host!r} ({exc.strerror or exc})"
        ) from None
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does
        try:
            probe.bind(address)
        except OSError as exc:
            where = f"{settings.host}:{settings.port}"
            if exc.errno == errno.EADDRINUSE:
                raise SettingsError(
                    f"ROADWATCH_PORT: cannot listen on {where}: the port is in use by another "
                    "program (another roadwatch serve?); stop it or choose another port"
                ) from None
            name = "ROADWATCH_PORT" if exc.errno == errno.EACCES else "ROADWATCH_HOST"
            raise SettingsError(
                f"{name}: cannot listen on {where} ({exc.strerror or exc})"
            ) from None


def check_photo_dir(settings: Settings) -> None:
    folder = Path(settings.photo_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".probe-{time.monotonic_ns()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise SettingsError(
            f"ROADWATCH_PHOTO_DIR: cannot store photos in {folder} ({exc.strerror or exc})"
        ) from None


def check_formula(settings: Settings) -> None:
    """The ranking schedule loads the formula in a thread: a bad file must stop start-up."""
    if not settings.ranking_formula:
        return
    from ..categories import load_categories
    from ..ranking.formula import FormulaError, load_formula

    try:
        load_formula(settings.ranking_formula, load_categories().codes)
    except FormulaError as exc:
        raise SettingsError(f"ROADWATCH_RANKING_FORMULA: {exc}") from None


# The simulated chiefs log in anonymously: their passwords exist only as hashes, and the
# platform's own login may not publish reports (the ACL). Rather than minting credentials
# behind the operator's back, the simulator is not started, in one line (issue 20).
NO_SIMULATOR = (
    "simulator not started: the broker at %s:%d does not let simulated chiefs in (%s); "
    "run --simulate against a broker that allows anonymous logins (a demo broker)"
)


@click.command(help="everything in one process (web, live feed, MQTT ingest)")
@click.option("--host")
@click.option("--port", type=int)
@click.option(
    "--simulate", type=int, metavar="N", default=0, help="also run N simulated road chiefs"
)
@click.option(
    "--rate",
    type=Positive(float),
    default=5.0,
    show_default=True,
    help="simulated reports per second",
)
def serve(host: str | None, port: int | None, simulate: int, rate: float) -> int:
    settings = settings_for(host=host, port=port)
    setup_logging(settings.log_level)
    check_photo_dir(settings)
    check_formula(settings)
    from ..recurrence.stored import refresher_for
    from ..runtime import Runtime
    from ..web import create_app

    t0 = time.perf_counter()
    runtime = Runtime.build(settings)
    try:
        check_listen(settings)  # before the MQTT session is taken
    except SettingsError:
        runtime.engine.dispose()
        raise
    app, socketio = create_app(runtime)
    runtime.broadcaster.emitter = socketio  # this process's browsers get the live events
    try:
        runtime.start_ingest()
    except SettingsError:
        runtime.stop()
        raise
    runtime.start_ranking()
    runtime.check_phone_broker()  # say so now if phones cannot reach the broker's WebSocket
    leaders = refresher_for(settings, runtime.engine, lambda: runtime.ctx.network)
    if leaders is not None:  # the leaders' weekly analysis, in the background
        leaders.start()
    sim_thread = None
    if simulate:
        from ..accounts.reporters import KNOWN
        from ..demo.lifecycle import for_runtime
        from ..simulate import Simulator

        # The simulated chiefs are the network's road chiefs, registered reporters that the
        # pipeline lets in (a disabled one is left out): real identities, as on phones.
        directory = runtime.pipeline.reporters
        directory.reload()
        sim = Simulator(
            runtime.ctx.network,
            runtime.categories,
            host=settings.mqtt_host,
            port=settings.mqtt_port,
            topic_root=settings.mqtt_topic_root,
            chiefs=simulate,
            rate=rate,
            may_report=lambda rid: directory.status(rid) == KNOWN,
            lifecycle=for_runtime(runtime, lambda rid: directory.status(rid) == KNOWN),
        )
        refused = sim.login_refused()
        if refused:
            log.error(NO_SIMULATOR, settings.mqtt_host, settings.mqtt_port, refused)
        else:
            sim_thread = threading.Thread(
                target=sim.run, kwargs={"progress": None}, name="simulator", daemon=True
            )
            sim_thread.start()
            log.info("simulator: %d road chiefs, %.1f reports/s", simulate, rate)
    from ..accounts.users import first_admin

    first_admin(runtime)
    log.info(
        "roadwatch ready in %.1f s: http://%s:%d/  (database %s)",
        time.perf_counter() - t0,
        settings.host,
        settings.port,
        redact_url(settings.database_url),
    )
    try:
        # SIGTERM (systemd, docker stop, a supervisor) stops as Ctrl-C does: the server
        # returns, then ingest, the case jobs and the notices in flight are finished below.
        # Without it Python's default ended the process at once (exit 143, nothing settled).
        signal.signal(signal.SIGTERM, _stop_serving)
        socketio.run(
            app,
            host=settings.host,
            port=settings.port,
            allow_unsafe_werkzeug=True,
            use_reloader=False,
            log_output=False,
        )
    except _Stopped:
        pass
    finally:
        log.info("stopping: ingest, case jobs, notices in flight")
        runtime.stop()
        log.info("stopped")
    return 0


class _Stopped(Exception):
    """SIGTERM while `serve` serves: leave the web server's loop, then stop the runtime."""


def _stop_serving(*_: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one stop: a second SIGTERM waits for it
    raise _Stopped


@click.command(help="MQTT ingest only (live events via ROADWATCH_SOCKETIO_QUEUE)")
@click.option(
    "--instance",
    help="this worker's name, unique among the workers (its MQTT session); "
    "default ROADWATCH_WORKER_INSTANCE",
)
@click.option(
    "--health-port",
    type=int,
    help="serve /healthz and /metrics on this loopback port (0: none); "
    "default ROADWATCH_WORKER_HEALTH_PORT",
)
@click.option(
    "--drain",
    is_flag=True,
    help="only finish what the broker holds for this instance's session, then end the "
    "session and exit (a worker removed for good)",
)
def worker(instance: str | None, health_port: int | None, drain: bool) -> int:
    overrides: dict[str, Any] = {}
    if instance is not None:
        overrides["worker_instance"] = instance
    if health_port is not None:
        overrides["worker_health_port"] = health_port
    settings = settings_for(**overrides)
    setup_logging(settings.log_level)
    from flask_socketio import SocketIO

    from ..runtime import Runtime

    emitter = SocketIO(message_queue=settings.socketio_queue) if settings.socketio_queue else None
    if emitter is None:
        log.warning("worker: no ROADWATCH_SOCKETIO_QUEUE, so no live events reach browsers")
    if settings.worker_health_port:  # before the MQTT session, which a second one would take
        from ..health import check_health_port

        check_health_port(settings.worker_health_port)
    # Handlers first: a SIGTERM during start-up must still stop cleanly.
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    runtime = Runtime.build(settings, emitter=emitter)
    try:
        runtime.start_ingest(ingest_only=True, drain_only=drain)
    except SettingsError:
        runtime.stop()
        raise
    assert runtime.mqtt is not None
    health = None
    if settings.worker_health_port:
        from ..health import HealthServer
        from ..ingest.checks import worker_health

        checks = worker_health(
            runtime.mqtt, runtime.engine, redact_url(settings.mqtt_url), settings.socketio_queue
        )
        try:
            health = HealthServer(checks, runtime.metrics.render, port=settings.worker_health_port)
        except SettingsError:  # the port is taken: leave as SIGTERM does, then say so
            runtime.mqtt.stop_in_group()
            runtime.stop()
            raise
        health.start()
    freeze_startup_heap()
    name = settings.worker_instance or "(no instance name)"
    if drain:
        log.info("worker %s: draining its session, then exiting", name)
        runtime.mqtt.drain(timeout=600, quiet=2.0, end_session=True)
    else:
        log.info("worker %s: ingesting from %s", name, redact_url(settings.mqtt_url))
        stop.wait()
        # SIGTERM: commit and ack the batch in hand, disconnect, stay in the group (the
        # broker keeps this worker's share for its return; leaving could lose it).
        runtime.mqtt.stop_in_group()
    if health is not None:
        health.stop()
    runtime.stop()
    return 0
