"""The one way a request handler reaches the running platform, and its local time."""

from __future__ import annotations

import datetime as dt

from flask import current_app

from ..runtime import Runtime


def runtime() -> Runtime:
    """The Runtime the app was created with (settings, sessions, network, pipeline…)."""
    rt: Runtime = current_app.extensions["roadwatch"]
    return rt


def iso(value: dt.datetime | None) -> str | None:
    """A stored (UTC) time as ISO 8601 in the city's time zone; None stays None."""
    return value.astimezone(runtime().settings.tz).isoformat() if value else None
