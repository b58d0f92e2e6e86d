"""Token buckets: for the login route (one bucket per client address, one per user name) and the
public routes (citizen reports, Open311).

Two stores with one interface (``take(key)``): :class:`TokenBuckets` keeps them in the process
(``ioc up``, tests: with N API processes a client would get N times the rate), and
:class:`SharedTokenBuckets` keeps them in PostgreSQL (``IOC_RATE_LIMIT_STORE=postgres``, what a
deployment with several API replicas behind a proxy uses): one atomic ``INSERT ... ON CONFLICT``
per attempt, timed by the database's clock, so every replica draws from the same bucket and the
replicas' clocks do not matter. :func:`buckets_for` picks the store configured for an app.

Time comes from a callable returning seconds (the injected clock's), so tests move it explicitly.
Memory is bounded: at most ``max_keys`` buckets are kept; when full, buckets that have refilled
(carry no information) are dropped first, then the oldest.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


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


class Buckets(Protocol):
    def take(self, key: str) -> float: ...


_TAKE = """
INSERT INTO rate_limit_buckets AS b (scope, key, tokens, at)
VALUES (%(scope)s, %(key)s, %(capacity)s - 1, clock_timestamp())
ON CONFLICT (scope, key) DO UPDATE
   SET tokens = LEAST(%(capacity)s, b.tokens + EXTRACT(EPOCH FROM clock_timestamp() - b.at) * %(rate)s) - 1,
       at = clock_timestamp()
 WHERE LEAST(%(capacity)s, b.tokens + EXTRACT(EPOCH FROM clock_timestamp() - b.at) * %(rate)s) >= 1
RETURNING tokens
"""
_LEVEL = """
SELECT LEAST(%(capacity)s, tokens + EXTRACT(EPOCH FROM clock_timestamp() - at) * %(rate)s)
  FROM rate_limit_buckets WHERE scope = %(scope)s AND key = %(key)s
"""
# Buckets idle long enough to have refilled carry no information: dropped now and then.
_PRUNE = """
DELETE FROM rate_limit_buckets
 WHERE scope = %(scope)s AND at < clock_timestamp() - make_interval(secs => %(full_after_s)s)
"""


class SharedTokenBuckets:
    """Token buckets in PostgreSQL (table ``rate_limit_buckets``), shared by every API replica.

    ``scope`` names the limiter (two limiters never share a bucket for the same key). Each ``take``
    is one autocommitted statement on a pooled connection; the row lock of the upsert serialises
    concurrent attempts on one key across replicas, so a burst of N is N, whatever the replica count.
    """

    PRUNE_EVERY = 500

    def __init__(self, pool: Any, scope: str, policy: BucketPolicy) -> None:
        self.pool = pool
        self.scope = scope
        self.policy = policy
        self._calls = itertools.count(1)

    def take(self, key: str) -> float:
        """Take one token for ``key``: 0.0 when allowed, else the seconds until one is available."""
        params = {"scope": self.scope, "key": key, "capacity": float(self.policy.capacity),
                  "rate": self.policy.refill_per_s}  # fmt: skip
        with self.pool.connection() as conn:
            conn.autocommit = True
            try:
                if conn.execute(_TAKE, params).fetchone() is not None:
                    if next(self._calls) % self.PRUNE_EVERY == 0:
                        full_after = self.policy.capacity / self.policy.refill_per_s
                        conn.execute(_PRUNE, {"scope": self.scope, "full_after_s": full_after})
                    return 0.0
                row = conn.execute(_LEVEL, params).fetchone()
            finally:
                conn.autocommit = False
        level = float(row[0]) if row else 0.0
        return max(0.001, (1.0 - level) / self.policy.refill_per_s)


def buckets_for(app: Any, name: str, policy: BucketPolicy) -> Buckets:
    """The buckets named ``name`` of a FastAPI ``app``, created on first use in the configured store.

    ``IOC_RATE_LIMIT_STORE=postgres`` (and a database pool): shared by every replica; otherwise in
    this process.
    """
    cache = app.state.__dict__  # one attribute per limiter, as before: tests reset one by deleting it
    found = cache.get(name)
    if found is None:
        state = getattr(app.state, "ioc", None)
        settings = getattr(state, "settings", None)
        pool = getattr(state, "pool", None)
        if getattr(settings, "rate_limit_store", "memory") == "postgres" and pool is not None:
            found = SharedTokenBuckets(pool, name, policy)
        else:
            found = TokenBuckets(policy, time.monotonic)
        cache[name] = found
    return found
