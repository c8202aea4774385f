"""Frozen message types passed from transports to the pipeline and back."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from .errors import FieldError


@dataclass(frozen=True, slots=True)
class Inbound:
    """One message as it arrived, before anything was checked."""

    transport: str  # "mqtt" | "http"
    kind: str  # "report" (later: "rectification", "patrol")
    payload: bytes
    received_at: dt.datetime
    topic: str | None = None
    topic_reporter: str | None = None  # the {reporter} of the topic; None over HTTP
    response_topic: str | None = None  # MQTT 5
    correlation_data: bytes | None = None  # MQTT 5
    token: Any = None  # transport handle, e.g. the MQTT mid to PUBACK after commit
    # Refused by the transport before its content is read (e.g. an HTTP body that is not
    # declared as JSON): stored and answered as a rejection like any other.
    refused: tuple[FieldError, ...] = ()
    # Who sent it when neither a topic nor an identity names them (Open311's city system,
    # open311-{owner}, which checked its own api_key): kept with a rejection.
    sender: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result for one message: the body of the ack (docs/protocol.md 2.5)."""

    id: str | None
    status: str  # accepted | duplicate | needs_review | rejected
    segment_id: str | None = None
    segment_name: str | None = None
    district: str | None = None
    snap: dict[str, Any] | None = None
    errors: tuple[FieldError, ...] = field(default_factory=tuple)
    case_status: str | None = None  # the case's state after this message, when there is one
    covered: tuple[str, ...] | None = None  # a patrol's end: the segments it walked

    def ack_body(self) -> dict[str, Any]:
        return {
            "v": 1,
            "id": self.id,
            "status": self.status,
            "segment_id": self.segment_id,
            "segment_name": self.segment_name,
            "district": self.district,
            "snap": self.snap,
            "errors": [e.as_dict() for e in self.errors],
            "case_status": self.case_status,
            **({"covered_segments": list(self.covered)} if self.covered is not None else {}),
        }
