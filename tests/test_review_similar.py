"""Issue 21.5: staff settle similar pending reports together; each decision is a label."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import shapely
from flask.testing import FlaskClient
from sqlalchemy import select

from roadwatch.store import models
from tests.support.examples import contract_example
from tests.test_pipeline import inbound

NORTH_DEG = 0.001  # ~111 m: out of the snapper's reach, within a reviewer's 150 m


def _north_edge(runtime: Any) -> tuple[float, float, str]:
    """A spot ~111 m due north of the network's northernmost vertex (no road nearer, so
    the report needs review) and that vertex's segment: the one a reviewer may choose."""
    best: tuple[float, float, str] | None = None
    for seg in runtime.ctx.network.segments:
        for lon, lat in shapely.get_coordinates(seg.geometry).tolist():
            if best is None or lat > best[0]:
                best = (lat, lon, seg.id)
    assert best is not None
    return best[0] + NORTH_DEG, best[1], best[2]


def _pending(
    runtime: Any, n: int, reporter: str = "zz-jinshui-0421", dlat: float = 0.0
) -> list[str]:
    lat, lon, _ = _north_edge(runtime)
    bodies = [
        contract_example(
            lat=lat + dlat + 0.00003 * i,  # ~3 m apart
            lon=lon,
            crs="WGS84",
            reporter_id=reporter,
        )
        for i in range(n)
    ]
    outs = runtime.pipeline.process([inbound(b, reporter=reporter) for b in bodies])
    assert [o.status for o in outs] == ["needs_review"] * n
    return [b["report_id"] for b in bodies]


def test_ten_similar_reports_settled_in_one_action(
    login_as: Callable[..., FlaskClient], runtime: Any
) -> None:
    client = login_as("admin")
    ten = _pending(runtime, 10)
    elsewhere = _pending(runtime, 1, dlat=0.005)  # the same reporter 550 m away
    someone_else = _pending(runtime, 1, reporter="zz-zhongyuan-0001")  # the same place
    first = ten[0]
    got = client.get(f"/api/review/{first}/similar").get_json()
    assert got["ids"][0] == first and sorted(got["ids"]) == sorted(ten)
    target = _north_edge(runtime)[2]  # the nearest road, 111 m away

    # a report that is not similar cannot be slipped into the set
    bad = client.post(
        f"/api/review/{first}/similar",
        json={"segment_id": target, "ids": [first, *elsewhere]},
    )
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["code"] == "not_similar"

    ok = client.post(
        f"/api/review/{first}/similar", json={"segment_id": target, "note": "同一店铺"}
    )
    assert ok.status_code == 200, ok.get_json()
    assert sorted(ok.get_json()["settled"]) == sorted(ten)
    left = {q["id"] for q in client.get("/api/review").get_json()["items"]}
    assert left == {*elsewhere, *someone_else}
    with runtime.sessions() as s:
        rows = s.scalars(select(models.Report).where(models.Report.id.in_(ten))).all()
        assert {(r.status, r.segment_id) for r in rows} == {("accepted", target)}
        labels = s.scalars(
            select(models.SnapLabel).where(models.SnapLabel.report_id.in_(ten))
        ).all()
        assert sorted(lb.report_id for lb in labels) == sorted(ten)
        assert {(lb.source, lb.segment_id, lb.category) for lb in labels} == {
            ("review", target, "E0504")
        }
        assert all(lb.lat is not None and lb.accuracy_m == 12.0 for lb in labels)
        trans = s.scalars(
            select(models.ReportTransition).where(
                models.ReportTransition.report_id.in_(ten),
                models.ReportTransition.to_status == "accepted",
            )
        ).all()
        assert len(trans) == 10
    got = client.get("/api/review/labels?source=review&limit=100000").get_json()
    mine = [i for i in got["items"] if i["report_id"] in set(ten)]
    assert len(mine) == 10 and {i["segment_id"] for i in mine} == {target}
    assert got["placed"] >= 10 and got["snapper_best_agreed"] <= got["placed"]
    # settling again: they are no longer pending
    again = client.post(f"/api/review/{first}/similar", json={"segment_id": target})
    assert again.status_code == 409


def test_single_settle_and_invalid_are_labels_too(
    login_as: Callable[..., FlaskClient], runtime: Any
) -> None:
    client = login_as("admin")
    one, two = _pending(runtime, 2, dlat=0.0002)
    assert client.post(f"/api/review/{one}", json={"invalid": True}).status_code == 200
    with runtime.sessions() as s:
        (label,) = s.scalars(
            select(models.SnapLabel).where(models.SnapLabel.report_id.in_([one, two]))
        ).all()
        assert (label.report_id, label.segment_id, label.source) == (one, None, "review")
    # narrowing to a subset settles only that subset
    three = _pending(runtime, 1, dlat=0.0002)[0]
    target = _north_edge(runtime)[2]
    r = client.post(f"/api/review/{two}/similar", json={"segment_id": target, "ids": [two]})
    assert r.status_code == 200 and "settled" not in r.get_json()
    left = {q["id"] for q in client.get("/api/review").get_json()["items"]}
    assert three in left and not {one, two} & left
