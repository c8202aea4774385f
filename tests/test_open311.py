"""Open311 GeoReport v2 contract test, written from the spec's own example documents.

wiki.open311.org/GeoReport_v2 shows one example document per method, in XML and JSON.
Their structure (element names, their order, value types) is copied below; our answers
must have the same shape, in both formats, on SQLite and PostgreSQL, errors included.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import update

from roadwatch.settings import SettingsError, load_settings
from roadwatch.store import models
from tests.support.auth import login
from tests.support.examples import CST, contract_example
from tests.test_pipeline import inbound

API_KEY, OWNER = "test-key-0001", "citizen-app"
PHOTO = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

# -- the spec's example documents (structure and value types; texts shortened) ------------
SPEC_DISCOVERY_XML = """<?xml version="1.0" encoding="utf-8"?>
<discovery>
  <changeset>2011-02-03 14:29</changeset>
  <contact>You can email or call for assistance api@yourcity.net +1 (555) 555-5555</contact>
  <key_service>You can request a key here: http://api.yourcity.net/api_key/request</key_service>
  <endpoints>
    <endpoint>
      <specification>http://wiki.open311.org/GeoReport_v2</specification>
      <url>http://open311.sfgov.org/dev/v2</url>
      <changeset>2010-11-23 09:01</changeset>
      <type>test</type>
      <formats><format>text/xml</format><format>application/json</format></formats>
    </endpoint>
  </endpoints>
</discovery>"""
SPEC_DISCOVERY_JSON = {
    "changeset": "2011-02-03 14:29",
    "contact": "You can email or call for assistance api@yourcity.net +1 (555) 555-5555",
    "key_service": "You can request a key here: http://api.yourcity.net/api_key/request",
    "endpoints": [
        {
            "specification": "http://wiki.open311.org/GeoReport_v2",
            "url": "http://open311.sfgov.org/dev/v2",
            "changeset": "2010-11-23 09:01",
            "type": "test",
            "formats": ["text/xml", "application/json"],
        }
    ],
}
SPEC_SERVICES_XML = """<?xml version="1.0" encoding="utf-8"?>
<services>
  <service>
    <service_code>001</service_code>
    <service_name>Cans left out 24x7</service_name>
    <description>Garbage or recycling cans that have been left out.</description>
    <metadata>true</metadata>
    <type>realtime</type>
    <keywords>lorem, ipsum, dolor</keywords>
    <group>sanitation</group>
  </service>
</services>"""
SPEC_SERVICES_JSON = [
    {
        "service_code": "001",
        "service_name": "Cans left out 24x7",
        "description": "Garbage or recycling cans that have been left out.",
        "metadata": True,
        "type": "realtime",
        "keywords": "lorem, ipsum, dolor",
        "group": "sanitation",
    }
]
SPEC_DEFINITION_XML = """<?xml version="1.0" encoding="utf-8"?>
<service_definition>
  <service_code>DMV66</service_code>
  <attributes>
    <attribute>
      <variable>true</variable>
      <code>WHISHETN</code>
      <datatype>singlevaluelist</datatype>
      <required>true</required>
      <datatype_description></datatype_description>
      <order>1</order>
      <description>What is the ticket/tag/DL number?</description>
      <values>
        <value><key>123</key><name>Ford</name></value>
        <value><key>124</key><name>Chrysler</name></value>
      </values>
    </attribute>
  </attributes>
</service_definition>"""
SPEC_DEFINITION_JSON = {
    "service_code": "DMV66",
    "attributes": [
        {
            "variable": True,
            "code": "WHISHETN",
            "datatype": "singlevaluelist",
            "required": True,
            "datatype_description": None,
            "order": 1,
            "description": "What is the ticket/tag/DL number?",
            "values": [{"key": 123, "name": "Ford"}, {"key": 124, "name": "Chrysler"}],
        }
    ],
}
SPEC_POST_XML = """<?xml version="1.0" encoding="utf-8"?>
<service_requests>
  <request>
    <service_request_id>293944</service_request_id>
    <service_notice>The City will inspect and correct.</service_notice>
    <account_id/>
  </request>
</service_requests>"""
SPEC_POST_JSON = [
    {
        "service_request_id": 293944,
        "service_notice": "The City will inspect and correct.",
        "account_id": None,
    }
]
SPEC_REQUESTS_XML = """<?xml version="1.0" encoding="utf-8"?>
<service_requests>
  <request>
    <service_request_id>638344</service_request_id>
    <status>closed</status>
    <status_notes>Duplicate request.</status_notes>
    <service_name>Sidewalk and Curb Issues</service_name>
    <service_code>006</service_code>
    <description></description>
    <agency_responsible></agency_responsible>
    <service_notice></service_notice>
    <requested_datetime>2010-04-14T06:37:38-08:00</requested_datetime>
    <updated_datetime>2010-04-14T06:37:38-08:00</updated_datetime>
    <expected_datetime>2010-04-15T06:37:38-08:00</expected_datetime>
    <address>8TH AVE and JUDAH ST</address>
    <address_id>545483</address_id>
    <zipcode>94122</zipcode>
    <lat>37.762221815</lat>
    <long>-122.4651145</long>
    <media_url>http://city.gov.s3.amazonaws.com/requests/media/638344.jpg</media_url>
  </request>
</service_requests>"""
SPEC_REQUESTS_JSON = [
    {
        "service_request_id": 638344,
        "status": "closed",
        "status_notes": "Duplicate request.",
        "service_name": "Sidewalk and Curb Issues",
        "service_code": "006",
        "description": None,
        "agency_responsible": None,
        "service_notice": None,
        "requested_datetime": "2010-04-14T06:37:38-08:00",
        "updated_datetime": "2010-04-14T06:37:38-08:00",
        "expected_datetime": "2010-04-15T06:37:38-08:00",
        "address": "8TH AVE and JUDAH ST",
        "address_id": 545483,
        "zipcode": 94122,
        "lat": 37.762221815,
        "long": -122.4651145,
        "media_url": "http://city.gov.s3.amazonaws.com/requests/media/638344.jpg",
    }
]
SPEC_ERRORS_XML = """<?xml version="1.0" encoding="utf-8"?>
<errors>
  <error>
    <code>403</code>
    <description>Invalid api_key received -- can't proceed with create_request.</description>
  </error>
</errors>"""
SPEC_ERRORS_JSON = [
    {"code": 403, "description": "Invalid api_key received -- can't proceed with create_request."}
]

# Value types the spec's JSON examples use; an id or code may be a number or a string, and
# empty values (null in JSON) are allowed for the optional fields of a request.
NUMBER = (int, float)
ID = (int, str)
TIME_FIELDS = ("requested_datetime", "updated_datetime", "expected_datetime")


def shape(elem: ET.Element) -> Any:
    """An element's structure: its tag and its children's shapes (text ignored)."""
    return (elem.tag, [shape(c) for c in elem])


def first_shape(elem: ET.Element) -> Any:
    """Like shape, but a list element only keeps its first item (examples list one or two)."""
    kids = list(elem)
    if len(kids) > 1 and len({c.tag for c in kids}) == 1:
        kids = kids[:1]
    return (elem.tag, [first_shape(c) for c in kids])


def same_types(ours: Any, spec: Any, path: str = "") -> None:
    if isinstance(spec, dict):
        assert isinstance(ours, dict), path
        assert list(ours) == list(spec), f"{path}: {list(ours)} != {list(spec)}"
        for k in spec:
            same_types(ours[k], spec[k], f"{path}.{k}")
    elif isinstance(spec, list):
        assert isinstance(ours, list) and ours, path
        for item in ours:
            same_types(item, spec[0], f"{path}[]")
    elif spec is None:
        assert ours is None or isinstance(ours, str), path
    elif isinstance(spec, bool):
        assert isinstance(ours, bool), path
    elif isinstance(spec, int) and path.rsplit(".", 1)[-1] in ("service_request_id", "key"):
        assert isinstance(ours, ID), path
    elif isinstance(spec, int) and path.endswith(("address_id", "zipcode")):
        assert ours is None or isinstance(ours, ID), path
    elif isinstance(spec, float):
        assert ours is None or isinstance(ours, NUMBER), path
    elif isinstance(spec, int):
        assert isinstance(ours, int) and not isinstance(ours, bool), path
    else:
        assert ours is None or isinstance(ours, str), path


def spec_xml(text: str) -> ET.Element:
    return ET.fromstring(text.encode())


# -- fixtures and helpers --------------------------------------------------------------------
@pytest.fixture
def client(client: FlaskClient, runtime: Any, monkeypatch: pytest.MonkeyPatch) -> FlaskClient:
    """The shared anonymous client, with two Open311 api_keys configured (read per request)."""
    keys = f"{API_KEY}:{OWNER},other-key-0002:other"
    monkeypatch.setattr(runtime, "settings", runtime.settings.replace(open311_api_keys=keys))
    return client


def get(client: FlaskClient, path: str, fmt: str, status: int = 200) -> Any:
    res = client.get(f"/open311/v2/{path.replace('{fmt}', fmt)}")
    assert res.status_code == status, res.data[:500]
    if fmt == "xml":
        assert res.content_type.startswith("text/xml") and "charset=utf-8" in res.content_type
        assert res.data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
        return ET.fromstring(res.data)
    assert res.content_type.startswith("application/json")
    return json.loads(res.data)


def post(client: FlaskClient, fmt: str, status: int, **form: Any) -> Any:
    res = client.post(f"/open311/v2/requests.{fmt}", data=form)
    assert res.status_code == status, res.data[:500]
    return ET.fromstring(res.data) if fmt == "xml" else json.loads(res.data)


def assert_error(doc: Any, fmt: str, code: int) -> list[str]:
    """The spec's error document; returns the descriptions."""
    if fmt == "xml":
        assert first_shape(doc) == first_shape(spec_xml(SPEC_ERRORS_XML))
        assert all(e.findtext("code") == str(code) for e in doc)
        return [e.findtext("description") or "" for e in doc]
    same_types(doc, SPEC_ERRORS_JSON)
    assert all(e["code"] == code for e in doc)
    return [e["description"] for e in doc]


def make_reports(runtime: Any, *bodies: dict[str, Any]) -> list[Any]:
    outs = runtime.pipeline.process([inbound(b) for b in bodies])
    assert all(o.status == "accepted" for o in outs), outs
    return outs


def fmts() -> Any:
    return pytest.mark.parametrize("fmt", ["json", "xml"])


# -- discovery, services, service definitions -----------------------------------------------
@fmts()
def test_discovery(client: FlaskClient, fmt: str) -> None:
    doc = get(client, "discovery.{fmt}", fmt)
    if fmt == "xml":
        assert first_shape(doc) == first_shape(spec_xml(SPEC_DISCOVERY_XML))
        formats = [f.text for f in doc.iter("format")]
        url = doc.findtext("endpoints/endpoint/url")
        spec = doc.findtext("endpoints/endpoint/specification")
    else:
        same_types(doc, SPEC_DISCOVERY_JSON)
        formats = doc["endpoints"][0]["formats"]
        url, spec = doc["endpoints"][0]["url"], doc["endpoints"][0]["specification"]
    assert set(formats) == {"text/xml", "application/json"}
    assert spec == "http://wiki.open311.org/GeoReport_v2"
    assert url is not None and url.endswith("/open311/v2")


@fmts()
def test_services_one_per_category(client: FlaskClient, runtime: Any, fmt: str) -> None:
    doc = get(client, "services.{fmt}", fmt)
    cats = runtime.categories.by_code
    if fmt == "xml":
        assert first_shape(doc) == first_shape(spec_xml(SPEC_SERVICES_XML))
        items = [{c.tag: c.text for c in s} for s in doc]
        assert all(s["metadata"] in ("true", "false") for s in items)
    else:
        same_types(doc, SPEC_SERVICES_JSON)
        items = doc
    assert sorted(s["service_code"] for s in items) == sorted(cats)
    e0504 = next(s for s in items if s["service_code"] == "E0504")
    assert e0504["service_name"] == "店外经营" == cats["E0504"].name
    assert e0504["description"] == cats["E0504"].name_en
    assert e0504["type"] == "realtime" and e0504["group"] == "包秩序"
    assert "店外经营" in e0504["keywords"]


@fmts()
def test_service_definition(client: FlaskClient, fmt: str) -> None:
    doc = get(client, "services/E0504.{fmt}", fmt)
    if fmt == "xml":
        assert first_shape(doc) == first_shape(spec_xml(SPEC_DEFINITION_XML))
        assert doc.findtext("service_code") == "E0504"
        attr = doc.find("attributes/attribute")
        assert attr is not None and attr.findtext("code") == "severity"
        assert attr.findtext("datatype") == "singlevaluelist"
        assert [v.findtext("key") for v in attr.iter("value")] == ["1", "2", "3"]
    else:
        same_types(doc, SPEC_DEFINITION_JSON)
        (attr_json,) = doc["attributes"]
        assert attr_json["code"] == "severity" and attr_json["datatype"] == "singlevaluelist"
        assert [v["key"] for v in attr_json["values"]] == [1, 2, 3]
        assert all(v["name"] for v in attr_json["values"])


@fmts()
def test_unknown_service_is_404(client: FlaskClient, fmt: str) -> None:
    doc = get(client, "services/E9999.{fmt}", fmt, status=404)
    assert "E9999" in assert_error(doc, fmt, 404)[0]


@pytest.mark.parametrize(
    "path",
    ["services.csv", "discovery.html", "requests.yaml", "nothing.json", "requests/1/2.json"],
)
def test_unknown_format_or_resource_is_404(client: FlaskClient, path: str) -> None:
    res = client.get(f"/open311/v2/{path}")
    assert res.status_code == 404
    assert_error(json.loads(res.data), "json", 404)


# -- service requests: GET -------------------------------------------------------------------
@fmts()
def test_requests_follow_the_spec_example(client: FlaskClient, runtime: Any, fmt: str) -> None:
    body = contract_example()
    (out,) = make_reports(runtime, body)
    doc = get(client, "requests.{fmt}", fmt)
    if fmt == "xml":
        assert first_shape(doc) == first_shape(spec_xml(SPEC_REQUESTS_XML))
        (req,) = [{c.tag: c.text for c in r} for r in doc]
        assert req["lat"] is not None and float(req["lat"]) == pytest.approx(34.77, abs=0.02)
    else:
        same_types(doc, SPEC_REQUESTS_JSON)
        (req,) = doc
        assert isinstance(req["lat"], float) and isinstance(req["long"], float)
        assert req["zipcode"] is None
    with runtime.sessions() as s:
        row = s.get(models.Report, body["report_id"])
        assert row is not None and row.due_at is not None and row.assignee_id
        assignee = s.get(models.Reporter, row.assignee_id)
        assert assignee is not None
    assert req["service_request_id"] == body["report_id"]
    assert req["status"] == "open" and req["status_notes"].startswith("dispatched")
    assert req["service_code"] == "E0504" and req["service_name"] == "店外经营"
    assert req["description"] == body["note"]
    assert req["address_id"] == out.segment_id and req["address"] == out.segment_name
    assert req["address"].startswith("花园路")
    # issue 15: the post answering for the spot, never its holder's name
    assert assignee.name not in req["agency_responsible"]
    assert req["agency_responsible"] == "金水区 三级路长"
    assert req["service_notice"]
    for name in TIME_FIELDS:
        assert req[name].endswith("+08:00"), name
    assert dt.datetime.fromisoformat(req["requested_datetime"]) == dt.datetime.fromisoformat(
        body["observed_at"]
    )
    assert dt.datetime.fromisoformat(req["expected_datetime"]) == row.due_at
    # issue 15: the photo is served to the public only through its public request
    assert req["media_url"].endswith(f"/api/photos/{PHOTO}?request={body['report_id']}")


@fmts()
def test_request_by_id_is_a_list_of_one(client: FlaskClient, runtime: Any, fmt: str) -> None:
    bodies = [contract_example(category=c) for c in ("E0504", "E0505")]
    make_reports(runtime, *bodies)
    doc = get(client, f"requests/{bodies[1]['report_id']}.{{fmt}}", fmt)
    if fmt == "xml":
        assert doc.tag == "service_requests" and [r.tag for r in doc] == ["request"]
        assert doc.findtext("request/service_request_id") == bodies[1]["report_id"]
    else:
        assert [r["service_request_id"] for r in doc] == [bodies[1]["report_id"]]
    for missing in (str(uuid.uuid4()), "not-an-id"):
        err = get(client, f"requests/{missing}.{{fmt}}", fmt, status=404)
        assert missing in assert_error(err, fmt, 404)[0]


def ago(now: dt.datetime, **delta: float) -> str:
    return (now - dt.timedelta(**delta)).isoformat(timespec="seconds")


def ids_of(doc: Any) -> list[str]:
    return [r["service_request_id"] for r in doc]


def test_request_filters(client: FlaskClient, runtime: Any) -> None:
    now = dt.datetime.now(CST)
    old = (now - dt.timedelta(days=3)).isoformat(timespec="seconds")
    a = contract_example(category="E0504", observed_at=ago(now, minutes=2))
    b = contract_example(category="E0505", observed_at=old)
    c = contract_example(category="E0506", observed_at=ago(now, minutes=1))
    make_reports(runtime, a, b, c)
    with runtime.sessions.begin() as s:
        s.execute(
            update(models.Report)
            .where(models.Report.id == c["report_id"])
            .values(case_status="closed", closed_at=models.utcnow())
        )
    everything = get(client, "requests.{fmt}", "json")
    assert ids_of(everything) == [c["report_id"], a["report_id"], b["report_id"]]  # newest first
    only = get(client, "requests.{fmt}?service_code=E0505,E0506", "json")
    assert set(ids_of(only)) == {b["report_id"], c["report_id"]}
    closed = get(client, "requests.{fmt}?status=closed", "json")
    assert ids_of(closed) == [c["report_id"]] and closed[0]["status"] == "closed"
    opened = get(client, "requests.{fmt}?status=open", "json")
    assert set(ids_of(opened)) == {a["report_id"], b["report_id"]}
    assert len(get(client, "requests.{fmt}?status=open,closed", "json")) == 3
    since = (now - dt.timedelta(days=1)).isoformat()
    recent = get(client, f"requests.{{fmt}}?start_date={since.replace('+', '%2B')}", "json")
    assert set(ids_of(recent)) == {a["report_id"], c["report_id"]}
    until = (now - dt.timedelta(days=2)).isoformat().replace("+", "%2B")
    early = get(client, f"requests.{{fmt}}?end_date={until}", "json")
    assert ids_of(early) == [b["report_id"]]
    utc = (now - dt.timedelta(days=4)).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    ranged = get(client, f"requests.{{fmt}}?start_date={utc}&end_date={until}", "json")
    assert ids_of(ranged) == [b["report_id"]]
    # service_request_id overrides every other argument (the spec)
    picked = get(
        client,
        f"requests.{{fmt}}?service_request_id={a['report_id']},{c['report_id']}&status=open"
        "&service_code=E0505",
        "json",
    )
    assert set(ids_of(picked)) == {a["report_id"], c["report_id"]}


def test_default_window_is_the_last_90_days(client: FlaskClient, runtime: Any) -> None:
    a, b = contract_example(category="E0504"), contract_example(category="E0505")
    make_reports(runtime, a, b)
    long_ago = models.utcnow() - dt.timedelta(days=100)
    with runtime.sessions.begin() as s:
        s.execute(
            update(models.Report)
            .where(models.Report.id == b["report_id"])
            .values(observed_at=long_ago)
        )
    assert ids_of(get(client, "requests.{fmt}", "json")) == [a["report_id"]]
    start = (long_ago - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = (long_ago + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    found = get(client, f"requests.{{fmt}}?start_date={start}&end_date={end}", "json")
    assert ids_of(found) == [b["report_id"]]
    assert ids_of(get(client, f"requests/{b['report_id']}.{{fmt}}", "json")) == [b["report_id"]]


def test_paging(client: FlaskClient, runtime: Any) -> None:
    bodies = [contract_example() for _ in range(5)]
    make_reports(runtime, *bodies)
    seen: list[str] = []
    for page, size in ((1, 2), (2, 2), (3, 2)):
        res = client.get(f"/open311/v2/requests.json?page={page}&page_size={size}")
        assert res.status_code == 200
        items = ids_of(json.loads(res.data))
        assert len(items) == (2 if page < 3 else 1)
        assert ("Link" in res.headers) == (page < 3)
        seen += items
    assert sorted(seen) == sorted(b["report_id"] for b in bodies)
    assert len(get(client, "requests.{fmt}?page=4&page_size=2", "json")) == 0
    assert len(get(client, "requests.{fmt}", "json")) == 5  # page_size defaults to 50


def test_bbox_and_updated_after(client: FlaskClient, runtime: Any) -> None:
    a, b = contract_example(category="E0504"), contract_example(category="E0505")
    make_reports(runtime, a, b)
    inside = get(client, "requests.{fmt}?bbox=113.6,34.7,113.8,34.9", "json")
    assert set(ids_of(inside)) == {a["report_id"], b["report_id"]}
    assert get(client, "requests.{fmt}?bbox=113.0,34.0,113.1,34.1", "json") == []
    later = models.utcnow() + dt.timedelta(minutes=5)
    with runtime.sessions.begin() as s:
        s.execute(
            update(models.Report).where(models.Report.id == b["report_id"]).values(updated_at=later)
        )
    cut = (later - dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    changed = get(client, f"requests.{{fmt}}?updated_after={cut}", "json")
    assert ids_of(changed) == [b["report_id"]]
    shown = dt.datetime.fromisoformat(changed[0]["updated_datetime"])
    assert abs(shown - later) < dt.timedelta(seconds=1)
    early = (models.utcnow() - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert len(get(client, f"requests.{{fmt}}?updated_after={early}", "json")) == 2


@fmts()
@pytest.mark.parametrize(
    "query",
    [
        "start_date=yesterday",
        "end_date=2026-13-01T00:00:00Z",
        "start_date=2026-11-01T00:00:00",  # the spec requires the zone
        "updated_after=soon",
        "status=pending",
        "service_code=E9999",
        "service_request_id=abc",
        "page=0",
        "page_size=1001",
        "page_size=x",
        "bbox=1,2,3",
        "bbox=114,34,113,35",
        "start_date=2026-11-20T00:00:00Z&end_date=2026-11-01T00:00:00Z",
        "start_date=2026-01-01T00:00:00Z&end_date=2026-11-01T00:00:00Z",  # > 90 days
    ],
)
def test_bad_query_is_400(client: FlaskClient, fmt: str, query: str) -> None:
    doc = get(client, f"requests.{{fmt}}?{query}", fmt, status=400)
    assert assert_error(doc, fmt, 400)[0]


# -- service requests: POST ---------------------------------------------------------------------
@fmts()
def test_post_goes_through_the_pipeline(client: FlaskClient, runtime: Any, fmt: str) -> None:
    seg = runtime.ctx.network.segments[runtime.ctx.position["ZZ-JS-0173"]]
    doc = post(
        client,
        fmt,
        201,
        api_key=API_KEY,
        service_code="E0102",
        address_id=seg.id,
        description='垃圾堆放 <路口> & "东侧"',
        **{"attribute[severity]": "3"},
        email="someone@example.org",
        first_name="张",
    )
    if fmt == "xml":
        assert first_shape(doc) == first_shape(spec_xml(SPEC_POST_XML))
        rid = doc.findtext("request/service_request_id")
        account = doc.find("request/account_id")
        assert account is not None and account.text is None and len(account) == 0
    else:
        same_types(doc, SPEC_POST_JSON)
        rid = doc[0]["service_request_id"]
        assert doc[0]["account_id"] is None and doc[0]["service_notice"]
    assert rid is not None
    with runtime.sessions() as s:
        row = s.get(models.Report, rid)
        assert row is not None
        assert row.reporter_id == f"open311-{OWNER}" and row.transport == "http"
        assert row.severity == 3 and row.category == "E0102"
        assert row.note == '垃圾堆放 <路口> & "东侧"' and row.crs == "WGS84"
        assert row.segment_id == seg.id and row.case_status == "dispatched"
        assert "someone@example.org" not in row.raw.decode()  # personal data is not kept
        raw = json.loads(row.raw)
        assert raw["observed_at"].endswith("+08:00") and raw["segment_hint"] == seg.id
    listed = get(client, "requests.{fmt}", fmt)
    if fmt == "xml":
        (req,) = [{c.tag: c.text for c in r} for r in listed]
    else:
        (req,) = listed
    assert req["service_request_id"] == rid
    assert req["address_id"] == seg.id and req["address"] == seg.name
    assert req["description"] == '垃圾堆放 <路口> & "东侧"'  # escaped and read back intact
    assert req["service_code"] == "E0102" and req["status"] == "open"


def test_post_with_lat_long_is_snapped(client: FlaskClient, runtime: Any) -> None:
    seg = runtime.ctx.network.segments[runtime.ctx.position["ZZ-JS-0173"]]
    mid = seg.geometry.interpolate(0.5, normalized=True)  # WGS84, as Open311 sends it
    (doc,) = post(
        client,
        "json",
        201,
        api_key=API_KEY,
        service_code="E0504",
        lat=f"{mid.y:.6f}",
        long=f"{mid.x:.6f}",
        media_url=f"https://example.org/api/photos/{PHOTO}",
    )
    (req,) = get(client, f"requests/{doc['service_request_id']}.{{fmt}}", "json")
    assert req["address_id"] == seg.id and req["address"] == seg.name
    assert req["lat"] == pytest.approx(mid.y, abs=1e-6)
    assert req["long"] == pytest.approx(mid.x, abs=1e-6)
    assert req["media_url"].endswith(f"/api/photos/{PHOTO}?request={doc['service_request_id']}")


def test_post_left_for_review_says_it_is_not_public_yet(client: FlaskClient, runtime: Any) -> None:
    """A request the platform cannot place for certain waits for staff and is not public:
    the answer says so, since `requests/{id}` answers 404 until then."""
    seg = runtime.ctx.network.segments[runtime.ctx.position["ZZ-JS-0173"]]
    (sure,) = post(client, "json", 201, api_key=API_KEY, service_code="E0102", address_id=seg.id)
    assert "404" not in sure["service_notice"]
    (doc,) = post(  # far outside the city: placed nowhere, left for review
        client, "json", 201, api_key=API_KEY, service_code="E0102", lat="39.9", long="116.4"
    )
    rid = doc["service_request_id"]
    with runtime.sessions() as s:
        row = s.get(models.Report, rid)
        assert row is not None and row.status == "needs_review"
    assert "under review" in doc["service_notice"] and "404" in doc["service_notice"]
    get(client, f"requests/{rid}.{{fmt}}", "json", status=404)


@fmts()
@pytest.mark.parametrize("key", [None, "", "wrong-key-9999"])
def test_post_without_a_valid_key_is_403(
    client: FlaskClient, runtime: Any, fmt: str, key: str | None
) -> None:
    form: dict[str, Any] = {"service_code": "E0504", "lat": "34.77", "long": "113.68"}
    if key is not None:
        form["api_key"] = key
    doc = post(client, fmt, 403, **form)
    assert "api_key" in assert_error(doc, fmt, 403)[0]
    assert ids_of(get(client, "requests.{fmt}", "json")) == []


@fmts()
@pytest.mark.parametrize(
    ("form", "words"),
    [
        ({"lat": "34.77", "long": "113.68"}, "service_code is required"),
        ({"service_code": "E9999", "lat": "34.77", "long": "113.68"}, "E9999"),
        ({"service_code": "E0504"}, "location"),
        ({"service_code": "E0504", "lat": "34.77"}, "together"),
        ({"service_code": "E0504", "lat": "north", "long": "113.68"}, "lat must be a number"),
        # float() reads these, JSON has no such numbers: say it in the form's terms
        ({"service_code": "E0504", "lat": "nan", "long": "113.68"}, "lat must be a finite"),
        ({"service_code": "E0504", "lat": "34.77", "long": "-inf"}, "long must be a finite"),
        (
            {"service_code": "E0504", "lat": "34.77", "long": "113.68", "attribute[severity]": 9},
            "severity",
        ),
        # rejected by the pipeline itself: its own messages are passed on
        ({"service_code": "E0504", "address_id": "ZZ-NOPE-0001"}, "not a known segment"),
        ({"service_code": "E0504", "lat": "95", "long": "113.68"}, "lat must be between"),
        (
            {"service_code": "E0504", "lat": "34.77", "long": "113.68", "description": "x" * 2001},
            "description: description has 2,001 characters",
        ),
        # the pipeline's refusals name the request's own fields (it said `lon`, `note`)
        ({"service_code": "E0504", "lat": "34.77", "long": "200"}, "long: long must be between"),
    ],
)
def test_post_bad_request_is_400(
    client: FlaskClient, fmt: str, form: dict[str, Any], words: str
) -> None:
    doc = post(client, fmt, 400, api_key=API_KEY, **form)
    assert any(words in d for d in assert_error(doc, fmt, 400)), doc


@fmts()
@pytest.mark.parametrize(
    "description",
    [
        "%BE%AE%B8%C7%B6%AA%CA%A7",  # 井盖丢失 in GBK, percent-encoded: was stored as garbage
        "\xbe\xae\xb8\xc7",  # raw GBK bytes: the form read as empty, answered "Invalid api_key"
    ],
)
def test_a_form_not_in_utf8_is_400_in_plain_words(
    client: FlaskClient, runtime: Any, fmt: str, description: str
) -> None:
    body = (
        f"api_key={API_KEY}&service_code=E0504&lat=34.7739&long=113.6774&description="
    ).encode() + description.encode("latin-1")
    res = client.post(
        f"/open311/v2/requests.{fmt}",
        data=body,
        content_type="application/x-www-form-urlencoded",
    )
    assert res.status_code == 400, res.data[:500]
    doc = ET.fromstring(res.data) if fmt == "xml" else json.loads(res.data)
    assert any("UTF-8" in d for d in assert_error(doc, fmt, 400))
    with runtime.sessions() as s:
        assert s.query(models.Report).count() == 0
    # the same text in UTF-8, percent-encoded as a browser or curl does it, is taken
    utf8 = body.split(b"&description=")[0] + b"&description=%E4%BA%95%E7%9B%96%E4%B8%A2%E5%A4%B1"
    res = client.post(
        f"/open311/v2/requests.{fmt}", data=utf8, content_type="application/x-www-form-urlencoded"
    )
    assert res.status_code == 201, res.data[:500]
    with runtime.sessions() as s:
        (row,) = s.query(models.Report).all()
        assert row.note == "井盖丢失"


@fmts()
def test_a_json_body_is_told_to_send_a_form(client: FlaskClient, fmt: str) -> None:
    """GeoReport v2 posts a form. A city system that sent its fields as JSON, its valid key
    among them, was told "Invalid api_key" (403): the body was never read. Now it is told to
    send a form."""
    res = client.post(
        f"/open311/v2/requests.{fmt}",
        json={"api_key": API_KEY, "service_code": "E0504", "lat": 34.77, "long": 113.68},
    )
    assert res.status_code == 400, res.data[:500]
    doc = ET.fromstring(res.data) if fmt == "xml" else json.loads(res.data)
    (words,) = assert_error(doc, fmt, 400)
    assert "form" in words and "api_key" not in words


def test_a_new_request_says_new_in_words(client: FlaskClient, runtime: Any) -> None:
    """Before the dispatcher's turn a case is "new": its status_notes named it "new（new）"."""
    body = contract_example()
    make_reports(runtime, body)
    with runtime.sessions.begin() as s:
        s.execute(
            update(models.Report)
            .where(models.Report.id == body["report_id"])
            .values(case_status="new")
        )
    (req,) = get(client, "requests.{fmt}", "json")
    assert req["status"] == "open"
    assert req["status_notes"].startswith("new（已受理）："), req["status_notes"]


def test_rejected_post_is_kept_like_any_rejection(client: FlaskClient, runtime: Any) -> None:
    login(client, runtime)  # /api/rejected is staff-only
    post(client, "json", 400, api_key=API_KEY, service_code="E0504", address_id="ZZ-NOPE-0001")
    (kept,) = client.get("/api/rejected").get_json()["items"]
    assert kept["transport"] == "http" and json.loads(kept["raw"])["reporter_id"] == (
        f"open311-{OWNER}"
    )


@pytest.mark.parametrize(
    ("form", "field", "code"),
    [
        ({"lat": "34.77", "long": "113.68"}, "service_code", "required"),
        (
            {"service_code": "E9999", "lat": "34.77", "long": "113.68"},
            "service_code",
            "unknown_category",
        ),
        ({"service_code": "E0504", "lat": "north", "long": "113.68"}, "lat", "invalid_type"),
        ({"service_code": "E0504", "lat": "34.77", "long": "-inf"}, "long", "invalid"),
        ({"service_code": "E0504"}, "lat", "required"),
        (
            {"service_code": "E0504", "lat": "34.77", "long": "113.68", "attribute[severity]": 9},
            "attribute[severity]",
            "out_of_range",
        ),
    ],
)
def test_a_form_refused_before_the_pipeline_is_kept_too(
    client: FlaskClient, runtime: Any, form: dict[str, Any], field: str, code: str
) -> None:
    """A request refused for its form (an unknown service_code, a lat that is no number) was
    answered 400 and forgotten: nothing in /api/rejected, unlike the same report over MQTT or
    /api/reports. Now it is kept with the form as sent (without its api_key) and the system it
    came from, as is a request the pipeline refuses."""
    post(client, "json", 400, api_key=API_KEY, description="井盖丢失", **form)
    post(client, "json", 400, api_key=API_KEY, service_code="E0504", address_id="ZZ-NOPE-0001")
    login(client, runtime)  # /api/rejected is staff-only
    refused, piped = client.get("/api/rejected").get_json()["items"]
    for kept in (refused, piped):
        assert kept["transport"] == "http" and kept["reporter_id"] == f"open311-{OWNER}"
        assert API_KEY not in kept["raw"]
    assert any((e["field"], e["code"]) == (field, code) for e in refused["errors"]), refused
    assert "井盖丢失" in urllib.parse.unquote_plus(refused["raw"])


def test_xml_escaping_and_illegal_characters(client: FlaskClient, runtime: Any) -> None:
    note = "a < b & c > d \"q\" 's' ]]> 中文\x07bell"
    make_reports(runtime, contract_example(note=note))
    res = client.get("/open311/v2/requests.xml")
    assert b"<![CDATA[" not in res.data
    doc = ET.fromstring(res.data)  # would fail on a raw & or \x07
    assert doc.findtext("request/description") == note.replace("\x07", "")
    (req,) = get(client, "requests.{fmt}", "json")
    assert req["description"] == note  # JSON carries it unchanged


def test_other_methods_answer_in_the_spec_format(client: FlaskClient) -> None:
    res = client.delete("/open311/v2/requests.json")
    assert res.status_code == 405
    assert_error(json.loads(res.data), "json", 405)


# -- settings ----------------------------------------------------------------------------------
def test_api_key_setting() -> None:
    s = load_settings(env={}, overrides={"open311_api_keys": "abcdefgh:app1, ijklmnop:app.2"})
    assert s.open311_keys == {"abcdefgh": "app1", "ijklmnop": "app.2"}
    assert load_settings(env={}).open311_keys == {}
    for bad in ("nocolon", "short:app", "abcdefgh:", "abcdefgh:bad owner", "abcdefgh:a,abcdefgh:b"):
        with pytest.raises(SettingsError, match="open311_api_keys"):
            load_settings(env={}, overrides={"open311_api_keys": bad})
    with pytest.raises(SettingsError, match="ROADWATCH_OPEN311_API_KEYS"):
        load_settings(env={"ROADWATCH_OPEN311_API_KEYS": "x"})
