"""Payload validation for docs/protocol.md 2.1 (report), with errors in plain words.

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
    BeforeValidator,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)

from .errors import FieldError

SHA256_HEX = re.compile(r"^[0-9a-f]{64}\Z")
SHA256_HEX_ANY_CASE = re.compile(r"^[0-9a-fA-F]{64}\Z")
UTF8_BOM = b"\xef\xbb\xbf"
# JSON can carry text that no database column takes: NUL (PostgreSQL refuses it in text)
# and unpaired surrogate escapes such as "\ud800" (not Unicode text at all, so not UTF-8).
_NUL_ESCAPE = b"\\u0000"
REPORTER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}\Z")
CATEGORY_CODE = re.compile(r"^[EC]\d{4}\Z")

Number = StrictFloat | StrictInt  # JSON numbers only: no strings, no booleans


def _whole(value: Any) -> Any:
    """2.0 is a whole number: JSON does not tell 2 from 2.0, and the published JSON Schemas'
    "integer" takes both (some phone JSON libraries write every number with a fraction)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    return value


# A JSON whole number (2 or 2.0); 2.5, "2" and true are not.
WholeNumber = Annotated[StrictInt, BeforeValidator(_whole)]


class _ReportModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)  # new optional fields may appear

    v: WholeNumber
    report_id: StrictStr
    reporter_id: StrictStr
    observed_at: StrictStr
    lat: Number | None = None
    lon: Number | None = None
    # Optional fields: JSON null is the same as leaving the field out (the contract's own
    # example sends "segment_hint": null), so each takes None and gets its default below.
    crs: StrictStr | None = None
    accuracy_m: Number | None = None
    heading_deg: Number | None = None
    category: StrictStr
    severity: WholeNumber | None = None
    note: StrictStr | None = None
    photos: Annotated[list[StrictStr], Field(max_length=20)] | None = None
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


def _huge_whole_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and float(value).is_integer() and abs(value) >= 2**63


def pydantic_errors(exc: ValidationError) -> list[FieldError]:
    out: list[FieldError] = []
    for err in exc.errors():
        loc = ".".join(
            str(p)
            for p in err["loc"]
            if not str(p).startswith(("float", "int", "list[", "function-"))
        )
        field = loc or "payload"
        etype = err["type"]
        if etype == "missing":
            out.append(FieldError(field, "required", f"{field} is required"))
        elif etype == "model_type" and loc:
            out.append(FieldError(field, "invalid_type", f"{field} must be a JSON object"))
        elif etype == "model_type":
            out.append(FieldError("payload", "invalid_type", "the payload must be a JSON object"))
        elif etype == "int_type" and _huge_whole_number(err.get("input")):
            # beyond 64 bits (the fast parser reads such a number as a float): the right
            # kind of value, far out of range
            out.append(FieldError(field, "out_of_range", f"{field} is far out of range"))
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


def _bad_text(value: Any, path: str = "") -> FieldError | None:
    """The first text in a decoded payload that cannot be stored as text, or None.

    Iterative (a payload's depth is bounded by the parser, but no recursion is needed).
    """
    stack: list[tuple[str, Any]] = [(path, value)]
    while stack:
        where, v = stack.pop()
        if isinstance(v, dict):
            for k, sub in v.items():
                stack.append((f"{where}.{k}" if where else str(k), sub))
                # a key is reported at its object's place, and checked before the value
                # below it (whose field name it becomes)
                stack.append((where, k))
        elif isinstance(v, list):
            stack.extend((f"{where}.{i}" if where else str(i), sub) for i, sub in enumerate(v))
        elif isinstance(v, str):
            field = where or "payload"
            if "\x00" in v:
                return FieldError(
                    field,
                    "invalid_text",
                    f"{field} contains a NUL character (\\u0000), which text may not contain",
                )
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return FieldError(
                    field,
                    "invalid_text",
                    f"{field} contains a lone surrogate escape (such as \\ud800), which is "
                    "not text; escape characters outside the BMP as a surrogate pair",
                )
    return None


def decode_json(raw: bytes, max_bytes: int) -> tuple[Any, list[FieldError]]:
    """Bytes → JSON value, or the reason why not (size, encoding, syntax, unstorable text).

    With unstorable text the value comes back beside the error (use it for nothing but the
    client's id, so that the rejection's ack can name the message it answers).
    """
    if len(raw) > max_bytes:
        return None, [
            FieldError(
                "payload",
                "too_large",
                f"the payload is {len(raw):,} bytes; the limit is {max_bytes:,} bytes",
            )
        ]
    if raw.startswith(UTF8_BOM):  # RFC 8259 allows a parser to ignore it
        raw = raw[len(UTF8_BOM) :]
    try:
        # The fast parser takes every well-formed payload; anything it refuses (broken JSON,
        # NaN, bad UTF-8, huge integers, deep nesting, lone surrogates) goes the slow way
        # below, which accepts what the standard library accepts and explains the rest in
        # its plain words.
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    else:
        # orjson refuses lone surrogates itself; a NUL can only come as the escape \u0000.
        bad = _bad_text(value) if _NUL_ESCAPE in raw else None
        return value, [bad] if bad else []
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [
            FieldError("payload", "not_utf8", f"the payload is not UTF-8 text (byte {exc.start})")
        ]
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        return None, [
            FieldError(
                "payload", "invalid_json", "the payload is not valid JSON: it is nested too deeply"
            )
        ]
    except ValueError as exc:
        return None, [
            FieldError("payload", "invalid_json", f"the payload is not valid JSON: {exc}")
        ]
    bad = _bad_text(value)
    return value, [bad] if bad else []


def parse_time(value: str, field: str) -> tuple[dt.datetime | None, FieldError | None]:
    # RFC 3339 lets "T" and "Z" be lower case; Python reads a lower "t" but not a lower "z"
    if value[-1:] == "z":
        value = value[:-1] + "Z"
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
    try:
        return parsed.astimezone(dt.UTC), None
    except OverflowError:  # e.g. 0001-01-01T00:00:00+14:00 is before the year 1 in UTC
        return None, FieldError(
            field, "out_of_range", f"{field} is out of range (years 1 to 9999 in UTC)"
        )


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
        return None, pydantic_errors(exc)

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

    crs = (m.crs or "WGS84").upper()
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
    severity = 1 if m.severity is None else m.severity
    if not 1 <= severity <= 3:
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
    # Hex is hex in either case; stored (and matched to uploads) in lower case.
    photos = tuple(p.lower() for p in m.photos or ())
    for i, photo in enumerate(m.photos or ()):
        if not SHA256_HEX_ANY_CASE.match(photo):
            errors.append(
                FieldError(f"photos.{i}", "invalid", "each photo must be a SHA-256 hex digest")
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
            severity=severity,
            note=m.note,
            photos=photos,
            segment_hint=m.segment_hint or None,
        ),
        [],
    )


def message_id_of(data: Any, key: str = "report_id") -> str | None:
    """The client's id from a payload that may be invalid (for the ack and the record)."""
    if isinstance(data, dict):
        value = data.get(key)
        if isinstance(value, str) and len(value) <= 64 and _bad_text(value) is None:
            return value
    return None
