"""The dispatcher's cadence (roadwatch/cases/dispatcher.py): in `roadwatch jobs` nothing wakes
it, so it polls, and at 500 reports/s a pass once a second was large enough to hold up the
workers' acks on a small host (issue 18 acceptance d). No database: the passes are counted."""

from __future__ import annotations

import time
from typing import Any, cast

from roadwatch.cases.dispatcher import Dispatcher
from roadwatch.jobs import DISPATCH_POLL_S


class CountingDispatcher(Dispatcher):
    """A dispatcher whose passes only note when they ran."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(cast(Any, None), cast(Any, None), lambda _e, _n: None, **kw)
        self.passes: list[float] = []

    def run_once(self) -> dict[str, str]:
        self.passes.append(time.monotonic())
        return {}


def test_an_unwoken_dispatcher_polls_at_its_interval_without_waiting_to_gather() -> None:
    # gather_s is for a wake-up (more ingest batches are coming); after a poll it would only
    # stretch the interval, here past the whole test.
    d = CountingDispatcher(poll_s=DISPATCH_POLL_S, gather_s=30.0)
    assert DISPATCH_POLL_S <= 0.25
    d.start()
    try:
        time.sleep(1.5)
    finally:
        d.stop()
    # 0.2 s apart: about 7 in 1.5 s; 3 leaves room for a loaded machine, and a poll that
    # waited to gather (or a poll once a second) makes at most 1.
    assert len(d.passes) >= 3, d.passes


def test_a_woken_dispatcher_still_lets_batches_gather() -> None:
    d = CountingDispatcher(poll_s=30.0, gather_s=0.3)
    d.start()
    try:
        woken = time.monotonic()
        d.wake()
        deadline = woken + 10
        while not d.passes and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        d.stop()
    assert d.passes, "a wake-up made no pass"
    assert d.passes[0] - woken >= 0.3
