"""What the command groups share: the failure they raise, settings, logging, a database."""

from __future__ import annotations

import gc
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from ..settings import Settings, load_settings

log = logging.getLogger("roadwatch")


class CommandError(Exception):
    """A command refuses: `roadwatch: MESSAGE` on stderr and exit CODE (roadwatch.cli maps it).

    `prefix` replaces `roadwatch` where a command names itself (`roadwatch demo seed: …`)."""

    def __init__(self, message: str, code: int = 2, prefix: str = "roadwatch") -> None:
        super().__init__(message)
        self.code, self.prefix = code, prefix


def settings_for(**overrides: Any) -> Settings:
    """The layered settings, with the options given on the command line on top."""
    return load_settings(overrides={k: v for k, v in overrides.items() if v is not None})


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", stream=sys.stderr
    )
    for noisy in ("amqtt", "transitions", "werkzeug", "engineio", "socketio", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


def freeze_startup_heap() -> None:
    """Keep what start-up built out of the garbage collector's full passes (long-running roles).

    A worker or `jobs` process holds 160,000-190,000 objects from start-up (modules, the road
    network, settings) for its whole life, and every full (generation 2) collection walked
    them all: ~90 ms of CPU holding the GIL, so no report was committed or acked meanwhile.
    At 500 reports/s that alone put the p99 publish → ack past 50 ms whenever one fell in
    the run (issue 18 acceptance d). Frozen, they are skipped: a full pass takes ~1 ms.
    Collecting first leaves start-up's own garbage out of the frozen set.
    """
    gc.collect()
    gc.freeze()


def err(text: str) -> None:
    """One line on stderr (warnings and counts; failures raise CommandError)."""
    click.echo(text, err=True)


@contextmanager
def database() -> Iterator[Any]:
    """A sessionmaker on the configured (upgraded) database; the engine is closed after."""
    settings = settings_for()
    setup_logging("WARNING")
    from ..store import db

    engine = db.make_engine(settings.database_url)
    try:
        db.upgrade(engine)
        yield db.make_sessionmaker(engine)
    finally:
        engine.dispose()


class Positive(click.ParamType):
    """A number above 0 (a rate of 0 would publish without any pause)."""

    def __init__(self, kind: type[int] | type[float]) -> None:
        self.kind = kind
        self.name = kind.__name__

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, self.kind) and not isinstance(value, bool):
            number = value
        else:
            try:
                number = self.kind(value)
            except ValueError:
                self.fail(f"{value!r} is not a number", param, ctx)
        if not number > 0 or number != number or number == float("inf"):
            self.fail(f"must be more than 0, not {value}", param, ctx)
        return number


class Share(click.ParamType):
    """A share between 0 and 1."""

    name = "share"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            number = float(value)
        except ValueError:
            self.fail(f"{value!r} is not a number", param, ctx)
        if not 0 <= number <= 1:
            self.fail(f"must be between 0 and 1, not {value}", param, ctx)
        return number


class Many(click.Option):
    """`--only A B C`: an option that takes every value up to the next option (argparse's
    nargs="+"); the value is a tuple."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["multiple"] = True
        super().__init__(*args, **kwargs)

    def add_to_parser(self, parser: Any, ctx: click.Context) -> None:
        super().add_to_parser(parser, ctx)
        for name in self.opts:
            option = parser._long_opt.get(name) or parser._short_opt.get(name)
            if option is None or getattr(option, "_many", False):
                continue
            one = option.process

            def process(value: Any, state: Any, one: Any = one) -> None:
                one(value, state)
                while state.rargs and not state.rargs[0].startswith("-"):
                    one(state.rargs.pop(0), state)

            option.process, option._many = process, True


class ProgressBar:
    """`stage  [#######.......]  48%  120,000/250,000` on one line of stderr."""

    def __init__(self, out: Any = None, width: int = 30) -> None:
        self.out, self.width = out or sys.stderr, width
        self.last = 0.0
        self.stage = ""

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        final = total > 0 and done >= total
        changed = stage != self.stage
        if not changed and not final and now - self.last < 0.2:
            return
        self.stage, self.last = stage, now
        frac = done / total if total else 1.0
        bar = "#" * int(frac * self.width)
        line = f"{stage:<10s} [{bar:<{self.width}s}] {frac:4.0%}  {done:,}/{total:,}"
        if self.out.isatty():
            self.out.write("\r" + line + ("\n" if final else ""))
        elif final or changed:
            self.out.write(line + "\n")
        self.out.flush()
