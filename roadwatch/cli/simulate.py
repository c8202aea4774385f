"""`roadwatch simulate`: simulated road chiefs publishing reports over MQTT."""

from __future__ import annotations

import signal

import click

from .common import Positive, Share, settings_for, setup_logging


@click.command(help="simulated road chiefs publishing reports over MQTT")
@click.option("--chiefs", type=Positive(int), default=50, show_default=True)
@click.option(
    "--rate",
    type=Positive(float),
    default=5.0,
    show_default=True,
    help="reports per second in total",
)
@click.option("--duration", type=Positive(float), help="seconds (default: until Ctrl-C)")
@click.option("--count", type=Positive(int), help="stop after this many messages")
@click.option("--seed", type=int)
@click.option(
    "--bad-share",
    type=Share(),
    default=0.02,
    show_default=True,
    help="share of malformed messages (0 to 1)",
)
def simulate(
    chiefs: int,
    rate: float,
    duration: float | None,
    count: int | None,
    seed: int | None,
    bad_share: float,
) -> int:
    settings = settings_for()
    setup_logging("WARNING")
    from geo.network import load_network

    from ..categories import load_categories
    from ..network.context import network_path
    from ..simulate import Simulator

    sim = Simulator(
        load_network(network_path(settings)),
        load_categories(),
        host=settings.mqtt_host,
        port=settings.mqtt_port,
        topic_root=settings.mqtt_topic_root,
        chiefs=chiefs,
        rate=rate,
        seed=seed,
        bad_share=bad_share,
    )
    refused = sim.login_refused()
    if refused:
        raise click.ClickException(
            f"the broker at {settings.mqtt_host}:{settings.mqtt_port} does not let simulated "
            f"chiefs in ({refused}); use a broker that allows anonymous logins"
        )
    signal.signal(signal.SIGINT, lambda *_: sim.stop())
    sim.run(duration=duration, count=count)
    return 0
