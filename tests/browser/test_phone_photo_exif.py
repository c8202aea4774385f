"""Issue 21.3, the phone's part: the camera's position, direction and time reach geolocation.

The phone app makes every photo small on a canvas, which drops its EXIF. The tags that
place a photo are carried over into the small JPEG (roadwatch/web/static/m/exif.js), and
nothing else: the platform then reads them into photo_meta and places the report with
them (roadwatch/geolocate.py), as it does for a photo posted to /api/photos. Real Chromium
on an emulated phone, the real server and Mosquitto; the photos are JPEGs written by Pillow
with EXIF in both byte orders (Android phones write little-endian, iPhones big-endian).
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from PIL import Image
from PIL.ExifTags import IFD
from PIL.TiffImagePlugin import IFDRational
from playwright.sync_api import BrowserContext, FilePayload, expect
from sqlalchemy import select

from roadwatch.geolocate import ask_on_the_spot
from roadwatch.store import models
from tests.browser import test_phone_app as phone_app
from tests.browser.test_phone_app import (
    Problems,
    Stack,
    _segment_midpoint,
    jpeg_size,
    pick_category,
    sign_in,
    wait_for_fix,
)
from tests.test_photo_geolocation import _dms

# The phone tests' fixtures (a server, Mosquitto, chiefs; an emulated phone), this module's own.
stack = phone_app.stack
phone = phone_app.phone

pytestmark = [pytest.mark.browser, pytest.mark.integration]

CST = dt.timezone(dt.timedelta(hours=8))
CATEGORY = "E0504"
FIX_ACCURACY_M = 10.0
DEVICE_MAKE = "RoadwatchTestCam"  # must not leave the phone


def camera_jpeg(lat: float, lon: float, *, bearing: float, endian: str) -> bytes:
    """A 2400 x 1800 camera picture stored sideways (Orientation 6: shown 1800 x 2400) with
    the GPS position (WGS84, stated error 4 m), the direction it faced (true north), the
    time taken, and the device's make and model."""
    img = Image.new("RGB", (2400, 1800), (40, 90, 160))
    exif = Image.Exif()
    exif.endian = endian  # "<" little-endian (II), ">" big-endian (MM)
    exif[0x010F] = DEVICE_MAKE  # Make
    exif[0x0110] = "Model X"  # Model
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to view
    exif[IFD.GPSInfo] = {
        1: "N",
        2: _dms(lat),
        3: "E",
        4: _dms(lon),
        16: "T",
        17: IFDRational(round(bearing * 100), 100),
        31: IFDRational(400, 100),
    }
    now = dt.datetime.now(CST)
    exif.get_ifd(IFD.Exif).update({36867: now.strftime("%Y:%m:%d %H:%M:%S"), 36881: "+08:00"})
    out = io.BytesIO()
    img.save(out, "JPEG", exif=exif, quality=80)
    return out.getvalue()


@contextmanager
def photo_uploads(stack: Stack) -> Iterator[list[bytes]]:
    """The bodies of POST /m/api/photos as the server received them (Chromium does not
    hand a Blob upload's body to Playwright): a WSGI wrapper around the live server's app."""
    bodies: list[bytes] = []
    server = stack.server.server
    app = server.app

    def capture(environ: dict[str, Any], start_response: Any) -> Any:
        if environ["REQUEST_METHOD"] == "POST" and environ["PATH_INFO"] == "/m/api/photos":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length)
            bodies.append(body)
            environ["wsgi.input"] = io.BytesIO(body)
        return app(environ, start_response)

    server.app = capture
    try:
        yield bodies
    finally:
        server.app = app


def _certain_midpoint(stack: Stack, chief: str, segment: str) -> tuple[float, float]:
    lat, lon = _segment_midpoint(stack.runtime, segment)
    offer = ask_on_the_spot(
        stack.runtime.ctx,
        lon,
        lat,
        accuracy_m=FIX_ACCURACY_M,
        reporter_id=chief,
        category=CATEGORY,
    )
    assert offer["certain"] is True  # the report goes without the on-the-spot question
    return lat, lon


@dataclass
class Sent:
    uploaded: bytes  # the photo as the server received it
    asked: dict[str, str]  # the query of the app's "are you certain here?" question
    report: models.Report
    meta: models.PhotoMeta


def send_with_photo(
    context: BrowserContext, stack: Stack, chief: str, at: tuple[float, float], photo: bytes
) -> Sent:
    """Sign in as `chief` standing at `at` (lat, lon), report CATEGORY with `photo` and
    wait for the platform's ack."""
    context.set_geolocation({"latitude": at[0], "longitude": at[1], "accuracy": FIX_ACCURACY_M})
    page = context.new_page()
    sign_in(page, stack, chief)
    wait_for_fix(page)
    pick_category(page, CATEGORY)
    page.set_input_files(
        "#photo-input",
        files=[FilePayload(name="IMG_0001.jpg", mimeType="image/jpeg", buffer=photo)],
    )
    expect(page.locator("#photo-thumbs img")).to_have_count(1)
    with photo_uploads(stack) as bodies:
        with page.expect_request(lambda r: "/m/api/segments/near" in r.url) as asked:
            page.click("#report-send")
        expect(page.locator("#report-done")).to_have_attribute(
            "data-receipt", "accepted", timeout=20000
        )
    (body,) = bodies
    query = dict(parse_qsl(urlsplit(asked.value.url).query))
    with stack.runtime.sessions() as s:
        report = s.scalars(
            select(models.Report)
            .where(models.Report.reporter_id == chief)
            .order_by(models.Report.received_at.desc())
            .limit(1)
        ).one()
        meta = s.get(models.PhotoMeta, report.photos[0])
    assert meta is not None
    return Sent(body[body.index(b"\xff\xd8\xff") :], query, report, meta)


@pytest.mark.parametrize(("endian", "bearing"), [("<", 90.0), (">", 271.5)])
def test_the_camera_s_position_and_direction_survive_the_phone_s_downscaling(
    phone: tuple[BrowserContext, Problems], stack: Stack, endian: str, bearing: float
) -> None:
    context, _ = phone
    chief, segment = stack.chiefs[1]
    lat, lon = _certain_midpoint(stack, chief, segment)
    photo = camera_jpeg(lat, lon, bearing=bearing, endian=endian)
    sent = send_with_photo(context, stack, chief, (lat, lon), photo)
    uploaded, report, meta = sent.uploaded, sent.report, sent.meta
    # Asked before sending, the platform already weighed the camera's direction.
    assert float(sent.asked["look"]) == bearing and sent.asked["look_ref"] == "T"

    # What left the phone: a small JPEG with an EXIF block, but not the device's name.
    assert b"Exif\x00\x00" in uploaded
    assert DEVICE_MAKE.encode() not in uploaded and b"Model X" not in uploaded
    # Upright once: the canvas applied Orientation 6, and no Orientation was sent along.
    assert jpeg_size(uploaded) == (1200, 1600)
    # The platform read the camera's tags (and then stored the photo without them).
    assert meta.had_metadata is True
    assert meta.lat == pytest.approx(lat, abs=1e-6) and meta.lon == pytest.approx(lon, abs=1e-6)
    assert meta.accuracy_m == 4.0
    assert meta.bearing_deg == bearing and meta.bearing_ref == "T"
    assert meta.taken_at is not None
    taken = meta.taken_at if meta.taken_at.tzinfo else meta.taken_at.replace(tzinfo=dt.UTC)
    assert abs(taken - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=2)
    assert (meta.width, meta.height) == (1200, 1600)
    # ...and geolocation used them: the photo's better fix and its direction.
    snap: dict[str, Any] = report.snap or {}
    assert snap.get("photo") == meta.sha256
    assert snap.get("position") == "photo" and snap.get("accuracy_m") == 4.0
    assert snap.get("look_deg") == bearing and snap.get("look_ref") == "T"
    assert report.segment_id == segment and report.status == "accepted"


def test_a_photo_with_damaged_exif_is_sent_without_it(
    phone: tuple[BrowserContext, Problems], stack: Stack
) -> None:
    """A GPS pointer past the end of the EXIF block: the photo goes without camera tags
    (never refused, never a script error), and the report is placed by its own fix."""
    context, _ = phone
    chief, segment = stack.chiefs[2]
    lat, lon = _certain_midpoint(stack, chief, segment)
    good = camera_jpeg(lat, lon, bearing=10.0, endian="<")
    gps_pointer = b"\x25\x88\x04\x00\x01\x00\x00\x00"  # tag 0x8825, LONG, count 1 (II)
    at = good.index(gps_pointer) + len(gps_pointer)
    damaged = good[:at] + b"\x00\xff\xff\x7f" + good[at + 4 :]
    sent = send_with_photo(context, stack, chief, (lat, lon), damaged)
    uploaded, report, meta = sent.uploaded, sent.report, sent.meta
    assert b"Exif\x00\x00" not in uploaded and "look" not in sent.asked
    assert meta is not None and meta.lat is None and meta.bearing_deg is None
    assert report.segment_id == segment and "photo" not in (report.snap or {})


def _with_segment(jpeg: bytes, marker: int, payload: bytes) -> bytes:
    """`jpeg` with one more APPn segment right after its SOI."""
    seg = bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload
    return jpeg[:2] + seg + jpeg[2:]


def test_what_the_phone_reads_from_odd_files(
    phone: tuple[BrowserContext, Problems], stack: Stack
) -> None:
    """exif.js in the phone's own Chromium, on files a camera roll really holds: the EXIF
    behind an XMP block and a colour profile, no EXIF, a PNG, a file cut short, a
    nonsense direction. Nothing throws; what cannot be read is null."""
    context, _ = phone
    page = context.new_page()
    page.goto(stack.url + "/m/")
    good = camera_jpeg(34.75, 113.65, bearing=123.25, endian=">")
    plain = io.BytesIO()
    Image.new("RGB", (40, 30), (1, 2, 3)).save(plain, "JPEG")
    png = io.BytesIO()
    Image.new("RGB", (40, 30), (1, 2, 3)).save(png, "PNG")
    behind = _with_segment(good, 0xE2, b"ICC_PROFILE\x00" + bytes(3000))
    behind = _with_segment(behind, 0xE1, b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta/>")
    no_look = camera_jpeg(34.75, 113.65, bearing=0.0, endian="<").replace(
        b"\x11\x00\x05\x00\x01\x00\x00\x00",
        b"\x11\x00\x05\x00\x00\x00\x00\x00",  # count 0
    )
    files = {
        "behind": behind,
        "plain": plain.getvalue(),
        "png": png.getvalue(),
        "cut": good[:40],
        "no_look": no_look,
    }
    got = page.evaluate(
        """async (files) => {
            const exif = await import("/static/m/exif.js");
            const out = {};
            for (const [name, bytes] of Object.entries(files)) {
                const blob = new Blob([new Uint8Array(bytes)], { type: "image/jpeg" });
                const tags = await exif.readCameraTags(blob);
                out[name] = {
                    tags: tags === null ? null : tags.gps.map((e) => e.tag),
                    look: exif.cameraLook(tags),
                };
            }
            return out;
        }""",
        {name: list(data) for name, data in files.items()},
    )
    assert got["behind"]["tags"] == [1, 2, 3, 4, 16, 17, 31]
    assert got["behind"]["look"] == {"deg": 123.25, "ref": "T"}
    for name in ("plain", "png", "cut"):
        assert got[name] == {"tags": None, "look": None}, name
    # a direction that is not one rational: the position still goes, the direction does not
    assert got["no_look"]["tags"] == [1, 2, 3, 4, 16, 31] and got["no_look"]["look"] is None
