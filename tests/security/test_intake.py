"""Issue 15, scope 1: identity on every intake. Each test is an attack that worked on main.

HTTP intake (POST /api/reports, /api/photos) takes an API key bound to one reporter; the
reporter comes from the key; MQTT (and every transport) refuses unknown and disabled
reporters; HTTP intake is rate-limited per identity.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from roadwatch.accounts.reporters import save_reporter, set_disabled
from roadwatch.runtime import Runtime
from roadwatch.store import models
from tests.conftest import MOSQUITTO, make_settings, need_service
from tests.support.auth import login
from tests.support.examples import contract_example
from tests.support.images import image_bytes
from tests.support.intake import CHIEF, api_key, key_headers
from tests.support.server import AckListener, live_server

JPEG = image_bytes("JPEG")  # a real picture: uploads are decoded and cleaned


def _post(client: FlaskClient, body: Any, headers: dict[str, str] | None = None) -> Any:
    data = json.dumps(body, ensure_ascii=False).encode()
    return client.post(
        "/api/reports", data=data, content_type="application/json", headers=headers or {}
    )


def _stored(runtime: Any, report_id: str) -> models.Report | None:
    with runtime.sessions() as s:
        return s.get(models.Report, report_id)


def test_anonymous_http_report_is_refused(client: FlaskClient, runtime: Any) -> None:
    body = contract_example()
    res = _post(client, body)
    assert res.status_code == 401, res.get_data(as_text=True)
    (err,) = res.get_json()["errors"]
    assert err["field"] == "authorization" and err["code"] == "api_key_required"
    assert "API key" in err["message"]
    assert _stored(runtime, body["report_id"]) is None
    # A made-up key is no better than none.
    res = _post(client, body, key_headers("rwk_" + "x" * 43))
    assert res.status_code == 401 and res.get_json()["errors"][0]["code"] == "bad_api_key"
    assert _stored(runtime, body["report_id"]) is None


def test_staff_login_does_not_file_reports(client: FlaskClient, runtime: Any) -> None:
    """A command-centre login is no reporter's identity: staff do not report as others."""
    login(client, runtime)
    body = contract_example()
    assert _post(client, body).status_code == 401
    assert _stored(runtime, body["report_id"]) is None


def test_anonymous_photo_upload_is_refused(client: FlaskClient, runtime: Any) -> None:
    folder = Path(runtime.settings.photo_dir)

    def stored() -> set[Path]:
        return set(folder.rglob("*")) if folder.exists() else set()

    before = stored()
    res = client.post("/api/photos", data={"photo": (io.BytesIO(JPEG), "a.jpg")})
    assert res.status_code == 401, res.get_data(as_text=True)
    assert res.get_json()["errors"][0]["code"] == "api_key_required"
    assert stored() == before  # nothing of the anonymous upload was kept
    # With a key the same upload is taken.
    ok = client.post(
        "/api/photos",
        data={"photo": (io.BytesIO(JPEG), "a.jpg")},
        headers=key_headers(api_key(runtime)),
    )
    assert ok.status_code in (200, 201) and len(ok.get_json()["sha256"]) == 64


def test_forged_reporter_over_http_is_refused_and_not_stored(
    client: FlaskClient, runtime: Any
) -> None:
    """The key of a road chief posting as a registered evaluator (weight 3 in the ranking)."""
    evaluator = f"EVAL-{uuid.uuid4().hex[:6]}"
    with runtime.sessions.begin() as s:
        save_reporter(s, evaluator, "evaluator")
    key = api_key(runtime, CHIEF)
    body = contract_example(reporter_id=evaluator)
    res = _post(client, body, key_headers(key))
    assert res.status_code == 403, res.get_data(as_text=True)
    ack = res.get_json()
    assert ack["status"] == "rejected"
    (err,) = ack["errors"]
    assert err["field"] == "reporter_id" and err["code"] == "not_you"
    assert CHIEF in err["message"] and evaluator in err["message"]
    assert _stored(runtime, body["report_id"]) is None
    with runtime.sessions() as s:
        rej = s.scalars(
            select(models.RejectedMessage).where(
                models.RejectedMessage.message_id == body["report_id"]
            )
        ).one()
    assert rej.reporter_id == CHIEF and rej.transport == "http"
    assert rej.errors[0]["code"] == "not_you"
    # The same key filing as its own reporter is accepted.
    own = contract_example()
    assert _post(client, own, key_headers(key)).status_code in (201, 202)
    stored = _stored(runtime, own["report_id"])
    assert stored is not None and stored.reporter_id == CHIEF


def test_city_system_key_files_only_as_the_system(client: FlaskClient, runtime: Any) -> None:
    from roadwatch.accounts.apikeys import add_key

    name = f"city-{uuid.uuid4().hex[:6]}"
    with runtime.sessions.begin() as s:
        key = add_key(s, system=name).key
    res = _post(client, contract_example(reporter_id=CHIEF), key_headers(key))
    assert res.status_code == 403 and res.get_json()["errors"][0]["code"] == "not_you"
    body = contract_example(reporter_id=name)
    assert _post(client, body, key_headers(key)).status_code in (201, 202)
    with runtime.sessions() as s:
        assert s.get(models.Reporter, name).kind == "system"  # weight 1, not an evaluator's


def test_key_of_a_disabled_reporter_or_a_revoked_key_is_refused(
    client: FlaskClient, runtime: Any
) -> None:
    from roadwatch.accounts.apikeys import add_key, revoke_key

    rid = f"zz-sec-{uuid.uuid4().hex[:6]}"
    with runtime.sessions.begin() as s:
        save_reporter(s, rid, "person")
        s.flush()
        new = add_key(s, reporter=rid)
    res = _post(client, contract_example(reporter_id=rid), key_headers(new.key))
    assert res.status_code in (201, 202)
    with runtime.sessions.begin() as s:
        set_disabled(s, rid, True)
    res = _post(client, contract_example(reporter_id=rid), key_headers(new.key))
    assert res.status_code == 401 and res.get_json()["errors"][0]["code"] == "bad_api_key"
    with runtime.sessions.begin() as s:
        set_disabled(s, rid, False)
        revoke_key(s, new.id)
    res = _post(client, contract_example(reporter_id=rid), key_headers(new.key))
    assert res.status_code == 401


def test_http_rate_limit_answers_429_with_retry_after_after_a_burst_of_200(
    client: FlaskClient, runtime: Any
) -> None:
    """A phone's backlog of 200 passes at once; a flood from one identity is cut off."""
    headers = key_headers(api_key(runtime))
    for i in range(200):
        body = contract_example(lat=34.77281 + i * 1e-6)
        res = _post(client, body, headers)
        assert res.status_code in (201, 202), (i, res.get_data(as_text=True))
    limited = None
    for _ in range(400):  # the default limit is 300 a minute: cheap refused bodies now
        res = client.post(
            "/api/reports", data=b"{", content_type="application/json", headers=headers
        )
        if res.status_code == 429:
            limited = res
            break
        assert res.status_code == 400
    assert limited is not None, "no 429 after 600 requests in a burst"
    assert 1 <= int(limited.headers["Retry-After"]) <= 3600
    (err,) = limited.get_json()["errors"]
    assert err["code"] == "too_many_requests" and "retry" in err["message"]
    # Another identity is not held back by the first one's flood.
    other = _post(client, contract_example(), key_headers(api_key(runtime)))
    assert other.status_code in (201, 202)


# -- MQTT: unknown and disabled reporters ------------------------------------------------------
@pytest.fixture
def mqtt_platform(tmp_path: Any, network_ctx: Any) -> Iterator[tuple[Runtime, str]]:
    """roadwatch with MQTT ingest on the system Mosquitto, on a topic root of its own."""
    need_service("Mosquitto", *MOSQUITTO)
    root = f"rwsec-{uuid.uuid4().hex[:8]}/v1"
    settings = make_settings(tmp_path, mqtt_topic_root=root, mqtt_url="mqtt://127.0.0.1:1883")
    rt = Runtime.build(settings, ctx=network_ctx)
    with live_server(rt, mqtt_ingest=True):
        assert rt.mqtt is not None and rt.mqtt.subscribed.wait(5)
        yield rt, root
    rt.stop()


def _rejections(rt: Runtime, message_id: str) -> list[models.RejectedMessage]:
    with rt.sessions() as s:
        return list(
            s.scalars(
                select(models.RejectedMessage).where(
                    models.RejectedMessage.message_id == message_id
                )
            )
        )


@pytest.mark.integration
def test_unknown_or_disabled_reporter_over_mqtt_is_refused(
    mqtt_platform: tuple[Runtime, str],
) -> None:
    rt, root = mqtt_platform
    device = AckListener(*MOSQUITTO, root)
    disabled = f"zz-sec-{uuid.uuid4().hex[:6]}"
    with rt.sessions.begin() as s:
        save_reporter(s, disabled, "person")
        s.flush()
        set_disabled(s, disabled, True)
    try:
        # Someone nobody registered, with a topic and payload that agree.
        stranger = f"zz-nobody-{uuid.uuid4().hex[:6]}"
        body = contract_example(reporter_id=stranger)
        device.publish(stranger, body)
        (ack,) = device.collect(1, timeout=15)
        assert ack["_topic"] == f"{root}/acks/{stranger}"
        assert ack["status"] == "rejected" and ack["id"] == body["report_id"]
        assert [e["code"] for e in ack["errors"]] == ["unknown_reporter"]
        assert stranger in ack["errors"][0]["message"]
        assert _stored(rt, body["report_id"]) is None
        (rej,) = _rejections(rt, body["report_id"])
        assert rej.transport == "mqtt" and rej.reporter_id == stranger
        assert rej.errors[0]["code"] == "unknown_reporter"

        # A disabled reporter.
        body = contract_example(reporter_id=disabled)
        device.publish(disabled, body)
        (ack,) = device.collect(1, timeout=15)
        assert ack["status"] == "rejected"
        assert [e["code"] for e in ack["errors"]] == ["disabled_reporter"]
        assert _stored(rt, body["report_id"]) is None
        assert _rejections(rt, body["report_id"])[0].errors[0]["code"] == "disabled_reporter"

        # A registered, enabled chief still gets through (and a reporter registered while
        # the platform runs is let in within a second, not after the cache's lifetime).
        fresh = f"zz-new-{uuid.uuid4().hex[:6]}"
        with rt.sessions.begin() as s:
            save_reporter(s, fresh, "person")
        time.sleep(1.1)
        for rid in (CHIEF, fresh):
            body = contract_example(reporter_id=rid)
            device.publish(rid, body)
            (ack,) = device.collect(1, timeout=15)
            assert ack["status"] in ("accepted", "needs_review"), ack
        with rt.sessions() as s:
            n = s.scalar(
                select(func.count())
                .select_from(models.Report)
                .where(models.Report.reporter_id.in_([stranger, disabled]))
            )
        assert n == 0
    finally:
        device.close()


def _msg(body: dict[str, Any], kind: str, transport: str, reporter: str | None) -> Any:
    from roadwatch.ingest.messages import Inbound

    return Inbound(
        transport=transport,
        kind=kind,
        payload=json.dumps(body, ensure_ascii=False).encode(),
        received_at=models.utcnow(),
        topic=f"roadwatch/v1/{kind}s/{reporter}" if reporter else None,
        topic_reporter=reporter,
    )


def test_pipeline_refuses_unknown_reporters_on_every_transport(runtime: Any) -> None:
    """The check is in the one pipeline: a message that names its reporter only in its
    body (an internal HTTP caller), and a patrol, from someone unknown are refused too."""
    stranger = f"zz-nobody-{uuid.uuid4().hex[:6]}"
    body = contract_example(reporter_id=stranger)
    (out,) = runtime.pipeline.process([_msg(body, "report", "http", None)])
    assert out.status == "rejected" and out.errors[0].code == "unknown_reporter"
    assert _stored(runtime, body["report_id"]) is None
    patrol = {
        "v": 1,
        "patrol_id": str(uuid.uuid4()),
        "reporter_id": stranger,
        "state": "start",
        "crs": "WGS84",
        "points": [],
    }
    (out,) = runtime.pipeline.process([_msg(patrol, "patrol", "mqtt", stranger)])
    assert out.status == "rejected" and out.errors[0].code == "unknown_reporter"
