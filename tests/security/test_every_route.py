"""Every route of the web app answers bad input in words, never with a server error.

Walks the app's own URL map (so a route added later is covered without touching this
file): each path parameter filled with odd values, every query parameter the web layer
reads set to odd values, odd bodies for the writes; anonymous, a viewer, an admin and a
road chief signed in to the phone app.
A 5xx anywhere is a defect (/healthz's 503 aside: it reports that no broker runs here).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.test_on_the_spot import sign_in_a_chief

WEB = Path(__file__).resolve().parents[2] / "roadwatch" / "web"
# the query parameters the web layer reads, found in its source
_READS = re.compile(r"(?:args\.get\(|args\[|_arg\(|num\()\"([a-z_0-9]+)\"")
ARGS = sorted({m for f in WEB.glob("*.py") for m in _READS.findall(f.read_text("utf-8"))})
# set together, an odd api_key is refused first (401) and would hide every other parameter
TOGETHER = [a for a in ARGS if a != "api_key"]
# one parameter at a time (as an admin, who passes every permission check): odd values
ALONE = ["abc", "\u0000", "9" * 40]
# pages that compute over the whole network on every request (0.1-0.6 s here): only the
# parameters together, or this test would take minutes
SIGN_OUT = {"/logout", "/m/api/session"}
WHOLE_NETWORK = {"/leaders/plans", "/api/leaders/plans", "/api/segments", "/api/chiefs"}
ODD = ["", "-1", "1e309", "nan", "abc", "9" * 40, "../../etc/passwd", "\u0000", "🙂", "2026-13-45"]
PATH_VALUES = ["x", "0", "-1", "9" * 30, "🙂", "a" * 300, "00000000-0000-0000-0000-000000000000"]
BODIES = [
    None,
    b"not json",
    b"[]",
    b"{}",
    json.dumps(
        {"segment_id": "x", "note": 5, "ids": "x", "invalid": "yes", "password": 1, "role": {}}
    ).encode(),
    b'{"a":' * 200,
]


def test_the_web_layer_reads_query_parameters() -> None:
    assert {"limit", "cursor", "district", "bbox", "since"} <= set(ARGS)


def _paths(rule: Any) -> list[str]:
    """The rule's path with each odd value in every parameter."""
    if not rule.arguments:
        return [rule.rule]
    out = []
    for value in PATH_VALUES:
        path = rule.rule
        for name in rule.arguments:
            path = re.sub(rf"<(?:[a-z]+:)?{name}>", value, path)
        out.append(path)
    return out


def _server_errors(client: Any, method: str, path: str, alone: bool) -> list[str]:
    """What of the odd requests to ``path`` got a 5xx; ``alone``: also each query
    parameter on its own."""
    out = []
    if method == "GET":
        queries: list[dict[str, str]] = [{}] + [dict.fromkeys(TOGETHER, v) for v in ODD]
        if alone:
            queries += [{a: v} for a in ARGS for v in ALONE]
        for query in queries:
            res = client.get(path, query_string=query)
            res.close()
            if res.status_code >= 500 and path != "/healthz":
                out.append(f"GET {path}?{_shown(query)}: {res.status_code}")
        return out
    for body in BODIES:
        res = client.open(path, method=method, data=body, content_type="application/json")
        res.close()
        if res.status_code >= 500:
            out.append(f"{method} {path} {(body or b'')[:20]!r}: {res.status_code}")
    return out


def _shown(query: dict[str, str]) -> str:
    if len(query) > 1:
        return f"(every parameter {next(iter(query.values()))!r})"
    return "&".join(f"{k}={v[:20]!r}" for k, v in query.items())


@pytest.mark.parametrize("runtime", ["sqlite"], indirect=True)
def test_no_route_answers_odd_input_with_a_server_error(
    runtime: Any, app: Any, login_as: Any
) -> None:
    clients = {
        "anonymous": app.test_client(),
        "viewer": login_as("viewer"),
        "admin": login_as("admin"),
        "chief": app.test_client(),  # the phone app's session
    }
    sign_in_a_chief(runtime, clients["chief"])
    # signing out last: the signed-in clients must stay signed in for every other route
    rules = sorted(
        (r for r in app.url_map.iter_rules() if r.endpoint != "static"),
        key=lambda r: r.rule in SIGN_OUT,
    )
    assert len(rules) > 50
    first_sign_out = next(r for r in rules if r.rule in SIGN_OUT)
    failures: list[str] = []
    for rule in rules:
        if rule is first_sign_out:
            res = clients["admin"].get("/api/audit")
            assert res.status_code == 200, "the admin was signed out before the sign-out routes"
            res = clients["chief"].get("/m/api/me")
            assert res.status_code == 200, "the chief was signed out before the sign-out routes"
        paths = _paths(rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            for path in paths:
                for who, client in clients.items():
                    alone = path == paths[0] and (
                        who == "admin"
                        and path not in WHOLE_NETWORK
                        or who == "chief"
                        and path.startswith("/m/")
                    )
                    failures += [f"{who}: {f}" for f in _server_errors(client, method, path, alone)]
    assert not failures, "\n".join(failures[:40])
