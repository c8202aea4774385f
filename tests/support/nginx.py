"""The project's nginx site (config/deploy/nginx/roadwatch.conf) made runnable in a test:
certificate paths, ports and upstream servers replaced, and a complete nginx.conf with its own
prefix, pid, logs and temp folders, so `nginx -p DIR -c DIR/nginx.conf` runs as a non-daemon
beside everything else on the machine."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "config" / "deploy" / "nginx" / "roadwatch.conf"


def site_conf(
    cert: Path, key: Path, tmp: Path, https: int, http: int, web: list[int], ws: int
) -> str:
    text = SITE.read_text(encoding="utf-8")
    text = text.replace("/etc/ssl/roadwatch/fullchain.pem", str(cert))
    text = text.replace("/etc/ssl/roadwatch/privkey.pem", str(key))
    text = text.replace("/var/log/nginx/", f"{tmp}/")
    text = text.replace(
        "/opt/roadwatch/venv/lib/python3.11/site-packages/roadwatch/web/static/",
        f"{ROOT}/roadwatch/web/static/",
    )
    text = text.replace("listen 443 ssl", f"listen 127.0.0.1:{https} ssl")
    text = text.replace("listen 80;", f"listen 127.0.0.1:{http};")
    text = re.sub(r"\n\s*listen \[::\]:\d+[^;]*;", "", text)
    servers = "".join(f"    server 127.0.0.1:{p} max_fails=3 fail_timeout=10s;\n" for p in web)
    text = re.sub(r"(    server 127\.0\.0\.1:800\d [^\n]*\n)+", servers, text)
    text = text.replace("server 127.0.0.1:9001;", f"server 127.0.0.1:{ws};")
    return text


def nginx_conf(tmp: Path, site: str, http_extra: str = "") -> Path:
    (tmp / "site.conf").write_text(site, encoding="utf-8")
    user = "user root;\n" if os.getuid() == 0 else ""  # workers must read pytest's 0700 dirs
    conf = tmp / "nginx.conf"
    conf.write_text(
        f"""{user}worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log notice;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
{http_extra}    include {tmp}/site.conf;
}}
""",
        encoding="utf-8",
    )
    return conf


def self_signed_cert(openssl: str, folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost / 127.0.0.1 (certificate, key)."""
    cert, key = folder / "fullchain.pem", folder / "privkey.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost"]
        + ["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    return cert, key
