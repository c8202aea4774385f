"""docs/protocol.md's example report, with a fresh id and a current time unless told otherwise."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

CST = dt.timezone(dt.timedelta(hours=8))


def contract_example(**changes: Any) -> dict[str, Any]:
    """docs/protocol.md 2.1's example report. A value of `...` removes that field."""
    body: dict[str, Any] = {
        "v": 1,
        "report_id": str(uuid.uuid4()),
        "reporter_id": "zz-jinshui-0421",
        "observed_at": dt.datetime.now(CST).isoformat(timespec="seconds"),
        "lat": 34.77281,
        "lon": 113.68352,
        "crs": "GCJ02",
        "accuracy_m": 12.0,
        "heading_deg": 87.5,
        "category": "E0504",
        "severity": 2,
        "note": "店外经营，占用人行道约20米",
        "photos": ["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"],
        "segment_hint": None,
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}
