"""Issue 7, access: staff login, what stays public, district scoping, the Socket.IO gate."""

from __future__ import annotations

import base64
import json
import queue
import subprocess
import sys
import time
from types import SimpleNamespace
from typing import Any

import pytest
import socketio
from flask.testing import FlaskClient

from roadwatch.accounts.users import UserError, add_user, authenticate
from tests.support.auth import PASSWORD, login, make_user, session_cookie
from tests.support.examples import contract_example
from tests.support.intake import intake_headers
from tests.support.server import live_server


def _post_report(client: FlaskClient, **changes: Any) -> Any:
    body = contract_example(**changes)
    return client.post(
        "/api/reports",
        data=json.dumps(body),
        content_type="application/json",
        headers=intake_headers(client.application),
    )


def test_anonymous_gets_the_login_page_and_401s(app: Any) -> None:
    client = app.test_client()
    res = client.get("/")
    assert res.status_code == 302 and res.headers["Location"].startswith("/login?next=/")
    assert client.get("/screen").status_code == 302
    page = client.get(res.headers["Location"])
    assert page.status_code == 200 and "登录" in page.get_data(as_text=True)
    for url in (
        "/api/segments",
        "/api/districts",
        "/api/reports",
        "/api/rejected",
        "/api/review",
        "/api/cases.csv",
        "/api/events?since=2026-01-01T00:00:00Z",
        "/api/stats",
    ):
        res = client.get(url)
        assert res.status_code == 401, url
        assert res.get_json()["errors"][0]["code"] == "login_required"


def test_what_stays_public(app: Any) -> None:
    client = app.test_client()
    assert client.get("/healthz").status_code in (200, 503)
    assert client.get("/metrics").status_code == 200
    assert client.get("/open311/v2/services.json").status_code == 200
    # phones and city systems post reports, with an API key
    assert _post_report(client).status_code == 201
    assert client.get("/api/photos/" + "0" * 64).status_code == 404  # not 401
    with client.get("/m/") as shell:  # a file response: close it
        assert shell.status_code == 200


def test_login_wrong_password_then_right_then_logout(app: Any, runtime: Any) -> None:
    client = app.test_client()
    user = make_user(runtime, "viewer")
    page = client.get("/login").get_data(as_text=True)
    csrf = page.split('name="csrf" value="')[1].split('"')[0]
    bad = client.post(
        "/login", data={"username": user.username, "password": "nope-nope", "csrf": csrf}
    )
    assert bad.status_code == 401 and "不正确" in bad.get_data(as_text=True)
    no_csrf = client.post("/login", data={"username": user.username, "password": PASSWORD})
    assert no_csrf.status_code == 400
    ok = client.post(
        "/login",
        data={
            "username": user.username,
            "password": PASSWORD,
            "csrf": csrf,
            "next": "//evil.example/x",
        },
    )
    assert ok.status_code == 302 and ok.headers["Location"] == "/"  # no open redirect
    assert client.get("/api/me").get_json()["role"] == "viewer"
    assert client.get("/").status_code == 200
    client.post("/logout")
    assert client.get("/api/segments").status_code == 401


def test_passwords_are_hashed_and_checked(runtime: Any) -> None:
    with runtime.sessions.begin() as s:
        u = add_user(s, "hash-check", "s3cret-pass", "admin")
        from roadwatch.store import models

        row = s.get(models.User, u.id)
        assert row is not None and "s3cret-pass" not in row.password_hash
        assert authenticate(s, "hash-check", "s3cret-pass") == u
        assert authenticate(s, "hash-check", "wrong-pass") is None
        assert authenticate(s, "nobody-here", "s3cret-pass") is None
        with pytest.raises(UserError, match="already exists"):
            add_user(s, "hash-check", "s3cret-pass", "admin")
        with pytest.raises(UserError, match="district"):
            add_user(s, "no-district", "s3cret-pass", "district_staff")
        with pytest.raises(UserError, match="at least"):
            add_user(s, "short-pw", "short", "viewer")


def test_a_district_user_sees_only_their_district(app: Any, runtime: Any) -> None:
    public = app.test_client()
    assert _post_report(public).status_code == 201  # lands in 金水区 (JS)
    js, zy, city = app.test_client(), app.test_client(), app.test_client()
    login(js, runtime, "district_staff", "JS")
    login(zy, runtime, "district_staff", "ZY")
    login(city, runtime, "viewer")
    seg_js = js.get("/api/segments").get_json()["features"]
    assert seg_js and {f["properties"]["district"] for f in seg_js} == {"JS"}
    assert len(city.get("/api/segments").get_json()["features"]) == runtime.ctx.size
    outlines = {f["id"] for f in city.get("/api/districts").get_json()["features"]}
    assert {"JS", "ZY"} <= outlines
    assert {f["id"] for f in js.get("/api/districts").get_json()["features"]} == {"JS"}
    assert len(js.get("/api/reports").get_json()["items"]) == 1
    assert zy.get("/api/reports").get_json()["items"] == []
    rid = city.get("/api/reports").get_json()["items"][0]["id"]
    assert zy.get(f"/api/reports/{rid}").status_code == 404
    assert js.get(f"/api/reports/{rid}").status_code == 200
    other = next(f["id"] for f in seg_js)
    assert zy.get(f"/api/segments/{other}").status_code == 404
    # a viewer only watches
    res = city.post("/api/review/" + rid, json={"invalid": True})
    assert res.status_code == 403


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["sqlite"], indirect=True)
def test_socketio_needs_a_login_and_district_rooms_filter(runtime: Any) -> None:
    with live_server(runtime) as server:
        anon = socketio.Client()
        with pytest.raises(socketio.exceptions.ConnectionError):
            anon.connect(server.url, namespaces=["/live"], transports=["websocket"], wait_timeout=5)
        anon.shutdown()
        got: dict[str, queue.Queue[dict[str, Any]]] = {}
        clients = []
        for who, role, district in (
            ("js", "district_staff", "JS"),
            ("zy", "district_staff", "ZY"),
            ("city", "viewer", None),
        ):
            q: queue.Queue[dict[str, Any]] = queue.Queue()
            got[who] = q
            c = socketio.Client()
            c.on("report", q.put, namespace="/live")
            c.connect(
                server.url,
                namespaces=["/live"],
                transports=["websocket"],
                headers={"Cookie": session_cookie(server.app, runtime, role, district)},
            )
            clients.append(c)
        try:
            res = server.app.test_client().post(
                "/api/reports",
                data=json.dumps(contract_example()),
                content_type="application/json",
                headers=intake_headers(server.app),
            )
            assert res.status_code == 201
            assert got["js"].get(timeout=5)["district"] == "JS"
            assert got["city"].get(timeout=5)["district"] == "JS"
            time.sleep(0.5)
            assert got["zy"].empty()
            # a resync replays only the user's district too
            zy_seen = clients[1].call("resync", {"since": 0}, namespace="/live", timeout=5)
            js_seen = clients[0].call("resync", {"since": 0}, namespace="/live", timeout=5)
            assert zy_seen["ok"] and js_seen["ok"]
            time.sleep(0.3)
            assert got["zy"].empty() and got["js"].get(timeout=5)["district"] == "JS"
        finally:
            for c in clients:
                c.disconnect()


def test_cli_users_add_and_first_admin(tmp_path: Any) -> None:
    env = {"ROADWATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'u.sqlite3'}", "PATH": "/usr/bin"}
    cmd = [sys.executable, "-m", "roadwatch.cli", "users"]
    ok = subprocess.run(
        [*cmd, "add", "ops1", "--role", "admin", "--password-stdin"],
        input="long-enough-pw\n",
        env=env,
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and "added ops1 (admin)" in ok.stdout, ok.stderr
    bad = subprocess.run(
        [*cmd, "add", "ds1", "--role", "district_staff", "--password-stdin"],
        input="long-enough-pw\n",
        env=env,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "--district" in bad.stderr
    # Only district staff are bound to a district (a viewer sees the whole city): a viewer
    # added with --district was listed under it, though nothing restricted it, while
    # `users role … --district` dropped it.
    viewer = subprocess.run(
        [*cmd, "add", "v1", "--role", "viewer", "--district", "JS", "--password-stdin"],
        input="long-enough-pw\n",
        env=env,
        capture_output=True,
        text=True,
    )
    assert viewer.returncode == 0 and viewer.stdout == "added v1 (viewer)\n", viewer.stdout
    listed = subprocess.run([*cmd, "list"], env=env, capture_output=True, text=True)
    assert "ops1" in listed.stdout
    assert [ln.split() for ln in listed.stdout.splitlines() if ln.startswith("v1 ")] == [
        ["v1", "viewer", "-"]
    ]


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_scripts_use_the_api_with_basic_credentials(app: Any, runtime: Any) -> None:
    """curl -u name:password: no login page, no cookie, the same roles and districts."""
    client = app.test_client()
    assert _post_report(client).status_code == 201  # in 金水区 (JS)
    viewer = make_user(runtime, "viewer")
    res = client.get("/api/reports", headers=_basic(viewer.username, PASSWORD))
    assert res.status_code == 200 and len(res.get_json()["items"]) == 1
    assert "WWW-Authenticate" not in res.headers  # browsers must never remember it
    assert client.get("/api/reports").status_code == 401  # no session was opened by it
    segs = client.get("/api/segments", headers=_basic(viewer.username, PASSWORD)).get_json()
    assert len(segs["features"]) == runtime.ctx.size
    zy = make_user(runtime, "district_staff", "ZY")
    assert client.get("/api/reports", headers=_basic(zy.username, PASSWORD)).get_json() == {
        "items": [],
        "next": None,
    }
    # a viewer still only watches
    rid = res.get_json()["items"][0]["id"]
    denied = client.post(
        f"/api/review/{rid}", json={"invalid": True}, headers=_basic(viewer.username, PASSWORD)
    )
    assert denied.status_code == 403
    for name, password in ((viewer.username, "wrong-password"), ("nobody", PASSWORD)):
        bad = client.get("/api/reports", headers=_basic(name, password))
        assert bad.status_code == 401
        assert bad.get_json()["errors"] == [
            {
                "field": "authorization",
                "code": "bad_credentials",
                "message": "the username or password is wrong",
            }
        ]
        assert "WWW-Authenticate" not in bad.headers
    # a page asked for with Basic credentials is served too (no redirect to the login page)
    assert client.get("/", headers=_basic(viewer.username, PASSWORD)).status_code == 200


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["sqlite"], indirect=True)
def test_socketio_script_clients_authenticate_on_connect(runtime: Any) -> None:
    user = make_user(runtime, "viewer")
    with live_server(runtime) as server:
        wrong = socketio.Client()
        with pytest.raises(socketio.exceptions.ConnectionError):
            wrong.connect(
                server.url,
                namespaces=["/live"],
                transports=["websocket"],
                auth={"username": user.username, "password": "wrong-password"},
                wait_timeout=5,
            )
        wrong.shutdown()
        for how in ("auth", "basic"):
            q: queue.Queue[dict[str, Any]] = queue.Queue()
            c = socketio.Client()
            c.on("report", q.put, namespace="/live")
            kwargs: dict[str, Any] = (
                {"auth": {"username": user.username, "password": PASSWORD}}
                if how == "auth"
                else {"headers": _basic(user.username, PASSWORD)}
            )
            c.connect(server.url, namespaces=["/live"], transports=["websocket"], **kwargs)
            try:
                body = contract_example()
                res = server.app.test_client().post(
                    "/api/reports",
                    data=json.dumps(body),
                    content_type="application/json",
                    headers=intake_headers(server.app),
                )
                assert res.status_code == 201
                assert q.get(timeout=5)["id"] == body["report_id"]
            finally:
                c.disconnect()
        # after too many wrong passwords the handshake is refused, saying why
        from roadwatch.accounts.throttle import ACCOUNT_FAILURES

        fresh = make_user(runtime, "viewer")  # its password is in no cache of good ones

        def handshake(password: str) -> str:
            """'connected', or the reason the server gave for refusing."""
            reasons: list[Any] = []
            c = socketio.Client()
            c.on("connect_error", reasons.append, namespace="/live")
            try:
                c.connect(
                    server.url,
                    namespaces=["/live"],
                    transports=["websocket"],
                    auth={"username": fresh.username, "password": password},
                    wait_timeout=15,
                )
                c.disconnect()
                return "connected"
            except socketio.exceptions.ConnectionError:
                return str(reasons[0]["message"]) if reasons else "refused without a reason"
            finally:
                c.shutdown()

        for _ in range(ACCOUNT_FAILURES):
            assert handshake("wrong-password") == "login required"
        assert handshake(PASSWORD).startswith("too many wrong passwords; try again in 10 min")


def test_first_admin_takes_the_configured_password(tmp_path: Any) -> None:
    from roadwatch.accounts.users import first_admin

    env = {"ROADWATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'a.sqlite3'}"}
    from roadwatch.settings import load_settings
    from roadwatch.store import db

    settings = load_settings(env={**env, "ROADWATCH_ADMIN_PASSWORD": "city-ops-2026"})
    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    sessions = db.make_sessionmaker(engine)
    first_admin(SimpleNamespace(settings=settings, sessions=sessions))
    with sessions.begin() as session:
        assert authenticate(session, "admin", "city-ops-2026") is not None
    # once an account exists the setting changes nothing
    later = load_settings(env={**env, "ROADWATCH_ADMIN_PASSWORD": "another-password"})
    first_admin(SimpleNamespace(settings=later, sessions=sessions))
    with sessions.begin() as session:
        assert authenticate(session, "admin", "city-ops-2026") is not None
        assert authenticate(session, "admin", "another-password") is None
    engine.dispose()


@pytest.mark.parametrize(
    "runtime", ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)], indirect=True
)
def test_a_resync_from_beyond_the_log_is_answered_not_trusted(runtime: Any) -> None:
    """A `since` past the newest event (another server's seq, a wiped database, a number
    too big for the database) gets an answer that says so, with the real newest seq:
    answering ok would let the client believe it is ahead and miss what comes next."""
    user = make_user(runtime, "viewer")
    with live_server(runtime) as server:
        res = server.app.test_client().post(
            "/api/reports",
            data=json.dumps(contract_example()),
            content_type="application/json",
            headers=intake_headers(server.app),
        )
        assert res.status_code == 201
        c = socketio.Client()
        c.connect(
            server.url,
            namespaces=["/live"],
            transports=["websocket"],
            auth={"username": user.username, "password": PASSWORD},
        )
        try:
            latest = c.call("resync", {"since": 0}, namespace="/live", timeout=5)["seq"]
            assert latest > 0
            for since in (latest + 1000, 2**63, 10**30):
                answer = c.call("resync", {"since": since}, namespace="/live", timeout=5)
                assert answer["ok"] is False and answer["seq"] == latest, answer
                assert "ahead" in answer["error"]
            # and the connection still works
            assert c.call("resync", {"since": latest}, namespace="/live", timeout=5) == {
                "ok": True,
                "seq": latest,
            }
        finally:
            c.disconnect()


def test_staff_logins_wait_after_too_many_wrong_passwords(app: Any, runtime: Any) -> None:
    """The form, HTTP Basic and the Socket.IO handshake share one count per account."""
    from roadwatch.accounts.throttle import ACCOUNT_FAILURES

    user = make_user(runtime, "viewer")
    client = app.test_client()
    for _ in range(ACCOUNT_FAILURES - 1):
        res = client.get("/api/reports", headers=_basic(user.username, "wrong-password"))
        assert res.status_code == 401
    page = client.get("/login").get_data(as_text=True)
    csrf = page.split('name="csrf" value="')[1].split('"')[0]
    form = {"username": user.username, "password": "still-wrong", "csrf": csrf}
    assert client.post("/login", data=form).status_code == 401  # the tenth
    # now even the right password waits, on the form and over Basic
    form["password"] = PASSWORD
    res = client.post("/login", data=form)
    assert res.status_code == 429 and "分钟后再试" in res.get_data(as_text=True)
    assert 500 <= int(res.headers["Retry-After"]) <= 600
    res = client.get("/api/reports", headers=_basic(user.username, PASSWORD))
    assert res.status_code == 429
    assert res.get_json()["errors"][0]["code"] == "too_many_attempts"
    # other accounts are not affected
    other = make_user(runtime, "viewer")
    assert client.get("/api/reports", headers=_basic(other.username, PASSWORD)).status_code == 200
