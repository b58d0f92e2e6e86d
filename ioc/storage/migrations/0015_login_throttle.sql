-- depends: 0013_sectors
-- Login throttling shared by every API replica (ioc.auth.throttle): growing delays per client
-- address and per (account, address) pair instead of a lock that anyone could set off, and the
-- audit trail of failed logins that the brute-force alert reads.

-- One row per throttled key: 'addr:<address>' or 'pair:<address>|<username>'.
CREATE TABLE login_throttle (
    key            text PRIMARY KEY,
    failures       integer NOT NULL DEFAULT 0 CHECK (failures >= 0),
    last_failure   timestamptz NOT NULL,
    blocked_until  timestamptz
);
CREATE INDEX login_throttle_last_failure_idx ON login_throttle (last_failure);

-- Every refused login (wrong password, unknown user, throttled, disabled): who, from where, when.
-- The user name is kept as typed (folded to lower case), so guesses of unknown names show too.
CREATE TABLE login_failures (
    id        bigserial PRIMARY KEY,
    at        timestamptz NOT NULL,
    username  text NOT NULL,
    address   text NOT NULL,
    outcome   text NOT NULL CHECK (outcome IN ('bad_credentials', 'throttled', 'disabled'))
);
CREATE INDEX login_failures_address_at_idx ON login_failures (address, at);
CREATE INDEX login_failures_username_at_idx ON login_failures (username, at);
CREATE INDEX login_failures_at_idx ON login_failures (at);
