"""The platform's MQTT client: persistent session, QoS 1, PUBACK only after commit.

paho's network thread only puts messages on a bounded inbox (it must never raise);
one worker thread takes them in batches, runs the pipeline, and then — in arrival
order — publishes each ack and PUBACKs the original. A message whose batch could not
be committed is never acked, so the broker redelivers it; the report id makes the
redelivery harmless.

What a chief's message cannot do (docs/security.md, "MQTT"):
* send the platform's ack anywhere but the sender's own ack topic: an MQTT 5
  ResponseTopic is honoured only when it IS `{root}/acks/{reporter}` (a publish the
  broker's ACL denies would make Mosquitto drop the platform's connection);
* take the platform's session: with a broker password, the client ids are derived from
  it (`session_client_id`), so they are stable but known only to whoever holds it;
* make the platform ingest a retained copy again: retained messages are never ingested
  (MQTT 5: not even sent to us on subscribe), only acknowledged to the broker;
* grow the platform's memory: the inbox is bounded (QoS 1 by the broker's in-flight
  window plus backpressure, QoS 0 by dropping, counted, once its share is full).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from ..metrics import Metrics
from ..pipeline import PARKED, Pipeline, StorageError
from ..store import jsonbytes
from ..store.models import utcnow
from . import park
from .messages import Inbound, Outcome
from .topics import Topics, session_client_id

log = logging.getLogger(__name__)


# The inbox's share for QoS 0 messages (no flow control: a flood is cut here) and its
# byte budget. QoS 1 messages are bounded by the broker's in-flight window (our MQTT 5
# Receive Maximum, Mosquitto's max_inflight_messages for 3.1.1) and wait, never dropped.
INBOX_QOS0_ITEMS = 2000
INBOX_MAX_BYTES = 32 * 1024 * 1024
LOG_EVERY_S = 60.0  # the most often one kind of refused message is logged


@dataclass(frozen=True, slots=True)
class _Token:
    mid: int
    qos: int
    generation: int  # the connection it arrived on; a mid means nothing on another one


class Inbox:
    """The hand-over from paho's network thread to the ingest worker, bounded.

    * QoS 1/2: never dropped (the broker keeps the message until our PUBACK). Their
      number is bounded by the broker's in-flight window; past `max_acked_items` or the
      byte budget `put` waits for the worker (backpressure: paho stops reading, the
      broker holds the rest), checking every second whether to give up (`stop`).
    * QoS 0: no flow control exists, so a flood is cut here: beyond `max_qos0_items` or
      the byte budget the message is dropped and counted (`dropped`).
    """

    def __init__(
        self,
        *,
        max_acked_items: int,
        max_qos0_items: int = INBOX_QOS0_ITEMS,
        max_bytes: int = INBOX_MAX_BYTES,
    ) -> None:
        self.max_acked_items = max_acked_items
        self.max_qos0_items = max_qos0_items
        self.max_bytes = max_bytes
        self._items: collections.deque[tuple[Any, int, int, float]] = collections.deque()
        self._cond = threading.Condition()
        self.acked_items = 0
        self.qos0_items = 0
        self.bytes = 0
        self.dropped = 0
        self.peak_bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Any, qos: int, size: int, stop: threading.Event | None = None) -> bool:
        """Queue `item`; False if it was dropped (QoS 0 only) or the wait was given up."""
        with self._cond:
            if qos == 0:
                if self.qos0_items >= self.max_qos0_items or self.bytes + size > self.max_bytes:
                    self.dropped += 1
                    return False
                self.qos0_items += 1
            else:
                while self.acked_items >= self.max_acked_items or (
                    self.bytes and self.bytes + size > self.max_bytes
                ):
                    if stop is not None and stop.is_set():
                        return False
                    self._cond.wait(1.0)
                self.acked_items += 1
            self.bytes += size
            self.peak_bytes = max(self.peak_bytes, self.bytes)
            self._items.append((item, qos, size, time.monotonic()))
            self._cond.notify_all()
            return True

    def oldest_age(self) -> float:
        """Seconds the oldest waiting message has waited (0 when none waits): queue lag."""
        with self._cond:
            return time.monotonic() - self._items[0][3] if self._items else 0.0

    def get(self, timeout: float | None = None) -> Any:
        """The oldest item; raises IndexError if none arrived within `timeout` (0: no wait)."""
        with self._cond:
            if not self._items and timeout:
                self._cond.wait_for(lambda: bool(self._items), timeout)
            if not self._items:
                raise IndexError("empty")
            item, qos, size, _t = self._items.popleft()
            if qos == 0:
                self.qos0_items -= 1
            else:
                self.acked_items -= 1
            self.bytes -= size
            self._cond.notify_all()
            return item


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
        metrics: Metrics | None = None,
        share_group: str = "",
        park_retry_s: float = 1.0,
    ) -> None:
        self.pipeline = pipeline
        self.host, self.port = host, port
        self.topics = Topics(topic_root)
        # Several workers split one stream through an MQTT shared subscription (README,
        # "Several ingest workers"); "" = a plain subscription (one worker, the embedded broker).
        self.share_group = share_group
        self.park_retry_s = park_retry_s
        self.protocol = protocol
        self.session_expiry_s = session_expiry_s
        self.receive_maximum = receive_maximum
        self.batch_max = batch_max
        self.batch_wait = batch_wait_ms / 1000
        self.on_batch = on_batch
        self.metrics = metrics
        # The worker PUBACKs only after commit, so the broker never has more than its
        # in-flight window of QoS 1 messages with us: that window bounds their count.
        self._queue = Inbox(max_acked_items=max(receive_maximum, 1000))
        self._last_logged: dict[str, float] = {}
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._generation = 0
        self._gen_lock = threading.Lock()
        self.connected = threading.Event()
        # Set on the SUBACK, not on CONNACK: a message published between the two has no
        # subscription yet and the broker drops it, so "ready" means subscribed.
        self.subscribed = threading.Event()
        self._subscribe_mid: int | None = None
        self.last_error: str | None = None
        # Progress, for /healthz: when the worker last committed a batch, whether it holds one.
        self.last_commit = time.monotonic()
        self.last_message = time.monotonic()
        self.busy = False
        self.busy_since: float | None = None  # when the batch in hand was taken
        self.parked = (0, 0.0)  # (messages parked, age of the oldest), from the periodic look
        self._draining = threading.Event()  # SIGTERM: take no new messages, finish the rest
        self._unsubscribed = threading.Event()
        pipeline.on_unparked = self._send_unparked

        self.configured_client_id = client_id
        self.client_id = session_client_id(client_id, password)
        if protocol == 5:
            self.client = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=self.client_id,
                protocol=mqtt.MQTTv5,
                manual_ack=True,
            )
        else:
            self.client = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=self.client_id,
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
        # Back within 2 s of the broker: Mosquitto 2.0.11 does not restore shared
        # subscriptions after its restart, so what phones publish (their outboxes flush on
        # reconnect) before this worker subscribes again is PUBACKed and dropped. With the
        # backoff capped at 10 s that gap was 5-10 s after an outage of 10 s or more.
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_unsubscribe = self._on_unsubscribe
        self.client.on_subscribe = self._on_subscribe
        # Notices (dispatch, escalation) go out on a second connection, so a burst of them
        # never queues in front of the acks phones are waiting for.
        self.notifier = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=session_client_id(f"{client_id}-notices", password),
            protocol=mqtt.MQTTv311,
        )
        if username:
            self.notifier.username_pw_set(username, password)
        self.notifier.max_queued_messages_set(0)
        self.notifier.max_inflight_messages_set(32)
        self.notifier.reconnect_delay_set(min_delay=1, max_delay=10)

    @property
    def ready(self) -> bool:
        """Connected and subscribed (or, draining, connected: it subscribes to nothing)."""
        return self.connected.is_set() and (self.subscribed.is_set() or self._draining.is_set())

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
        ready = self.connected if self._draining.is_set() else self.subscribed
        if wait and not ready.wait(wait):
            log.warning(
                "MQTT: not connected and subscribed at %s:%d yet; still trying",
                self.host,
                self.port,
            )

    def stop(self, timeout: float = 10.0, end_session: bool = False) -> None:
        """Stop at once: what is not acked yet comes back from the broker (see `drain`).

        end_session: end the persistent session too (MQTT 5: session expiry 0 on
        DISCONNECT), for a worker removed for good after `drain`."""
        self._stop.set()
        if self._worker is not None:
            self._worker.join(timeout)
            self._worker = None
        props = None
        if end_session and self.protocol == 5:
            props = Properties(PacketTypes.DISCONNECT)
            props.SessionExpiryInterval = 0
        try:
            self.client.disconnect(properties=props)
            self.notifier.disconnect()
        finally:
            self.client.loop_stop()
            self.notifier.loop_stop()

    def begin_drain(self) -> None:
        """From now on subscribe to nothing (a reconnect unsubscribes instead)."""
        self._draining.set()

    def stop_in_group(self, timeout: float = 20.0) -> None:
        """SIGTERM of a worker (a restart, a stop): finish, commit and ack the batch in hand,
        then disconnect, staying in the shared subscription with the persistent session.

        The broker then queues this member's share in the session until it returns (or
        `worker --drain` takes it for good). Leaving the group instead would have the broker
        accept what phones publish while no member is left and drop it: measured, a plain
        restart of the only worker lost 49 of 600 reports. Messages received but not taken
        stay unacked, so the broker sends them again when the session returns."""
        held = len(self._queue)
        self.stop(timeout=timeout)
        log.info(
            "MQTT: stopped, staying in the group (its share waits in the session until this "
            "worker returns; `worker --drain` takes it for good); %d received and not taken "
            "come back from the broker",
            held,
        )

    def drain(self, timeout: float = 20.0, quiet: float = 0.5, end_session: bool = False) -> bool:
        """`worker --drain`: take no new messages, finish and ack those in hand, then disconnect.

        Unsubscribing first takes this worker out of the shared subscription, so the
        broker gives new messages to the other members (a stopped member that stays
        subscribed would have its share queued in its session until it returns). The
        messages the broker had sent or queued for us still arrive: they are committed and
        acked until none came for `quiet` seconds. True if it ended that way within
        `timeout`; anything left unacked is redelivered when this session returns."""
        self.begin_drain()
        if self.connected.is_set():
            self._unsubscribed.clear()
            self.client.unsubscribe(self._all_filters())
            if not self._unsubscribed.wait(5.0):
                log.warning("MQTT: no UNSUBACK within 5 s; draining anyway")
        deadline = time.monotonic() + timeout
        drained = False
        while time.monotonic() < deadline:
            idle = not self.busy and not len(self._queue)
            if idle and time.monotonic() - self.last_message >= quiet:
                drained = True
                break
            time.sleep(0.05)
        log.info(
            "MQTT: %s; disconnecting%s",
            "drained" if drained else f"still busy after {timeout:g} s",
            " and ending the session" if end_session else "",
        )
        self.stop(end_session=end_session)
        return drained

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
        self.last_message = time.monotonic()  # what the session holds arrives from now on
        self.subscribed.clear()
        self.connected.set()
        if self._draining.is_set():
            # Reconnected while draining (or `worker --drain`): leave the shared subscription
            # so that only what is queued for this session still arrives.
            client.unsubscribe(self._all_filters())
            return
        subs = self.topics.subscriptions(self.share_group)
        if self.protocol == 5:
            # retainHandling 2: the broker sends no retained message when we (re)subscribe.
            # A retained report would otherwise come back on every reconnect.
            opts = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND)
            _rc, self._subscribe_mid = client.subscribe([(t, opts) for t in subs])
        else:
            _rc, self._subscribe_mid = client.subscribe([(t, 1) for t in subs])
        if self.share_group:
            # A session of a single worker (before shared subscriptions) holds the plain
            # subscription: drop it after the shared one is in place, or it would receive
            # every message a second time (harmless, duplicates, but twice the work).
            client.unsubscribe(self.topics.subscriptions())
        log.info(
            "MQTT: connected to %s:%d (MQTT %s, session present: %s), subscribing to %s",
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

    def _all_filters(self) -> list[str]:
        """Every filter this session may hold: the shared ones, and the plain ones a session
        from before shared subscriptions (the same client id) subscribed to."""
        shared = self.topics.subscriptions(self.share_group) if self.share_group else []
        return shared + self.topics.subscriptions()

    def _on_unsubscribe(self, *_args: Any) -> None:
        self._unsubscribed.set()

    def _on_subscribe(
        self, _c: mqtt.Client, _u: Any, mid: int, reason_codes: list[Any], _props: Any
    ) -> None:
        if mid != self._subscribe_mid:
            return
        try:
            refused = [str(rc) for rc in reason_codes if rc.is_failure]
        except Exception:  # a paho callback must not raise: count it as not subscribed
            log.exception("MQTT: could not read the SUBACK %r", reason_codes)
            return
        if refused:
            # The broker's ACL refused the platform's own subscription: nothing would ever
            # arrive, and that must be loud (and in /healthz), not a quiet empty feed.
            self.last_error = f"subscription refused by the broker: {', '.join(refused)}"
            log.error("MQTT: %s", self.last_error)
            return
        self.subscribed.set()
        log.info(
            "MQTT: subscribed to %s; reports are taken from now on",
            ", ".join(self.topics.subscriptions(self.share_group)),
        )

    def _count(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.mqtt_not_ingested.labels(reason).inc()

    def _note(self, reason: str, text: str, *args: Any) -> None:
        """Log `text` at most once a minute per reason (a flood must not flood the log)."""
        now = time.monotonic()
        if now - self._last_logged.get(reason, -LOG_EVERY_S) >= LOG_EVERY_S:
            self._last_logged[reason] = now
            log.warning(text, *args)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            self.last_message = time.monotonic()
            token = _Token(msg.mid, msg.qos, self._generation)
            if msg.retain:
                # A retained copy replayed by the broker on (re)subscribe (MQTT 3.1.1; with
                # MQTT 5 we ask for none): the original was ingested when it was published.
                # Acknowledged in order by the worker, never ingested again.
                self._count("retained")
                self._note("retained", "MQTT: ignored a retained message on %s", msg.topic)
                if msg.qos > 0:
                    self._queue.put((None, token), msg.qos, 0, self._stop)
                return
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
            size = len(inbound.payload) + len(msg.topic) + 64
            queued = self._queue.put((inbound, token), msg.qos, size, self._stop)
            if not queued and msg.qos == 0:
                self._count("queue_full")
                self._note(
                    "queue_full",
                    "MQTT: inbox full, QoS 0 messages dropped (%d so far); QoS 1 waits",
                    self._queue.dropped,
                )
        except Exception:  # nothing may escape into paho's loop
            log.exception("MQTT: could not queue a message on %r", getattr(msg, "topic", "?"))

    # -- worker -------------------------------------------------------------------
    def _next_batch(self) -> list[tuple[Inbound | None, _Token]]:
        try:
            first = self._queue.get(timeout=0.2)
        except IndexError:
            return []
        batch = [first]
        deadline = time.monotonic() + self.batch_wait
        while len(batch) < self.batch_max:
            try:
                batch.append(self._queue.get(0))
                continue
            except IndexError:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(self._queue.get(timeout=remaining))
            except IndexError:
                break
        return batch

    def _work(self) -> None:
        next_park_look = 0.0
        while not self._stop.is_set():
            if time.monotonic() >= next_park_look:
                next_park_look = time.monotonic() + self.park_retry_s
                self._look_at_parked()
            self.busy = False
            items = self._next_batch()
            if not items:
                self.last_commit = time.monotonic()  # nothing waits: nothing is late
                continue
            self.busy = True
            self.busy_since = time.monotonic()
            batch = [(m, t) for m, t in items if m is not None]
            if not batch:  # only retained copies: acknowledge them, nothing to store
                self._ack_skipped(items)
                self.busy_since = None
                continue
            delay = 0.5
            while True:
                try:
                    outcomes = self.pipeline.process([m for m, _ in batch])
                    break
                except StorageError as exc:
                    if self._stop.is_set():
                        self.busy = False
                        return  # unacked: the broker redelivers after our restart
                    log.error("ingest: %s; retrying %d messages in %.1f s", exc, len(batch), delay)
                    time.sleep(delay)
                    delay = min(delay * 2, 10.0)
                except Exception:
                    log.exception("ingest: unexpected failure; retrying the batch")
                    time.sleep(delay)
                    delay = min(delay * 2, 10.0)
            self._finish(items, outcomes)
            self.last_commit, self.busy_since = time.monotonic(), None
        self.busy = False

    def _look_at_parked(self) -> None:
        """Every few seconds: how many messages are parked, and try those that are due."""
        try:
            with self.pipeline.engine.connect() as conn:
                self.parked = park.count(conn)
            self.pipeline.parked_hint = self.parked[0] > 0
            if self.parked[0]:
                done = self.pipeline.retry_parked()
                if done:
                    self._send_unparked(done)
        except Exception as exc:  # the database is away: the batches will say so too
            log.warning("ingest: could not look at parked messages (%s)", exc.__class__.__name__)

    def _send_unparked(self, done: list[tuple[Inbound, Outcome]]) -> None:
        """Acks for parked messages now applied or rejected (their MQTT message was acked
        when they were parked)."""
        for msg, outcome in done:
            try:
                self.publish_ack(msg, outcome)
            except Exception:
                log.exception("ingest: could not publish the ack for %s", outcome.id)

    def _ack(self, token: _Token, generation: int) -> None:
        if token.qos > 0 and token.generation == generation:
            self.client.ack(token.mid, token.qos)
        # else: it arrived on an earlier connection; the broker will redeliver it and
        # the duplicate is answered from the database.

    def _ack_skipped(self, items: list[tuple[Inbound | None, _Token]]) -> None:
        generation = self._generation
        for _m, token in items:
            self._ack(token, generation)

    def _finish(self, items: list[tuple[Inbound | None, _Token]], outcomes: list[Outcome]) -> None:
        """Publish each ack and PUBACK each message, in arrival order (skipped ones too)."""
        generation = self._generation
        results = iter(outcomes)
        for msg, token in items:
            if msg is not None:
                outcome = next(results)
                try:
                    if outcome.status != PARKED:  # its ack comes when it is applied
                        self.publish_ack(msg, outcome)
                except Exception:
                    log.exception("ingest: could not publish the ack for %s", outcome.id)
            self._ack(token, generation)
        if self.on_batch is not None:
            self.on_batch(outcomes)

    @property
    def queued(self) -> int:
        """Messages received and waiting for the ingest thread (not counting its batch)."""
        return len(self._queue)

    @property
    def worker_alive(self) -> bool:
        return self._worker is not None and self._worker.is_alive()

    def publish_notice(self, person: str, body: bytes) -> None:
        self.notifier.publish(self.topics.notice(person), body, qos=1)

    def publish_ack(self, msg: Inbound, outcome: Outcome) -> None:
        """The outcome goes to the sender's own ack topic, and nowhere else.

        An MQTT 5 ResponseTopic is honoured only if it is that topic: any other would let
        one chief write into another's acks or notices (or, when the broker's ACL denies
        the publish, make Mosquitto close the platform's connection, and the redelivered
        message would do it again). The correlation data always comes back.
        """
        if not msg.topic_reporter:
            return  # not one of our topics: nobody to answer
        own = self.topics.ack(msg.topic_reporter)
        if msg.response_topic and msg.response_topic != own:
            self._count("foreign_response_topic")
            self._note(
                "response_topic",
                "MQTT: %s asked for its ack on %r; sent to %s instead",
                msg.topic,
                msg.response_topic[:200],
                own,
            )
        body = jsonbytes.dumps(outcome.ack_body())
        props = None
        if self.protocol == 5 and msg.correlation_data is not None:
            props = Properties(PacketTypes.PUBLISH)
            props.CorrelationData = msg.correlation_data
        self.client.publish(own, body, qos=1, properties=props)
