"""The live simulator's case lifecycle (issue 17): what the chiefs do after they report.

Driven by what the platform sends over MQTT, as a phone would be: a dispatch notice
(`notices/{chief}`) makes the chief rectify — most within minutes, well inside the limit,
some only after the deadline, so the case clock turns their segments overdue first — with
an after photo; the ack of a rectification makes the segment's superior chief (二级路长) or
an evaluator verify it, and a few verifications fail (the case is reopened and fixed again);
and chiefs walk their segments now and then (patrols). Every message goes out as the
chief's (or verifier's) own, on their own topic.
"""

from __future__ import annotations

import collections
import datetime as dt
import heapq
import json
import math
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from geo.network import Network

from .people import EVALUATORS

LOCAL = dt.timezone(dt.timedelta(hours=8))
Publish = Callable[[str, str, bytes], None]  # (topic word, reporter, payload)


@dataclass(order=True)
class _Task:
    at: float  # time.monotonic()
    seq: int
    what: str = field(compare=False)
    data: dict[str, Any] = field(compare=False)


class RecentIds:
    """The last `size` notice ids seen: a notice repeated by the outbox after a crash
    (docs/protocol.md, "Notices") is recognised and dropped."""

    def __init__(self, size: int = 10_000) -> None:
        self._order: collections.deque[str] = collections.deque()
        self._ids: set[str] = set()
        self.size = size
        self.repeats = 0

    def first_time(self, notice_id: Any) -> bool:
        if not isinstance(notice_id, str) or not notice_id:
            return True  # from a platform without the outbox: nothing to compare
        if notice_id in self._ids:
            self.repeats += 1
            return False
        self._ids.add(notice_id)
        self._order.append(notice_id)
        if len(self._order) > self.size:
            self._ids.discard(self._order.popleft())
        return True


class Lifecycle:
    def __init__(
        self,
        network: Network,
        rng: random.Random,
        *,
        may_report: Callable[[str], bool] | None = None,
        upload: Callable[[bytes], str] | None = None,
        speed: float = 1.0,
        late_share: float = 0.15,
        fail_share: float = 0.12,
        patrols_per_minute: float = 6.0,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.network, self.rng, self.now = network, rng, now
        self.may_report = may_report or (lambda _rid: True)
        self.upload = upload
        self.speed, self.late_share, self.fail_share = speed, late_share, fail_share
        self.patrol_every = 60.0 / patrols_per_minute if patrols_per_minute > 0 else math.inf
        self.pos = {s.id: i for i, s in enumerate(network.segments)}
        self.superior: dict[str, str] = {}
        self.chief_segments: dict[str, list[int]] = {}
        for a in network.assignments:
            if a.role != "road_chief" or a.valid_to is not None or a.segment_id not in self.pos:
                continue
            if a.level == 2:
                self.superior[a.segment_id] = a.person_id
            elif a.level == 3:
                self.chief_segments.setdefault(a.person_id, []).append(self.pos[a.segment_id])
        self.evaluators = [e for e, _ in EVALUATORS if self.may_report(e)]
        self._tasks: list[_Task] = []
        self._seq = 0
        self._lock = threading.Lock()
        self.notices = RecentIds()
        self._sent: dict[str, dict[str, Any]] = {}  # message id → what it was about
        self._photos: list[str] = []
        self._next_patrol = time.monotonic() + 5.0
        self.done: Counter[str] = Counter()

    # -- what the platform says ------------------------------------------------------------
    def on_message(self, topic: str, payload: bytes) -> None:
        """A notice or an ack (from paho's thread): plan what the person does next."""
        try:
            body = json.loads(payload)
        except ValueError:
            return
        if not isinstance(body, dict):
            return
        if "/notices/" in topic and not self.notices.first_time(body.get("notice_id")):
            return  # a repeat: the chief already has this one
        if "/notices/" in topic and body.get("kind") == "dispatch":
            self._dispatched(topic.rsplit("/", 1)[-1], body)
        elif "/acks/" in topic:
            self._acked(body)

    def _dispatched(self, chief: str, notice: dict[str, Any]) -> None:
        case = str(notice.get("case_id") or "")
        if not case or not self.may_report(chief):
            return
        due = _parse(notice.get("due_at"))
        info = {"case": case, "chief": chief, "segment": notice.get("segment_id"), "due": due}
        if self.rng.random() < self.late_share and due is not None:
            # late: after the deadline (the case clock marks it overdue first)
            wait = (due - self.now()).total_seconds() + self.rng.uniform(60, 600)
            self._plan(max(wait, 120.0), "rectify", info)
        else:
            self._plan(self.rng.uniform(20, 240) / self.speed, "rectify", info)

    def owns_ack(self, payload: bytes) -> bool:
        """Whether an ack answers one of this lifecycle's messages (not a report's)."""
        try:
            body = json.loads(payload)
        except ValueError:
            return False
        with self._lock:
            return isinstance(body, dict) and str(body.get("id")) in self._sent

    def _acked(self, ack: dict[str, Any]) -> None:
        with self._lock:
            info = self._sent.pop(str(ack.get("id")), None)
        if info is None or ack.get("status") not in ("accepted", "duplicate"):
            return
        state = ack.get("case_status")
        if state == "rectified":
            self._plan(self.rng.uniform(30, 300) / self.speed, "verify", info)
        elif state == "reopened":
            self._plan(self.rng.uniform(60, 600) / self.speed, "rectify", info)
        if state in ("rectified", "closed", "reopened"):
            self.done[state] += 1

    def _plan(self, after_s: float, what: str, data: dict[str, Any]) -> None:
        with self._lock:
            self._seq += 1
            heapq.heappush(self._tasks, _Task(time.monotonic() + after_s, self._seq, what, data))

    # -- what the people do ---------------------------------------------------------------
    def tick(self, publish: Publish) -> None:
        """Send whatever is due now (from the simulator's loop)."""
        t = time.monotonic()
        while True:
            with self._lock:
                if not self._tasks or self._tasks[0].at > t:
                    break
                task = heapq.heappop(self._tasks)
            if task.what == "rectify":
                self._rectify(task.data, publish)
            elif task.what == "verify":
                self._verify(task.data, publish)
        if t >= self._next_patrol:
            self._next_patrol = t + self.rng.expovariate(1.0 / self.patrol_every)
            self._patrol(publish)

    def _photo(self) -> list[str]:
        if self.upload is None:
            return []
        if len(self._photos) < 24:  # a small pool of after photos, uploaded as the app does
            self._photos.append(self.upload(_jpeg(self.rng)))
        return [self.rng.choice(self._photos)]

    def _send(
        self, publish: Publish, word: str, msg_id: str, body: dict[str, Any], info: dict[str, Any]
    ) -> None:
        with self._lock:
            self._sent[msg_id] = info
            if len(self._sent) > 20_000:  # acks that never came: forget the oldest
                self._sent.pop(next(iter(self._sent)))
        publish(word, str(body["reporter_id"]), json.dumps(body, ensure_ascii=False).encode())

    def _rectify(self, info: dict[str, Any], publish: Publish) -> None:
        mid = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        body = {
            "v": 1,
            "rectification_id": mid,
            "report_id": info["case"],
            "reporter_id": info["chief"],
            "done_at": self.now().astimezone(LOCAL).isoformat(timespec="seconds"),
            "note": self.rng.choice(["已清理完毕", "已劝离", "已联系商户整改", "已更换"]),
            "photos": self._photo(),
        }
        self._send(publish, "rectifications", mid, body, info)
        self.done["rectifications sent"] += 1

    def _verify(self, info: dict[str, Any], publish: Publish) -> None:
        boss = self.superior.get(str(info.get("segment")))
        if self.evaluators and (boss is None or self.rng.random() < 0.3):
            by = self.rng.choice(self.evaluators)
        elif boss is not None and self.may_report(boss):
            by = boss
        else:
            return
        result = "fail" if self.rng.random() < self.fail_share else "pass"
        mid = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        body = {
            "v": 1,
            "verification_id": mid,
            "report_id": info["case"],
            "reporter_id": by,
            "result": result,
            "done_at": self.now().astimezone(LOCAL).isoformat(timespec="seconds"),
            "note": "现场核查通过" if result == "pass" else "整改不到位，退回",
            "photos": self._photo(),
        }
        self._send(publish, "verifications", mid, body, info)

    def _patrol(self, publish: Publish) -> None:
        chiefs = sorted(c for c in self.chief_segments if self.may_report(c))
        if not chiefs:
            return
        chief = self.rng.choice(chiefs)
        seg = self.network.segments[self.rng.choice(self.chief_segments[chief])]
        n = max(4, min(30, int(seg.length_m / 50)))
        start = self.now() - dt.timedelta(seconds=40 * n)
        points = []
        for k in range(n):
            p = seg.geometry.interpolate(0.03 + 0.94 * k / (n - 1), normalized=True)
            lat0 = math.radians(p.y)
            dx, dy = self.rng.gauss(0, 3.0), self.rng.gauss(0, 3.0)
            points.append(
                {
                    "t": (start + dt.timedelta(seconds=40 * k))
                    .astimezone(LOCAL)
                    .isoformat(timespec="seconds"),
                    "lat": round(p.y + dy / 110_540, 6),
                    "lon": round(p.x + dx / (111_320 * math.cos(lat0)), 6),
                    "accuracy_m": 5.0,
                }
            )
        body = {
            "v": 1,
            "patrol_id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "reporter_id": chief,
            "state": "end",
            "points": points,
        }
        publish("patrols", chief, json.dumps(body, ensure_ascii=False).encode())
        self.done["patrols"] += 1


def _parse(value: Any) -> dt.datetime | None:
    try:
        t = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _jpeg(rng: random.Random) -> bytes:
    import io

    from PIL import Image, ImageDraw

    img = Image.new("RGB", (160, 120), (rng.randrange(90, 200),) * 3)
    draw = ImageDraw.Draw(img)
    for _ in range(3):
        x, y = rng.randrange(0, 150), rng.randrange(0, 110)
        color = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        draw.rectangle((x, y, x + rng.randrange(8, 60), y + rng.randrange(6, 40)), fill=color)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=70)
    return buf.getvalue()


def for_runtime(
    runtime: Any, may_report: Callable[[str], bool], seed: int | None = None
) -> Lifecycle:
    """The lifecycle `serve --simulate` runs: after photos stored through roadwatch.photos."""
    from pathlib import Path

    from ..store.photos import save_upload

    s = runtime.settings

    def upload(data: bytes) -> str:
        folder = Path(s.photo_dir)
        return save_upload(
            runtime.sessions, folder, data, "jpeg", ".jpg", "image/jpeg", s.tz, "simulator"
        ).sha256

    return Lifecycle(runtime.ctx.network, random.Random(seed), may_report=may_report, upload=upload)
