"""HTML pages, health and metrics."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, render_template, request

from ..health import Check, Health, add_runtime_checks, is_loopback
from ..settings import redact_url
from .centre import live_state
from .context import runtime
from .mapdata import basemap_config, map_data_of

bp = Blueprint("pages", __name__)


def _page_config(screen: bool) -> dict[str, Any]:
    from .auth import current_user

    rt = runtime()
    user = current_user()
    return {
        "namespace": "/live",
        "socketio_path": "socket.io",
        "timezone": rt.settings.timezone,
        "screen": screen,
        "user": (
            {"name": user.username, "role": user.role, "district": user.sees_district}
            if user
            else None
        ),
        "district_names": rt.ctx.district_names,
        # where the map's tiles and segment table are, and the first view (see mapdata.py)
        "map": {
            **map_data_of(rt)
            .scoped(user.sees_district if user else None)
            .config(request.script_root),
            "basemap": basemap_config(rt, request.script_root),
        },
        # the live state to draw first (segments with something open, exact as of `seq`):
        # in the page, so the map is coloured by its first frame without another request
        "state": live_state(user.sees_district if user else None),
    }


@bp.get("/")
def live_map() -> str:
    """The command centre; `?screen=1` (or /screen) is the big-screen mode."""
    screen = request.args.get("screen") in ("1", "true", "yes")
    return render_template("index.html", title="路长制 指挥中心", config=_page_config(screen))


@bp.get("/screen")
def big_screen() -> str:
    return render_template("index.html", title="路长制 指挥中心", config=_page_config(True))


def _sees_health_details() -> bool:
    """Staff (a login or Basic credentials, as the guard found) and this machine (a
    monitoring agent on loopback) see what is wrong; everyone else only up or down.

    Behind a reverse proxy every request comes from loopback: set ROADWATCH_TRUSTED_PROXIES
    so that the client's own address is the one judged here.
    """
    from .auth import current_user

    return current_user() is not None or is_loopback(request.remote_addr)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """Up (200 `{"status": "ok"}`) or down (503 `{"status": "degraded"}`) for everyone;
    the checks (database, broker URL and error, network size) for staff and loopback."""
    body, status = _web_health().body(details=_sees_health_details())
    return jsonify(body), status


def _web_health() -> Health:
    """This process's checks, built once (per MQTT session): the database check keeps its
    one query in flight across requests, the Redis check its connection."""
    rt = runtime()
    cached = rt.extras.get("health")
    if cached is not None and cached[0] is rt.mqtt:
        return cached[1]
    health = add_runtime_checks(Health(str(rt.extras.get("role") or "serve")), rt)
    health.add("broker", lambda: _broker_check(rt))
    health.add("network", lambda: Check(rt.ctx.size > 0, {"segments": rt.ctx.size}))
    health.add("holidays", lambda: _holiday_check(rt))
    rt.extras["health"] = (rt.mqtt, health)
    return health


def _broker_check(rt: Any) -> Check:
    if rt.extras.get("role") == "web":
        # The web role (roadwatch/web/wsgi.py) holds no MQTT session: ingest is elsewhere.
        return Check(True, {"role": "web", "ingest": "in roadwatch worker"})
    mqtt = rt.mqtt
    return Check(
        bool(mqtt and mqtt.ready),
        {
            "url": redact_url(rt.settings.mqtt_url),
            "embedded": rt.broker is not None,
            **({"error": mqtt.last_error} if mqtt and mqtt.last_error else {}),
        },
    )


def _holiday_check(rt: Any) -> Check:
    # The holiday rule: a warning (not a failure) while next year's holidays are missing.
    holidays = rt.pipeline.sla.holiday_warning(rt.pipeline.clock())
    return Check(True, {"warning": holidays} if holidays else {})


@bp.get("/metrics")
def metrics() -> Response:
    return Response(runtime().metrics.render(), mimetype="text/plain; version=0.0.4")
