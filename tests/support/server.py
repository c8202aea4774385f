"""Run the real roadwatch app (web + Socket.IO + optional MQTT ingest) in this process."""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from werkzeug.serving import BaseWSGIServer, make_server

from roadwatch.runtime import Runtime
from roadwatch.web import create_app
from tests.support.ports import free_port

__all__ = ["AckListener", "LiveServer", "free_port", "live_server"]


class LiveServer:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.app, self.socketio = create_app(runtime)
        runtime.broadcaster.emitter = self.socketio  # as `roadwatch serve` does
        self.port = free_port()
        self.server: BaseWSGIServer = make_server("127.0.0.1", self.port, self.app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@contextmanager
def live_server(runtime: Runtime, *, mqtt_ingest: bool = False) -> Iterator[LiveServer]:
    server = LiveServer(runtime).start()
    if mqtt_ingest:
        runtime.start_ingest()
    try:
        yield server
    finally:
        if runtime.mqtt is not None:
            runtime.mqtt.stop()
            runtime.mqtt = None
        runtime.broadcaster.stop()
        server.stop()


class AckListener:
    """A device-side MQTT client: publishes reports and collects the platform's acks."""

    def __init__(self, host: str, port: int, topic_root: str, protocol: int = 4) -> None:
        self.topic_root = topic_root
        self.acks: queue.Queue[dict[str, Any]] = queue.Queue()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"dev-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5 if protocol == 5 else mqtt.MQTTv311,
        )
        self.client.max_queued_messages_set(0)
        self.client.max_inflight_messages_set(200)
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.connect(host, port)
        self.client.loop_start()
        self.client.subscribe(f"{topic_root}/acks/+", qos=1)
        if not subscribed.wait(5):
            raise RuntimeError("ack subscription not confirmed")

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        body = json.loads(msg.payload)
        body["_topic"] = msg.topic
        self.acks.put(body)

    def publish(self, reporter: str, payload: bytes | dict[str, Any], **kw: Any) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        info = self.client.publish(f"{self.topic_root}/reports/{reporter}", data, qos=1, **kw)
        info.wait_for_publish(10)

    def collect(self, n: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"got {len(out)} of {n} acks within {timeout} s")
            try:
                out.append(self.acks.get(timeout=remaining))
            except queue.Empty:
                continue
        return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
