"""Identities for HTTP intake in tests: an API key bound to one reporter (issue 15)."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from roadwatch.accounts.apikeys import add_key
from roadwatch.accounts.reporters import save_reporter

# A road chief of the bundled demo network (synced into every test database), the reporter
# of docs/protocol.md's example report.
CHIEF = "zz-jinshui-0421"


def api_key(runtime: Any, reporter: str = CHIEF, kind: str | None = None) -> str:
    """A new API key filing as `reporter` (registered first with `kind` if given)."""
    with runtime.sessions.begin() as session:
        if kind is not None:
            save_reporter(session, reporter, kind)
            session.flush()
        return add_key(session, reporter=reporter).key


def key_headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def with_key(client: FlaskClient, runtime: Any, reporter: str = CHIEF) -> FlaskClient:
    """Make every request of `client` carry an API key of `reporter`; returns the client."""
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {api_key(runtime, reporter)}"
    return client


def intake_headers(app: Any, reporter: str = CHIEF) -> dict[str, str]:
    """`Authorization` for HTTP intake on `app` as `reporter` (one key per app, kept)."""
    from roadwatch.web import runtime_of

    keys: dict[str, str] = app.extensions.setdefault("test_intake_keys", {})
    if reporter not in keys:
        keys[reporter] = api_key(runtime_of(app), reporter)
    return key_headers(keys[reporter])
