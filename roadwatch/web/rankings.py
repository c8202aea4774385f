"""Weekly red and black flags on the web: the leaders' pages, the API, the exports.

`/rankings/` lists the published weeks with their movement; `/rankings/{week}` shows one
(published: frozen with its hashes; not yet: a draft, marked so, while it may be contested);
`/api/rankings/{week}` gives it as JSON, and `.csv`, `.xlsx`, `.pdf`.

Who sees what (docs/security.md, section 6):
* a published week is public, but the public sees each finding's reporter KIND (自报,
  其他上报, 第三方测评, 暗访), never who reported it (covert checkers and evaluators stay
  covert); staff see the reporter ids;
* a draft (a week not yet published) is staff-only. It is computed from one snapshot of
  the database (`publish.draft`) and kept for DRAFT_TTL_S: a burst of loads computes it
  once, and requests that arrive while it is being computed wait for that one computation;
  the CSV, XLSX and PDF of a week are cached the same way;
* disputes: the public sees how many were filed and how they ended; staff see the list
  (who filed, the reason, the evidence).
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from functools import partial
from typing import Any, TypeVar

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import select

from ..ranking import publish as pub
from ..ranking.formula import FormulaError, load_formula
from ..ranking.render import (
    CARD_NAMES,
    DRILLDOWN_HEADER,
    HEADER,
    KIND_NAMES,
    drilldown_rows,
    line_coords,
    map_svg,
    rows,
)
from ..ranking.trend import flag_history
from ..ranking.week import Week
from ..store import models
from . import authz
from .auth import current_user
from .context import runtime
from .errors import ApiError
from .rankwords import WORDS, page_lang, words_of
from .spreadsheet import csv_row, xlsx_row

bp = Blueprint("rankings", __name__)
EXPORTS = ("json", "csv", "xlsx", "pdf")

# A draft is recomputed at most once in this many seconds per week (and formula): its
# content says as of when it stands. Published weeks never change; their renders are kept
# longer (PUBLISHED_TTL_S) and the cache holds at most CACHE_ENTRIES values.
DRAFT_TTL_S = 30.0
PUBLISHED_TTL_S = 3600.0
VERIFY_TTL_S = DRAFT_TTL_S  # a published week's check (a recomputation) is made this rarely
CACHE_ENTRIES = 32
SUMMARIES = 128  # the index's lines of published weeks kept (it lists up to 104)

T = TypeVar("T")


class OnceCache:
    """Values by key, each made once while fresh: the first asker makes it, askers of the
    same key meanwhile wait for that one result (no stampede), others read it until it is
    older than its time to live. Bounded (least recently used go first); per process."""

    def __init__(self, entries: int = CACHE_ENTRIES) -> None:
        self._lock = threading.Lock()
        self._values: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._making: dict[Hashable, threading.Lock] = {}
        self.entries = entries
        self.made = 0  # how many values were computed (tests and metrics)

    def _fresh(self, key: Hashable, now: float) -> tuple[bool, Any]:
        hit = self._values.get(key)
        if hit is not None and hit[0] > now:
            self._values.move_to_end(key)
            return True, hit[1]
        return False, None

    def get(self, key: Hashable, ttl: float, make: Callable[[], T]) -> T:
        with self._lock:
            found, value = self._fresh(key, time.monotonic())
            if found:
                return value
            making = self._making.setdefault(key, threading.Lock())
        with making:  # one computation per key at a time; the others wait here
            with self._lock:
                found, value = self._fresh(key, time.monotonic())
            if found:
                return value
            try:
                value = make()
            finally:
                with self._lock:
                    self._making.pop(key, None)
            with self._lock:
                self.made += 1
                self._values[key] = (time.monotonic() + ttl, value)
                self._values.move_to_end(key)
                while len(self._values) > self.entries:
                    self._values.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


def _cache() -> OnceCache:
    cache: OnceCache = current_app.extensions.setdefault("roadwatch_rankings_cache", OnceCache())
    return cache


def _week(label: str) -> Week:
    try:
        return Week.parse(label, runtime().settings.tz)
    except ValueError as exc:
        raise ApiError(404, "week", "bad_week", str(exc)) from None


def _formula() -> Any:
    rt = runtime()
    try:
        return load_formula(rt.settings.ranking_formula or None, rt.categories.codes)
    except FormulaError as exc:
        raise ApiError(503, "formula", "formula_refused", str(exc)) from None


def _staff() -> bool:
    return current_user() is not None


def _refuse_draft(week: Week) -> None:
    """A draft is staff-only: an API call gets 401, a page the login form."""
    if request.path.startswith("/api/"):
        raise ApiError(
            401,
            "session",
            "login_required",
            f"{week.label} is not published yet: its draft is for command-centre staff only "
            f"（{week.label} 尚未发布，草稿仅供指挥中心工作人员查看，请先登录）",
        )
    abort(redirect(url_for("auth.login", next=request.full_path.rstrip("?"))))


_META_COLUMNS = [c for c in pub.RANKINGS.c if c.name != "content"]


def load(week: Week) -> tuple[dict[str, Any], dict[str, Any]]:
    """The week's content and how it stands: frozen (with hashes) or a draft (staff only).

    What the public gets has no reporter ids (see `public_view`)."""
    rt = runtime()
    with rt.engine.connect() as conn:
        row = conn.execute(select(*_META_COLUMNS).where(pub.RANKINGS.c.week == week.label)).first()
    if row is not None:
        meta = {
            "published": True,
            "content_sha256": row.content_sha256,
            "chain_sha256": row.chain_sha256,
            "prev_sha256": row.prev_sha256,
            "published_at": row.published_at.astimezone(week.tz).isoformat(),
        }
        staff = _staff()
        content = _cache().get(
            ("published", week.label, row.content_sha256, staff),
            PUBLISHED_TTL_S,
            lambda: _published_content(week, staff),
        )
        return content, meta
    if not _staff():
        _refuse_draft(week)
    formula = _formula()
    content, disputes = _cache().get(
        ("draft", week.label, formula.sha256),
        DRAFT_TTL_S,
        lambda: pub.draft(
            rt.engine, formula, week, models.utcnow(), rt.settings.ranking_contest_hours
        ),
    )
    closes = pub.default_as_of(week, rt.settings.ranking_contest_hours)
    return content, {
        "published": False,
        "contest_closes": closes.astimezone(week.tz).isoformat(),
        "disputes": disputes,
    }


def _published_content(week: Week, staff: bool) -> dict[str, Any]:
    with runtime().engine.connect() as conn:
        row = pub.ranking_row(conn, week.label)
    content: dict[str, Any] = json.loads(row.content)
    return content if staff else public_view(content)


REPORTER_KINDS = {"self": "chief", "public": "public", "evaluator": "evaluator", "covert": "covert"}


def public_view(content: dict[str, Any]) -> dict[str, Any]:
    """The content without who reported each finding: its reporter's kind instead (the
    road chief themself, the public, a third-party evaluator, a covert check). The stored
    content and its hashes are unchanged; `/api/rankings/{week}/verify` checks those."""
    leagues = []
    for lg in content["leagues"]:
        scores = []
        for s in lg["scores"]:
            if s.get("drilldown"):
                s = {
                    **s,
                    "drilldown": [
                        {
                            **{k: v for k, v in f.items() if k != "reporter_id"},
                            "reporter_kind": REPORTER_KINDS.get(f["source"], "public"),
                        }
                        for f in s["drilldown"]
                    ],
                }
            scores.append(s)
        leagues.append({**lg, "scores": scores})
    return {**content, "leagues": leagues, "redacted": "reporter identities withheld"}


@bp.get("/rankings/")
def index() -> str:
    rt = runtime()
    tz = rt.settings.tz
    with rt.engine.connect() as conn:
        published = conn.execute(
            select(*_META_COLUMNS).order_by(pub.RANKINGS.c.week.desc()).limit(104)
        ).all()
    # A published week never changes: its line is read and summed up once (by its hash),
    # not the whole content of two years of weeks again for every visitor of this page.
    summaries: OnceCache = current_app.extensions.setdefault(
        "roadwatch_rankings_summaries", OnceCache(entries=SUMMARIES)
    )
    weeks = [
        summaries.get((r.week, r.content_sha256), PUBLISHED_TTL_S, partial(_line, r, tz))
        for r in published
    ]
    from ..ranking.schedule import due_week

    draft = due_week(models.utcnow(), tz, rt.settings.ranking_contest_hours).next()
    lang = page_lang()
    return render_template(
        "rankings_index.html",
        title=WORDS[lang]["history"],
        weeks=weeks,
        draft=draft.label,
        **words_of(lang),
    )


def _line(meta: Any, tz: Any) -> dict[str, Any]:
    """The index's line of a published week (its metadata as read): its content read now."""
    with runtime().engine.connect() as conn:
        row = pub.ranking_row(conn, meta.week)
    return _summary(row, tz)


def _summary(row: Any, tz: Any) -> dict[str, Any]:
    content = json.loads(row.content)
    red = black = cards = 0
    moves: list[dict[str, Any]] = []
    for lg in content["leagues"]:
        red += len(lg["red"])
        black += len(lg["black"])
        for s in lg["scores"]:
            cards += s["card"] is not None
            if s["flag"]:
                moves.append(
                    {
                        "district": lg["district_name"],
                        "kind": KIND_NAMES.get(lg["kind"], lg["kind"]),
                        "name": s["name"],
                        "flag": s["flag"],
                        "card": CARD_NAMES[s["card"]],
                        "rank": s["rank"],
                        "move": (s["prev_rank"] - s["rank"]) if s["prev_rank"] else None,
                        "streak": s["streak"],
                    }
                )
    return {
        "week": row.week,
        "formula": row.formula_version,
        "sha": row.content_sha256,
        "published_at": row.published_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
        "red": red,
        "black": black,
        "cards": cards,
        "moves": moves,
    }


def _context(week: Week, content: dict[str, Any], meta: dict[str, Any], pdf: bool) -> Any:
    rt = runtime()
    flags = {
        s["id"]: s["flag"]
        for lg in content["leagues"]
        if lg["kind"] == "segment"
        for s in lg["scores"]
        if s["flag"]
    }
    with rt.engine.connect() as conn:
        geoms = conn.execute(select(models.Segment.id, models.Segment.geometry)).all()
        trend = flag_history(conn, week)  # issue 22: the last 12 weeks beside this one
    svg = map_svg(((sid, line_coords(g)) for sid, g in geoms), flags)
    lang = "zh" if pdf else page_lang()
    cats = rt.categories.by_code

    def cat_name(code: str) -> str:
        """A category by its name, with its code beside it (E0504 alone says nothing)."""
        cat = cats.get(code)
        name = (cat.name_en if lang == "en" else cat.name) if cat else None
        return f"{name} ({code})" if name else code

    user = authz.user()
    return {
        "title": f"{WORDS[lang]['title']} {week.label}",
        "week": week.label,
        "content": content,
        "meta": meta,
        "svg": svg,
        "trend": trend,
        "pdf": pdf,
        "cat_name": cat_name,
        "page_config": {
            "week": week.label,
            "staff": user is not None,
            "admin": user is not None and user.role == "admin",
            "user": {"name": user.username, "role": user.role} if user else None,
            "words": WORDS[lang],
        },
        **words_of(lang),
    }


def _rendered(
    what: str, week: Week, content: dict[str, Any], meta: dict[str, Any], make: Callable[[], T]
) -> T:
    """A rendering of the week (page, CSV, XLSX, PDF), made once per content and audience."""
    published = bool(meta["published"])
    version = meta["content_sha256"] if published else content["as_of"]
    user = authz.user()
    key = (
        what,
        week.label,
        version,
        content["formula"]["sha256"],
        user.username if user else None,  # the page names the user (its header)
        page_lang(),
        # what the page's links start with; never the Host header, which anyone sets: a new
        # one per request made every PDF again (seconds each) and emptied the cache
        request.script_root,
    )
    return _cache().get(key, PUBLISHED_TTL_S if published else DRAFT_TTL_S, make)


@bp.get("/rankings/<label>")
def page(label: str) -> str:
    week = _week(label)
    content, meta = load(week)
    return _rendered(
        "html",
        week,
        content,
        meta,
        lambda: render_template("ranking.html", **_context(week, content, meta, pdf=False)),
    )


@bp.get("/api/rankings/<name>")
def api(name: str) -> Response:
    label, _, ext = name.partition(".")
    ext = ext or "json"
    if ext not in EXPORTS:
        raise ApiError(404, "format", "unknown_format", f"use one of {', '.join(EXPORTS)}")
    week = _week(label)
    content, meta = load(week)
    stem = f"ranking_{week.label}"
    disposition = {"Content-Disposition": f'attachment; filename="{stem}.{ext}"'}
    if ext != "json" and authz.user() is not None:  # staff downloads (the public's: not)
        authz.record_export(f"ranking.{ext}", week=week.label, published=meta["published"])
    if ext == "json":
        return jsonify({**content, "status": meta})
    if ext == "csv":
        body = _rendered("csv", week, content, meta, lambda: _csv(content))
        return Response(body, content_type="text/csv; charset=utf-8", headers=disposition)
    if ext == "xlsx":
        return Response(
            _rendered("xlsx", week, content, meta, lambda: _xlsx(content)),
            content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers=disposition,
        )
    return Response(
        _rendered("pdf", week, content, meta, lambda: _pdf(week, content, meta)),
        content_type="application/pdf",
        headers=disposition,
    )


def _pdf(week: Week, content: dict[str, Any], meta: dict[str, Any]) -> bytes:
    from weasyprint import HTML

    html = render_template("ranking.html", **_context(week, content, meta, pdf=True))
    pdf: bytes = HTML(string=html, base_url=request.host_url).write_pdf()
    return pdf


def _csv(content: dict[str, Any]) -> bytes:
    buf = io.StringIO()
    buf.write("\ufeff")  # Excel then reads it as UTF-8
    writer = csv.writer(buf)
    writer.writerow(HEADER)
    for r in rows(content):
        writer.writerow(csv_row(r))  # road names come from OSM and city files
    return buf.getvalue().encode("utf-8")


def _xlsx(content: dict[str, Any]) -> bytes:
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    for title, header, data in (
        ("ranking", HEADER, rows(content)),
        ("drilldown", DRILLDOWN_HEADER, drilldown_rows(content)),
    ):
        ws = wb.create_sheet(title)
        ws.append(list(header))
        for r in data:
            ws.append(xlsx_row(ws, r))
    with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as spool:
        wb.save(spool)
        spool.seek(0)
        return spool.read()


# -- contest window ----------------------------------------------------------------------
def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "body", "not_json", "send a JSON object")
    return body


def _str(body: dict[str, Any], key: str) -> str:
    v = body.get(key)
    if not isinstance(v, str) or not v.strip():
        raise ApiError(400, key, "required", f"{key} is required (a string)")
    return v.strip()


@bp.get("/api/rankings/<label>/disputes")
def disputes(label: str) -> Response:
    """Staff: the disputes (who filed it, why, the evidence, the decision); a district user
    only those about their district's reports. Everyone, the public included: how many
    were filed city-wide and how they ended, nothing that names anyone."""
    week = _week(label)
    with runtime().engine.connect() as conn:
        items = pub.disputes_of(conn, week.label)
        counts = dispute_counts(items)
        if not _staff():
            return jsonify({"week": week.label, **counts})
        only = authz.scope_district()
        if only is not None and items:
            ids = [d["report_id"] for d in items]
            ours = set(
                conn.execute(
                    select(models.Report.id).where(
                        models.Report.id.in_(ids), models.Report.district == only
                    )
                ).scalars()
            )
            items = [d for d in items if d["report_id"] in ours]
    return jsonify({"week": week.label, **counts, "items": items})


def dispute_counts(items: list[dict[str, Any]]) -> dict[str, int]:
    decisions = [d.get("decision") for d in items]
    return {
        "filed": len(items),
        "pending": decisions.count(None),
        "upheld": decisions.count("upheld"),
        "rejected": decisions.count("rejected"),
    }


@bp.post("/api/rankings/<label>/disputes")
def file_dispute(label: str) -> tuple[Response, int]:
    """File a dispute as the logged-in user: district staff (for a report of their
    district) or an administrator; viewers may not. A `by` naming anyone else is refused."""
    user = authz.require_writer()
    week = _week(label)
    body = _body()
    filer = authz.acting_name(body, user)
    evidence = body.get("evidence")
    rt = runtime()
    report_id = _str(body, "report_id")
    with rt.engine.connect() as conn:
        district = conn.execute(
            select(models.Report.district).where(models.Report.id == report_id)
        ).scalar()
    if authz.scope_district() is not None:
        authz.require_district(district, "this report")
    try:
        dispute_id = pub.file_dispute(
            rt.engine,
            week,
            report_id,
            filer,
            str(body.get("reason") or ""),
            evidence if isinstance(evidence, list) else [],
            models.utcnow(),
            rt.settings.ranking_contest_hours,
            actor=authz.actor(),
        )
    except pub.RankingError as exc:
        raise ApiError(
            409 if "closed" in exc.code else 400, "dispute", exc.code, str(exc)
        ) from None
    return jsonify({"id": dispute_id, "week": week.label, "status": "pending"}), 201


@bp.post("/api/rankings/disputes/<int:dispute_id>")
def decide(dispute_id: int) -> Response:
    """Decide a dispute: administrators only, never the one who filed it (403)."""
    arbiter = authz.require_role("admin")
    body = _body()
    rt = runtime()
    by = authz.acting_name(body, arbiter)  # the logged-in arbiter, whatever the body says
    try:
        pub.decide_dispute(
            rt.engine,
            dispute_id,
            _str(body, "decision"),
            by,
            str(body.get("note") or ""),
            models.utcnow(),
            rt.settings.tz,
            rt.settings.ranking_contest_hours,
            actor=authz.actor(),
        )
    except pub.RankingError as exc:
        status = {"unknown_dispute": 404, "own_dispute": 403}.get(
            exc.code, 409 if "closed" in exc.code else 400
        )
        raise ApiError(status, "decision", exc.code, str(exc)) from None
    return jsonify({"id": dispute_id, "decision": body["decision"]})


@bp.get("/api/rankings/<label>/verify")
def verify(label: str) -> Response:
    """Anyone may check a published week: hashes, chain and a recomputation. The check is
    a whole ranking's work, so it is made at most once per VERIFY_TTL_S and week (askers
    meanwhile wait for that one), like a draft: a burst of anonymous checks is one."""
    week = _week(label)

    def check() -> pub.Verification:
        try:
            return pub.verify(runtime().engine, _formula_of(week), week)
        except pub.RankingError as exc:
            raise ApiError(404, "week", exc.code, str(exc)) from None

    v = _cache().get(("verify", week.label), VERIFY_TTL_S, check)
    return jsonify({"week": v.week, "ok": v.ok, "problems": v.problems})


def _formula_of(week: Week) -> Any:
    """The formula a published week was computed with, if it is still on disk."""
    from ..ranking.formula import FORMULA_DIR

    rt = runtime()
    with rt.engine.connect() as conn:
        row = pub.ranking_row(conn, week.label)
    if row is None:
        raise ApiError(404, "week", "not_published", f"{week.label} is not published")
    for path in sorted(FORMULA_DIR.glob("*.toml")):
        try:
            f = load_formula(path, rt.categories.codes)
        except FormulaError:
            continue
        if f.sha256 == row.formula_sha256:
            return f
    return _formula()
