"""The words of a notice (docs/protocol.md 2.6): what the road chief's phone shows.

A notice body names the case by codes (case id, category code, segment id); a chief
needs "问题类别 · 路段名" and the deadline in local time. `with_text` adds `message`
(Chinese, what the app shows) and `message_en` (for the app's English switch) to each
body, where the notices are published (the web process, and the case service under
`roadwatch worker`), from the categories file and the segments' names.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, Engine, select

from ..store import models
from .calendar import LEVEL_NAMES
from .workflow import Notice

SEVERITY = {1: ("一般", "minor"), 2: ("较重", "serious"), 3: ("紧急", "urgent")}


def _when(iso: str | None, tz: dt.tzinfo) -> str:
    if not iso:
        return ""
    t = dt.datetime.fromisoformat(iso).astimezone(tz)
    return f"{t.month}月{t.day}日 {t:%H:%M}"


def _when_en(iso: str | None, tz: dt.tzinfo) -> str:
    return dt.datetime.fromisoformat(iso).astimezone(tz).strftime("%d %b %H:%M") if iso else ""


def texts(
    body: Mapping[str, Any], category: tuple[str, str] | None, segment: str | None, tz: dt.tzinfo
) -> tuple[str, str]:
    """(Chinese, English) words of one notice body."""
    cat, cat_en = category or ("问题", "problem")
    where = f"{cat}·{segment}" if segment else cat
    where_en = f"{cat_en}, {segment}" if segment else cat_en
    due, due_en = _when(body.get("due_at"), tz), _when_en(body.get("due_at"), tz)
    kind = body.get("kind")
    if kind == "dispatch":
        sev, sev_en = SEVERITY.get(int(body.get("severity") or 1), SEVERITY[1])
        grace = "（先由门前三包商户处理）" if body.get("grace") else ""
        grace_en = " (the merchant's frontage pledge first)" if body.get("grace") else ""
        return (
            f"新案件：{where}（{sev}），请于 {due} 前整改{grace}",
            f"New case: {where_en} ({sev_en}), to be fixed by {due_en}{grace_en}",
        )
    if kind == "reopened":
        note = f"：{body['note']}" if body.get("note") else ""
        note_en = f": {body['note']}" if body.get("note") else ""
        return (
            f"整改未通过核查，案件重新打开：{where}{note}",
            f"Rectification not accepted, case reopened: {where_en}{note_en}",
        )
    if kind == "overdue":
        return (
            f"案件已超期：{where}，期限 {due}，请尽快整改",
            f"Case overdue: {where_en}, due {due_en}; please fix it now",
        )
    if kind == "escalation":
        level = LEVEL_NAMES.get(int(body.get("level") or 0), "")
        return (
            f"案件升级至{level}：{where}，期限 {due} 已过",
            f"Case escalated to you: {where_en}, due {due_en}",
        )
    return (f"新通知：{where}", f"Notice: {where_en}")


def with_text(
    notices: Iterable[Notice],
    categories: Mapping[str, tuple[str, str]],
    segment_names: Callable[[set[str]], Mapping[str, str]],
    tz: dt.tzinfo,
) -> list[Notice]:
    """The notices with `message` and `message_en` added (the bodies are copied)."""
    notices = list(notices)
    names = segment_names({str(n.body["segment_id"]) for n in notices if n.body.get("segment_id")})
    out = []
    for n in notices:
        seg = names.get(str(n.body.get("segment_id") or ""))
        zh, en = texts(n.body, categories.get(str(n.body.get("category") or "")), seg, tz)
        out.append(Notice(n.person_id, {**n.body, "message": zh, "message_en": en}))
    return out


def names_from_db(db: Engine | Connection) -> Callable[[set[str]], Mapping[str, str]]:
    """Segment names for `with_text`, read from the database (the case service's way; a
    connection: inside the caller's transaction, e.g. where notices are written to an outbox)."""

    def names(ids: set[str]) -> Mapping[str, str]:
        if not ids:
            return {}
        s = models.Segment
        q = select(s.id, s.name).where(s.id.in_(ids))
        if isinstance(db, Connection):
            return dict(db.execute(q).all())
        with db.connect() as conn:
            return dict(conn.execute(q).all())

    return names
