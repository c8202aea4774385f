"""A browser that hangs up in the middle of a static file leaves no file handle open.

Werkzeug's server (the single-process `roadwatch serve`, the test servers) closes the app's
response only after draining the socket; when that read fails on a reset connection it never
closes it, and the static file's handle leaks until garbage collection, as a ResourceWarning
(an error in this suite: it once failed CI in the phone app's budget test). The server's part is
timing-dependent, so this test plays it exactly: take part of the body, then drop the response
without calling close(), as Werkzeug does then."""

from __future__ import annotations

import gc
import io
import warnings
from collections.abc import Callable
from typing import Any

from flask import Flask

FILE = "/static/vendor/maplibre-gl-5.24.1/maplibre-gl.js"


def _environ(server: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": FILE,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "5000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_SOFTWARE": server,
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


class _StartResponse:
    def __init__(self) -> None:
        self.statuses: list[str] = []

    def __call__(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], object]:
        self.statuses.append(status)
        return lambda data: None


def test_a_response_dropped_mid_body_closes_its_file(app: Flask) -> None:
    start = _StartResponse()
    body = app.wsgi_app(_environ("Werkzeug/3.1"), start)
    first = next(iter(body))
    assert start.statuses == ["200 OK"] and first
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del body  # the server lost the connection and forgot the response, unclosed
        gc.collect()
    leaks = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == [], [str(w.message) for w in leaks]


def test_other_servers_get_the_response_as_it_was(app: Flask) -> None:
    """gunicorn closes responses itself, and sends a file wrapper with sendfile."""
    body = app.wsgi_app(_environ("gunicorn/23"), _StartResponse())
    try:
        assert hasattr(body, "file"), type(body)  # werkzeug's FileWrapper, not a generator
    finally:
        body.close()  # type: ignore[attr-defined]
