"""Issue 20: a chief's report history and case photos are the chief's own."""

from __future__ import annotations

import io
import json
from typing import Any

from roadwatch.accounts import chiefs as ca
from tests.support.examples import contract_example
from tests.support.images import image_bytes
from tests.test_chief_accounts import _chiefs


def _signed_in(app: Any, rid: str, password: str) -> Any:
    client = app.test_client()
    res = client.post("/m/api/session", json={"reporter_id": rid, "password": password})
    assert res.status_code == 200
    return client


def test_history_and_photos_only_for_their_chief(runtime: Any, app: Any) -> None:
    (a, seg), (b, _) = _chiefs(runtime, 2)
    with runtime.sessions.begin() as s:
        done = ca.provision(s, only=[a, b], reset=[a, b])  # new passwords, had they accounts
        made = {**done.created, **done.reset}
    ca_client, cb_client = _signed_in(app, a, made[a]), _signed_in(app, b, made[b])
    up = ca_client.post("/m/api/photos", data={"photo": (io.BytesIO(image_bytes("JPEG")), "p.jpg")})
    sha = up.get_json()["sha256"]
    feature = runtime.ctx.features[runtime.ctx.position[seg]]
    lon, lat = feature["geometry"]["coordinates"][0]
    body = contract_example(
        reporter_id=a, lat=lat, lon=lon, crs="WGS84", photos=[sha], heading_deg=...
    )
    res = ca_client.post("/m/api/reports", data=json.dumps(body))
    assert res.status_code in (201, 202), res.get_data()

    mine = ca_client.get("/m/api/reports").get_json()["items"]
    assert [r["id"] for r in mine] == [body["report_id"]]
    assert mine[0]["outcome"] and mine[0]["category_name"] == "店外经营"
    one = ca_client.get(f"/m/api/reports/{body['report_id']}")
    assert one.status_code == 200 and one.get_json()["id"] == body["report_id"]
    with ca_client.get(f"/m/api/photos/{sha}") as res:
        assert res.status_code == 200 and res.mimetype == "image/jpeg"

    # Another chief sees none of it.
    assert cb_client.get("/m/api/reports").get_json()["items"] == []
    assert cb_client.get(f"/m/api/reports/{body['report_id']}").status_code == 404
    assert cb_client.get(f"/m/api/photos/{sha}").status_code == 404
    assert app.test_client().get(f"/m/api/photos/{sha}").status_code == 401
    assert ca_client.get("/m/api/photos/not-a-hash").status_code == 404
