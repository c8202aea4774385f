"""How a notice reaches a person: one notifier per outbox channel (roadwatch.cases.outbox).

* `mqtt`: the in-app notice on `{root}/notices/{person}` (QoS 1; the phone app, and the
  broker queues it while the phone is offline). Confirmed by the broker's PUBACK.
* `webhook`: a message to a WeCom (企业微信) or DingTalk (钉钉) group robot, in their JSON
  format (`msgtype` markdown), for chiefs who are not looking at the app. Confirmed by a
  2xx answer whose `errcode`, when present, is 0.

Every message carries the notice id (in the MQTT payload as `notice_id`; in the webhook's
text and in the `X-Roadwatch-Notice-Id` header): a retry after a crash can repeat a notice,
and the receiver drops a repeated id.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)

WEBHOOK_TIMEOUT_S = 5.0
NOTICE_ID_HEADER = "X-Roadwatch-Notice-Id"


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One outbox row being sent."""

    notice_id: str
    channel: str
    person_id: str
    district: str | None
    body: dict[str, Any]
    attempts: int


class Delivery(Protocol):
    """A send under way: done once confirmed or failed; `error` is None when confirmed."""

    error: str | None

    def done(self) -> bool: ...


class Notifier(Protocol):
    channel: str

    def start(self) -> None: ...

    def connected(self) -> bool: ...

    def send(self, item: OutboxItem) -> Delivery: ...

    def close(self) -> None: ...


class Finished:
    """A delivery decided at once (a webhook's answer, or a refusal before sending)."""

    def __init__(self, error: str | None) -> None:
        self.error = error

    def done(self) -> bool:
        return True


class _Published:
    """An MQTT publish waiting for its PUBACK."""

    def __init__(self, info: Any) -> None:
        self.info = info
        self.error: str | None = None

    def done(self) -> bool:
        return bool(self.info.is_published())


class MqttNotifier:
    """The in-app notice, on a connection of its own (client id `{client_id}-outbox-<random>`).

    A clean session, so the id needs to be stable only while the process runs, and each
    process has its own: two jobs roles with one id (a second one by mistake, or during an
    upgrade) had the broker close one connection whenever the other connected, every
    second, for ever."""

    channel = "mqtt"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        client_id: str,
        topic_root: str,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        from ..ingest.topics import Topics, session_client_id

        self.topics = Topics(topic_root)
        self.host, self.port = host, port
        self._connected = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=session_client_id(f"{client_id}-outbox-{uuid.uuid4().hex[:8]}", password),
            protocol=mqtt.MQTTv311,
        )
        if username:
            self.client.username_pw_set(username, password)
        self.client.max_queued_messages_set(0)
        self.client.max_inflight_messages_set(100)
        self.client.reconnect_delay_set(min_delay=1, max_delay=10)
        self.client.on_connect = lambda *a: self._on_connect(a[3])
        self.client.on_disconnect = lambda *_: self._connected.clear()

    @classmethod
    def from_settings(cls, settings: Any) -> MqttNotifier:
        return cls(
            host=settings.mqtt_host,
            port=settings.mqtt_port,
            client_id=settings.mqtt_client_id,
            topic_root=settings.mqtt_topic_root,
            username=settings.mqtt_username,
            password=settings.mqtt_password,
        )

    def _on_connect(self, reason: Any) -> None:
        if getattr(reason, "is_failure", False):
            log.error("outbox: the broker refused the notices connection (%s)", reason)
            return
        self._connected.set()

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()

    def connected(self) -> bool:
        return self._connected.is_set()

    def send(self, item: OutboxItem) -> Delivery:
        if not self._connected.is_set():
            # Not handed to paho: it would queue it and send it after our own retry too.
            return Finished("broker not connected")
        body = json.dumps(item.body, ensure_ascii=False).encode()
        info = self.client.publish(self.topics.notice(item.person_id), body, qos=1)
        if info.rc != 0:
            return Finished(f"publish refused (rc {info.rc})")
        return _Published(info)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


KIND_TITLES = {
    "dispatch": "新案件派遣 (new case)",
    "overdue": "案件超期 (overdue)",
    "escalation": "案件升级 (escalated)",
    "reopened": "核查未通过，案件重新打开 (reopened)",
}
FIELD_LABELS = (
    ("case_id", "案件 case"),
    ("segment_id", "路段 segment"),
    ("category", "类别 category"),
    ("severity", "等级 severity"),
    ("due_at", "期限 due"),
    ("level", "通知层级 level"),
    ("note", "说明 note"),
)


def webhook_text(item: OutboxItem) -> tuple[str, str]:
    """(title, markdown) of a notice for a group robot; the notice id is in the text."""
    b = item.body
    title = f"路长通知: {KIND_TITLES.get(str(b.get('kind')), str(b.get('kind')))}"
    lines = [f"### {title}", f"> 接收人 to: {item.person_id}"]
    lines += [f"> {label}: {b[k]}" for k, label in FIELD_LABELS if b.get(k) is not None]
    lines.append(f"notice_id: {item.notice_id}")
    return title, "\n".join(lines)


def webhook_payload(item: OutboxItem, fmt: str) -> dict[str, Any]:
    """The group robot's JSON: WeCom `{"msgtype": "markdown", "markdown": {"content"}}`,
    DingTalk `{"msgtype": "markdown", "markdown": {"title", "text"}}`."""
    title, text = webhook_text(item)
    if fmt == "dingtalk":
        return {"msgtype": "markdown", "markdown": {"title": title, "text": text}}
    return {"msgtype": "markdown", "markdown": {"content": text}}


class WebhookNotifier:
    """POSTs each notice to its district's group robot (or the one for all)."""

    channel = "webhook"

    def __init__(
        self,
        url_for: Callable[[str | None], str | None],
        fmt: str = "wecom",
        timeout_s: float = WEBHOOK_TIMEOUT_S,
    ) -> None:
        self.url_for, self.fmt, self.timeout_s = url_for, fmt, timeout_s
        self._last_error: str | None = None

    def start(self) -> None:
        pass

    def connected(self) -> bool:
        """False only while the last attempt failed (nothing sent yet counts as fine)."""
        return self._last_error is None

    def send(self, item: OutboxItem) -> Delivery:
        url = self.url_for(item.district)
        if not url:
            return Finished(f"no webhook URL for district {item.district!r}")
        data = json.dumps(webhook_payload(item, self.fmt), ensure_ascii=False).encode()
        req = urllib.request.Request(
            url,
            data=data,
            method="POST",
            headers={"Content-Type": "application/json", NOTICE_ID_HEADER: item.notice_id},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310
                answer = resp.read(65536)
        except urllib.error.HTTPError as exc:
            return self._result(f"HTTP {exc.code}")
        except (OSError, ValueError) as exc:
            return self._result(f"{exc.__class__.__name__}: {exc}"[:200])
        try:
            errcode = json.loads(answer or b"{}").get("errcode", 0)
        except (ValueError, AttributeError):
            errcode = 0  # a receiver that answers 2xx without the robots' JSON took it
        return self._result(None if errcode in (0, None) else f"errcode {errcode}")

    def _result(self, error: str | None) -> Delivery:
        self._last_error = error
        return Finished(error)

    def close(self) -> None:
        pass
