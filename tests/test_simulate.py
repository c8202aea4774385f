"""`roadwatch simulate`: realistic reports over MQTT, read back from the acks."""

from __future__ import annotations

import io
import json
import random
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from roadwatch.runtime import Runtime
from roadwatch.simulate import ReportFactory, Simulator, chiefs_of
from tests.conftest import make_settings
from tests.support.mosquitto import MosquittoProcess
from tests.support.server import live_server


def test_factory_mix(network_ctx: Any) -> None:
    from roadwatch.categories import load_categories

    cats = load_categories()
    rng = random.Random(1)
    factory = ReportFactory(network_ctx.network, cats, rng, bad_share=0.05, resend_share=0.02)
    chiefs = chiefs_of(network_ctx.network, 30, rng)
    assert len(chiefs) == 30 and all(c.segments for c in chiefs)
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    kinds: Counter[str] = Counter()
    crs: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    for _ in range(4000):
        reporter, payload, kind = factory.next_payload(rng.choice(chiefs), now)
        kinds[kind] += 1
        if kind == "good":
            body = json.loads(payload)
            crs[body["crs"]] += 1
            codes[body["category"]] += 1
            assert body["category"] in cats.by_code
            assert body["reporter_id"] == reporter
        elif kind == "resend":
            assert json.loads(payload)["reporter_id"] == reporter
    assert 150 < kinds["bad"] < 250 and 40 < kinds["resend"] < 120
    assert crs["GCJ02"] > crs["WGS84"] > 0 and crs["BD09"] > 0
    # weighted like the street: e-bike parking far more often than a bus shelter
    assert codes["E0506"] > 5 * codes["C0203"]


@pytest.mark.integration
def test_simulator_end_to_end(tmp_path: Path, network_ctx: Any) -> None:
    with MosquittoProcess(tmp_path) as broker:
        root = f"sim{uuid.uuid4().hex[:6]}/v1"
        rt = Runtime.build(
            make_settings(tmp_path, mqtt_url=broker.url, mqtt_topic_root=root),
            ctx=network_ctx,
        )
        with live_server(rt, mqtt_ingest=True):
            sim = Simulator(
                network_ctx.network,
                rt.categories,
                host="127.0.0.1",
                port=broker.port,
                topic_root=root,
                chiefs=20,
                rate=200,
                seed=4,
                bad_share=0.05,
            )
            out = io.StringIO()
            outcomes = sim.run(count=300, progress=out)
        rt.stop()
    assert sum(sim.sent.values()) == 300
    assert sum(outcomes.values()) == 300  # an ack for every message
    assert outcomes["rejected"] == sim.sent["bad"] > 0
    assert outcomes["accepted"] > 0.85 * sim.sent["good"]
    assert outcomes["duplicate"] == sim.sent["resend"]
    assert "simulate: sent 300" in out.getvalue()
