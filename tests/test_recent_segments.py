"""The reporter's patrol track of the last minutes (issue 21, a signal for placing their
next report): roadwatch.network.context.RecentSegments, read on the live snapping path."""

from __future__ import annotations

import datetime as dt
import threading

from roadwatch.network.context import RecentSegments

T0 = dt.datetime(2026, 12, 6, 9, 0, tzinfo=dt.UTC)


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def test_the_window_is_the_last_ten_minutes_and_one_minute_ahead() -> None:
    recent = RecentSegments()
    recent.note("a", [(at(0), 1), (at(5), 2), (at(9.5), 3), (at(11.5), 4), (at(13), 5)])
    assert recent.of("a", at(10)) == {1, 2, 3}  # 11.5 is past the minute of clock skew
    assert recent.of("a", at(10.6)) == {2, 3, 4}  # 0 has left the window, 11.5 is within it
    assert recent.of("a", at(30)) == frozenset()
    assert recent.of("b", at(10)) == frozenset()  # someone with no track
    assert recent.of(None, at(10)) == frozenset()


def test_late_and_unsorted_points_are_read_in_time_order() -> None:
    recent = RecentSegments()
    recent.note("a", [(at(8), 8), (at(2), 2)])
    recent.note("a", [(at(9), 9)])
    recent.note("a", [(at(-5), 99), (at(4), 4)])  # a late message, partly too old
    assert recent.of("a", at(10)) == {2, 4, 8, 9}
    assert recent.of("a", at(4.5)) == {2, 4, 99}
    assert recent.of("a", at(2.5)) == {2, 99}  # 4 is past the minute ahead


def test_only_the_latest_points_are_kept() -> None:
    recent = RecentSegments()
    n = RecentSegments.KEEP + 50
    # one point every second, the newest first: the oldest by time are dropped
    recent.note("a", [(at(k / 60), k) for k in reversed(range(n))])
    got = recent.of("a", at(n / 60))
    assert got == set(range(50, n))
    recent.note("a", [(at(-1), -1)])  # older than all that is kept: noted, then dropped
    assert recent.of("a", at(0)) == set(range(50, 61))  # 0-60 s: the kept ones from 50 s
    assert recent.of("a", at(n / 60)) == set(range(50, n))


def test_reads_while_a_track_is_written() -> None:
    recent = RecentSegments()
    errors: list[BaseException] = []

    def write() -> None:
        for k in range(2000):
            recent.note("a", [(at(k / 600), k % 7)])

    def read() -> None:
        try:
            for _ in range(2000):
                assert recent.of("a", at(1)) <= set(range(7))
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=write), threading.Thread(target=read)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert recent.of("a", at(2000 / 600)) == set(range(7))


def test_a_point_noted_twice_counts_once() -> None:
    # read back from the store after ingest noted it, or sent again by the phone
    recent = RecentSegments()
    recent.note("a", [(at(1), 1), (at(2), 2)])
    recent.note("a", [(at(2), 2), (at(1), 1), (at(2), 3)])  # same time, another segment
    assert recent._by["a"] == ([at(1).timestamp(), at(2).timestamp(), at(2).timestamp()], [1, 2, 3])


def test_the_stored_track_is_read_back_at_most_once_per_refresh() -> None:
    recent = RecentSegments()
    assert recent.due_for_reading("a", clock=100.0, refresh_s=30.0)
    assert not recent.due_for_reading("a", clock=120.0, refresh_s=30.0)
    assert recent.due_for_reading("b", clock=120.0, refresh_s=30.0)  # per reporter
    assert recent.due_for_reading("a", clock=130.0, refresh_s=30.0)
    assert recent.due_for_reading("a", clock=130.0, refresh_s=0.0)  # a late photo: always
    recent.note("a", [(at(1), 1)])
    recent.clear()
    assert recent.of("a", at(2)) == frozenset()
    assert recent.due_for_reading("a", clock=131.0, refresh_s=30.0)
