"""The contract in the repository (issue 16, acceptance d): docs/protocol.md, its JSON
Schemas, the AsyncAPI and OpenAPI documents are valid for their ecosystems' validators,
in step with the code, and every example in docs/protocol.md is accepted by a running
platform (over a real Mosquitto, and over HTTP).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import queue
import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import paho.mqtt.client as mqtt
import pytest
import yaml
from jsonschema import Draft7Validator, Draft202012Validator
from paho.mqtt.enums import CallbackAPIVersion

from roadwatch.ingest import schema as schema_mod
from roadwatch.ingest.errors import FieldError
from roadwatch.ingest.messages import Outcome
from roadwatch.ingest.topics import INBOUND_KINDS, Topics
from roadwatch.runtime import Runtime
from roadwatch.store import models
from tests.conftest import MOSQUITTO, make_settings, need_service
from tests.support.intake import intake_headers
from tests.support.server import live_server

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SCHEMAS = DOCS / "schemas"
ASYNCAPI_SCHEMA = SCHEMAS / "vendor" / "asyncapi-3.0.0.json"
# @asyncapi/specs 6.11.1, schemas/3.0.0-without-$id.json (docs/schemas/vendor/README.md)
ASYNCAPI_SCHEMA_SHA256 = "abe96881dbfaad495ccbb6bd8d3fb43ca18a13b9d7564849ccb66f39d5e5b20f"
# Routes that are files, not API: not described in openapi.yaml.
UNDOCUMENTED_ROUTES = ("/static/",)
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                yield v
            else:
                yield from _refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from _refs(v)


def _pointer(doc: Any, pointer: str) -> Any:
    node = doc
    for part in pointer.lstrip("/").split("/"):
        if not part:
            continue
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _unresolved_refs(path: Path) -> list[str]:
    """Every $ref of a document (and of the files it refers to) that points at nothing."""
    loaded: dict[Path, Any] = {}

    def load(p: Path) -> Any:
        if p not in loaded:
            text = p.read_text(encoding="utf-8")
            loaded[p] = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
        return loaded[p]

    bad: list[str] = []
    todo, done = [path.resolve()], set()
    while todo:
        current = todo.pop()
        if current in done:
            continue
        done.add(current)
        for ref in set(_refs(load(current))):
            file_part, _, fragment = ref.partition("#")
            target = (current.parent / file_part).resolve() if file_part else current
            if not target.is_file():
                bad.append(f"{current.relative_to(ROOT)}: {ref} (no file {target})")
                continue
            if file_part:
                todo.append(target)
            try:
                _pointer(load(target), fragment)
            except (KeyError, IndexError, ValueError, TypeError):
                bad.append(f"{current.relative_to(ROOT)}: {ref} (no such place)")
    return bad


# -- JSON Schemas -------------------------------------------------------------------------
def test_committed_schemas_are_the_generated_ones(tmp_path: Path) -> None:
    written = schema_mod.export(tmp_path)
    assert written, "roadwatch.ingest.schema.export wrote nothing"
    stale = []
    for path in written:
        committed = SCHEMAS / path.name
        if not committed.is_file() or committed.read_text(encoding="utf-8") != path.read_text(
            encoding="utf-8"
        ):
            stale.append(path.name)
    extra = sorted({p.name for p in SCHEMAS.glob("*.json")} - {p.name for p in written})
    assert not stale and not extra, (
        f"docs/schemas is out of step with the payload models: differing {stale}, no longer "
        f"generated {extra}. Run: python -m roadwatch.ingest.schema docs/schemas "
        "(and delete the files no longer generated)"
    )


def test_module_entry_point_writes_the_schemas(tmp_path: Path) -> None:
    assert schema_mod.main([str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        f"{name}.json" for name in schema_mod.schemas()
    )
    assert schema_mod.main([]) == 2


@pytest.mark.parametrize("name", sorted(p.stem for p in SCHEMAS.glob("*.json")))
def test_schema_is_valid_json_schema_2020_12(name: str) -> None:
    doc = json.loads((SCHEMAS / f"{name}.json").read_text(encoding="utf-8"))
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(doc)  # the meta-schema of draft 2020-12


def test_every_inbound_kind_has_a_schema() -> None:
    assert set(INBOUND_KINDS.values()) <= set(schema_mod.schemas())


def test_ack_schema_describes_what_the_platform_sends() -> None:
    """The ack model of the schema has exactly the keys Outcome.ack_body() produces."""
    validator = Draft202012Validator(schema_mod.schemas()["ack"])
    bodies = [
        Outcome("a", "accepted", "S1", "name", "d", {"distance_m": 1.0}, case_status="new"),
        Outcome(None, "rejected", errors=(FieldError("payload", "invalid_json", "bad"),)),
        Outcome("p", "accepted", covered=("S1", "S2")),
        Outcome("x", "duplicate"),
    ]
    fields = set(schema_mod.Ack.model_fields)
    for outcome in bodies:
        body = outcome.ack_body()
        assert set(body) <= fields, f"ack keys not in the schema: {set(body) - fields}"
        required = {n for n, f in schema_mod.Ack.model_fields.items() if f.is_required()}
        assert required <= set(body), f"schema requires {required - set(body)}"
        errors = [e.message for e in validator.iter_errors(body)]
        assert not errors, errors


def test_error_schema_describes_the_http_error_body() -> None:
    from roadwatch.web.errors import error_response

    with _bare_app().test_request_context():
        res = error_response(400, "limit", "invalid", "limit must be a whole number")
    body = (res[0] if isinstance(res, tuple) else res).get_json()
    errors = [
        e.message for e in Draft202012Validator(schema_mod.schemas()["error"]).iter_errors(body)
    ]
    assert not errors, errors


def _bare_app() -> Any:
    from flask import Flask

    return Flask("schema-test")


# -- AsyncAPI -------------------------------------------------------------------------------
def _asyncapi_validator() -> Draft7Validator:
    raw = ASYNCAPI_SCHEMA.read_bytes()
    assert hashlib.sha256(raw).hexdigest() == ASYNCAPI_SCHEMA_SHA256, (
        "docs/schemas/vendor/asyncapi-3.0.0.json is not the vendored file of "
        "@asyncapi/specs (see docs/schemas/vendor/README.md)"
    )
    meta = json.loads(raw)
    Draft7Validator.check_schema(meta)
    return Draft7Validator(meta)


def test_asyncapi_document_is_valid() -> None:
    """Validated against the official AsyncAPI 3.0.0 JSON Schema (@asyncapi/specs)."""
    validator = _asyncapi_validator()
    doc = _load_yaml(DOCS / "asyncapi.yaml")
    errors = [f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(doc)]
    assert not errors, "\n".join(errors)
    assert _unresolved_refs(DOCS / "asyncapi.yaml") == []
    # The validator does see mistakes (a guard against a schema that accepts anything).
    broken = json.loads(json.dumps(doc))
    broken["operations"]["sendAck"]["action"] = "publish"  # AsyncAPI 2's word
    assert list(validator.iter_errors(broken))


def test_asyncapi_channels_are_the_platforms_topics() -> None:
    doc = _load_yaml(DOCS / "asyncapi.yaml")
    addresses = {c["address"] for c in doc["channels"].values()}
    topics = Topics()
    expected = {s.replace("+", "{reporter}") for s in topics.subscriptions()}
    expected |= {topics.ack("{reporter}"), topics.notice("{person}")}
    assert addresses == expected
    received = {
        doc["channels"][op["channel"]["$ref"].rsplit("/", 1)[1]]["address"]
        for op in doc["operations"].values()
        if op["action"] == "receive"
    }
    assert received == {s.replace("+", "{reporter}") for s in topics.subscriptions()}
    for name, message in doc["components"]["messages"].items():
        ref = message["payload"]["schema"]["$ref"]
        assert ref == f"schemas/{name}.json", (name, ref)


# -- OpenAPI --------------------------------------------------------------------------------
def test_openapi_document_is_valid() -> None:
    """openapi-spec-validator, with the schema files it refers to."""
    from openapi_spec_validator import validate
    from openapi_spec_validator.readers import read_from_filename

    spec, base_uri = read_from_filename(str(DOCS / "openapi.yaml"))
    assert spec["openapi"].startswith("3.1")
    validate(spec, base_uri=base_uri)  # raises with the first problem
    # it resolves a file only where it needs to look inside: check every $ref here
    assert _unresolved_refs(DOCS / "openapi.yaml") == []
    broken = json.loads(json.dumps(spec))
    broken["paths"]["/healthz"]["get"]["responses"] = {"200": {"content": {}}}  # no description
    with pytest.raises(Exception, match="description"):
        validate(broken, base_uri=base_uri)


def _flask_path(rule: str) -> str:
    """`/api/x/<int:z>/<path:rest>` -> `/api/x/{z}/{rest}` (OpenAPI's form)."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


@pytest.fixture(scope="module")
def app_routes(tmp_path_factory: pytest.TempPathFactory, network_ctx: Any) -> set[tuple[str, str]]:
    """The app's routes, once per module from a runtime of its own (conftest's `app` is built
    per test on both databases; the route table is the same on either)."""
    from roadwatch.web import create_app

    rt = Runtime.build(make_settings(tmp_path_factory.mktemp("routes")), ctx=network_ctx)
    try:
        app, _sio = create_app(rt)
        out = set()
        for rule in app.url_map.iter_rules():
            if rule.rule.startswith(UNDOCUMENTED_ROUTES):
                continue
            for method in rule.methods or ():
                if method not in ("HEAD", "OPTIONS"):
                    out.add((_flask_path(rule.rule), method.lower()))
        return out
    finally:
        rt.stop()


def test_openapi_documents_every_route_and_only_routes(app_routes: set[tuple[str, str]]) -> None:
    doc = _load_yaml(DOCS / "openapi.yaml")
    documented = {
        (path, method)
        for path, item in doc["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }
    missing = sorted(app_routes - documented)
    extra = sorted(documented - app_routes)
    lines = [f"  not in docs/openapi.yaml: {m.upper()} {p}" for p, m in missing]
    lines += [f"  documented but no such route: {m.upper()} {p}" for p, m in extra]
    assert not lines, "docs/openapi.yaml and the app's routes differ:\n" + "\n".join(lines)


# -- the examples of docs/protocol.md -------------------------------------------------------
FENCE = re.compile(r"^```json(?P<info>[^\n]*)\n(?P<body>.*?)^```\s*$", re.M | re.S)


def protocol_examples() -> list[tuple[str, dict[str, str], Any]]:
    """(name, attributes, JSON) of every ```json block of docs/protocol.md, in order."""
    text = (DOCS / "protocol.md").read_text(encoding="utf-8")
    out = []
    for m in FENCE.finditer(text):
        attrs = dict(a.split("=", 1) for a in m["info"].split() if "=" in a)
        name = attrs.get("example")
        assert name, f"a ```json block of docs/protocol.md has no example= name:\n{m['body']}"
        out.append((name, attrs, json.loads(m["body"])))
    return out


def _schema_name(name: str, attrs: dict[str, str]) -> str:
    return attrs.get("schema") or name.split("-", 1)[0]


def test_protocol_examples_are_named_and_cover_every_message() -> None:
    examples = protocol_examples()
    names = [n for n, _a, _b in examples]
    assert len(names) == len(set(names)), f"example names repeat: {names}"
    covered = {_schema_name(n, a) for n, a, _b in examples}
    assert covered >= set(schema_mod.schemas()), (
        f"no example for {set(schema_mod.schemas()) - covered}"
    )
    for name, attrs, _body in examples:
        assert attrs.get("send") in (None, "mqtt", "http"), name
        if attrs.get("send"):
            assert "expect" in attrs, f"{name}: send= needs expect="


@pytest.mark.parametrize("name", [n for n, _a, _b in protocol_examples()])
def test_protocol_example_matches_its_schema(name: str) -> None:
    _n, attrs, body = next(e for e in protocol_examples() if e[0] == name)
    schema = json.loads((SCHEMAS / f"{_schema_name(name, attrs)}.json").read_text("utf-8"))
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]
    assert not errors, f"{name}: " + "; ".join(errors)


TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?[+-]\d\d:\d\d$")
UUID_TEXT = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _freshen(
    examples: list[tuple[str, dict[str, str], Any]],
) -> list[tuple[str, dict[str, str], Any]]:
    """The examples with new UUIDs (the same new id for the same old one, so links hold) and
    their times moved together so that the latest is a minute ago."""
    times: list[dt.datetime] = []

    def scan(v: Any) -> None:
        if isinstance(v, dict):
            for x in v.values():
                scan(x)
        elif isinstance(v, list):
            for x in v:
                scan(x)
        elif isinstance(v, str) and TIME.match(v):
            times.append(dt.datetime.fromisoformat(v))

    for _n, _a, body in examples:
        scan(body)
    shift = (
        dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1) - max(times) if times else dt.timedelta()
    )
    new_ids: dict[str, str] = {}

    def fresh(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: fresh(x) for k, x in v.items()}
        if isinstance(v, list):
            return [fresh(x) for x in v]
        if isinstance(v, str) and UUID_TEXT.match(v):
            return new_ids.setdefault(v, str(uuid.uuid4()))
        if isinstance(v, str) and TIME.match(v):
            return (dt.datetime.fromisoformat(v) + shift).isoformat(timespec="seconds")
        return v

    return [(n, a, fresh(b)) for n, a, b in examples]


class Device:
    """MQTT clients of the people in the examples: publish, read acks and notices."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.acks: queue.Queue[dict[str, Any]] = queue.Queue()
        self.notices: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"doc-{uuid.uuid4().hex[:8]}")
        self.c.on_message = self._on
        subscribed = threading.Event()
        self.c.on_subscribe = lambda *a: subscribed.set()
        self.c.connect(*MOSQUITTO)
        self.c.loop_start()
        self.c.subscribe([(f"{root}/acks/+", 1), (f"{root}/notices/+", 1)])
        assert subscribed.wait(5), "subscription not confirmed"

    def _on(self, _c: Any, _u: Any, m: mqtt.MQTTMessage) -> None:
        body = json.loads(m.payload)
        if "/acks/" in m.topic:
            self.acks.put(body)
        else:
            self.notices.put((m.topic.rsplit("/", 1)[1], body))

    def send(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        word = next(w for w, k in INBOUND_KINDS.items() if k == kind)
        topic = f"{self.root}/{word}/{body['reporter_id']}"
        self.c.publish(topic, json.dumps(body, ensure_ascii=False).encode(), qos=1)
        ack = self.acks.get(timeout=15)
        return ack

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def _case_status(rt: Runtime, report_id: str) -> str | None:
    with rt.sessions() as s:
        row = s.get(models.Report, report_id)
        return row.case_status if row is not None else None


@pytest.fixture
def platform(tmp_path: Path, network_ctx: Any) -> Iterator[tuple[Runtime, Any, str]]:
    """roadwatch with MQTT ingest on the shared Mosquitto, on a topic root of its own."""
    need_service("Mosquitto", *MOSQUITTO)
    root = f"rwdoc-{uuid.uuid4().hex[:8]}/v1"
    settings = make_settings(tmp_path, mqtt_topic_root=root, mqtt_url="mqtt://127.0.0.1:1883")
    rt = Runtime.build(settings, ctx=network_ctx)
    with live_server(rt, mqtt_ingest=True) as server:
        assert rt.mqtt is not None and rt.mqtt.subscribed.wait(5)
        yield rt, server, root
    rt.stop()


@pytest.mark.integration
def test_protocol_examples_are_accepted_by_the_running_system(
    platform: tuple[Runtime, Any, str],
) -> None:
    """Each `send=` example goes to the platform as printed (fresh ids, present times), in
    the document's order; its answer is the one written beside it (`expect=`), and every
    ack and notice that comes back matches its schema."""
    rt, server, root = platform
    schemas = schema_mod.schemas()
    ack_check = Draft202012Validator(schemas["ack"])
    notice_check = Draft202012Validator(schemas["notice"])
    examples = [e for e in _freshen(protocol_examples()) if e[1].get("send")]
    assert examples, "docs/protocol.md has no example to send"
    device = Device(root)
    client = server.app.test_client()
    report_ids: list[str] = []
    try:
        for name, attrs, body in examples:
            kind = _schema_name(name, attrs)
            if kind in ("rectification", "verification"):
                # the case must be dispatched first (the dispatcher runs beside ingest)
                deadline = time.monotonic() + 15
                while _case_status(rt, body["report_id"]) in (None, "new"):
                    assert time.monotonic() < deadline, f"{name}: the case was not dispatched"
                    time.sleep(0.05)
            if attrs["send"] == "mqtt":
                ack = device.send(kind, body)
            else:
                assert kind == "report", f"{name}: only reports have an HTTP intake example"
                res = client.post(
                    urljoin("/", "api/reports"),
                    json=body,
                    headers=intake_headers(server.app, body["reporter_id"]),
                )
                ack = res.get_json()
                assert res.status_code < 500, res.get_data(as_text=True)
            problems = [e.message for e in ack_check.iter_errors(ack)]
            assert not problems, f"{name}: the ack does not match ack.json: {problems}"
            status, _, code = attrs["expect"].partition(":")
            assert ack["status"] == status, f"{name}: expected {attrs['expect']}, got {ack}"
            if code:
                assert code in [e["code"] for e in ack["errors"]], f"{name}: {ack['errors']}"
            if kind == "report" and status == "accepted":
                report_ids.append(body["report_id"])
            if name == "patrol-end":
                assert isinstance(ack.get("covered_segments"), list), ack
        # The dispatch notice of the first report reached its road chief, in its documented shape.
        deadline = time.monotonic() + 10
        seen: list[dict[str, Any]] = []
        while not any(n.get("case_id") == report_ids[0] for n in seen):
            try:
                _person, notice = device.notices.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no dispatch notice for {report_ids[0]}: {seen}") from None
            problems = [e.message for e in notice_check.iter_errors(notice)]
            assert not problems, f"a notice does not match notice.json: {problems}: {notice}"
            seen.append(notice)
        assert _case_status(rt, report_ids[0]) == "closed"
    finally:
        device.close()


# -- no references outside the repository ---------------------------------------------------
OUTSIDE = ("CONTRACT" + ".md", "DOMAIN" + ".md", "../" + "shared")
SKIP_DIRS = {".git", "node_modules", "test-artifacts", "var", "__pycache__", ".venv"}


def test_no_file_refers_to_documents_outside_the_repository() -> None:
    hits = []
    for path in ROOT.rglob("*"):
        rel = path.relative_to(ROOT)
        if not path.is_file() or set(rel.parts) & SKIP_DIRS or rel.parts[0].endswith(".egg-info"):
            continue
        if path.suffix not in (
            ".py",
            ".md",
            ".toml",
            ".txt",
            ".sh",
            ".js",
            ".html",
            ".yaml",
            ".yml",
            ".json",
            ".cfg",
            ".ini",
            ".css",
            ".conf",
            "",
        ):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if any(word in line for word in OUTSIDE):
                hits.append(f"{rel}:{n}: {line.strip()[:100]}")
    assert not hits, (
        "references to documents outside the repository (use docs/protocol.md "
        "or docs/domain.md):\n" + "\n".join(hits)
    )
