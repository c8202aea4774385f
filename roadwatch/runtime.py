"""Everything a roadwatch process runs, wired once: database, network, pipeline, MQTT, live feed.

The web layer receives a Runtime; the core never imports the web layer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from .cases.workflow import Notice
from .categories import Categories, load_categories
from .ingest.embedded_broker import EmbeddedBroker, is_listening, is_loopback
from .ingest.mqtt import MqttIngest
from .ingest.topics import share_group_name
from .live.broadcast import Broadcaster
from .metrics import Metrics
from .network.context import NetworkContext, load_network_context, sync_network
from .pipeline import Pipeline
from .settings import Settings, SettingsError, redact_url
from .store import db

log = logging.getLogger(__name__)

# The URL `auto` may stand in for with the embedded broker (config/defaults.toml).
DEFAULT_MQTT_URL = "mqtt://127.0.0.1:1883"
# Where `mobile_mqtt_ws_url = "auto"` looks for Mosquitto's WebSocket listener.
AUTO_WS_URL = "ws://{host}:9001/"
AUTO_WS_RECHECK_S = 60.0


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    ctx: NetworkContext
    categories: Categories
    metrics: Metrics
    broadcaster: Broadcaster
    pipeline: Pipeline
    mqtt: MqttIngest | None = None
    broker: EmbeddedBroker | None = None
    clock: Any = None  # cases.clock.Scheduler while ingesting
    case_process: Any = None  # cases.service.CaseProcess with start_ingest(case_process=True)
    ranking: Any = None  # ranking.schedule.RankingScheduler under `serve` and `worker`
    outbox: Any = None  # cases.outbox.OutboxPublisher under `serve` (and `jobs`)
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        emitter: Any = None,
        migrate: bool = True,
        ctx: NetworkContext | None = None,
    ) -> Runtime:
        engine = db.engine_for(settings)
        sessions = db.make_sessionmaker(engine)
        ctx = ctx or load_network_context(settings)
        with db.startup_lock(engine):
            if migrate:
                db.upgrade(engine)
            with sessions.begin() as session:
                sync_network(session, ctx, settings.tz)
        categories = load_categories()
        metrics = Metrics()
        broadcaster = Broadcaster(emitter)
        broadcaster.district_of = ctx.district_of_event
        from .cases.calendar import load_sla

        sla = load_sla(categories=categories.codes)
        pipeline = Pipeline(
            settings,
            sessions,
            ctx,
            categories,
            metrics=metrics,
            on_events=broadcaster.publish,
            sla=sla,
        )
        rt = cls(settings, engine, sessions, ctx, categories, metrics, broadcaster, pipeline)
        pipeline.on_notices = rt.send_notices
        from .cases.dispatcher import Dispatcher

        # Dispatch time is the pipeline's clock (tests control it; production: now).
        pipeline.dispatcher = Dispatcher(
            engine, sla, rt.deliver, clock=lambda: pipeline.clock(), routing=pipeline.routing
        )
        rt.add_gauges()
        return rt

    def add_gauges(self) -> None:
        """The backlogs in /metrics (docs/deploy.md, "Monitoring"), read at each scrape."""
        from .health import dispatcher_lag_s, overdue_cases

        m, engine = self.metrics, self.engine
        m.gauge(
            "roadwatch_overdue_cases",
            "Open cases past their deadline",
            lambda: overdue_cases(engine),
        )
        m.gauge(
            "roadwatch_dispatcher_lag_seconds",
            "Age of the oldest stored report not yet dispatched (0: none waits)",
            lambda: dispatcher_lag_s(engine),
        )
        m.gauge(
            "roadwatch_ingest_queue_depth",
            "MQTT messages received and waiting for this process's ingest thread",
            lambda: self.mqtt.queued if self.mqtt is not None else 0,
        )
        m.gauge(
            "roadwatch_event_log_lag_events",
            "Events this process committed to the event log and has not yet emitted live",
            lambda: self.broadcaster.pending,
        )

    def send_notices(self, notices: list[Notice]) -> None:
        """Notices were committed to the outbox with their case change: wake its publisher
        (this process's; another process's finds them within a second)."""
        if notices and self.outbox is not None:
            self.outbox.wake()

    def start_outbox(self) -> None:
        """Publish the notice outbox from this process (`serve`; `jobs` has its own)."""
        from .cases.outbox import publisher_for

        if self.outbox is None:
            self.outbox = publisher_for(self.engine, self.settings).start()

    def deliver(self, events: list[Any], notices: list[Notice]) -> None:
        self.broadcaster.publish(events)
        self.send_notices(notices)

    def start_ingest(
        self, case_process: bool = False, ingest_only: bool = False, drain_only: bool = False
    ) -> None:
        """Connect to the broker (starting the embedded one when allowed and needed).

        case_process: run the dispatcher and the case clock in a child process,
        instead of threads beside the web server (`serve`, which pushes their events live).
        ingest_only: neither (`roadwatch worker`: `roadwatch jobs` runs them, once for all
        the workers). drain_only: subscribe to nothing, only take what the broker queued
        for this session (`roadwatch worker --drain`).
        """
        s = self.settings
        protocol = s.mqtt_protocol
        if self._use_embedded_broker():
            try:
                self.broker = self._start_embedded_broker()
            except RuntimeError as exc:
                raise SettingsError(
                    f"ROADWATCH_MQTT_URL: nothing listens on {redact_url(s.mqtt_url)}, "
                    f"and an embedded broker cannot serve it either ({exc})"
                ) from None
            protocol = 3  # the embedded broker speaks MQTT 3.1.1 only
            log.warning(
                "MQTT: an EMBEDDED broker (amqtt, MQTT 3.1.1, anonymous, loopback only, no "
                "redelivery across restarts) now serves %s; use Mosquitto in production",
                redact_url(s.mqtt_url),
            )
        else:
            log.info("MQTT: using the broker at %s", redact_url(s.mqtt_url))
        self.broadcaster.start()
        # One persistent session per worker: the instance name is part of the client id.
        client_id = f"{s.mqtt_client_id}-{s.worker_instance}" if s.worker_instance else None
        # amqtt (the embedded broker) has no shared subscriptions
        share_group = (
            "" if self.broker is not None else share_group_name(s.mqtt_share_group, s.mqtt_password)
        )
        # A process that alone subscribes stores every patrol itself (MQTT and HTTP): no
        # track to read back. On a shared subscription `worker`s may take part of the chiefs'
        # patrols, `serve`'s included, so it reads back what it did not store.
        self.pipeline.reads_stored_tracks = ingest_only or bool(share_group)
        self.mqtt = MqttIngest(
            self.pipeline,
            host=s.mqtt_host,
            port=s.mqtt_port,
            client_id=client_id or s.mqtt_client_id,
            topic_root=s.mqtt_topic_root,
            protocol=protocol,
            session_expiry_s=s.mqtt_session_expiry_s,
            receive_maximum=s.mqtt_receive_maximum,
            batch_max=s.ingest_batch_max,
            batch_wait_ms=s.ingest_batch_wait_ms,
            username=s.mqtt_username,
            password=s.mqtt_password,
            metrics=self.metrics,
            share_group=share_group,
        )
        if drain_only:
            self.mqtt.begin_drain()
        self.mqtt.start()
        if ingest_only:
            self.pipeline.on_stored = lambda: None  # `roadwatch jobs` polls for new reports
            return
        if case_process:
            from .cases.service import CaseProcess

            self.case_process = CaseProcess(s.model_dump())
            self.case_process.start()
            self.pipeline.on_stored = lambda: None  # the child polls for new reports
            return
        from .cases.clock import Scheduler

        self.clock = Scheduler(
            self.engine,
            self.pipeline.sla,
            self.deliver,
            interval=s.case_sweep_s,
            routing=self.pipeline.routing,
        )
        self.clock.start()
        self.start_outbox()  # this process makes the notices, so it sends them too
        # From now on cases are dispatched by a thread of their own, off the ack path.
        self.pipeline.dispatcher.start()
        self.pipeline.on_stored = self.pipeline.dispatcher.wake

    def start_ranking(self) -> None:
        """The weekly red/black-flag schedule (every process may run it: a DB claim decides)."""
        s = self.settings
        if s.ranking_schedule_s <= 0:
            return
        from .ranking.schedule import RankingScheduler

        self.ranking = RankingScheduler(
            self.engine,
            s.ranking_formula,
            s.tz,
            s.ranking_contest_hours,
            self.broadcaster.publish,
            self.categories.codes,
            interval=s.ranking_schedule_s,
        )
        self.ranking.start()

    def _use_embedded_broker(self) -> bool:
        """Whether to start the embedded broker: only when asked for (docs/security.md).

        `always`: yes. `never`: no (paho keeps trying to reach the configured broker).
        `auto`: only for the default URL (`run.sh`, a laptop) when nothing listens there.
        A URL set on purpose names a real broker: if it is down, start-up stops with one
        line instead of silently serving an anonymous broker in its place.
        """
        s = self.settings
        if s.embedded_broker == "never":
            return False
        if s.embedded_broker == "always":
            if not is_loopback(s.mqtt_host):
                raise SettingsError(
                    "ROADWATCH_EMBEDDED_BROKER: the embedded broker listens on loopback only, "
                    f"but ROADWATCH_MQTT_URL is {redact_url(s.mqtt_url)}; use 127.0.0.1"
                )
            return True
        if is_listening(s.mqtt_host, s.mqtt_port):
            return False
        if s.mqtt_url != DEFAULT_MQTT_URL:
            raise SettingsError(
                f"ROADWATCH_MQTT_URL: nothing listens on {redact_url(s.mqtt_url)}; start that "
                "broker (an embedded one stands in only for the default URL, or with "
                "ROADWATCH_EMBEDDED_BROKER=always)"
            )
        return True

    def _start_embedded_broker(self) -> EmbeddedBroker:
        """amqtt on the MQTT address, plus a WebSocket listener for the phone app if free.

        A taken WebSocket port must not stop the demo: phones then fall back to HTTP.
        """
        s = self.settings
        ws_port = s.embedded_ws_port or None
        if ws_port is not None and is_listening(s.mqtt_host, ws_port):
            log.warning(
                "MQTT: port %d is taken, so the embedded broker has no WebSocket listener; "
                "the phone app sends reports over HTTP",
                ws_port,
            )
            ws_port = None
        broker = EmbeddedBroker(s.mqtt_host, s.mqtt_port, ws_port=ws_port)
        try:
            broker.start()
        except RuntimeError as exc:
            if ws_port is None:
                raise
            # Taken between the probe and the bind (several demos on one machine): go on
            # without it; a problem with the MQTT port itself is raised again below.
            log.warning("MQTT: embedded WebSocket listener not started (%s)", exc)
            broker = EmbeddedBroker(s.mqtt_host, s.mqtt_port)
            broker.start()
        return broker

    @property
    def phone_ws_url(self) -> str:
        """Where phones reach the broker: a ws(s):// URL, "" for none (they use HTTP).

        "{host}" in it stands for the host name the app was loaded from (setting "auto":
        Mosquitto's WebSocket listener on 9001 of that host, or the embedded broker's).
        """
        s = self.settings
        if s.mobile_mqtt_ws_url != "auto":
            return s.mobile_mqtt_ws_url
        if self.broker is not None:
            return "" if self.broker.ws_port is None else f"ws://{{host}}:{self.broker.ws_port}/"
        # `auto` on a machine whose Mosquitto may have no WebSocket listener (plain Debian):
        # hand out the address only while it answers, else phones use HTTPS from the start.
        return AUTO_WS_URL if self._auto_ws_answers() else ""

    def _auto_ws_answers(self) -> bool:
        """Whether Mosquitto's WebSocket listener answers on 9001 (checked at most every
        AUTO_WS_RECHECK_S, so a listener added later is found without a restart)."""
        import time

        from .ingest.ws_probe import ws_answers

        checked = self.extras.get("auto_ws")
        if checked is None or time.monotonic() - checked[0] > AUTO_WS_RECHECK_S:
            checked = (time.monotonic(), ws_answers(AUTO_WS_URL, self.settings.mqtt_host))
            self.extras["auto_ws"] = checked
        return bool(checked[1])

    def check_phone_broker(self) -> bool:
        """Say in the log, at start, when phones cannot reach the broker over WebSockets.

        Nothing stops: the phone app then sends everything over HTTPS (docs/security.md 2).
        """
        from .ingest.ws_probe import ws_answers

        s = self.settings
        configured = s.mobile_mqtt_ws_url
        if configured == "":
            log.info("phones: no broker address (mobile_mqtt_ws_url is empty): they use HTTPS")
            return False
        url = self.phone_ws_url
        if configured == "auto" and url == "":
            log.warning(
                "phones: no MQTT WebSocket listener answers on %s (a Mosquitto without a "
                "`listener 9001` / `protocol websockets`): phones send over HTTPS; add the "
                "listener (config/deploy/mosquitto/roadwatch.conf) for live acks and notices",
                AUTO_WS_URL.replace("{host}", s.mqtt_host),
            )
            return False
        if not ws_answers(url, s.mqtt_host):
            log.warning(
                "phones: the broker address for phones, %s (ROADWATCH_MOBILE_MQTT_WS_URL), does "
                "not answer as an MQTT WebSocket from here: phones will fall back to HTTPS",
                redact_url(url.replace("{host}", s.mqtt_host)),
            )
            return False
        return True

    def stop(self) -> None:
        if self.ranking is not None:
            self.ranking.stop()
            self.ranking = None
        if self.case_process is not None:
            self.case_process.stop()
            self.case_process = None
            self.pipeline.on_stored = None
        if self.clock is not None:
            self.clock.stop()
            self.clock = None
        self.pipeline.on_stored = None
        if self.pipeline.dispatcher is not None:  # however it was started (stop is idempotent)
            self.pipeline.dispatcher.stop()
        if self.outbox is not None:  # after the jobs that write to it; before the broker goes
            self.outbox.stop()
            self.outbox = None
        if self.mqtt is not None:
            self.mqtt.stop()
            self.mqtt = None
        self.broadcaster.stop()
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
        self.engine.dispose()
