-- depends: 0002_timeseries
-- Authentication state (ioc.auth): login sessions, their rotating refresh tokens, lockout timing,
-- and the lookup of API keys by hash.

-- One row per login: the family of refresh tokens descending from it. Revoking the session
-- (logout, reuse of a rotated token, disabled account, password reset) ends every token in it.
CREATE TABLE auth_sessions (
    id              uuid PRIMARY KEY,
    user_id         bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    last_used_at    timestamptz NOT NULL,
    revoked_at      timestamptz,
    revoked_reason  text CHECK (revoked_reason IN ('logout', 'reuse', 'disabled', 'password_reset', 'admin')),
    client_addr     text,
    user_agent      text,
    CHECK (expires_at > created_at),
    CHECK ((revoked_at IS NULL) = (revoked_reason IS NULL))
);
CREATE INDEX auth_sessions_open_user_idx ON auth_sessions (user_id) WHERE revoked_at IS NULL;
CREATE INDEX auth_sessions_expires_idx ON auth_sessions (expires_at);

-- Refresh tokens are random 256-bit strings; only their SHA-256 is kept. `rotated_at` is set when a
-- token is exchanged for its successor: presenting it again is a reuse.
CREATE TABLE auth_refresh_tokens (
    token_hash  bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    session_id  uuid NOT NULL REFERENCES auth_sessions (id) ON DELETE CASCADE,
    issued_at   timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    rotated_at  timestamptz,
    CHECK (expires_at > issued_at)
);
CREATE INDEX auth_refresh_tokens_session_idx ON auth_refresh_tokens (session_id);

-- Lockout counts only failures that follow each other closely; last login for the admin list.
ALTER TABLE users
    ADD COLUMN last_failed_login_at timestamptz,
    ADD COLUMN last_login_at timestamptz;

-- API keys are high-entropy secrets looked up by their SHA-256 (hex) on every request.
CREATE UNIQUE INDEX api_keys_key_hash_idx ON api_keys (key_hash);
