-- depends: 0021_incidents 0017_warnings
-- On call (docs/incidents.md, "On call"): dated overrides of the configured shifts, and the pages
-- sent to the people on call.

CREATE TABLE on_call_overrides (
    id          bigserial PRIMARY KEY,
    unit_id     text REFERENCES units (id),
    role        text NOT NULL,
    username    text NOT NULL,
    email       text,
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL CHECK (ends_at > starts_at),
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX on_call_overrides_when_idx ON on_call_overrides (role, unit_id, starts_at, ends_at);

CREATE TABLE on_call_pages (
    id               bigserial PRIMARY KEY,
    alert_id         bigint NOT NULL REFERENCES alerts (id),
    username         text NOT NULL,
    role             text NOT NULL,
    unit_id          text,
    channel          text NOT NULL CHECK (channel IN ('push', 'email', 'console')),
    target           text NOT NULL,
    why              text NOT NULL,
    state            text NOT NULL CHECK (state IN ('queued', 'sending', 'sent', 'failed', 'acknowledged')),
    reason           text,
    attempts         integer NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL,
    sent_at          timestamptz,
    acknowledged_at  timestamptz
);
CREATE INDEX on_call_pages_queued_idx ON on_call_pages (id) WHERE state = 'queued';
CREATE INDEX on_call_pages_alert_idx ON on_call_pages (alert_id, username);
CREATE INDEX on_call_pages_user_idx ON on_call_pages (username, created_at DESC);
