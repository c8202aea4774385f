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

A login is a row of `staff_sessions` (models.StaffSession): the signed cookie carries a
random token whose digest must still be there, so logging out and a password change end
it for good (a replayed old cookie finds nothing). A browser that has signed in to an
account gets a signed device cookie for it; wrong passwords from such a device are counted
apart from strangers' (roadwatch.accounts.throttle.PasswordThrottle), so nobody can keep the real
user out by guessing. The cookies are `Secure` whenever the request came over TLS (behind
a proxy: only when ROADWATCH_TRUSTED_PROXIES says how many hops to believe).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
import re
import secrets
import threading
import time
from typing import Any
from urllib.parse import unquote, urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    g,
    has_request_context,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import delete
from werkzeug.wrappers import Response as BaseResponse

from ..accounts.throttle import PasswordThrottle, minutes_text
from ..accounts.users import StaffUser, authenticate, get_user, secret_key
from ..store import models
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


SESSION_LIFETIME = dt.timedelta(hours=12)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def open_session(db: Any, user_id: int) -> str:
    """A new server-side login for the user: the token to put in the signed cookie."""
    now = models.utcnow()
    db.execute(delete(models.StaffSession).where(models.StaffSession.expires_at < now))
    token = secrets.token_urlsafe(32)
    db.add(
        models.StaffSession(
            token_sha256=_digest(token),
            user_id=user_id,
            created_at=now,
            expires_at=now + SESSION_LIFETIME,
        )
    )
    return token


def session_user(db: Any, token: object) -> StaffUser | None:
    """The active user of a login token, or None (logged out, revoked, expired, unknown)."""
    if not isinstance(token, str) or not token or len(token) > 128:
        return None
    row = db.get(models.StaffSession, _digest(token))
    if row is None or row.expires_at <= models.utcnow():
        return None
    return get_user(db, row.user_id)


def close_session(db: Any, token: object) -> None:
    if isinstance(token, str) and token:
        db.execute(
            delete(models.StaffSession).where(models.StaffSession.token_sha256 == _digest(token))
        )


def session_login() -> StaffUser | None:
    """The user of this request's login cookie, checked against the server-side table."""
    token = session.get("sid")
    if token is None:
        return None
    with current_app.extensions["roadwatch"].sessions() as db:
        return session_user(db, token)


def load_user() -> StaffUser | None:
    """The user of this request's session or Basic credentials (None if neither holds)."""
    if "sid" in session:
        return session_login()
    creds = basic_credentials()
    sessions = current_app.extensions["roadwatch"].sessions
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
# read on every request, so disabling it takes effect at once, and so is the password hash it
# was checked against, so a changed password ends the old one's use at once.
_CHECKED_TTL_S = 60.0
_checked: dict[tuple[str, bytes], tuple[int, str, float]] = {}
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


# The device cookie: a random id for this browser and the accounts that have signed in from
# it, signed with the secret key. It proves nothing by itself (a password is still needed);
# it only puts the holder's wrong passwords in a bucket of their own.
DEVICE_COOKIE = "rw_device"
DEVICE_DAYS = 180
DEVICE_MAX_ACCOUNTS = 8


def _device_signer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="roadwatch-staff-device")


def _device() -> tuple[str, list[str]] | None:
    """(device id, accounts) of this request's valid device cookie, if any."""
    raw = request.cookies.get(DEVICE_COOKIE) if has_request_context() else None
    if not raw or len(raw) > 4096:
        return None
    try:
        data = _device_signer().loads(raw, max_age=DEVICE_DAYS * 86400)
    except BadSignature:
        return None
    if not isinstance(data, dict):
        return None
    device, accounts = data.get("d"), data.get("a")
    if not isinstance(device, str) or not isinstance(accounts, list):
        return None
    return device, [a for a in accounts if isinstance(a, str)]


def known_device(username: str) -> str | None:
    """This browser's device id if it has signed in to `username` before, else None."""
    got = _device()
    if got is None or username.casefold() not in got[1]:
        return None
    return got[0]


def remember_device(response: BaseResponse, username: str) -> None:
    """Mark this browser as a device `username` has signed in from (a successful login)."""
    got = _device()
    device, accounts = got if got is not None else (secrets.token_urlsafe(18), [])
    name = username.casefold()
    accounts = [a for a in accounts if a != name][-(DEVICE_MAX_ACCOUNTS - 1) :] + [name]
    response.set_cookie(
        DEVICE_COOKIE,
        _device_signer().dumps({"d": device, "a": accounts}),
        max_age=DEVICE_DAYS * 86400,
        path="/",
        secure=request.is_secure,
        httponly=True,
        samesite="Lax",
    )


def checked_password(sessions: Any, username: str, password: str) -> StaffUser | None:
    """One password check, counted: raises TooManyAttempts instead of checking when due."""
    throttle, address = _throttle(), request.remote_addr
    device = known_device(username)
    wait = throttle.wait_s(username, address, device)
    if wait > 0:
        log.warning(
            "login: %r from %s (%s device) waits %.0f s (too many wrong passwords)",
            username[:64],
            address,
            "a known" if device else "an unknown",
            wait,
        )
        raise TooManyAttempts(wait)
    with sessions.begin() as db:
        user = authenticate(  # audited there (login / login_failed), in this transaction
            db, username, password, address, "form" if request.path == "/login" else "basic"
        )
    if user is None:
        throttle.failed(username, address, device)
    else:
        throttle.succeeded(username, device)
    return user


def user_with_password(sessions: Any, username: str, password: str) -> StaffUser | None:
    """The active staff user with this name and password, or None (TooManyAttempts)."""
    if not username or not password:
        return None
    key = (username, hashlib.sha256(_DIGEST_SALT + password.encode("utf-8", "replace")).digest())
    now = time.monotonic()
    with _checked_lock:
        hit = _checked.get(key)
    if hit is not None and hit[2] > now:
        with sessions() as db:
            row = db.get(models.User, hit[0])
            if row is not None and row.password_hash == hit[1]:
                return get_user(db, hit[0])
        with _checked_lock:
            _checked.pop(key, None)
    user = checked_password(sessions, username, password)
    if user is not None:
        with sessions() as db:
            row = db.get(models.User, user.id)
            pw_hash = row.password_hash if row is not None else ""
        with _checked_lock:
            if len(_checked) > 1024:  # bounded: a flood of names cannot grow it
                _checked.clear()
            _checked[key] = (user.id, pw_hash, now + _CHECKED_TTL_S)
    return user


def _is_public(method: str, path: str) -> bool:
    if (method, path) in PUBLIC_EXACT:
        return True
    prefixes: tuple[str, ...] = PUBLIC_PREFIXES
    if method in ("GET", "HEAD"):
        prefixes = PUBLIC_PREFIXES + PUBLIC_READ_PREFIXES
    return any(path == p.rstrip("/") or path.startswith(p) for p in prefixes)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def safe_next_path(target: object) -> str | None:
    """`target` if it is a path on this site, else None (no open redirect).

    Decided here, not left to how Werkzeug happens to encode a `Location`: a single
    leading `/`, no `//`, no backslash anywhere (browsers read `/\\evil.com` as
    `//evil.com`), no control characters (browsers drop tabs and newlines, which can join
    `/` and `/`), the same with percent-escapes decoded, and no scheme or host.
    """
    if not isinstance(target, str) or not target or len(target) > 2048:
        return None
    for form in (target, unquote(target)):
        if not form.startswith("/") or form.startswith("//"):
            return None
        if "\\" in form or _CONTROL.search(form):
            return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/"):
        return None
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _safe_next(target: str | None) -> str:
    """Only a path on this site (no open redirect to another host); else the live map."""
    return safe_next_path(target) or url_for("pages.live_map")


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
    # The token must be the one this browser's session was given: a cross-site form post
    # carries no session cookie (SameSite=Lax), so an empty token must not match an empty
    # session (login CSRF: the victim signed in to the attacker's account).
    expected = session.get("csrf")
    given = form.get("csrf", "")
    if (
        not isinstance(expected, str)
        or not expected
        or not secrets.compare_digest(str(given), expected)
    ):
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
    close_old = session.get("sid")
    session.clear()  # a fresh session on login (no fixation)
    with current_app.extensions["roadwatch"].sessions.begin() as db:
        close_session(db, close_old)
        session["sid"] = open_session(db, user.id)
    session.permanent = True
    log.info("login: %s (%s) from %s", user.username, user.role, request.remote_addr)
    response = redirect(_safe_next(nxt))
    remember_device(response, user.username)
    return response


@bp.post("/logout")
def logout() -> BaseResponse:
    """Ends this login on the server too: the cookie, even replayed, is worth nothing."""
    if current_user() is not None:
        from .authz import record_logout

        record_logout()
    token = session.get("sid")
    if token is not None:
        rt = current_app.extensions["roadwatch"]
        with rt.sessions.begin() as db:
            close_session(db, token)
        _close_live_connections(token)
    session.clear()
    return redirect(url_for("auth.login"))


def _close_live_connections(token: object) -> None:
    """This login's open Socket.IO connections end with it (live.py keeps the list)."""
    viewers = current_app.extensions.get("roadwatch_live_viewers")
    if viewers is None or not isinstance(token, str):
        return
    _disconnect_live(viewers.of_login(token))


def close_user_live_connections(user_id: int) -> None:
    """Every open Socket.IO connection of this account in this process ends: its logins
    were revoked (disabled, a new role or district, a new password), and the room it
    joined at connect is the old role's. It may connect again if its login still holds."""
    viewers = current_app.extensions.get("roadwatch_live_viewers")
    if viewers is not None:
        _disconnect_live(viewers.of_user(user_id))


def _disconnect_live(sids: list[str]) -> None:
    socketio = current_app.extensions.get("roadwatch_socketio")
    if socketio is None:
        return
    for sid in sids:
        try:
            socketio.server.disconnect(sid, namespace="/live")
        except Exception:  # already gone: nothing to close
            log.debug("logout: live connection %s was already closed", sid)


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


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, `Secure` whenever this request came over TLS (as
    ProxyFix reports it behind a trusted proxy), or always with SESSION_COOKIE_SECURE."""

    def get_cookie_secure(self, app: Flask) -> bool:
        if app.config.get("SESSION_COOKIE_SECURE"):
            return True
        return has_request_context() and request.is_secure


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
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
    )
    app.session_interface = _SessionInterface()
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
