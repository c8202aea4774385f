"""A separate process that publishes N QoS 1 reports (some ids repeated) and waits for PUBACKs.

python -m tests.support.publisher PORT ROOT COUNT IDS_OUT [--rate R] [--repeat-share F]
    [--cross-share F]
Writes the distinct report ids it sent to IDS_OUT (one per line) before publishing.
"""

from __future__ import annotations

import argparse
import json
import random
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.bench_ingest import make_payloads


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("root")
    ap.add_argument("count", type=int)
    ap.add_argument("ids_out")
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--repeat-share", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument(
        "--cross-share", type=float, default=0.0, help="reports on another chief's road"
    )
    args = ap.parse_args()

    rng = random.Random(args.seed)
    distinct = make_payloads(
        int(args.count * (1 - args.repeat_share)), seed=args.seed, cross_share=args.cross_share
    )
    messages = list(distinct)
    while len(messages) < args.count:  # resends of earlier reports, byte for byte
        messages.insert(rng.randrange(1, len(messages) + 1), rng.choice(distinct))
    with open(args.ids_out, "w", encoding="utf-8") as fh:
        fh.write("\n".join(sorted({rid for _r, rid, _b in distinct})) + "\n")

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"pub-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv311,
    )
    client.max_inflight_messages_set(200)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", args.port)
    client.loop_start()
    t0 = time.perf_counter()
    infos = []
    for i, (reporter, _rid, body) in enumerate(messages):
        target = t0 + i / args.rate
        while (now := time.perf_counter()) < target:
            time.sleep(min(0.002, target - now))
        infos.append(client.publish(f"{args.root}/reports/{reporter}", body, qos=1))
    # Not wait_for_publish: it raises for a message published while the broker was away
    # (restarting), which paho keeps and sends after reconnecting, as a phone resends.
    deadline = time.monotonic() + 180
    for info in infos:
        # info._published: set on PUBACK, also for a message queued while disconnected
        # (whose rc makes is_published() raise although paho sends it on reconnect)
        while not info._published:
            if time.monotonic() > deadline:
                raise SystemExit("a message was not acknowledged by the broker")
            time.sleep(0.02)
    client.disconnect()
    client.loop_stop()
    print(
        json.dumps(
            {
                "sent": len(messages),
                "distinct": len(distinct),
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
