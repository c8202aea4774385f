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
