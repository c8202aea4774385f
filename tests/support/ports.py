"""Free TCP ports for test servers.

The OS hands out an ephemeral port for ``bind(("127.0.0.1", 0))`` and may hand the same
one out again once that socket is closed: two calls in a row once returned the same port,
and a test broker then tried to open its MQTT and WebSocket listeners on one port and
exited. So this process never hands out a port twice (the other processes on the machine
are the OS's business: it does not give them a port that is bound)."""

from __future__ import annotations

import socket
import threading

_lock = threading.Lock()
_given: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago and that this process never handed out."""
    with _lock:
        held: list[socket.socket] = []
        try:
            while True:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                held.append(sock)  # kept bound until the end: the OS moves on to another
                sock.bind((host, 0))
                port = int(sock.getsockname()[1])
                if port not in _given:
                    _given.add(port)
                    return port
        finally:
            for sock in held:
                sock.close()
