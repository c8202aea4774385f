"""The monthly figures, computed from the reports and the published weekly rankings.

Per district (the report's district) and city-wide, for a calendar month in the city's
time zone:
* reports: findings observed in the month (duplicates and invalid ones not counted);
* closed: cases closed in the month; on_time: of those, closed by their deadline;
* overdue: findings of the month whose deadline passed before they were closed (or the
  month ended with them open); escalations: findings of the month escalated (督办) at least
  once;
* recurrence: the share of the month's closed findings followed, within 7 days of closing,
  by another of the same category on the same segment (roadwatch.recurrence.hotspots);
* red / black: flags of the published weekly rankings whose week starts in the month.
Trends: the same figures for the month before and for the same month a year earlier (when
there were any reports then). Best five segments: the largest fall in findings from the
month before; worst five: the most findings; each with a photo before (a finding of the
month) and after (the rectification photo of its latest closed case).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, Table, func, select

from ..ranking.publish import canonical, chain, chain_problems, default_as_of, sha256
from ..ranking.week import Week
from ..recurrence.history import Finding
from ..recurrence.hotspots import RECUR_DAYS, recurrence
from ..store import audit, models

REVIEWS: Table = models.MonthlyReview.__table__  # type: ignore[assignment]
NOT_COUNTED = ("duplicate", "invalid")
CITY = "city"
FIGURES = ("reports", "closed", "on_time", "overdue", "escalations", "recurred", "red", "black")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


class ReviewError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Month:
    year: int
    month: int
    tz: ZoneInfo

    @classmethod
    def parse(cls, label: str, tz: ZoneInfo) -> Month:
        m = _MONTH.match(label.strip())
        if not m or not 1 <= int(m.group(2)) <= 12:
            raise ReviewError("bad_month", f"{label!r} is not a month; write it like 2026-11")
        return cls(int(m.group(1)), int(m.group(2)), tz)

    @property
    def label(self) -> str:
        return f"{self.year}-{self.month:02d}"

    @property
    def start(self) -> dt.datetime:
        return dt.datetime(self.year, self.month, 1, tzinfo=self.tz).astimezone(dt.UTC)

    @property
    def end(self) -> dt.datetime:
        return self.shift(1).start

    def shift(self, months: int) -> Month:
        k = self.year * 12 + self.month - 1 + months
        return Month(k // 12, k % 12 + 1, self.tz)


def _figures(conn: Connection, month: Month) -> dict[str, Counter[str]]:
    """district → figure → count, with CITY for the whole city."""
    r = models.Report.__table__.c
    start, end = month.start, month.end
    out: dict[str, Counter[str]] = defaultdict(Counter)

    def add(district: str | None, key: str, n: int = 1) -> None:
        out[district or "?"][key] += n
        out[CITY][key] += n

    counted = r.case_status.is_(None) | r.case_status.not_in(NOT_COUNTED)
    rows = conn.execute(
        select(r.district, r.due_at, r.closed_at, r.escalation_level, r.overdue).where(
            r.observed_at >= start, r.observed_at < end, counted
        )
    ).all()
    for district, due, closed, level, overdue in rows:
        add(district, "reports")
        late = due is not None and ((closed or end) > due)
        if overdue or late:
            add(district, "overdue")
        if level and level > 0:
            add(district, "escalations")
    for district, due, closed in conn.execute(
        select(r.district, r.due_at, r.closed_at).where(
            r.closed_at >= start, r.closed_at < end, counted
        )
    ):
        add(district, "closed")
        if due is None or closed <= due:
            add(district, "on_time")
    # Recurrence: the month's findings and those up to RECUR_DAYS after it.
    found = conn.execute(
        select(r.segment_id, r.category, r.observed_at, r.closed_at, r.district).where(
            r.observed_at >= start,
            r.observed_at < end + dt.timedelta(days=RECUR_DAYS),
            r.segment_id.is_not(None),
            counted,
        )
    ).all()
    district_of = {str(seg): d for seg, _, _, _, d in found}
    in_month = [Finding(str(seg), cat, at, closed) for seg, cat, at, closed, _ in found if at < end]
    later = [Finding(str(seg), cat, at, None) for seg, cat, at, _, _ in found if at >= end]
    for rec in recurrence([*in_month, *later]):
        add(district_of.get(rec.segment), "recurred", rec.came_back)
        add(district_of.get(rec.segment), "recurred_of", rec.closed)
    # Flags of the weekly rankings published for weeks starting in the month.
    rk = models.Ranking.__table__.c
    for week, content in conn.execute(select(rk.week, rk.content)):
        year, number = int(week[:4]), int(week[6:])
        monday = dt.date.fromisocalendar(year, number, 1)
        if (monday.year, monday.month) != (month.year, month.month):
            continue
        for lg in json.loads(content)["leagues"]:
            if lg.get("kind") != "segment":
                continue
            for s in lg["scores"]:
                if s.get("flag") in ("red", "black"):
                    add(lg.get("district"), s["flag"])
    return out


def _rates(c: Mapping[str, int]) -> dict[str, Any]:
    out: dict[str, Any] = {k: int(c.get(k, 0)) for k in FIGURES}
    out["on_time_rate"] = round(c["on_time"] / c["closed"], 4) if c.get("closed") else None
    of = c.get("recurred_of", 0)
    out["recurrence_rate"] = round(c.get("recurred", 0) / of, 4) if of else None
    return out


def _trend(now: dict[str, Any], then: dict[str, Any] | None) -> dict[str, Any] | None:
    if then is None:
        return None
    return {k: now[k] - then[k] for k in FIGURES}


def _segments(conn: Connection, month: Month, names: Mapping[str, str]) -> dict[str, Any]:
    r = models.Report.__table__.c
    counted = r.case_status.is_(None) | r.case_status.not_in(NOT_COUNTED)

    def per_segment(m: Month) -> Counter[str]:
        q = (
            select(r.segment_id, func.count())
            .where(r.observed_at >= m.start, r.observed_at < m.end, r.segment_id.is_not(None))
            .where(counted)
            .group_by(r.segment_id)
        )
        return Counter({str(seg): int(n) for seg, n in conn.execute(q)})

    now, before = per_segment(month), per_segment(month.shift(-1))
    worst = sorted(now, key=lambda s: (-now[s], s))[:5]
    best = sorted(
        (s for s in before if before[s] > now.get(s, 0)),
        key=lambda s: (-(before[s] - now.get(s, 0)), s),
    )[:5]

    def entry(seg: str) -> dict[str, Any]:
        photo_before = conn.execute(
            select(r.photos)
            .where(r.segment_id == seg, r.observed_at >= month.start, r.observed_at < month.end)
            .where(func.coalesce(r.closed_at, month.end) >= month.start)
            .order_by(r.observed_at, r.id)
            .limit(1)
        ).scalar()
        cm = models.CaseMessage.__table__.c
        photo_after = conn.execute(
            select(cm.photos)
            .join(models.Report.__table__, cm.report_id == r.id)
            .where(r.segment_id == seg, cm.kind == "rectification", cm.done_at < month.end)
            .order_by(cm.done_at.desc(), cm.id)
            .limit(1)
        ).scalar()
        return {
            "segment": seg,
            "name": names.get(seg, seg),
            "findings": now.get(seg, 0),
            "previous": before.get(seg, 0),
            "before_photo": (photo_before or [None])[0],
            "after_photo": (photo_after or [None])[0],
        }

    return {"worst": [entry(s) for s in worst], "best": [entry(s) for s in best]}


def _figures_as_published(conn: Connection, month: Month) -> dict[str, dict[str, Any]]:
    """A month's figures to compare with: as its pack published them when there is one.

    Its cases go on after it is frozen (reopened, closed as invalid, a report a phone's
    outbox delivered late), so recomputing it would give trends against figures that no
    published pack shows; the leaders compare with what they were given."""
    row = stored(conn, month.label)
    if row is None:
        return {k: _rates(v) for k, v in _figures(conn, month).items()}
    areas = json.loads(row.content).get("areas", [])
    return {a["code"]: a["figures"] for a in areas}


def compute(conn: Connection, month: Month) -> dict[str, Any]:
    """The pack's content (JSON-ready; what is published and hashed)."""
    district_names = dict(conn.execute(select(models.District.code, models.District.name)).all())
    segment_names = dict(conn.execute(select(models.Segment.id, models.Segment.name)).all())
    figures = {k: _rates(v) for k, v in _figures(conn, month).items()}
    prev = _figures_as_published(conn, month.shift(-1))
    last_year = _figures_as_published(conn, month.shift(-12))
    had_last_year = last_year.get(CITY, {}).get("reports", 0) > 0
    areas = []
    for code in sorted(figures, key=lambda c: (c == CITY, c)):
        areas.append(
            {
                "code": code,
                "name": "全市" if code == CITY else district_names.get(code, code),
                "figures": figures[code],
                "vs_previous_month": _trend(figures[code], prev.get(code, _rates(Counter()))),
                "vs_last_year": _trend(figures[code], last_year.get(code, _rates(Counter())))
                if had_last_year
                else None,
            }
        )
    return {
        "month": month.label,
        "timezone": str(month.tz),
        "start": month.start.astimezone(month.tz).isoformat(),
        "end": month.end.astimezone(month.tz).isoformat(),
        "previous_month": month.shift(-1).label,
        "same_month_last_year": month.shift(-12).label if had_last_year else None,
        "areas": areas,
        "segments": _segments(conn, month, segment_names),
    }


# -- publishing: the weekly rankings' canonical JSON and hash chain ------------------------
@dataclass
class Published:
    month: str
    created: bool
    content_sha256: str
    chain_sha256: str


def stored(conn: Connection, month: str) -> Any:
    return conn.execute(select(REVIEWS).where(REVIEWS.c.month == month)).first()


def ready_at(month: Month, contest_hours: float) -> dt.datetime:
    """When the month's pack may be frozen: the cut-off of the last weekly ranking whose
    week starts in the month (its flags are the pack's). A week starting on the 30th ends
    in the next month: frozen before its cut-off, the pack would miss its flags for good."""
    last = Week.containing(month.end - dt.timedelta(microseconds=1), month.tz)
    return max(
        month.end, default_as_of(last, contest_hours) if last.start >= month.start else month.end
    )


def publish(
    engine: Engine,
    month: Month,
    *,
    by: str,
    now: dt.datetime,
    contest_hours: float,
) -> Published:
    """Freeze the month once (after the cut-off of its last week's ranking: `ready_at`); a
    second call changes nothing."""
    if now < month.end:
        raise ReviewError("month_open", f"{month.label} has not ended yet")
    ready = ready_at(month, contest_hours)
    if now < ready:
        raise ReviewError(
            "month_open",
            f"{month.label} can be published from "
            f"{ready.astimezone(month.tz).strftime('%Y-%m-%d %H:%M')}: the weekly ranking of "
            f"{Week.containing(month.end - dt.timedelta(microseconds=1), month.tz).label}, "
            "whose week starts in the month, is frozen then and its flags are the pack's",
        )
    with engine.begin() as conn:
        row = stored(conn, month.label)
        if row is not None:
            return Published(month.label, False, row.content_sha256, row.chain_sha256)
        later = conn.execute(
            select(func.min(REVIEWS.c.month)).where(REVIEWS.c.month > month.label)
        ).scalar()
        if later:
            raise ReviewError("out_of_order", f"{later} is already published: months go in order")
        content = compute(conn, month)
        content["published_at"] = now.astimezone(month.tz).isoformat()
        content["published_by"] = by
        text_ = canonical(content)
        digest = sha256(text_)
        prev = conn.execute(
            select(REVIEWS.c.chain_sha256)
            .where(REVIEWS.c.month < month.label)
            .order_by(REVIEWS.c.month.desc())
            .limit(1)
        ).scalar()
        link = chain(prev, digest)
        conn.execute(
            REVIEWS.insert().values(
                month=month.label,
                published_at=now,
                published_by=by,
                content=text_,
                content_sha256=digest,
                prev_sha256=prev,
                chain_sha256=link,
            )
        )
        audit.record(conn, by, "review.publish", month.label, at=now, content_sha256=digest)
    return Published(month.label, True, digest, link)


def verify(engine: Engine, month: Month) -> list[str]:
    """What is wrong with the published month (empty: nothing)."""
    problems: list[str] = []
    with engine.connect() as conn:
        row = stored(conn, month.label)
        if row is None:
            raise ReviewError("not_published", f"{month.label} is not published")
        problems += chain_problems(conn, REVIEWS.c.month, month.label, row, "pack", "month")
    return problems


def load(engine: Engine, month: Month) -> tuple[dict[str, Any], dict[str, Any]]:
    """(content, meta): the frozen pack if published, else a draft computed now."""
    with engine.connect() as conn:
        row = stored(conn, month.label)
        if row is not None:
            meta = {
                "published": True,
                "content_sha256": row.content_sha256,
                "chain_sha256": row.chain_sha256,
                "prev_sha256": row.prev_sha256,
            }
            return json.loads(row.content), meta
        content = compute(conn, month)
    return content, {"published": False}
