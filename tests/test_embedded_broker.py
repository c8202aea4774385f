"""The embedded amqtt broker: lifecycle, QoS 1 with manual ack, and its limits.

The assertions about redelivery record what amqtt 0.12.1 actually does (it
does NOT honour persistent sessions for anonymous clients, and forgets a
message whose PUBACK takes more than 5 s); roadwatch/ingest/embedded_broker.py
documents the same facts, and production uses Mosquitto for this reason.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import pytest

from roadwatch.ingest.embedded_broker import EmbeddedBroker, is_listening
from tests.support.mosquitto import MqttTestClient, Received, free_port

REPORTS = "roadwatch/v1/reports/+"
TOPIC = "roadwatch/v1/reports/zz-jinshui-0421"
INGEST_ID = "roadwatch-ingest-test"
THREAD_NAME = "roadwatch-embedded-mqtt"


def broker_threads() -> set[threading.Thread]:
    """Live embedded-broker threads (other tests' brokers included)."""
    return {t for t in threading.enumerate() if t.name == THREAD_NAME}


def ingest_client(broker: EmbeddedBroker) -> MqttTestClient:
    """The platform's subscriber as CONTRACT 1 describes it."""
    return MqttTestClient(
        broker.host, broker.port, INGEST_ID, clean_session=False, manual_ack=True
    ).connect()


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    before = broker_threads()
    b = EmbeddedBroker("127.0.0.1", free_port())
    started = time.perf_counter()
    b.start()
    print(f"embedded broker started in {(time.perf_counter() - started) * 1e3:.1f} ms")
    try:
        yield b
    finally:
        b.stop()
        assert broker_threads() - before == set()


@pytest.fixture
def publisher(broker: EmbeddedBroker) -> Iterator[MqttTestClient]:
    with MqttTestClient(broker.host, broker.port, "test-publisher") as client:
        yield client


def test_start_stop_url_and_no_leaked_thread() -> None:
    before = broker_threads()
    port = free_port()
    b = EmbeddedBroker(port=port)
    assert b.url == f"mqtt://127.0.0.1:{port}"
    assert not is_listening("127.0.0.1", port)

    b.start()
    assert b.start_seconds is not None
    print(f"start() took {b.start_seconds * 1e3:.1f} ms")
    assert b.running
    assert is_listening("127.0.0.1", port)
    (thread,) = broker_threads() - before
    assert thread.daemon

    b.stop()
    assert not b.running
    assert not thread.is_alive()
    assert broker_threads() - before == set()
    assert not is_listening("127.0.0.1", port)
    b.stop()  # idempotent

    # Startable again after a stop (a fresh amqtt Broker in a fresh thread).
    with b:
        assert is_listening("127.0.0.1", port)
    assert broker_threads() - before == set()


def test_stop_disconnects_connected_clients(broker: EmbeddedBroker) -> None:
    client = MqttTestClient(broker.host, broker.port, "lingering").connect()
    broker.stop()
    assert not broker.running
    deadline = time.monotonic() + 5
    while client.client.is_connected() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not client.client.is_connected()
    client.client.loop_stop()


def test_start_twice_on_the_same_port_fails_clearly(broker: EmbeddedBroker) -> None:
    with pytest.raises(RuntimeError, match="already running"):
        broker.start()

    before = broker_threads()
    second = EmbeddedBroker(broker.host, broker.port)
    taken = rf"127\.0\.0\.1:{broker.port}: the port is already in use"
    with pytest.raises(RuntimeError, match=taken):
        second.start()
    assert not second.running
    assert broker_threads() == before  # no thread was started for it
    second.stop()  # harmless on a broker that never started


@pytest.mark.slow  # waits out amqtt's 5 s PUBACK timeout
def test_qos1_manual_ack_200_messages(
    broker: EmbeddedBroker, publisher: MqttTestClient, caplog: pytest.LogCaptureFixture
) -> None:
    sub = ingest_client(broker)
    sub.subscribe(REPORTS, qos=1)

    n = 200
    started = time.perf_counter()
    infos = [publisher.client.publish(TOPIC, f"{i}".encode(), qos=1) for i in range(n)]
    got: list[Received] = []
    while len(got) < n:
        message = sub.get(timeout=10)
        got.append(message)
        # Hold the last message back to see what amqtt does with a slow ack;
        # acknowledge everything else at once, as a committed batch would.
        if message.payload != b"199":
            sub.ack(message)
    elapsed = time.perf_counter() - started
    for info in infos:
        info.wait_for_publish(5)
        assert info.is_published()
    print(f"{n} QoS 1 messages through amqtt in {elapsed:.3f} s ({n / elapsed:,.0f} msg/s)")

    assert [int(m.payload) for m in got] == list(range(n))  # all, once, in order
    assert {m.qos for m in got} == {1}
    assert not any(m.dup for m in got)

    # amqtt waits 5 s for each PUBACK, then logs this warning and forgets the
    # message. Exactly one timeout (the held message) proves the other 199
    # client.ack() calls reached the broker.
    def puback_timeouts() -> list[str]:
        return [
            r.getMessage() for r in caplog.records if "Timeout waiting for PUBACK" in r.getMessage()
        ]

    deadline = time.monotonic() + 10
    while not puback_timeouts() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(puback_timeouts()) == 1
    assert all(r.levelno >= logging.WARNING for r in caplog.records if r.name.startswith("amqtt"))

    # Acknowledging after the timeout is too late: amqtt no longer knows the
    # packet id, and the message is never redelivered.
    sub.ack(got[-1])
    assert sub.drain(quiet=1.0) == []
    sub.disconnect()


def test_unacked_message_is_not_redelivered_on_reconnect(
    broker: EmbeddedBroker, publisher: MqttTestClient
) -> None:
    first = ingest_client(broker)
    assert first.session_present is False
    first.subscribe(REPORTS, qos=1)
    publisher.publish(TOPIC, b"unacked")
    message = first.get()
    assert message.payload == b"unacked"
    first.crash()  # gone before the ack, like a killed ingest worker

    publisher.publish(TOPIC, b"sent-while-offline")

    # Reconnecting at once finds the session (subscription included) but
    # neither the un-acked message nor the one published while offline:
    # amqtt queues nothing for anonymous sessions and drops in-flight state
    # when the connection goes.
    again = ingest_client(broker)
    assert again.session_present is True
    assert again.drain(quiet=1.0) == []
    publisher.publish(TOPIC, b"live")
    live = again.get()
    assert (live.payload, live.dup) == (b"live", False)
    again.ack(live)
    again.disconnect()

    # About a second after a disconnect amqtt's session monitor removes
    # anonymous sessions altogether: the client must subscribe again.
    time.sleep(1.5)
    later = ingest_client(broker)
    assert later.session_present is False
    publisher.publish(TOPIC, b"no-subscription")
    assert later.drain(quiet=1.0) == []
    later.disconnect()


def test_mqtt5_clients_are_refused(broker: EmbeddedBroker) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    result: list[str] = []
    done = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)

    def on_connect(c: mqtt.Client, u: object, f: object, reason: object, p: object) -> None:
        result.append(str(reason))
        done.set()

    client.on_connect = on_connect
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        assert done.wait(5)
    finally:
        client.disconnect()
        client.loop_stop()
    assert result == ["Unsupported protocol version"]


def test_websocket_listener() -> None:
    before = broker_threads()
    b = EmbeddedBroker(port=free_port(), ws_port=free_port())
    assert b.ws_url == f"ws://127.0.0.1:{b.ws_port}/"
    with b:
        assert b.ws_port is not None
        with MqttTestClient(b.host, b.ws_port, "ws-sub", transport="websockets") as sub:
            sub.subscribe(REPORTS, qos=1)
            with MqttTestClient(b.host, b.port, "tcp-pub") as pub:
                pub.publish(TOPIC, b"over websockets")
            assert sub.get().payload == b"over websockets"
    assert broker_threads() - before == set()


def test_a_websocket_client_leaving_mid_subscribe_is_not_logged_as_a_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A phone page closed while the broker still answers its SUBSCRIBE: the SUBACK meets a
    closed WebSocket. That is a client leaving, not a broker failure: no error, no traceback
    in the log (it failed a served test's clean-log check)."""
    from websockets.sync.client import connect

    connect_packet = bytes.fromhex("101000044d5154540402003c0004") + b"gone"
    subscribe_packet = bytes([0x82, 8, 0, 1, 0, 3]) + b"a/#" + b"\x01"  # id 1, QoS 1
    b = EmbeddedBroker(port=free_port(), ws_port=free_port())
    with caplog.at_level(logging.DEBUG), b:
        for _ in range(30):
            ws = connect(f"ws://127.0.0.1:{b.ws_port}/", subprotocols=["mqtt"])  # type: ignore[list-item]
            ws.send(connect_packet)
            ws.recv(timeout=5)  # CONNACK
            ws.send(subscribe_packet)
            ws.close(code=1001)  # going away, before the SUBACK is read
        time.sleep(0.5)
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not failures, [r.getMessage() for r in failures]
