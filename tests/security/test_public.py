"""Issue 15, scope 4: the public surfaces (Open311 and photos) show what the city publishes.

Each test is named after the attack it stops; each attack worked on the code before
(Open311 listed every report with names and internal notes, photos kept their EXIF and were
served to anyone by their hash).
"""

from __future__ import annotations

import io
import json
import math
import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient
from PIL import Image, ImageDraw
from PIL.ExifTags import IFD
from PIL.TiffImagePlugin import IFDRational
from sqlalchemy import select, update

from roadwatch.accounts import chiefs as ca
from roadwatch.accounts.reporters import save_reporter
from roadwatch.store import models
from tests.support.auth import login
from tests.support.examples import contract_example
from tests.support.images import image_bytes
from tests.support.intake import intake_headers
from tests.test_pipeline import inbound

CHIEF = "zz-jinshui-0421"  # the demo city's chief of the contract example's spot


def _report(runtime: Any, reporter: str, **changes: Any) -> dict[str, Any]:
    body = contract_example(reporter_id=reporter, **changes)
    (out,) = runtime.pipeline.process([inbound(body, reporter)])
    assert out.status in ("accepted", "needs_review"), out
    return body


def _hidden_reporter(runtime: Any, kind: str) -> tuple[str, str]:
    rid, name = f"sec-{kind}-{uuid.uuid4().hex[:6]}", f"{kind}检查员{uuid.uuid4().hex[:4]}"
    with runtime.sessions.begin() as s:
        save_reporter(s, rid, kind, name)
    runtime.pipeline.reporters.reload()  # registered just now: known at once, not within 1 s
    return rid, name


def _open311(client: FlaskClient, path: str) -> Any:
    res = client.get(f"/open311/v2/{path}")
    assert res.status_code == 200, res.data[:300]
    return json.loads(res.data)


def _ids(doc: Any) -> set[str]:
    return {r["service_request_id"] for r in doc}


# -- Open311 -----------------------------------------------------------------------------------
def test_open311_does_not_leak_covert_or_evaluator_findings(
    client: FlaskClient, runtime: Any
) -> None:
    covert, _ = _hidden_reporter(runtime, "covert")
    evaluator, _ = _hidden_reporter(runtime, "evaluator")
    public = _report(runtime, CHIEF, note="public request")
    secret = [
        _report(runtime, covert, note="暗访发现：店外经营"),
        _report(runtime, evaluator, note="测评发现：占道"),
    ]
    listed = _open311(client, "requests.json")
    assert _ids(listed) == {public["report_id"]}
    xml = client.get("/open311/v2/requests.xml").get_data(as_text=True)
    for body in secret:
        assert body["report_id"] not in xml and body["note"] not in xml
        # asked for by id, in the list or one by one: as if it did not exist
        picked = _open311(client, f"requests.json?service_request_id={body['report_id']}")
        assert picked == []
        assert client.get(f"/open311/v2/requests/{body['report_id']}.json").status_code == 404


def test_open311_does_not_list_reports_in_review_or_judged_invalid(
    client: FlaskClient, runtime: Any
) -> None:
    public = _report(runtime, CHIEF)
    review = _report(runtime, CHIEF, lat=34.90, lon=113.20, crs="WGS84", note="far off")
    invalid = _report(runtime, CHIEF)
    with runtime.sessions.begin() as s:
        row = s.get(models.Report, review["report_id"])
        assert row is not None
        row.status, row.case_status = "needs_review", "needs_review"
        bad = s.get(models.Report, invalid["report_id"])
        assert bad is not None
        bad.case_status = "invalid"
    assert _ids(_open311(client, "requests.json")) == {public["report_id"]}


def test_open311_names_no_one_and_shows_no_internal_notes(
    client: FlaskClient, runtime: Any
) -> None:
    body = _report(runtime, CHIEF)
    internal = f"内部意见：{uuid.uuid4().hex[:8]} 请区领导约谈"
    with runtime.sessions.begin() as s:
        row = s.get(models.Report, body["report_id"])
        assert row is not None and row.assignee_id
        s.add(
            models.ReportTransition(
                report_id=row.id,
                at=models.utcnow(),
                from_status="dispatched",
                to_status="dispatched",
                by="admin",
                note=internal,
            )
        )
        names = {
            p.name
            for p in s.scalars(
                select(models.Reporter).where(models.Reporter.id.in_([CHIEF, row.assignee_id]))
            )
        }
    assert names
    for fmt in ("json", "xml"):
        for path in (f"requests.{fmt}", f"requests/{body['report_id']}.{fmt}"):
            text = client.get(f"/open311/v2/{path}").get_data(as_text=True)
            assert body["report_id"] in text
            assert internal not in text and "约谈" not in text
            for name in names:
                assert name not in text, f"{name} named in {path}"
    (req,) = _open311(client, f"requests/{body['report_id']}.json")
    assert req["status_notes"].startswith("dispatched")  # a fixed public text
    assert req["agency_responsible"]  # the post (its district and title), not its holder


def test_open311_positions_can_be_coarsened(
    client: FlaskClient, runtime: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        runtime, "settings", runtime.settings.replace(open311_location_precision_m=500.0)
    )
    a = _report(runtime, CHIEF)
    b = _report(runtime, CHIEF, lat=34.77291, lon=113.68361)  # ~14 m from a
    with runtime.sessions() as s:
        exact = {r.id: (r.lat, r.lon) for r in s.scalars(select(models.Report))}
    shown = {
        r["service_request_id"]: (r["lat"], r["long"]) for r in _open311(client, "requests.json")
    }
    assert set(shown) == {a["report_id"], b["report_id"]}
    for rid, (lat, lon) in shown.items():
        e_lat, e_lon = exact[rid]
        assert (lat, lon) != (e_lat, e_lon)
        dy = (lat - e_lat) * 111_320
        dx = (lon - e_lon) * 111_320 * math.cos(math.radians(e_lat))
        assert math.hypot(dx, dy) <= 500 * math.sqrt(2) / 2 + 1  # within its 500 m cell
    # a box around the exact position that misses its cell's centre finds nothing
    lat, lon = exact[a["report_id"]]
    cell_lat, cell_lon = shown[a["report_id"]]
    if (lat, lon) != (cell_lat, cell_lon):
        d = 0.0002
        box = f"{lon - d},{lat - d},{lon + d},{lat + d}"
        inside = abs(cell_lat - lat) <= d and abs(cell_lon - lon) <= d
        found = _ids(_open311(client, f"requests.json?bbox={box}"))
        assert (a["report_id"] in found) == inside
    # and a box around the shown position finds it
    box = f"{cell_lon - 1e-4},{cell_lat - 1e-4},{cell_lon + 1e-4},{cell_lat + 1e-4}"
    assert a["report_id"] in _ids(_open311(client, f"requests.json?bbox={box}"))


# -- photos ------------------------------------------------------------------------------------
LAT, LON, BEARING = (34, 46, 22.11), (113, 41, 12.0), 87.5


def _rational(x: float) -> IFDRational:
    return IFDRational(round(x * 100), 100)


def _jpeg_with_exif() -> bytes:
    """A 60 x 40 camera photo lying on its side (Orientation 6) with GPS, bearing and time."""
    img = Image.new("RGB", (60, 40), (200, 30, 30))
    ImageDraw.Draw(img).rectangle((0, 0, 10, 40), fill=(uuid.uuid4().bytes[0], 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to view
    exif[0x010F], exif[0x0110] = "Apple", "iPhone 15 Pro"
    exif[IFD.GPSInfo] = {
        1: "N",
        2: tuple(_rational(x) for x in LAT),
        3: "E",
        4: tuple(_rational(x) for x in LON),
        16: "T",
        17: _rational(BEARING),
        31: _rational(8.0),
    }
    exif.get_ifd(IFD.Exif).update({36867: "2026:11:23 09:15:02", 36881: "+08:00"})
    out = io.BytesIO()
    img.save(out, "JPEG", exif=exif, comment=b"serial 12345")
    return out.getvalue()


def _chief_client(app: Any, runtime: Any) -> FlaskClient:
    with runtime.sessions.begin() as s:
        s.query(models.ChiefAccount).filter_by(reporter_id=CHIEF).delete()
        password = ca.provision(s, only=[CHIEF]).created[CHIEF]
    phone: FlaskClient = app.test_client()
    res = phone.post("/m/api/session", json={"reporter_id": CHIEF, "password": password})
    assert res.status_code == 200, res.data
    return phone


@pytest.mark.parametrize("path", ["/api/photos", "/m/api/photos"])
def test_uploaded_photo_keeps_no_exif_but_its_position_and_bearing_are_kept(
    app: Any, runtime: Any, path: str
) -> None:
    data = _jpeg_with_exif()
    uploader = _chief_client(app, runtime) if path.startswith("/m/") else app.test_client()
    headers = {} if path.startswith("/m/") else intake_headers(app)
    res = uploader.post(path, data={"photo": (io.BytesIO(data), "IMG_0001.jpg")}, headers=headers)
    assert res.status_code == 201, res.data
    sha = res.get_json()["sha256"]
    staff = app.test_client()
    login(staff, runtime)
    got = staff.get(f"/api/photos/{sha}")
    assert got.status_code == 200
    stored = got.data
    got.close()
    assert b"Exif" not in stored and b"iPhone" not in stored and b"serial" not in stored
    with Image.open(io.BytesIO(stored)) as img:
        assert len(img.getexif()) == 0 and "comment" not in img.info
        assert img.size == (40, 60)  # the orientation was applied before it was dropped
    with runtime.sessions() as s:
        meta = s.get(models.PhotoMeta, sha)
    assert meta is not None
    assert meta.lat == pytest.approx(LAT[0] + LAT[1] / 60 + LAT[2] / 3600, abs=1e-6)
    assert meta.lon == pytest.approx(LON[0] + LON[1] / 60 + LON[2] / 3600, abs=1e-6)
    assert meta.bearing_deg == pytest.approx(BEARING) and meta.bearing_ref == "T"
    assert meta.accuracy_m == pytest.approx(8.0)
    assert meta.taken_at is not None and meta.taken_at.isoformat() == "2026-11-23T01:15:02+00:00"
    assert meta.had_metadata and (meta.width, meta.height) == (40, 60)


def test_covert_findings_photo_is_not_served_to_the_public(
    app: Any, client: FlaskClient, runtime: Any
) -> None:
    covert, _ = _hidden_reporter(runtime, "covert")
    uploads = {}
    for who in ("covert", "public"):
        data = image_bytes("JPEG")
        res = client.post(
            "/api/photos",
            data={"photo": (io.BytesIO(data), f"{who}.jpg")},
            headers=intake_headers(app),
        )
        assert res.status_code == 201, res.data
        uploads[who] = res.get_json()["sha256"]
    secret = _report(runtime, covert, photos=[uploads["covert"]])
    public = _report(runtime, CHIEF, photos=[uploads["public"]])

    anonymous = app.test_client()
    for url in (
        f"/api/photos/{uploads['covert']}",
        f"/api/photos/{uploads['covert']}?request={secret['report_id']}",
        f"/api/photos/{uploads['covert']}?request={public['report_id']}",
    ):
        res = anonymous.get(url)
        assert res.status_code == 404, url  # as if it did not exist
        res.close()

    # A public request's photo still is served, through the request's media_url.
    (req,) = _open311(anonymous, f"requests/{public['report_id']}.json")
    assert req["media_url"] and uploads["public"] in req["media_url"]
    media = req["media_url"].split("://", 1)[1].split("/", 1)[1]
    res = anonymous.get("/" + media)
    assert res.status_code == 200 and res.mimetype == "image/jpeg"
    # a shared cache must ask again before each use: the photo may stop being public
    assert res.headers["Cache-Control"] == "public, no-cache" and res.headers["ETag"]
    etag = res.headers["ETag"]
    res.close()
    again = anonymous.get("/" + media, headers={"If-None-Match": etag})
    assert again.status_code == 304
    again.close()
    with runtime.sessions.begin() as s:  # the request is found covert after all
        s.execute(
            update(models.Report)
            .where(models.Report.id == public["report_id"])
            .values(reporter_id=covert)
        )
    gone = anonymous.get("/" + media, headers={"If-None-Match": etag})
    assert gone.status_code == 404
    gone.close()

    staff = app.test_client()
    login(staff, runtime)
    for sha in uploads.values():  # staff see every photo
        res = staff.get(f"/api/photos/{sha}")
        assert res.status_code == 200
        res.close()


# -- the road chief's phone ------------------------------------------------------------------
def test_checked_chiefs_phone_names_no_covert_checker_or_evaluator(app: Any, runtime: Any) -> None:
    """The chief a covert checker or evaluator found a problem on gets the case on the phone
    (/m/api/me): it reads as a report from anyone else, never with the checker's name or id."""
    hidden = {kind: _hidden_reporter(runtime, kind) for kind in ("covert", "evaluator")}
    found = {  # two problems at one spot: two cases of its chief
        kind: _report(runtime, rid, category=category)["report_id"]
        for (kind, (rid, _)), category in zip(hidden.items(), ("E0504", "E0201"), strict=True)
    }
    with runtime.sessions() as s:
        rows = [s.get(models.Report, rid) for rid in found.values()]
    (chief,) = {r.assignee_id for r in rows if r is not None}
    assert chief
    with runtime.sessions.begin() as s:
        password = ca.provision(s, only=[chief]).created[chief]
    phone = app.test_client()
    res = phone.post("/m/api/session", json={"reporter_id": chief, "password": password})
    assert res.status_code == 200, res.data
    me = phone.get("/m/api/me")
    assert me.status_code == 200, me.data
    cases = {c["id"]: c for c in me.get_json()["cases"]}
    assert set(found.values()) <= set(cases)
    text = me.get_data(as_text=True)
    for kind, (rid, name) in hidden.items():
        assert rid not in text and name not in text, f"the {kind} is named to the chief"
        assert cases[found[kind]]["reporter"] == "其他上报"
        assert cases[found[kind]]["own_report"] is False
