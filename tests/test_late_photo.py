"""Issue 21, scope 3: a photo uploaded after its report places the report again.

The contract lets a report arrive before the photos it names. When the photo comes, the
uploader's reports that name it and still wait in review are placed again with its EXIF
(roadwatch.late_photos), through the real intake: POST /api/reports, then POST
/api/photos (an API key's reporter) or /m/api/photos (a signed-in chief).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import math
from typing import Any

import shapely
from flask.testing import FlaskClient
from sqlalchemy import select

from roadwatch.network.context import NetworkContext
from roadwatch.store import models
from roadwatch.web import runtime_of
from tests.support.examples import CST, contract_example
from tests.support.intake import CHIEF, intake_headers
from tests.test_on_the_spot import sign_in_a_chief
from tests.test_photo_geolocation import BETWEEN, CATEGORY, NORTH, SOUTH, jpeg, report

OTHER = "zz-jinshui-0422"  # another chief of the demo network


def _near(ctx: NetworkContext, segment_id: str, metres: float) -> tuple[float, float]:
    """A spot ``metres`` from ``segment_id``, on the side of BETWEEN (WGS84)."""
    geom = shapely.geometry.shape(ctx.features[ctx.position[segment_id]]["geometry"])
    foot = geom.interpolate(geom.project(shapely.Point(BETWEEN)))
    k = 111_320.0
    dx = (BETWEEN[0] - foot.x) * k * math.cos(math.radians(foot.y))
    dy = (BETWEEN[1] - foot.y) * k
    d = math.hypot(dx, dy)
    assert d > metres
    return (
        foot.x + dx / d * metres / (k * math.cos(math.radians(foot.y))),
        foot.y + dy / d * metres / k,
    )


def _upload(
    client: FlaskClient, data: bytes, headers: dict[str, str], path: str = "/api/photos"
) -> Any:
    res = client.post(path, data={"photo": (io.BytesIO(data), "IMG.jpg")}, headers=headers)
    assert res.status_code in (200, 201), res.data
    assert res.get_json()["sha256"] == hashlib.sha256(data).hexdigest()
    return res.get_json()


def _row(app: Any, rid: str) -> models.Report:
    with runtime_of(app).sessions() as s:
        row = s.get(models.Report, rid)
        assert row is not None
        s.expunge(row)
        return row


def _pending(app: Any, client: FlaskClient, photo: bytes, **changes: Any) -> models.Report:
    """A report at BETWEEN naming ``photo`` before it is uploaded: it waits in review."""
    sha = hashlib.sha256(photo).hexdigest()
    res, row = report(
        app, client, lon=BETWEEN[0], lat=BETWEEN[1], crs="WGS84", accuracy_m=10.0,
        photos=[sha], **changes,
    )  # fmt: skip
    assert res.status_code in (200, 201, 202), res.data
    assert row is not None and row.status == "needs_review"
    assert row.snap["candidates"][:2] == [NORTH, SOUTH] and "photo" not in row.snap
    return row


def test_a_photo_uploaded_after_its_report_settles_it(
    app: Any, client: FlaskClient, network_ctx: NetworkContext
) -> None:
    photo = jpeg(*_near(network_ctx, SOUTH, 3.0), accuracy_m=4.0)
    before = _pending(app, client, photo)
    answer = _upload(client, photo, intake_headers(app))
    # the answer says what the photo did; the dispatcher has opened the case
    [placed] = answer["placed"]
    assert placed["report_id"] == before.id
    assert (placed["status"], placed["segment_id"]) == ("accepted", SOUTH)
    assert placed["confidence"] >= 0.9
    assert placed["case_status"] not in ("new", "needs_review")
    row = _row(app, before.id)
    assert (row.status, row.segment_id, row.case_status) == (
        "accepted",
        SOUTH,
        placed["case_status"],
    )
    assert row.snap["photo"] == answer["sha256"] and row.snap["late_photo"] is True
    assert row.snap["position"] == "photo" and row.snap["accuracy_m"] == 4.0
    assert (row.lat_in, row.lon_in) == (before.lat_in, before.lon_in)  # as the phone sent it
    assert row.segment_version is not None and row.district is not None
    with runtime_of(app).sessions() as s:
        [tr] = s.scalars(
            select(models.ReportTransition).where(
                models.ReportTransition.report_id == before.id,
                models.ReportTransition.from_status == "needs_review",
            )
        ).all()
        assert (tr.from_status, tr.to_status, tr.by) == ("needs_review", "accepted", "geolocation")
        assert tr.data["photo"] == answer["sha256"] and tr.data["segment_id"] == SOUTH
        [entry] = s.scalars(
            select(models.AuditEntry).where(
                models.AuditEntry.action == "report.photo_placed",
                models.AuditEntry.target == before.id,
            )
        ).all()  # the audit log is never emptied: this report's entry
        assert entry.actor == f"reporter:{CHIEF}"
    # the same photo again: the report is no longer in review, nothing more happens
    again = _upload(client, photo, intake_headers(app))
    assert "placed" not in again


def test_a_late_photo_that_leaves_doubt_updates_the_candidates_only(
    app: Any, client: FlaskClient
) -> None:
    # the camera faced south from the same fix: the southern street leads, not for sure
    photo = jpeg(*BETWEEN, bearing=184.0, accuracy_m=10.0)
    before = _pending(app, client, photo)
    [placed] = _upload(client, photo, intake_headers(app))["placed"]
    assert (placed["status"], placed["segment_id"]) == ("needs_review", None)
    row = _row(app, before.id)
    assert row.status == "needs_review" and row.segment_id is None
    assert row.snap["candidates"][0] == SOUTH and row.snap["look_deg"] == 184.0
    assert row.snap["late_photo"] is True
    with runtime_of(app).sessions() as s:
        assert (
            s.scalars(
                select(models.ReportTransition).where(
                    models.ReportTransition.report_id == before.id
                )
            ).all()
            == []
        )
    # the review queue offers what the photo says
    assert row.snap_confidence is not None


def test_a_late_photo_moves_no_report_it_does_not_fit_or_belong_to(
    app: Any, client: FlaskClient, network_ctx: NetworkContext
) -> None:
    spot = _near(network_ctx, SOUTH, 3.0)
    # taken an hour before the report was observed: says nothing about it
    old = jpeg(*spot, accuracy_m=4.0, taken=dt.datetime.now(CST) - dt.timedelta(hours=1))
    stale = _pending(app, client, old)
    assert "placed" not in _upload(client, old, intake_headers(app))
    assert _row(app, stale.id).status == "needs_review"
    # another reporter uploads the very photo this chief's report names: not theirs to move
    photo = jpeg(*spot, accuracy_m=4.0)
    mine = _pending(app, client, photo)
    assert "placed" not in _upload(client, photo, intake_headers(app, OTHER))
    after = _row(app, mine.id)
    assert after.status == "needs_review" and "photo" not in after.snap
    # once staff have settled it, the chief's own upload leaves their decision alone
    with runtime_of(app).sessions.begin() as s:
        row = s.get(models.Report, mine.id)
        assert row is not None
        row.status, row.case_status = "invalid", "invalid"
    assert "placed" not in _upload(client, photo, intake_headers(app))
    assert _row(app, mine.id).status == "invalid"


def test_the_phone_app_s_late_photo_places_its_chief_s_report(
    runtime: Any, app: Any, network_ctx: NetworkContext
) -> None:
    phone = app.test_client()
    chief = sign_in_a_chief(runtime, phone)
    photo = jpeg(*_near(network_ctx, SOUTH, 3.0), accuracy_m=4.0)
    sha = hashlib.sha256(photo).hexdigest()
    body = contract_example(
        reporter_id=chief, lat=BETWEEN[1], lon=BETWEEN[0], crs="WGS84", accuracy_m=10.0,
        category=CATEGORY, heading_deg=None, photos=[sha],
    )  # fmt: skip
    res = phone.post("/m/api/reports", json=body)
    assert res.status_code in (200, 201, 202), res.data
    assert _row(app, body["report_id"]).status == "needs_review"
    answer = _upload(phone, photo, {}, path="/m/api/photos")
    [placed] = answer["placed"]
    assert (placed["status"], placed["segment_id"]) == ("accepted", SOUTH)
    row = _row(app, body["report_id"])
    assert row.status == "accepted" and row.snap["late_photo"] is True
    with runtime_of(app).sessions() as s:
        [entry] = s.scalars(
            select(models.AuditEntry).where(
                models.AuditEntry.action == "report.photo_placed",
                models.AuditEntry.target == body["report_id"],
            )
        ).all()  # the audit log is never emptied: this report's entry
        assert entry.actor == f"chief:{chief}"


def test_a_photo_uploaded_while_its_report_is_placed_still_places_it(
    app: Any, client: FlaskClient, network_ctx: NetworkContext, monkeypatch: Any
) -> None:
    # The race: the photo is uploaded after the pipeline looked for it, before the report
    # is committed. The upload finds no report to place; the pipeline, reading the photos
    # again after its commit, finds the photo.
    photo = jpeg(*_near(network_ctx, SOUTH, 3.0), accuracy_m=4.0)
    pipeline = runtime_of(app).pipeline
    store_all = pipeline._store_all
    uploads: list[Any] = []

    def upload_then_store(items: Any, now: Any) -> Any:
        if not uploads:
            uploads.append(_upload(client, photo, intake_headers(app)))
        return store_all(items, now)

    monkeypatch.setattr(pipeline, "_store_all", upload_then_store)
    sha = hashlib.sha256(photo).hexdigest()
    res, row = report(
        app, client, lon=BETWEEN[0], lat=BETWEEN[1], crs="WGS84", accuracy_m=10.0,
        photos=[sha],
    )  # fmt: skip
    assert res.status_code in (200, 201, 202), res.data
    [answer] = uploads
    assert "placed" not in answer  # the upload came too early to see the report
    ack = res.get_json()
    assert (ack["status"], ack["segment_id"]) == ("accepted", SOUTH), ack
    assert row is not None and (row.status, row.segment_id) == ("accepted", SOUTH)
    assert row.snap["photo"] == sha and row.snap["late_photo"] is True
    assert row.case_status not in ("new", "needs_review")  # the dispatcher opened its case
    with runtime_of(app).sessions() as s:
        [entry] = s.scalars(
            select(models.AuditEntry).where(
                models.AuditEntry.action == "report.photo_placed",
                models.AuditEntry.target == row.id,
            )
        ).all()
        assert entry.actor == f"reporter:{CHIEF}"


def test_two_reports_of_one_batch_naming_a_photo_uploaded_meanwhile_are_both_placed(
    app: Any, client: FlaskClient, network_ctx: NetworkContext, monkeypatch: Any
) -> None:
    from tests.test_pipeline import inbound

    photo = jpeg(*_near(network_ctx, SOUTH, 3.0), accuracy_m=4.0)
    sha = hashlib.sha256(photo).hexdigest()
    pipeline = runtime_of(app).pipeline
    store_all = pipeline._store_all

    def upload_then_store(items: Any, now: Any) -> Any:
        _upload(client, photo, intake_headers(app))
        monkeypatch.setattr(pipeline, "_store_all", store_all)
        return store_all(items, now)

    monkeypatch.setattr(pipeline, "_store_all", upload_then_store)
    bodies = [
        contract_example(
            category=CATEGORY,
            heading_deg=None,
            lon=BETWEEN[0],
            lat=BETWEEN[1],
            crs="WGS84",
            accuracy_m=10.0,
            photos=[sha],
        )  # fmt: skip
        for _ in range(2)
    ]
    outs = pipeline.process([inbound(b, CHIEF) for b in bodies])
    assert [(o.status, o.segment_id) for o in outs] == [("accepted", SOUTH)] * 2
    for b in bodies:
        row = _row(app, b["report_id"])
        assert (row.status, row.segment_id) == ("accepted", SOUTH) and row.snap["late_photo"]


def test_a_late_photo_reads_the_patrol_track_another_process_stored(
    app: Any, client: FlaskClient
) -> None:
    # Under `roadwatch web` beside workers, the process that takes the upload never saw
    # the chief's patrol (a worker stored it): it reads the stored track back.
    import uuid

    from tests.test_on_the_spot import track_turning_spot
    from tests.test_patrols import patrol_msg, walk_along

    rt = runtime_of(app)
    ctx = rt.ctx
    x, y, pos = track_turning_spot(ctx, ctx.own_segments.get(CHIEF, frozenset()))
    seg = ctx.network.segments[pos]
    photo = jpeg(x, y, accuracy_m=9.0)  # where the chief stood: it settles nothing alone
    sha = hashlib.sha256(photo).hexdigest()
    res, row = report(
        app, client, lon=x, lat=y, crs="WGS84", accuracy_m=10.0, photos=[sha]
    )  # fmt: skip
    assert row is not None and row.status == "needs_review"
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=3)
    pts: Any = list(enumerate(walk_along([seg], spacing_m=10, noise_m=2, seed=1)))
    (p,) = rt.pipeline.process([patrol_msg(str(uuid.uuid4()), CHIEF, "start", pts, start)])
    assert p.status == "accepted"
    ctx.recent.clear()  # this process holds nothing of it
    [placed] = _upload(client, photo, intake_headers(app))["placed"]
    after = _row(app, row.id)
    if placed["status"] == "accepted":
        assert placed["segment_id"] == seg.id == after.segment_id
    else:  # still for staff to decide, but the walked segment now comes first
        assert after.snap["candidates"][0] == seg.id
    assert after.snap["late_photo"] is True and pos in ctx.recent.of(CHIEF, start)
