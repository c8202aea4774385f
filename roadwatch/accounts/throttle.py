"""Failed password attempts, counted per key in a sliding window, to slow down guessing.

Every place that checks a password (the command centre's login form, HTTP Basic, the
Socket.IO handshake, the phone app's sign-in) asks `wait_s` first and reports the outcome.
A key is an account name or a client address; both are counted, so neither guessing many
passwords for one account nor one password for many accounts goes unchecked. A device that
has signed in to an account before is counted apart (PasswordThrottle), so that strangers'
guesses slow themselves down without locking the real user out. The counts
live in this process only: with several processes, each allows its own quota.

Memory is bounded: keys whose attempts have all left the window are dropped, and when a
flood of distinct keys (random names) passes `max_keys`, the oldest are forgotten first.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable


class LoginThrottle:
    def __init__(
        self,
        max_failures: int,
        window_s: float,
        *,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_failures < 1 or window_s <= 0:
            raise ValueError("max_failures must be at least 1 and window_s positive")
        self.max_failures, self.window_s, self.max_keys = max_failures, window_s, max_keys
        self._clock = clock
        self._lock = threading.Lock()
        # key -> times of its recent failures, least recently failed key first
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, key: str, now: float) -> deque[float] | None:
        q = self._failures.get(key)
        if q is None:
            return None
        while q and q[0] <= now - self.window_s:
            q.popleft()
        if not q:
            del self._failures[key]
            return None
        return q

    def wait_s(self, *keys: str) -> float:
        """Seconds until every one of `keys` may try again (0: now)."""
        now = self._clock()
        wait = 0.0
        with self._lock:
            for key in keys:
                q = self._recent(key, now)
                if q is not None and len(q) >= self.max_failures:
                    # the oldest failure that still counts must leave the window
                    wait = max(wait, q[-self.max_failures] + self.window_s - now)
        return wait

    def failed(self, *keys: str) -> None:
        now = self._clock()
        with self._lock:
            for key in keys:
                q = self._recent(key, now)
                if q is None:
                    q = self._failures[key] = deque(maxlen=self.max_failures)
                else:
                    self._failures.move_to_end(key)
                q.append(now)
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)

    def succeeded(self, key: str) -> None:
        """A right password for `key` (an account) clears its count."""
        with self._lock:
            self._failures.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._failures)


def minutes_text(wait_s: float) -> int:
    """Whole minutes to tell a person (at least 1)."""
    return max(1, round(wait_s / 60))


# Wrong passwords allowed per account, and per client address (many people may share one
# address behind a carrier's or an office's NAT), in a window before sign-in waits.
ACCOUNT_FAILURES, ADDRESS_FAILURES, FAILURE_WINDOW_S = 10, 100, 600.0


# Wrong passwords allowed from one device that has signed in to the account before (it
# holds the account's signed device cookie): the real user's own bucket, which strangers'
# guesses never fill.
DEVICE_FAILURES = 10


class PasswordThrottle:
    """The counts for one kind of login: per account, per client address, per known device.

    A device that has signed in to an account before (it shows a signed device cookie for
    it, see roadwatch.web.auth) is counted only in its own (account, device) bucket: a
    flood of wrong passwords from anywhere else fills the account's bucket for unknown
    devices and the addresses' buckets, and never locks the real user out of a device they
    have used. Unknown devices share the account's bucket, so guessing stays slow.
    """

    def __init__(
        self,
        account_failures: int = ACCOUNT_FAILURES,
        address_failures: int = ADDRESS_FAILURES,
        window_s: float = FAILURE_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
        device_failures: int = DEVICE_FAILURES,
    ) -> None:
        self.accounts = LoginThrottle(account_failures, window_s, clock=clock)
        self.addresses = LoginThrottle(address_failures, window_s, clock=clock)
        self.devices = LoginThrottle(device_failures, window_s, clock=clock)

    @staticmethod
    def _device_key(account: str, device: str) -> str:
        return f"{account.casefold()}\x00{device}"

    def wait_s(self, account: str, address: str | None, device: str | None = None) -> float:
        """Seconds before `account` may try again from `address`; `device`: a known
        device's id (verified by the caller), which is counted on its own."""
        if device:
            return self.devices.wait_s(self._device_key(account, device))
        wait = self.accounts.wait_s(account.casefold())
        if address:
            wait = max(wait, self.addresses.wait_s(address))
        return wait

    def failed(self, account: str, address: str | None, device: str | None = None) -> None:
        if device:
            self.devices.failed(self._device_key(account, device))
            return
        self.accounts.failed(account.casefold())
        if address:
            self.addresses.failed(address)

    def succeeded(self, account: str, device: str | None = None) -> None:
        """A right password: clears the bucket it was counted in (a known device's own,
        or the account's for unknown devices)."""
        if device:
            self.devices.succeeded(self._device_key(account, device))
        else:
            self.accounts.succeeded(account.casefold())
