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
