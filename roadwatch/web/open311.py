"""Open311 GeoReport v2 (wiki.open311.org/GeoReport_v2) over the case workflow, JSON and XML.

Mapping: a problem category is a service (service_code = category code); a report is a
service request (service_request_id = report id); a road segment is an address
(address_id = segment id, address = its name); the post answering for the spot when the
problem was seen (its district and title, never a person's name) is agency_responsible;
the case's deadline is expected_datetime.

GET shows public service requests only (roadwatch/cases/public.py: no findings of evaluators or
covert checkers, nothing in review or judged invalid). What a request shows is what the
city publishes: the category, the reporter's description, the segment, a fixed public
text per status (never the workflow's internal notes), the post responsible, the deadline,
the position (rounded to a grid of `open311_location_precision_m` metres when set) and a
media_url that serves the photo to anyone only through this request.

POST /requests turns the form into a CONTRACT 1.1 report and sends it through the same
pipeline as MQTT and POST /api/reports. Errors use the spec's own format, in the format
the client asked for: `[{"code": 404, "description": "..."}]` or
`<errors><error><code>404</code><description>...</description></error></errors>`.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from flask import Blueprint, Response, request, url_for
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from ..cases.calendar import Sla as CalendarSla
from ..cases.public import public_clause
from ..cases.workflow import holders_of, pick_assignee
from ..categories import Category
from ..ingest.errors import FieldError
from ..ingest.messages import Inbound
from ..network.responsibility import LEVEL_NAMES
from ..pipeline import OPEN311_PREFIX, StorageError
from ..store import models
from .context import iso, runtime
from .errors import ApiError
from .params import bbox_arg, time_arg

bp = Blueprint("open311", __name__, url_prefix="/open311/v2")

FORMATS = {"json": "application/json; charset=utf-8", "xml": "text/xml; charset=utf-8"}
SPEC = "http://wiki.open311.org/GeoReport_v2"
CHANGESET = "2026-11-23 00:00"
DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 50, 1000
DEFAULT_WINDOW = dt.timedelta(days=90)
CLOSED = ("closed", "invalid", "duplicate")
GROUPS = {"order": "包秩序", "clean": "包卫生", "facade": "包立面", "facility": "公共设施"}
SEVERITIES = {1: "一般 minor", 2: "较重 serious", 3: "紧急 urgent (safety)"}
STATUS_NAMES = {
    "new": "已受理",
    "accepted": "已受理",
    "needs_review": "待核实",
    "dispatched": "已派遣",
    "rectified": "已整改，待核查",
    "closed": "已结案",
    "reopened": "核查未通过，重新处置",
    "duplicate": "重复上报",
    "invalid": "无效",
}
# What a status means, in the words the public reads (status_notes); the workflow's own
# notes (a reviewer's, a fixer's, a verifier's) are internal and never shown.
PUBLIC_NOTES = {
    "new": "已受理，等待派遣 received, to be dispatched",
    "dispatched": "已派遣责任人处置 dispatched to the post responsible",
    "rectified": "已整改，等待核查 fixed, to be checked",
    "closed": "已核查结案 checked and closed",
    "reopened": "核查未通过，重新处置 the check failed; being handled again",
    "duplicate": "与已有问题合并处理 handled with an earlier request for the same problem",
    "accepted": "已受理 received",
}
ROLE_TITLES = {"partner_unit": "驻区单位", "merchant": "门前三包责任商户"}
RESPONSIBLE = "责任人"  # a post without a known title
UNIT_WORDS = {
    "m": "工作分钟",
    "h": "工作小时",
    "d": "个工作日",
    "cm": "分钟",
    "ch": "小时",
    "cd": "天",
}
# The element name of one item of a list, in the spec's XML documents.
ITEM_NAMES = {
    "endpoints": "endpoint",
    "formats": "format",
    "services": "service",
    "attributes": "attribute",
    "values": "value",
    "service_requests": "request",
    "errors": "error",
}
# Characters XML 1.0 cannot carry at all (ElementTree would write them and break the file).
XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
SHA256_IN_URL = re.compile(r"(?:^|/)([0-9a-f]{64})(?:\.[a-z]+)?$")


class Open311Error(Exception):
    """An error in the spec's format: `code` is also the HTTP status."""

    def __init__(self, code: int, *descriptions: str) -> None:
        super().__init__(descriptions[0] if descriptions else str(code))
        self.code, self.descriptions = code, descriptions or (str(code),)


# -- rendering --------------------------------------------------------------------------
def _fmt(fmt: str | None) -> str:
    if fmt not in FORMATS:
        raise Open311Error(404, f"unknown format {fmt!r}: use .json or .xml")
    return fmt


def _xml_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return XML_ILLEGAL.sub("", str(value))


def _xml_fill(elem: ET.Element, value: Any) -> None:
    if isinstance(value, Mapping):
        for key, sub in value.items():
            _xml_fill(ET.SubElement(elem, key), sub)
    elif isinstance(value, list | tuple):
        item = ITEM_NAMES.get(elem.tag, "item")
        for sub in value:
            _xml_fill(ET.SubElement(elem, item), sub)
    else:
        elem.text = _xml_text(value)


def _xml(root: str, value: Any) -> bytes:
    elem = ET.Element(root)
    _xml_fill(elem, value)
    # The spec asks for this exact declaration (UTF-8, double quotes) before the root.
    body = ET.tostring(elem, encoding="unicode")
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body.encode("utf-8")


def _render(fmt: str, root: str, value: Any, status: int = 200) -> Response:
    """JSON: the value itself; XML: the value under `root` (a list's items get ITEM_NAMES)."""
    if fmt == "xml":
        data = _xml(root, value)
    else:
        data = json.dumps(value, ensure_ascii=False).encode("utf-8")
    return Response(data, status=status, content_type=FORMATS[fmt])


def _error_fmt() -> str:
    fmt = (request.view_args or {}).get("fmt")
    if fmt in FORMATS:
        return str(fmt)
    return "xml" if request.path.endswith(".xml") else "json"


def _errors(code: int, descriptions: Iterable[str]) -> Response:
    body = [{"code": code, "description": d} for d in descriptions]
    return _render(_error_fmt(), "errors", body, status=code)


@bp.errorhandler(Open311Error)
def _open311_error(exc: Open311Error) -> Response:
    return _errors(exc.code, exc.descriptions)


@bp.errorhandler(ApiError)
def _parameter_error(exc: ApiError) -> Response:
    return _errors(exc.status, [exc.message])


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    return _errors(exc.code or 500, [exc.description or exc.name])


# -- discovery and services -------------------------------------------------------------
@bp.get("/discovery.<fmt>")
def discovery(fmt: str) -> Response:
    fmt = _fmt(fmt)
    base = url_for("open311.discovery", fmt="json", _external=True).rsplit("/", 1)[0]
    body = {
        "changeset": CHANGESET,
        "contact": "郑州市路长制指挥中心 roadwatch (see /open311/v2/services.json)",
        "key_service": "Ask the command centre for an api_key (setting open311_api_keys).",
        "endpoints": [
            {
                "specification": SPEC,
                "url": base,
                "changeset": CHANGESET,
                "type": "production",
                "formats": ["text/xml", "application/json"],
            }
        ],
    }
    return _render(fmt, "discovery", body)


def _limit_words(code: str, severity: int) -> str | None:
    sla = runtime().pipeline.sla
    if not isinstance(sla, CalendarSla):
        return None
    limit = sla.limit_for(code, severity)
    return f"{limit.amount:g}{UNIT_WORDS.get(limit.unit, limit.unit)}"


REVIEW_NOTICE: Final = (
    "位置待核实：工作人员确认所在路段后本请求方可公开查询（在此之前 requests/{id} 返回 404）。"
    "(Location under review: the request is public once staff confirm its road segment; until "
    "then requests/{id} answers 404.) "
)


def _notice(code: str) -> str:
    limits = [(SEVERITIES[s].split()[0], _limit_words(code, s)) for s in SEVERITIES]
    shown = "，".join(f"{name} {words}" for name, words in limits if words)
    text = "派遣给问题发现时负责该路段的责任人（门前三包商户或路长）处置，整改后核查结案"
    return f"{text}。处置时限：{shown}。" if shown else f"{text}。"


def _service_json(cat: Category) -> dict[str, Any]:
    group = GROUPS.get(cat.group, cat.group)
    return {
        "service_code": cat.code,
        "service_name": cat.name,
        "description": cat.name_en,
        "metadata": True,  # every service has the severity attribute
        "type": "realtime",
        "keywords": ", ".join([cat.name, cat.name_en, group]),
        "group": group,
    }


@bp.get("/services.<fmt>")
def services(fmt: str) -> Response:
    fmt = _fmt(fmt)
    cats = runtime().categories.by_code
    return _render(fmt, "services", [_service_json(cats[c]) for c in sorted(cats)])


def _category(code: str) -> Category:
    cat = runtime().categories.by_code.get(code)
    if cat is None:
        raise Open311Error(404, f"service_code {code} not found")
    return cat


@bp.get("/services/<service_code>.<fmt>")
def service_definition(service_code: str, fmt: str) -> Response:
    fmt = _fmt(fmt)
    cat = _category(service_code)
    body = {
        "service_code": cat.code,
        "attributes": [
            {
                "variable": True,
                "code": "severity",
                "datatype": "singlevaluelist",
                "required": False,
                "datatype_description": "1 一般 minor (default), 2 较重 serious, 3 紧急 urgent",
                "order": 1,
                "description": "严重程度 Severity",
                "values": [{"key": k, "name": v} for k, v in SEVERITIES.items()],
            }
        ],
    }
    return _render(fmt, "service_definition", body)


# -- service requests: reading --------------------------------------------------------------
def _int_arg(name: str, default: int, lo: int, hi: int) -> int:
    raw = request.args.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Open311Error(400, f"{name} must be a whole number") from None
    if not lo <= value <= hi:
        raise Open311Error(400, f"{name} must be between {lo} and {hi}")
    return value


def _list_arg(name: str) -> list[str]:
    return [x.strip() for x in request.args.get(name, "").split(",") if x.strip()]


def _request_ids(raw: Iterable[str]) -> list[str]:
    out = []
    for x in raw:
        try:
            out.append(str(uuid.UUID(x)))
        except ValueError:
            raise Open311Error(400, f"service_request_id {x!r} is not a valid id") from None
    return out


def _columns() -> tuple[Any, ...]:
    r, s = models.Report, models.Segment
    return (
        r.id,
        r.category,
        r.severity,
        r.note,
        r.photos,
        r.observed_at,
        r.received_at,
        r.updated_at,
        r.due_at,
        r.case_status,
        r.status,
        r.assignee_id,
        r.district,
        r.segment_id,
        r.snap,
        r.lat,
        r.lon,
        s.name.label("segment_name"),
    )


def _query() -> Any:
    """Public service requests only (roadwatch/cases/public.py), with their segment's name."""
    r, s = models.Report, models.Segment
    return select(*_columns()).outerjoin(s, s.id == r.segment_id).where(public_clause())


# -- positions as the public sees them ---------------------------------------------------------
M_PER_DEGREE = 111_320.0


def _grid() -> tuple[float, float] | None:
    """The rounding grid (degrees of latitude, of longitude), or None for exact positions.

    A fixed grid: a degree of longitude is measured at the middle latitude of the city
    (setting city_bounds), so a position always falls in the same cell.
    """
    settings = runtime().settings
    metres = settings.open311_location_precision_m
    if metres <= 0:
        return None
    mid_lat = 0.0
    if settings.city_bounds:
        _, south, _, north = (float(x) for x in settings.city_bounds.split(","))
        mid_lat = (south + north) / 2
    dlat = metres / M_PER_DEGREE
    return dlat, metres / (M_PER_DEGREE * max(math.cos(math.radians(mid_lat)), 0.01))


def _coarse(value: float | None, step: float | None) -> float | None:
    """The centre of the grid cell the value falls in."""
    if value is None or step is None:
        return value
    return round((math.floor(value / step) + 0.5) * step, 6)


def _cell_range(lo: float, hi: float, step: float) -> tuple[float, float]:
    """The stored values whose cell centre lies in [lo, hi]: [start, end)."""
    first = math.ceil(lo / step - 0.5)
    last = math.floor(hi / step - 0.5)
    return first * step, (last + 1) * step


@bp.get("/requests.<fmt>")
def requests_(fmt: str) -> Response:
    fmt = _fmt(fmt)
    r = models.Report
    ids = _request_ids(_list_arg("service_request_id"))
    page = _int_arg("page", 1, 1, 1_000_000)
    size = _int_arg("page_size", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
    q = _query()
    if ids:
        q = q.where(r.id.in_(ids))  # the spec: this overrides all other arguments
    else:
        codes = _list_arg("service_code")
        unknown = [c for c in codes if c not in runtime().categories.by_code]
        if unknown:
            raise Open311Error(400, f"unknown service_code {', '.join(unknown)}")
        statuses = _list_arg("status")
        bad = [x for x in statuses if x not in ("open", "closed")]
        if bad:
            raise Open311Error(400, f"status must be open or closed, not {', '.join(bad)}")
        start, end = time_arg("start_date"), time_arg("end_date")
        updated_after = time_arg("updated_after")
        box = bbox_arg()
        if start and end and end < start:
            raise Open311Error(400, "end_date is before start_date")
        if start and end and end - start > DEFAULT_WINDOW:
            raise Open311Error(400, "start_date and end_date may not span more than 90 days")
        if start is None and end is None and updated_after is None:
            start = models.utcnow() - DEFAULT_WINDOW  # the spec's default: the last 90 days
        elif start is None and end is not None:
            start = end - DEFAULT_WINDOW
        if start:
            q = q.where(r.observed_at >= start)
        if end:
            q = q.where(r.observed_at <= end)
        if codes:
            q = q.where(r.category.in_(codes))
        if len(set(statuses)) == 1:
            closed = r.case_status.in_(CLOSED)
            is_open = or_(r.case_status.is_(None), r.case_status.not_in(CLOSED))
            q = q.where(closed if statuses[0] == "closed" else is_open)
        if updated_after:
            q = q.where(func.coalesce(r.updated_at, r.received_at) > updated_after)
        if box:
            w, s, e, n = box
            grid = _grid()
            if grid is None:
                q = q.where(r.lon >= w, r.lon <= e, r.lat >= s, r.lat <= n)
            else:  # the box holds the positions shown, not the exact ones behind them
                lat0, lat1 = _cell_range(s, n, grid[0])
                lon0, lon1 = _cell_range(w, e, grid[1])
                q = q.where(r.lon >= lon0, r.lon < lon1, r.lat >= lat0, r.lat < lat1)
    q = q.order_by(r.observed_at.desc(), r.id.desc()).offset((page - 1) * size).limit(size + 1)
    with runtime().sessions() as session:
        rows = list(session.execute(q))
        more = len(rows) > size
        body = _requests_json(session, rows[:size])
    resp = _render(fmt, "service_requests", body)
    if more:
        args = {k: v for k, v in request.args.items() if k != "page"}
        nxt = url_for("open311.requests_", fmt=fmt, page=page + 1, _external=True, **args)
        resp.headers["Link"] = f'<{nxt}>; rel="next"'
    return resp


@bp.get("/requests/<request_id>.<fmt>")
def request_one(request_id: str, fmt: str) -> Response:
    fmt = _fmt(fmt)
    try:
        rid = str(uuid.UUID(request_id))
    except ValueError:
        raise Open311Error(404, f"service_request_id {request_id} not found") from None
    with runtime().sessions() as session:
        rows = list(session.execute(_query().where(models.Report.id == rid)))
        if not rows:
            raise Open311Error(404, f"service_request_id {request_id} not found")
        body = _requests_json(session, rows)
    return _render(fmt, "service_requests", body)  # the spec: a list of one


def _post_words(role: str | None, level: int | None) -> str:
    """A post's title, never its holder's name: 三级路长, 驻区单位, 门前三包责任商户."""
    if level is not None and level in LEVEL_NAMES:
        return LEVEL_NAMES[level]
    return ROLE_TITLES.get(role or "", RESPONSIBLE)


def _agencies(session: Session, rows: Sequence[Any]) -> dict[str, str | None]:
    """Report id → the post that answered for it: its district and title, no names.

    The assignee's post on the segment, else whoever held the spot when it was seen (the
    dispatch rules of cases.workflow, i.e. responsibility at observed_at).
    """
    holders = holders_of(session, [x.segment_id for x in rows if x.segment_id])
    names = runtime().ctx.district_names
    out: dict[str, str | None] = {}
    for x in rows:
        post: tuple[str | None, int | None] | None = None
        here = holders.get(x.segment_id, []) if x.segment_id else []
        if x.assignee_id:
            post = (None, None)
            for h in here:
                if h.person_id == x.assignee_id and h.holds(x.observed_at):
                    post = (h.role, h.level)
                    break
        elif x.segment_id:
            chainage = (x.snap or {}).get("chainage_m")
            merchant, chief = pick_assignee(here, x.observed_at, chainage)
            holder = merchant or chief
            if holder is not None:
                post = (holder.role, holder.level)
        if post is None:
            out[x.id] = None
            continue
        district = names.get(x.district, x.district) if x.district else None
        words = _post_words(*post)
        out[x.id] = f"{district} {words}" if district else words
    return out


def _media_url(request_id: str, photos: list[Any] | None) -> str | None:
    """The request's first photo, served to anyone only through this public request."""
    if not photos:
        return None
    return f"{request.url_root}api/photos/{photos[0]}?request={request_id}"


def _requests_json(session: Session, rows: Sequence[Any]) -> list[dict[str, Any]]:
    """Public requests (the caller's query keeps to public_clause) as the spec lists them."""
    cats = runtime().categories.by_code
    agencies = _agencies(session, rows)
    grid = _grid()
    out = []
    for x in rows:
        case_status = x.case_status or x.status
        words = STATUS_NAMES.get(case_status, case_status)
        public_note = PUBLIC_NOTES.get(case_status)
        cat = cats.get(x.category)
        out.append(
            {
                "service_request_id": x.id,
                "status": "closed" if case_status in CLOSED else "open",
                "status_notes": f"{case_status}（{words}）"
                + (f"：{public_note}" if public_note else ""),
                "service_name": cat.name if cat else x.category,
                "service_code": x.category,
                "description": x.note,
                "agency_responsible": agencies.get(x.id),
                "service_notice": _notice(x.category) if cat else None,
                "requested_datetime": iso(x.observed_at),
                "updated_datetime": iso(x.updated_at or x.received_at),
                "expected_datetime": iso(x.due_at),
                "address": x.segment_name,
                "address_id": x.segment_id,
                "zipcode": None,
                "lat": _coarse(x.lat, grid[0] if grid else None),
                "long": _coarse(x.lon, grid[1] if grid else None),
                "media_url": _media_url(x.id, x.photos),
            }
        )
    return out


# -- service requests: creating ---------------------------------------------------------------
# The platform's field names in a refusal, as the Open311 client sent them.
_OPEN311_FIELD = {
    "lon": "long",
    "note": "description",
    "category": "service_code",
    "segment_hint": "address_id",
    "photos": "media_url",
    "severity": "attribute[severity]",
}


def _in_open311_words(field: str, message: str) -> str:
    """A pipeline refusal named in the request's own fields (`long`, not `lon`)."""
    top = field.split(".", 1)[0]
    name = _OPEN311_FIELD.get(top)
    if name is None:
        return f"{field}: {message}"
    if message.startswith(f"{top} "):
        message = f"{name} {message[len(top) + 1 :]}"
    return f"{name}: {message}"


def _float_field(name: str, problems: list[FieldError]) -> float | None:
    raw = request.form.get(name, "").strip()
    if raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        problems.append(FieldError(name, "invalid_type", f"{name} must be a number"))
        return None
    if not math.isfinite(value):
        problems.append(FieldError(name, "invalid", f"{name} must be a finite number"))
        return None
    return value


def _refuse(rt: Any, sender: str, problems: list[FieldError]) -> Open311Error:
    """A request refused for its form, stored like every rejected message (GET
    /api/rejected: the form as sent, without its api_key); the error to raise."""
    form = [(k, v) for k, v in request.form.items(multi=True) if k != "api_key"]
    msg = Inbound(
        transport="http",
        kind="report",
        payload=urllib.parse.urlencode(form).encode("utf-8"),
        received_at=models.utcnow(),
        sender=sender,
        refused=tuple(problems),
    )
    try:
        rt.pipeline.process([msg])
    except StorageError:
        return Open311Error(503, "the database is unavailable; retry later")
    return Open311Error(400, *(p.message for p in problems))


FORM_TYPES: Final = ("application/x-www-form-urlencoded", "multipart/form-data")


def _form_is_utf8() -> bool:
    """Whether a URL-encoded form's text is UTF-8 (the only encoding read here).

    A form in GBK, raw or percent-encoded, as some older city systems send it, would
    otherwise be read as an empty form (raw bytes: "Invalid api_key") or stored as
    garbage (percent-encoded: "%BE%AE…" as the description).
    """
    if request.mimetype != "application/x-www-form-urlencoded":
        return True  # multipart parts carry their own charset; the parser decodes them
    raw = request.get_data(cache=True)  # the form is parsed from this cached copy
    try:
        urllib.parse.unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@bp.post("/requests.<fmt>")
def create_request(fmt: str) -> Response:
    fmt = _fmt(fmt)
    rt = runtime()
    if request.content_length and request.mimetype not in FORM_TYPES:
        # never read: a JSON body's valid key was answered "Invalid api_key"
        raise Open311Error(
            400,
            f"send the request as a form ({' or '.join(FORM_TYPES)}), as GeoReport v2 "
            f"does; a body of type {request.mimetype or '(none given)'} is not read",
        )
    if not _form_is_utf8():
        raise Open311Error(
            400,
            "the form is not UTF-8 text: encode it as UTF-8 (percent-encoded), "
            "not GBK or another character set",
        )
    form = request.form
    key = form.get("api_key") or request.args.get("api_key") or ""
    owner = rt.settings.open311_keys.get(key) if key else None
    if owner is None:
        raise Open311Error(403, "Invalid api_key received -- can't proceed with create_request.")
    sender = f"{OPEN311_PREFIX}{owner}"
    problems: list[FieldError] = []
    code = form.get("service_code", "").strip()
    if not code:
        problems.append(FieldError("service_code", "required", "service_code is required"))
    elif code not in rt.categories.by_code:
        problems.append(
            FieldError("service_code", "unknown_category", f"service_code {code} not found")
        )
    lat, lon = _float_field("lat", problems), _float_field("long", problems)
    address_id = form.get("address_id", "").strip() or None
    unread = any(p.field in ("lat", "long") for p in problems)
    if (lat is None) != (lon is None) and not unread:
        problems.append(FieldError("lat", "required", "lat and long must be given together"))
    if lat is None and lon is None and address_id is None and not unread:
        problems.append(
            FieldError(
                "lat",
                "required",
                "a location is required: lat and long, or address_id (a segment id)",
            )
        )
    severity = 1
    raw_sev = form.get("attribute[severity]", "").strip()
    if raw_sev:
        try:
            severity = int(raw_sev)
        except ValueError:
            severity = 0
        if severity not in SEVERITIES:
            problems.append(
                FieldError(
                    "attribute[severity]", "out_of_range", "attribute[severity] must be 1, 2 or 3"
                )
            )
    if problems:
        raise _refuse(rt, sender, problems)

    note = form.get("description", "").strip() or None
    photos: list[str] = []
    media = form.get("media_url", "").strip()
    if media:
        m = SHA256_IN_URL.search(media)
        if m:
            photos.append(m.group(1))
        else:
            note = f"{note}\n照片 media_url: {media}" if note else f"照片 media_url: {media}"
    report_id = str(uuid.uuid4())
    now = models.utcnow()
    report: dict[str, Any] = {
        "v": 1,
        "report_id": report_id,
        "reporter_id": sender,
        "observed_at": now.astimezone(rt.settings.tz).isoformat(timespec="seconds"),
        "crs": "WGS84",
        "category": code,
        "severity": severity,
        "note": note,
        "photos": photos,
        "segment_hint": address_id,
    }
    if lat is not None and lon is not None:
        report["lat"], report["lon"] = lat, lon
    msg = Inbound(
        transport="http",
        kind="report",
        payload=json.dumps(report, ensure_ascii=False).encode("utf-8"),
        received_at=now,
        topic=None,
        topic_reporter=None,
        sender=sender,
    )
    try:
        (outcome,) = rt.pipeline.process([msg])
    except StorageError:
        raise Open311Error(503, "the database is unavailable; retry later") from None
    if outcome.status == "rejected":
        raise Open311Error(400, *(_in_open311_words(e.field, e.message) for e in outcome.errors))
    notice = _notice(code)
    if outcome.status == "needs_review":
        # Not yet public: `requests/{id}` answers 404 until staff confirm where it is. Say so,
        # or the client believes its request was lost.
        notice = f"{REVIEW_NOTICE}{notice}"
    body = [{"service_request_id": report_id, "service_notice": notice, "account_id": None}]
    return _render(fmt, "service_requests", body, status=201)


# -- anything else under /open311/v2 --------------------------------------------------------
@bp.route("/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], endpoint="not_found")
def not_found(rest: str) -> Response:
    if request.method not in ("GET", "POST"):
        raise Open311Error(405, f"{request.method} is not supported here")
    raise Open311Error(404, f"no such resource: /open311/v2/{rest}")
