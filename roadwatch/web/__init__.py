"""Web layer: the app factory. Socket.IO is created here per app (no global app state)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from flask import Flask
from flask_socketio import SocketIO
from werkzeug.middleware.proxy_fix import ProxyFix

from ..runtime import Runtime
from . import (
    api,
    auth,
    authz,
    cases,
    centre,
    compress,
    desk,
    errors,
    exports,
    headers,
    leaders,
    limits,
    live,
    mobile,
    open311,
    pages,
    rankings,
    review,
    staff,
)


def create_app(runtime: Runtime, **config: Any) -> tuple[Flask, SocketIO]:
    settings = runtime.settings
    app = Flask(__name__)
    app.config.update(
        JSON_AS_ASCII=False,
        MAX_CONTENT_LENGTH=max(settings.max_payload_bytes * 2, settings.max_photo_bytes + 65536),
        **config,
    )
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.extensions["roadwatch"] = runtime
    auth.configure(app, runtime)  # staff login: secret key, guard, /login, /logout
    authz.configure(app)  # viewers change nothing; GET /api/audit (after auth's guard)

    queue: dict[str, Any] = {}
    if settings.socketio_queue:
        # Redis, with a resync of this process's browsers when it comes back (live.py).
        queue["client_manager"] = live.ResyncingRedisManager(settings.socketio_queue)
    socketio = SocketIO(
        app,
        async_mode="threading",
        **queue,
        # A message larger than this is a bug or an attack: drop the connection.
        max_http_buffer_size=64 * 1024,
        # cors_allowed_origins left at its default: only the page's own origin may connect.
    )
    app.extensions["roadwatch_socketio"] = socketio
    if settings.trusted_proxies:
        # Believe X-Forwarded-For/-Proto/-Host/-Port/-Prefix from exactly this many proxies
        # (outermost, so the Socket.IO handshake sees the client's address and scheme too);
        # without the setting they are ignored: anyone can send them.
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n, x_prefix=n
        )
    app.wsgi_app = _close_dropped_responses(app.wsgi_app)  # type: ignore[method-assign,assignment]
    headers.register(app, runtime)  # CSP, nosniff, frame-ancestors… on every response
    compress.register(app)  # gzip for text answers (the phone app on 3G, issue 20)

    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(review.bp)
    app.register_blueprint(open311.bp)
    app.register_blueprint(exports.bp)
    app.register_blueprint(rankings.bp)
    app.register_blueprint(centre.bp)
    app.register_blueprint(mobile.bp)
    app.register_blueprint(cases.bp)
    app.register_blueprint(desk.bp)  # the workbench's pages (review queue, accounts)
    app.register_blueprint(staff.bp)  # staff accounts for admins (/api/users)
    app.register_blueprint(staff.chiefs_bp)  # chiefs' phone accounts (/api/chiefs)
    app.register_blueprint(leaders.bp)  # issue 22: hot spots, patrol plans, routes
    errors.register(app)
    limits.init_app(app, settings)  # after the blueprints: wraps the intake views
    app.extensions["roadwatch_live_viewers"] = live.register(socketio, runtime)
    # The runtime is left as it was given: whoever runs the app decides whether the runtime's
    # live events go to this app's browsers (`roadwatch serve`: runtime.broadcaster.emitter).
    return app, socketio


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _close_dropped_responses(wsgi_app: WSGIApp) -> WSGIApp:
    """Close every response under Werkzeug's server, also when the browser hangs up mid-body.

    Werkzeug (3.x) drains the socket before it closes the app's iterable; when that read
    fails on a reset connection, the iterable (a static file) is never closed and leaks its
    file handle. A generator around it is closed when dropped, and closes the file then.
    Other servers (gunicorn) close responses themselves and keep their sendfile path."""

    def middleware(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = wsgi_app(environ, start_response)
        if not str(environ.get("SERVER_SOFTWARE", "")).startswith("Werkzeug"):
            return body
        return _closing(body)

    return middleware


def _closing(body: Iterable[bytes]) -> Iterator[bytes]:
    try:
        yield from body
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()


def runtime_of(app: Flask) -> Runtime:
    rt: Runtime = app.extensions["roadwatch"]
    return rt
