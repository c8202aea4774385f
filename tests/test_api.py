"""HTTP API through Flask's test client, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections import Counter
from typing import Any

import pytest
from flask.testing import FlaskClient
from PIL import Image

from roadwatch.web import create_app
from tests.support.auth import login
from tests.support.examples import contract_example
from tests.support.images import image_bytes
from tests.support.intake import with_key
from tests.test_pipeline import inbound


@pytest.fixture
def client(login_as: Any, runtime: Any) -> FlaskClient:
    """Here `client` is a logged-in admin (the staff API) with an API key (intake: POST
    /api/reports, /api/photos)."""
    client: FlaskClient = with_key(login_as("admin"), runtime)
    return client


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
    # a district by code or by name, a status as the report's own or its case's
    assert len(client.get("/api/reports?district=JS").get_json()["items"]) == 7
    assert len(client.get("/api/reports?district=金水区").get_json()["items"]) == 7
    assert client.get("/api/reports?district=ZY").get_json()["items"] == []
    cases = Counter(x["case"]["status"] for x in client.get("/api/reports").get_json()["items"])
    assert len(client.get("/api/reports?status=accepted").get_json()["items"]) == 7
    for case, n in cases.items():
        assert len(client.get(f"/api/reports?status={case}").get_json()["items"]) == n
    both = ",".join(cases)
    assert len(client.get(f"/api/reports?status={both}").get_json()["items"]) == 7
    assert client.get("/api/reports?status=invalid,closed").get_json()["items"] == []
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
        ("/api/reports?district=Atlantis", 400, "district"),
        ("/api/reports?status=lost", 400, "status"),
        ("/api/reports?status=,", 400, "status"),
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
    jpeg = image_bytes("JPEG")  # a real image: photos are decoded and cleaned on upload
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
    login(client, runtime)  # issue 15: the public sees a photo only through a public request
    got = client.get(f"/api/photos/{digest}")
    assert got.status_code == 200 and got.mimetype == "image/jpeg"
    assert got.data.startswith(b"\xff\xd8\xff")  # the same picture, re-encoded clean
    got.close()
    assert client.get(f"/api/photos/{'0' * 64}").status_code == 404
    assert client.get("/api/photos/not-a-hash").status_code == 404


@pytest.mark.parametrize("size", [(12_000, 9_000), (40_000, 40_000)])
def test_a_decompression_bomb_is_refused_as_too_many_pixels(
    client: FlaskClient, size: tuple[int, int]
) -> None:
    """A small file that decodes to more than 100 megapixels: 413 too_many_pixels, in plain
    words, never "damaged or cut off" (Pillow's own bomb check fires first: 108 MP is past
    its warning, 1,600 MP past its error)."""
    bomb = io.BytesIO()
    Image.new("1", size).save(bomb, "PNG")  # one bit a pixel: cheap to make, ~200 kB
    res = client.post("/api/photos", data={"photo": (io.BytesIO(bomb.getvalue()), "b.png")})
    assert res.status_code == 413, res.get_json()
    err = res.get_json()["errors"][0]
    assert (err["field"], err["code"]) == ("photo", "too_many_pixels")
    assert "at most 100 megapixels" in err["message"]


def _tiff_ifd(entries: list[tuple[int, int, int, bytes]]) -> bytes:
    """A little-endian TIFF header and one IFD of (tag, type, count, value bytes) entries."""
    import struct

    start = 8 + 2 + 12 * len(entries) + 4
    ifd, extra = struct.pack("<H", len(entries)), b""
    for tag, typ, count, value in entries:
        if len(value) <= 4:
            ifd += struct.pack("<HHI", tag, typ, count) + value.ljust(4, b"\0")
        else:
            ifd += struct.pack("<HHII", tag, typ, count, start + len(extra))
            extra += value
    return b"II*\0" + struct.pack("<I", 8) + ifd + b"\0\0\0\0" + extra


def test_a_turned_photo_with_a_mistyped_exif_tag_is_stored_upright(
    client: FlaskClient, runtime: Any
) -> None:
    """A camera that writes a text tag (Make) as a number and the picture turned on its side
    (Orientation 6): it was a 500 internal_error, the photo lost (Pillow's exif_transpose
    writes the EXIF back and fails on the mistyped tag). Now it is stored, stood upright."""
    import struct

    exif = b"Exif\0\0" + _tiff_ifd(
        [(0x010F, 5, 1, struct.pack("<II", 1, 2)), (0x0112, 3, 1, struct.pack("<H", 6))]
    )
    raw = io.BytesIO()
    Image.new("RGB", (60, 40), (200, 30, 30)).save(raw, "JPEG", exif=exif)
    res = client.post("/api/photos", data={"photo": (io.BytesIO(raw.getvalue()), "a.jpg")})
    assert res.status_code == 201, res.get_json()
    login(client, runtime)
    got = client.get(f"/api/photos/{res.get_json()['sha256']}")
    assert got.status_code == 200
    with Image.open(io.BytesIO(got.data)) as img:
        assert img.size == (40, 60) and len(img.getexif()) == 0
    got.close()


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_a_photo_whose_exif_block_has_no_tiff_header_is_stored_without_it(
    client: FlaskClient, runtime: Any, fmt: str
) -> None:
    """A PNG or WebP whose EXIF chunk does not begin with a TIFF header (II*/MM*, here
    damaged): reading it raised SyntaxError, a 500 internal_error and the photo lost. Now
    the EXIF counts as unreadable (no position, no time) and the photo is stored clean."""
    raw = io.BytesIO()
    exif = b"Exif\0\0XX\0*\0\0\0\x08" + bytes(16)
    Image.new("RGB", (60, 40), (20, 160, 40)).save(raw, fmt, exif=exif)
    res = client.post("/api/photos", data={"photo": (io.BytesIO(raw.getvalue()), "a.img")})
    assert res.status_code == 201, res.get_json()
    login(client, runtime)
    got = client.get(f"/api/photos/{res.get_json()['sha256']}")
    assert got.status_code == 200
    assert b"XX\0*" not in got.data
    with Image.open(io.BytesIO(got.data)) as img:
        assert img.size == (60, 40) and "exif" not in img.info
    got.close()


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


# -- found in the contract audit -------------------------------------------------------------
def _cursor(*parts: Any) -> str:
    import base64

    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "url",
    [
        # cursors that decode but are not ones the server gave out
        "/api/reports?cursor=" + _cursor(1),
        "/api/reports?cursor=" + _cursor(1, 2),
        "/api/reports?cursor=" + _cursor("x", "y"),
        "/api/reports?cursor=" + _cursor("2026-12-01T00:00:00+00:00", 5),
        "/api/reports?cursor=" + _cursor(None),
        "/api/rejected?cursor=" + _cursor("x"),
        "/api/rejected?cursor=" + _cursor(1, 2),
        "/api/rejected?cursor=" + _cursor(None),
        "/api/rejected?cursor=" + _cursor([1]),
        # beyond the INTEGER id columns, or text with NUL: PostgreSQL refused them (500)
        "/api/rejected?cursor=" + _cursor(2**31),
        "/api/rejected?cursor=" + _cursor(10**24),
        "/api/rejected?cursor=" + _cursor(-1),
        "/api/reports?cursor=" + _cursor("2026-12-01T00:00:00+00:00", "a\u0000b"),
        "/api/events?since=2026-12-01T00:00:00Z&cursor=" + _cursor(2**40),
    ],
)
def test_a_forged_cursor_is_a_400_not_a_500(client: FlaskClient, url: str) -> None:
    res = client.get(url)
    assert res.status_code == 400, res.get_data(as_text=True)
    assert res.get_json()["errors"][0]["field"] == "cursor"


@pytest.mark.parametrize("before", [2**31, 2**40, 2**63 - 1])
def test_an_audit_page_before_no_possible_id_is_a_400(client: FlaskClient, before: int) -> None:
    res = client.get(f"/api/audit?before={before}")
    assert res.status_code == 400, res.get_data(as_text=True)
    assert res.get_json()["errors"][0]["field"] == "before"


@pytest.mark.parametrize(
    "bbox",
    ["nan,nan,nan,nan", "114,35,113,34", "113,35,114,34", "-200,-100,200,100", "inf,0,1,1"],
)
def test_a_bbox_that_is_no_box_is_a_400(client: FlaskClient, bbox: str) -> None:
    res = client.get(f"/api/reports?bbox={bbox}")
    assert res.status_code == 400
    assert res.get_json()["errors"][0]["field"] == "bbox"


@pytest.mark.parametrize(
    ("url", "status", "field"),
    [
        # a time whose UTC conversion leaves the years 1-9999
        ("/api/reports?since=0001-01-01T00:00:00%2B14:00", 400, "since"),
        ("/api/reports?until=9999-12-31T23:59:59-14:00", 400, "until"),
        ("/api/rejected?since=0001-01-01T00:00:00%2B14:00", 400, "since"),
        # a NUL in a query (PostgreSQL cannot even compare it)
        ("/api/reports?reporter=%00", 400, "reporter"),
        ("/api/rejected?reporter=a%00b", 400, "reporter"),
        ("/api/segments/%00", 404, "segment_id"),
    ],
)
def test_more_bad_queries_are_4xx_json(
    client: FlaskClient, url: str, status: int, field: str
) -> None:
    res = client.get(url)
    assert res.status_code == status, res.get_data(as_text=True)
    assert res.get_json()["errors"][0]["field"] == field


def test_an_unescaped_plus_in_a_time_still_means_plus(client: FlaskClient, runtime: Any) -> None:
    """`?since=2026-12-05T00:00:00+08:00` typed into a browser arrives with a space."""
    runtime.pipeline.process([inbound(contract_example())])
    res = client.get("/api/reports?since=2000-01-01T00:00:00+08:00")
    assert res.status_code == 200, res.get_json()
    assert len(res.get_json()["items"]) == 1


def test_district_filter_takes_the_name_the_ack_gives(client: FlaskClient) -> None:
    ack = post(client, contract_example()).get_json()
    assert ack["district"] == "金水区"
    by_name = client.get("/api/reports?district=金水区").get_json()["items"]
    by_code = client.get("/api/reports?district=JS").get_json()["items"]
    assert [x["id"] for x in by_name] == [x["id"] for x in by_code] == [ack["id"]]


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
def test_a_report_that_is_not_json_is_415_and_kept(client: FlaskClient, content_type: str) -> None:
    body = json.dumps(contract_example()).encode()
    res = client.post("/api/reports", data=body, content_type=content_type)
    assert res.status_code == 415
    ack = res.get_json()
    assert ack["status"] == "rejected"
    assert ack["errors"][0]["field"] == "content_type"
    assert "application/json" in ack["errors"][0]["message"]
    kept = client.get("/api/rejected").get_json()["items"][-1]
    assert kept["errors"][0]["code"] == "unsupported_media_type"
    assert base64.b64decode(kept["raw_base64"]) == body


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "application/merge+json", None]
)
def test_json_content_types_and_none_are_taken(client: FlaskClient, content_type: Any) -> None:
    body = json.dumps(contract_example()).encode()
    res = client.post("/api/reports", data=body, content_type=content_type)
    assert res.status_code == 201, res.get_json()


def test_health_never_shows_the_brokers_password(client: FlaskClient, runtime: Any) -> None:
    settings = runtime.settings
    try:
        runtime.settings = settings.replace(mqtt_url="mqtt://platform:s3cret-pw@127.0.0.1:1883")
        text = client.get("/healthz").get_data(as_text=True)
    finally:
        runtime.settings = settings
    assert "s3cret-pw" not in text
    assert "mqtt://platform:***@127.0.0.1:1883" in text


def test_photo_types_are_configurable(client: FlaskClient, runtime: Any) -> None:
    """CONTRACT 3: 'size and type limits are configurable'."""
    gif, png = image_bytes("GIF"), image_bytes("PNG")
    settings = runtime.settings
    try:
        assert (
            client.post("/api/photos", data={"photo": (io.BytesIO(gif), "a.gif")}).status_code
            == 415
        )
        runtime.settings = settings.replace(photo_types="jpeg,gif")
        res = client.post("/api/photos", data={"photo": (io.BytesIO(gif), "a.gif")})
        assert res.status_code in (200, 201) and res.get_json()["type"] == "image/gif"
        res = client.post("/api/photos", data={"photo": (io.BytesIO(png), "a.png")})
        assert res.status_code == 415
        assert "JPEG or GIF" in res.get_json()["errors"][0]["message"]
        digest = hashlib.sha256(gif).hexdigest()
        login(client, runtime)  # issue 15: staff see every photo
        with client.get(f"/api/photos/{digest}") as got:
            assert got.status_code == 200 and got.mimetype == "image/gif"
    finally:
        runtime.settings = settings


def test_metrics_show_every_outcome_from_the_start() -> None:
    """A rate() or an alert on rejections needs the series before the first rejection."""
    from prometheus_client.parser import text_string_to_metric_families

    from roadwatch.metrics import Metrics

    text = Metrics().render().decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }
    for status in ("accepted", "duplicate", "needs_review", "rejected"):
        assert samples[("roadwatch_messages_outcome_total", (("status", status),))] == 0
    for transport in ("mqtt", "http"):
        key = (("kind", "report"), ("transport", transport))
        assert samples[("roadwatch_messages_in_total", key)] == 0


def test_a_photo_past_the_request_limit_is_named_as_a_photo(runtime: Any) -> None:
    """Uploads far past max_photo_bytes are cut off by the request limit itself; the answer
    must still say what is wrong in the photo's terms."""
    settings = runtime.settings
    runtime.settings = settings.replace(max_photo_bytes=1000)
    try:
        app, _ = create_app(runtime)
        client = with_key(app.test_client(), runtime)
        big = b"\xff\xd8\xff\xe0" + b"\x00" * 300_000
        res = client.post("/api/photos", data={"photo": (io.BytesIO(big), "a.jpg")})
    finally:
        runtime.settings = settings
        runtime.broadcaster.emitter = None
    assert res.status_code == 413
    err = res.get_json()["errors"][0]
    assert (err["field"], err["code"]) == ("photo", "too_large")
    assert "1,000 bytes" in err["message"]


# -- found in the operations audit -----------------------------------------------------------
def test_a_photo_folder_that_cannot_take_it_is_a_plain_503(
    client: FlaskClient, runtime: Any, tmp_path: Any
) -> None:
    """Disk full or a photo folder that cannot be written (here: a file where the folder
    should be, a real OSError) answers 503 storage_unavailable with Retry-After in plain
    words, stores nothing and leaves no half-written part behind (was: 500, a traceback)."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_bytes(b"")
    settings = runtime.settings
    runtime.settings = settings.replace(photo_dir=str(blocker / "photos"))
    png = image_bytes("PNG")
    try:
        res = client.post("/api/photos", data={"photo": (io.BytesIO(png), "a.png")})
    finally:
        runtime.settings = settings
    assert res.status_code == 503
    assert int(res.headers["Retry-After"]) > 0
    err = res.get_json()["errors"][0]
    assert (err["field"], err["code"]) == ("photo", "storage_unavailable")
    assert "retry later" in err["message"] and "Traceback" not in res.get_data(as_text=True)
    assert list(tmp_path.iterdir()) == [blocker]
    # the same photo once the folder can take it: stored as new
    res = client.post("/api/photos", data={"photo": (io.BytesIO(png), "a.png")})
    assert res.status_code == 201


def test_a_database_that_is_away_answers_503_not_500(
    client: FlaskClient, runtime: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL down, restarting or at its connection limit: the staff API answered 500
    internal_error with a traceback in the log; it is 503 unavailable with Retry-After and
    one log line naming the cause (here: a real engine on a port where nothing listens)."""
    from roadwatch.store import db
    from tests.support.mosquitto import free_port

    away = db.make_engine(f"postgresql://nobody@127.0.0.1:{free_port()}/none", connect_timeout_s=2)
    engine, sessions = runtime.engine, runtime.sessions
    runtime.engine, runtime.sessions = away, db.make_sessionmaker(away)
    caplog.set_level("ERROR", logger="roadwatch.web.errors")
    try:
        res = client.get("/api/reports?limit=1")
    finally:
        runtime.engine, runtime.sessions = engine, sessions
        away.dispose()
    assert res.status_code == 503, res.get_data(as_text=True)
    assert int(res.headers["Retry-After"]) > 0
    err = res.get_json()["errors"][0]
    assert (err["field"], err["code"]) == ("server", "unavailable")
    (rec,) = caplog.records
    assert rec.exc_info is None and "the database is unavailable (" in rec.getMessage()
    assert client.get("/api/reports?limit=1").status_code == 200  # back: as before
