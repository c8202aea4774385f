"""Issue 20: text answers are gzipped for clients that accept it (the phone app on 3G)."""

from __future__ import annotations

import gzip
from typing import Any

from sqlalchemy import select

GZ = {"Accept-Encoding": "gzip, deflate, br"}
MQTT_JS = "/static/vendor/mqtt-5.16.0/mqtt.min.js"


def test_static_javascript_is_gzipped_once_and_still_revalidates(client: Any) -> None:
    with client.get(MQTT_JS) as plain:
        raw = plain.get_data()
        assert plain.headers.get("Content-Encoding") is None and len(raw) > 300_000
    for _ in range(2):  # the second answer comes from the cache: the same bytes
        with client.get(MQTT_JS, headers=GZ) as res:
            assert res.status_code == 200 and res.headers["Content-Encoding"] == "gzip"
            body = res.get_data()
            assert gzip.decompress(body) == raw
            assert len(body) < len(raw) / 3 and int(res.headers["Content-Length"]) == len(body)
            assert "Accept-Encoding" in res.headers["Vary"]
            etag = res.headers["ETag"]
            assert etag.startswith('W/"')
    with client.get(MQTT_JS, headers={**GZ, "If-None-Match": etag}) as res:
        assert res.status_code == 304


def test_phone_shell_and_api_json_are_gzipped(client: Any, runtime: Any) -> None:
    from roadwatch.accounts import chiefs as ca
    from roadwatch.store import models

    with client.get("/m/", headers=GZ) as res:
        assert res.headers["Content-Encoding"] == "gzip"
        assert "路长通" in gzip.decompress(res.get_data()).decode()
    with runtime.sessions() as s:
        chief = s.scalars(
            select(models.Assignment.reporter_id).where(models.Assignment.level == 3)
        ).first()
    with runtime.sessions.begin() as s:
        done = ca.provision(s, only=[chief], reset=[chief])
        password = {**done.created, **done.reset}.get(chief)
    assert password
    res = client.post("/m/api/session", json={"reporter_id": chief, "password": password})
    assert res.status_code == 200 and res.headers.get("Content-Encoding") is None  # a POST
    token = res.get_json()["device"]["token"]
    with client.get("/m/api/me", headers={**GZ, "Authorization": f"Bearer {token}"}) as res:
        assert res.headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(res.get_data()).startswith(b"{")


def test_login_page_with_its_csrf_token_is_not_compressed(client: Any) -> None:
    # BREACH: a secret beside reflected input (`next`) must not be compressed.
    with client.get("/login?next=/x", headers=GZ) as res:
        assert res.status_code == 200 and res.headers.get("Content-Encoding") is None


def test_phone_bundle_is_gzipped_and_revalidated(client: Any) -> None:
    with client.get("/m/app.js", headers=GZ) as res:
        assert res.status_code == 200 and res.headers["Content-Encoding"] == "gzip"
        assert b"// ---- main.js" in gzip.decompress(res.get_data())
        etag = res.headers["ETag"]
    with client.get("/m/app.js", headers={**GZ, "If-None-Match": etag}) as res:
        assert res.status_code == 304
