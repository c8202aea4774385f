"""An in-process MQTT broker for development, demos and tests (amqtt 0.12).

``roadwatch serve`` starts one of these only when asked for:
``ROADWATCH_EMBEDDED_BROKER=always``, or ``auto`` (the default) with the default
MQTT URL when nothing listens there (``run.sh`` on a laptop, no Mosquitto). A URL
set on purpose is never silently replaced by it (roadwatch/runtime.py). It is a
convenience, not a production broker: anonymous, so it listens on loopback only
(a non-loopback address is refused); run Mosquitto with
``config/deploy/mosquitto/roadwatch.conf`` wherever a lost message or a login matters.

Usage::

    with EmbeddedBroker("127.0.0.1", 1883) as broker:
        client.connect(broker.host, broker.port)

The broker runs amqtt's ``Broker`` in a daemon thread with its own asyncio
event loop. ``Broker(...)`` must be constructed inside that running loop
(amqtt looks the loop up with ``asyncio.get_running_loop()``), so everything
amqtt-related happens in the thread and the public methods only hand events
across.

Known limits (measured with amqtt 0.12.1, paho-mqtt 2.2, Python 3.11; see
``tests/test_embedded_broker.py``):

* MQTT 3.1.1 only: MQTT 5 clients are refused ("Unsupported protocol
  version"), so no ``response_topic`` / ``correlation_data`` and no session
  expiry interval.
* No shared subscriptions: ``$share/group/topic`` is accepted but treated as
  an ordinary filter that never matches, so only one ingest worker can
  subscribe.
* Nothing is persisted: sessions, queued and retained messages live in
  memory and are gone when the broker stops.
* Persistent sessions are NOT honoured with anonymous access (which is what
  this class configures): amqtt flags every anonymously authenticated client,
  queues nothing for it while it is offline, and removes its session about a
  second after it disconnects, even with ``clean_session=False``. A QoS 1
  message delivered to a subscriber that disconnects before its PUBACK is
  not redelivered when it reconnects with the same client id, not even when
  it reconnects at once and the session is still reported present.
* amqtt waits only 5 s for a PUBACK, then logs a warning and forgets the
  message: a subscriber that acknowledges after a slow batch commit loses it
  instead of getting it again. A later ack is ignored.
* No in-flight window: amqtt pushes every matching message at once (300 of
  300 un-acknowledged messages were delivered) instead of stopping at a
  max-inflight limit.
* Throughput, QoS 1, one paho publisher to one paho subscriber acking each
  message: ~1.5-2.4 k msg/s with broker and clients in one process (the
  200-message test prints its figure), ~2.7-4.5 k msg/s with the broker in
  its own process. The same client harness reached 5-9 k msg/s against
  Mosquitto with config/deploy/mosquitto/roadwatch.conf.
* The WebSocket listener works but is rough: spurious "PUBACK waiter already
  done" / "unknown pending message" warnings, and amqtt's shutdown with a
  WebSocket client connected hung for 20 s in 5 of 8 runs, which is why
  ``stop()`` resets client connections after a 1 s grace period.
* A bare TCP probe (``is_listening()``, a load balancer health check) makes
  amqtt log an ERROR "No data from ..."; probe before starting, or with a
  real MQTT CONNECT.

Warnings: with this configuration amqtt 0.12.1 emits no DeprecationWarning
(the ``$SYS`` plugin, which does, is left out), so no warning filter is
installed anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import socket
import threading
import time
from types import TracebackType
from typing import Any

# Imported here, in the importing thread, rather than lazily by amqtt's plugin
# loader inside the broker thread: this module wraps an import of the
# deprecated ``crypt`` module in ``warnings.catch_warnings()``, which swaps the
# process-wide warning filters and is not thread-safe while another thread
# (e.g. pytest) has its own ``catch_warnings`` active.
import amqtt.plugins.authentication  # noqa: F401
from amqtt.broker import Broker
from amqtt.errors import BrokerError
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

__all__ = ["EmbeddedBroker", "is_listening", "is_loopback"]

log = logging.getLogger(__name__)

# Loggers that chatter at INFO for every connection (amqtt itself, the
# ``transitions`` state machine it uses for every session, and the websockets
# server behind its WebSocket listener). They are lowered to WARNING unless the
# operator already configured a level, so ``roadwatch serve`` output stays
# readable while warnings and errors still get through ``logging``.
_CHATTY_LOGGERS = ("amqtt", "transitions", "websockets.server")

_THREAD_NAME = "roadwatch-embedded-mqtt"

# A normal amqtt shutdown takes milliseconds; past this, connections are reset.
_SHUTDOWN_GRACE = 1.0


def is_listening(host: str, port: int, timeout: float = 0.5) -> bool:
    """Return True if something accepts TCP connections on ``host:port``.

    Used to decide whether a broker is already there (e.g. the system
    Mosquitto) before starting an embedded one. It only opens and closes a TCP
    connection, so it says nothing about whether the listener speaks MQTT.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def is_loopback(host: str) -> bool:
    """True if ``host`` is a loopback address, or a name that resolves only to such."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return False
    addresses = {str(info[4][0]) for info in infos}
    return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)


def _quiet_chatty_loggers() -> None:
    for name in _CHATTY_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)


def _check_bindable(host: str, port: int) -> None:
    """Raise RuntimeError with a plain message if ``host:port`` cannot be bound.

    amqtt reports a taken port by logging a full traceback at ERROR and
    raising ``BrokerError`` wrapping the OSError; probing first gives the
    caller one clear line instead. SO_REUSEADDR matches what amqtt's
    ``asyncio.start_server(reuse_address=True)`` does, so a port that only has
    TIME_WAIT connections left over from a previous run is not reported as
    taken. The probe is racy by nature; the BrokerError handling in
    ``_serve`` still catches a port grabbed in between.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise RuntimeError(
            f"cannot start the embedded MQTT broker: bad host {host!r}: {exc}"
        ) from exc
    family, socktype, proto, _canon, address = infos[0]
    with socket.socket(family, socktype, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            reason = (
                "the port is already in use (is another MQTT broker running there?)"
                if exc.errno == errno.EADDRINUSE
                else exc.strerror or str(exc)
            )
            raise RuntimeError(
                f"cannot start the embedded MQTT broker on {host}:{port}: {reason}"
            ) from exc


# amqtt ships no type information, so its Broker is Any to mypy; subclassing it is the point.
# mypy: disallow-subclassing-any=False
class _Broker(Broker):
    """amqtt's Broker with two connection-handling fixes for embedding.

    * It closes every TCP connection it is done with. amqtt 0.12.1 returns
      without closing the socket when the first packet is not a CONNECT, e.g.
      for a plain TCP probe such as ``is_listening()`` or a load balancer's
      health check; each such probe leaked a socket (a ResourceWarning, an
      error under ``filterwarnings = error``).
    * It can abort all client connections. amqtt's shutdown cancels each
      session's reader task and waits for it, but on Python 3.11
      ``asyncio.wait_for`` can swallow that cancellation when a packet
      arrives at the same moment; the reader then waits for the next packet
      and shutdown hung for 20 s with clients still connected (measured,
      intermittent). Aborted transports end every reader at once.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self._client_transports: set[asyncio.WriteTransport] = set()

    async def stream_connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, listener_name: str
    ) -> None:
        self._client_transports.add(writer.transport)
        try:
            await super().stream_connected(reader, writer, listener_name)
        finally:
            self._client_transports.discard(writer.transport)
            # amqtt is finished with the connection once this returns, so
            # closing it is always safe. No `await writer.wait_closed()`: this
            # task may be cancelled at shutdown, and Python 3.11's
            # start_server callback logs a cancelled connection task as an
            # error. The transport finishes closing on the next loop turns.
            if not writer.is_closing():
                writer.close()

    async def ws_connected(self, websocket: ServerConnection, listener_name: str) -> None:
        self._client_transports.add(websocket.transport)
        try:
            await super().ws_connected(websocket, listener_name)
        except ConnectionClosed as exc:
            # A phone's page that went away while amqtt was still answering it (a SUBACK
            # to a closed WebSocket): amqtt lets that escape, and websockets then logs it
            # with a traceback, as if the broker had failed. It is a client leaving.
            log.debug("embedded broker: a WebSocket client left mid-exchange (%s)", exc)
        finally:
            self._client_transports.discard(websocket.transport)

    def abort_client_connections(self) -> None:
        for transport in list(self._client_transports):
            transport.abort()


class EmbeddedBroker:
    """amqtt running in a background thread, started and stopped synchronously.

    Anonymous access is allowed, so ``host`` must be a loopback address (``start``
    refuses any other), and only the listeners asked for are opened:
    MQTT over TCP on ``host:port`` and, if ``ws_port`` is given, MQTT over
    WebSocket (subprotocol ``mqtt``) on ``host:ws_port``.
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = 1883, ws_port: int | None = None
    ) -> None:
        self.host = host
        self.port = port
        self.ws_port = ws_port
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.start_seconds: float | None = None
        """Wall time the last successful ``start()`` took (for diagnostics)."""

    @property
    def _url_host(self) -> str:
        # An IPv6 literal needs brackets in a URL.
        return f"[{self.host}]" if ":" in self.host else self.host

    @property
    def url(self) -> str:
        return f"mqtt://{self._url_host}:{self.port}"

    @property
    def ws_url(self) -> str | None:
        return None if self.ws_port is None else f"ws://{self._url_host}:{self.ws_port}/"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _config(self) -> dict[str, Any]:
        listeners: dict[str, Any] = {
            "default": {"type": "tcp", "bind": f"{self.host}:{self.port}"},
        }
        if self.ws_port is not None:
            listeners["ws"] = {"type": "ws", "bind": f"{self.host}:{self.ws_port}"}
        return {
            "listeners": listeners,
            # amqtt 0.12 format: plugins is a dict. Listing it explicitly keeps
            # the defaults out: the $SYS plugin would publish statistics every
            # 20 s and emits a DeprecationWarning about psutil, and the
            # event/packet logger plugins only add chatter.
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
            },
        }

    def start(self, timeout: float = 10.0) -> None:
        """Start the broker; return once its listeners accept connections.

        Raises RuntimeError if it is already running, if a port cannot be
        bound, or if amqtt does not come up within ``timeout`` seconds.
        """
        if self.running:
            raise RuntimeError(f"the embedded MQTT broker is already running on {self.url}")
        if not is_loopback(self.host):
            # Anyone who reaches it may publish as any chief and read every topic.
            raise RuntimeError(
                f"the embedded MQTT broker has no logins, so it listens on loopback only, "
                f"not on {self.host}"
            )
        started = time.perf_counter()
        _check_bindable(self.host, self.port)
        if self.ws_port is not None:
            _check_bindable(self.host, self.ws_port)
        _quiet_chatty_loggers()

        self._ready.clear()
        self._error = None
        self._loop = None
        self._stop_requested = None
        # Daemon, so a forgotten stop() can never keep the interpreter alive;
        # stop() still joins it so nothing leaks in normal use.
        self._thread = threading.Thread(target=self._run, name=_THREAD_NAME, daemon=True)
        self._thread.start()

        if not self._ready.wait(timeout):
            self._request_stop()
            self._thread.join(1.0)
            raise RuntimeError(
                f"the embedded MQTT broker did not start on {self.url} within {timeout:g} s"
            )
        if self._error is not None:
            self._thread.join(timeout)
            error, self._error = self._error, None
            raise RuntimeError(
                f"cannot start the embedded MQTT broker on {self.url}: {error}"
            ) from error
        self.start_seconds = time.perf_counter() - started
        log.info(
            "embedded MQTT broker listening on %s (%.1f ms)", self.url, self.start_seconds * 1e3
        )

    def stop(self, timeout: float = 5.0) -> None:
        """Disconnect all clients, close the listeners and join the thread.

        Safe to call when not running. Raises RuntimeError if the thread does
        not end within ``timeout`` or if amqtt failed while shutting down.
        """
        thread = self._thread
        if thread is None:
            return
        self._request_stop()
        thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError(
                f"the embedded MQTT broker on {self.url} did not stop within {timeout:g} s"
            )
        self._thread = None
        self._loop = None
        self._stop_requested = None
        if self._error is not None:
            error, self._error = self._error, None
            raise RuntimeError(f"the embedded MQTT broker on {self.url} failed: {error}") from error
        log.info("embedded MQTT broker on %s stopped", self.url)

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"EmbeddedBroker({self.url!r}, {state})"

    # -- broker thread -------------------------------------------------------

    def _request_stop(self) -> None:
        loop, stop_requested = self._loop, self._stop_requested
        if loop is None or stop_requested is None:
            return
        # The loop may already be closed if the thread died on its own.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(stop_requested.set)

    def _run(self) -> None:
        try:
            # asyncio.run gives the thread a fresh loop and, on the way out,
            # cancels leftover tasks and closes async generators and the
            # default executor, so no "Task was destroyed" or unclosed-loop
            # ResourceWarning escapes.
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to start()/stop(), never lost
            self._error = exc
        finally:
            # Unblock start() even if we died before signalling readiness.
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_requested = asyncio.Event()
        broker = _Broker(self._config())
        try:
            await broker.start()
        except BrokerError as exc:
            # Report the underlying cause (e.g. "[Errno 98] error while
            # attempting to bind ...: address already in use") rather than
            # amqtt's generic wrapper text.
            self._error = exc.__cause__ or exc
            return
        self._ready.set()
        await self._stop_requested.wait()
        shutdown = asyncio.ensure_future(broker.shutdown())
        done, _pending = await asyncio.wait({shutdown}, timeout=_SHUTDOWN_GRACE)
        if not done:
            # amqtt is stuck waiting for a session's reader (see _Broker);
            # resetting the client connections lets it finish.
            log.debug("amqtt shutdown stalled; aborting client connections")
            broker.abort_client_connections()
        await shutdown
        # Let transports closed during shutdown run their connection_lost
        # callbacks (which close the sockets) before asyncio.run closes the
        # loop; otherwise they would be reported as unclosed.
        for _ in range(3):
            await asyncio.sleep(0)
