"""Whether the phone app's broker address answers as a WebSocket (MQTT over WebSockets).

A plain Debian Mosquitto has no WebSocket listener: the phones' default address
(`ws://{host}:9001/`) is then refused, and a platform that keeps handing it out sends every
phone into a connect/close loop. The server checks the address at start (and now and then
after, for `auto`) so that it can say so in its log and, for `auto`, give phones no broker
address at all (they send over HTTPS at once).
"""

from __future__ import annotations

import base64
import os
import socket
from urllib.parse import urlsplit


def ws_answers(url: str, host: str, timeout: float = 0.5) -> bool:
    """True if `url` (with "{host}" standing for `host`) accepts a WebSocket upgrade for
    MQTT: HTTP 101 to a handshake offering the `mqtt` subprotocol. `wss://` is only checked
    for a TCP listener (its TLS may end at a proxy this machine cannot judge)."""
    parts = urlsplit(url.replace("{host}", host))
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        return False
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout) as sock:
            if parts.scheme == "wss":
                return True
            key = base64.b64encode(os.urandom(16)).decode()
            netloc = parts.netloc.rsplit("@", 1)[-1]
            sock.sendall(
                (
                    f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {netloc}\r\n"
                    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                    f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                    "Sec-WebSocket-Protocol: mqtt\r\n\r\n"
                ).encode()
            )
            head = sock.recv(64)
    except OSError:
        return False
    return head.split(b"\r\n", 1)[0].split(b" ")[1:2] == [b"101"]
