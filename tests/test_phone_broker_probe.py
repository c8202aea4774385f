"""Issue 20, scope 1: the server knows (and says) when phones cannot reach the broker's
WebSocket, and `auto` then gives phones no broker address (they use HTTPS at once).

Real sockets: a private Mosquitto with and without a WebSocket listener, a port nobody
listens on, and a plain TCP listener that is no WebSocket.
"""

from __future__ import annotations

import logging
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

import roadwatch.runtime as runtime_mod
from roadwatch.ingest.ws_probe import ws_answers
from roadwatch.runtime import Runtime
from tests.conftest import make_settings
from tests.support.mosquitto import MOSQUITTO_BIN, free_port, run_mosquitto

pytestmark = pytest.mark.integration


def _need_mosquitto() -> None:
    if not MOSQUITTO_BIN.exists():
        pytest.fail(f"{MOSQUITTO_BIN} is required", pytrace=False)


def test_probe_tells_a_websocket_listener_from_none_and_from_plain_tcp(tmp_path: Path) -> None:
    _need_mosquitto()
    ws_port = free_port()
    with run_mosquitto(tmp_path, port=free_port(), ws_port=ws_port):
        assert ws_answers(f"ws://{{host}}:{ws_port}/", "127.0.0.1")
        assert ws_answers(f"ws://127.0.0.1:{ws_port}/mqtt", "ignored")
    assert not ws_answers(f"ws://127.0.0.1:{ws_port}/", "127.0.0.1")  # gone
    # Something listens, but answers no WebSocket handshake (an MQTT TCP port, say).
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]

        def answer() -> None:
            conn, _ = srv.accept()
            with conn:
                conn.recv(1024)
                conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")

        t = threading.Thread(target=answer, daemon=True)
        t.start()
        assert not ws_answers(f"ws://127.0.0.1:{port}/", "127.0.0.1")
        t.join(5)


def test_auto_gives_phones_http_until_a_listener_answers_and_says_so_at_start(
    tmp_path: Path, network_ctx: Any, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    _need_mosquitto()
    ws_port = free_port()
    # `auto` looks on 9001, which other tests on this machine may hold: point it elsewhere.
    monkeypatch.setattr(runtime_mod, "AUTO_WS_URL", f"ws://{{host}}:{ws_port}/")
    monkeypatch.setattr(runtime_mod, "AUTO_WS_RECHECK_S", 0.0)
    rt = Runtime.build(make_settings(tmp_path, mobile_mqtt_ws_url="auto"), ctx=network_ctx)
    try:
        with caplog.at_level(logging.WARNING, logger="roadwatch.runtime"):
            assert rt.check_phone_broker() is False
        assert "no MQTT WebSocket listener answers" in caplog.text
        assert rt.phone_ws_url == ""  # phones go over HTTPS from their first request
        with run_mosquitto(tmp_path, port=free_port(), ws_port=ws_port):
            # Added while the platform runs: found at the next check, no restart.
            assert rt.phone_ws_url == f"ws://{{host}}:{ws_port}/"
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="roadwatch.runtime"):
                assert rt.check_phone_broker() is True
            assert caplog.text == ""
    finally:
        rt.stop()


def test_a_configured_address_that_does_not_answer_is_warned_about_but_kept(
    tmp_path: Path, network_ctx: Any, caplog: Any
) -> None:
    dead = f"ws://127.0.0.1:{free_port()}/"
    rt = Runtime.build(make_settings(tmp_path, mobile_mqtt_ws_url=dead), ctx=network_ctx)
    try:
        with caplog.at_level(logging.WARNING, logger="roadwatch.runtime"):
            assert rt.check_phone_broker() is False
        assert dead in caplog.text and "fall back to HTTPS" in caplog.text
        # The operator's address stays (it may be reachable from phones, not from here).
        assert rt.phone_ws_url == dead
    finally:
        rt.stop()
