"""Issue #5 acceptance b: a whole case over MQTT, on a real Mosquitto and PostgreSQL.

report → dispatched to the segment's chief (notice on roadwatch/v1/notices/{chief}) →
rectification with an after photo (uploaded over HTTP first, as the phone does) →
verification by a different person → closed. The same person verifying is refused.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import queue
import threading
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from roadwatch.runtime import Runtime
from tests.conftest import make_settings
from tests.support.auth import staff_client
from tests.support.examples import contract_example
from tests.support.images import image_bytes
from tests.support.intake import intake_headers
from tests.support.mosquitto import MosquittoProcess
from tests.support.server import live_server

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CST = dt.timezone(dt.timedelta(hours=8))


class Phone:
    """One person's MQTT client: publishes under their id, reads their acks and notices."""

    def __init__(self, port: int, root: str, person: str) -> None:
        self.root, self.person = root, person
        self.acks: queue.Queue[dict[str, Any]] = queue.Queue()
        self.notices: queue.Queue[dict[str, Any]] = queue.Queue()
        self.c = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"{person}-{uuid.uuid4().hex[:4]}"
        )
        self.c.on_message = self._on
        subscribed = threading.Event()
        self.c.on_subscribe = lambda *a: subscribed.set()
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        self.c.subscribe([(f"{root}/acks/{person}", 1), (f"{root}/notices/{person}", 1)])
        assert subscribed.wait(5)

    def _on(self, _c: Any, _u: Any, m: mqtt.MQTTMessage) -> None:
        (self.acks if "/acks/" in m.topic else self.notices).put(json.loads(m.payload))

    def send(self, word: str, body: dict[str, Any]) -> dict[str, Any]:
        self.c.publish(f"{self.root}/{word}/{self.person}", json.dumps(body), qos=1)
        return self.acks.get(timeout=10)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def test_full_case_over_mqtt(tmp_path: Path, fresh_pg: str, network_ctx: Any) -> None:
    with MosquittoProcess(tmp_path) as broker:
        root = f"case{uuid.uuid4().hex[:6]}/v1"
        rt = Runtime.build(
            make_settings(
                tmp_path, database_url=fresh_pg, mqtt_url=broker.url, mqtt_topic_root=root
            ),
            ctx=network_ctx,
        )
        phones: list[Phone] = []
        try:
            with live_server(rt, mqtt_ingest=True) as server:
                # logged in before the report: the chief's phone must then subscribe quickly
                staff = staff_client(server.app, rt)
                reporter = Phone(broker.port, root, "zz-jinshui-0421")
                phones.append(reporter)
                body = contract_example()
                ack = reporter.send("reports", body)
                assert ack["status"] == "accepted"
                seg = ack["segment_id"]
                people = json.loads(staff.get(f"/api/segments/{seg}").get_data())["properties"][
                    "responsible_now"
                ]
                chief = next(p["person"]["id"] for p in people if p["level"] == 3)
                supervisor = next(p["person"]["id"] for p in people if p["level"] == 2)
                chief_phone = Phone(broker.port, root, chief)
                phones.append(chief_phone)
                notice = chief_phone.notices.get(timeout=10)  # queued for them if offline
                assert notice["kind"] == "dispatch" and notice["case_id"] == body["report_id"]
                assert notice["due_at"]
                # The words a chief reads (issue 20): Chinese, naming the case and deadline.
                assert (
                    notice["message"].startswith("新案件：店外经营·")
                    and "前整改" in notice["message"]
                )

                # The after photo goes up over HTTP first; the rectification names its hash.
                jpeg = image_bytes("JPEG")
                up = server.app.test_client().post(
                    "/api/photos",
                    data={"photo": (io.BytesIO(jpeg), "after.jpg")},
                    headers=intake_headers(server.app, chief),
                )
                photo = up.get_json()["sha256"]
                now = dt.datetime.now(CST).isoformat(timespec="seconds")
                fix = {
                    "v": 1,
                    "rectification_id": str(uuid.uuid4()),
                    "report_id": body["report_id"],
                    "reporter_id": chief,
                    "done_at": now,
                    "note": "已整改",
                    "photos": [photo],
                }
                r_ack = chief_phone.send("rectifications", fix)
                assert (r_ack["status"], r_ack["case_status"]) == ("accepted", "rectified")

                same = {
                    "v": 1,
                    "verification_id": str(uuid.uuid4()),
                    "report_id": body["report_id"],
                    "reporter_id": chief,
                    "result": "pass",
                    "done_at": now,
                }
                refused = chief_phone.send("verifications", same)
                assert refused["status"] == "rejected"
                assert refused["errors"][0]["code"] == "same_person"

                sup_phone = Phone(broker.port, root, supervisor)
                phones.append(sup_phone)
                ok = {**same, "verification_id": str(uuid.uuid4()), "reporter_id": supervisor}
                v_ack = sup_phone.send("verifications", ok)
                assert (v_ack["status"], v_ack["case_status"]) == ("accepted", "closed")

                doc = staff.get(f"/api/reports/{body['report_id']}").get_json()
                assert doc["case"]["status"] == "closed" and doc["case"]["assignee_id"] == chief
                steps = [h["status"] for h in doc["history"]]
                assert steps == ["accepted", "dispatched", "rectified", "closed"]
        finally:
            for p in phones:
                p.close()
            rt.stop()
