"""Per-identity rate limits on HTTP intake (Flask-Limiter).

Every view marked `@intake_limited(...)` gets the limits of the setting `intake_rate_limit`
(default "300/minute;3000/hour": a phone's outbox may send a backlog of a few hundred at
once), counted per identity and per route, in Redis when `rate_limit_storage` or
`socketio_queue` names one (shared by every web process), else in this process's memory.
Over the limit the answer is `429 {"errors": [{"field": "request", "code":
"too_many_requests", …}]}` with `Retry-After` in seconds.

API (for other views, e.g. the phone app's /m/ intake):

    from .limits import intake_limited

    @bp.post("/api/reports")
    @intake_limited(key=lambda: "chief:" + signed_in_chief_id())   # below the route
    def report(): ...

`key` returns the identity the count is kept for; the default is the presented API key
(by its digest), or the client's address when it sent none. Marks are applied by
`init_app(app, settings)` in create_app, after every blueprint is registered, so each app
has its own limiter and storage.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Response, request
from flask_limiter import Limiter
from flask_limiter.errors import RateLimitExceeded

from ..settings import Settings
from .errors import error_response

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
_MARK = "_roadwatch_intake_key"


def presented_api_key() -> str | None:
    """The API key of this request: `Authorization: Bearer …` or `X-API-Key: …`."""
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    key = request.headers.get("X-API-Key", "").strip()
    return key or None


def identity_key() -> str:
    """The count's identity: the presented key's digest, else the client's address."""
    key = presented_api_key()
    if key:
        return "key:" + hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:32]
    return "addr:" + (request.remote_addr or "unknown")


def intake_limited(key: Callable[[], str] | None = None) -> Callable[[F], F]:
    """Mark a view as HTTP intake, limited per identity (`key`, default `identity_key`)."""

    def mark(fn: F) -> F:
        setattr(fn, _MARK, key or identity_key)
        return fn

    return mark


def init_app(app: Flask, settings: Settings) -> Limiter:
    """Wrap every marked view of `app` with this app's limiter (call after the blueprints)."""
    limiter = Limiter(
        key_func=identity_key,
        app=app,
        storage_uri=settings.rate_limit_storage_uri,
        strategy="fixed-window",
        key_prefix="roadwatch-intake",
        headers_enabled=False,  # Retry-After only on a 429 (below), not on every answer
        # A Redis outage must not stop the intake: count in memory meanwhile (logged).
        in_memory_fallback_enabled=settings.rate_limit_storage_uri != "memory://",
    )
    views: dict[str, Any] = app.view_functions
    for endpoint, view in list(views.items()):
        key = getattr(view, _MARK, None)
        if key is not None:
            views[endpoint] = limiter.limit(settings.intake_rate_limit, key_func=key)(view)

    @app.errorhandler(RateLimitExceeded)
    def _too_many(exc: RateLimitExceeded) -> tuple[Response, int]:
        current = limiter.current_limit
        wait = 60.0
        if current is not None:
            wait = max(1.0, current.reset_at - time.time())
        log.info("intake: %s over its rate limit (%s) on %s", _who(), exc.description, request.path)
        return error_response(
            429,
            "request",
            "too_many_requests",
            f"请求太多，请 {math.ceil(wait)} 秒后再试 (too many requests: at most "
            f"{exc.description}; retry in {math.ceil(wait)} s)",
            retry_after=wait,
        )

    app.extensions["roadwatch_limiter"] = limiter
    return limiter


def _who() -> str:
    try:
        return identity_key()[:16]
    except Exception:  # logging must never fail the answer
        return "?"
