"""A private Mosquitto with the project's configuration keeps what it accepted.

These tests start their own broker from config/deploy/mosquitto/roadwatch.conf
(tests/support/mosquitto.py), never the shared system Mosquitto, and record
what Mosquitto 2.0.11 does with the platform's persistent, manually
acknowledged session: the facts CONTRACT 1 ("Delivery") relies on.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.mosquitto import (
    MOSQUITTO_BIN,
    PROJECT_CONF,
    MosquittoProcess,
    MqttTestClient,
    parse_conf,
    run_mosquitto,
)

pytestmark = pytest.mark.integration

if not MOSQUITTO_BIN.exists() and shutil.which("mosquitto") is None:
    reason = f"{MOSQUITTO_BIN} is not installed"
    if os.environ.get("ROADWATCH_REQUIRE_SERVICES") == "1":
        pytest.fail(reason + " (required under ./test.sh and in CI)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)

REPORTS = "roadwatch/v1/reports/+"
TOPIC = "roadwatch/v1/reports/zz-jinshui-0421"
INGEST_ID = "roadwatch-ingest-test"


def ingest_client(broker: MosquittoProcess) -> MqttTestClient:
    """The platform's subscriber as CONTRACT 1 describes it."""
    return MqttTestClient(
        broker.host, broker.port, INGEST_ID, clean_session=False, manual_ack=True
    ).connect()


def test_private_broker_runs_the_project_config(tmp_path: Path) -> None:
    project = parse_conf(PROJECT_CONF.read_text(encoding="utf-8"))
    with run_mosquitto(tmp_path) as broker:
        for option in (
            "per_listener_settings",
            "persistence",
            "autosave_interval",
            "max_queued_messages",
            "max_queued_bytes",
            "max_inflight_messages",
            "persistent_client_expiration",
        ):
            assert broker.settings[option] == project[option], option
        assert broker.settings["persistence_location"] == [f"{tmp_path / 'mosquitto'}/"]
        assert broker.settings["listener"] == [f"{broker.port} 127.0.0.1"]
        assert broker.url == f"mqtt://127.0.0.1:{broker.port}"

        with MqttTestClient(broker.host, broker.port, "sub") as sub:
            sub.subscribe(REPORTS, qos=1)
            with MqttTestClient(broker.host, broker.port, "pub") as pub:
                pub.publish(TOPIC, b"hello")
            message = sub.get()
            assert (message.topic, message.payload, message.qos) == (TOPIC, b"hello", 1)
    assert not broker.running


def test_unacked_message_survives_subscriber_crash_and_broker_restart(tmp_path: Path) -> None:
    with run_mosquitto(tmp_path) as broker:
        first = ingest_client(broker)
        assert first.session_present is False
        first.subscribe(REPORTS, qos=1)
        with MqttTestClient(broker.host, broker.port, "phone") as phone:
            phone.publish(TOPIC, b"report-1")
        delivered = first.get()
        assert (delivered.payload, delivered.dup) == (b"report-1", False)
        first.crash()  # killed before the database commit, so never acked

        # 1. The subscriber comes back: the broker resends the un-acked
        #    message by itself (no new SUBSCRIBE), flagged as a duplicate.
        second = ingest_client(broker)
        assert second.session_present is True
        again = second.get()
        assert (again.payload, again.dup) == (b"report-1", True)
        assert second.drain(quiet=0.3) == []
        second.crash()  # and dies again before acking

        # A report sent while the platform is down is queued for it.
        with MqttTestClient(broker.host, broker.port, "phone") as phone:
            phone.publish(TOPIC, b"report-2")

        # 2. The broker restarts (SIGTERM saves its database, then it loads it).
        broker.restart()
        third = ingest_client(broker)
        assert third.session_present is True
        after_restart = [third.get(), third.get()]
        assert [(m.payload, m.dup) for m in after_restart] == [
            (b"report-1", True),
            (b"report-2", False),
        ]
        for message in after_restart:
            third.ack(message)
        assert third.drain(quiet=0.3) == []
        third.disconnect()

        # 3. Acked means gone, even across another restart; the subscription
        #    itself persisted, so new reports flow without re-subscribing.
        broker.restart()
        fourth = ingest_client(broker)
        assert fourth.session_present is True
        assert fourth.drain(quiet=0.5) == []
        with MqttTestClient(broker.host, broker.port, "phone") as phone:
            phone.publish(TOPIC, b"report-3")
        fresh = fourth.get()
        assert (fresh.payload, fresh.dup) == (b"report-3", False)
        fourth.ack(fresh)
        fourth.disconnect()


def test_broker_crash_loses_what_arrived_since_the_last_save(tmp_path: Path) -> None:
    """Mosquitto persistence is a snapshot: kill -9 loses the newest messages.

    The phone already holds a PUBACK for them, which is why phones keep each
    report until the platform's application-level ack arrives.
    """
    with run_mosquitto(tmp_path) as broker:
        sub = ingest_client(broker)
        sub.subscribe(REPORTS, qos=1)
        sub.disconnect()
        broker.restart()  # the session is now in the saved database

        with MqttTestClient(broker.host, broker.port, "phone") as phone:
            phone.publish(TOPIC, b"accepted-then-lost")  # PUBACK received
        # The test runs in well under autosave_interval (60 s), so no
        # snapshot was taken since the restart.
        broker.kill()
        broker.start()

        back = ingest_client(broker)
        assert back.session_present is True
        assert back.drain(quiet=0.5) == []
        back.disconnect()


def test_acl_template_confines_each_chief_to_their_own_topics(tmp_path: Path) -> None:
    passwd_bin = shutil.which("mosquitto_passwd")
    if passwd_bin is None:
        pytest.skip("mosquitto_passwd is not installed")
    passwords = tmp_path / "passwd"
    users = {"roadwatch-platform": "platform-secret", "zz-a": "a-secret", "zz-b": "b-secret"}
    for index, (user, password) in enumerate(users.items()):
        create = ["-c"] if index == 0 else []
        subprocess.run([passwd_bin, *create, "-b", str(passwords), user, password], check=True)
    acl = tmp_path / "acl"
    shutil.copy(PROJECT_CONF.with_name("acl.template"), acl)

    def login(broker: MosquittoProcess, user: str) -> MqttTestClient:
        client = MqttTestClient(broker.host, broker.port, f"client-{user}")
        client.client.username_pw_set(user, users[user])
        return client.connect()

    extra = f"password_file {passwords}\nacl_file {acl}"
    with run_mosquitto(tmp_path, allow_anonymous=False, extra_conf=extra) as broker:
        with pytest.raises(ConnectionRefusedError, match="Not authorized"):
            MqttTestClient(broker.host, broker.port, "anonymous").connect()

        platform = login(broker, "roadwatch-platform")
        platform.subscribe(REPORTS, qos=1)
        chief_a = login(broker, "zz-a")
        chief_a.subscribe("roadwatch/v1/acks/zz-a", qos=1)
        chief_b = login(broker, "zz-b")
        # Granted at the protocol level, but nothing will ever arrive.
        chief_b.subscribe("roadwatch/v1/acks/zz-a", qos=1)

        chief_a.publish("roadwatch/v1/reports/zz-a", b"own report")
        assert platform.get().payload == b"own report"
        platform.publish("roadwatch/v1/acks/zz-a", b"ack for a")
        assert chief_a.get().payload == b"ack for a"
        assert chief_b.drain(quiet=0.5) == []

        # Impersonation: acknowledged, dropped, connection closed by the broker.
        impostor = login(broker, "zz-b")
        impostor.publish("roadwatch/v1/reports/zz-a", b"forged")
        assert platform.drain(quiet=0.5) == []
        impostor.client.loop_stop()  # don't let paho reconnect it

        for client in (platform, chief_a, chief_b):
            client.disconnect()


def test_stop_reports_a_broker_that_failed(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="(?s)exited with code 3 at start.*no_such_option"):
        MosquittoProcess(tmp_path, extra_conf="no_such_option 1").start()


def test_free_ports_are_never_handed_out_twice() -> None:
    """A broker's MQTT and WebSocket ports come from two calls in a row; once the OS gave
    the same port to both and the broker could not open its second listener."""
    import socket

    from tests.support.ports import free_port
    from tests.support.server import free_port as server_free_port

    assert server_free_port is free_port  # one helper for every test server
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    for port in ports[:20]:  # and each was free: it can be bound
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
