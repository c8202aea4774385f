"""Failed password attempts: counted per key in a window, bounded in memory."""

from __future__ import annotations

import pytest

from roadwatch.accounts.throttle import LoginThrottle, PasswordThrottle, minutes_text


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_key_waits_after_max_failures_until_the_oldest_leaves_the_window() -> None:
    clock = Clock()
    t = LoginThrottle(3, 600.0, clock=clock)
    for step in range(3):
        assert t.wait_s("ann") == 0.0
        t.failed("ann")
        clock.now += 10 * (step + 1)  # failures at 1000, 1010, 1030
    assert clock.now == 1060
    assert t.wait_s("ann") == pytest.approx(1000 + 600 - 1060)
    assert t.wait_s("bob") == 0.0  # other keys are untouched
    clock.now = 1600.0  # the first failure has left the window: two remain
    assert t.wait_s("ann") == 0.0
    t.failed("ann")  # three again (1010, 1030, 1600)
    assert t.wait_s("ann") == pytest.approx(1010 + 600 - 1600)


def test_success_clears_an_account_and_old_keys_are_dropped() -> None:
    clock = Clock()
    t = LoginThrottle(2, 60.0, clock=clock)
    t.failed("ann")
    t.failed("ann")
    assert t.wait_s("ann") > 0
    t.succeeded("ann")
    assert t.wait_s("ann") == 0.0 and len(t) == 0
    t.failed("bob")
    clock.now += 61
    assert t.wait_s("bob") == 0.0 and len(t) == 0  # expired keys do not linger


def test_a_flood_of_distinct_keys_stays_bounded_and_keeps_the_newest() -> None:
    clock = Clock()
    t = LoginThrottle(1, 600.0, max_keys=100, clock=clock)
    for i in range(10_000):
        t.failed(f"random-{i}")
    assert len(t) == 100
    assert t.wait_s("random-9999") > 0 and t.wait_s("random-0") == 0.0


def test_password_throttle_counts_accounts_and_addresses() -> None:
    clock = Clock()
    t = PasswordThrottle(account_failures=3, address_failures=5, window_s=600, clock=clock)
    for _ in range(3):
        t.failed("Admin", "10.0.0.1")
    assert t.wait_s("admin", None) > 0  # names are compared without case
    assert t.wait_s("other", "10.0.0.1") == 0.0  # the address has 3 of its 5
    for name in ("a", "b"):
        t.failed(name, "10.0.0.1")
    assert t.wait_s("someone-else", "10.0.0.1") > 0  # one address guessing many names
    assert t.wait_s("someone-else", "10.0.0.2") == 0.0


def test_minutes_are_whole_and_at_least_one() -> None:
    assert minutes_text(1) == 1 and minutes_text(599) == 10 and minutes_text(90) == 2


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        LoginThrottle(0, 60)


def test_a_known_device_is_counted_apart_from_strangers() -> None:
    clock = Clock()
    t = PasswordThrottle(
        account_failures=3, address_failures=5, window_s=600, clock=clock, device_failures=3
    )
    for i in range(1000):
        t.failed("admin", f"10.0.{i // 250}.{i % 250}")
    assert t.wait_s("admin", "10.9.9.9") > 0  # an unknown device waits
    assert t.wait_s("admin", "10.0.0.1", device="dev-1") == 0.0  # the user's own does not
    for _ in range(3):
        t.failed("admin", "10.0.0.1", device="dev-1")
    assert t.wait_s("admin", None, device="dev-1") > 0  # its own bucket is limited too
    assert t.wait_s("admin", None, device="dev-2") == 0.0
    t.succeeded("ADMIN", device="dev-1")
    assert t.wait_s("admin", None, device="dev-1") == 0.0
    assert t.wait_s("admin", None) > 0  # a known device's success does not free strangers
