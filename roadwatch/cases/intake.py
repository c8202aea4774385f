"""Rectifications (docs/protocol.md 2.2) and verifications arriving over MQTT or HTTP.

A rectification comes from someone responsible for the spot, with an after photo (unless
the category says otherwise); a verification comes from someone else — never the person
who rectified. Both are idempotent on their client-made UUID and kept verbatim.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, StrictStr, ValidationError

from ..ingest.errors import FieldError
from ..ingest.payloads import SHA256_HEX, Number, WholeNumber, parse_time, pydantic_errors


class _Rectification(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    v: WholeNumber
    rectification_id: StrictStr
    report_id: StrictStr
    reporter_id: StrictStr
    done_at: StrictStr
    lat: Number | None = None
    lon: Number | None = None
    crs: StrictStr | None = None  # null = not given, as in a report
    note: StrictStr | None = None
    photos: list[StrictStr] | None = None


class _Verification(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    v: WholeNumber
    verification_id: StrictStr
    report_id: StrictStr
    reporter_id: StrictStr
    result: StrictStr
    done_at: StrictStr | None = None
    note: StrictStr | None = None
    photos: list[StrictStr] | None = None


@dataclass(frozen=True, slots=True)
class CaseMessageIn:
    kind: str  # rectification | verification
    message_id: str
    report_id: str
    reporter_id: str
    done_at: dt.datetime
    result: str | None  # verification: pass | fail
    note: str | None
    photos: tuple[str, ...]


def validate_case_message(
    kind: str, data: Any, now: dt.datetime, topic_reporter: str | None, max_note: int = 2000
) -> tuple[CaseMessageIn | None, list[FieldError]]:
    model: type[BaseModel] = _Rectification if kind == "rectification" else _Verification
    try:
        m: Any = model.model_validate(data)
    except ValidationError as exc:
        return None, pydantic_errors(exc)
    errors: list[FieldError] = []
    id_field = f"{kind}_id"
    ids: dict[str, str] = {}
    for name in (id_field, "report_id"):
        try:
            ids[name] = str(uuid.UUID(getattr(m, name)))
        except ValueError:
            errors.append(FieldError(name, "invalid_uuid", f"{name} must be a UUID"))
    if m.v != 1:
        errors.append(FieldError("v", "unsupported_version", f"v must be 1, not {m.v}"))
    if topic_reporter is not None and m.reporter_id != topic_reporter:
        errors.append(
            FieldError(
                "reporter_id",
                "reporter_mismatch",
                f"reporter_id {m.reporter_id!r} does not match the topic's reporter "
                f"{topic_reporter!r}",
            )
        )
    done_at: dt.datetime | None = now
    if m.done_at is not None:
        done_at, terr = parse_time(m.done_at, "done_at")
        if terr:
            errors.append(terr)
        elif done_at is not None and done_at > now + dt.timedelta(minutes=10):
            errors.append(
                FieldError("done_at", "in_future", "done_at is in the future; check the clock")
            )
    result = None
    if kind == "verification":
        result = m.result
        if result not in ("pass", "fail"):
            errors.append(FieldError("result", "invalid", "result must be pass or fail"))
    if m.note is not None and len(m.note) > max_note:
        errors.append(FieldError("note", "too_long", f"note has more than {max_note} characters"))
    if kind == "rectification":
        if m.lat is not None and not -90 <= m.lat <= 90:
            errors.append(FieldError("lat", "out_of_range", "lat must be between -90 and 90"))
        if m.lon is not None and not -180 <= m.lon <= 180:
            errors.append(FieldError("lon", "out_of_range", "lon must be between -180 and 180"))
        if (m.crs or "WGS84").upper() not in ("WGS84", "GCJ02", "BD09"):
            errors.append(FieldError("crs", "unknown_crs", "crs must be WGS84, GCJ02 or BD09"))
    # Hex is hex in either case; kept in lower case, as uploads are named.
    photos = tuple(p.lower() for p in m.photos or ())
    for i, p in enumerate(photos):
        if not SHA256_HEX.match(p):
            errors.append(
                FieldError(f"photos.{i}", "invalid", "each photo must be a SHA-256 hex digest")
            )
    if errors or done_at is None:
        return None, errors
    return (
        CaseMessageIn(
            kind=kind,
            message_id=ids[id_field],
            report_id=ids["report_id"],
            reporter_id=m.reporter_id,
            done_at=done_at,
            result=result,
            note=m.note,
            photos=photos,
        ),
        [],
    )
