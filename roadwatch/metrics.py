"""Prometheus metrics (GET /metrics). One registry per process, so tests can make their own."""

from __future__ import annotations

import logging
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

OUTCOMES = ("accepted", "duplicate", "needs_review", "rejected")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.messages_in = Counter(
            "roadwatch_messages_in",
            "Messages received, by transport and kind",
            ["transport", "kind"],
            registry=self.registry,
        )
        self.outcomes = Counter(
            "roadwatch_messages_outcome",
            "Messages by outcome (accepted, duplicate, needs_review, rejected)",
            ["status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "roadwatch_ingest_latency_seconds",
            "From receipt to committed outcome",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "roadwatch_ingest_batch_size",
            "Messages committed per transaction",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
            registry=self.registry,
        )
        self.db_retries = Counter(
            "roadwatch_ingest_db_retries",
            "Batches retried after a database error",
            registry=self.registry,
        )
        # MQTT messages taken off the wire but not ingested (issue 15, docs/security.md):
        # queue_full (QoS 0 beyond the inbox's share), retained (a broker replay),
        # foreign_response_topic (ingested, but the ack went to the sender's own topic).
        self.mqtt_not_ingested = Counter(
            "roadwatch_mqtt_not_ingested",
            "MQTT messages dropped or answered differently, by reason",
            ["reason"],
            registry=self.registry,
        )
        for reason in ("queue_full", "retained", "foreign_response_topic"):
            self.mqtt_not_ingested.labels(reason)

        # Every series from the start, at 0: a rate() or an alert on rejections must not
        # wait for the first rejection to exist.
        for status in OUTCOMES:
            self.outcomes.labels(status)
        for transport in ("mqtt", "http"):
            self.messages_in.labels(transport, "report")
        for kind in ("rectification", "verification", "patrol"):
            self.messages_in.labels("mqtt", kind)

    def gauge(self, name: str, doc: str, read: Callable[[], float]) -> None:
        """A gauge read when /metrics is scraped; NaN (not a failed scrape) if it fails."""

        def value() -> float:
            try:
                return float(read())
            except Exception as exc:
                logging.getLogger(__name__).warning("metric %s: %s", name, exc)
                return float("nan")

        Gauge(name, doc, registry=self.registry).set_function(value)

    def render(self) -> bytes:
        return generate_latest(self.registry)
