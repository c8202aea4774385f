"""What the city publishes about a report: one rule, read by Open311 and the photo route.

A report is a *public service request* when all of these hold:

* its reporter is not a third-party evaluator (第三方测评) nor a covert checker (暗访), by
  the kind registered for that reporter id (`roadwatch reporters add ID --kind …`); their
  findings score the weekly ranking and stay inside the command centre;
* it is not waiting for review (`needs_review`: the platform could not tie it to a road
  with confidence, it may be nonsense or in the wrong place) and was not judged `invalid`
  by a reviewer.

Everything else (dispatched, rectified, reopened, closed, a duplicate linked to its case,
a report not yet dispatched) is public. People are never named publicly, and the notes of
the workflow's transitions (reviewers', fixers', verifiers' words) are internal; what a
public request shows is decided in roadwatch/web/open311.py.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from ..store import models

HIDDEN_KINDS = ("evaluator", "covert")
UNPUBLISHED = ("needs_review", "invalid")


def public_clause() -> Any:
    """A WHERE clause on models.Report: only public service requests."""
    r, p = models.Report, models.Reporter
    hidden = select(p.id).where(p.kind.in_(HIDDEN_KINDS)).scalar_subquery()
    return and_(
        r.reporter_id.not_in(hidden),
        r.status.not_in(UNPUBLISHED),
        or_(r.case_status.is_(None), r.case_status.not_in(UNPUBLISHED)),
    )


def public_report(session: Session, request_id: str | None) -> models.Report | None:
    """The report with this id if it is a public service request, else None."""
    if not request_id:
        return None
    try:
        rid = str(uuid.UUID(request_id))
    except ValueError:
        return None
    r = models.Report
    row: models.Report | None = session.scalar(select(r).where(r.id == rid, public_clause()))
    return row


def photo_is_public(session: Session, sha256: str, request_id: str | None) -> bool:
    """Whether the public may see this photo: the public request named shows it."""
    row = public_report(session, request_id)
    return row is not None and sha256 in [str(x).lower() for x in (row.photos or [])]
