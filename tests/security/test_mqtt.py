"""Issue 15, scopes 2 and 7: what one chief's MQTT messages cannot do to the platform.

Every test that talks MQTT runs against a REAL Mosquitto started here from the project's
config/deploy/mosquitto/roadwatch.conf with its ACL (acl.template, rendered as `chiefs provision`
does) and a password file: the platform and two real chiefs of the demo network log in.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy import func, select

from roadwatch.runtime import Runtime
from roadwatch.settings import SettingsError
from roadwatch.store import models
from tests.conftest import REQUIRE_SERVICES, make_settings
from tests.support.mosquitto import (
    MOSQUITTO_BIN,
    MosquittoProcess,
    free_port,
    write_auth_files,
)

ROOT = "roadwatch/v1"
PLATFORM_USER, PLATFORM_PW = "roadwatch-platform", "platform-secret-pw"
PLATFORM_ID = "roadwatch-platform"  # the public default (config/defaults.toml)


def _need_mosquitto() -> None:
    if MOSQUITTO_BIN.exists():
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"{MOSQUITTO_BIN} is required under ./test.sh", pytrace=False)
    pytest.skip("mosquitto is not installed")


class Device:
    """A chief's client (MQTT 5 by default) that collects what arrives on its topics."""

    def __init__(
        self, port: int, user: str, password: str, *, client_id: str = "", protocol: int = 5
    ) -> None:
        self.user = user
        self.got: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.disconnects = 0
        v5 = protocol == 5
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"dev-{user}-{uuid.uuid4().hex[:6]}",
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        )
        self.client.username_pw_set(user, password)
        self.client.on_message = lambda _c, _u, m: self.got.put(m)
        connected = threading.Event()
        self.client.on_connect = lambda *_a: connected.set()

        def gone(*_a: Any) -> None:
            self.disconnects += 1

        self.client.on_disconnect = gone
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        assert connected.wait(5), f"{user} could not connect"

    def subscribe(self, *topics: str) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *_a: done.set()
        self.client.subscribe([(t, 1) for t in topics])
        assert done.wait(5)

    def publish(
        self, topic: str, payload: bytes, props: Properties | None = None, **kw: Any
    ) -> None:
        info = self.client.publish(topic, payload, qos=1, properties=props, **kw)
        info.wait_for_publish(5)

    def acks(self, quiet: float = 1.5) -> list[mqtt.MQTTMessage]:
        out: list[mqtt.MQTTMessage] = []
        while True:
            try:
                out.append(self.got.get(timeout=quiet))
            except queue.Empty:
                return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class Secured:
    broker: MosquittoProcess
    rt: Runtime
    chiefs: dict[str, str]  # reporter id -> password
    a: str
    b: str
    drops: list[str]  # the platform's connections that ended (ingest or notices)

    def device(self, user: str, **kw: Any) -> Device:
        password = PLATFORM_PW if user == PLATFORM_USER else self.chiefs[user]
        return Device(self.broker.port, user, password, **kw)

    def report(self, reporter: str) -> dict[str, Any]:
        """A valid report on one of `reporter`'s own segments."""
        seg_id = _segment_of(self.rt, reporter)
        seg = self.rt.ctx.network.segments[self.rt.ctx.position[seg_id]]
        mid = seg.geometry.interpolate(0.5, normalized=True)
        return {
            "v": 1,
            "report_id": str(uuid.uuid4()),
            "reporter_id": reporter,
            "observed_at": models.utcnow().isoformat(),
            "lat": mid.y,
            "lon": mid.x,
            "crs": "WGS84",
            "category": "E0504",
        }

    def platform_connections(self) -> int:
        """1 + how often one of the platform's connections was dropped since the start."""
        return 1 + len(self.drops)

    def stored(self) -> tuple[int, int]:
        with self.rt.sessions() as s:
            reports = s.scalar(select(func.count()).select_from(models.Report)) or 0
            rejected = s.scalar(select(func.count()).select_from(models.RejectedMessage)) or 0
        return reports, rejected


def _segment_of(rt: Runtime, reporter: str) -> str:
    a = models.Assignment
    with rt.sessions() as s:
        seg = s.scalar(
            select(a.segment_id)
            .where(a.reporter_id == reporter, a.level == 3, a.valid_to.is_(None))
            .order_by(a.segment_id)
            .limit(1)
        )
    assert seg is not None
    return seg


def _count_drops(client: mqtt.Client, drops: list[str]) -> None:
    original = client.on_disconnect

    def on_disconnect(*args: Any) -> None:
        drops.append(str(args[3]))
        if original is not None:
            original(*args)

    client.on_disconnect = on_disconnect


def _two_chiefs(rt: Runtime) -> list[str]:
    a = models.Assignment
    with rt.sessions() as s:
        ids = s.scalars(
            select(a.reporter_id)
            .where(a.level == 3, a.valid_to.is_(None))
            .group_by(a.reporter_id)
            .order_by(a.reporter_id)
            .limit(2)
        ).all()
    assert len(ids) == 2
    return list(ids)


def _secured(tmp_path: Path, network_ctx: Any, protocol: int = 5) -> Iterator[Secured]:
    _need_mosquitto()
    from roadwatch.accounts import chiefs as ca

    port = free_port()
    settings = make_settings(
        tmp_path,
        mqtt_url=f"mqtt://{PLATFORM_USER}:{PLATFORM_PW}@127.0.0.1:{port}",
        mqtt_client_id=PLATFORM_ID,
        mqtt_protocol=protocol,
    )
    rt = Runtime.build(settings, ctx=network_ctx)
    a, b = _two_chiefs(rt)
    chiefs = {a: "chief-a-pw", b: "chief-b-pw"}
    now = models.utcnow()
    with rt.sessions.begin() as s:  # known, enabled chiefs with the passwords they log in with
        for rid, pw in chiefs.items():
            s.merge(
                models.ChiefAccount(
                    reporter_id=rid,
                    password_hash=ca.hash_password(pw, 1000),
                    created_at=now,
                    password_set_at=now,
                    disabled=False,
                )
            )
    extra = write_auth_files(tmp_path / "auth", {PLATFORM_USER: PLATFORM_PW, **chiefs})
    broker = MosquittoProcess(tmp_path, port=port, allow_anonymous=False, extra_conf=extra)
    broker.start()
    try:
        rt.start_ingest()
        assert rt.mqtt is not None and rt.mqtt.subscribed.wait(10)
        drops: list[str] = []
        for client in (rt.mqtt.client, rt.mqtt.notifier):
            _count_drops(client, drops)
        yield Secured(broker, rt, chiefs, a, b, drops)
    finally:
        rt.stop()
        broker.stop()


@pytest.fixture
def secured(tmp_path: Path, network_ctx: Any) -> Iterator[Secured]:
    yield from _secured(tmp_path, network_ctx)


def _status(msg: mqtt.MQTTMessage) -> str:
    return str(json.loads(msg.payload)["status"])


# -- 1. ResponseTopic ---------------------------------------------------------------------
@pytest.mark.integration
def test_response_topic_into_another_chiefs_ack_topic_is_not_followed(secured: Secured) -> None:
    a = secured.device(secured.a)
    a.subscribe(f"{ROOT}/acks/{secured.a}")
    b = secured.device(secured.b)
    b.subscribe(f"{ROOT}/acks/{secured.b}", f"{ROOT}/notices/{secured.b}")
    try:
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = f"{ROOT}/acks/{secured.b}"  # the platform may write there
        props.CorrelationData = b"corr-1"
        body = secured.report(secured.a)
        a.publish(f"{ROOT}/reports/{secured.a}", json.dumps(body).encode(), props)

        got = a.acks()
        assert b.acks(quiet=0.5) == []  # nothing landed in the other chief's topics
        assert [m.topic for m in got] == [f"{ROOT}/acks/{secured.a}"]  # once, own topic
        assert json.loads(got[0].payload)["id"] == body["report_id"]
        assert getattr(got[0].properties, "CorrelationData", None) == b"corr-1"
    finally:
        a.close()
        b.close()


@pytest.mark.integration
def test_response_topic_the_acl_denies_does_not_disconnect_the_platform(
    secured: Secured,
) -> None:
    a = secured.device(secured.a)
    a.subscribe(f"{ROOT}/acks/{secured.a}")
    b = secured.device(secured.b)
    b.subscribe(f"{ROOT}/acks/{secured.b}")
    try:
        for target in (f"{ROOT}/reports/{secured.b}", "elsewhere/x", f"{ROOT}/acks/{secured.b}/x"):
            props = Properties(PacketTypes.PUBLISH)
            props.ResponseTopic = target  # a publish the platform's ACL denies
            a.publish(
                f"{ROOT}/reports/{secured.a}",
                json.dumps(secured.report(secured.a)).encode(),
                props,
            )
        got = a.acks(quiet=3.0)
        assert sorted(_status(m) for m in got) == ["accepted"] * 3
        assert {m.topic for m in got} == {f"{ROOT}/acks/{secured.a}"}
        # Mosquitto closes a connection that publishes where its ACL says no: the platform
        # connected once, and is still connected and working.
        assert secured.platform_connections() == 1
        assert secured.rt.mqtt is not None and secured.rt.mqtt.connected.is_set()
        b.publish(f"{ROOT}/reports/{secured.b}", json.dumps(secured.report(secured.b)).encode())
        assert [_status(m) for m in b.acks()] == ["accepted"]
        assert secured.platform_connections() == 1
    finally:
        a.close()
        b.close()


# -- 2. client-id takeover ----------------------------------------------------------------
@pytest.mark.integration
def test_chief_using_the_platforms_client_id_cannot_take_its_session(secured: Secured) -> None:
    intruders = [
        secured.device(secured.a, client_id=cid, protocol=3)
        for cid in (
            PLATFORM_ID,
            f"{PLATFORM_ID}-notices",
            f"{PLATFORM_ID}-cases",
            f"{PLATFORM_ID}-outbox",
        )
    ]
    snoop = intruders[0]
    # Neither the platform's shared group nor a wildcard gets a chief anything.
    snoop.subscribe(f"$share/roadwatch/{ROOT}/reports/+", f"{ROOT}/#")
    b = secured.device(secured.b)
    b.subscribe(f"{ROOT}/acks/{secured.b}")
    try:
        time.sleep(2.5)  # paho would have reconnected (and been kicked again) by now
        bodies = [secured.report(secured.b) for _ in range(3)]
        for body in bodies:
            b.publish(f"{ROOT}/reports/{secured.b}", json.dumps(body).encode())
        got = b.acks(quiet=3.0)
        assert sorted(json.loads(m.payload)["id"] for m in got) == sorted(
            x["report_id"] for x in bodies
        )
        assert all(_status(m) == "accepted" for m in got)
        assert secured.platform_connections() == 1  # never kicked off its session
        assert all(i.disconnects == 0 for i in intruders)  # and never kicked them either
        assert snoop.acks(quiet=0.5) == []
    finally:
        for c in (*intruders, b):
            c.close()


# -- 3. oversized and retained messages ---------------------------------------------------
@pytest.mark.integration
def test_oversized_mqtt_message_never_reaches_the_platform(secured: Secured) -> None:
    a = secured.device(secured.a)
    a.subscribe(f"{ROOT}/acks/{secured.a}")
    try:
        body = secured.report(secured.a)
        body["note"] = "x" * 300_000  # 300 KB: no phone sends that
        a.client.publish(f"{ROOT}/reports/{secured.a}", json.dumps(body).encode(), qos=1)
        assert a.acks(quiet=2.0) == []
        assert secured.stored() == (0, 0)  # not even a rejection: it never got here
        assert secured.rt.mqtt is not None and secured.rt.mqtt.connected.is_set()
        assert secured.platform_connections() == 1
    finally:
        a.close()
    # The platform is as healthy as before.
    b = secured.device(secured.b)
    b.subscribe(f"{ROOT}/acks/{secured.b}")
    try:
        b.publish(f"{ROOT}/reports/{secured.b}", json.dumps(secured.report(secured.b)).encode())
        assert [_status(m) for m in b.acks()] == ["accepted"]
    finally:
        b.close()


@pytest.mark.integration
@pytest.mark.parametrize("protocol", [5, 3], ids=["mqtt5", "mqtt311"])
def test_retained_message_is_not_ingested_again_on_resubscribe(
    tmp_path: Path, network_ctx: Any, protocol: int
) -> None:
    for sec in _secured(tmp_path, network_ctx, protocol):
        a = sec.device(sec.a)
        a.subscribe(f"{ROOT}/acks/{sec.a}")
        try:
            body = sec.report(sec.a)
            a.publish(f"{ROOT}/reports/{sec.a}", json.dumps(body).encode(), retain=True)
            a.publish(f"{ROOT}/reports/{sec.a}", b"\x00not json", retain=True)
            first = a.acks()
            assert sorted(_status(m) for m in first) == ["accepted", "rejected"]
            assert sec.stored() == (1, 1)
            before = _seen(sec.rt)
            # The platform restarts (a new connection, a new SUBSCRIBE), twice.
            for _ in range(2):
                _restart_ingest(sec.rt)
            assert a.acks(quiet=2.0) == []  # no second ack, no "duplicate"
            assert _seen(sec.rt) == before
            assert sec.stored() == (1, 1)  # the bad one is not stored again either
        finally:
            a.close()


def _seen(rt: Runtime) -> float:
    """MQTT messages the pipeline has been given so far."""
    return sum(
        rt.metrics.messages_in.labels("mqtt", k)._value.get()
        for k in ("report", "rectification", "verification", "patrol")
    )


def _restart_ingest(rt: Runtime) -> None:
    from roadwatch.ingest.mqtt import MqttIngest

    assert rt.mqtt is not None
    old, s = rt.mqtt, rt.settings
    old.stop()
    rt.mqtt = MqttIngest(
        rt.pipeline,
        host=s.mqtt_host,
        port=s.mqtt_port,
        client_id=s.mqtt_client_id,
        protocol=s.mqtt_protocol,
        session_expiry_s=s.mqtt_session_expiry_s,
        username=s.mqtt_username,
        password=s.mqtt_password,
    )
    rt.mqtt.start()
    assert rt.mqtt.subscribed.wait(10)


# -- 3. the inbox between paho and the ingest worker --------------------------------------
class _StuckPipeline:
    """A pipeline whose worker never gets to run: nothing leaves the inbox."""

    settings = None

    def process(self, _batch: Any) -> list[Any]:  # pragma: no cover - never called
        raise AssertionError("not started")


def _message(topic: str, payload: bytes, qos: int, mid: int = 0) -> mqtt.MQTTMessage:
    msg = mqtt.MQTTMessage(mid=mid, topic=topic.encode())
    msg.payload = payload
    msg.qos = qos
    return msg


def _queued(ingest: Any) -> int:
    q = ingest._queue
    return q.qsize() if hasattr(q, "qsize") else len(q)


def test_qos0_flood_does_not_grow_the_platforms_queue_past_its_bound() -> None:
    from roadwatch.ingest.mqtt import MqttIngest
    from roadwatch.metrics import Metrics

    kw: dict[str, Any] = {"metrics": Metrics()}
    try:
        ingest = MqttIngest(
            _StuckPipeline(),  # type: ignore[arg-type]
            host="127.0.0.1",
            port=1,
            client_id="flood-test",
            **kw,
        )
    except TypeError:  # today's code takes no metrics
        kw = {}
        ingest = MqttIngest(
            _StuckPipeline(),  # type: ignore[arg-type]
            host="127.0.0.1",
            port=1,
            client_id="flood-test",
        )
    payload = b"x" * 2048
    for _ in range(30_000):  # 60 MB of QoS 0 reports while the worker is busy
        ingest._on_message(ingest.client, None, _message(f"{ROOT}/reports/zz-a", payload, 0))
    assert _queued(ingest) <= 5000
    if kw:
        counted = kw["metrics"].mqtt_not_ingested.labels("queue_full")._value.get()
        assert counted == 30_000 - _queued(ingest)


@pytest.mark.parametrize("protocol", [5, 4])
def test_a_refused_platform_subscription_is_an_error_not_a_ready_worker(protocol: int) -> None:
    """Mosquitto 2.0 grants a SUBSCRIBE its ACL denies (acl.template), but brokers such as
    EMQX or HiveMQ refuse it in the SUBACK. The ingest must then not count as ready
    (nothing would ever arrive) and must say why; a granted SUBACK makes it ready. The
    SUBACKs here are paho's own reason codes, as its network thread hands them over."""
    from paho.mqtt.reasoncodes import ReasonCode

    from roadwatch.ingest.mqtt import MqttIngest

    def ingest() -> MqttIngest:
        i = MqttIngest(
            _StuckPipeline(),  # type: ignore[arg-type]
            host="127.0.0.1",
            port=1,
            client_id="refused-test",
            protocol=protocol,
        )
        i._subscribe_mid = 7
        return i

    refused_code = 0x87 if protocol == 5 else 0x80  # Not authorized / Failure
    refused = ingest()
    refused._on_subscribe(
        refused.client, None, 7, [ReasonCode(PacketTypes.SUBACK, identifier=refused_code)], None
    )
    assert not refused.subscribed.is_set()
    assert refused.last_error is not None
    assert refused.last_error.startswith("subscription refused by the broker")
    granted = ingest()
    qos1 = ReasonCode(PacketTypes.SUBACK, identifier=1)
    granted._on_subscribe(granted.client, None, 8, [qos1], None)  # another request's SUBACK
    assert not granted.subscribed.is_set()
    granted._on_subscribe(granted.client, None, 7, [qos1], None)
    assert granted.subscribed.is_set() and granted.last_error is None


def test_inbox_holds_qos1_back_instead_of_dropping_it() -> None:
    from roadwatch.ingest.mqtt import Inbox

    inbox = Inbox(max_acked_items=3, max_qos0_items=2, max_bytes=1000)
    for i in range(3):
        assert inbox.put(("q1", i), 1, 10)
    assert inbox.put(("q0", 0), 0, 10) and inbox.put(("q0", 1), 0, 10)
    assert not inbox.put(("q0", 2), 0, 10)  # QoS 0 beyond its share: dropped, counted
    assert inbox.dropped == 1
    waiting = threading.Thread(target=inbox.put, args=(("q1", 3), 1, 10))
    waiting.start()  # a fourth QoS 1 message waits (backpressure on paho's thread)
    waiting.join(0.3)
    assert waiting.is_alive() and len(inbox) == 5
    assert inbox.get(0) == ("q1", 0)  # the worker takes one: the waiting one gets in
    waiting.join(2)
    assert not waiting.is_alive()
    assert [inbox.get(0) for _ in range(5)] == [
        ("q1", 1),
        ("q1", 2),
        ("q0", 0),
        ("q0", 1),
        ("q1", 3),
    ]
    # The byte budget: one big QoS 0 message is refused, a big QoS 1 one gets in alone.
    assert not inbox.put(("big0", 0), 0, 2000)
    assert inbox.put(("big1", 0), 1, 2000)
    assert inbox.bytes == 2000


# -- 7. the embedded broker ---------------------------------------------------------------
def test_explicit_mqtt_url_that_is_down_gets_no_embedded_broker(
    tmp_path: Path, network_ctx: Any
) -> None:
    port = free_port()
    settings = make_settings(
        tmp_path,
        mqtt_url=f"mqtt://{PLATFORM_USER}:{PLATFORM_PW}@127.0.0.1:{port}",
        embedded_broker="auto",
        embedded_ws_port=0,
    )
    rt = Runtime.build(settings, ctx=network_ctx)
    try:
        with pytest.raises(SettingsError) as err:
            rt.start_ingest()
        message = str(err.value)
        assert message.startswith("ROADWATCH_MQTT_URL:") and "\n" not in message
        assert PLATFORM_PW not in message
        assert rt.broker is None
        from roadwatch.ingest.embedded_broker import is_listening

        assert not is_listening("127.0.0.1", port)  # nobody anonymous took its place
    finally:
        rt.stop()


def test_default_mqtt_url_still_gets_the_embedded_broker_when_nothing_listens(
    tmp_path: Path, network_ctx: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import roadwatch.runtime as runtime_mod

    settings = make_settings(tmp_path, embedded_broker="auto")  # run.sh: nothing set
    assert settings.mqtt_url == runtime_mod.DEFAULT_MQTT_URL
    rt = Runtime.build(settings, ctx=network_ctx)
    try:
        monkeypatch.setattr(runtime_mod, "is_listening", lambda *_a: False)
        assert rt._use_embedded_broker() is True
        monkeypatch.setattr(runtime_mod, "is_listening", lambda *_a: True)
        assert rt._use_embedded_broker() is False
    finally:
        rt.stop()


def test_embedded_broker_listens_on_loopback_only(tmp_path: Path, network_ctx: Any) -> None:
    from roadwatch.ingest.embedded_broker import EmbeddedBroker, is_listening

    port = free_port()
    settings = make_settings(
        tmp_path, mqtt_url=f"mqtt://0.0.0.0:{port}", embedded_broker="always", embedded_ws_port=0
    )
    rt = Runtime.build(settings, ctx=network_ctx)
    try:
        with pytest.raises(SettingsError, match="^ROADWATCH_EMBEDDED_BROKER: .*loopback"):
            rt.start_ingest()
        assert rt.broker is None and not is_listening("127.0.0.1", port)
    finally:
        rt.stop()
    with pytest.raises(RuntimeError, match="loopback only"):
        EmbeddedBroker("0.0.0.0", port).start()
    # The loopback one still starts (run.sh's demo).
    with EmbeddedBroker("127.0.0.1", port) as broker:
        assert is_listening("127.0.0.1", broker.port)
