"""Staff login for the command centre: a login page, a Flask session, and the guard.

The guard runs before every request. Staff-only: the pages (`/`, `/screen`) and the API
under `/api/` that they use, except what has its own rules and must stay open (phones
and city systems post reports and photos, monitoring scrapes health and metrics, the
phone app lives under `/m/`, Open311 has API keys). The Socket.IO connection is checked
in live.py with the same session.

Scripts and city systems need no login page: every guarded request also accepts the same
staff account by HTTP Basic authentication (`curl -u name:password`), and the Socket.IO
handshake accepts `auth={"username", "password"}`. No `WWW-Authenticate` challenge is ever
sent, so browsers never remember such credentials (which would open a CSRF hole).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
import secrets
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from ..accounts.throttle import PasswordThrottle, minutes_text
from ..accounts.users import StaffUser, authenticate, get_user, secret_key
from .errors import ApiError, error_response

log = logging.getLogger(__name__)
bp = Blueprint("auth", __name__)

# Open to everyone (each has its own protection or none is needed).
PUBLIC_PREFIXES = (
    "/healthz",
    "/metrics",
    "/open311/",
    "/m/",
    "/static/",
    "/login",
    "/logout",
    "/api/photos",  # upload from phones, and the photos reports and Open311 link to
)
# Readable by everyone, written only with a login: published weekly rankings are public by
# design, but filing a dispute or deciding one is staff work.
PUBLIC_READ_PREFIXES = ("/rankings", "/api/rankings")
PUBLIC_EXACT = {("POST", "/api/reports"), ("GET", "/m")}  # intake has its own pipeline


def current_user() -> StaffUser | None:
    user: StaffUser | None = g.get("user")
    return user


def load_user() -> StaffUser | None:
    """The user of this request's session or Basic credentials (None if neither holds)."""
    uid = session.get("uid")
    sessions = current_app.extensions["roadwatch"].sessions
    if isinstance(uid, int):
        with sessions() as db:
            return get_user(db, uid)
    creds = basic_credentials()
    return user_with_password(sessions, *creds) if creds is not None else None


def basic_credentials() -> tuple[str, str] | None:
    """(username, password) of this request's HTTP Basic `Authorization` header, if any."""
    auth = request.authorization
    if auth is None or auth.type != "basic":
        return None
    return auth.username or "", auth.password or ""


# A password check costs ~80 ms of scrypt by design; a script polling the API with Basic
# credentials would pay it on every request. A good (name, password) pair is remembered for
# a minute, by a salted digest (never the password); whether the account is still active is
# read on every request, so disabling it takes effect at once.
_CHECKED_TTL_S = 60.0
_checked: dict[tuple[str, bytes], tuple[int, float]] = {}
_checked_lock = threading.Lock()
_DIGEST_SALT = secrets.token_bytes(16)


class TooManyAttempts(Exception):
    """Too many wrong passwords for this account or from this address: wait `wait_s`."""

    def __init__(self, wait_s: float) -> None:
        super().__init__(f"too many wrong passwords; try again in {minutes_text(wait_s)} min")
        self.wait_s = wait_s


def _throttle() -> PasswordThrottle:
    t: PasswordThrottle = current_app.extensions.setdefault(
        "roadwatch_staff_throttle", PasswordThrottle()
    )
    return t


def checked_password(sessions: Any, username: str, password: str) -> StaffUser | None:
    """One password check, counted: raises TooManyAttempts instead of checking when due."""
    throttle, address = _throttle(), request.remote_addr
    wait = throttle.wait_s(username, address)
    if wait > 0:
        log.warning(
            "login: %r from %s waits %.0f s (too many wrong passwords)",
            username[:64],
            address,
            wait,
        )
        raise TooManyAttempts(wait)
    with sessions.begin() as db:
        user = authenticate(  # audited there (login / login_failed), in this transaction
            db, username, password, address, "form" if request.path == "/login" else "basic"
        )
    if user is None:
        throttle.failed(username, address)
    else:
        throttle.succeeded(username)
    return user


def user_with_password(sessions: Any, username: str, password: str) -> StaffUser | None:
    """The active staff user with this name and password, or None (TooManyAttempts)."""
    if not username or not password:
        return None
    key = (username, hashlib.sha256(_DIGEST_SALT + password.encode("utf-8", "replace")).digest())
    now = time.monotonic()
    with _checked_lock:
        hit = _checked.get(key)
    if hit is not None and hit[1] > now:
        with sessions() as db:
            return get_user(db, hit[0])
    user = checked_password(sessions, username, password)
    if user is not None:
        with _checked_lock:
            if len(_checked) > 1024:  # bounded: a flood of names cannot grow it
                _checked.clear()
            _checked[key] = (user.id, now + _CHECKED_TTL_S)
    return user


def _is_public(method: str, path: str) -> bool:
    if (method, path) in PUBLIC_EXACT:
        return True
    prefixes: tuple[str, ...] = PUBLIC_PREFIXES
    if method in ("GET", "HEAD"):
        prefixes = PUBLIC_PREFIXES + PUBLIC_READ_PREFIXES
    return any(path == p.rstrip("/") or path.startswith(p) for p in prefixes)


def _safe_next(target: str | None) -> str:
    """Only a path on this site (no open redirect to another host)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return url_for("pages.live_map")
    parts = urlsplit(target)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _csrf_token() -> str:
    token = session.get("csrf")
    if not isinstance(token, str):
        token = session["csrf"] = secrets.token_urlsafe(24)
    return token


def guard() -> BaseResponse | tuple[Response, int] | None:
    if request.method == "OPTIONS":
        return None
    try:
        g.user = load_user()
    except TooManyAttempts as exc:
        return error_response(
            429, "authorization", "too_many_attempts", str(exc), retry_after=exc.wait_s
        )
    if g.user is not None or _is_public(request.method, request.path):
        return None
    if request.path.startswith("/api/"):
        if basic_credentials() is not None:
            log.info("API: wrong Basic credentials from %s", request.remote_addr)
            return error_response(
                401, "authorization", "bad_credentials", "the username or password is wrong"
            )
        return error_response(
            401,
            "session",
            "login_required",
            "log in to the command centre (or send a staff account's name and password "
            "by HTTP Basic authentication)",
        )
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


@bp.get("/login")
def login() -> str:
    return render_template(
        "login.html", error=None, next=request.args.get("next", ""), csrf=_csrf_token()
    )


@bp.post("/login")
def login_post() -> Any:
    form = request.form
    nxt = form.get("next", "")
    if not secrets.compare_digest(str(form.get("csrf", "")), str(session.get("csrf", ""))):
        return render_template("login.html", error="expired", next=nxt, csrf=_csrf_token()), 400
    username, password = form.get("username", "").strip(), form.get("password", "")
    try:
        user = (
            checked_password(current_app.extensions["roadwatch"].sessions, username, password)
            if username and password
            else None
        )
    except TooManyAttempts as exc:
        page = render_template(
            "login.html",
            error="throttled",
            minutes=minutes_text(exc.wait_s),
            next=nxt,
            csrf=_csrf_token(),
        )
        return page, 429, {"Retry-After": str(max(1, math.ceil(exc.wait_s)))}
    if user is None:
        log.info("login refused for %r from %s", username[:64], request.remote_addr)
        return render_template("login.html", error="bad", next=nxt, csrf=_csrf_token()), 401
    session.clear()  # a fresh session on login (no fixation)
    session["uid"] = user.id
    session.permanent = True
    log.info("login: %s (%s) from %s", user.username, user.role, request.remote_addr)
    return redirect(_safe_next(nxt))


@bp.post("/logout")
def logout() -> BaseResponse:
    if current_user() is not None:
        from .authz import record_logout

        record_logout()
    session.clear()
    return redirect(url_for("auth.login"))


@bp.get("/api/me")
def me() -> Response | tuple[Response, int]:
    user = current_user()
    if user is None:  # the guard answers first; kept for clarity
        return error_response(401, "session", "login_required", "log in to the command centre")
    return jsonify(
        {
            "username": user.username,
            "role": user.role,
            "district": user.sees_district,
            "may_decide": user.may_decide,
        }
    )


_warned_key = threading.Event()


def configure(app: Flask, runtime: Any) -> None:
    """Secret key, cookie flags, the guard and the login pages (called by create_app)."""
    key = app.config.get("SECRET_KEY") or runtime.settings.secret_key
    if not key:
        with runtime.sessions.begin() as db:
            key, created = secret_key(db)
        if not _warned_key.is_set():
            _warned_key.set()
            log.warning(
                "ROADWATCH_SECRET_KEY is not set: %s a random session key in the database "
                "(meta.flask_secret_key); set ROADWATCH_SECRET_KEY in production",
                "generated and stored" if created else "using",
            )
    app.config.update(
        SECRET_KEY=key,
        SESSION_COOKIE_HTTPONLY=True,
        # Lax: another site cannot make a logged-in browser POST here (CSRF).
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=12),
    )
    app.before_request(guard)
    app.register_blueprint(bp)


def scope_district() -> str | None:
    """The district this request is limited to (a district user's), or None for all."""
    user = current_user()
    return user.sees_district if user is not None else None


def require_decider() -> None:
    """Viewers only watch: refuse a change made by one."""
    user = current_user()
    if user is not None and not user.may_decide:
        raise ApiError(403, "session", "forbidden", "a viewer account may not change anything")
