"""Photos on their way in: what the camera wrote is read, kept as data, and removed.

Phones and cameras write EXIF (and XMP, comments, maker notes) into a photo: the device's
make and model, its serial number, the exact position, the time. Anyone who may see a
photo would see all of it. Every upload path (POST /api/photos, the phone app's
/m/api/photos) goes through `strip_and_read`:

1. the image is opened with Pillow (what Pillow cannot read is refused: a file whose
   metadata cannot be removed is not stored; HEIC needs a plug-in this server does not
   have, so iPhones must send JPEG, "Most Compatible", which the phone app does anyway);
2. its GPS position, the direction the camera faced (GPSImgDirection), the horizontal
   error and the time it was taken are read into a `PhotoMeta`, which the caller stores
   beside the photo (table `photo_meta`) for geolocation;
3. the EXIF orientation is applied to the pixels (so the photo still stands upright once
   the tag is gone), and the image is written again with no metadata at all: no EXIF, no
   XMP, no comment, no text chunks, nothing after the image data. Only the colour profile
   (ICC) is kept, and for JPEG the original quantisation tables and chroma subsampling, so
   the re-encoding costs as little quality as it can.

The photo's id stays the SHA-256 of the bytes as uploaded: that is what a client computes
before sending (CONTRACT 1.1: a report may arrive before its photos, naming them by that
hash; the phone app checks the answer against its own hash). The file stored under that
id holds the cleaned bytes; `photo_meta.stored_sha256` is their own hash.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import math
import struct
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from PIL import Image, UnidentifiedImageError
from PIL.ExifTags import IFD
from sqlalchemy.exc import IntegrityError

# Larger images are refused before decoding (a decompression bomb): 100 megapixels is
# well above any phone camera (50 MP at most in 2026).
MAX_PIXELS = 100_000_000
# EXIF tags (GPS IFD, Exif IFD, IFD0) read into PhotoMeta.
GPS_LAT_REF, GPS_LAT, GPS_LON_REF, GPS_LON = 1, 2, 3, 4
GPS_TIME, GPS_DIR_REF, GPS_DIR, GPS_DATE, GPS_H_ERROR = 7, 16, 17, 29, 31
DATETIME_ORIGINAL, OFFSET_ORIGINAL, DATETIME = 36867, 36881, 306
ORIENTATION = 0x0112
# What Pillow may say about an image that tells nothing about its author, place or time.
HARMLESS_INFO = frozenset(
    {
        "jfif",
        "jfif_version",
        "jfif_unit",
        "jfif_density",
        "dpi",
        "icc_profile",
        "adobe",
        "adobe_transform",
        "progressive",
        "progression",
        "gamma",
        "srgb",
        "chromaticity",
        "transparency",
        "background",
        "duration",
        "loop",
        "version",
        "interlace",
        "aspect",
        "lossless",
    }
)
PIL_FORMATS = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "gif": "GIF"}


class PhotoError(ValueError):
    """The upload cannot be stored; `code` and the message say why in plain words."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class PhotoStoreError(OSError):
    """The photo is fine but the photo folder cannot take it (disk full, not writable)."""


@dataclass(frozen=True)
class PhotoMeta:
    """What the camera said about a photo, kept as data once the photo itself is clean."""

    width: int
    height: int
    lat: float | None = None  # WGS84 as the camera wrote it (phones write WGS84)
    lon: float | None = None
    accuracy_m: float | None = None  # GPSHPositioningError
    bearing_deg: float | None = None  # GPSImgDirection: where the camera faced, 0-360
    bearing_ref: str | None = None  # T (true north) or M (magnetic)
    taken_at: dt.datetime | None = None  # aware; UTC when the camera gave a zone
    had_metadata: bool = False  # whether anything was removed


def _float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return out if math.isfinite(out) else None


def _degrees(value: Any, ref: Any) -> float | None:
    """EXIF degrees/minutes/seconds (three rationals) and N/S/E/W as a signed number."""
    if isinstance(value, tuple | list) and len(value) == 3:
        parts = [_float(x) for x in value]
        if any(p is None for p in parts):
            return None
        d, m, s = (p or 0.0 for p in parts)
        out = d + m / 60 + s / 3600
    else:
        single = _float(value)
        if single is None:
            return None
        out = single
    if isinstance(ref, bytes):
        ref = ref.decode("ascii", "replace")
    if isinstance(ref, str) and ref.strip().upper() in ("S", "W"):
        out = -out
    return out


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        return None
    return value.strip("\x00 ").strip() or None


# A camera clock outside these years is unset or broken (year 1, 9999): no time at all,
# rather than one the photo-window arithmetic would overflow on.
PLAUSIBLE_YEARS = range(1990, 2101)


def _exif_time(stamp: Any, offset: Any, tz: ZoneInfo) -> dt.datetime | None:
    raw = _text(stamp)
    if raw is None:
        return None
    try:
        naive = dt.datetime.strptime(raw[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    if naive.year not in PLAUSIBLE_YEARS:
        return None
    off = _text(offset)
    if off:
        try:
            aware = dt.datetime.fromisoformat(naive.isoformat() + off)
            return aware.astimezone(dt.UTC)
        except ValueError:
            pass
    return naive.replace(tzinfo=tz).astimezone(dt.UTC)


def _gps_time(date: Any, clock: Any) -> dt.datetime | None:
    raw = _text(date)
    if raw is None or not isinstance(clock, tuple | list) or len(clock) != 3:
        return None
    parts = [_float(x) for x in clock]
    if any(p is None for p in parts):
        return None
    h, m, s = (p or 0.0 for p in parts)
    try:
        day = dt.datetime.strptime(raw[:10], "%Y:%m:%d").replace(tzinfo=dt.UTC)
    except ValueError:
        return None
    if day.year not in PLAUSIBLE_YEARS:
        return None
    if not (0 <= h < 24 and 0 <= m < 60 and 0 <= s < 61):
        return None
    return day + dt.timedelta(hours=h, minutes=m, seconds=s)


def _exif_of(img: Image.Image) -> Image.Exif:
    """The image's EXIF, empty when it cannot be read: Pillow raises SyntaxError for an EXIF
    chunk of a PNG or WebP that does not begin with a TIFF header, and others for other
    damage. It is dropped from the stored photo either way."""
    try:
        return img.getexif()
    except (SyntaxError, ValueError, TypeError, OSError, EOFError, IndexError, struct.error):
        return Image.Exif()


def read_meta(img: Image.Image, tz: ZoneInfo) -> PhotoMeta:
    """Position, bearing and time from an opened image's EXIF (what is missing is None)."""
    exif = _exif_of(img)
    gps = exif.get_ifd(IFD.GPSInfo) if exif else {}
    sub = exif.get_ifd(IFD.Exif) if exif else {}
    lat = _degrees(gps.get(GPS_LAT), gps.get(GPS_LAT_REF)) if GPS_LAT in gps else None
    lon = _degrees(gps.get(GPS_LON), gps.get(GPS_LON_REF)) if GPS_LON in gps else None
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        lat = lon = None
    if lat == 0 and lon == 0:  # "no fix" as some cameras write it
        lat = lon = None
    bearing = _float(gps.get(GPS_DIR)) if GPS_DIR in gps else None
    if bearing is not None and not 0 <= bearing <= 360:
        bearing = None
    ref = _text(gps.get(GPS_DIR_REF))
    accuracy = _float(gps.get(GPS_H_ERROR)) if GPS_H_ERROR in gps else None
    if accuracy is not None and accuracy < 0:
        accuracy = None
    taken = None
    if sub.get(OFFSET_ORIGINAL) and sub.get(DATETIME_ORIGINAL):
        taken = _exif_time(sub.get(DATETIME_ORIGINAL), sub.get(OFFSET_ORIGINAL), tz)
    taken = taken or _gps_time(gps.get(GPS_DATE), gps.get(GPS_TIME))  # GPS time is UTC
    taken = taken or _exif_time(sub.get(DATETIME_ORIGINAL), None, tz)
    taken = taken or _exif_time(exif.get(DATETIME), None, tz)
    return PhotoMeta(
        width=img.width,
        height=img.height,
        lat=lat,
        lon=lon,
        accuracy_m=accuracy,
        bearing_deg=bearing,
        bearing_ref=(ref[:1].upper() if ref and ref[:1].upper() in "TM" else None),
        taken_at=taken,
    )


def _has_metadata(img: Image.Image) -> bool:
    if len(_exif_of(img)):
        return True
    return any(key not in HARMLESS_INFO for key in img.info)


def _encode(img: Image.Image, src: Image.Image, kind: str) -> bytes:
    """`img` written as `kind` with nothing but its pixels (and its colour profile)."""
    fmt = PIL_FORMATS[kind]
    params: dict[str, Any] = {}
    icc = src.info.get("icc_profile")
    if icc and kind in ("jpeg", "png", "webp"):
        params["icc_profile"] = icc
    if kind == "jpeg":
        from PIL import JpegImagePlugin

        quant = getattr(src, "quantization", None)
        if quant:
            params["qtables"] = quant
        else:
            params["quality"] = 90
        sampling = -1
        if isinstance(src, JpegImagePlugin.JpegImageFile):
            sampling = JpegImagePlugin.get_sampling(src)
        if sampling >= 0 and img.size == src.size:  # a quarter turn would swap 4:2:2
            params["subsampling"] = sampling
    elif kind == "webp":
        if src.info.get("lossless"):
            params["lossless"] = True
        else:
            params["quality"] = 90
    elif kind == "png":
        if "transparency" in src.info:
            params["transparency"] = src.info["transparency"]
    elif kind == "gif" and "transparency" in src.info:
        params["transparency"] = src.info["transparency"]
    img.info = {}  # Pillow writes some of info (a JPEG comment, a GIF's) back on its own
    if kind == "jpeg" and img.mode not in ("L", "RGB", "CMYK"):
        img = img.convert("RGB")
    out = io.BytesIO()
    img.save(out, fmt, **params)
    return out.getvalue()


# EXIF Orientation: the turn that stands the picture up as it was seen.
UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _upright(img: Image.Image) -> Image.Image:
    """A new image turned as its EXIF Orientation says. Not Pillow's ImageOps.exif_transpose:
    it writes the rest of the EXIF back into the turned image, which fails (TypeError,
    AttributeError, struct.error) on a tag of the wrong type, although the EXIF is dropped
    here anyway."""
    orientation = _exif_of(img).get(ORIENTATION, 1)
    method = UPRIGHT.get(orientation) if isinstance(orientation, int) else None
    return img.transpose(method) if method is not None else img.copy()


def _too_many_pixels(size: str) -> PhotoError:
    return PhotoError(
        "too_many_pixels",
        f"照片像素过多 (the photo has {size} pixels; at most "
        f"{MAX_PIXELS // 1_000_000} megapixels are taken)",
    )


def _open(data: bytes) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb check (a warning above Image.MAX_IMAGE_PIXELS, about 89
            # megapixels, an error above twice that) fires in Image.open, before the size
            # is known here: the warning is left to MAX_PIXELS below, the error is a bomb.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.width * img.height > MAX_PIXELS:
                raise _too_many_pixels(f"{img.width} x {img.height}")
            img.load()
    except PhotoError:
        raise
    except Image.DecompressionBombError:
        raise _too_many_pixels("far too many") from None
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        EOFError,
    ):
        raise PhotoError(
            "unreadable",
            "照片无法读取 (the photo cannot be read as an image: damaged or cut off?); "
            "send it again as JPEG",
        ) from None
    return img


def strip_and_read(data: bytes, kind: str, tz: ZoneInfo | None = None) -> tuple[bytes, PhotoMeta]:
    """The photo without any metadata, and what its metadata said (see the module's doc).

    `kind` is the type its first bytes show (jpeg, png, webp, gif, heic). Raises PhotoError
    for what cannot be cleaned: HEIC, damaged files, images larger than MAX_PIXELS.
    """
    if kind not in PIL_FORMATS:
        raise PhotoError(
            "cannot_clean",
            f"请改用 JPEG ({kind.upper()} photos cannot be cleaned of their location data here; "
            "send JPEG: on an iPhone, Settings > Camera > Formats > Most Compatible)",
        )
    img = _open(data)
    meta = read_meta(img, tz or ZoneInfo("Asia/Shanghai"))
    had = _has_metadata(img)
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)  # an animation, or an MPO's depth map: the first picture only
        had = True
    try:
        upright = _upright(img)  # a new image, standing as it was seen
        clean = _encode(upright, img, kind)
    except (OSError, ValueError) as exc:
        raise PhotoError(
            "unreadable", f"照片无法处理 (the photo cannot be written again cleanly: {exc})"
        ) from None
    _check_clean(clean)
    size = {"width": upright.width, "height": upright.height}  # as stored, upright
    return clean, PhotoMeta(**{**meta.__dict__, **size, "had_metadata": had})


def _check_clean(data: bytes) -> None:
    """A last look at what will be stored: nothing that is not pixels (a bug otherwise)."""
    with Image.open(io.BytesIO(data)) as check:
        left = [k for k in check.info if k not in HARMLESS_INFO]
        if len(check.getexif()) or left:
            raise AssertionError(f"metadata survived cleaning: {left or 'EXIF'}")


@dataclass(frozen=True)
class Stored:
    sha256: str  # the id: SHA-256 of the bytes as uploaded
    size: int  # bytes stored (clean)
    created: bool  # False: this photo was stored before
    meta: PhotoMeta | None  # None when it was stored before


def save_upload(
    sessions: Any,
    folder: Path,
    data: bytes,
    kind: str,
    ext: str,
    mime: str,
    tz: ZoneInfo,
    uploaded_by: str | None = None,
) -> Stored:
    """Clean an upload, store it under `folder` by the SHA-256 of `data`, keep its metadata.

    A photo already stored with its metadata row is not processed again. A file without a
    row (stored before photos were cleaned) is cleaned and replaced now.
    """
    from . import models

    digest = hashlib.sha256(data).hexdigest()
    target = folder / f"{digest}{ext}"
    with sessions() as session:
        known = session.get(models.PhotoMeta, digest)
    if known is not None and target.exists():
        return Stored(digest, known.size, False, None)
    clean, meta = strip_and_read(data, kind, tz)
    tmp = target.with_name(f"{digest}.{uuid.uuid4().hex}.part")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(clean)
        tmp.replace(target)  # atomic: a half-written photo is never served
    except OSError as exc:  # disk full, read-only or missing folder: the client retries
        with contextlib.suppress(OSError):  # a half-written part would only fill the disk
            tmp.unlink()
        raise PhotoStoreError(
            f"the photo cannot be stored now ({exc.strerror or exc}); retry later"
        ) from exc
    row = models.PhotoMeta(
        sha256=digest,
        stored_sha256=hashlib.sha256(clean).hexdigest(),
        mime=mime,
        size=len(clean),
        width=meta.width,
        height=meta.height,
        uploaded_at=models.utcnow(),
        uploaded_by=uploaded_by,
        had_metadata=meta.had_metadata,
        lat=meta.lat,
        lon=meta.lon,
        accuracy_m=meta.accuracy_m,
        bearing_deg=meta.bearing_deg,
        bearing_ref=meta.bearing_ref,
        taken_at=meta.taken_at,
    )
    try:
        with sessions.begin() as session:
            session.merge(row)
    except IntegrityError:  # the same photo uploaded twice at once: the other one won
        pass
    return Stored(digest, len(clean), known is None, meta)
