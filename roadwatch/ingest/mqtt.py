"""The platform's MQTT client: persistent session, QoS 1, PUBACK only after commit.

paho's network thread only puts messages on a queue (it must never block or raise);
one worker thread takes them in batches, runs the pipeline, and then — in arrival
order — publishes each ack and PUBACKs the original. A message whose batch could not
be committed is never acked, so the broker redelivers it; the report id makes the
redelivery harmless.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from .. import jsonbytes
from ..models import utcnow
from ..pipeline import Pipeline, StorageError
from .messages import Inbound, Outcome
from .topics import Topics

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Token:
    mid: int
    qos: int
    generation: int  # the connection it arrived on; a mid means nothing on another one


class MqttIngest:
    def __init__(
        self,
        pipeline: Pipeline,
        *,
        host: str,
        port: int,
        client_id: str,
        topic_root: str = "roadwatch/v1",
        protocol: int = 5,
        session_expiry_s: int = 7 * 24 * 3600,
        receive_maximum: int = 1000,
        batch_max: int = 500,
        batch_wait_ms: int = 5,
        username: str | None = None,
        password: str | None = None,
        on_batch: Callable[[list[Outcome]], None] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.host, self.port = host, port
        self.topics = Topics(topic_root)
        self.protocol = protocol
        self.session_expiry_s = session_expiry_s
        self.receive_maximum = receive_maximum
        self.batch_max = batch_max
        self.batch_wait = batch_wait_ms / 1000
        self.on_batch = on_batch
        self._queue: queue.Queue[tuple[Inbound, _Token]] = queue.Queue()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._generation = 0
        self._gen_lock = threading.Lock()
        self.connected = threading.Event()
        self.last_error: str | None = None

        if protocol == 5:
            self.client = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=client_id,
                protocol=mqtt.MQTTv5,
                manual_ack=True,
            )
        else:
            self.client = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=client_id,
                protocol=mqtt.MQTTv311,
                clean_session=False,
                manual_ack=True,
            )
        if username:
            self.client.username_pw_set(username, password)
        # Acks may pile up while a phone's broker session is slow: never drop them here.
        self.client.max_queued_messages_set(0)
        # paho rescans its in-flight messages on every PUBACK it receives, so a large window
        # makes each ack we publish cost O(window): measured, 1000 took a third of the CPU
        # at 2,000 reports/s. 32 keeps the broker busy and that scan short.
        self.client.max_inflight_messages_set(32)
        self.client.reconnect_delay_set(min_delay=1, max_delay=10)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        # Notices (dispatch, escalation) go out on a second connection, so a burst of them
        # never queues in front of the acks phones are waiting for.
        self.notifier = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"{client_id}-notices",
            protocol=mqtt.MQTTv311,
        )
        if username:
            self.notifier.username_pw_set(username, password)
        self.notifier.max_queued_messages_set(0)
        self.notifier.max_inflight_messages_set(32)
        self.notifier.reconnect_delay_set(min_delay=1, max_delay=10)

    # -- lifecycle ----------------------------------------------------------------
    def start(self, wait: float = 10.0) -> None:
        self._stop.clear()
        self._worker = threading.Thread(target=self._work, name="ingest-worker", daemon=True)
        self._worker.start()
        if self.protocol == 5:
            props = Properties(PacketTypes.CONNECT)
            # Without a session expiry an MQTT 5 session ends with the connection (no redelivery).
            props.SessionExpiryInterval = self.session_expiry_s
            props.ReceiveMaximum = self.receive_maximum
            self.client.connect_async(
                self.host, self.port, keepalive=30, clean_start=False, properties=props
            )
        else:
            self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()
        self.notifier.connect_async(self.host, self.port, keepalive=30)
        self.notifier.loop_start()
        if wait and not self.connected.wait(wait):
            log.warning("MQTT: not connected to %s:%d yet; still trying", self.host, self.port)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._worker is not None:
            self._worker.join(timeout)
            self._worker = None
        try:
            self.client.disconnect()
            self.notifier.disconnect()
        finally:
            self.client.loop_stop()
            self.notifier.loop_stop()

    # -- paho callbacks (network thread: must not raise or block) -------------------
    def _on_connect(
        self, client: mqtt.Client, _u: Any, flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            self.last_error = f"connection refused: {reason}"
            log.error("MQTT: %s", self.last_error)
            return
        with self._gen_lock:
            self._generation += 1
        self.last_error = None
        self.connected.set()
        subs = self.topics.subscriptions()
        client.subscribe([(t, 1) for t in subs])
        log.info(
            "MQTT: connected to %s:%d (MQTT %s, session present: %s), subscribed to %s",
            self.host,
            self.port,
            "5" if self.protocol == 5 else "3.1.1",
            getattr(flags, "session_present", "?"),
            ", ".join(subs),
        )

    def _on_disconnect(
        self, _c: mqtt.Client, _u: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        self.connected.clear()
        if not self._stop.is_set():
            self.last_error = f"disconnected: {reason}"
            log.warning("MQTT: disconnected (%s); paho reconnects", reason)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            received = utcnow()
            parsed = self.topics.parse(msg.topic)
            kind, reporter = parsed if parsed else ("unknown", None)
            response_topic = correlation = None
            props = getattr(msg, "properties", None)
            if props is not None:
                response_topic = getattr(props, "ResponseTopic", None)
                correlation = getattr(props, "CorrelationData", None)
            inbound = Inbound(
                transport="mqtt",
                kind=kind,
                payload=bytes(msg.payload),
                received_at=received,
                topic=msg.topic,
                topic_reporter=reporter,
                response_topic=response_topic,
                correlation_data=correlation,
            )
            self._queue.put((inbound, _Token(msg.mid, msg.qos, self._generation)))
        except Exception:  # nothing may escape into paho's loop
            log.exception("MQTT: could not queue a message on %r", getattr(msg, "topic", "?"))

    # -- worker -------------------------------------------------------------------
    def _next_batch(self) -> list[tuple[Inbound, _Token]]:
        try:
            first = self._queue.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.batch_wait
        while len(batch) < self.batch_max:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except queue.Empty:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(self._queue.get(timeout=remaining))
            except queue.Empty:
                break
        return batch

    def _work(self) -> None:
        while not self._stop.is_set():
            batch = self._next_batch()
            if not batch:
                continue
            delay = 0.5
            while True:
                try:
                    outcomes = self.pipeline.process([m for m, _ in batch])
                    break
                except StorageError as exc:
                    if self._stop.is_set():
                        return  # unacked: the broker redelivers after our restart
                    log.error("ingest: %s; retrying %d messages in %.1f s", exc, len(batch), delay)
                    time.sleep(delay)
                    delay = min(delay * 2, 10.0)
                except Exception:
                    log.exception("ingest: unexpected failure; retrying the batch")
                    time.sleep(delay)
                    delay = min(delay * 2, 10.0)
            self._finish(batch, outcomes)

    def _finish(self, batch: list[tuple[Inbound, _Token]], outcomes: list[Outcome]) -> None:
        generation = self._generation
        for (msg, token), outcome in zip(batch, outcomes, strict=True):
            try:
                self.publish_ack(msg, outcome)
            except Exception:
                log.exception("ingest: could not publish the ack for %s", outcome.id)
            if token.qos > 0 and token.generation == generation:
                self.client.ack(token.mid, token.qos)
            # else: it arrived on an earlier connection; the broker will redeliver it and
            # the duplicate is answered from the database.
        if self.on_batch is not None:
            self.on_batch(outcomes)

    def publish_notice(self, person: str, body: bytes) -> None:
        self.notifier.publish(self.topics.notice(person), body, qos=1)

    def publish_ack(self, msg: Inbound, outcome: Outcome) -> None:
        body = jsonbytes.dumps(outcome.ack_body())
        if msg.response_topic:
            props = Properties(PacketTypes.PUBLISH)
            if msg.correlation_data is not None:
                props.CorrelationData = msg.correlation_data
            self.client.publish(msg.response_topic, body, qos=1, properties=props)
        if msg.topic_reporter:
            self.client.publish(self.topics.ack(msg.topic_reporter), body, qos=1)
