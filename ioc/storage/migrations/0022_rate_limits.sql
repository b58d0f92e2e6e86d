-- depends: 0013_sectors
-- Rate-limit buckets shared by every API replica (ioc.auth.ratelimit.SharedTokenBuckets): a client
-- behind a load balancer gets the configured rate, not N times it. A logged table on purpose: the
-- buckets survive a failover to the standby like the rest of the data.

CREATE TABLE rate_limit_buckets (
    scope   text NOT NULL,
    key     text NOT NULL,
    tokens  double precision NOT NULL,
    at      timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX rate_limit_buckets_at ON rate_limit_buckets (at);
