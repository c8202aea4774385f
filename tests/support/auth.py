"""Staff accounts for tests: make one and log a Flask test client (or a cookie jar) in."""

from __future__ import annotations

import re
import uuid
from typing import Any

from flask.testing import FlaskClient

from roadwatch.accounts.users import StaffUser, add_user

PASSWORD = "correct horse battery"


def make_user(runtime: Any, role: str = "admin", district: str | None = None) -> StaffUser:
    name = f"t-{role}-{uuid.uuid4().hex[:8]}"
    with runtime.sessions.begin() as session:
        return add_user(session, name, PASSWORD, role, district)


def login(
    client: FlaskClient, runtime: Any, role: str = "admin", district: str | None = None
) -> StaffUser:
    """Log the client in through the real login form (CSRF token and all)."""
    user = make_user(runtime, role, district)
    page = client.get("/login").get_data(as_text=True)
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, "the login page has no CSRF field"
    res = client.post(
        "/login", data={"username": user.username, "password": PASSWORD, "csrf": match[1]}
    )
    assert res.status_code == 302, res.get_data(as_text=True)
    return user


def staff_client(app: Any, runtime: Any, role: str = "admin", district: str | None = None) -> Any:
    """A Flask test client of `app`, logged in as a new staff user."""
    client = app.test_client()
    login(client, runtime, role, district)
    return client


def session_cookie(app: Any, runtime: Any, role: str = "admin", district: str | None = None) -> str:
    """`session=…` for a Cookie header (python-socketio clients, urllib, browsers)."""
    cookie = staff_client(app, runtime, role, district).get_cookie("session")
    assert cookie is not None
    return f"session={cookie.value}"
