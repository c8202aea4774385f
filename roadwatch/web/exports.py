"""Case exports: GET /api/cases.csv and /api/cases.xlsx for any period and district.

Both stream: plain columns are read in chunks (never 100k ORM objects), the CSV is
written row by row, the workbook with openpyxl's write-only mode. Times are shown in the
configured zone. The CSV starts with a UTF-8 BOM so that Excel shows Chinese correctly.
Every cell goes through roadwatch.web.spreadsheet (no text is ever run as a formula).
The header row is Chinese with each column's code beside it (`类别 (category_name)`).

Filters: since, until, district, status (a comma list, any of them; `overdue` is an open
case past its deadline), overdue=1 (every case flagged overdue, closed ones too), segment,
category (a comma list), severity (1-3).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import tempfile
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, request, stream_with_context
from sqlalchemy import and_, or_, select, text

from ..categories import Categories
from ..store import models
from . import authz
from .auth import scope_district
from .context import runtime
from .errors import ApiError
from .params import CASE_STATUSES, district_arg, status_list, time_arg
from .spreadsheet import csv_row, xlsx_row

bp = Blueprint("exports", __name__, url_prefix="/api")

CHUNK = 1000
HEADER = (
    "id",
    "category",
    "category_name",
    "severity",
    "case_status",
    "segment_id",
    "segment_name",
    "district",
    "district_name",
    "reporter_id",
    "assignee_id",
    "observed_at",
    "dispatched_at",
    "due_at",
    "rectified_at",
    "closed_at",
    "overdue",
    "escalation_level",
    "lat",
    "lon",
    "note",
)
# The header row as people read it: the Chinese name with the column's code beside it.
HEADER_ZH = {
    "id": "编号",
    "category": "类别代码",
    "category_name": "类别",
    "severity": "严重程度",
    "case_status": "案件状态",
    "segment_id": "路段编号",
    "segment_name": "路段",
    "district": "辖区代码",
    "district_name": "辖区",
    "reporter_id": "上报人",
    "assignee_id": "责任人",
    "observed_at": "发现时间",
    "dispatched_at": "派遣时间",
    "due_at": "处置时限",
    "rectified_at": "整改时间",
    "closed_at": "结案时间",
    "overdue": "超期",
    "escalation_level": "督办级别",
    "lat": "纬度",
    "lon": "经度",
    "note": "描述",
}
LABELS = tuple(f"{HEADER_ZH[c]} ({c})" for c in HEADER)


def _query() -> Any:
    """The filtered select of plain columns, checked before anything is streamed."""
    r, s = models.Report, models.Segment
    q = select(
        r.id,
        r.category,
        r.severity,
        r.case_status,
        r.segment_id,
        s.name,
        r.district,
        r.reporter_id,
        r.assignee_id,
        r.observed_at,
        r.dispatched_at,
        r.due_at,
        r.rectified_at,
        r.closed_at,
        r.overdue,
        r.escalation_level,
        r.lat,
        r.lon,
        r.note,
    ).outerjoin(s, s.id == r.segment_id)
    since, until = time_arg("since"), time_arg("until")
    if since and until and until <= since:
        raise ApiError(400, "until", "invalid", "until must be after since")
    if since:
        q = q.where(r.observed_at >= since)
    if until:
        q = q.where(r.observed_at < until)
    district = request.args.get("district")
    if district is not None:
        q = q.where(r.district == district_arg(district))
    if scope_district() is not None:  # a district user exports their district only
        q = q.where(r.district == scope_district())
    status = request.args.get("status")
    if status is not None:
        # any of the statuses; `overdue` is an open case past its deadline (the live
        # map's counter), while overdue=1 below keeps every case that ever was overdue
        wanted = status_list(status, (*CASE_STATUSES, "overdue"))
        either: list[Any] = [r.case_status.in_([w for w in wanted if w != "overdue"])]
        if "overdue" in wanted:
            either.append(and_(r.overdue.is_(True), text(models.OPEN_CASE_SQL)))
        q = q.where(or_(*either))
    if request.args.get("overdue") in ("1", "true"):
        q = q.where(r.overdue.is_(True))
    segment = request.args.get("segment")
    if segment is not None:
        q = q.where(r.segment_id == segment)
    category = request.args.get("category")
    if category is not None:
        cats = [c.strip() for c in category.split(",") if c.strip()]
        unknown = [c for c in cats if c not in runtime().categories.by_code]
        if not cats or unknown:
            raise ApiError(
                400, "category", "unknown_category", f"unknown category {', '.join(unknown)}"
            )
        q = q.where(r.category.in_(cats))
    severity = request.args.get("severity")
    if severity is not None:
        if severity not in ("1", "2", "3"):
            raise ApiError(400, "severity", "invalid", "severity must be 1, 2 or 3")
        q = q.where(r.severity == int(severity))
    return q.order_by(r.observed_at, r.id)


def _rows(q: Any, xlsx: bool) -> Iterator[tuple[Any, ...]]:
    """Export rows in order, read in chunks from one result (a server-side cursor on PG).

    Times are in the configured zone: ISO 8601 with the offset for CSV, plain local
    date-times for Excel (which has no time zones; the sheet is sortable that way).
    """
    rt = runtime()
    tz = rt.settings.tz
    cats: Categories = rt.categories
    districts = rt.ctx.district_names
    with rt.engine.connect() as conn:
        result = conn.execution_options(yield_per=CHUNK).execute(q)
        for part in result.partitions(CHUNK):
            for x in part:
                cat = cats.by_code.get(x.category)
                yield (
                    x.id,
                    x.category,
                    cat.name if cat else None,
                    x.severity,
                    x.case_status,
                    x.segment_id,
                    x.name,
                    x.district,
                    districts.get(x.district) if x.district else None,
                    x.reporter_id,
                    x.assignee_id,
                    *(
                        _local(t, tz, xlsx)
                        for t in (
                            x.observed_at,
                            x.dispatched_at,
                            x.due_at,
                            x.rectified_at,
                            x.closed_at,
                        )
                    ),
                    bool(x.overdue),
                    x.escalation_level,
                    x.lat,
                    x.lon,
                    x.note,
                )


def _local(t: dt.datetime | None, tz: dt.tzinfo, naive: bool) -> Any:
    if t is None:
        return None
    local = t.astimezone(tz)
    return local.replace(tzinfo=None) if naive else local.isoformat()


def _filename(ext: str) -> str:
    parts = ["cases"]
    for arg in ("district", "since", "until", "status", "segment", "category"):
        if request.args.get(arg):
            parts.append(request.args[arg][:10])
    stem = "_".join(parts)
    ascii_stem = "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "-" for c in stem)
    return f"{ascii_stem}.{ext}"


def _disposition(ext: str) -> str:
    from urllib.parse import quote

    name = _filename(ext)
    return f"attachment; filename=\"{name}\"; filename*=UTF-8''{quote(name)}"


@bp.get("/cases.csv")
def cases_csv() -> Response:
    rows = _rows(_query(), xlsx=False)  # the filters are checked here, before streaming
    authz.record_export("cases.csv")
    return Response(
        stream_with_context(_csv_stream(rows)),
        content_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": _disposition("csv")},
    )


def _csv_stream(rows: Iterator[tuple[Any, ...]]) -> Iterator[bytes]:
    buf = io.StringIO()
    buf.write("\ufeff")  # the BOM: Excel then reads the file as UTF-8
    writer = csv.writer(buf)
    writer.writerow(LABELS)
    for n, row in enumerate(rows, start=1):
        writer.writerow(csv_row(row))
        if n % CHUNK == 0:
            yield buf.getvalue().encode("utf-8")
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue().encode("utf-8")


@bp.get("/cases.xlsx")
def cases_xlsx() -> Response:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    q = _query()
    authz.record_export("cases.xlsx")
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("cases")
    bold = Font(bold=True)
    header = []
    for name in LABELS:
        cell = WriteOnlyCell(ws, value=name)
        cell.font = bold
        header.append(cell)
    ws.append(header)
    for row in _rows(q, xlsx=True):
        ws.append(xlsx_row(ws, row))
    # openpyxl writes a zip, which needs a seekable file: spool it (to disk past 8 MB).
    # Closed when sent, or by the response when the client goes away first.
    spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115
    wb.save(spool)
    spool.seek(0)

    def stream() -> Iterator[bytes]:
        with spool:
            while chunk := spool.read(64 * 1024):
                yield chunk

    resp = Response(
        stream(),
        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": _disposition("xlsx")},
    )
    resp.call_on_close(spool.close)
    return resp
