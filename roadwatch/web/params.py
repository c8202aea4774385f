"""Query parameters of every HTTP route, one rule each.

* a time (`since`, `until`, `at`, Open311's `start_date`…): absent is None; anything else
  must be ISO 8601 with a zone, or a plain date (`2026-11-30`: 00:00 of that day in the
  platform's time zone, for every parameter alike, so `since=2026-11-30&until=2026-12-01`
  is that one day), or it is a 400 naming the parameter (an empty `since=` too).
  An unescaped '+' before the offset arrives as a space and is read as '+'.
* `bbox=minLon,minLat,maxLon,maxLat`: four finite WGS84 numbers in order, or a 400.
* `limit`: a whole number between 1 and the route's maximum (default: the route's), or a 400.
* `cursor`: only one this server gave out (`encode_cursor`), with parts of the expected
  types, or a 400; `next_url` is the same request with the next cursor.
* `district`: a code (JS) or the name acks and events give (金水区); an unknown one is a 400.
* `status`: a comma list, every one known, or a 400.

Errors are `ApiError`s (`{"field","code","message"}`); Open311 renders them in its format.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import re
from typing import Any

from flask import request, url_for

from ..cases.workflow import ALLOWED
from ..ingest.payloads import parse_time
from .context import runtime
from .errors import ApiError

# A report's own status (its intake) and its case's (the workflow), as `status` filters.
REPORT_STATUSES = ("accepted", "needs_review")
CASE_STATUSES = tuple(s for s in ALLOWED if s is not None)  # the workflow's, new first

# An unescaped '+' in a query arrives as a space: `?since=2026-11-23T09:15:02+08:00`.
_SPACE_FOR_PLUS = re.compile(r" (\d{2}(?::?\d{2})?)$")
_PLAIN_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def time_arg(name: str) -> dt.datetime | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    if _PLAIN_DATE.fullmatch(raw):
        try:
            day = dt.date.fromisoformat(raw)
        except ValueError:
            raise ApiError(
                400, name, "invalid_time", f"{name} is not a real date (YYYY-MM-DD)"
            ) from None
        midnight = dt.datetime.combine(day, dt.time(0), tzinfo=runtime().settings.tz)
        return midnight.astimezone(dt.UTC)
    value, err = parse_time(_SPACE_FOR_PLUS.sub(r"+\1", raw), name)
    if err:
        raise ApiError(400, err.field, err.code, err.message)
    return value


def bbox_arg() -> tuple[float, float, float, float] | None:
    """`bbox=minLon,minLat,maxLon,maxLat` (WGS84), or a 400 naming what is wrong."""
    raw = request.args.get("bbox")
    if raw is None:
        return None
    try:
        w, s, e, n = (float(x) for x in raw.split(","))
    except ValueError:
        raise ApiError(
            400, "bbox", "invalid", "bbox must be minLon,minLat,maxLon,maxLat in WGS84"
        ) from None
    if not all(math.isfinite(v) for v in (w, s, e, n)):
        raise ApiError(400, "bbox", "invalid", "bbox must be four finite numbers")
    if not (-180 <= w <= e <= 180 and -90 <= s <= n <= 90):
        raise ApiError(
            400,
            "bbox",
            "out_of_range",
            "bbox must be minLon,minLat,maxLon,maxLat with minLon <= maxLon within -180..180 "
            "and minLat <= maxLat within -90..90",
        )
    return w, s, e, n


def limit_arg(default: int, maximum: int) -> int:
    raw = request.args.get("limit", str(default))
    try:
        limit = int(raw)
    except ValueError:
        raise ApiError(400, "limit", "invalid", "limit must be a whole number") from None
    if not 1 <= limit <= maximum:
        raise ApiError(400, "limit", "out_of_range", f"limit must be between 1 and {maximum}")
    return limit


def encode_cursor(*parts: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode().rstrip("=")


# The row ids paged by (events.seq, rejected_messages.id, audit_entries.id…) are INTEGER
# columns: 32 bits on PostgreSQL, where a larger number in a query is an error.
MAX_ROW_ID = 2**31 - 1


def decode_cursor(raw: str, *kinds: type) -> list[Any]:
    """The parts of a cursor this server gave out, of these types; anything else is a 400."""
    try:
        value = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        if not isinstance(value, list) or len(value) != len(kinds):
            raise ValueError
        for part, kind in zip(value, kinds, strict=True):
            if not isinstance(part, kind) or isinstance(part, bool):
                raise ValueError
            # beyond the id columns, or text no column holds: a database error, not an answer
            if isinstance(part, int) and not 0 <= part <= MAX_ROW_ID:
                raise ValueError
            if isinstance(part, str) and "\x00" in part:
                raise ValueError
        return value
    except ValueError:
        raise ApiError(400, "cursor", "invalid", "cursor is not one this server gave out") from None


def next_url(endpoint: str, cursor: str) -> str:
    args = {k: v for k, v in request.args.items() if k != "cursor"}
    return url_for(endpoint, _external=True, cursor=cursor, **args)


def district_arg(raw: str) -> str:
    """A district by its code (JS) or by the name acks and events give (金水区)."""
    names = runtime().ctx.district_names
    if raw in names:
        return raw
    code = next((code for code, name in names.items() if name == raw), None)
    if code is None:  # a typo would otherwise look like a district without reports
        example = next(iter(names.items()), ("JS", "金水区"))
        raise ApiError(
            400,
            "district",
            "unknown_district",
            f"unknown district {raw!r}; use a code such as {example[0]} or a name such as "
            f"{example[1]}",
        )
    return code


def status_list(raw: str, known: tuple[str, ...]) -> list[str]:
    """`status=dispatched,rectified` as a list, every one of them in `known`."""
    wanted = [x.strip() for x in raw.split(",") if x.strip()]
    if not wanted or any(x not in known for x in wanted):
        raise ApiError(
            400, "status", "invalid", f"status must be one or more of {', '.join(known)}"
        )
    return wanted
