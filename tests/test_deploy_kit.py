"""The deployment kit (config/deploy/, docs/deploy.md) is exercised, not just written:

* the systemd units pass `systemd-analyze verify` (systemd does not run here, so they are
  verified, not started);
* the nginx site passes `nginx -t`, and a real nginx started from it with a self-signed
  certificate serves two single-worker gunicorn web processes (roadwatch.web.wsgi) with
  sticky sessions: /healthz, a staff login whose cookie comes back `Secure` (so the
  X-Forwarded-Proto header reaches ProxyFix), a Socket.IO connection to /live, static
  files, and MQTT over WebSocket at /mqtt to the production Mosquitto;
* the production Mosquitto configuration starts and takes a TLS client (certificate
  checked), and keeps the broker settings of config/deploy/mosquitto/roadwatch.conf;
* `logrotate -d` accepts the rotation file and a forced rotation rotates;
* the example environment file loads as settings;
* the offline bundle script's plan (`--dry-run`).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.conftest import REQUIRE_SERVICES, need_service
from tests.support.mosquitto import MOSQUITTO_BIN, PROJECT_CONF, free_port, parse_conf
from tests.support.nginx import nginx_conf as _nginx_conf
from tests.support.nginx import self_signed_cert
from tests.support.nginx import site_conf as _site

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "config" / "deploy"
UNITS = DEPLOY / "systemd"
SITE = DEPLOY / "nginx" / "roadwatch.conf"
MOSQUITTO_PROD = DEPLOY / "mosquitto" / "roadwatch-production.conf"
VENV_BIN = Path(sys.executable).parent


def need_tool(name: str, package: str) -> str:
    found = shutil.which(name) or (
        f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None
    )
    if found is None:
        message = f"{name} is not installed (Debian package {package}; test.sh installs it as root)"
        if REQUIRE_SERVICES:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost / 127.0.0.1 (certificate, key)."""
    openssl = need_tool("openssl", "openssl")
    return self_signed_cert(openssl, tmp_path_factory.mktemp("tls"))


# -- systemd ---------------------------------------------------------------------------------
def test_systemd_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = need_tool("systemd-analyze", "systemd")
    for unit in UNITS.iterdir():
        # The venv path of docs/deploy.md does not exist here: point at this test's venv,
        # which has the same programs (roadwatch, gunicorn); verify checks they exist.
        text = unit.read_text(encoding="utf-8").replace("/opt/roadwatch/venv/bin/", f"{VENV_BIN}/")
        (tmp_path / unit.name).write_text(text, encoding="utf-8")
    names = [
        "roadwatch-web@8001.service",
        "roadwatch-worker@1.service",
        "roadwatch-jobs.service",
        "roadwatch-backup.service",
        "roadwatch-backup.timer",
        "roadwatch.target",
    ]
    assert sorted({re.sub(r"@[^.]+", "@", n) for n in names}) == sorted(
        p.name for p in UNITS.iterdir()
    ), "a unit file is not verified here"
    done = subprocess.run(
        [analyze, "verify", *(f"./{n}" for n in names)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "notice"},
    )
    # verify exits 0 even for unknown keys or bad values ("…, ignoring."): any line about
    # one of our files is a mistake.
    ours = [line for line in (done.stdout + done.stderr).splitlines() if str(tmp_path) in line]
    assert done.returncode == 0 and not ours, done.stdout + done.stderr
    for name in ("roadwatch-web@.service", "roadwatch-worker@.service", "roadwatch-jobs.service"):
        text = (UNITS / name).read_text(encoding="utf-8")
        assert (
            "KillSignal=SIGTERM" in text and "EnvironmentFile=/etc/roadwatch/roadwatch.env" in text
        )
    web = (UNITS / "roadwatch-web@.service").read_text(encoding="utf-8")
    assert "-b 127.0.0.1:%i roadwatch.web.wsgi:app" in web


# -- the environment file --------------------------------------------------------------------
def _env_lines(text: str) -> dict[str, str]:
    values = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def test_example_environment_file_loads_as_settings() -> None:
    from roadwatch.settings import load_settings

    text = (DEPLOY / "roadwatch.env.example").read_text(encoding="utf-8")
    env = _env_lines(text)
    env["ROADWATCH_NETWORK"] = "demo"  # the example names the city's own file
    settings = load_settings(env=env)
    assert settings.database_url.startswith("postgresql://")
    assert settings.embedded_broker == "never" and settings.trusted_proxies == 1
    assert settings.socketio_queue.startswith("redis://") and settings.secret_key
    # Every ROADWATCH_ name it mentions, set or commented out, is a setting or one of the
    # web role's own (config/deploy/gunicorn.conf.py).
    fields = {f"ROADWATCH_{k.upper()}" for k in type(settings).model_fields}
    extra = {"ROADWATCH_WEB_THREADS", "ROADWATCH_WEB_ACCESS_LOG"}
    mentioned = set(re.findall(r"^#? ?(ROADWATCH_[A-Z0-9_]+)=", text, flags=re.M))
    assert mentioned and mentioned <= fields | extra, mentioned - fields - extra


# -- nginx -----------------------------------------------------------------------------------
def test_nginx_site_passes_nginx_t(tmp_path: Path, tls_cert: tuple[Path, Path]) -> None:
    nginx = need_tool("nginx", "nginx")
    site = _site(*tls_cert, tmp_path, free_port(), free_port(), [free_port(), free_port()], 9001)
    conf = _nginx_conf(tmp_path, site)
    done = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(conf), "-e", "stderr"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "syntax is ok" in done.stderr and "test is successful" in done.stderr


def test_nginx_body_limit_matches_the_photo_limit(tmp_path: Path) -> None:
    from roadwatch.settings import load_settings

    size = re.search(r"^\s*client_max_body_size (\d+)m;", SITE.read_text(), flags=re.M)
    assert size, "client_max_body_size missing"
    limit = int(size[1]) * 1024 * 1024
    s = load_settings(env={})
    app_limit = max(s.max_payload_bytes * 2, s.max_photo_bytes + 65536)  # web/__init__.py
    # Above the app's limit (so the app answers "too large" in plain words), not far above.
    assert app_limit < limit <= app_limit + 2 * 1024 * 1024


# -- Mosquitto -------------------------------------------------------------------------------
LISTENER_OPTIONS = {
    "listener", "protocol", "certfile", "keyfile", "tls_version", "pid_file",
    "persistence_location", "password_file", "acl_file", "log_dest",
}  # fmt: skip


def test_production_mosquitto_keeps_the_project_broker_settings() -> None:
    dev = parse_conf(PROJECT_CONF.read_text(encoding="utf-8"))
    prod = parse_conf(MOSQUITTO_PROD.read_text(encoding="utf-8"))
    same = {k: v for k, v in dev.items() if k not in LISTENER_OPTIONS}
    assert {k: prod.get(k) for k in same} == same
    assert prod["allow_anonymous"] == ["false"]
    listeners = prod["listener"]
    assert "1883 127.0.0.1" in listeners and "8883" in listeners and "9001 127.0.0.1" in listeners
    assert "include_dir" not in prod  # nothing in conf.d can open another listener


# Debian 12's /etc/mosquitto/mosquitto.conf as the package installs it (mosquitto 2.0.11).
DEBIAN_MOSQUITTO_CONF = """\
# Place your local configuration in /etc/mosquitto/conf.d/
pid_file /run/mosquitto/mosquitto.pid

persistence true
persistence_location /var/lib/mosquitto/

log_dest file /var/log/mosquitto/mosquitto.log

include_dir /etc/mosquitto/conf.d
"""


def test_project_mosquitto_conf_is_a_debian_conf_d_drop_in(tmp_path: Path) -> None:
    """README, "A real broker and PostgreSQL": `cp config/deploy/mosquitto/roadwatch.conf
    /etc/mosquitto/conf.d/` (paths, users and ACL edited). Debian's mosquitto.conf already
    sets persistence_location and `log_dest file`, and Mosquitto refuses a second one of
    either: the broker did not start ("Duplicate persistence_location value")."""
    if not MOSQUITTO_BIN.exists():
        need_tool("mosquitto", "mosquitto")
    import getpass

    from tests.support.mosquitto import write_auth_files

    auth = dict(
        line.split(" ", 1)
        for line in write_auth_files(tmp_path, {"roadwatch-platform": "p"}).splitlines()
    )
    (tmp_path / "data").mkdir()
    (tmp_path / "conf.d").mkdir()
    ports = {"1883": free_port(), "9001": free_port()}
    main = DEBIAN_MOSQUITTO_CONF
    for old, new in (
        ("/run/mosquitto/", f"{tmp_path}/"),
        ("/var/lib/mosquitto/", f"{tmp_path}/data/"),
        ("/var/log/mosquitto/", f"{tmp_path}/"),
        ("/etc/mosquitto/conf.d", f"{tmp_path}/conf.d"),
    ):
        main = main.replace(old, new)
    (tmp_path / "mosquitto.conf").write_text(f"user {getpass.getuser()}\n{main}", "utf-8")
    drop_in = []
    for raw in PROJECT_CONF.read_text(encoding="utf-8").splitlines():
        name, _, value = raw.partition(" ")
        if name == "listener":  # the edits the README asks for: ports, users, ACL
            raw = f"listener {ports[value.split()[0]]} 127.0.0.1"
        elif name in ("password_file", "acl_file"):
            raw = f"{name} {auth[name]}"
        drop_in.append(raw)
    (tmp_path / "conf.d" / "roadwatch.conf").write_text("\n".join(drop_in) + "\n", "utf-8")
    log = tmp_path / "mosquitto.out"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(MOSQUITTO_BIN), "-c", str(tmp_path / "mosquitto.conf")],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_port(ports["1883"], proc, log)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


@dataclass
class Broker:
    proc: subprocess.Popen[bytes]
    mqtt_port: int
    tls_port: int
    ws_port: int
    log: Path
    passwords: dict[str, str]


@pytest.fixture(scope="module")
def prod_broker(
    tmp_path_factory: pytest.TempPathFactory, tls_cert: tuple[Path, Path]
) -> Iterator[Broker]:
    """Mosquitto started from the production file: only ports, paths, certificate and the
    user it runs as are replaced."""
    if not MOSQUITTO_BIN.exists():
        need_tool("mosquitto", "mosquitto")
    from tests.support.mosquitto import write_auth_files

    tmp = tmp_path_factory.mktemp("mosq-prod")
    cert, key = tls_cert
    passwords = {"roadwatch-platform": "platform-secret", "zz-jinshui-0421": "chief-secret"}
    auth = dict(line.split(" ", 1) for line in write_auth_files(tmp, passwords).splitlines())
    ports = {"1883": free_port(), "8883": free_port(), "9001": free_port()}
    lines = []
    for raw in MOSQUITTO_PROD.read_text(encoding="utf-8").splitlines():
        name, _, value = raw.strip().partition(" ")
        if raw.startswith("#") or not raw.strip():
            continue
        if name == "listener":
            # The TLS listener binds every interface in production; here loopback only.
            lines.append(f"listener {ports[value.split()[0]]} 127.0.0.1")
        elif name in ("certfile", "keyfile"):
            lines.append(f"{name} {cert if name == 'certfile' else key}")
        elif name == "persistence_location":
            lines.append(f"persistence_location {tmp}/")
        elif name in ("password_file", "acl_file"):
            lines.append(f"{name} {auth[name]}")
        elif name == "log_dest":
            lines.append("log_dest stdout")
        elif name == "pid_file":
            continue
        else:
            lines.append(raw.strip())
    import getpass

    lines.insert(0, f"user {getpass.getuser()}")
    conf = tmp / "mosquitto.conf"
    conf.write_text("\n".join(lines) + "\n", encoding="utf-8")
    log = tmp / "mosquitto.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(MOSQUITTO_BIN), "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT
        )
    broker = Broker(proc, ports["1883"], ports["8883"], ports["9001"], log, passwords)
    try:
        _wait_port(ports["8883"], proc, log)
        _wait_port(ports["9001"], proc, log)
        yield broker
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 20) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}:\n{log.read_text()[-3000:]}")


def _mqtt_client(user: str, password: str, **kw: Any) -> tuple[mqtt.Client, list[Any]]:
    import queue

    got: queue.Queue[Any] = queue.Queue()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}", **kw)
    client.username_pw_set(user, password)
    client.on_connect = lambda _c, _u, _f, rc, _p=None: got.put(("connect", rc))
    client.on_message = lambda _c, _u, msg: got.put(("message", msg.topic, msg.payload))
    return client, got  # type: ignore[return-value]


def _connected(got: Any, timeout: float = 10) -> None:
    kind, rc = got.get(timeout=timeout)
    assert kind == "connect" and not rc.is_failure, rc


def test_production_mosquitto_takes_tls_clients(
    prod_broker: Broker, tls_cert: tuple[Path, Path]
) -> None:
    cert, _key = tls_cert
    pw = prod_broker.passwords
    # The platform on the loopback listener, plain MQTT; a chief over TLS, certificate
    # and host name checked against the test CA.
    platform, p_got = _mqtt_client("roadwatch-platform", pw["roadwatch-platform"])
    platform.connect("127.0.0.1", prod_broker.mqtt_port)
    platform.loop_start()
    chief, c_got = _mqtt_client("zz-jinshui-0421", pw["zz-jinshui-0421"])
    chief.tls_set(ca_certs=str(cert))
    chief.connect("127.0.0.1", prod_broker.tls_port)
    chief.loop_start()
    try:
        _connected(p_got)
        platform.subscribe("roadwatch/v1/reports/+", qos=1)
        time.sleep(0.3)
        _connected(c_got)
        chief.publish("roadwatch/v1/reports/zz-jinshui-0421", b"{}", qos=1).wait_for_publish(5)
        assert p_got.get(timeout=5) == ("message", "roadwatch/v1/reports/zz-jinshui-0421", b"{}")
    finally:
        for c in (platform, chief):
            c.disconnect()
            c.loop_stop()
    # A client that does not trust the certificate refuses the broker (the system CAs do
    # not include the self-signed one); a plain-MQTT CONNECT on the TLS port gets no
    # CONNACK (the broker expects a TLS handshake and closes).
    import socket

    with (
        socket.create_connection(("127.0.0.1", prod_broker.tls_port), 5) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        ssl.create_default_context().wrap_socket(raw, server_hostname="localhost")
    connect = bytes.fromhex("101000044d5154540402003c0004") + b"test"  # MQTT 3.1.1 CONNECT
    with socket.create_connection(("127.0.0.1", prod_broker.tls_port), 5) as raw:
        raw.sendall(connect)
        raw.settimeout(5)
        try:
            answer = raw.recv(4)
        except (ConnectionResetError, TimeoutError):
            answer = b""
        assert not answer.startswith(b"\x20"), answer  # 0x20 = CONNACK


# -- logrotate -------------------------------------------------------------------------------
def test_logrotate_accepts_and_rotates(tmp_path: Path) -> None:
    logrotate = need_tool("logrotate", "logrotate")
    import getpass
    import grp

    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "web-access.log").write_text("GET /healthz 200\n", encoding="utf-8")
    group = grp.getgrgid(os.getgid()).gr_name
    text = (DEPLOY / "logrotate" / "roadwatch").read_text(encoding="utf-8")
    text = text.replace("/var/log/roadwatch", str(logs))
    text = text.replace("roadwatch adm", f"{getpass.getuser()} {group}")
    conf = tmp_path / "roadwatch"
    conf.write_text(text, encoding="utf-8")
    state = tmp_path / "state"
    dry = subprocess.run(
        [logrotate, "-d", "-s", str(state), str(conf)], capture_output=True, text=True
    )
    assert dry.returncode == 0 and "error" not in dry.stderr.lower(), dry.stderr
    forced = subprocess.run(
        [logrotate, "-f", "-s", str(state), str(conf)], capture_output=True, text=True
    )
    assert forced.returncode == 0, forced.stderr
    rotated = [p.name for p in logs.iterdir() if p.name.startswith("web-access.log-")]
    assert len(rotated) == 1, sorted(p.name for p in logs.iterdir())
    assert (logs / "web-access.log").exists()  # `create` made a fresh one


# -- the offline bundle ------------------------------------------------------------------------
def test_make_bundle_dry_run_lists_what_it_would_do(tmp_path: Path) -> None:
    script = DEPLOY / "make-bundle.sh"
    done = subprocess.run(
        ["bash", str(script), "--dry-run", "--out", str(tmp_path / "b.tar.gz")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHON": sys.executable},
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "pip wheel" in out and "--no-index" in out and "b.tar.gz" in out
    assert not (tmp_path / "b.tar.gz").exists()


# -- the web role under gunicorn, behind nginx ---------------------------------------------------
def _wait_http(
    url: str, procs: list[subprocess.Popen[bytes]], logs: list[Path], timeout: float = 90
) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc, log in zip(procs, logs, strict=True):
            if proc.poll() is not None:
                raise AssertionError(f"exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if requests.get(url, timeout=2, allow_redirects=False).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise AssertionError(
        f"{url} did not answer:\n" + "\n".join(p.read_text()[-3000:] for p in logs)
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.integration
@pytest.mark.slow
def test_web_role_under_gunicorn_behind_nginx(
    tmp_path: Path,
    tls_cert: tuple[Path, Path],
    prod_broker: Broker,
    request: pytest.FixtureRequest,
) -> None:
    """Two single-worker gunicorns (roadwatch.web.wsgi:app) behind the nginx site: health,
    a login whose cookie is Secure (X-Forwarded-Proto reached ProxyFix), a Socket.IO
    session through the sticky upstream, static files from disk, and MQTT over WebSocket
    (TLS at nginx) to the production Mosquitto at /mqtt."""
    import requests
    import socketio

    nginx = need_tool("nginx", "nginx")
    need_service("Redis", "127.0.0.1", 6379)
    database_url = request.getfixturevalue("fresh_pg")
    from roadwatch.accounts.users import add_user
    from roadwatch.store import db

    engine = db.make_engine(database_url)
    db.upgrade(engine)  # `roadwatch db upgrade`: the web role does not migrate
    with db.make_sessionmaker(engine).begin() as session:
        add_user(session, "deploy-admin", "correct horse battery", "admin", None)
    engine.dispose()

    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ROADWATCH_")},
        "PYTHONPATH": str(ROOT),
        "ROADWATCH_DATABASE_URL": database_url,
        "ROADWATCH_SOCKETIO_QUEUE": "redis://127.0.0.1:6379/0",
        "ROADWATCH_TRUSTED_PROXIES": "1",
        "ROADWATCH_SECRET_KEY": "deploy-kit-test-" + uuid.uuid4().hex,
        "ROADWATCH_PHOTO_DIR": str(tmp_path / "photos"),
        "ROADWATCH_EMBEDDED_BROKER": "never",
        "ROADWATCH_RANKING_SCHEDULE_S": "0",
        "ROADWATCH_WEB_THREADS": "20",
        "HOME": str(tmp_path),
    }
    web_ports = [free_port(), free_port()]
    procs, logs = [], []
    try:
        for port in web_ports:
            log = tmp_path / f"gunicorn-{port}.log"
            with log.open("wb") as out:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "gunicorn", "-c", str(DEPLOY / "gunicorn.conf.py")]
                        + ["-b", f"127.0.0.1:{port}", "roadwatch.web.wsgi:app"],
                        env=env,
                        cwd=tmp_path,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )
            logs.append(log)
        for port in web_ports:
            _wait_http(f"http://127.0.0.1:{port}/healthz", procs, logs)

        https, http = free_port(), free_port()
        site = _site(*tls_cert, tmp_path, https, http, web_ports, prod_broker.ws_port)
        conf = _nginx_conf(tmp_path, site)
        nginx_log = tmp_path / "nginx.out"
        with nginx_log.open("wb") as out:
            procs.append(
                subprocess.Popen(
                    [nginx, "-p", str(tmp_path), "-c", str(conf), "-e", "stderr"]
                    + ["-g", "daemon off;"],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
        logs.append(nginx_log)
        base = f"https://127.0.0.1:{https}"
        ca = str(tls_cert[0])
        _wait_http(f"http://127.0.0.1:{http}/", procs, logs)

        # Plain http is sent to https.
        r = requests.get(f"http://127.0.0.1:{http}/healthz", allow_redirects=False, timeout=5)
        assert r.status_code == 301 and r.headers["Location"].startswith("https://")

        # Health through TLS (certificate checked against the test CA), web role: no broker.
        s = requests.Session()
        s.trust_env = False  # else REQUESTS_CA_BUNDLE, when set, would replace `verify`
        s.verify = ca
        r = s.get(f"{base}/healthz", timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["checks"]["broker"]["role"] == "web"
        assert "Strict-Transport-Security" in r.headers

        # Static files come from disk (nginx), with the type by extension.
        r = s.get(f"{base}/static/live.css", timeout=10)
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/css")
        assert r.content == (ROOT / "roadwatch/web/static/live.css").read_bytes()
        # ...with the security headers the app would have set: nothing opened from
        # /static as a document may run a script or be framed.
        assert "default-src 'none'" in r.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["X-Frame-Options"] == "DENY"

        # A staff login: the session cookie comes back Secure, which the app does only when
        # it believes the request came over https, i.e. nginx's X-Forwarded-Proto reached
        # ProxyFix (ROADWATCH_TRUSTED_PROXIES=1).
        page = s.get(f"{base}/login", timeout=10).text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert csrf
        r = s.post(
            f"{base}/login",
            data={"username": "deploy-admin", "password": "correct horse battery", "csrf": csrf[1]},
            allow_redirects=False,
            timeout=10,
        )
        assert r.status_code == 302, r.text
        cookie = next(c for c in s.cookies if c.name == "session")
        assert cookie.secure, "the session cookie is not Secure behind TLS"

        # Socket.IO through nginx: long-polling handshake, then the WebSocket upgrade, all on
        # one web process (ip_hash), with the staff cookie.
        client = socketio.Client(http_session=s)
        client.connect(
            base,
            namespaces=["/live"],
            headers={"Cookie": f"session={cookie.value}"},
            wait_timeout=10,
        )
        try:
            deadline = time.monotonic() + 10
            while client.transport() != "websocket" and time.monotonic() < deadline:
                time.sleep(0.1)
            assert client.transport() == "websocket"
            assert client.get_sid("/live")
        finally:
            client.disconnect()
            client.shutdown()

        # MQTT over WebSocket at /mqtt: TLS at nginx, the chief's login checked by Mosquitto.
        chief, got = _mqtt_client(
            "zz-jinshui-0421", prod_broker.passwords["zz-jinshui-0421"], transport="websockets"
        )
        chief.ws_set_options(path="/mqtt")
        chief.tls_set(ca_certs=ca)
        chief.connect("127.0.0.1", https)
        chief.loop_start()
        try:
            _connected(got)
        finally:
            chief.disconnect()
            chief.loop_stop()
    finally:
        for proc in reversed(procs):
            _stop(proc)
    # SIGTERM: each gunicorn stopped cleanly (its worker_exit hook released the runtime).
    for proc, log in zip(procs[:2], logs[:2], strict=True):
        assert proc.returncode == 0, log.read_text()[-3000:]
