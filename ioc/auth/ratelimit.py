"""In-process token buckets for the login route: one bucket per client address, one per user name.

Each process keeps its own buckets (nothing is shared between API processes or survives a
restart): with N API processes behind a load balancer a client gets up to N times the rate. That is
enough for its purpose, slowing a password guesser down to a few tries a minute on top of the
account lockout (:mod:`ioc.auth.repository`), without a shared store.

Time comes from a callable returning seconds (the injected clock's), so tests move it explicitly.
Memory is bounded: at most ``max_keys`` buckets are kept; when full, buckets that have refilled
(carry no information) are dropped first, then the oldest.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class BucketPolicy:
    #: Attempts allowed in a burst.
    capacity: int
    #: Attempts regained per second.
    refill_per_s: float

    def __post_init__(self) -> None:
        if self.capacity < 1 or self.refill_per_s <= 0:
            raise ValueError("a bucket needs capacity >= 1 and a positive refill rate")


class TokenBuckets:
    """Token buckets keyed by a string; thread-safe."""

    def __init__(self, policy: BucketPolicy, now: Callable[[], float], *, max_keys: int = 10_000) -> None:
        self.policy = policy
        self._now = now
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)
        self._lock = threading.Lock()

    def _level(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key, (float(self.policy.capacity), now))
        return min(float(self.policy.capacity), tokens + max(0.0, now - at) * self.policy.refill_per_s)

    def take(self, key: str) -> float:
        """Take one token for ``key``: 0.0 when allowed, else the seconds until one is available."""
        with self._lock:
            now = self._now()
            tokens = self._level(key, now)
            if tokens < 1.0:
                return (1.0 - tokens) / self.policy.refill_per_s
            self._buckets[key] = (tokens - 1.0, now)
            self._buckets.move_to_end(key)
            if len(self._buckets) > self._max_keys:
                self._shrink(now)
            return 0.0

    def _shrink(self, now: float) -> None:
        full = [k for k in self._buckets if self._level(k, now) >= self.policy.capacity]
        for key in full:
            del self._buckets[key]
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)

    def __len__(self) -> int:
        return len(self._buckets)


#: Per client address: a burst of 20, then 10 a minute (an office behind one NAT logs in at shift change).
PER_ADDRESS = BucketPolicy(capacity=20, refill_per_s=10 / 60)
#: Per user name (known or not): a burst of 10, then 2 a minute.
PER_USERNAME = BucketPolicy(capacity=10, refill_per_s=2 / 60)


class LoginRateLimiter:
    """Both login buckets; an attempt must pass the address's and the user name's."""

    def __init__(
        self,
        now: Callable[[], float],
        *,
        per_address: BucketPolicy = PER_ADDRESS,
        per_username: BucketPolicy = PER_USERNAME,
    ) -> None:
        self.by_address = TokenBuckets(per_address, now)
        self.by_username = TokenBuckets(per_username, now)

    def check(self, address: str, username: str) -> tuple[str, int] | None:
        """None when the attempt may go on, else (which limit, whole seconds to wait)."""
        wait = self.by_address.take(address)
        if wait > 0:
            return "address", max(1, math.ceil(wait))
        wait = self.by_username.take(username)
        if wait > 0:
            return "username", max(1, math.ceil(wait))
        return None
