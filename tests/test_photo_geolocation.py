"""Issue 21, scope 3: a report is placed with its photo's EXIF position and camera direction.

Through the real intake (POST /api/photos, then POST /api/reports naming the photo) on the
bundled demo network, and geolocate's own rules on PhotoFix values (no database).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import math
import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient
from PIL import Image
from PIL.ExifTags import IFD
from PIL.TiffImagePlugin import IFDRational
from sqlalchemy import event

from geo.crs import to_wgs84
from roadwatch.geolocate import PhotoFix, place, place_many
from roadwatch.ingest.payloads import ReportIn
from roadwatch.network.context import NetworkContext
from roadwatch.store import models
from tests.support.examples import CST, contract_example
from tests.support.intake import intake_headers
from tests.test_pipeline import inbound

# The contract example's spot (GCJ-02 in the example) in WGS84: on 花园路, ZZ-JS-0123, the
# only segment within 120 m.
HUAYUAN = "ZZ-JS-0123"
_lon, _lat = to_wgs84(113.68352, 34.77281, "GCJ02")
SPOT = (float(_lon), float(_lat))
# Between two parallel streets of the demo network: ZZ-JS-0238 lies north of this point,
# ZZ-JS-0003 23 m south; the fix leans to the northern one but is far from certain.
BETWEEN = (113.64173963826627, 34.83106698955099)
NORTH, SOUTH = "ZZ-JS-0238", "ZZ-JS-0003"
CATEGORY = "E0507"  # piled materials: neither carriageway nor frontage (no offset prior)


def _dms(deg: float) -> tuple[IFDRational, IFDRational, IFDRational]:
    d = int(deg)
    m = int((deg - d) * 60)
    s = (deg - d - m / 60) * 3600
    return IFDRational(d, 1), IFDRational(m, 1), IFDRational(round(s * 10_000), 10_000)


def jpeg(
    lon: float | None,
    lat: float | None,
    *,
    bearing: float | None = None,
    ref: str = "T",
    accuracy_m: float | None = None,
    taken: dt.datetime | None = None,
) -> bytes:
    """A small camera photo with EXIF GPS (WGS84), GPSImgDirection and the time taken."""
    img = Image.new("RGB", (48, 32), (uuid.uuid4().bytes[0], 120, 40))
    exif = Image.Exif()
    gps: dict[int, Any] = {}
    if lon is not None and lat is not None:
        gps.update({1: "N", 2: _dms(lat), 3: "E", 4: _dms(lon)})
    if bearing is not None:
        gps.update({16: ref, 17: IFDRational(round(bearing * 100), 100)})
    if accuracy_m is not None:
        gps[31] = IFDRational(round(accuracy_m * 100), 100)
    exif[IFD.GPSInfo] = gps
    when = (taken or dt.datetime.now(CST)).astimezone(CST)
    exif.get_ifd(IFD.Exif).update({36867: when.strftime("%Y:%m:%d %H:%M:%S"), 36881: "+08:00"})
    # ImageUniqueID: two photos made alike in the same second are still two photos (their
    # colour alone, one byte, let tests share a SHA-256 now and then)
    exif.get_ifd(IFD.Exif)[42016] = uuid.uuid4().hex
    out = io.BytesIO()
    img.save(out, "JPEG", exif=exif)
    return out.getvalue()


def upload(app: Any, client: FlaskClient, data: bytes) -> str:
    res = client.post(
        "/api/photos",
        data={"photo": (io.BytesIO(data), "IMG.jpg")},
        headers=intake_headers(app),
    )
    assert res.status_code == 201, res.data
    sha: str = res.get_json()["sha256"]
    return sha


def report(app: Any, client: FlaskClient, **changes: Any) -> tuple[Any, models.Report | None]:
    """POST /api/reports (the contract example with `changes`); the answer and the row."""
    body = contract_example(category=CATEGORY, heading_deg=None, **changes)
    res = client.post("/api/reports", json=body, headers=intake_headers(app))
    from roadwatch.web import runtime_of

    with runtime_of(app).sessions() as s:
        row = s.get(models.Report, body["report_id"])
        if row is not None:
            s.expunge(row)
    return res, row


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    k = math.cos(math.radians(a[1]))
    return 6_371_000 * math.hypot(math.radians(b[0] - a[0]) * k, math.radians(b[1] - a[1]))


# -- through the real intake -----------------------------------------------------------------
def test_a_report_without_position_is_placed_at_its_photo_s(app: Any, client: FlaskClient) -> None:
    sha = upload(app, client, jpeg(*SPOT, accuracy_m=6.0))
    # a hand-picked segment is now checked against the photo's fix and stored with it
    res, row = report(app, client, lat=None, lon=None, segment_hint=HUAYUAN, photos=[sha])
    assert res.status_code == 201, res.data
    assert row is not None and row.segment_id == HUAYUAN and row.status == "accepted"
    assert (row.lat_in, row.lon_in) == (None, None)  # what the phone sent, kept as sent
    assert row.lat is not None and row.lon is not None
    assert metres((row.lon, row.lat), SPOT) < 0.5
    assert row.snap["position"] == "photo" and row.snap["photo"] == sha
    assert row.snap["method"] == "hint" and row.snap["distance_m"] < 5
    # a pick the network does not know: without the photo there is nothing to place it by
    # (rejected), with it the report is snapped at the photo's position
    res, row = report(app, client, lat=None, lon=None, segment_hint="ZZ-NOPE-1", photos=[sha])
    assert res.status_code == 201, res.data
    assert row is not None and (row.status, row.segment_id) == ("accepted", HUAYUAN)
    assert row.snap["method"] == "nearest" and row.snap["position"] == "photo"
    assert row.snap["accuracy_m"] == 6.0


def test_a_better_stated_photo_fix_replaces_a_poor_one(app: Any, client: FlaskClient) -> None:
    # the report's own fix 60 m east of the spot, stated as 80 m; the photo's says 5 m
    off = (SPOT[0] + 60 / (111_320 * math.cos(math.radians(SPOT[1]))), SPOT[1])
    good = upload(app, client, jpeg(*SPOT, accuracy_m=5.0))
    res, row = report(
        app, client, lon=off[0], lat=off[1], crs="WGS84", accuracy_m=80.0, photos=[good]
    )
    assert res.status_code == 201, res.data
    assert row is not None and (row.lon_in, row.lat_in) == off
    assert metres((row.lon, row.lat), SPOT) < 0.5  # placed at the photo's fix, not a mean
    assert row.snap["position"] == "photo" and row.snap["accuracy_m"] == 5.0
    assert row.segment_id == HUAYUAN
    # a photo stating a worse error than the report's leaves the report's own fix
    poor = upload(app, client, jpeg(*SPOT, accuracy_m=120.0))
    res, row = report(
        app, client, lon=off[0], lat=off[1], crs="WGS84", accuracy_m=80.0, photos=[poor]
    )
    assert row is not None and metres((row.lon, row.lat), off) < 0.5
    assert "position" not in row.snap and "photo" not in row.snap


def test_the_camera_s_direction_moves_a_report_between_parallel_streets(
    app: Any, client: FlaskClient, network_ctx: NetworkContext
) -> None:
    # without a photo: the northern street leads, not certain, the southern one offered
    res, row = report(app, client, lon=BETWEEN[0], lat=BETWEEN[1], crs="WGS84", accuracy_m=10.0)
    assert res.status_code in (200, 201, 202), res.data
    assert row is not None and row.status == "needs_review"
    assert row.snap["candidates"][:2] == [NORTH, SOUTH]
    # the photo was taken facing south (true north reference): the southern street leads
    sha = upload(app, client, jpeg(*BETWEEN, bearing=184.0, accuracy_m=10.0))
    res, row = report(
        app, client, lon=BETWEEN[0], lat=BETWEEN[1], crs="WGS84", accuracy_m=10.0, photos=[sha]
    )
    assert row is not None
    assert row.snap["candidates"][0] == SOUTH
    assert row.snap["look_deg"] == 184.0 and row.snap["look_ref"] == "T"
    assert row.snap["photo"] == sha and "position" not in row.snap  # same accuracy: own fix


def test_one_query_for_the_photos_of_a_batch(runtime: Any, app: Any, client: FlaskClient) -> None:
    sha = upload(app, client, jpeg(*SPOT, accuracy_m=6.0))
    bodies = [
        contract_example(lat=None, lon=None, segment_hint="ZZ-NOPE-1", photos=[sha])
        for _ in range(30)  # above VECTOR_MIN: the vectorised path
    ]
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        if "photo_meta" in statement:
            seen.append(statement)

    event.listen(runtime.engine, "before_cursor_execute", count)
    try:
        outs = runtime.pipeline.process([inbound(b) for b in bodies])
    finally:
        event.remove(runtime.engine, "before_cursor_execute", count)
    assert [o.segment_id for o in outs] == [HUAYUAN] * 30
    assert len(seen) == 1
    # reports naming no photo cost no query at all
    seen.clear()
    event.listen(runtime.engine, "before_cursor_execute", count)
    try:
        runtime.pipeline.process([inbound(contract_example(photos=[]))])
    finally:
        event.remove(runtime.engine, "before_cursor_execute", count)
    assert seen == []


# -- geolocate's rules (no database) --------------------------------------------------------
def _report(lon: float | None, lat: float | None, **changes: Any) -> ReportIn:
    values: dict[str, Any] = {
        "report_id": str(uuid.uuid4()),
        "reporter_id": "zz-test-photos",
        "observed_at": dt.datetime.now(dt.UTC),
        "lat": lat,
        "lon": lon,
        "crs": "WGS84",
        "accuracy_m": 10.0,
        "heading_deg": None,
        "category": CATEGORY,
        "severity": 1,
        "note": None,
        "photos": ("a" * 64,),
        "segment_hint": None if lon is not None else "ZZ-NOPE-1",
    }
    values.update(changes)
    return ReportIn(**values)


def _fix(lon: float | None, lat: float | None, **changes: Any) -> dict[str, PhotoFix]:
    now = dt.datetime.now(dt.UTC)
    values: dict[str, Any] = {
        "sha256": "a" * 64,
        "lat": lat,
        "lon": lon,
        "accuracy_m": 5.0,
        "bearing_deg": None,
        "bearing_ref": None,
        "taken_at": now,
        "uploaded_at": now,
    }
    values.update(changes)
    return {values["sha256"]: PhotoFix(**values)}


def test_a_photo_from_another_time_or_place_is_not_used(network_ctx: NetworkContext) -> None:
    ctx = network_ctx
    nowhere = _report(None, None)
    assert place(nowhere, ctx, _fix(*SPOT)).segment_id == HUAYUAN
    assert place(nowhere, ctx).status == "rejected"
    hour = dt.timedelta(hours=1)
    old = _fix(*SPOT, taken_at=dt.datetime.now(dt.UTC) - hour)
    assert place(nowhere, ctx, old).status == "rejected"
    # no EXIF time: the upload's time stands in for it
    untimed = _fix(*SPOT, taken_at=None)
    assert place(nowhere, ctx, untimed).segment_id == HUAYUAN
    late = _fix(*SPOT, taken_at=None, uploaded_at=dt.datetime.now(dt.UTC) + hour)
    assert place(nowhere, ctx, late).status == "rejected"
    # a photo fix 500 m from the report's own is another place: the report keeps its own
    far = (SPOT[0] + 500 / (111_320 * math.cos(math.radians(SPOT[1]))), SPOT[1])
    own = _report(*far, accuracy_m=60.0)
    p = place(own, ctx, _fix(*SPOT))
    assert p.lon == pytest.approx(far[0], abs=1e-9) and "photo" not in (p.snap or {})
    near = _report(SPOT[0] + 0.0005, SPOT[1], accuracy_m=60.0)  # ~46 m: the same place
    assert place(near, ctx, _fix(*SPOT)).snap["position"] == "photo"  # type: ignore[index]
    # a photo the report does not name is not its photo
    other = _report(None, None, photos=("b" * 64,))
    assert place(other, ctx, _fix(*SPOT)).status == "rejected"


def test_batch_and_single_placement_agree_with_photos(network_ctx: NetworkContext) -> None:
    ctx = network_ctx
    fixes: dict[str, PhotoFix] = {}
    reports = []
    for i in range(40):
        sha = f"{i:064x}"
        dx = (i % 7 - 3) * 6.0
        lon = BETWEEN[0] + dx / (111_320 * math.cos(math.radians(BETWEEN[1])))
        fixes.update(
            _fix(
                lon,
                BETWEEN[1],
                sha256=sha,
                accuracy_m=[None, 4.0, 30.0][i % 3],
                bearing_deg=None if i % 4 == 0 else (i * 37.0) % 360,
                bearing_ref=["T", "M", None][i % 3],
            )
        )
        if i % 5 == 0:
            reports.append(_report(None, None, photos=(sha,)))
        else:
            reports.append(_report(*BETWEEN, accuracy_m=12.0, photos=(sha,) if i % 6 else ()))
    # 40 reports of one reporter: the single pass would learn its phone from the 30th
    # on, the batch only after it (geo.phones); this test is about the photos
    ctx = dataclasses.replace(ctx, phones=None)
    batch = place_many(reports, ctx, fixes)
    single = [place(r, ctx, fixes) for r in reports]
    for b, o in zip(batch, single, strict=True):
        assert (b.status, b.segment_id, b.snap) == (o.status, o.segment_id, o.snap)
    # and the photos did something: positions and directions were used
    used = [p.snap for p in batch if p.snap and "photo" in p.snap]
    assert any("look_deg" in s for s in used) and any(s.get("position") for s in used)


def test_a_camera_clock_out_of_range_is_no_time_not_a_server_error(
    app: Any, client: FlaskClient
) -> None:
    """An unset camera clock writes year 1 (or 9999): the upload is stored without a time
    (a date arithmetic overflow was a 500); its position still places a report."""
    for original, gps_date in (
        ("0001:01:01 00:00:00", "0001:01:01"),
        ("9999:12:31 23:59:59", "9999:12:31"),
    ):
        img = Image.new("RGB", (48, 32), (uuid.uuid4().bytes[0], 10, 10))
        exif = Image.Exif()
        exif[IFD.GPSInfo] = {
            1: "N", 2: _dms(SPOT[1]), 3: "E", 4: _dms(SPOT[0]),
            29: gps_date, 7: (IFDRational(23), IFDRational(59), IFDRational(59)),
        }  # fmt: skip
        exif.get_ifd(IFD.Exif).update({36867: original, 36881: "-08:00"})
        exif[306] = original
        out = io.BytesIO()
        img.save(out, "JPEG", exif=exif)
        sha = upload(app, client, out.getvalue())
        from roadwatch.web import runtime_of

        with runtime_of(app).sessions() as s:
            meta = s.get(models.PhotoMeta, sha)
            assert meta is not None and meta.taken_at is None and meta.lat is not None
        # uploaded just now: within the window of a report observed now
        res, row = report(app, client, lat=None, lon=None, segment_hint=HUAYUAN, photos=[sha])
        assert res.status_code == 201, res.data
        assert row is not None and row.snap["position"] == "photo"
