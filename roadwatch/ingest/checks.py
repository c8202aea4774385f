"""The health checks of an ingest worker (`roadwatch worker`, served by health.HealthServer).

Unhealthy (503) when ingest cannot make progress: no broker connection (or no
subscription yet), messages waiting
longer than STALL_S, no commit for STALL_S while messages wait, no database, or (when
live events go through it) no Redis. Parked messages (ingest/park.py) are shown, not
judged: waiting is their normal state.
"""

from __future__ import annotations

import time
from typing import Any

from ..health import Check, Health, database_check, redis_check
from .mqtt import MqttIngest

STALL_S = 30.0  # a message waiting this long, or no commit this long while some wait


def worker_health(mqtt: MqttIngest, engine: Any, url: str, redis_url: str = "") -> Health:
    health = Health("worker")

    def broker() -> Check:
        ok = mqtt.ready  # connected and subscribed: a report sent now is taken
        detail: dict[str, Any] = {"url": url, "client_id": mqtt.client_id}
        if not ok:
            connected = mqtt.connected.is_set()
            detail["error"] = mqtt.last_error or (
                "connected, not subscribed yet" if connected else "not connected"
            )
        return Check(ok, detail)

    def queue() -> Check:
        lag = mqtt._queue.oldest_age()
        return Check(lag < STALL_S, {"depth": len(mqtt._queue), "oldest_s": round(lag, 3)})

    def progress() -> Check:
        waiting = mqtt.busy or len(mqtt._queue) > 0
        age = time.monotonic() - mqtt.last_commit
        ok = not waiting or age < STALL_S
        return Check(ok, {"last_commit_s": round(age, 3), "waiting": waiting})

    def parked() -> Check:
        n, oldest = mqtt.parked
        return Check(True, {"messages": n, "oldest_s": round(oldest, 1)})

    health.add("broker", broker)
    health.add("queue", queue)
    health.add("progress", progress)
    health.add("parked", parked)
    health.add("database", database_check(engine))
    if redis_url:
        health.add("redis", redis_check(redis_url))
    return health
