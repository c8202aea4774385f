"""Issue 15, scope 6 and /healthz: sessions, logins, security headers, health details.

Each test is named after the attack it stops; each one succeeded on main before this work.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from roadwatch.accounts.users import set_password
from roadwatch.web import auth, create_app
from tests.support.auth import PASSWORD, login, make_user

OUTSIDE = {"REMOTE_ADDR": "203.0.113.9"}  # a client that is not this machine


@pytest.fixture
def proxied_app(runtime: Any) -> Iterator[Any]:
    """The app as configured behind one trusted reverse proxy (ROADWATCH_TRUSTED_PROXIES=1)."""
    settings = runtime.settings
    runtime.settings = settings.replace(trusted_proxies=1)
    try:
        app, _ = create_app(runtime)
    finally:
        runtime.settings = settings
    yield app
    runtime.broadcaster.emitter = None


def _csrf(client: FlaskClient, **kw: Any) -> str:
    page = client.get("/login", **kw).get_data(as_text=True)
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match
    return match[1]


def _form_login(client: FlaskClient, username: str, password: str, nxt: str = "", **kw: Any) -> Any:
    data = {"username": username, "password": password, "csrf": _csrf(client, **kw)}
    if nxt:
        data["next"] = nxt
    return client.post("/login", data=data, **kw)


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _set_cookies(res: Any) -> dict[str, str]:
    """name -> the whole Set-Cookie line, for each cookie the response sets."""
    return {line.split("=", 1)[0]: line for line in res.headers.getlist("Set-Cookie")}


# -- 1. headers ----------------------------------------------------------------------------
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", re.I)
INLINE_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.I)


def _csp(res: Any) -> dict[str, list[str]]:
    csp = res.headers.get("Content-Security-Policy", "")
    out: dict[str, list[str]] = {}
    for part in csp.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


def test_missing_security_headers_on_every_kind_of_page(app: Any, runtime: Any) -> None:
    """Framing (clickjacking), MIME sniffing, leaked referrers and injected inline script
    were all allowed: no response carried a CSP, frame-ancestors, nosniff or a
    Referrer-Policy. Every kind of response now does, and no page has inline script."""
    anon = app.test_client()
    staff = app.test_client()
    login(staff, runtime, "admin")
    pages = [
        (anon, "/login", True),
        (staff, "/", True),
        (staff, "/screen", True),
        (anon, "/rankings/", True),
        (anon, "/m/", True),
        (anon, "/open311/v2/services.json", False),
        (anon, "/open311/v2/services.xml", False),
        (staff, "/api/segments", False),
        (staff, "/api/me", False),
        (anon, "/api/reports", False),  # a 401
        (anon, "/", False),  # a redirect to the login page
        (anon, "/healthz", False),
        (anon, "/static/live.js", False),
        (anon, "/no-such-page", False),  # a 404
    ]
    for client, url, html in pages:
        with client.get(url) as res:
            assert res.status_code in (200, 302, 401, 404, 503), (url, res.status_code)
            csp = _csp(res)
            assert csp.get("script-src") == ["'self'"], (url, csp)
            assert csp.get("frame-ancestors") == ["'none'"], url
            assert csp.get("object-src") == ["'none'"], url
            assert "blob:" in csp.get("worker-src", []), url  # MapLibre's worker
            assert res.headers.get("X-Content-Type-Options") == "nosniff", url
            assert res.headers.get("X-Frame-Options") == "DENY", url
            assert res.headers.get("Referrer-Policy") in (
                "same-origin",
                "strict-origin",
                "strict-origin-when-cross-origin",
                "no-referrer",
            ), url
            if html:
                body = res.get_data(as_text=True)
                assert not INLINE_SCRIPT.search(body), (url, INLINE_SCRIPT.search(body))
                assert not INLINE_HANDLER.search(body), (url, INLINE_HANDLER.search(body))


def test_phone_app_may_reach_only_its_broker_websocket(
    app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The phone app's CSP lets it connect to its own broker's WebSocket, and a forged Host
    header cannot smuggle a directive into the policy."""
    # `auto` hands out 9001 only while a WebSocket listener answers there (issue 20).
    from roadwatch.runtime import Runtime

    monkeypatch.setattr(Runtime, "_auto_ws_answers", lambda self: True)
    with app.test_client().get("/m/", headers={"Host": "roads.example.cn:5000"}) as res:
        assert _csp(res)["connect-src"] == ["'self'", "ws://roads.example.cn:9001"]
    with app.test_client().get("/m/", headers={"Host": "x; script-src *"}) as res:
        assert _csp(res)["script-src"] == ["'self'"]
        assert _csp(res)["connect-src"] == ["'self'"]


# -- 2. open redirect ----------------------------------------------------------------------
# Let through by main's check (a leading "/" and no "//"): browsers read a backslash as a
# slash and drop tabs and newlines, so each of these can lead off-site.
OFFSITE_LET_THROUGH = [
    "/\\evil.com",
    "/\\/evil.com",
    "/%5Cevil.com",
    "/%5cevil.com",
    "/%2F/evil.com",
    "/%2f%2fevil.com",
    "/\t/evil.com",
    "/\n/evil.com",
    "/\r\n/evil.com",
    "/\x00/evil.com",
]
# Already refused by main's check; kept refused.
OFFSITE_REFUSED = [
    "\\\\evil.com",
    "//evil.com",
    "///evil.com",
    "https://evil.com",
    "http:/evil.com",
    "javascript:alert(1)",
    "evil.com",
    "",
    "  /x",
]


@pytest.mark.parametrize("target", OFFSITE_LET_THROUGH)
def test_open_redirect_after_login_is_refused_by_the_validator(app: Any, target: str) -> None:
    """The `next` check let `/\\evil.com` through (only today's Werkzeug saved it, by
    percent-encoding the backslash). The validator itself now refuses every form of it."""
    with app.test_request_context("/login"):
        assert auth._safe_next(target) == "/"
    assert auth.safe_next_path(target) is None


@pytest.mark.parametrize("target", OFFSITE_REFUSED)
def test_offsite_next_stays_refused(app: Any, target: str) -> None:
    with app.test_request_context("/login"):
        assert auth._safe_next(target) == "/"
    assert auth.safe_next_path(target) is None


def test_same_site_next_paths_still_work() -> None:
    for target in ("/", "/screen", "/rankings/2026-W47", "/api/reports?district=JS&limit=5"):
        assert auth.safe_next_path(target) == target


@pytest.mark.parametrize("target", ["/\\evil.com", "/%5Cevil.com", "/\t/evil.com"])
def test_open_redirect_through_the_login_form(app: Any, runtime: Any, target: str) -> None:
    """Logging in with next=/\\evil.com redirected to a Location built from it; now the
    login lands on the live map instead."""
    user = make_user(runtime, "viewer")
    res = _form_login(app.test_client(), user.username, PASSWORD, nxt=target)
    assert res.status_code == 302
    assert res.headers["Location"] == "/"


# -- 3. Secure cookies behind a trusted TLS proxy -----------------------------------------
def test_session_cookie_sent_without_secure_over_tls(
    app: Any, proxied_app: Any, runtime: Any
) -> None:
    """The staff cookie was never `Secure`, even over HTTPS, so a browser would also send
    it over plain HTTP. Behind a trusted TLS proxy (X-Forwarded-Proto: https) and on a
    direct TLS request it is Secure now; an untrusted X-Forwarded-Proto is not believed."""
    user = make_user(runtime, "viewer")
    https = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.4"}

    behind = proxied_app.test_client()
    res = _form_login(behind, user.username, PASSWORD, headers=https)
    assert res.status_code == 302
    cookies = _set_cookies(res)
    for name in ("session", "rw_device"):
        line = cookies[name]
        assert "; Secure" in line and "; HttpOnly" in line and "SameSite=Lax" in line, line
    assert res.headers.get("Strict-Transport-Security")

    direct = app.test_client()
    res = _form_login(direct, user.username, PASSWORD, base_url="https://localhost")
    assert "; Secure" in _set_cookies(res)["session"]

    # no proxy configured: anyone may send X-Forwarded-Proto, so it means nothing
    spoofed = app.test_client()
    res = _form_login(spoofed, user.username, PASSWORD, headers=https)
    assert res.status_code == 302
    line = _set_cookies(res)["session"]
    assert "; Secure" not in line and "; HttpOnly" in line and "SameSite=Lax" in line


# -- 4. sessions revoked ---------------------------------------------------------------------
def test_session_cookie_replayed_after_logout(app: Any, runtime: Any) -> None:
    """Logging out only cleared the browser's cookie: a copy of it (a shared computer, a
    proxy log) stayed a valid login for 12 hours. Logout now ends it on the server."""
    client = app.test_client()
    login(client, runtime, "admin")
    cookie = client.get_cookie("session")
    assert cookie is not None and client.get("/api/me").status_code == 200
    socketio = app.extensions["roadwatch_socketio"]
    open_live = socketio.test_client(app, namespace="/live", flask_test_client=client)
    assert open_live.is_connected("/live")
    client.post("/logout")
    assert not open_live.is_connected("/live")  # the open live connection ended too

    replay = app.test_client()
    replay.set_cookie("session", cookie.value)
    assert replay.get("/api/me").status_code == 401
    assert replay.get("/").status_code == 302  # to the login page
    live = socketio.test_client(app, namespace="/live", flask_test_client=replay)
    assert not live.is_connected("/live")


@pytest.mark.parametrize(
    "change",
    [
        {"active": False},
        {"role": "district_staff", "district": "EQ"},
        "password",
    ],
    ids=["disabled", "moved_to_a_district", "new_password"],
)
def test_live_feed_kept_after_the_admin_disables_or_demotes_the_account(
    app: Any, runtime: Any, change: Any
) -> None:
    """An administrator disabled an account (or moved it to one district, or reset its
    password) on /admin/users: its logins ended, but its open live connection stayed in the
    city-wide room and kept receiving every district's events until the browser closed.
    It ends with the change now (by a password, a script reconnects in its new room)."""
    client = app.test_client()
    user = login(client, runtime, "viewer")
    socketio = app.extensions["roadwatch_socketio"]
    by_cookie = socketio.test_client(app, namespace="/live", flask_test_client=client)
    by_password = socketio.test_client(
        app, namespace="/live", auth={"username": user.username, "password": PASSWORD}
    )
    assert by_cookie.is_connected("/live") and by_password.is_connected("/live")
    other = socketio.test_client(app, namespace="/live", flask_test_client=client)
    admin = app.test_client()
    login(admin, runtime, "admin")
    if change == "password":
        res = admin.post(f"/api/users/{user.username}/password", json={"password": "x" * 16})
    else:
        res = admin.patch(f"/api/users/{user.username}", json=change)
    assert res.status_code == 200, res.get_data(as_text=True)
    assert not by_cookie.is_connected("/live")
    assert not by_password.is_connected("/live")
    assert not other.is_connected("/live")
    assert client.get("/api/me").status_code == 401  # (as before: the login ended)


def test_district_account_without_a_district_gets_the_whole_citys_live_feed(
    app: Any, runtime: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A district_staff account without a district sees nothing on every page and API (it
    fails closed), but its live connection joined the whole city's room and its headline
    counters were the city's: `""` is no district, and both were chosen by its truth. It
    joins no district's room now, and counts nothing."""
    import time

    from sqlalchemy import update

    from roadwatch.store import models
    from tests.support.examples import contract_example
    from tests.support.intake import intake_headers

    odd = make_user(runtime, "district_staff", "JS")
    with runtime.sessions.begin() as db:  # (the CLI and the admins' page refuse to make one)
        db.execute(update(models.User).where(models.User.id == odd.id).values(district=None))
    city = make_user(runtime, "viewer")
    socketio = app.extensions["roadwatch_socketio"]
    monkeypatch.setattr(runtime.broadcaster, "emitter", socketio)  # as `serve` wires it
    live = {
        who.username: socketio.test_client(
            app, namespace="/live", auth={"username": who.username, "password": PASSWORD}
        )
        for who in (odd, city)
    }
    assert all(c.is_connected("/live") for c in live.values())
    res = app.test_client().post(
        "/api/reports", json=contract_example(), headers=intake_headers(app)
    )
    assert res.status_code == 201, res.get_data(as_text=True)

    def reports(username: str) -> list[Any]:
        return [m for m in live[username].get_received("/live") if m["name"] == "report"]

    deadline = time.monotonic() + 5
    seen: list[Any] = []
    while not seen and time.monotonic() < deadline:  # (a broadcaster's thread would emit it)
        seen = reports(city.username)
        time.sleep(0.05)
    assert seen, "the city-wide viewer gets the report"
    assert reports(odd.username) == []
    # nor does it read the city's counters (/api/stats, the live map's headline)
    for who, today in ((city, 1), (odd, 0)):
        reader = app.test_client()
        got = reader.get("/api/stats", headers=_basic(who.username, PASSWORD)).get_json()
        assert got["reports_today"] == today and len(got["districts"]) == today, got


def test_the_default_socketio_namespace_refuses_everyone(app: Any, runtime: Any) -> None:
    """Socket.IO's default namespace serves nothing, but it accepted anyone's connection
    (an audit held sockets open without a login); only /live, with a login, is served."""
    socketio = app.extensions["roadwatch_socketio"]
    anonymous = socketio.test_client(app)
    assert not anonymous.is_connected("/")
    client = app.test_client()
    login(client, runtime, "admin")
    staff = socketio.test_client(app, flask_test_client=client)
    assert not staff.is_connected("/")
    live = socketio.test_client(app, namespace="/live", flask_test_client=client)
    assert live.is_connected("/live")


def test_session_alive_after_password_change(app: Any, runtime: Any) -> None:
    """A changed password (say, after it leaked) left every open login and, for a
    minute, the old password over HTTP Basic working. Both end at once now."""
    client = app.test_client()
    user = login(client, runtime, "admin")
    assert client.get("/api/me").status_code == 200
    script = app.test_client()
    assert script.get("/api/me", headers=_basic(user.username, PASSWORD)).status_code == 200

    with runtime.sessions.begin() as db:
        set_password(db, user.username, "a brand new password")

    assert client.get("/api/me").status_code == 401
    assert script.get("/api/me", headers=_basic(user.username, PASSWORD)).status_code == 401
    new = _basic(user.username, "a brand new password")
    assert script.get("/api/me", headers=new).status_code == 200
    assert _form_login(app.test_client(), user.username, "a brand new password").status_code == 302


# -- 5. lockout ------------------------------------------------------------------------------
def test_lockout_of_the_real_user_by_wrong_passwords_from_elsewhere(app: Any, runtime: Any) -> None:
    """10 wrong passwords from anywhere locked any account for 10 minutes, so anyone could
    keep the admin out for good. After 1,000 wrong passwords from elsewhere the real user
    still signs in from a device they used before (form, Basic and Socket.IO), while the
    attacker, and any device never used for the account, stays throttled."""
    user = make_user(runtime, "admin")
    device = app.test_client()
    assert _form_login(device, user.username, PASSWORD).status_code == 302
    device.post("/logout")

    attacker = app.test_client()
    forged = app.test_client()  # a device cookie of its own making is worth nothing
    forged.set_cookie("rw_device", "eyJkIjoieCIsImEiOlsiYWRtaW4iXX0.forged.sig")
    csrf = _csrf(attacker)
    codes: set[int] = set()
    for i in range(1000):
        who = {"REMOTE_ADDR": f"203.0.{i // 250}.{i % 250 + 1}"}  # many addresses
        if i % 2:
            res = attacker.post(
                "/login",
                data={"username": user.username, "password": f"guess-{i}", "csrf": csrf},
                environ_base=who,
            )
        else:
            res = attacker.get(
                "/api/me", headers=_basic(user.username, f"guess-{i}"), environ_base=who
            )
        codes.add(res.status_code)
    assert codes == {401, 429}
    # the attacker (and a forged device cookie) is still throttled, even with the password
    assert _form_login(attacker, user.username, "guess-x").status_code == 429
    assert _form_login(forged, user.username, PASSWORD).status_code == 429
    assert _form_login(app.test_client(), user.username, PASSWORD).status_code == 429

    # the real user, on their own device, from the attacker's own address even
    res = _form_login(device, user.username, PASSWORD, environ_base={"REMOTE_ADDR": "203.0.0.1"})
    assert res.status_code == 302, res.get_data(as_text=True)
    assert device.get("/api/me").get_json()["username"] == user.username
    device_cookie = device.get_cookie("rw_device")
    assert device_cookie is not None
    script = app.test_client()
    script.set_cookie("rw_device", device_cookie.value)
    assert script.get("/api/me", headers=_basic(user.username, PASSWORD)).status_code == 200
    auth._checked.clear()  # the Basic check above is remembered; the handshake must count
    socketio = app.extensions["roadwatch_socketio"]
    live = socketio.test_client(
        app,
        namespace="/live",
        auth={"username": user.username, "password": PASSWORD},
        flask_test_client=script,
    )
    assert live.is_connected("/live")
    live.disconnect(namespace="/live")

    # a known device's own wrong passwords are still limited (its own bucket)
    thief = app.test_client()
    thief.set_cookie("rw_device", device_cookie.value)
    results = [_form_login(thief, user.username, f"x-{i}").status_code for i in range(12)]
    assert results[:10] == [401] * 10 and results[10:] == [429, 429]


# -- 6. /healthz ---------------------------------------------------------------------------
def test_healthz_shows_internals_to_the_public(app: Any, proxied_app: Any, runtime: Any) -> None:
    """/healthz told anyone the broker's address, whether it is embedded, its last error
    and the network's size. The public now learns only up or down; staff and this
    machine (a monitoring agent on loopback) see the checks."""
    settings = runtime.settings
    runtime.settings = settings.replace(mqtt_url="mqtt://platform:pw@10.1.2.3:1883")
    try:
        public = app.test_client().get("/healthz", environ_base=OUTSIDE)
        assert public.status_code == 503  # no broker in this test: down, and says so
        assert public.get_json() == {"status": "degraded"}
        assert "10.1.2.3" not in public.get_data(as_text=True)

        staff = app.test_client()
        login(staff, runtime, "viewer", None)
        seen = staff.get("/healthz", environ_base=OUTSIDE).get_json()
        assert seen["checks"]["broker"]["url"] == "mqtt://platform:***@10.1.2.3:1883"

        local = app.test_client().get("/healthz", environ_base={"REMOTE_ADDR": "127.0.0.1"})
        assert local.get_json()["checks"]["network"]["segments"] == runtime.ctx.size

        # a forged X-Forwarded-For is not believed without a trusted proxy
        forged = app.test_client().get(
            "/healthz", environ_base=OUTSIDE, headers={"X-Forwarded-For": "127.0.0.1"}
        )
        assert "checks" not in forged.get_json()
        # behind a trusted proxy on loopback, the client's own address is judged
        via_proxy = proxied_app.test_client().get(
            "/healthz",
            environ_base={"REMOTE_ADDR": "127.0.0.1"},
            headers={"X-Forwarded-For": "203.0.113.50"},
        )
        assert via_proxy.get_json() == {"status": "degraded"}
    finally:
        runtime.settings = settings


# -- 6. login CSRF ---------------------------------------------------------------------------
@pytest.mark.parametrize("token", [None, ""])
def test_login_csrf_without_a_session_token_is_refused(
    app: Any, runtime: Any, token: str | None
) -> None:
    """A cross-site form post to /login carries no session cookie (SameSite=Lax), so the
    session's token was missing and an empty or absent `csrf` field matched it: another
    site could sign a visitor in to the attacker's account (login CSRF). Now a login needs
    the token this browser's session was given."""
    user = make_user(runtime, "district_staff", "EQ")
    data = {"username": user.username, "password": PASSWORD}
    if token is not None:
        data["csrf"] = token
    forged = app.test_client()  # a browser that never loaded the login page
    res = forged.post("/login", data=data, headers={"Origin": "https://evil.example"})
    assert res.status_code == 400
    assert forged.get("/api/me").status_code == 401
    # a browser that loaded the page but posts an empty token is refused too
    page = app.test_client()
    _csrf(page)
    res = page.post("/login", data={**data, "csrf": ""})
    assert res.status_code == 400 and page.get("/api/me").status_code == 401
    # the real form still works
    assert _form_login(app.test_client(), user.username, PASSWORD).status_code == 302
