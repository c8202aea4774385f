"""SQLAlchemy 2.0 typed models. The schema itself is owned by Alembic (roadwatch/store/migrations).

Every timestamp is stored as UTC (UTCDateTime normalises on the way in and out, because
SQLite has no time zones). Raw payloads are kept byte for byte.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy import false as sa_false
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from .. import clock


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware datetimes in, aware UTC datetimes out; naive UTC in the database."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        return value.replace(tzinfo=dt.UTC)


def utcnow() -> dt.datetime:
    """Now, from the one settable clock (roadwatch.clock; production: the wall clock)."""
    return clock.now()


OPEN_CASE_SQL = (
    "case_status IN ('new', 'dispatched', 'reopened', 'rectified') AND parent_id IS NULL"
)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Meta(Base):
    """Small key/value facts about this database (e.g. the loaded network's hash)."""

    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class District(Base):
    __tablename__ = "districts"
    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # district | zone
    geometry: Mapped[dict[str, Any]] = mapped_column(JSON)  # GeoJSON, WGS84


class Segment(Base):
    __tablename__ = "segments"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    road: Mapped[str] = mapped_column(String(100))
    from_road: Mapped[str] = mapped_column(String(100))
    to_road: Mapped[str] = mapped_column(String(100))
    district: Mapped[str] = mapped_column(ForeignKey("districts.code"), index=True)
    subdistrict: Mapped[str | None] = mapped_column(String(64))
    road_class: Mapped[str] = mapped_column(String(16))
    length_m: Mapped[float] = mapped_column(Float)
    geometry: Mapped[dict[str, Any]] = mapped_column(JSON)  # GeoJSON LineString, WGS84
    # Re-imports never delete: a changed segment gets a new version (the old one stays in
    # segment_versions for the reports snapped to it); a segment gone from the file is retired.
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    retired_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class SegmentVersion(Base):
    """Every geometry and name a segment has had, with the period it was valid."""

    __tablename__ = "segment_versions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    segment_id: Mapped[str] = mapped_column(ForeignKey("segments.id"))
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    road: Mapped[str] = mapped_column(String(100))
    from_road: Mapped[str] = mapped_column(String(100))
    to_road: Mapped[str] = mapped_column(String(100))
    district: Mapped[str] = mapped_column(String(16))
    road_class: Mapped[str] = mapped_column(String(16))
    length_m: Mapped[float] = mapped_column(Float)
    geometry: Mapped[dict[str, Any]] = mapped_column(JSON)
    valid_from: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    valid_to: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ux_segment_versions_segment_version", "segment_id", "version", unique=True),
    )


class Reporter(Base):
    """A road chief or another person who may report (the MQTT username in production)."""

    __tablename__ = "reporters"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    # person (a road chief, supervisor, volunteer), unit (驻区单位 partner unit) or merchant
    kind: Mapped[str] = mapped_column(String(16), server_default="person")
    level: Mapped[int | None] = mapped_column(SmallInteger)  # 0 总路长, 1 一级, 2 二级, 3 三级
    district: Mapped[str | None] = mapped_column(String(16), index=True)
    subdistrict: Mapped[str | None] = mapped_column(String(64))
    title: Mapped[str | None] = mapped_column(String(100))
    # A disabled reporter's messages are refused on every transport (issue 15, intake).
    disabled: Mapped[bool] = mapped_column(Boolean, server_default=sa_false())
    # The chief's mobile number, digits only (`chiefs import`, column `phone`): a second
    # sign-in name for the phone app (issue 20). Unique where set.
    phone: Mapped[str | None] = mapped_column(String(20), unique=True)


class Assignment(Base):
    """Who answers for a segment, in which role and level, during which period.

    role: road_chief (with its level), partner_unit (驻区单位 adopting the segment) or
    merchant (门前三包: a frontage zone from_chainage_m..to_chainage_m along the segment).
    Periods are half-open [valid_from, valid_to); a change closes the old row, never edits it.
    """

    __tablename__ = "assignments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    segment_id: Mapped[str] = mapped_column(ForeignKey("segments.id"))
    reporter_id: Mapped[str] = mapped_column(ForeignKey("reporters.id"), index=True)
    level: Mapped[int | None] = mapped_column(SmallInteger)  # road chiefs only
    role: Mapped[str] = mapped_column(String(32), default="road_chief")
    valid_from: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    valid_to: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    from_chainage_m: Mapped[float | None] = mapped_column(Float)
    to_chainage_m: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (Index("ix_assignments_segment_from", "segment_id", "valid_from"),)


class Report(Base):
    __tablename__ = "reports"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # the device's report_id
    reporter_id: Mapped[str] = mapped_column(String(64), index=True)
    category: Mapped[str] = mapped_column(String(16), index=True)
    scheme: Mapped[str] = mapped_column(String(32))
    severity: Mapped[int] = mapped_column(SmallInteger)
    note: Mapped[str | None] = mapped_column(Text)
    photos: Mapped[list[Any]] = mapped_column(JSON)
    observed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    crs: Mapped[str] = mapped_column(String(8))
    lat_in: Mapped[float | None] = mapped_column(Float)  # as sent, in `crs`
    lon_in: Mapped[float | None] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)  # WGS84
    lon: Mapped[float | None] = mapped_column(Float)
    accuracy_m: Mapped[float | None] = mapped_column(Float)
    heading_deg: Mapped[float | None] = mapped_column(Float)
    segment_hint: Mapped[str | None] = mapped_column(String(64))
    segment_id: Mapped[str | None] = mapped_column(ForeignKey("segments.id"), index=True)
    segment_version: Mapped[int | None] = mapped_column(Integer)  # the geometry it was snapped to
    district: Mapped[str | None] = mapped_column(String(16), index=True)
    snap_distance_m: Mapped[float | None] = mapped_column(Float)
    snap_confidence: Mapped[float | None] = mapped_column(Float)
    snap: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # candidates, ambiguity, method
    status: Mapped[str] = mapped_column(String(16), index=True)  # accepted | needs_review
    transport: Mapped[str] = mapped_column(String(8))  # mqtt | http
    topic: Mapped[str | None] = mapped_column(String(255))
    raw: Mapped[bytes] = mapped_column(LargeBinary)

    # -- the case this report became (roadwatch.cases.workflow owns these) --------------
    # needs_review | dispatched | rectified | closed | reopened | duplicate | invalid
    case_status: Mapped[str | None] = mapped_column(String(16))
    assignee_id: Mapped[str | None] = mapped_column(String(64), index=True)
    dispatched_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    escalation_level: Mapped[int] = mapped_column(SmallInteger, server_default="0")
    next_escalation_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    overdue: Mapped[bool] = mapped_column(Boolean, server_default=sa_false())
    rectified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)
    parent_id: Mapped[str | None] = mapped_column(String(36))  # the case it corroborates
    # -- the holiday rule (roadwatch.cases.calendar): due_at counted on weekdays only in a
    # year whose holidays were not configured; recomputed by the case clock once they are.
    due_provisional: Mapped[bool] = mapped_column(Boolean, server_default=sa_false())

    __table_args__ = (
        Index("ix_reports_case_clock", "case_status", "next_escalation_at"),
        # Reports waiting for the dispatcher.
        Index(
            "ix_reports_new_cases",
            "received_at",
            postgresql_where=text("case_status = 'new'"),
            sqlite_where=text("case_status = 'new'"),
        ),
        # Open cases by segment: the live map's counts and the corroboration check read
        # only these few rows, however many closed ones the table holds.
        Index(
            "ix_reports_open_cases",
            "segment_id",
            "category",
            postgresql_where=text(OPEN_CASE_SQL),
            sqlite_where=text(OPEN_CASE_SQL),
        ),
        # Provisional deadlines waiting for their year's holidays (few rows, read at start-up).
        Index(
            "ix_reports_due_provisional",
            "case_status",
            postgresql_where=text("due_provisional"),
            sqlite_where=text("due_provisional"),
        ),
    )


class ReportTransition(Base):
    """Every change of a report's state: who, when, why (review decisions, later the workflow)."""

    __tablename__ = "report_transitions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    report_id: Mapped[str] = mapped_column(ForeignKey("reports.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    by: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The weekly ranking reads the reopenings since its week began, not every transition
    # of every year (they are a small part of a table that grows by millions a week).
    __table_args__ = (
        Index(
            "ix_report_transitions_reopened_at",
            "at",
            postgresql_where=text("to_status = 'reopened'"),
            sqlite_where=text("to_status = 'reopened'"),
        ),
    )


class ReportVersion(Base):
    """What a report's ranked fields were just before a change made after its intake.

    A published week is frozen at its cut-off, but its cases go on: staff extend, reassign
    or close them, reviews are settled, fixes arrive. `GET /api/rankings/{week}/verify`
    recomputes the week from the events as they stood at the cut-off, so it needs each
    report's segment, case state and times *then*: the earliest version written after the
    cut-off holds them (roadwatch.cases.workflow.keep_ranked_state; roadwatch.ranking.gather
    reads it). Without this, every routine action after publication read as tampering.
    """

    __tablename__ = "report_versions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    report_id: Mapped[str] = mapped_column(String(36), index=True)
    changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    segment_id: Mapped[str | None] = mapped_column(String(64))
    case_status: Mapped[str | None] = mapped_column(String(16))
    due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    rectified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Patrol(Base):
    """A road chief's walk (CONTRACT 1.3): its points, and the segments it covered."""

    __tablename__ = "patrols"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    reporter_id: Mapped[str] = mapped_column(String(64), index=True)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    state: Mapped[str] = mapped_column(String(8))  # start | track | end


class PatrolPoint(Base):
    __tablename__ = "patrol_points"
    patrol_id: Mapped[str] = mapped_column(ForeignKey("patrols.id"), primary_key=True)
    t: Mapped[dt.datetime] = mapped_column(UTCDateTime, primary_key=True)  # a resend adds nothing
    lat: Mapped[float] = mapped_column(Float)  # WGS84
    lon: Mapped[float] = mapped_column(Float)
    accuracy_m: Mapped[float | None] = mapped_column(Float)


class PatrolCoverage(Base):
    """A segment walked on a patrol (matched as a path, not point by point)."""

    __tablename__ = "patrol_coverage"
    patrol_id: Mapped[str] = mapped_column(ForeignKey("patrols.id"), primary_key=True)
    segment_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    reporter_id: Mapped[str] = mapped_column(String(64), index=True)
    first_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    last_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # When the platform had the walk (its `end` matched): the weekly ranking counts a walk
    # only if it was known by the week's cut-off, as it does a report (roadwatch.ranking.
    # gather). NULL: recorded before the column existed, counted as before.
    recorded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class CaseMessage(Base):
    """A rectification or verification as received (idempotency key: the client's UUID)."""

    __tablename__ = "case_messages"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # rectification | verification
    report_id: Mapped[str] = mapped_column(ForeignKey("reports.id"), index=True)
    reporter_id: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    done_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    result: Mapped[str | None] = mapped_column(String(8))  # verification: pass | fail
    photos: Mapped[list[Any]] = mapped_column(JSON)
    note: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[bytes] = mapped_column(LargeBinary)


class RejectedMessage(Base):
    """A message that was refused, kept so that nothing a chief sent is silently dropped."""

    __tablename__ = "rejected_messages"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    transport: Mapped[str] = mapped_column(String(8))
    topic: Mapped[str | None] = mapped_column(String(255))
    reporter_id: Mapped[str | None] = mapped_column(String(64), index=True)
    message_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    errors: Mapped[list[Any]] = mapped_column(JSON)
    raw: Mapped[bytes] = mapped_column(LargeBinary)  # at most settings.max_raw_kept bytes
    raw_size: Mapped[int] = mapped_column(Integer)


class Event(Base):
    """The live feed's log: `seq` is the Socket.IO sequence number; resync reads from here."""

    __tablename__ = "events"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


# -- weekly red and black flags (roadwatch.ranking) ------------------------------------
class Ranking(Base):
    """A published week, frozen: its content and a SHA-256 chained to the previous week's.

    `week` is unique, so publishing twice (or from two processes at once) keeps one row.
    """

    __tablename__ = "rankings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    week: Mapped[str] = mapped_column(String(8), unique=True)  # ISO week, 2026-W47
    formula_version: Mapped[str] = mapped_column(String(32))
    formula_sha256: Mapped[str] = mapped_column(String(64))
    as_of: Mapped[dt.datetime] = mapped_column(UTCDateTime)  # the cut-off it was computed at
    published_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    published_by: Mapped[str] = mapped_column(String(64))
    content: Mapped[str] = mapped_column(Text)  # canonical JSON, exactly the bytes hashed
    content_sha256: Mapped[str] = mapped_column(String(64))
    prev_sha256: Mapped[str | None] = mapped_column(String(64))  # chain of the week before
    chain_sha256: Mapped[str] = mapped_column(String(64))  # sha256(prev chain + content hash)


class RankingDispute(Base):
    """A chief's contest of a finding before publication, and the arbiter's decision."""

    __tablename__ = "ranking_disputes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    week: Mapped[str] = mapped_column(String(8), index=True)
    report_id: Mapped[str] = mapped_column(ForeignKey("reports.id"), index=True)
    filed_by: Mapped[str] = mapped_column(String(64))
    filed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(Text)
    evidence: Mapped[list[Any]] = mapped_column(JSON)  # photo SHA-256s, links
    decision: Mapped[str | None] = mapped_column(String(8))  # upheld | rejected
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    decision_note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ux_ranking_disputes_week_report", "week", "report_id", unique=True),)


class RankingJob(Base):
    """The weekly schedule's claim: one row per week, inserted by exactly one process."""

    __tablename__ = "ranking_jobs"
    week: Mapped[str] = mapped_column(String(8), primary_key=True)
    claimed_by: Mapped[str] = mapped_column(String(128))
    claimed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(Text)


# -- command-centre access (issue 7) ------------------------------------------------------
# Staff who may open the command centre. Roles: viewer (the whole city, read only),
# district_staff (only their district, may settle reviews), admin (everything).
USER_ROLES = ("viewer", "district_staff", "admin")


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))  # werkzeug.security
    role: Mapped[str] = mapped_column(String(16))
    district: Mapped[str | None] = mapped_column(String(16))  # a district code
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


# Replay reads the event log by time range.
Index("ix_events_created_at", Event.created_at)


# -- road chiefs' phone accounts (issue 8) ---------------------------------------------------
class ChiefAccount(Base):
    """A road chief's sign-in for the phone app and the broker (separate from staff users).

    password_hash is Mosquitto's own `$7$` format (PBKDF2-SHA512), so the same hash serves
    the app's HTTP sign-in and the broker's password file, which is rendered from this table.
    """

    __tablename__ = "chief_accounts"
    reporter_id: Mapped[str] = mapped_column(ForeignKey("reporters.id"), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    password_set_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    disabled: Mapped[bool] = mapped_column(Boolean, server_default=sa_false())


# -- audit log of staff actions (issue 15, scope 5) ------------------------------------------
class AuditEntry(Base):
    """One staff action, appended and never changed (roadwatch/store/audit.py is the only writer).

    actor: a staff username, `cli:<os user>`, `system:<what>` or `anonymous`;
    actor_id: the staff user's id when there is one.
    """

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(128), index=True)
    actor_id: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(32), index=True)
    target: Mapped[str | None] = mapped_column(String(255))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    remote_addr: Mapped[str | None] = mapped_column(String(64))


# -- photos: what the camera said, kept once the photo itself is clean (issue 15) ----------
class PhotoMeta(Base):
    """One uploaded photo (roadwatch.store.photos): its id is the SHA-256 of the bytes as uploaded
    (what reports name); the file holds them without metadata (`stored_sha256`). Position,
    bearing and time are the camera's EXIF, kept here for geolocation; None when absent."""

    __tablename__ = "photo_meta"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    stored_sha256: Mapped[str] = mapped_column(String(64))
    mime: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(Integer)  # bytes stored
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    uploaded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    uploaded_by: Mapped[str | None] = mapped_column(String(64))  # the identity, when known
    had_metadata: Mapped[bool] = mapped_column(Boolean, server_default=sa_false())
    lat: Mapped[float | None] = mapped_column(Float)  # WGS84, as the camera wrote it
    lon: Mapped[float | None] = mapped_column(Float)
    accuracy_m: Mapped[float | None] = mapped_column(Float)
    bearing_deg: Mapped[float | None] = mapped_column(Float)  # GPSImgDirection, 0-360
    bearing_ref: Mapped[str | None] = mapped_column(String(1))  # T true, M magnetic
    taken_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


# -- road chiefs' phone devices (issue 15) ---------------------------------------------------
class ChiefDevice(Base):
    """A phone a chief signed in on: its revocable credential, never the password.

    Only the SHA-256 of the random token is kept; the phone holds the token itself. A device
    is revoked on sign-out, by an admin (`roadwatch chiefs devices revoke`) and whenever the
    chief's password is reset; `revoked_at` set means every request with it is refused.
    """

    __tablename__ = "chief_devices"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # public, for admins
    reporter_id: Mapped[str] = mapped_column(ForeignKey("reporters.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    user_agent: Mapped[str | None] = mapped_column(String(255))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_reason: Mapped[str | None] = mapped_column(String(32))


# -- API keys for HTTP intake (issue 15) -------------------------------------------------------
class ApiKey(Base):
    """A key that lets a script or a city system file reports over HTTP as ONE reporter.

    Only the SHA-256 of the key is stored (a key is 32 random bytes: no slow hash needed).
    `system` marks a city system's key, whose reporter is a reporter of kind `system`.
    """

    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # its first characters, to tell keys apart
    reporter_id: Mapped[str] = mapped_column(ForeignKey("reporters.id"), index=True)
    system: Mapped[bool] = mapped_column(Boolean, server_default=sa_false())
    label: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


# -- staff login sessions (issue 15: revoked on logout and password change) -----------------
class StaffSession(Base):
    """One signed-in browser of a staff user. The session cookie carries a random token;
    only its SHA-256 is stored here. Logging out deletes the row, a password change deletes
    all of the user's rows: a replayed old cookie then finds nothing."""

    __tablename__ = "staff_sessions"
    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


# -- the case workbench (issue 19): the case list's usual filters, served from an index ------
# A district user's list (always scoped to the district), newest first; and the overdue
# filter (case state + deadline), city-wide or beside the district index.
Index("ix_reports_district_observed", Report.district, Report.observed_at)
Index("ix_reports_case_status_due", Report.case_status, Report.due_at)


# -- messages that arrived before what they need (issue 18: several ingest workers) ----------
class ParkedMessage(Base):
    """A rectification or verification that one ingest worker got before the report it
    names was committed by another (shared subscriptions split a phone's messages), or
    before that report's case was dispatched. Kept here, acknowledged to the broker, and
    tried again when the report arrives and every few seconds; past the maximum age
    (setting park_max_age_s) it gets the error it would have had (roadwatch/ingest/park.py).
    """

    __tablename__ = "parked_messages"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)  # kind:message id (resends)
    kind: Mapped[str] = mapped_column(String(20))
    waits_for: Mapped[str] = mapped_column(String(64), index=True)  # the report id
    reason: Mapped[str] = mapped_column(String(32))  # unknown_report | not_dispatched | behind
    topic: Mapped[str] = mapped_column(String(255))
    reporter_id: Mapped[str] = mapped_column(String(64))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    response_topic: Mapped[str | None] = mapped_column(String(255))
    correlation_data: Mapped[bytes | None] = mapped_column(LargeBinary)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    parked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    next_try_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))


# -- notice outbox (issue 18 scope 5, issue 19 scope 7) ---------------------------------------
class NoticeOutbox(Base):
    """A notice to send, written in the transaction of the case change that caused it, so a
    crash between commit and publish loses none (roadwatch.cases.outbox). One row per notice
    and channel (`mqtt`, `webhook`); the same `notice_id` is in the payload of each, and
    receivers drop a repeated one."""

    __tablename__ = "notice_outbox"
    notice_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(64))
    district: Mapped[str | None] = mapped_column(String(16))  # chooses the webhook URL
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(300))
    # Pending rows in sending order: the publisher's query and the backlog gauges.
    __table_args__ = (
        Index(
            "ix_notice_outbox_pending",
            "next_attempt_at",
            postgresql_where=text("sent_at IS NULL"),
            sqlite_where=text("sent_at IS NULL"),
        ),
    )


class MonthlyReview(Base):
    """A published monthly review pack (月讲评, issue 22), frozen and hash-chained like the
    weekly rankings: canonical JSON content, its SHA-256, chained to the previous month's."""

    __tablename__ = "monthly_reviews"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    month: Mapped[str] = mapped_column(String(7), unique=True)  # 2026-11
    published_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    published_by: Mapped[str] = mapped_column(String(64))
    content: Mapped[str] = mapped_column(Text)  # canonical JSON, exactly the bytes hashed
    content_sha256: Mapped[str] = mapped_column(String(64))
    prev_sha256: Mapped[str | None] = mapped_column(String(64))
    chain_sha256: Mapped[str] = mapped_column(String(64))


# -- geolocation labels (issue 21) ----------------------------------------------------------
class SnapLabel(Base):
    """One person's decision of which segment a report belongs to, beside what the snapper
    said: labelled data for measuring the snapper. Only hard cases get labels (a review, a
    choice on the phone when the snapper was not certain), so they measure it on those
    and cannot calibrate it alone. `segment_id` None: the report was judged invalid."""

    __tablename__ = "snap_labels"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    report_id: Mapped[str] = mapped_column(String(36), index=True)
    source: Mapped[str] = mapped_column(String(16))  # review | phone
    decided_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    by: Mapped[str] = mapped_column(String(64))
    segment_id: Mapped[str | None] = mapped_column(String(64))
    snapped_id: Mapped[str | None] = mapped_column(String(64))  # the snapper's best
    confidence: Mapped[float | None] = mapped_column(Float)
    candidates: Mapped[list[Any]] = mapped_column(JSON)  # ids the snapper offered
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    accuracy_m: Mapped[float | None] = mapped_column(Float)
    heading_deg: Mapped[float | None] = mapped_column(Float)
    category: Mapped[str] = mapped_column(String(16))


# -- extension requests (issue 19): a responsible chief asks, staff approve or refuse ----------
class ExtensionRequest(Base):
    """A chief's request for more working hours on a case, pending until staff decide it
    (roadwatch.cases.extensions); an approval moves the deadline through the staff `extend`."""

    __tablename__ = "extension_requests"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    report_id: Mapped[str] = mapped_column(ForeignKey("reports.id"), index=True)
    requested_by: Mapped[str] = mapped_column(String(64))  # the chief's reporter id
    requested_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    hours: Mapped[float] = mapped_column(Float)  # working hours asked for
    reason: Mapped[str] = mapped_column(Text)
    # pending, then approved or refused
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    decided_by: Mapped[str | None] = mapped_column(String(64))  # the staff user's name
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    decision_note: Mapped[str | None] = mapped_column(Text)
    granted_hours: Mapped[float | None] = mapped_column(Float)


class ChiefDutyHours(Base):
    """A chief's duty hours (issue 22), e.g. `mon-fri 08:00-18:00; sat 09:00-12:00`: their
    patrol plan uses only these (roadwatch.recurrence.duty). No row: Monday–Friday 08–18."""

    __tablename__ = "chief_duty_hours"
    reporter_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("reporters.id", ondelete="CASCADE"), primary_key=True
    )
    spec: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class LeadersAnalysis(Base):
    """The hot-spot/forecast analysis of one week (issue 22), computed in the background
    (roadwatch.recurrence.stored) so the leaders' API reads it instead of refitting:
    zlib-compressed JSON, keyed by the local Monday of the week it is for."""

    __tablename__ = "leaders_analysis"
    week: Mapped[str] = mapped_column(String(10), primary_key=True)  # 2026-12-07
    computed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    payload: Mapped[bytes] = mapped_column(LargeBinary)


class SiteVisitRoute(Base):
    """A site-visit route (观摩路线, issue 22) sent to the phones of the people on the visit:
    the stops as chosen (the order is planned again on reading, on the same network), who
    it was sent to, and its short id, which also opens it for any signed-in chief (/m/?route=)."""

    __tablename__ = "site_visit_routes"
    id: Mapped[str] = mapped_column(String(16), primary_key=True)  # random, in the short URL
    title: Mapped[str] = mapped_column(String(100))
    segments: Mapped[list[str]] = mapped_column(JSON)
    first: Mapped[str | None] = mapped_column(String(64))
    chiefs: Mapped[list[str]] = mapped_column(JSON)  # reporter ids it was sent to
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
