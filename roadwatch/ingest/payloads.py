"""Payload validation for CONTRACT.md 1.1 (report), with errors in plain words.

`parse_report(raw, ...)` never raises for bad input: it returns either a frozen
`ReportIn` or a list of `FieldError`s, each with the field, a stable code and a
sentence a road chief (or the developer of their app) can act on.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)

from .errors import FieldError

SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
REPORTER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
CATEGORY_CODE = re.compile(r"^[EC]\d{4}$")

Number = StrictFloat | StrictInt  # JSON numbers only: no strings, no booleans


class _ReportModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)  # new optional fields may appear

    v: StrictInt
    report_id: StrictStr
    reporter_id: StrictStr
    observed_at: StrictStr
    lat: Number | None = None
    lon: Number | None = None
    crs: StrictStr = "WGS84"
    accuracy_m: Number | None = None
    heading_deg: Number | None = None
    category: StrictStr
    severity: StrictInt = 1
    note: StrictStr | None = None
    photos: Annotated[list[StrictStr], Field(max_length=20)] = []
    segment_hint: StrictStr | None = None

    @field_validator("lat", "lon", "accuracy_m", "heading_deg")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("must be a finite number")
        return None if v is None else float(v)


@dataclass(frozen=True, slots=True)
class ReportIn:
    """A report that passed validation; times are aware UTC, crs upper-case."""

    report_id: str
    reporter_id: str
    observed_at: dt.datetime
    lat: float | None
    lon: float | None
    crs: str
    accuracy_m: float | None
    heading_deg: float | None
    category: str
    severity: int
    note: str | None
    photos: tuple[str, ...]
    segment_hint: str | None


_TYPE_WORDS = {
    "int_type": "must be a whole number",
    "float_type": "must be a number",
    "string_type": "must be a text string",
    "list_type": "must be a list",
    "bool_type": "must be true or false",
}


def _pydantic_errors(exc: ValidationError) -> list[FieldError]:
    out: list[FieldError] = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("float", "int")))
        field = loc or "payload"
        etype = err["type"]
        if etype == "missing":
            out.append(FieldError(field, "required", f"{field} is required"))
        elif etype == "model_type":
            out.append(FieldError("payload", "invalid_type", "the payload must be a JSON object"))
        elif etype in _TYPE_WORDS:
            out.append(FieldError(field, "invalid_type", f"{field} {_TYPE_WORDS[etype]}"))
        elif etype == "too_long":
            out.append(FieldError(field, "too_long", f"{field} has too many items"))
        else:
            msg = err["msg"].removeprefix("Value error, ")
            out.append(FieldError(field, "invalid", f"{field} {msg[0].lower()}{msg[1:]}"))
    # A union error reports once per member type: keep one line per field.
    seen: set[str] = set()
    unique = []
    for e in out:
        if e.field not in seen:
            seen.add(e.field)
            unique.append(e)
    return unique


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def decode_json(raw: bytes, max_bytes: int) -> tuple[Any, list[FieldError]]:
    """Bytes → JSON value, or the reason why not (size, encoding, syntax)."""
    if len(raw) > max_bytes:
        return None, [
            FieldError(
                "payload",
                "too_large",
                f"the payload is {len(raw):,} bytes; the limit is {max_bytes:,} bytes",
            )
        ]
    try:
        # The fast parser takes every well-formed payload; anything it refuses (broken JSON,
        # NaN, bad UTF-8, huge integers) goes the slow way below, which accepts what the
        # standard library accepts and explains the rest in its plain words.
        return orjson.loads(raw), []
    except orjson.JSONDecodeError:
        pass
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [
            FieldError("payload", "not_utf8", f"the payload is not UTF-8 text (byte {exc.start})")
        ]
    try:
        return json.loads(text, parse_constant=_reject_constant), []
    except ValueError as exc:
        return None, [
            FieldError("payload", "invalid_json", f"the payload is not valid JSON: {exc}")
        ]


def parse_time(value: str, field: str) -> tuple[dt.datetime | None, FieldError | None]:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None, FieldError(
            field,
            "invalid_time",
            f"{field} must be an ISO 8601 time such as 2026-11-23T09:15:02+08:00",
        )
    if parsed.tzinfo is None:
        return None, FieldError(
            field, "missing_offset", f"{field} must include a UTC offset, e.g. +08:00"
        )
    return parsed.astimezone(dt.UTC), None


@dataclass(frozen=True, slots=True)
class ReportRules:
    """What a report must satisfy beyond its shape (from the settings and config)."""

    categories: frozenset[str]
    max_note_chars: int
    observed_window: dt.timedelta
    future_skew: dt.timedelta


def validate_report(
    data: Any, rules: ReportRules, now: dt.datetime, topic_reporter: str | None
) -> tuple[ReportIn | None, list[FieldError]]:
    """A decoded JSON value → ReportIn, or every reason it is not acceptable."""
    try:
        m = _ReportModel.model_validate(data)
    except ValidationError as exc:
        return None, _pydantic_errors(exc)

    errors: list[FieldError] = []
    if m.v != 1:
        errors.append(FieldError("v", "unsupported_version", f"v must be 1, not {m.v}"))
    try:
        report_id = str(uuid.UUID(m.report_id))
    except ValueError:
        report_id = ""
        errors.append(FieldError("report_id", "invalid_uuid", "report_id must be a UUID"))
    if not REPORTER_ID.match(m.reporter_id):
        errors.append(
            FieldError(
                "reporter_id",
                "invalid",
                "reporter_id must be 1-64 letters, digits, '.', '_' or '-'",
            )
        )
    elif topic_reporter is not None and m.reporter_id != topic_reporter:
        errors.append(
            FieldError(
                "reporter_id",
                "reporter_mismatch",
                f"reporter_id {m.reporter_id!r} does not match the topic's reporter "
                f"{topic_reporter!r}",
            )
        )

    observed_at, terr = parse_time(m.observed_at, "observed_at")
    if terr:
        errors.append(terr)
    elif observed_at is not None:
        if observed_at > now + rules.future_skew:
            errors.append(
                FieldError(
                    "observed_at",
                    "in_future",
                    "observed_at is more than "
                    f"{int(rules.future_skew.total_seconds() // 60)} minutes in the future; "
                    "check the phone's clock",
                )
            )
        elif observed_at < now - rules.observed_window:
            errors.append(
                FieldError(
                    "observed_at",
                    "too_old",
                    f"observed_at is older than {rules.observed_window.days} days",
                )
            )

    has_position = m.lat is not None or m.lon is not None
    if has_position and (m.lat is None or m.lon is None):
        missing = "lon" if m.lon is None else "lat"
        errors.append(FieldError(missing, "required", f"{missing} is required with lat/lon"))
    if m.lat is not None and not -90 <= m.lat <= 90:
        errors.append(FieldError("lat", "out_of_range", "lat must be between -90 and 90"))
    if m.lon is not None and not -180 <= m.lon <= 180:
        errors.append(FieldError("lon", "out_of_range", "lon must be between -180 and 180"))
    if not has_position and not m.segment_hint:
        errors.append(
            FieldError("lat", "required", "lat and lon are required unless segment_hint is given")
        )

    crs = m.crs.upper()
    if crs not in ("WGS84", "GCJ02", "BD09"):
        errors.append(FieldError("crs", "unknown_crs", "crs must be WGS84, GCJ02 or BD09"))
    if m.accuracy_m is not None and not 0 <= m.accuracy_m <= 10_000:
        errors.append(
            FieldError("accuracy_m", "out_of_range", "accuracy_m must be between 0 and 10000")
        )
    if m.heading_deg is not None and not 0 <= m.heading_deg <= 360:
        errors.append(
            FieldError("heading_deg", "out_of_range", "heading_deg must be between 0 and 360")
        )

    if not CATEGORY_CODE.match(m.category):
        errors.append(
            FieldError("category", "invalid", "category must be a code like E0504 or C0101")
        )
    elif m.category not in rules.categories:
        errors.append(
            FieldError("category", "unknown_category", f"unknown category code {m.category}")
        )
    if not 1 <= m.severity <= 3:
        errors.append(
            FieldError("severity", "out_of_range", "severity must be 1 (minor), 2 or 3 (urgent)")
        )
    if m.note is not None and len(m.note) > rules.max_note_chars:
        errors.append(
            FieldError(
                "note",
                "too_long",
                f"note has {len(m.note):,} characters; at most {rules.max_note_chars:,} allowed",
            )
        )
    for i, photo in enumerate(m.photos):
        if not SHA256_HEX.match(photo):
            errors.append(
                FieldError(
                    f"photos.{i}", "invalid", "each photo must be a lower-case SHA-256 hex digest"
                )
            )
    if m.segment_hint is not None and not 0 < len(m.segment_hint) <= 64:
        errors.append(FieldError("segment_hint", "invalid", "segment_hint must be a segment id"))

    if errors or observed_at is None:
        return None, errors
    return (
        ReportIn(
            report_id=report_id,
            reporter_id=m.reporter_id,
            observed_at=observed_at,
            lat=m.lat,
            lon=m.lon,
            crs=crs,
            accuracy_m=m.accuracy_m,
            heading_deg=m.heading_deg,
            category=m.category,
            severity=m.severity,
            note=m.note,
            photos=tuple(m.photos),
            segment_hint=m.segment_hint or None,
        ),
        [],
    )


def message_id_of(data: Any, key: str = "report_id") -> str | None:
    """The client's id from a payload that may be invalid (for the ack and the record)."""
    if isinstance(data, dict):
        value = data.get(key)
        if isinstance(value, str) and len(value) <= 64:
            return value
    return None
