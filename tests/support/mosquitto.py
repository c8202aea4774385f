"""A private Mosquitto process for tests that must lose nothing.

The system Mosquitto on 127.0.0.1:1883 runs Debian's defaults (which drop
QoS 1 messages for a slow subscriber) and is shared, so tests that check
delivery guarantees start their own broker instead::

    with run_mosquitto(tmp_path) as broker:
        client.connect(broker.host, broker.port)
        ...
        broker.restart()   # clean stop (persistence saved) and start again

The configuration is the project's own ``config/deploy/mosquitto/roadwatch.conf``
with only the deployment-specific lines replaced (listeners, persistence
directory, authentication, logging, user), so a test exercises the queue,
in-flight and persistence settings that production uses.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import queue
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from tests.support.ports import free_port

__all__ = [
    "MOSQUITTO_BIN",
    "PROJECT_CONF",
    "MosquittoProcess",
    "MqttTestClient",
    "Received",
    "free_port",
    "parse_conf",
    "render_conf",
    "run_mosquitto",
    "write_auth_files",
]

PROJECT_CONF = (
    Path(__file__).resolve().parents[2] / "config" / "deploy" / "mosquitto" / "roadwatch.conf"
)
MOSQUITTO_BIN = Path("/usr/sbin/mosquitto")

# Options that describe one deployment rather than the broker's behaviour;
# render_conf drops them and writes test values instead. Listener-scoped
# options go too, because the test decides which listeners exist.
_REPLACED_OPTIONS = frozenset(
    {
        # listeners and their per-listener settings
        "listener",
        "port",
        "bind_address",
        "bind_interface",
        "socket_domain",
        "protocol",
        "mount_point",
        "http_dir",
        "max_connections",
        "websockets_headers_size",
        "websockets_log_level",
        "certfile",
        "keyfile",
        "cafile",
        "capath",
        "ciphers",
        "ciphers_tls1.3",
        "crlfile",
        "dhparamfile",
        "require_certificate",
        "tls_version",
        "tls_engine",
        "tls_engine_kpass_sha1",
        "tls_keyform",
        "use_identity_as_username",
        "use_subject_as_username",
        "psk_hint",
        "psk_file",
        # where state and logs go, and who may connect
        "persistence_location",
        "persistence_file",
        "password_file",
        "acl_file",
        "allow_anonymous",
        "log_dest",
        "pid_file",
        "user",
        "include_dir",
        "plugin",
        "auth_plugin",
    }
)

# Settings the delivery tests rely on; render_conf refuses a project config
# that lost one of them rather than let the tests silently test less.
_REQUIRED_OPTIONS = (
    "per_listener_settings",
    "persistence",
    "max_queued_messages",
    "max_queued_bytes",
    "max_inflight_messages",
    "persistent_client_expiration",
    "max_packet_size",
)

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0
_LOG_TAIL_CHARS = 4000


def _is_listening(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def parse_conf(text: str) -> dict[str, list[str]]:
    """Map each option of a mosquitto.conf text to the values it was given."""
    options: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        options.setdefault(key, []).append(value.strip())
    return options


def render_conf(
    project_conf: str,
    *,
    data_dir: Path,
    port: int,
    ws_port: int | None = None,
    allow_anonymous: bool = True,
    extra_conf: str = "",
) -> str:
    """Turn the production config into one for a private test broker."""
    options = parse_conf(project_conf)
    missing = [name for name in _REQUIRED_OPTIONS if name not in options]
    if missing:
        raise ValueError(f"{PROJECT_CONF} lacks required option(s): {', '.join(missing)}")

    kept: list[str] = []
    for raw in project_conf.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.partition(" ")[0] in _REPLACED_OPTIONS:
            continue
        kept.append(line)

    overrides = [
        # Started as root, mosquitto would switch to the `mosquitto` user and
        # then be unable to write the persistence file into pytest's 0700
        # tmp_path; naming the current user keeps it as is (ignored when not
        # root).
        f"user {getpass.getuser()}",
        # mosquitto.conf(5) asks for a trailing slash here.
        f"persistence_location {data_dir}{os.sep}",
        "log_dest stdout",
        f"allow_anonymous {'true' if allow_anonymous else 'false'}",
        f"listener {port} 127.0.0.1",
        "protocol mqtt",
    ]
    if ws_port is not None:
        # Mosquitto 2.0.11 binds this on all interfaces whatever the address
        # says; acceptable for a short-lived test broker on a random port.
        overrides += [f"listener {ws_port} 127.0.0.1", "protocol websockets"]

    return "\n".join(
        [
            f"# Rendered by tests/support/mosquitto.py from {PROJECT_CONF}",
            *kept,
            "# --- test overrides ---",
            *overrides,
            "# --- extra_conf ---",
            extra_conf.strip(),
            "",
        ]
    )


class MosquittoProcess:
    """One private Mosquitto; keeps its port and data directory across restarts."""

    def __init__(
        self,
        tmp_path: Path,
        *,
        port: int | None = None,
        ws_port: int | None = None,
        allow_anonymous: bool = True,
        extra_conf: str = "",
        binary: Path = MOSQUITTO_BIN,
    ) -> None:
        if not binary.exists():
            found = shutil.which("mosquitto")
            if found is None:
                raise FileNotFoundError(f"{binary} not found and no mosquitto on PATH")
            binary = Path(found)
        self.binary = binary
        self.host = "127.0.0.1"
        self.port = port if port is not None else free_port()
        self.ws_port = ws_port
        self.dir = tmp_path / "mosquitto"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf_path = self.dir / "mosquitto.conf"
        self.log_path = self.dir / "mosquitto.log"
        self.conf_path.write_text(
            render_conf(
                PROJECT_CONF.read_text(encoding="utf-8"),
                data_dir=self.dir,
                port=self.port,
                ws_port=ws_port,
                allow_anonymous=allow_anonymous,
                extra_conf=extra_conf,
            ),
            encoding="utf-8",
        )
        self.settings = parse_conf(self.conf_path.read_text(encoding="utf-8"))
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def log(self) -> str:
        """Everything this broker has logged so far (all runs)."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def _log_tail(self) -> str:
        text = self.log()
        if len(text) > _LOG_TAIL_CHARS:
            text = "...\n" + text[-_LOG_TAIL_CHARS:]
        return f"\n--- {self.log_path} ---\n{text}"

    def start(self, timeout: float = _START_TIMEOUT) -> None:
        if self.running:
            raise RuntimeError(f"mosquitto is already running on {self.url}")
        # A free_port() choice can be taken by someone else before mosquitto
        # binds it; then the probe below would see *their* listener. Refuse
        # early instead of testing against a stranger.
        if _is_listening(self.host, self.port):
            raise RuntimeError(f"port {self.port} is already in use; cannot start mosquitto")
        # Appending keeps the log of earlier runs, which is what one wants to
        # read when a restart test fails.
        with self.log_path.open("ab") as log_file:
            self._proc = subprocess.Popen(
                [str(self.binary), "-c", str(self.conf_path)],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        ports = [self.port] + ([self.ws_port] if self.ws_port is not None else [])
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise RuntimeError(f"mosquitto exited with code {code} at start{self._log_tail()}")
            if all(_is_listening(self.host, p) for p in ports):
                return
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"mosquitto did not listen on {self.url} within {timeout:g} s{self._log_tail()}"
                )
            time.sleep(0.02)

    def stop(self, timeout: float = _STOP_TIMEOUT) -> None:
        """Stop cleanly (SIGTERM: mosquitto saves its database and exits).

        Raises RuntimeError, with the log, if mosquitto had died on its own or
        exits with an error. Does nothing if it is not running.
        """
        proc, self._proc = self._proc, None
        if proc is None:
            return
        died_before = proc.poll()
        if died_before is not None:
            raise RuntimeError(
                f"mosquitto had already exited (code {died_before}) before stop(){self._log_tail()}"
            )
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise RuntimeError(
                f"mosquitto did not stop within {timeout:g} s and was killed{self._log_tail()}"
            ) from None
        if code != 0:
            raise RuntimeError(f"mosquitto exited with code {code} on stop{self._log_tail()}")

    def kill(self) -> None:
        """Simulate a crash (SIGKILL): nothing is saved beyond the last autosave."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()

    def restart(self, timeout: float = _START_TIMEOUT) -> None:
        """Clean stop and start again on the same port with the same data."""
        self.stop()
        self.start(timeout)

    def __enter__(self) -> MosquittoProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.stop()
        else:
            # Do not hide the test's own failure behind a stop error; its log
            # is still on disk next to the config.
            with contextlib.suppress(RuntimeError):
                self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"MosquittoProcess({self.url!r}, {state}, dir={str(self.dir)!r})"


def write_auth_files(
    directory: Path,
    passwords: dict[str, str],
    *,
    topic_root: str = "roadwatch/v1",
    platform_user: str = "roadwatch-platform",
) -> str:
    """The project's ACL (acl.template, as `chiefs provision` renders it) and a password
    file for `passwords` (user -> password); returns the extra_conf lines naming both."""
    from roadwatch.accounts import chiefs as ca

    directory.mkdir(parents=True, exist_ok=True)
    passwd, acl = directory / "passwd", directory / "acl"
    passwd.write_text(
        "".join(f"{user}:{ca.hash_password(pw, 1000)}\n" for user, pw in passwords.items()),
        encoding="utf-8",
    )
    acl.write_text(ca.render_acl(topic_root, platform_user), encoding="utf-8")
    return f"password_file {passwd}\nacl_file {acl}"


@contextlib.contextmanager
def run_mosquitto(
    tmp_path: Path,
    *,
    port: int | None = None,
    ws_port: int | None = None,
    allow_anonymous: bool = True,
    extra_conf: str = "",
) -> Iterator[MosquittoProcess]:
    """Start a private Mosquitto for the duration of a ``with`` block."""
    with MosquittoProcess(
        tmp_path,
        port=port,
        ws_port=ws_port,
        allow_anonymous=allow_anonymous,
        extra_conf=extra_conf,
    ) as broker:
        yield broker


# ---------------------------------------------------------------------------
# paho helpers shared by the broker tests (Mosquitto and the embedded amqtt)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """One PUBLISH as the subscriber saw it."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    dup: bool


class MqttTestClient:
    """A paho 2.2 client (callback API v2, MQTT 3.1.1) with blocking helpers.

    Callbacks run on paho's network thread; received messages go to a queue
    so tests can wait for them with a timeout instead of sleeping.
    """

    def __init__(
        self,
        host: str,
        port: int,
        client_id: str = "",
        *,
        clean_session: bool = True,
        manual_ack: bool = False,
        transport: Literal["tcp", "websockets"] = "tcp",
    ) -> None:
        self.host = host
        self.port = port
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean_session,
            protocol=MQTTProtocolVersion.MQTTv311,
            manual_ack=manual_ack,
            transport=transport,
        )
        self.messages: queue.Queue[Received] = queue.Queue()
        self.session_present: bool | None = None
        self._connected = threading.Event()
        self._connect_error: str | None = None
        self._subacks: dict[int, list[ReasonCode]] = {}
        self._suback_cond = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    # paho callbacks (network thread)
    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            self._connect_error = str(reason_code)
        else:
            self.session_present = flags.session_present
        self._connected.set()

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        with self._suback_cond:
            self._subacks[mid] = reason_codes
            self._suback_cond.notify_all()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.messages.put(
            Received(
                message.topic, bytes(message.payload), message.mid, message.qos, bool(message.dup)
            )
        )

    # blocking API (test thread)
    def connect(self, timeout: float = 5.0) -> MqttTestClient:
        self._connected.clear()
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        if not self._connected.wait(timeout):
            self.client.loop_stop()
            raise TimeoutError(f"no CONNACK from {self.host}:{self.port} within {timeout:g} s")
        if self._connect_error is not None:
            self.client.loop_stop()
            raise ConnectionRefusedError(f"broker refused the connection: {self._connect_error}")
        return self

    def subscribe(self, topic: str, qos: int = 1, timeout: float = 5.0) -> None:
        rc, mid = self.client.subscribe(topic, qos)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            raise RuntimeError(f"subscribe({topic!r}) failed: {rc}")
        with self._suback_cond:
            if not self._suback_cond.wait_for(lambda: mid in self._subacks, timeout):
                raise TimeoutError(f"no SUBACK for {topic!r} within {timeout:g} s")
            codes = self._subacks.pop(mid)
        if any(code.is_failure for code in codes):
            raise RuntimeError(f"subscription to {topic!r} refused: {codes}")

    def publish(self, topic: str, payload: bytes, qos: int = 1, timeout: float = 5.0) -> int:
        """Publish and wait for the broker's PUBACK (QoS 1)."""
        info = self.client.publish(topic, payload, qos=qos)
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise TimeoutError(f"no PUBACK for {topic!r} within {timeout:g} s")
        return info.mid

    def get(self, timeout: float = 5.0) -> Received:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no message arrived within {timeout:g} s") from None

    def drain(self, quiet: float = 0.5) -> list[Received]:
        """Collect messages until none arrives for ``quiet`` seconds."""
        got: list[Received] = []
        while True:
            try:
                got.append(self.messages.get(timeout=quiet))
            except queue.Empty:
                return got

    def ack(self, message: Received) -> None:
        rc = self.client.ack(message.mid, message.qos)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise RuntimeError(f"ack({message.mid}) failed: {rc}")

    def disconnect(self) -> None:
        """Clean MQTT DISCONNECT (a persistent session survives it)."""
        self.client.disconnect()
        self.client.loop_stop()

    def crash(self) -> None:
        """Drop the TCP connection without DISCONNECT, as a killed process would."""
        self.client.loop_stop()
        sock = self.client.socket()
        if sock is not None:
            sock.close()

    def __enter__(self) -> MqttTestClient:
        return self.connect()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.client.is_connected():
            self.disconnect()
        else:
            self.client.loop_stop()
