"""gzip for text responses (issue 20): the phone app on a 3G link.

Served as is, MQTT.js alone is 343 KB (105 KB gzipped): seven seconds at 400 kbit/s. This
compresses, on the way out, GET answers of text types (JS, CSS, JSON, GeoJSON, SVG, the
manifest; HTML only when it is a static file) above MIN_BYTES for a client that accepts
gzip. Static files are compressed once
per version (an in-memory cache keyed by path and ETag); API answers each time (level 6:
about a millisecond for the phone's /m/api/me). Flask-Compress is not a dependency of the
project; the standard library's gzip does this.

The ETag of a compressed answer is made weak (as nginx does): the bytes differ from the
identity encoding, and Werkzeug's If-None-Match check compares weakly, so a revalidation
still gets its 304.
"""

from __future__ import annotations

import gzip
import threading
from collections import OrderedDict

from flask import Flask, Response, request

MIN_BYTES = 512
LEVEL = 6
TEXT_TYPES = (
    "text/",
    "application/javascript",
    "application/json",
    "application/geo+json",
    "application/manifest+json",
    "image/svg+xml",
)
# Not touched: Socket.IO's transport (its own framing), and what is already compressed.
SKIP_PREFIXES = ("/socket.io",)
CACHE_ENTRIES = 128

_cache: OrderedDict[tuple[str, str], bytes] = OrderedDict()
_lock = threading.Lock()


def _wants_gzip(res: Response) -> bool:
    if request.method not in ("GET", "HEAD") or res.status_code != 200:
        return False
    if "gzip" not in request.headers.get("Accept-Encoding", "").lower():
        return False
    if res.headers.get("Content-Encoding") or "no-transform" in res.headers.get(
        "Cache-Control", ""
    ):
        return False
    if request.path.startswith(SKIP_PREFIXES) or res.mimetype is None:
        return False
    if not res.mimetype.startswith(TEXT_TYPES):
        return False
    # BREACH: a rendered page may carry a secret (the login form's CSRF token) beside text
    # from the request (`next`); compress only pages that are files (the phone's shell).
    if res.mimetype == "text/html" and not res.direct_passthrough:
        return False
    # A generator (a CSV export, a stream) is left alone: it may be long or endless.
    return not (res.is_streamed and not res.direct_passthrough)


def _gzip(res: Response) -> Response:
    res.vary.add("Accept-Encoding")
    if not _wants_gzip(res):
        return res
    length = res.content_length
    if length is not None and length < MIN_BYTES:
        return res
    etag, weak = res.get_etag()
    key = (request.path, etag) if etag else None
    with _lock:
        body = _cache.get(key) if key else None
        if body is not None:
            _cache.move_to_end(key)  # type: ignore[arg-type]
    if body is None:
        # A static file is passed through as a file object: read it here (and it is closed
        # with the response, as before).
        res.direct_passthrough = False
        raw = res.get_data()
        if len(raw) < MIN_BYTES:
            return res
        body = gzip.compress(raw, LEVEL, mtime=0)
        if key:
            with _lock:
                _cache[key] = body
                while len(_cache) > CACHE_ENTRIES:
                    _cache.popitem(last=False)
    else:
        # From the cache: the file Flask opened for this answer is not read; close it.
        close = getattr(res.response, "close", None)
        if close is not None:
            close()
    res.direct_passthrough = False
    res.set_data(body)
    res.headers["Content-Encoding"] = "gzip"
    if etag:
        res.set_etag(etag, weak=True)
    return res


def register(app: Flask) -> None:
    app.after_request(_gzip)
