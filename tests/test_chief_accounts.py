"""Road chiefs' accounts (issue 8): hashes Mosquitto accepts, provisioning, the /m/ API,
and acceptance c: with the files `roadwatch chiefs provision` writes, a real Mosquitto
refuses a chief who publishes as another chief, over TCP and over WebSockets."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from sqlalchemy import select

from roadwatch.accounts import chiefs as ca
from roadwatch.store import models
from tests.support.mosquitto import MOSQUITTO_BIN, MqttTestClient, free_port, run_mosquitto


def js(res: Any) -> dict[str, Any]:
    body = res.get_json()
    assert isinstance(body, dict), res.get_data()
    return body


def _chiefs(rt: Any, n: int) -> list[tuple[str, str]]:
    a = models.Assignment
    with rt.sessions() as s:
        rows = s.execute(
            select(a.reporter_id, a.segment_id)
            .where(a.level == 3, a.valid_to.is_(None))
            .order_by(a.reporter_id)
        ).all()
    out: dict[str, str] = {}
    for rid, sid in rows:
        out.setdefault(rid, sid)
    return list(out.items())[:n]


# -- hashes ------------------------------------------------------------------------------
def test_hash_round_trip_and_malformed_hashes() -> None:
    h = ca.hash_password("秘密 secret")
    assert h.startswith(f"$7${ca.ITERATIONS}$")
    assert ca.verify_password("秘密 secret", h)
    assert not ca.verify_password("secret", h)
    for bad in ("", "plain", "$6$1$abc$def", "$7$x$abc$def", "$7$0$AAAA$AAAA", "$7$5$!!$AAAA"):
        assert not ca.verify_password("secret", bad)


def test_verify_accepts_what_mosquitto_passwd_writes(tmp_path: Path) -> None:
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        if os.environ.get("ROADWATCH_REQUIRE_SERVICES") == "1":
            pytest.fail("mosquitto_passwd is required under ./test.sh", pytrace=False)
        pytest.skip("mosquitto_passwd is not installed")
    path = tmp_path / "pw"
    subprocess.run([tool, "-c", "-b", str(path), "zz-a", "pa55-word"], check=True)
    stored = path.read_text().strip().split(":", 1)[1]
    assert ca.verify_password("pa55-word", stored)
    assert not ca.verify_password("pa55-wort", stored)


def test_render_passwd_keeps_other_users_and_replaces_chiefs() -> None:
    existing = "roadwatch-platform:$7$1$p$p\nzz-a:$7$1$old$old\nmonitor:$7$1$m$m\n"
    out = ca.render_passwd({"zz-a": "$7$1$new$new", "zz-b": "$7$1$b$b"}, existing)
    assert out.splitlines() == [
        "monitor:$7$1$m$m",
        "roadwatch-platform:$7$1$p$p",
        "zz-a:$7$1$new$new",
        "zz-b:$7$1$b$b",
    ]


def test_render_acl_uses_root_and_platform_user() -> None:
    acl = ca.render_acl("city/v2", "ingest")
    assert "user ingest\n" in acl and "user roadwatch-platform" not in acl
    assert "pattern write city/v2/reports/%u" in acl
    assert "pattern read city/v2/acks/%u" in acl
    assert "roadwatch/v1/" not in acl


# -- provisioning ------------------------------------------------------------------------
def test_provision_creates_once_keeps_and_resets(runtime: Any) -> None:
    (a, _), (b, _) = _chiefs(runtime, 2)
    with runtime.sessions.begin() as s:
        s.query(models.ChiefAccount).delete()
        first = ca.provision(s, only=[a, b])
    assert sorted(first.created) == sorted([a, b]) and first.reset == {}
    with runtime.sessions.begin() as s:
        again = ca.provision(s, only=[a, b])
        assert again.created == {} and again.reset == {}
        assert ca.authenticate(s, a, first.created[a]) is not None
        reset = ca.provision(s, only=[a, b], reset=[b])
        assert list(reset.reset) == [b]
        assert ca.authenticate(s, b, first.created[b]) is None
        assert ca.authenticate(s, b, reset.reset[b]) is not None
        assert ca.authenticate(s, "nobody", "x") is None
        with pytest.raises(LookupError, match="no-such-chief"):
            ca.provision(s, only=["no-such-chief"])


# -- the /m/ API -------------------------------------------------------------------------
def test_phone_api_session_data_and_checks(runtime: Any, client: Any) -> None:
    (chief, segment), (other, _) = _chiefs(runtime, 2)
    with runtime.sessions.begin() as s:
        s.query(models.ChiefAccount).delete()
        password = ca.provision(s, only=[chief, other]).created[chief]

    res = client.get("/m/api/me")
    assert res.status_code == 401 and js(res)["errors"][0]["code"] == "signed_out"
    res = client.post("/m/api/session", json={"reporter_id": chief, "password": "wrong"})
    assert res.status_code == 401 and "密码" in js(res)["errors"][0]["message"]
    assert client.post("/m/api/session", data="nope").status_code == 400
    res = client.post("/m/api/session", json={"reporter_id": chief, "password": password})
    assert res.status_code == 200 and js(res)["chief"]["id"] == chief
    assert js(res)["config"]["topic_root"] == runtime.settings.mqtt_topic_root
    assert "Path=/m/" in res.headers["Set-Cookie"] and "HttpOnly" in res.headers["Set-Cookie"]

    seg = runtime.ctx.network.segments[runtime.ctx.position[segment]]
    mid = seg.geometry.interpolate(0.5, normalized=True)
    for _ in range(2):  # the chief's most used category comes first
        body = {
            "v": 1,
            "report_id": str(uuid.uuid4()),
            "reporter_id": chief,
            "observed_at": models.utcnow().isoformat(),
            "lat": mid.y,
            "lon": mid.x,
            "crs": "WGS84",
            "category": "E0112",
        }
        res = client.post("/m/api/reports", data=json.dumps(body))
        assert res.status_code in (201, 202), res.get_data()
    me = js(client.get("/m/api/me"))
    assert me["categories"]["favourites"][0] == "E0112"
    clean = next(g for g in me["categories"]["groups"] if g["label"] == "卫生")
    assert clean["items"][0]["code"] == "E0112" and clean["items"][0]["used"] == 2
    assert [g["label"] for g in me["categories"]["groups"]] == ["秩序", "卫生", "立面", "设施"]
    assert segment in {f["id"] for f in me["segments"]["features"]}

    near = js(client.get(f"/m/api/segments/near?lat={mid.y}&lon={mid.x}&radius=80"))
    assert near["items"][0]["id"] == segment and near["items"][0]["distance_m"] < 1
    dists = [i["distance_m"] for i in near["items"]]
    assert dists == sorted(dists) and all(d <= 80 for d in dists)
    assert client.get("/m/api/segments/near?lat=x&lon=1").status_code == 400

    # Only as oneself; a refused report gets the pipeline's plain-words ack.
    body["reporter_id"], body["report_id"] = other, str(uuid.uuid4())
    res = client.post("/m/api/reports", data=json.dumps(body))
    assert res.status_code == 403 and js(res)["errors"][0]["code"] == "not_you"
    body["reporter_id"], body["category"] = chief, "E0599"
    res = client.post("/m/api/reports", data=json.dumps(body))
    assert res.status_code == 422 and js(res)["status"] == "rejected"
    assert "E0599" in js(res)["errors"][0]["message"]
    # JSON nested past any parser's depth is a plain rejection here too, not a 500
    deep = b'{"a":' * 5000 + b"1" + b"}" * 5000
    res = client.post("/m/api/reports", data=deep, content_type="application/json")
    assert res.status_code == 400 and js(res)["errors"][0]["code"] == "invalid_json"

    res = client.post("/m/api/photos", data={"photo": (io.BytesIO(b"not an image"), "x.jpg")})
    assert res.status_code == 415
    assert client.delete("/m/api/session").status_code == 200
    client.delete_cookie("rw_chief", path="/m/")
    assert client.get("/m/api/me").status_code == 401


def test_sign_in_is_refused_for_a_while_after_many_wrong_passwords(
    runtime: Any, client: Any
) -> None:
    from roadwatch.accounts.throttle import ACCOUNT_FAILURES

    ((chief, _),) = _chiefs(runtime, 1)
    with runtime.sessions.begin() as s:
        s.query(models.ChiefAccount).delete()
        password = ca.provision(s, only=[chief]).created[chief]
    for _ in range(ACCOUNT_FAILURES):
        res = client.post("/m/api/session", json={"reporter_id": chief, "password": "guess"})
        assert res.status_code == 401
    res = client.post("/m/api/session", json={"reporter_id": chief, "password": password})
    assert res.status_code == 429 and "分钟后再试" in js(res)["errors"][0]["message"]
    assert 500 <= int(res.headers["Retry-After"]) <= 600


def test_phone_shell_manifest_and_service_worker(client: Any) -> None:
    def get(url: str) -> tuple[int, dict[str, str], bytes]:
        with client.get(url) as res:  # closes the file send_from_directory opened
            return res.status_code, dict(res.headers), res.get_data()

    status, _, shell = get("/m/")
    assert status == 200 and 'lang="zh-CN"' in shell.decode()
    assert 'rel="manifest"' in shell.decode()
    status, headers, raw = get("/m/manifest.webmanifest")
    assert headers["Content-Type"].startswith("application/manifest+json")
    manifest = json.loads(raw)
    assert manifest["start_url"] == "/m/" and manifest["lang"] == "zh-CN"
    assert {i["sizes"] for i in manifest["icons"]} == {"192x192", "512x512"}
    status, headers, _ = get("/m/sw.js")
    assert status == 200 and headers["Service-Worker-Allowed"] == "/m/"
    for url in (
        "/m/app.js",
        "/static/m/icon-512.png",
        "/static/vendor/mqtt-5.16.0/mqtt.min.js",
    ):
        assert get(url)[0] == 200, url


# -- acceptance c: the broker refuses a chief who publishes as another ------------------
@pytest.mark.integration
def test_broker_refuses_a_chief_publishing_as_another(
    runtime: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runner: Any
) -> None:
    if not MOSQUITTO_BIN.exists():
        if os.environ.get("ROADWATCH_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{MOSQUITTO_BIN} is required under ./test.sh", pytrace=False)
        pytest.skip("mosquitto is not installed")
    from roadwatch.cli import main

    (a, _), (b, _) = _chiefs(runtime, 2)
    with runtime.sessions.begin() as s:
        s.query(models.ChiefAccount).delete()
    passwd, acl, export = tmp_path / "passwd", tmp_path / "acl", tmp_path / "new.csv"
    monkeypatch.setenv("ROADWATCH_DATABASE_URL", runtime.settings.database_url)
    monkeypatch.setenv("ROADWATCH_MQTT_URL", "mqtt://roadwatch-platform:plat-pw@127.0.0.1:1")
    argv = ["chiefs", "provision", "--only", a, b, "--passwd", str(passwd), "--acl", str(acl)]
    r = runner.invoke(main, [*argv, "--export", str(export)])
    assert r.exit_code == 0, r.output
    assert passwd.stat().st_mode & 0o777 == 0o600
    with export.open(encoding="utf-8") as fh:
        passwords = {row["reporter_id"]: row["password"] for row in csv.DictReader(fh)}
    assert sorted(passwords) == sorted([a, b])
    passwords["roadwatch-platform"] = "plat-pw"

    ws_port = free_port()
    extra = f"password_file {passwd}\nacl_file {acl}"
    with run_mosquitto(
        tmp_path, ws_port=ws_port, allow_anonymous=False, extra_conf=extra
    ) as broker:

        def login(user: str, password: str | None = None, **kw: Any) -> MqttTestClient:
            port = ws_port if kw.get("transport") == "websockets" else broker.port
            c = MqttTestClient(broker.host, port, f"t-{user}-{uuid.uuid4().hex[:6]}", **kw)
            c.client.username_pw_set(user, password or passwords[user])
            return c.connect()

        with pytest.raises(ConnectionRefusedError, match="Not authorized"):
            login(a, "wrong password")
        platform = login("roadwatch-platform")
        platform.subscribe("roadwatch/v1/reports/+")
        chief_a = login(a, transport="websockets")  # as the phone app connects
        chief_a.subscribe(f"roadwatch/v1/acks/{a}")
        chief_b = login(b)
        chief_b.subscribe(f"roadwatch/v1/acks/{a}")  # granted on paper, nothing arrives

        chief_a.publish(f"roadwatch/v1/reports/{a}", b"own")
        assert platform.get().payload == b"own"
        platform.publish(f"roadwatch/v1/acks/{a}", b"ack-a")
        assert chief_a.get().payload == b"ack-a"
        assert chief_b.drain(quiet=0.5) == []

        # MQTT 5 says so outright: PUBACK reason 0x87 "Not authorized"; nothing delivered.
        refused: list[int] = []
        v5 = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"v5-{b}",
            protocol=MQTTProtocolVersion.MQTTv5,
            transport="websockets",
        )
        v5.username_pw_set(b, passwords[b])
        v5.on_publish = lambda _c, _u, _mid, rc, _p: refused.append(rc.value)
        v5.connect(broker.host, ws_port)
        v5.loop_start()
        try:
            v5.publish(f"roadwatch/v1/reports/{a}", b"forged", qos=1).wait_for_publish(5)
        finally:
            v5.loop_stop()
        assert refused == [0x87]
        # MQTT 3.1.1 has no way to say no: acknowledged, dropped, disconnected.
        impostor = login(b)
        impostor.publish(f"roadwatch/v1/reports/{a}", b"forged")
        impostor.client.loop_stop()
        assert platform.drain(quiet=0.5) == []
        for c in (platform, chief_a, chief_b):
            c.disconnect()


# -- the embedded broker accepts the app: MQTT over WebSockets with a chief's login -------
@pytest.mark.integration
def test_embedded_broker_serves_the_app_over_websockets(tmp_path: Path, network_ctx: Any) -> None:
    from roadwatch.runtime import Runtime
    from tests.conftest import make_settings

    port, ws_port = free_port(), free_port()
    settings = make_settings(
        tmp_path,
        mqtt_url=f"mqtt://127.0.0.1:{port}",
        embedded_broker="always",
        embedded_ws_port=ws_port,
    )
    rt = Runtime.build(settings, ctx=network_ctx)
    try:
        rt.start_ingest()
        assert rt.phone_ws_url == f"ws://{{host}}:{ws_port}/"
        (chief, segment), *_ = _chiefs(rt, 1)
        seg = rt.ctx.network.segments[rt.ctx.position[segment]]
        mid = seg.geometry.interpolate(0.5, normalized=True)
        phone = MqttTestClient("127.0.0.1", ws_port, f"m-{chief}", transport="websockets")
        phone.client.username_pw_set(chief, "whatever: the demo broker has no accounts")
        phone.client.ws_set_options(path="/")
        with phone:
            phone.subscribe(f"roadwatch/v1/acks/{chief}")
            rid = str(uuid.uuid4())
            body = {
                "v": 1,
                "report_id": rid,
                "reporter_id": chief,
                "observed_at": models.utcnow().isoformat(),
                "lat": mid.y,
                "lon": mid.x,
                "crs": "WGS84",
                "category": "E0504",
            }
            phone.publish(f"roadwatch/v1/reports/{chief}", json.dumps(body).encode())
            ack = json.loads(phone.get(timeout=10).payload)
        assert ack["id"] == rid and ack["status"] == "accepted" and ack["segment_id"] == segment
    finally:
        rt.stop()


def test_taken_websocket_port_leaves_the_app_on_http(tmp_path: Path, network_ctx: Any) -> None:
    import socket

    from roadwatch.runtime import Runtime
    from tests.conftest import make_settings

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        ws_port = busy.getsockname()[1]
        settings = make_settings(
            tmp_path,
            mqtt_url=f"mqtt://127.0.0.1:{free_port()}",
            embedded_broker="always",
            embedded_ws_port=ws_port,
        )
        rt = Runtime.build(settings, ctx=network_ctx)
        try:
            rt.start_ingest()
            assert rt.broker is not None and rt.broker.ws_port is None
            assert rt.phone_ws_url == ""
        finally:
            rt.stop()
