"""JSON Schemas (Draft 2020-12) of the messages in docs/protocol.md, generated from code.

The inbound payloads (report, rectification, verification, patrol) are the pydantic models
that validate them; their generated shape (field names, types, what is required) is
refined here with each field's description and the value rules the validators apply
(ranges, UUIDs, enumerations). The outbound messages (ack, notices) and the HTTP error
body are described by models in this module, which tests hold against the code that
builds them (`Outcome.ack_body`, the notices of roadwatch.cases).

    python -m roadwatch.ingest.schema docs/schemas     # (re)write the files
    roadwatch.ingest.schema.export(path)               # the same, from Python

tests/test_protocol_docs.py regenerates them and fails if the committed files differ, so
a change to a payload model changes docs/schemas/ in the same commit.
"""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .payloads import _ReportModel

DIALECT = "https://json-schema.org/draft/2020-12/schema"
UUID = {"type": "string", "format": "uuid", "pattern": "^[0-9a-fA-F-]{32,36}$"}
TIME = {"type": "string", "format": "date-time"}
CRS = ["WGS84", "GCJ02", "BD09"]
SHA256 = {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}
REPORTER = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.\\-]{0,63}$"}
CASE_STATUSES = [
    "new",
    "dispatched",
    "needs_review",
    "duplicate",
    "invalid",
    "reopened",
    "rectified",
    "closed",
]


def _inbound_models() -> dict[str, type[BaseModel]]:
    """The models the platform validates inbound payloads with (imported late: the case
    and patrol modules import this package)."""
    from ..cases import intake, patrols

    # Private to their modules (the validators are their public face); read, not changed.
    return {
        "report": _ReportModel,
        "rectification": intake._Rectification,
        "verification": intake._Verification,
        "patrol": patrols._Patrol,
    }


# -- the outbound messages --------------------------------------------------------------
class FieldErrorModel(BaseModel):
    """One reason a message or request was refused (roadwatch.ingest.errors.FieldError)."""

    model_config = ConfigDict(extra="forbid")
    field: str = Field(
        description="The payload field at fault, dotted for nested ones (`photos.0`, "
        "`points.3.t`); `payload` for the message as a whole."
    )
    code: str = Field(description="A stable machine-readable code, e.g. `required`.")
    message: str = Field(description="The reason in plain words, for a person to act on.")


class Snap(BaseModel):
    """How the position was tied to a segment."""

    model_config = ConfigDict(extra="allow")
    distance_m: float | None = Field(None, description="Distance to the segment, metres.")
    confidence: float | None = Field(None, description="0 to 1.")
    ambiguous: bool | None = Field(
        None, description="True when another segment was nearly as likely: sent to review."
    )
    chainage_m: float | None = Field(None, description="Position along the segment, metres.")
    method: str | None = Field(None, description="How it was placed, e.g. `nearest`, `hint`.")
    hint_ignored: dict[str, Any] | None = Field(
        None,
        description="The report's segment_hint when it was not trusted (its segment farther "
        "than 150 m from the fix, or no segment of the network: `distance_m` null): "
        "`segment_id` and `distance_m`; the report was placed by its position instead.",
    )


class Ack(BaseModel):
    """The platform's answer to one message (MQTT `acks/{reporter}`, or the HTTP body)."""

    model_config = ConfigDict(extra="allow")  # new optional fields may be added
    v: Literal[1] = Field(description="Version of the ack, `1`.")
    id: str | None = Field(
        description="The client's id of the message answered (report_id, rectification_id, "
        "verification_id or patrol_id); null when the payload had none that could be read."
    )
    status: Literal["accepted", "duplicate", "needs_review", "rejected"] = Field(
        description="accepted: stored. duplicate: this id was stored before; nothing changed. "
        "needs_review: stored, but the position could not be tied to one segment with "
        "confidence (a person decides). rejected: not accepted, see errors (the raw message "
        "is kept)."
    )
    segment_id: str | None = Field(description="The segment the report was placed on.")
    segment_name: str | None = Field(description="Its name, e.g. 花园路（农业路至黄河路）.")
    district: str | None = Field(description="Its district.")
    snap: Snap | None = Field(description="How the report was placed (reports only).")
    errors: list[FieldErrorModel] = Field(description="Empty unless status is rejected.")
    case_status: str | None = Field(
        description="The case's state after this message, when there is a case: one of "
        + ", ".join(CASE_STATUSES)
        + "."
    )
    covered_segments: list[str] | None = Field(
        None, description="Only on the ack of a patrol's `end`: the segments it walked."
    )


class HttpErrors(BaseModel):
    """The body of an HTTP error answer (4xx and 5xx) of the JSON API."""

    model_config = ConfigDict(extra="allow")
    errors: list[FieldErrorModel] = Field(description="At least one reason.", min_length=1)


class _NoticeBase(BaseModel):
    model_config = ConfigDict(extra="allow")
    v: Literal[1] = Field(description="Version of the notice, `1`.")
    notice_id: str = Field(
        description="This notice's id (a UUID). A notice can arrive more than once (it is "
        "sent again after a crash of the sender): drop one whose id you have seen."
    )
    case_id: str = Field(description="The case, which is the report's report_id.")
    segment_id: str | None = Field(description="The case's segment.")


class DispatchNotice(_NoticeBase):
    """A new case for you (sent to the road chief the case is dispatched to)."""

    kind: Literal["dispatch"]
    category: str = Field(description="The problem's category code.")
    severity: int = Field(description="1 minor, 2 serious, 3 urgent.")
    due_at: str = Field(description="The deadline (ISO 8601 with offset).")
    grace: bool = Field(
        description="True when a merchant's frontage pledge applies: the merchant is asked "
        "first and the deadline is the merchant's."
    )


class ReopenedNotice(_NoticeBase):
    """Your rectification failed verification: the case is open again."""

    kind: Literal["reopened"]
    note: str | None = Field(description="The verifier's note.")


class EscalationNotice(_NoticeBase):
    """A case went past its deadline: sent to the level it is escalated to (`escalation`)
    and, at the first step, to the assignee (`overdue`)."""

    kind: Literal["escalation", "overdue"]
    category: str = Field(description="The problem's category code.")
    level: int = Field(description="The chief level notified (0 to 3).")
    step: int = Field(description="1 for the first escalation, then 2, 3…")
    due_at: str | None = Field(description="The deadline that passed.")


class Notice(BaseModel):
    """A message to one person on `notices/{person}`; `kind` tells which."""

    root: DispatchNotice | ReopenedNotice | EscalationNotice


# -- descriptions and value rules of the inbound fields ---------------------------------
# Each entry: field -> (description, constraints applied to the field's non-null type).
_Rules = dict[str, tuple[str, dict[str, Any]]]
_COMMON: _Rules = {
    "v": ("Payload version: `1`.", {"const": 1}),
    "reporter_id": (
        "Who sends it: must equal `{reporter}` in the MQTT topic (over HTTP: the "
        "identity's reporter). 1–64 letters, digits, `.`, `_`, `-`.",
        REPORTER,
    ),
    "lat": ("Latitude in `crs`, degrees.", {"minimum": -90, "maximum": 90}),
    "lon": ("Longitude in `crs`, degrees.", {"minimum": -180, "maximum": 180}),
    "crs": (
        "Coordinate system of lat/lon: `WGS84` (GPS; the default), `GCJ02` (Amap, Tencent, "
        "WeChat) or `BD09` (Baidu). Converted to WGS84 before use.",
        {"enum": CRS},
    ),
    "note": ("Free text, at most 2,000 characters (setting max_note_chars).", {}),
    "photos": (
        "SHA-256 (hex) of photos uploaded over HTTP (`POST /api/photos`); a message may "
        "arrive before its photos.",
        {"items": SHA256},
    ),
}
RULES: dict[str, _Rules] = {
    "report": {
        "report_id": ("A UUID made on the device: the idempotency key.", UUID),
        "observed_at": (
            "When the problem was seen, ISO 8601 with a UTC offset; at most 10 minutes "
            "ahead of the platform's clock and within the observed window (default 7 days).",
            TIME,
        ),
        "lat": ("Latitude in `crs`; required with lon unless segment_hint is given.", {}),
        "lon": ("Longitude in `crs`; required with lat unless segment_hint is given.", {}),
        "accuracy_m": (
            "The device's horizontal accuracy (68 % radius), metres: widens or narrows the "
            "search for the segment.",
            {"minimum": 0, "maximum": 10000},
        ),
        "heading_deg": (
            "Direction of travel, degrees clockwise from north: separates parallel roads.",
            {"minimum": 0, "maximum": 360},
        ),
        "category": (
            "A problem code of the configured categories (`GET /api/categories`), e.g. "
            "`E0504` 店外经营, `C0101` 上水井盖; unknown codes are rejected.",
            {"pattern": "^[EC][0-9]{4}$"},
        ),
        "severity": ("1 minor (default), 2 serious, 3 urgent (safety).", {"enum": [1, 2, 3]}),
        "photos": (_COMMON["photos"][0] + " At most 20.", {"maxItems": 20}),
        "segment_hint": (
            "A segment id the person picked by hand when the position was poor or the "
            "platform was not certain of the segment (`GET /m/api/segments/near` offers "
            "the candidates). Trusted when the fix is within 150 m of it, else ignored.",
            {"minLength": 1, "maxLength": 64},
        ),
    },
    "rectification": {
        "rectification_id": ("A UUID made on the device: the idempotency key.", UUID),
        "report_id": ("The report (case) that was put right.", UUID),
        "done_at": (
            "When the work was done, ISO 8601 with offset; clamped between the dispatch and "
            "the platform's receipt.",
            TIME,
        ),
        "lat": ("Where the after photo was taken (optional).", {}),
        "lon": ("Where the after photo was taken (optional).", {}),
        "photos": (
            _COMMON["photos"][0] + " An after photo is required unless the category says "
            "otherwise.",
            {},
        ),
    },
    "verification": {
        "verification_id": ("A UUID made on the device: the idempotency key.", UUID),
        "report_id": ("The report (case) whose rectification is checked.", UUID),
        "result": (
            "`pass` closes the case; `fail` reopens it for the assignee.",
            {"enum": ["pass", "fail"]},
        ),
        "done_at": ("When it was checked (default: when received).", TIME),
    },
    "patrol": {
        "patrol_id": ("A UUID made on the device, the same for every message of a walk.", UUID),
        "state": (
            "`start`, then any number of `track`, then `end`; at the end the track is "
            "matched to the network and the ack lists the segments walked.",
            {"enum": ["start", "track", "end"]},
        ),
        "crs": (_COMMON["crs"][0] + " Applies to every point.", {}),
        "points": ("Track points (at most 2,000 per message); a resent point is ignored.", {}),
    },
}
_POINT: _Rules = {
    "t": ("When the point was recorded, ISO 8601 with offset.", TIME),
    "lat": ("Latitude in the patrol's crs.", {"minimum": -90, "maximum": 90}),
    "lon": ("Longitude in the patrol's crs.", {"minimum": -180, "maximum": 180}),
    "accuracy_m": ("Horizontal accuracy, metres.", {"minimum": 0, "maximum": 10000}),
}
TITLES = {
    "report": "A report of a problem seen in the street (reports/{reporter})",
    "rectification": "A rectification: the problem was put right (rectifications/{reporter})",
    "verification": "A verification of a rectification (verifications/{reporter})",
    "patrol": "Track points of a patrol (patrols/{reporter})",
    "ack": "The platform's answer to one message (acks/{reporter}, or the HTTP body)",
    "notice": "A message from the platform to one person (notices/{person})",
    "error": "The body of an HTTP error answer",
}


def _refine(prop: dict[str, Any], desc: str, rules: dict[str, Any]) -> dict[str, Any]:
    """A generated property schema with its description and value rules applied."""
    out = {k: v for k, v in prop.items() if k != "title"}
    if desc:
        out["description"] = desc
    if not rules:
        return out

    def apply(branch: dict[str, Any]) -> dict[str, Any]:
        if branch.get("type") == "null":
            return branch
        merged = {**branch, **rules}
        if "items" in rules and "items" in branch:
            merged["items"] = {**branch["items"], **rules["items"]}
        if "const" in rules or "enum" in rules:
            # an enumeration says all: keep the type only where the values need it
            merged.pop("pattern", None)
        return merged

    if "anyOf" in out:
        out["anyOf"] = [apply(b) for b in out["anyOf"]]
    else:
        out = apply(out)
    return out


def _field_rules(name: str, props: dict[str, Any]) -> _Rules:
    """Each field's description and value rules: the message's own over the common ones."""
    own = RULES[name]
    unknown = sorted(set(own) - set(props))
    missing = sorted(f for f in props if f not in own and f not in _COMMON)
    if unknown or missing:
        raise ValueError(
            f"{name}: rules for fields that do not exist {unknown}, "
            f"fields without a description {missing}"
        )
    out: _Rules = {}
    for f in props:
        base_desc, base_rules = _COMMON.get(f, ("", {}))
        desc, rules = own.get(f, (base_desc, {}))
        merged = {**base_rules, **rules}
        if "items" in base_rules and "items" in rules:
            merged["items"] = {**base_rules["items"], **rules["items"]}
        out[f] = (desc or base_desc, merged)
    return out


def _inbound_schema(name: str, model: type[BaseModel]) -> dict[str, Any]:
    generated = model.model_json_schema()
    props = generated["properties"]
    rules = _field_rules(name, props)
    out: dict[str, Any] = {
        "$schema": DIALECT,
        "title": TITLES[name],
        "description": (model.__doc__ or "").strip() or TITLES[name],
        "type": "object",
        "properties": {f: _refine(p, *rules[f]) for f, p in props.items()},
        "required": generated.get("required", []),
        "additionalProperties": True,
    }
    defs = generated.get("$defs")
    if defs:
        defs = copy.deepcopy(defs)
        for d in defs.values():
            d.pop("title", None)
            d["properties"] = {
                f: _refine(p, *_POINT.get(f, ("", {}))) for f, p in d["properties"].items()
            }
        out["$defs"] = defs
    return _public_def_names(out)


def _public_def_names(schema: dict[str, Any]) -> dict[str, Any]:
    """`_Point` (a private model's name) is `Point` in the published schema."""
    text = json.dumps(schema, ensure_ascii=False)
    for name in schema.get("$defs", {}):
        if name.startswith("_"):
            text = text.replace(f'"#/$defs/{name}"', f'"#/$defs/{name[1:]}"')
    out: dict[str, Any] = json.loads(text)
    if "$defs" in out:
        out["$defs"] = {k.lstrip("_"): v for k, v in out["$defs"].items()}
    return out


def _outbound_schema(name: str, model: type[BaseModel]) -> dict[str, Any]:
    generated = model.model_json_schema()
    if "root" in generated.get("properties", {}):  # a union wrapper: the union itself
        root = generated["properties"]["root"]
        generated = {"oneOf": root["anyOf"], "$defs": generated["$defs"]}
    out = {"$schema": DIALECT, "title": TITLES[name]}
    doc = (model.__doc__ or "").strip()
    out["description"] = " ".join(doc.split())
    generated.pop("title", None)
    generated.pop("description", None)
    out.update(generated)
    schema: dict[str, Any] = _strip_titles(out)
    return schema


def _strip_titles(node: Any, top: bool = True) -> Any:
    """Drop pydantic's generated per-property titles ("Segment Id"): noise for readers."""
    if isinstance(node, dict):
        return {
            k: _strip_titles(v, False)
            for k, v in node.items()
            if not (k == "title" and not top and isinstance(v, str))
        }
    if isinstance(node, list):
        return [_strip_titles(v, False) for v in node]
    return node


def schemas() -> dict[str, dict[str, Any]]:
    """File stem -> JSON Schema, for every message of docs/protocol.md."""
    out = {name: _inbound_schema(name, m) for name, m in _inbound_models().items()}
    outbound: dict[str, type[BaseModel]] = {"ack": Ack, "notice": Notice, "error": HttpErrors}
    for name, model in outbound.items():
        out[name] = _outbound_schema(name, model)
    return out


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, ensure_ascii=False, indent=2) + "\n"


def export(directory: str | Path, write: Callable[[Path, str], Any] | None = None) -> list[Path]:
    """Write `<name>.json` for every schema into `directory`; returns the paths written."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, schema in schemas().items():
        path = target / f"{name}.json"
        text = render(schema)
        if write is None:
            path.write_text(text, encoding="utf-8")
        else:
            write(path, text)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m roadwatch.ingest.schema DIRECTORY", file=sys.stderr)
        return 2
    for path in export(args[0]):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
