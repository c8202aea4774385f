"""Issue 20, scope 5: a road chief signs in to the phone app with their mobile number as
well as their id; the number comes from `roadwatch chiefs import` (column `phone`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from roadwatch.accounts import chiefs as ca
from roadwatch.network.responsibility import (
    AssignmentImportError,
    apply_assignments,
    normalise_phone,
    read_assignments,
)
from roadwatch.store import models

HEADER = "segment_id,person_id,person_name,role,level,valid_from,phone"


def _csv(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def test_normalise_phone() -> None:
    assert normalise_phone("+86 138-0013-8000") == "13800138000"
    assert normalise_phone("0086 13800138000") == "13800138000"
    assert normalise_phone("(0371) 6788 1234") == "037167881234"
    assert normalise_phone("call me") is None and normalise_phone("12") is None


def test_import_checks_phones_and_sign_in_takes_the_number(
    runtime: Any, client: Any, tmp_path: Path
) -> None:
    segs = [s.id for s in runtime.ctx.network.segments[:3]]
    known = set(segs)
    tz = runtime.settings.tz
    bad = _csv(
        tmp_path / "bad.csv",
        [
            f"{segs[0]},zz-phone-1,张一,road_chief,3,2026-03-01,call me",
            f"{segs[1]},zz-phone-1,张一,road_chief,3,2026-03-01,138 0013 8000",
            f"{segs[2]},zz-phone-2,李二,road_chief,3,2026-03-01,+86 13800138000",
        ],
    )
    with pytest.raises(AssignmentImportError) as exc:
        read_assignments(bad, known, tz)
    assert exc.value.errors == [
        "row 2: phone 'call me' is not a phone number",
        "row 4: phone 13800138000 is already zz-phone-1's in this file",
    ]
    good = _csv(
        tmp_path / "good.csv",
        [f"{segs[0]},zz-phone-1,张一,road_chief,3,2026-03-01,+86 138-0013-8000"],
    )
    with runtime.sessions.begin() as s:
        apply_assignments(s, read_assignments(good, known, tz))
        password = ca.provision(s, only=["zz-phone-1"]).created["zz-phone-1"]
    with runtime.sessions() as s:
        person = s.get(models.Reporter, "zz-phone-1")
        assert person is not None and person.phone == "13800138000"
    # Another person with the same number, in a later file: refused, nothing changed.
    clash = _csv(
        tmp_path / "clash.csv", [f"{segs[1]},zz-phone-3,王三,road_chief,3,2026-04-01,13800138000"]
    )
    with (
        pytest.raises(AssignmentImportError, match="already zz-phone-1's"),
        runtime.sessions.begin() as s,
    ):
        apply_assignments(s, read_assignments(clash, known, tz))
    with runtime.sessions() as s:
        assert s.get(models.Reporter, "zz-phone-3") is None

    for login in ("13800138000", "+86 138 0013 8000", "zz-phone-1"):
        res = client.post("/m/api/session", json={"reporter_id": login, "password": password})
        assert res.status_code == 200, res.get_data()
        assert res.get_json()["chief"]["id"] == "zz-phone-1"
    res = client.post("/m/api/session", json={"reporter_id": "13800138000", "password": "x"})
    assert res.status_code == 401 and "手机号" in res.get_json()["errors"][0]["message"]
    res = client.post("/m/api/session", json={"reporter_id": "13900000000", "password": password})
    assert res.status_code == 401
