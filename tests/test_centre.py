"""Issue 7: the command centre's API — stats, the event log for replay, segment panel data."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask.testing import FlaskClient

from tests.support.auth import login
from tests.support.examples import contract_example
from tests.support.intake import intake_headers


@pytest.fixture
def client(login_as: Any) -> FlaskClient:
    """Here `client` is a logged-in viewer: the centre's API is staff-only."""
    client: FlaskClient = login_as("viewer")
    return client


def _report(client: FlaskClient, **changes: Any) -> dict[str, Any]:
    body = contract_example(**changes)
    res = client.post(
        "/api/reports",
        data=json.dumps(body),
        content_type="application/json",
        headers=intake_headers(client.application),
    )
    assert res.status_code == 201, res.get_json()
    out: dict[str, Any] = res.get_json()
    return out


def _iso(t: dt.datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def test_events_by_time_range_paged_in_seq_order(client: FlaskClient) -> None:
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    acks = [_report(client, category=c) for c in ("E0504", "E0505", "E0201")]
    after = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
    q = f"/api/events?since={_iso(before)}&until={_iso(after)}"
    whole = client.get(q).get_json()
    seqs = [e["seq"] for e in whole["items"]]
    assert seqs == sorted(seqs) and whole["next"] is None
    reports = [e["payload"]["id"] for e in whole["items"] if e["kind"] == "report"]
    assert reports == [a["id"] for a in acks]
    assert {"report", "segment"} <= {e["kind"] for e in whole["items"]}
    # paging one at a time gives the same list
    paged, url = [], q + "&limit=1"
    while url:
        doc = client.get(url).get_json()
        paged += [e["seq"] for e in doc["items"]]
        nxt = doc["next"]
        url = (urlsplit(nxt).path + "?" + urlsplit(nxt).query) if nxt else None
    assert paged == seqs
    # nothing before that range
    old = client.get(
        f"/api/events?since={_iso(before - dt.timedelta(days=2))}&until={_iso(before)}"
    )
    assert old.get_json()["items"] == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("", "since"),
        ("?since=yesterday", "since"),
        ("?since=2026-11-02T00:00:00Z&until=2026-11-01T00:00:00Z", "until"),
        ("?since=2026-01-01T00:00:00Z&until=2026-06-01T00:00:00Z", "until"),
        ("?since=2026-11-01T00:00:00Z&limit=0", "limit"),
        ("?since=2026-11-01T00:00:00Z&cursor=garbage", "cursor"),
    ],
)
def test_events_bad_queries_are_plain_400s(client: FlaskClient, query: str, field: str) -> None:
    res = client.get("/api/events" + query)
    assert res.status_code == 400
    assert res.get_json()["errors"][0]["field"] == field


def test_replay_state_is_the_last_segment_state_before_a_time(client: FlaskClient) -> None:
    t0 = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    ack = _report(client)
    t1 = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    assert client.get(f"/api/replay/state?at={_iso(t0)}").get_json()["states"] == []
    doc = client.get(f"/api/replay/state?at={_iso(t1)}").get_json()
    (state,) = [s for s in doc["states"] if s["segment_id"] == ack["segment_id"]]
    assert state["open"] == 1 and state["score"] < 100 and doc["seq"] > 0
    assert client.get("/api/replay/state").status_code == 400


def test_stats_count_today_by_category_and_district(
    app: Any, client: FlaskClient, runtime: Any
) -> None:
    _report(client, category="E0504")
    _report(client, category="E0504")  # corroborates the first: still a report of today
    _report(client, category="E0505")
    st = client.get("/api/stats").get_json()
    assert st["reports_today"] == 3
    assert st["top_categories"][0] == {
        "code": "E0504",
        "name": "店外经营",
        "name_en": st["top_categories"][0]["name_en"],
        "count": 2,
    }
    assert st["districts"]["JS"]["reports_today"] == 3 and st["open"] >= 1
    # the same counters come with the snapshot, from the same transaction as its seq
    snap = client.get("/api/segments").get_json()
    assert snap["stats"]["reports_today"] == 3 and snap["stats"]["categories"]["E0505"] == 1
    other = app.test_client()
    login(other, runtime, "district_staff", "ZY")
    assert other.get("/api/stats").get_json()["reports_today"] == 0


def test_segment_panel_lists_open_cases_and_recent_reports(client: FlaskClient) -> None:
    ack = _report(client)
    doc = client.get(f"/api/segments/{ack['segment_id']}").get_json()["properties"]
    (case,) = doc["open_cases"]
    assert case["id"] == ack["id"] and case["category_name"] == "店外经营"
    assert case["photos"] == [] and case["photos_pending"] == 1  # named, not uploaded yet
    assert doc["recent"][0]["id"] == ack["id"]
    assert any(p["role"] == "road_chief" for p in doc["responsible_now"])
