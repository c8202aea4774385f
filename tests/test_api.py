"""HTTP API through Flask's test client, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from roadwatch.web import create_app
from tests.support.auth import login
from tests.support.examples import contract_example
from tests.test_pipeline import inbound


@pytest.fixture
def client(runtime: Any) -> Iterator[FlaskClient]:
    app, _socketio = create_app(runtime)
    client = app.test_client()
    login(client, runtime)  # the staff API needs a login
    yield client
    runtime.broadcaster.emitter = None


def post(client: FlaskClient, body: Any) -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    return client.post("/api/reports", data=data, content_type="application/json")


def test_segments_geojson(client: FlaskClient, runtime: Any) -> None:
    res = client.get("/api/segments")
    assert res.status_code == 200
    doc = res.get_json()
    assert doc["type"] == "FeatureCollection"
    assert len(doc["features"]) == runtime.ctx.size == 2495
    props = doc["features"][0]["properties"]
    assert set(props) >= {
        "id",
        "name",
        "road",
        "from",
        "to",
        "district",
        "length_m",
        "chief",
        "state",
    }
    assert props["chief"]["id"] and props["state"] == {"open": 0, "overdue": 0, "score": 100}
    assert isinstance(doc["seq"], int)
    assert doc["stats"]["reports_today"] == 0 and len(doc["stats"]["day"]) == 10


def test_post_report_same_pipeline_and_ack_body(client: FlaskClient) -> None:
    body = contract_example()
    res = post(client, body)
    assert res.status_code == 201, res.get_json()
    ack = res.get_json()
    assert ack["status"] == "accepted" and ack["id"] == body["report_id"]
    assert ack["segment_name"].startswith("花园路") and ack["district"] == "金水区"
    assert set(ack["snap"]) >= {"distance_m", "confidence", "ambiguous"}
    again = post(client, body)
    assert again.status_code == 200 and again.get_json()["status"] == "duplicate"
    assert client.get("/api/segments").get_json()["stats"]["reports_today"] == 1
    # the segment now shows one open report
    seg = client.get(f"/api/segments/{ack['segment_id']}").get_json()
    assert seg["properties"]["state"]["open"] == 1
    assert any(h["level"] == 3 for h in seg["properties"]["responsibility"])


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b"{broken", 400, "invalid_json"),
        (b"\xff\xfe", 400, "not_utf8"),
        (json.dumps(contract_example(category="E9999")).encode(), 422, "unknown_category"),
        (json.dumps(contract_example(note="x" * 70_000)).encode(), 413, "too_large"),
    ],
)
def test_post_bad_report(client: FlaskClient, raw: bytes, status: int, code: str) -> None:
    res = post(client, raw)
    assert res.status_code == status
    body = res.get_json()
    assert body["status"] == "rejected"
    assert body["errors"][0]["code"] == code and body["errors"][0]["message"]
    rejected = client.get("/api/rejected").get_json()["items"]
    assert rejected[-1]["errors"][0]["code"] == code
    assert rejected[-1]["transport"] == "http"


def test_reports_filters_and_paging(client: FlaskClient, runtime: Any) -> None:
    bodies = [contract_example(category="E0505" if i % 2 else "E0504") for i in range(7)]
    runtime.pipeline.process([inbound(b) for b in bodies])
    page = client.get("/api/reports?limit=3").get_json()
    assert len(page["items"]) == 3 and page["next"]
    seen = [x["id"] for x in page["items"]]
    while page["next"]:
        page = client.get(page["next"].replace("http://localhost", "")).get_json()
        seen += [x["id"] for x in page["items"]]
    assert sorted(seen) == sorted(b["report_id"] for b in bodies)
    assert len(seen) == len(set(seen))
    only = client.get("/api/reports?category=E0505").get_json()["items"]
    assert len(only) == 3 and {x["category"] for x in only} == {"E0505"}
    assert client.get("/api/reports?reporter=nobody").get_json()["items"] == []
    boxed = client.get("/api/reports?bbox=113.0,34.0,114.0,35.0").get_json()["items"]
    assert len(boxed) == 7
    assert client.get("/api/reports?bbox=1,1,2,2").get_json()["items"] == []
    one = client.get(f"/api/reports/{bodies[0]['report_id']}").get_json()
    assert json.loads(one["raw"]) == bodies[0] and one["history"][0]["status"] == "accepted"


@pytest.mark.parametrize(
    ("url", "status", "field"),
    [
        ("/api/reports?limit=0", 400, "limit"),
        ("/api/reports?limit=5000", 400, "limit"),
        ("/api/reports?limit=x", 400, "limit"),
        ("/api/reports?since=yesterday", 400, "since"),
        ("/api/reports?bbox=1,2,3", 400, "bbox"),
        ("/api/reports?cursor=%%%", 400, "cursor"),
        ("/api/reports/unknown", 404, "report_id"),
        ("/api/segments/ZZ-NOPE", 404, "segment_id"),
        ("/api/nothing-here", 404, "request"),
    ],
)
def test_errors_are_json(client: FlaskClient, url: str, status: int, field: str) -> None:
    res = client.get(url)
    assert res.status_code == status
    err = res.get_json()["errors"][0]
    assert err["field"] == field and err["message"]


def test_photo_upload(client: FlaskClient, runtime: Any) -> None:
    jpeg = b"\xff\xd8\xff\xe0" + b"\x00" * 100
    res = client.post("/api/photos", data={"photo": (io.BytesIO(jpeg), "a.jpg")})
    assert res.status_code == 201
    assert res.get_json()["sha256"] == hashlib.sha256(jpeg).hexdigest()
    assert (
        client.post("/api/photos", data={"photo": (io.BytesIO(jpeg), "a.jpg")}).status_code == 200
    )
    res = client.post("/api/photos", data={"photo": (io.BytesIO(b"%PDF-1.4"), "a.pdf")})
    assert res.status_code == 415
    assert res.get_json()["errors"][0]["code"] == "not_an_image"
    assert client.post("/api/photos", data={}).status_code == 400
    digest = hashlib.sha256(jpeg).hexdigest()
    got = client.get(f"/api/photos/{digest}")
    assert got.status_code == 200 and got.data == jpeg and got.mimetype == "image/jpeg"
    got.close()
    assert client.get(f"/api/photos/{'0' * 64}").status_code == 404
    assert client.get("/api/photos/not-a-hash").status_code == 404


def test_health_and_metrics(client: FlaskClient) -> None:
    post(client, contract_example())
    health = client.get("/healthz")
    doc = health.get_json()
    assert doc["checks"]["database"]["ok"] is True
    assert doc["checks"]["network"]["segments"] == 2495
    assert doc["checks"]["broker"]["ok"] is False  # no MQTT in this test
    assert health.status_code == 503
    text = client.get("/metrics").get_data(as_text=True)
    assert 'roadwatch_messages_outcome_total{status="accepted"}' in text
    assert "roadwatch_ingest_latency_seconds_bucket" in text


def test_internal_error_hides_the_stack(
    client: FlaskClient, runtime: Any, monkeypatch: Any
) -> None:
    def boom(*a: Any, **k: Any) -> Any:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(runtime.pipeline, "process", boom)
    res = post(client, contract_example())
    assert res.status_code == 500
    assert "secret" not in res.get_data(as_text=True)
    assert res.get_json()["errors"][0]["code"] == "internal_error"
