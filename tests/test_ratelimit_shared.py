"""Rate limits shared by API replicas: buckets in PostgreSQL (ioc.auth.ratelimit.SharedTokenBuckets)."""

from __future__ import annotations

from types import SimpleNamespace

from ioc.auth.ratelimit import BucketPolicy, SharedTokenBuckets, TokenBuckets, buckets_for
from ioc.storage.db import make_pool


def test_two_replicas_draw_from_one_bucket(database_url: str) -> None:
    policy = BucketPolicy(capacity=3, refill_per_s=1 / 600)
    with make_pool(database_url, max_size=2) as pool_a, make_pool(database_url, max_size=2) as pool_b:
        replica_a = SharedTokenBuckets(pool_a, "test_shared", policy)
        replica_b = SharedTokenBuckets(pool_b, "test_shared", policy)
        other = SharedTokenBuckets(pool_b, "test_other_limiter", policy)
        waits = [r.take("203.0.113.7") for r in (replica_a, replica_b, replica_a, replica_b)]
        assert waits[:3] == [0.0, 0.0, 0.0]
        assert 500 < waits[3] <= 600  # the fourth attempt waits for one token at 1 per 600 s
        assert replica_a.take("203.0.113.8") == 0.0  # another address has its own bucket
        assert other.take("203.0.113.7") == 0.0  # another limiter too


def test_buckets_for_picks_the_configured_store(database_url: str) -> None:
    policy = BucketPolicy(capacity=1, refill_per_s=1.0)
    with make_pool(database_url, max_size=1) as pool:
        shared = SimpleNamespace(state=SimpleNamespace(ioc=SimpleNamespace(
            settings=SimpleNamespace(rate_limit_store="postgres"), pool=pool)))  # fmt: skip
        local = SimpleNamespace(state=SimpleNamespace(ioc=SimpleNamespace(
            settings=SimpleNamespace(rate_limit_store="memory"), pool=pool)))  # fmt: skip
        assert isinstance(buckets_for(shared, "x", policy), SharedTokenBuckets)
        assert buckets_for(shared, "x", policy) is buckets_for(shared, "x", policy)
        assert isinstance(buckets_for(local, "x", policy), TokenBuckets)
