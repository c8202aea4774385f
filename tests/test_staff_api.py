"""Staff accounts over HTTP (/api/users): administrators only, the same rules as the
command line, each change in the audit log under the logged-in administrator."""

from __future__ import annotations

import uuid
from typing import Any

from roadwatch.store import audit


def _audit(runtime: Any, action: str, target: str) -> list[dict[str, Any]]:
    with runtime.sessions() as session:
        return [r for r in audit.entries(session, action=action, limit=50) if r["target"] == target]


def test_only_administrators_manage_accounts(login_as: Any) -> None:
    for role, district in (("viewer", None), ("district_staff", "JS")):
        client = login_as(role, district)
        assert client.get("/api/users").status_code == 403
        body = {"username": "x-" + uuid.uuid4().hex[:6], "password": "long enough", "role": "admin"}
        assert client.post("/api/users", json=body).status_code == 403
    assert login_as("admin").get("/admin/users").status_code == 200
    assert login_as("district_staff", "JS").get("/admin/users").status_code == 403


def test_add_change_disable_and_reset_an_account(login_as: Any, runtime: Any) -> None:
    admin = login_as("admin")
    me = admin.get("/api/me").get_json()["username"]
    name = "duty-" + uuid.uuid4().hex[:6]
    new = {"username": name, "password": "duty-password", "role": "district_staff"}
    missing = admin.post("/api/users", json=new)  # district staff without a district
    assert missing.status_code == 422 and "district" in missing.get_json()["errors"][0]["message"]
    unknown = admin.post("/api/users", json={**new, "district": "XX"})
    assert unknown.status_code == 422
    assert admin.post("/api/users", json={**new, "district": "JS"}).status_code == 201
    assert admin.post("/api/users", json={**new, "district": "JS"}).status_code == 409
    rows = {u["username"]: u for u in admin.get("/api/users").get_json()["items"]}
    assert rows[name]["district"] == "JS" and rows[name]["active"] is True
    assert "password_hash" not in rows[name]

    moved = admin.patch(f"/api/users/{name}", json={"role": "district_staff", "district": "ZY"})
    assert moved.status_code == 200
    assert admin.patch(f"/api/users/{name}", json={"active": False}).status_code == 200
    assert admin.patch(f"/api/users/{name}", json={}).status_code == 400
    short = admin.post(f"/api/users/{name}/password", json={"password": "short"})
    assert short.status_code == 422
    assert (
        admin.post(f"/api/users/{name}/password", json={"password": "new-password"}).status_code
        == 200
    )
    assert admin.patch("/api/users/nobody-here", json={"active": True}).status_code == 404
    rows = {u["username"]: u for u in admin.get("/api/users").get_json()["items"]}
    assert (rows[name]["district"], rows[name]["active"]) == ("ZY", False)
    for action in ("user.add", "user.role", "user.active", "user.passwd"):
        (entry,) = _audit(runtime, action, name)
        assert entry["actor"] == me, action


def test_chiefs_accounts_provision_reset_and_revoke(login_as: Any, runtime: Any) -> None:
    from sqlalchemy import delete, select

    from roadwatch.accounts import chiefs as ca
    from roadwatch.store import models

    assert login_as("district_staff", "JS").get("/api/chiefs").status_code == 403
    admin = login_as("admin")
    me = admin.get("/api/me").get_json()["username"]
    with runtime.sessions() as session:
        chief = session.scalars(
            select(models.Reporter.id)
            .where(models.Reporter.kind == "person")
            .order_by(models.Reporter.id)
        ).first()
    assert chief is not None
    with runtime.sessions.begin() as session:  # start without an account
        session.execute(delete(models.ChiefDevice).where(models.ChiefDevice.reporter_id == chief))
        session.execute(delete(models.ChiefAccount).where(models.ChiefAccount.reporter_id == chief))
    rows = {c["id"]: c for c in admin.get("/api/chiefs").get_json()["items"]}
    assert rows[chief]["account"] is False and rows[chief]["devices"] == 0
    first = admin.post(f"/api/chiefs/{chief}/provision").get_json()
    assert first["reset"] is False and len(first["password"]) >= 8
    with runtime.sessions.begin() as session:
        assert ca.authenticate(session, chief, first["password"]) is not None
        ca.issue_device(session, chief, "test phone")
    assert {c["id"]: c for c in admin.get("/api/chiefs").get_json()["items"]}[chief]["devices"] == 1
    second = admin.post(f"/api/chiefs/{chief}/provision").get_json()
    assert second["reset"] is True and second["password"] != first["password"]
    with runtime.sessions() as session:
        assert ca.authenticate(session, chief, first["password"]) is None
        assert ca.list_devices(session, chief) == []  # a new password signs devices out
        ca_ok = ca.authenticate(session, chief, second["password"])
    assert ca_ok is not None
    with runtime.sessions.begin() as session:
        ca.issue_device(session, chief, "another phone")
    revoked = admin.post(f"/api/chiefs/{chief}/revoke").get_json()["revoked"]
    assert len(revoked) == 1
    assert admin.post("/api/chiefs/nobody-at-all/provision").status_code == 404
    assert [e["actor"] for e in _audit(runtime, "chief.provision", chief)] == [me, me]
    assert _audit(runtime, "chief.device_revoke", chief)[0]["actor"] == me
    assert admin.get("/admin/chiefs").status_code == 200
