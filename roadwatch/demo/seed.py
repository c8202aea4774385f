"""`roadwatch demo seed`: weeks of a plausible city, played through the real code paths.

The settable clock (roadwatch.clock) steps through the weeks two hours at a time. At each
step the messages due by then go through `Pipeline.process` as MQTT would deliver them
(Inbound, one batch): the findings of road chiefs, evaluators, covert checkers and the
12345 hotline, rectifications with an after photo (uploaded through roadwatch.photos),
verifications by the superior chief or an evaluator (some fail, and the case is reopened
and fixed again), and patrols. New reports are dispatched inline by the real dispatcher;
the case clock (`cases.clock.Scheduler`) escalates what is overdue; disputes are filed and
decided inside each contest window (`ranking.publish.file_dispute`/`decide_dispute`), and
the ranking schedule (`ranking.schedule.RankingScheduler`) publishes each week when its
window closes. Every id and every choice comes from one `random.Random(seed)`, every time
from the clock: the same seed and end give the same published hashes.

A database that holds anything not made by the seed is refused and left as it was: a demo
must never enter a real ranking's hash chain. The demo marks its database in `meta`
(key `demo`), written before anything else.
"""

from __future__ import annotations

import datetime as dt
import heapq
import io
import json
import logging
import math
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import Engine, create_engine, func, inspect, make_url, select, text

from .. import clock
from ..ingest.messages import Inbound, Outcome
from ..settings import Settings
from ..store import models
from .people import COVERT, EVALUATORS, HOTLINE, City, build_city

MARKER = "demo"  # meta key
STEP = dt.timedelta(hours=2)  # one pipeline batch and one case-clock sweep per step
PATROL_POINTS = 4
LOCAL = dt.timezone(dt.timedelta(hours=8))  # the phones' offset in their messages
REAL_TABLES = ("reports", "rejected_messages", "case_messages", "patrols", "rankings")

# Where a finding comes from: (source, share). "self" is the segment's own chief.
SOURCES = (("evaluator", 0.22), ("covert", 0.08), ("public", 0.2), ("self", 0.5))
NOTES = {
    "order": ["占用人行道", "门前摆摊", "车辆压占盲道", "共享单车堆放", "店外经营约10米"],
    "clean": ["垃圾未清运", "路面油污", "积存垃圾", "扬尘明显"],
    "facade": ["小广告张贴", "招牌破损", "墙面涂鸦", "空调外机低挂"],
    "facility": ["井盖缺失", "路灯不亮", "护栏倾斜", "积水较深"],
}
FIX_NOTES = ["已清理完毕", "已劝离并恢复通行", "已联系商户整改", "已更换", "已清除小广告"]


class DemoRefused(RuntimeError):
    """The database is not one the demo may write into; str() is one line saying why."""


class DemoOptionError(ValueError):
    """An option the network cannot honour (a district it does not have); one line."""


@dataclass
class SeedResult:
    weeks: list[tuple[str, str, str]] = field(default_factory=list)  # label, content, chain
    counts: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0


# -- the refusal -----------------------------------------------------------------------------
def _reader(url: str) -> Engine | None:
    """An engine that only reads (no pragmas, no migration); None for a SQLite file that
    does not exist yet (a new database: nothing to read, nothing to create here)."""
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite"):
        name = parsed.database
        if name and name != ":memory:" and not Path(name).exists():
            return None
        return create_engine(url)
    from ..store.db import make_engine

    return make_engine(url)


def demo_marker(url: str) -> dict[str, Any] | None:
    """The demo's mark in this database, or None (no mark, or no schema yet)."""
    engine = _reader(url)
    if engine is None:
        return None
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("meta"):
                return None
            value = conn.execute(
                text("SELECT value FROM meta WHERE key = :k"), {"k": MARKER}
            ).scalar()
    finally:
        engine.dispose()
    return json.loads(value) if value else None


def check_database(url: str) -> None:
    """Raise DemoRefused unless the database is new or empty of reports, patrols, rankings…

    Reads only: a refused database is left exactly as it was (not even migrated)."""
    engine = _reader(url)
    if engine is None:
        return
    try:
        with engine.connect() as conn:
            names = set(inspect(conn).get_table_names())
            marker = None
            if "meta" in names:
                marker = conn.execute(
                    text("SELECT value FROM meta WHERE key = :k"), {"k": MARKER}
                ).scalar()
            held = {
                t: int(conn.execute(select(func.count()).select_from(text(t))).scalar() or 0)
                for t in REAL_TABLES
                if t in names
            }
    finally:
        engine.dispose()
    if marker:
        info = json.loads(marker)
        raise DemoRefused(
            f"this database is already a demo (seed {info.get('seed')}, "
            f"{info.get('weeks')} weeks, {info.get('state')}); to seed again, start from a "
            "new database (delete the SQLite file, e.g. var/roadwatch.sqlite3)"
        )
    real = {t: n for t, n in held.items() if n}
    if real:
        what = ", ".join(f"{n:,} {t.replace('_', ' ')}" for t, n in real.items())
        raise DemoRefused(
            f"this database already holds real data ({what}); the demo would mix invented "
            "history into it and its rankings' hash chain, so nothing was changed. Point "
            "ROADWATCH_DATABASE_URL at a new database for the demo"
        )


# -- the seed --------------------------------------------------------------------------------
@dataclass(order=True)
class _Due:
    at: dt.datetime
    seq: int
    kind: str = field(compare=False)  # report | rectification | verification | patrol
    data: dict[str, Any] = field(compare=False)


class Seeder:
    def __init__(
        self,
        settings: Settings,
        *,
        weeks: int = 8,
        seed: int = 1,
        until: dt.datetime | None = None,
        districts: Sequence[str] | None = None,
        findings_per_week: float = 800.0,
        photo_pool: int = 48,
        progress: TextIO | None = sys.stderr,
    ) -> None:
        from ..ranking.schedule import due_week

        if weeks < 1:
            raise ValueError("weeks must be at least 1")
        self.settings, self.weeks, self.seed = settings, weeks, seed
        self.tz = settings.tz
        self.until = (until or clock.wall()).astimezone(dt.UTC)
        self.last_week = due_week(self.until, self.tz, settings.ranking_contest_hours)
        first = self.last_week
        for _ in range(weeks - 1):
            first = first.previous()
        self.first_week = first
        self.start = first.start
        self.districts = list(districts) if districts else None
        self.findings_per_week = findings_per_week
        self.photo_pool = photo_pool
        self.progress = progress
        self.rng = random.Random(seed)
        self.queue: list[_Due] = []
        self._seq = 0
        self.result = SeedResult()
        self.cases: dict[str, dict[str, Any]] = {}  # report id → what the chief will do

    # -- helpers ---------------------------------------------------------------------------
    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def push(self, at: dt.datetime, kind: str, data: dict[str, Any]) -> None:
        self._seq += 1
        heapq.heappush(self.queue, _Due(at, self._seq, kind, data))

    @staticmethod
    def iso(t: dt.datetime) -> str:
        return t.astimezone(LOCAL).isoformat(timespec="seconds")

    def say(self, line: str, final: bool = False) -> None:
        if self.progress is None:
            return
        tty = self.progress.isatty()
        self.progress.write(("\r" + line + ("\n" if final else "")) if tty else line + "\n")
        self.progress.flush()

    # -- run -----------------------------------------------------------------------------------
    def run(self) -> SeedResult:
        t0 = time.perf_counter()
        check_database(self.settings.database_url)
        from ..network.context import load_network_context
        from ..runtime import Runtime

        ctx = load_network_context(self.settings)
        if self.districts:  # checked before anything is written
            known = sorted({seg.district for seg in ctx.network.segments})
            unknown = [d for d in self.districts if d not in known]
            if unknown:
                raise DemoOptionError(
                    f"--districts: {', '.join(unknown)} not in the network "
                    f"(its districts: {', '.join(known)})"
                )
        rt = Runtime.build(self.settings, ctx=ctx)
        _fast_sqlite(rt.engine)
        quiet = logging.getLogger("roadwatch.cases.clock")  # its daily holiday warning
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            self._mark(rt, "seeding")
            with clock.use(clock.SetClock(self.start)) as now:
                assert isinstance(now, clock.SetClock)
                self._play(rt, now)
            self._mark(rt, "done")
        finally:
            quiet.setLevel(level)
            rt.engine.dispose()
        self.result.seconds = time.perf_counter() - t0
        return self.result

    def _mark(self, rt: Any, state: str) -> None:
        value = json.dumps(
            {
                "seed": self.seed,
                "weeks": self.weeks,
                "from": self.first_week.label,
                "to": self.last_week.label,
                "until": self.until.isoformat(),
                "districts": self.districts,
                "state": state,
            }
        )
        with rt.sessions.begin() as session:
            session.merge(models.Meta(key=MARKER, value=value))

    def _play(self, rt: Any, now: clock.SetClock) -> None:
        from ..accounts.reporters import save_reporter
        from ..cases.clock import Scheduler
        from ..cases.outbox import NOBODY
        from ..ranking.publish import default_as_of
        from ..ranking.schedule import RankingScheduler

        s = self.settings
        pipeline = rt.pipeline
        pipeline.on_events = None  # nobody watches yet: the live map reads the database
        pipeline.on_notices = None
        # History, not news: its notices are never written to the outbox, so never sent.
        pipeline.routing = pipeline.dispatcher.routing = NOBODY
        self.ctx = rt.ctx
        self.city = build_city(rt.ctx.network, self.rng, self.districts, self.findings_per_week)
        with rt.sessions.begin() as session:
            for rid, name in EVALUATORS:
                save_reporter(session, rid, "evaluator", name)
            for rid, name in COVERT:
                save_reporter(session, rid, "covert", name)
            save_reporter(session, HOTLINE[0], "system", HOTLINE[1])
        pipeline.reporters.reload()
        self.categories = rt.categories
        cats = sorted(rt.categories.by_code.values(), key=lambda c: c.code)
        self.codes = [c.code for c in cats]
        self.cat_weights = [float(c.weight) for c in cats]
        self.groups = {c.code: c.group for c in cats}
        self.before, self.after = self._photos(rt)
        sweeper = Scheduler(rt.engine, pipeline.sla, lambda *_: None, interval=3600, routing=NOBODY)
        ranking = RankingScheduler(
            rt.engine,
            s.ranking_formula,
            self.tz,
            s.ranking_contest_hours,
            lambda *_: None,
            rt.categories.codes,
        )
        ranking.who = "demo-seed"  # the schedule's name is in the published content
        sweeper.check_calendar()

        week = self.first_week
        weeks_done = 0
        next_publish = default_as_of(week, s.ranking_contest_hours)
        self._plan_week(week)
        next_week_at = week.end
        disputes: list[tuple[dt.datetime, str, Any]] = []
        t = self.start
        day = -1
        while t < self.until:
            t = min(t + STEP, self.until)
            now.set(t)
            if t >= next_week_at:  # a new week begins: plan it, and its predecessor's disputes
                done = week
                week = week.next()
                next_week_at = week.end
                self._plan_week(week)
                window = dt.timedelta(hours=s.ranking_contest_hours)
                disputes.append((done.end + window * 0.25, "file", done))
                disputes.append((done.end + window * 0.6, "decide", done))
            batch: list[_Due] = []
            while self.queue and self.queue[0].at <= t:
                batch.append(heapq.heappop(self.queue))
            if batch:
                self._deliver(rt, batch, t)
            self.result.counts["overdue"] += sweeper.run_once()
            while disputes and disputes[0][0] <= t:
                _, what, wk = disputes.pop(0)
                self._disputes(rt, wk, what, t)
            if t >= next_publish:
                published = ranking.run_once()
                if published is not None:
                    self.result.weeks.append(
                        (published.week, published.content_sha256, published.chain_sha256)
                    )
                    self.result.counts["published"] += 1
                next_publish += dt.timedelta(days=7)
            local_day = (t - self.start) // dt.timedelta(days=1)
            if local_day != day:
                day = local_day
                weeks_done = min(self.weeks, int(local_day // 7) + 1)
                self._progress(weeks_done, week.label)
        self._progress(self.weeks, week.label, final=True)

    def _progress(self, n: int, label: str, final: bool = False) -> None:
        c = self.result.counts
        width = 24
        filled = round(width * n / max(1, self.weeks)) if not final else width
        bar = "#" * filled + "." * (width - filled)
        self.say(
            f"demo seed: [{bar}] week {n}/{self.weeks} ({label}): {c['report:accepted']:,} "
            f"reports, {c['verification:closed']:,} closed, {c['overdue']:,} escalations, "
            f"{c['patrol:accepted']:,} patrols, {c['published']} weeks published",
            final,
        )

    # -- photos --------------------------------------------------------------------------------
    def _photos(self, rt: Any) -> tuple[list[str], list[str]]:
        """Small JPEGs through the real upload path (metadata stripped, meta row kept)."""
        from PIL import Image, ImageDraw

        from ..store.photos import save_upload

        folder = Path(self.settings.photo_dir)
        out: tuple[list[str], list[str]] = ([], [])
        for n in range(self.photo_pool * 2):
            after = n % 2 == 1
            rnd = self.rng
            base = (
                (rnd.randrange(90, 200),) * 3
                if after
                else tuple(rnd.randrange(60, 220) for _ in range(3))
            )
            img = Image.new("RGB", (160, 120), base)
            draw = ImageDraw.Draw(img)
            for _ in range(3 if after else 8):
                x, y = rnd.randrange(0, 150), rnd.randrange(0, 110)
                w, h = rnd.randrange(8, 60), rnd.randrange(6, 40)
                color = tuple(rnd.randrange(0, 256) for _ in range(3))
                draw.rectangle((x, y, x + w, y + h), fill=color)
            buf = io.BytesIO()
            img.save(buf, "JPEG", quality=70)
            saved = save_upload(
                rt.sessions,
                folder,
                buf.getvalue(),
                "jpeg",
                ".jpg",
                "image/jpeg",
                self.tz,
                uploaded_by="demo",
            )
            out[1 if after else 0].append(saved.sha256)
        return out

    # -- planning --------------------------------------------------------------------------------
    def _local(self, day: dt.date, hour_lo: float, hour_hi: float) -> dt.datetime:
        h = self.rng.uniform(hour_lo, hour_hi)
        start = dt.datetime.combine(day, dt.time(), self.tz)
        return (start + dt.timedelta(hours=h)).astimezone(dt.UTC).replace(microsecond=0)

    def _plan_week(self, week: Any) -> None:
        """Draw the week's findings and patrols (times, places, who) and queue them."""
        city: City = self.city
        segs = city.network.segments
        days = [week.start.astimezone(self.tz).date() + dt.timedelta(days=d) for d in range(7)]
        for i in city.active:
            n = _poisson(self.rng, city.rate[i])
            chief = city.chiefs[city.chief_of[i]]
            for _ in range(n):
                at = self._local(self.rng.choice(days), 7.0, 21.0)
                source = self.rng.choices([x for x, _ in SOURCES], [w for _, w in SOURCES])[0]
                if source == "self" and self.rng.random() > chief.profile.self_report / 0.5:
                    source = "public"
                self.push(at, "report", {"seg": i, "source": source, "chief": chief.id})
        for cid in sorted(city.chiefs):
            chief = city.chiefs[cid]
            if not chief.logs_patrols:
                continue
            lo, hi = chief.profile.patrol_days
            walked = sorted(self.rng.sample(range(7), self.rng.randint(lo, hi)))
            for d in walked:
                at = self._local(days[d], 7.5, 17.0)
                for i in chief.segments:
                    self.push(at, "patrol", {"seg": i, "chief": cid})
                    at += dt.timedelta(minutes=self.rng.uniform(10, 40))
        # keep the order of draws independent of segment geometry: nothing else here
        del segs

    # -- messages --------------------------------------------------------------------------------
    def _report(self, due: _Due) -> tuple[str, dict[str, Any]]:
        city: City = self.city
        i = due.data["seg"]
        seg = city.network.segments[i]
        source = due.data["source"]
        if source == "evaluator":
            reporter = self.rng.choice(EVALUATORS)[0]
        elif source == "covert":
            reporter = self.rng.choice(COVERT)[0]
        elif source == "public":
            reporter = HOTLINE[0]
        else:
            reporter = due.data["chief"]
        p = seg.geometry.interpolate(self.rng.uniform(0.1, 0.9), normalized=True)
        lat0 = math.radians(p.y)
        dx, dy = self.rng.gauss(0, 6.0), self.rng.gauss(0, 6.0)
        lon = p.x + dx / (111_320 * math.cos(lat0))
        lat = p.y + dy / 110_540
        code = self.rng.choices(self.codes, self.cat_weights)[0]
        photos = [self.rng.choice(self.before)] if source in ("evaluator", "covert") else []
        return reporter, {
            "v": 1,
            "report_id": self.uuid(),
            "reporter_id": reporter,
            "observed_at": self.iso(due.at),
            "lat": round(lat, 6),
            "lon": round(lon, 6),
            "crs": "WGS84",
            "accuracy_m": round(self.rng.uniform(4, 15), 1),
            "category": code,
            "severity": self.rng.choices([1, 2, 3], [0.7, 0.25, 0.05])[0],
            "note": self.rng.choice(NOTES.get(self.groups[code], ["现场问题"])),
            "photos": photos,
            "segment_hint": None,
        }

    def _patrol(self, due: _Due) -> tuple[str, dict[str, Any]]:
        seg = self.city.network.segments[due.data["seg"]]
        # Coverage needs two matched points on the segment; a handful along it is enough,
        # and every point costs the matcher and an insert (patrols are the seed's bulk).
        n = PATROL_POINTS
        pts = []
        gap = dt.timedelta(seconds=max(20.0, seg.length_m / 1.3 / (n - 1)))  # a walk's pace
        t = due.at - gap * (n - 1)  # sent when the walk ends
        for k in range(n):
            p = seg.geometry.interpolate(0.03 + 0.94 * k / (n - 1), normalized=True)
            lat0 = math.radians(p.y)
            dx, dy = self.rng.gauss(0, 3.0), self.rng.gauss(0, 3.0)
            pts.append(
                {
                    "t": self.iso(t),
                    "lat": round(p.y + dy / 110_540, 6),
                    "lon": round(p.x + dx / (111_320 * math.cos(lat0)), 6),
                    "accuracy_m": 5.0,
                }
            )
            t += gap
        cid = due.data["chief"]
        return cid, {
            "v": 1,
            "patrol_id": self.uuid(),
            "reporter_id": cid,
            "state": "end",
            "crs": "WGS84",
            "points": pts,
        }

    def _deliver(self, rt: Any, batch: list[_Due], now: dt.datetime) -> None:
        root = self.settings.mqtt_topic_root
        words = {
            "report": "reports",
            "rectification": "rectifications",
            "verification": "verifications",
            "patrol": "patrols",
        }
        inbound: list[Inbound] = []
        sent: list[tuple[_Due, dict[str, Any]]] = []
        for due in batch:
            if due.kind == "report":
                reporter, body = self._report(due)
            elif due.kind == "patrol":
                reporter, body = self._patrol(due)
            else:
                reporter, body = due.data["by"], due.data["body"]
            inbound.append(
                Inbound(
                    transport="mqtt",
                    kind=due.kind,
                    payload=json.dumps(body, ensure_ascii=False).encode(),
                    received_at=now,
                    topic=f"{root}/{words[due.kind]}/{reporter}",
                    topic_reporter=reporter,
                )
            )
            sent.append((due, body))
        outcomes = rt.pipeline.process(inbound)
        dispatched: list[str] = []
        for (due, body), o in zip(sent, outcomes, strict=True):
            self._count(due.kind, o)
            if due.kind == "report" and o.case_status == "dispatched":
                dispatched.append(body["report_id"])
            elif due.kind == "rectification" and o.status == "accepted":
                self._plan_verification(body["report_id"], now)
            elif (
                due.kind == "verification"
                and o.status == "accepted"
                and o.case_status == "reopened"
            ):
                self._plan_fix(body["report_id"], now, again=True)
        if dispatched:
            self._plan_fixes(rt, dispatched)

    def _count(self, kind: str, o: Outcome) -> None:
        c = self.result.counts
        c[f"{kind}:{o.status}"] += 1
        if kind == "verification" and o.status == "accepted":
            c[f"verification:{o.case_status}"] += 1
        if o.status == "rejected":
            c[f"{kind}:rejected:{o.errors[0].code if o.errors else '?'}"] += 1

    # -- the chiefs' behaviour -------------------------------------------------------------------
    def _plan_fixes(self, rt: Any, ids: list[str]) -> None:
        r = models.Report.__table__.c
        with rt.engine.connect() as conn:
            rows = conn.execute(
                select(r.id, r.assignee_id, r.dispatched_at, r.due_at, r.segment_id, r.lat, r.lon)
                .where(r.id.in_(ids))
                .order_by(r.id)
            ).all()
        by_id = {row.id: row for row in rows}
        for rid in ids:  # in the order they were dispatched
            row = by_id.get(rid)
            if row is None or row.assignee_id is None:
                continue
            chief = self.city.chiefs.get(row.assignee_id)
            if chief is None:
                continue
            self.cases[rid] = {
                "chief": chief.id,
                "seg": self.ctx.position.get(row.segment_id),
                "dispatched": _aware(row.dispatched_at),
                "due": _aware(row.due_at),
                "lat": row.lat,
                "lon": row.lon,
            }
            self._plan_fix(rid, _aware(row.dispatched_at), again=False)

    def _plan_fix(self, rid: str, since: dt.datetime, again: bool) -> None:
        case = self.cases.get(rid)
        if case is None:
            return
        profile = self.city.chiefs[case["chief"]].profile
        span = max(case["due"] - case["dispatched"], dt.timedelta(minutes=30))
        roll = self.rng.random()
        if again:  # a failed verification: fixed again within hours or days
            done = since + dt.timedelta(hours=self.rng.uniform(1, 30 if roll < 0.7 else 80))
        elif roll < profile.on_time:
            done = case["dispatched"] + span * self.rng.uniform(0.1, 0.75)
        elif roll < profile.on_time + profile.late:
            done = (
                case["due"]
                + span * self.rng.uniform(0.1, 1.5)
                + dt.timedelta(hours=self.rng.uniform(0.5, 8))
            )
        else:  # left undone for days: overdue, escalated, fixed at last (or still open)
            done = case["due"] + dt.timedelta(days=self.rng.uniform(2, 12))
        done = max(done, since + dt.timedelta(minutes=5))
        body = {
            "v": 1,
            "rectification_id": self.uuid(),
            "report_id": rid,
            "reporter_id": case["chief"],
            "done_at": self.iso(done),
            "lat": case["lat"],
            "lon": case["lon"],
            "crs": "WGS84",
            "note": self.rng.choice(FIX_NOTES),
            "photos": [self.rng.choice(self.after)],
        }
        # the phone sends it a few minutes after the work is done
        self.push(
            done + dt.timedelta(minutes=self.rng.uniform(1, 10)),
            "rectification",
            {"by": case["chief"], "body": body},
        )
        case["done"] = done

    def _plan_verification(self, rid: str, now: dt.datetime) -> None:
        case = self.cases.get(rid)
        if case is None:
            return
        seg = case["seg"]
        profile = self.city.chiefs[case["chief"]].profile
        if self.rng.random() < 0.3 or seg not in self.city.superior_of:
            by = self.rng.choice(EVALUATORS)[0]
        else:
            by = self.city.superior_of[seg]
        failed_before = case.get("failed", 0)
        passes = profile.passes if not failed_before else 0.92
        result = "pass" if self.rng.random() < passes else "fail"
        if result == "fail":
            case["failed"] = failed_before + 1
        at = now + dt.timedelta(hours=self.rng.uniform(0.5, 20))
        body = {
            "v": 1,
            "verification_id": self.uuid(),
            "report_id": rid,
            "reporter_id": by,
            "result": result,
            "done_at": self.iso(at),
            "note": "现场核查通过" if result == "pass" else "整改不到位，退回",
            "photos": [self.rng.choice(self.after)],
        }
        self.push(at + dt.timedelta(minutes=5), "verification", {"by": by, "body": body})

    # -- disputes ----------------------------------------------------------------------------
    def _disputes(self, rt: Any, week: Any, what: str, now: dt.datetime) -> None:
        from ..ranking.publish import RankingError, decide_dispute, disputes_of, file_dispute

        s = self.settings
        if what == "file":
            r = models.Report.__table__.c
            third = [x[0] for x in EVALUATORS + COVERT]
            with rt.engine.connect() as conn:
                rows = conn.execute(
                    select(r.id, r.district)
                    .where(
                        r.observed_at >= week.start,
                        r.observed_at < week.end,
                        r.reporter_id.in_(third),
                        r.district.is_not(None),
                    )
                    .order_by(r.id)
                ).all()
            for row in self.rng.sample(rows, min(3, len(rows))):
                try:
                    file_dispute(
                        rt.engine,
                        week,
                        row.id,
                        f"demo-staff-{row.district}",
                        "现场核实时问题已不存在，系误报 (the problem was not there on a re-check)",
                        [self.rng.choice(self.after)],
                        now,
                        s.ranking_contest_hours,
                    )
                    self.result.counts["disputes"] += 1
                except RankingError:
                    pass
            return
        with rt.engine.connect() as conn:
            pending = [d for d in disputes_of(conn, week.label) if d["decision"] is None]
        for d in pending[:2]:
            decision = "upheld" if self.rng.random() < 0.5 else "rejected"
            try:
                decide_dispute(
                    rt.engine,
                    int(d["id"]),
                    decision,
                    "demo-arbiter",
                    "复核照片后裁定" if decision == "upheld" else "证据不足，维持原判",
                    now,
                    self.tz,
                    s.ranking_contest_hours,
                )
                self.result.counts[f"disputes:{decision}"] += 1
            except RankingError:
                pass


def _fast_sqlite(engine: Engine) -> None:
    """The seed's own connections to a SQLite file skip the fsync at each commit (one
    pipeline batch is one commit): a seed cut short is started again on a new file anyway
    (the marker says "seeding"). The platform's connections keep synchronous=NORMAL."""
    if engine.dialect.name != "sqlite":
        return
    from sqlalchemy import event

    def _no_sync(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA synchronous=OFF")
        cur.close()

    event.listen(engine, "connect", _no_sync)
    engine.dispose()  # connections opened while building the runtime get it too


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _aware(value: Any) -> Any:
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def seed(settings: Settings, **kwargs: Any) -> SeedResult:
    """Seed `settings.database_url` (see Seeder for the arguments)."""
    return Seeder(settings, **kwargs).run()
