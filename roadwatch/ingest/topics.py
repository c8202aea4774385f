"""MQTT topic names (docs/protocol.md 2): one place that knows how they are built and read;
and the platform's own MQTT client ids."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

# topic word -> message kind
INBOUND_KINDS = {
    "reports": "report",
    "rectifications": "rectification",
    "verifications": "verification",
    "patrols": "patrol",
}


@dataclass(frozen=True, slots=True)
class Topics:
    root: str = "roadwatch/v1"

    def subscriptions(self, share_group: str = "") -> list[str]:
        """The inbound topic filters; with a share group, as one MQTT shared subscription
        (`$share/<group>/<filter>`): the broker gives each message to one member only."""
        plain = [f"{self.root}/{word}/+" for word in INBOUND_KINDS]
        return [f"$share/{share_group}/{t}" for t in plain] if share_group else plain

    def ack(self, reporter: str) -> str:
        return f"{self.root}/acks/{reporter}"

    def notice(self, person: str) -> str:
        return f"{self.root}/notices/{person}"

    def report(self, reporter: str) -> str:
        return f"{self.root}/reports/{reporter}"

    def parse(self, topic: str) -> tuple[str, str] | None:
        """`root/reports/zz-1` → ("report", "zz-1"); None for a topic we do not serve."""
        prefix = self.root + "/"
        if not topic.startswith(prefix):
            return None
        rest = topic[len(prefix) :].split("/")
        if len(rest) != 2 or not rest[1] or rest[0] not in INBOUND_KINDS:
            return None
        return INBOUND_KINDS[rest[0]], rest[1]


def session_client_id(base: str, password: str | None) -> str:
    """The MQTT client id actually used for `base` (the configured id, or it + "-notices"…).

    Anyone who knows a connected client's id can take its session over (MQTT: the newer
    connection wins), and the configured id is public (defaults.toml, the docs). With a
    broker password the id gets a suffix derived from it: stable across restarts (the
    persistent session and its queue survive) yet unknown to chiefs, who cannot read the
    platform's password; whoever knows the password could log in as the platform anyway.
    Without a password (the embedded development broker) the configured id is used as is.
    """
    if not password:
        return base
    tag = hmac.new(password.encode(), b"roadwatch-mqtt-client-id:" + base.encode(), "sha256")
    return f"{base}-{tag.hexdigest()[:20]}"


def share_group_name(group: str, password: str | None) -> str:
    """The MQTT shared-subscription group actually used for the configured `group`.

    A chief who joins the platform's group (`$share/<group>/…/reports/+`) becomes one of its
    members: the broker then hands that chief a share of every phone's messages, and
    Mosquitto, whose ACL lets chiefs read no reports, drops them on delivery — lost for the
    platform (measured, Mosquitto 2.0.11: one report in three vanished). So, like the client
    ids, the group gets a suffix derived from the broker password: stable for every worker
    holding it, unknown to chiefs. Without a password the group is used as is.
    """
    if not group or not password:
        return group
    tag = hmac.new(password.encode(), b"roadwatch-mqtt-share-group:" + group.encode(), "sha256")
    return f"{group}-{tag.hexdigest()[:20]}"
