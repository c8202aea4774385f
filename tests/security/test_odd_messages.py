"""Every field of every message kind, set to odd values, is answered in words.

The pipeline's safety net turns an unexpected exception into a rejection with the code
``internal_error`` ("the platform could not read it"): the sender is answered, but in no
words they can act on, and it is a defect. Each message kind of docs/protocol.md 2
(report, rectification, verification, patrol) with each field, and each field of a
patrol's point, replaced by odd values of every JSON type, in batches as a worker takes
them, on SQLite and PostgreSQL: every outcome is accepted, needs_review, rejected with
field errors other than internal_error, duplicate or parked.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from roadwatch.ingest.messages import Inbound
from roadwatch.store import models
from tests.support.examples import contract_example

CHIEF = "zz-jinshui-0421"
PHOTO = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
ODD: list[Any] = [
    *("x", "", " ", "\u0000", "🙂" * 10, "a" * 70_000, "NaN", "../x", "E0504", "ZZ-JS-0123"),
    *("2026-13-40", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59+14:00", "2026-12-06T10:00"),
    *(0, -1, 3, 360, 400, 91, -181, 2**70, -(2**70), 0.5, 1e308, -1e308, 5e-324),
    *(None, True, False, [], {}, [None], [{}], [1, 2], {"a": []}, "GCJ02", "BD09", "wgs84"),
]
WORDS = {"report": "reports", "rectification": "rectifications", "patrol": "patrols"}
WORDS["verification"] = "verifications"
IDS = ("report_id", "rectification_id", "verification_id", "patrol_id")
FINE = {"accepted", "needs_review", "rejected", "duplicate", "parked"}


def _msg(kind: str, body: dict[str, Any]) -> Inbound:
    return Inbound(
        transport="mqtt",
        kind=kind,
        payload=json.dumps(body, ensure_ascii=False).encode(),
        received_at=models.utcnow(),
        topic=f"roadwatch/v1/{WORDS[kind]}/{CHIEF}",
        topic_reporter=CHIEF,
    )


def _templates(report_id: str) -> dict[str, dict[str, Any]]:
    now = dt.datetime.now(dt.UTC).isoformat()
    case = {"v": 1, "report_id": report_id, "reporter_id": CHIEF, "done_at": now}
    return {
        "report": contract_example(),
        "rectification": {**case, "rectification_id": "", "note": "已清理", "photos": [PHOTO]},
        "verification": {**case, "verification_id": "", "result": "passed"},
        "patrol": {
            "v": 1,
            "patrol_id": "",
            "reporter_id": CHIEF,
            "state": "start",
            "crs": "WGS84",
            "points": [{"t": now, "lat": 34.77, "lon": 113.68, "accuracy_m": 8.0}],
        },
    }


def _variants(kind: str, template: dict[str, Any]) -> list[Inbound]:
    """The template with each field (and each field of a patrol's point) odd, a new id each."""
    out = []
    for field in [*template, "extra"]:
        for value in ODD:
            body = json.loads(json.dumps(template))
            for key in IDS:
                if key in body and (key != "report_id" or kind == "report"):
                    body[key] = str(uuid.uuid4())  # a fresh message, not a duplicate
            body[field] = value
            out.append(_msg(kind, body))
    for field in ("t", "lat", "lon", "accuracy_m", "extra") if kind == "patrol" else ():
        for value in ODD:
            body = json.loads(json.dumps(template))
            body["patrol_id"] = str(uuid.uuid4())
            body["points"][0][field] = value
            out.append(_msg(kind, body))
    return out


def test_odd_fields_are_answered_in_words(runtime: Any) -> None:
    first = contract_example()
    (stored,) = runtime.pipeline.process([_msg("report", first)])
    assert stored.status == "accepted"  # the case the case messages below refer to
    failures = []
    for kind, template in _templates(first["report_id"]).items():
        batch = _variants(kind, template)
        for i in range(0, len(batch), 40):
            chunk = batch[i : i + 40]
            for m, out in zip(chunk, runtime.pipeline.process(chunk), strict=True):
                codes = [e.code for e in out.errors or ()]
                if out.status not in FINE or "internal_error" in codes:
                    failures.append(f"{kind} {m.payload[:160]!r}: {out.status} {codes}")
    assert not failures, "\n".join(failures[:20])


def test_a_patrol_in_an_unknown_crs_is_refused_for_its_crs(runtime: Any) -> None:
    body = _templates(str(uuid.uuid4()))["patrol"]
    body.update(patrol_id=str(uuid.uuid4()), crs="UTM50")
    (out,) = runtime.pipeline.process([_msg("patrol", body)])
    assert out.status == "rejected"
    assert [(e.field, e.code) for e in out.errors] == [("crs", "unknown_crs")]
