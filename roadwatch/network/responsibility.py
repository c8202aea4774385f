"""Who answers for a segment, when: road chiefs by level, partner units, merchants' frontage.

`responsible_at` resolves the people of a segment at a moment (a report's observed_at),
so a report blames whoever held the segment when the problem was seen, not whoever holds
it now. `read_assignments` + `apply_assignments` implement `roadwatch chiefs import`:
every row is checked first, and either all rows are applied or none.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from ..cases.calendar import LEVEL_NAMES
from ..store import models
from .frontage import in_frontage

ROLES = ("road_chief", "partner_unit", "merchant")
COLUMNS = (
    "segment_id",
    "person_id",
    "person_name",
    "role",
    "level",
    "valid_from",
    "valid_to",
    "from_chainage_m",
    "to_chainage_m",
    "title",
    "phone",
)
REQUIRED = ("segment_id", "person_id", "role", "valid_from")


def responsible_at(
    session: Session,
    segment_id: str,
    at: dt.datetime,
    chainage_m: float | None = None,
    tz: dt.tzinfo | None = None,
) -> list[dict[str, Any]]:
    """The assignments in force on `segment_id` at `at` (their times in `tz`, as the rest
    of an answer states them; UTC without one).

    A merchant's frontage zone counts only when the report's chainage lies in it (or when
    the chainage is unknown).
    """
    a, p = models.Assignment, models.Reporter
    rows = session.execute(
        select(a, p)
        .join(p, p.id == a.reporter_id)
        .where(
            a.segment_id == segment_id,
            a.valid_from <= at,
            or_(a.valid_to.is_(None), a.valid_to > at),
        )
        .order_by(a.role, a.level, a.valid_from)
    ).all()
    out = []
    for asg, person in rows:
        outside = in_frontage(asg.from_chainage_m, asg.to_chainage_m, chainage_m) is False
        if asg.role == "merchant" and outside:
            continue
        out.append(assignment_json(asg, person, tz))
    return out


def assignment_json(
    asg: models.Assignment, person: models.Reporter, tz: dt.tzinfo | None = None
) -> dict[str, Any]:
    def iso(t: dt.datetime | None) -> str | None:
        return None if t is None else (t.astimezone(tz) if tz else t).isoformat()

    out: dict[str, Any] = {
        "person": {
            "id": person.id,
            "name": person.name,
            "kind": person.kind,
            "title": person.title,
        },
        "role": asg.role,
        "level": asg.level,
        "level_name": LEVEL_NAMES.get(asg.level) if asg.level is not None else None,
        "valid_from": iso(asg.valid_from),
        "valid_to": iso(asg.valid_to),
    }
    if asg.from_chainage_m is not None or asg.to_chainage_m is not None:
        out["chainage_m"] = [asg.from_chainage_m, asg.to_chainage_m]
    return out


# -- import ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AssignmentRow:
    row: int
    segment_id: str
    person_id: str
    person_name: str | None
    role: str
    level: int | None
    valid_from: dt.datetime
    valid_to: dt.datetime | None
    from_chainage_m: float | None
    to_chainage_m: float | None
    title: str | None
    phone: str | None = None  # digits only (normalise_phone)


def normalise_phone(raw: str) -> str | None:
    """A mobile number as digits only (spaces, dashes and a leading +86 or 0086 dropped);
    None when it is not 5 to 15 digits."""
    digits = re.sub(r"[\s\-()]", "", raw)
    digits = re.sub(r"^(\+86|0086)", "", digits)
    return digits if re.fullmatch(r"\d{5,15}", digits) else None


class AssignmentImportError(ValueError):
    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        shown = "\n".join(errors[:20])
        more = f"\n… and {len(errors) - 20} more" if len(errors) > 20 else ""
        super().__init__(f"{len(errors)} problem(s), nothing was imported:\n{shown}{more}")


def _read_table(path: Path) -> list[dict[str, Any]]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        try:
            text = path.read_bytes().decode("utf-8-sig")  # Excel writes a BOM
        except UnicodeDecodeError as exc:
            raise AssignmentImportError(
                [f"{path.name}: not UTF-8 text (byte {exc.start}); save it as CSV UTF-8"]
            ) from None
        return list(csv.DictReader(io.StringIO(text)))
    if suffix in (".xlsx", ".xlsm"):
        import zipfile

        from openpyxl import load_workbook
        from openpyxl.utils.exceptions import InvalidFileException

        try:
            wb = load_workbook(path, read_only=True, data_only=True)
            rows = wb.active.iter_rows(values_only=True) if wb.active else iter(())
            header = [str(h).strip() if h is not None else "" for h in next(rows, ())]
            return [
                dict(zip(header, r, strict=False)) for r in rows if any(v is not None for v in r)
            ]
        except (zipfile.BadZipFile, InvalidFileException, KeyError, ValueError) as exc:
            raise AssignmentImportError(
                [f"{path.name}: not an Excel workbook that can be read ({exc})"]
            ) from None
    raise AssignmentImportError([f"{path.name}: use a .csv or .xlsx file"])


def _time(value: Any, tz: dt.tzinfo) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=tz)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=tz)
    parsed = dt.datetime.fromisoformat(str(value).strip())
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)


def read_assignments(path: Path, known_segments: set[str], tz: dt.tzinfo) -> list[AssignmentRow]:
    """Parse and check every row; raise AssignmentImportError listing all problems."""
    table = _read_table(path)
    errors: list[str] = []
    if not table:
        raise AssignmentImportError([f"{path.name}: no rows"])
    missing = [c for c in REQUIRED if c not in table[0]]
    if missing:
        raise AssignmentImportError(
            [f"{path.name}: missing column(s) {', '.join(missing)}; expected {', '.join(COLUMNS)}"]
        )
    out: list[AssignmentRow] = []
    phones: dict[str, str] = {}  # phone -> person id: one person per number
    for n, raw in enumerate(table, start=2):  # row 1 is the header
        rec: dict[str, Any] = {
            k: (str(v).strip() if v is not None and not isinstance(v, dt.date) else v)
            for k, v in raw.items()
            if k
        }
        problems: list[str] = []
        for col in REQUIRED:
            if rec.get(col) in (None, ""):
                problems.append(f"{col} is empty")
        sid = rec.get("segment_id") or ""
        if sid and sid not in known_segments:
            problems.append(f"segment {sid} does not exist")
        role = rec.get("role") or ""
        if role and role not in ROLES:
            problems.append(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        level: int | None = None
        if rec.get("level") not in (None, ""):
            try:
                level = int(float(str(rec["level"])))
                if level not in LEVEL_NAMES:
                    raise ValueError
            except ValueError:
                problems.append("level must be 0 (总路长), 1, 2 or 3")
        if role == "road_chief" and level is None:
            problems.append("a road_chief row needs a level (0-3)")
        times: list[dt.datetime | None] = []
        for col in ("valid_from", "valid_to"):
            v = rec.get(col)
            if v in (None, ""):
                times.append(None)
                continue
            try:
                times.append(_time(v, tz))
            except ValueError:
                problems.append(f"{col} {v!r} is not a date such as 2026-03-01")
                times.append(None)
        if times[0] and times[1] and times[1] <= times[0]:
            problems.append("valid_to must be after valid_from")
        chain: list[float | None] = []
        for col in ("from_chainage_m", "to_chainage_m"):
            v = rec.get(col)
            try:
                chain.append(None if v in (None, "") else float(str(v)))
            except ValueError:
                problems.append(f"{col} must be a number of metres")
                chain.append(None)
        if role == "merchant" and chain[0] is None:
            problems.append("a merchant row needs from_chainage_m/to_chainage_m (its frontage)")
        if chain[0] is not None and chain[1] is not None and chain[1] <= chain[0]:
            problems.append("to_chainage_m must be greater than from_chainage_m")
        phone = None
        if rec.get("phone") not in (None, ""):
            phone = normalise_phone(str(rec["phone"]))
            if phone is None:
                problems.append(f"phone {rec['phone']!r} is not a phone number")
            elif phones.setdefault(phone, rec.get("person_id") or "") != rec.get("person_id"):
                problems.append(f"phone {phone} is already {phones[phone]}'s in this file")
        if problems:
            errors.append(f"row {n}: " + "; ".join(problems))
            continue
        assert times[0] is not None
        out.append(
            AssignmentRow(
                row=n,
                segment_id=sid,
                person_id=rec["person_id"],
                person_name=rec.get("person_name") or None,
                role=role,
                level=level,
                valid_from=times[0],
                valid_to=times[1],
                from_chainage_m=chain[0],
                to_chainage_m=chain[1],
                title=rec.get("title") or None,
                phone=phone,
            )
        )
    # Two rows for the same post must not overlap in time.
    by_post: dict[tuple[Any, ...], list[AssignmentRow]] = {}
    for r in out:
        key = (r.segment_id, r.role, r.level, r.from_chainage_m if r.role == "merchant" else None)
        by_post.setdefault(key, []).append(r)
    far = dt.datetime.max.replace(tzinfo=dt.UTC)
    for rows in by_post.values():
        rows.sort(key=lambda r: r.valid_from)
        for prev, nxt in zip(rows, rows[1:], strict=False):
            if (prev.valid_to or far) > nxt.valid_from:
                errors.append(
                    f"row {nxt.row}: overlaps row {prev.row} for the same post on "
                    f"{nxt.segment_id}; end row {prev.row} (valid_to) before row {nxt.row} starts"
                )
    if errors:
        raise AssignmentImportError(errors)
    return out


@dataclass(frozen=True)
class ImportSummary:
    opened: int
    closed: int
    people_added: int


def apply_assignments(session: Session, rows: list[AssignmentRow]) -> ImportSummary:
    """Apply checked rows: an open assignment of the same post is closed where a row starts."""
    a = models.Assignment
    known = set(session.scalars(select(models.Reporter.id)))
    added = 0
    for r in rows:
        if r.person_id not in known:
            kind = {"partner_unit": "unit", "merchant": "merchant"}.get(r.role, "person")
            session.add(
                models.Reporter(
                    id=r.person_id,
                    name=r.person_name or r.person_id,
                    kind=kind,
                    level=r.level if r.role == "road_chief" else None,
                    title=r.title,
                )
            )
            known.add(r.person_id)
            added += 1
    _set_phones(session, rows)
    session.flush()
    closed = 0
    for r in sorted(rows, key=lambda r: r.valid_from):
        same_post = [
            a.segment_id == r.segment_id,
            a.role == r.role,
            a.level.is_(None) if r.level is None else a.level == r.level,
        ]
        if r.role == "merchant":
            same_post.append(a.from_chainage_m == r.from_chainage_m)
        res = session.execute(
            update(a)
            .where(
                and_(*same_post),
                a.valid_from < r.valid_from,
                or_(a.valid_to.is_(None), a.valid_to > r.valid_from),
            )
            .values(valid_to=r.valid_from)
        )
        closed += res.rowcount or 0  # type: ignore[attr-defined]
        session.add(
            a(
                segment_id=r.segment_id,
                reporter_id=r.person_id,
                level=r.level,
                role=r.role,
                valid_from=r.valid_from,
                valid_to=r.valid_to,
                from_chainage_m=r.from_chainage_m,
                to_chainage_m=r.to_chainage_m,
            )
        )
    return ImportSummary(opened=len(rows), closed=closed, people_added=added)


def _set_phones(session: Session, rows: list[AssignmentRow]) -> None:
    """Each row's phone onto its person (the newest given wins); refuse a number that
    another person already has, so a sign-in by phone names one chief only."""
    wanted = {r.person_id: r.phone for r in rows if r.phone}
    if not wanted:
        return
    p = models.Reporter
    taken = dict(session.execute(select(p.phone, p.id).where(p.phone.in_(wanted.values()))).all())
    clash = [
        f"phone {ph} is already {taken[ph]}'s, not {pid}'s"
        for pid, ph in wanted.items()
        if taken.get(ph, pid) != pid
    ]
    if clash:
        raise AssignmentImportError(clash)
    for pid, ph in wanted.items():
        person = session.get(p, pid)
        if person is not None:
            person.phone = ph


def current_chiefs(session: Session, now: dt.datetime) -> dict[str, dict[str, str]]:
    """Each segment's road chief (level 3) at `now`: segment id -> {id, name}."""
    a, p = models.Assignment, models.Reporter
    rows = session.execute(
        select(a.segment_id, p.id, p.name)
        .join(p, p.id == a.reporter_id)
        .where(
            a.level == 3,
            a.valid_from <= now,
            or_(a.valid_to.is_(None), a.valid_to > now),
        )
    )
    return {sid: {"id": pid, "name": name} for sid, pid, name in rows}
