"""Security headers on every response: pages, the API, the phone app, rankings, Open311.

The Content-Security-Policy allows no inline script: every script is a file of this site
(data for a page goes in a `<script type="application/json">` block, which is never run).
MapLibre starts its worker from a `blob:` URL (worker-src/child-src blob:). Inline styles
stay allowed (`style-src 'unsafe-inline'`): the ranking pages carry their CSS and SVG
inline so that their PDF is the same document, and MapLibre sets element styles. The phone
app (`/m/`) may also connect to the broker's WebSocket, wherever the settings put it.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from flask import Flask, request
from werkzeug.wrappers import Response

from ..runtime import Runtime

_HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.\-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])$")


def _request_hostname() -> str | None:
    """The host name the page was loaded from, as the browser's `location.hostname` says
    it (an IPv6 address in brackets), or None when it is not a plain host name."""
    host = request.host
    if host.startswith("["):
        name = host[: host.find("]") + 1]
    else:
        name = host.rsplit(":", 1)[0] if ":" in host else host
    return name if _HOST.match(name) else None


def phone_connect_sources(runtime: Runtime) -> list[str]:
    """The broker WebSocket origin the phone app connects to, if any (for connect-src)."""
    url = runtime.phone_ws_url
    if not url:
        return []
    if "{host}" in url:
        host = _request_hostname()
        if host is None:
            return []
        url = url.replace("{host}", host)
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.netloc or not _safe_source(parts.netloc):
        return []
    return [f"{parts.scheme}://{parts.netloc}"]


def _safe_source(netloc: str) -> bool:
    # nothing that could end a CSP source or directive (a space, ';', ',', quotes)
    return re.fullmatch(r"[A-Za-z0-9.\-:\[\]@]+", netloc) is not None


def content_security_policy(connect_extra: list[str] | None = None) -> str:
    connect = " ".join(["'self'", *(connect_extra or [])])
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data: blob:",
            "font-src 'self' data:",
            f"connect-src {connect}",
            "worker-src 'self' blob:",
            "child-src 'self' blob:",
            "manifest-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


def register(app: Flask, runtime: Runtime) -> None:
    plain = content_security_policy()

    @app.after_request
    def _security_headers(response: Response) -> Response:
        h = response.headers
        if request.path == "/m" or request.path.startswith("/m/"):
            h["Content-Security-Policy"] = content_security_policy(phone_connect_sources(runtime))
        else:
            h["Content-Security-Policy"] = plain
        h["X-Content-Type-Options"] = "nosniff"
        h["X-Frame-Options"] = "DENY"
        h["Referrer-Policy"] = "same-origin"
        h["Cross-Origin-Opener-Policy"] = "same-origin"
        if request.is_secure:
            h["Strict-Transport-Security"] = "max-age=31536000"
        return response
