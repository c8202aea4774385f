"""Simulated road chiefs: realistic reports over MQTT, like phones in the street would send.

Each chief reports near their own segments with GPS noise; most phones send GCJ-02 (Amap,
WeChat), some BD-09 (Baidu), a few WGS84; a small share of messages is malformed or a
resend, as in real life. Outcomes are read back from the ack topics.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import random
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from geo.crs import wgs84_to_bd09, wgs84_to_gcj02
from geo.network import Network

from .categories import Categories
from .ingest.topics import Topics

log = logging.getLogger(__name__)

CRS_SHARE = (("GCJ02", 0.6), ("BD09", 0.15), ("WGS84", 0.25))
NOTES = {
    "order": ["占用人行道", "门前摆摊", "车辆压占盲道", "共享单车堆放", "店外经营约10米"],
    "clean": ["垃圾未清运", "路面油污", "积存垃圾", "扬尘明显"],
    "facade": ["小广告张贴", "招牌破损", "墙面涂鸦", "空调外机低挂"],
    "facility": ["井盖缺失", "路灯不亮", "护栏倾斜", "积水较深"],
}


@dataclass(frozen=True, slots=True)
class Chief:
    id: str
    segments: tuple[int, ...]  # positions in network.segments


def chiefs_of(
    network: Network,
    count: int,
    rng: random.Random,
    may_report: Callable[[str], bool] | None = None,
) -> list[Chief]:
    """`count` road chiefs (level 3) with the segments they answer for.

    `may_report`: only chiefs it accepts (the platform refuses unknown and disabled
    reporters; `serve --simulate` passes its own check, so the demo sends as real chiefs)."""
    by_person: dict[str, list[int]] = {}
    pos = {s.id: i for i, s in enumerate(network.segments)}
    for a in network.assignments:
        allowed = may_report is None or may_report(a.person_id)
        if a.level == 3 and a.segment_id in pos and allowed:
            by_person.setdefault(a.person_id, []).append(pos[a.segment_id])
    people = sorted(by_person)
    rng.shuffle(people)
    return [Chief(p, tuple(by_person[p])) for p in people[:count]]


class ReportFactory:
    def __init__(
        self,
        network: Network,
        categories: Categories,
        rng: random.Random,
        noise_m: float = 8.0,
        bad_share: float = 0.02,
        resend_share: float = 0.01,
    ) -> None:
        self.network = network
        self.rng = rng
        self.noise_m = noise_m
        self.bad_share = bad_share
        self.resend_share = resend_share
        cats = list(categories.by_code.values())
        self.codes = [c.code for c in cats]
        self.weights = [c.weight for c in cats]
        self.groups = {c.code: c.group for c in cats}
        self.sent: list[tuple[str, bytes]] = []  # recent (reporter, payload), for resends

    def position(self, chief: Chief) -> tuple[float, float]:
        seg = self.network.segments[self.rng.choice(chief.segments)]
        point = seg.geometry.interpolate(self.rng.uniform(0.1, 0.9), normalized=True)
        lat0 = math.radians(point.y)
        dx, dy = self.rng.gauss(0, self.noise_m), self.rng.gauss(0, self.noise_m)
        return point.x + dx / (111_320 * math.cos(lat0)), point.y + dy / 110_540

    def report(self, chief: Chief, now: dt.datetime) -> dict[str, Any]:
        lon, lat = self.position(chief)
        crs = self.rng.choices([c for c, _ in CRS_SHARE], [w for _, w in CRS_SHARE])[0]
        if crs == "GCJ02":
            lon, lat = wgs84_to_gcj02(lon, lat)
        elif crs == "BD09":
            lon, lat = wgs84_to_bd09(lon, lat)
        code = self.rng.choices(self.codes, self.weights)[0]
        observed = now - dt.timedelta(seconds=self.rng.uniform(0, 120))
        return {
            "v": 1,
            "report_id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "reporter_id": chief.id,
            "observed_at": observed.astimezone(dt.timezone(dt.timedelta(hours=8))).isoformat(
                timespec="seconds"
            ),
            "lat": round(float(lat), 6),
            "lon": round(float(lon), 6),
            "crs": crs,
            "accuracy_m": round(self.rng.uniform(4, 20), 1),
            "category": code,
            "severity": self.rng.choices([1, 2, 3], [0.7, 0.25, 0.05])[0],
            "note": self.rng.choice(NOTES.get(self.groups[code], ["现场问题"])),
            "photos": [],
            "segment_hint": None,
        }

    def bad(self, chief: Chief, now: dt.datetime) -> bytes:
        """One of the malformed messages phones really send."""
        good = self.report(chief, now)
        kind = self.rng.randrange(6)
        if kind == 0:
            return b'{"v":1,"report_id":'  # cut off
        if kind == 1:
            good["category"] = "X9999"
        elif kind == 2:
            good["reporter_id"] = "someone-else"
        elif kind == 3:
            good["lat"] = "34.7"
        elif kind == 4:
            del good["category"]
        else:
            good["observed_at"] = "yesterday"
        return json.dumps(good, ensure_ascii=False).encode()

    def next_payload(self, chief: Chief, now: dt.datetime) -> tuple[str, bytes, str]:
        """(reporter, payload, kind): kind is good, bad or resend (a phone retrying)."""
        roll = self.rng.random()
        if roll < self.bad_share:
            return chief.id, self.bad(chief, now), "bad"
        if roll < self.bad_share + self.resend_share and self.sent:
            reporter, old = self.rng.choice(self.sent)
            return reporter, old, "resend"
        payload = json.dumps(self.report(chief, now), ensure_ascii=False).encode()
        self.sent.append((chief.id, payload))
        if len(self.sent) > 200:
            self.sent.pop(0)
        return chief.id, payload, "good"


class Simulator:
    def __init__(
        self,
        network: Network,
        categories: Categories,
        *,
        host: str,
        port: int,
        topic_root: str = "roadwatch/v1",
        chiefs: int = 50,
        rate: float = 5.0,
        seed: int | None = None,
        bad_share: float = 0.02,
        client_id: str | None = None,
        may_report: Callable[[str], bool] | None = None,
        lifecycle: Any = None,  # roadwatch.demo.lifecycle.Lifecycle: rectify, verify, patrol
    ) -> None:
        self.rng = random.Random(seed)
        self.lifecycle = lifecycle
        self.factory = ReportFactory(network, categories, self.rng, bad_share=bad_share)
        self.chiefs = chiefs_of(network, chiefs, self.rng, may_report)
        if not self.chiefs:
            raise ValueError(
                "the network has no level-3 road chiefs (allowed to report) to simulate"
            )
        self.topics = Topics(topic_root)
        self.rate = rate
        self.host, self.port = host, port
        self.sent: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self._stop = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"roadwatch-sim-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv311,
        )
        self.client.max_queued_messages_set(0)
        self._listening = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_ack

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe(self.topics.ack("+"), qos=1)
        if self.lifecycle is not None:  # dispatch notices: the chiefs' work to do
            client.subscribe(self.topics.notice("+"), qos=1)

    def _on_subscribe(self, *_: Any) -> None:
        self._listening.set()

    def _on_ack(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if self.lifecycle is not None:
            mine = "/acks/" in msg.topic and self.lifecycle.owns_ack(msg.payload)
            self.lifecycle.on_message(msg.topic, msg.payload)
            if mine or "/notices/" in msg.topic:
                return
        try:
            self.outcomes[json.loads(msg.payload).get("status", "?")] += 1
        except Exception:
            self.outcomes["unreadable"] += 1

    def stop(self) -> None:
        self._stop.set()

    def login_refused(self, timeout: float = 5.0) -> str | None:
        """Why the broker will not let this simulator in, or None when it does.

        The simulator logs in anonymously and publishes as many chiefs: a broker with
        password_file and the chiefs' ACL (config/deploy/mosquitto) refuses that, and
        paho would retry for ever, filling the log. Asked once, before anything starts."""
        probe = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"roadwatch-sim-probe-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv311,
        )
        answer: list[Any] = []
        done = threading.Event()

        def on_connect(_c: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
            answer.append(rc)
            done.set()

        probe.on_connect = on_connect
        try:
            probe.connect(self.host, self.port, keepalive=10)
        except OSError as exc:
            return f"cannot reach the broker at {self.host}:{self.port} ({exc})"
        probe.loop_start()
        try:
            if not done.wait(timeout):
                return f"no answer from the broker at {self.host}:{self.port}"
            return f"the broker said: {answer[0]}" if answer[0].is_failure else None
        finally:
            probe.disconnect()
            probe.loop_stop()

    def _publish_as(self, word: str, reporter: str, payload: bytes) -> None:
        self.client.publish(f"{self.topics.root}/{word}/{reporter}", payload, qos=1)

    def run(
        self,
        duration: float | None = None,
        count: int | None = None,
        progress: TextIO | None = sys.stderr,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> Counter[str]:
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        # Listen for acks before the first report goes out, or the first acks are missed.
        if not self._listening.wait(10):
            log.warning("simulate: no SUBACK for the ack topic; outcomes may be incomplete")
        start = time.monotonic()
        next_progress = start + 1
        interval = 1.0 / self.rate if self.rate > 0 else 0.0
        n = 0
        try:
            while not self._stop.is_set():
                if count is not None and n >= count:
                    break
                if duration is not None and time.monotonic() - start >= duration:
                    break
                chief = self.rng.choice(self.chiefs)
                reporter, payload, kind = self.factory.next_payload(chief, now())
                self.client.publish(self.topics.report(reporter), payload, qos=1)
                self.sent[kind] += 1
                n += 1
                if self.lifecycle is not None:
                    self.lifecycle.tick(self._publish_as)
                if progress is not None and time.monotonic() >= next_progress:
                    self._print_progress(progress, start)
                    next_progress += 1
                target = start + n * interval
                delay = target - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
            # Give the last acks a moment to arrive.
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and sum(self.outcomes.values()) < n:
                time.sleep(0.05)
        finally:
            if progress is not None:
                self._print_progress(progress, start, final=True)
            self.client.disconnect()
            self.client.loop_stop()
        return self.outcomes

    def _print_progress(self, out: TextIO, start: float, final: bool = False) -> None:
        elapsed = max(time.monotonic() - start, 1e-9)
        total = sum(self.sent.values())
        o = self.outcomes
        line = (
            f"simulate: sent {total} ({total / elapsed:.0f}/s, {self.sent['bad']} malformed, "
            f"{self.sent['resend']} resends) | acks: {o['accepted']} accepted, "
            f"{o['needs_review']} review, {o['duplicate']} duplicate, {o['rejected']} rejected"
        )
        out.write(("\r" + line + ("\n" if final else "")) if out.isatty() else line + "\n")
        out.flush()
