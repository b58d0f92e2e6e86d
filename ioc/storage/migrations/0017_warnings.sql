-- depends: 0011_radio
-- Public warnings (docs/warnings.md): a CAP message drives loudspeakers and public channels only once
-- it is *issued* by an explicit, audited act; an alert over several communes belongs to each of them;
-- every delivery on every channel is one row of the warning's ledger.

-- Issued: who issued the message and when. Exports and received messages stay NULL until issued.
ALTER TABLE cap_messages
    ADD COLUMN warning_id  bigint,
    ADD COLUMN issued_by   text,
    ADD COLUMN issued_at   timestamptz;
CREATE INDEX cap_messages_issued_idx ON cap_messages (issued_at) WHERE issued_at IS NOT NULL;

-- An alert over several communes: each commune's officers see it and it counts in each one's figures.
CREATE TABLE alert_units (
    alert_id  bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    unit_id   text NOT NULL REFERENCES units (id),
    PRIMARY KEY (alert_id, unit_id)
);
CREATE INDEX alert_units_unit_idx ON alert_units (unit_id, alert_id);

-- state: draft | awaiting_confirmation | issued | cancelled
CREATE TABLE warnings (
    id                 bigserial PRIMARY KEY,
    category           text NOT NULL,
    cap_status         text NOT NULL DEFAULT 'Actual',
    scope              text NOT NULL DEFAULT 'Public',
    state              text NOT NULL DEFAULT 'draft'
                       CHECK (state IN ('draft', 'awaiting_confirmation', 'issued', 'cancelled')),
    content            jsonb NOT NULL,          -- what was last issued (or the first draft)
    pending            jsonb,                   -- content waiting for its issue act
    pending_message_id bigint REFERENCES cap_messages (id),  -- a received message waiting for its issue act
    requested_by       text,                    -- first person of a two-person issue
    alert_id           bigint REFERENCES alerts (id),
    unit_ids           text[] NOT NULL DEFAULT '{}',
    expires            timestamptz,
    note               text,
    created_by         text NOT NULL,
    created_at         timestamptz NOT NULL,
    issued_at          timestamptz,
    cancelled_at       timestamptz,
    updated_at         timestamptz NOT NULL
);
CREATE INDEX warnings_state_idx ON warnings (state, issued_at);
ALTER TABLE cap_messages ADD CONSTRAINT cap_messages_warning_fk FOREIGN KEY (warning_id) REFERENCES warnings (id);

CREATE TABLE warning_units (
    warning_id  bigint NOT NULL REFERENCES warnings (id) ON DELETE CASCADE,
    unit_id     text NOT NULL REFERENCES units (id),
    share       double precision,   -- share of the commune's area covered (NULL: named by geocode)
    PRIMARY KEY (warning_id, unit_id)
);
CREATE INDEX warning_units_unit_idx ON warning_units (unit_id, warning_id);

-- The audited acts: create, request, issue, revise, cancel, acknowledge.
CREATE TABLE warning_audit (
    id          bigserial PRIMARY KEY,
    warning_id  bigint NOT NULL REFERENCES warnings (id) ON DELETE CASCADE,
    at          timestamptz NOT NULL,
    actor       text NOT NULL,
    action      text NOT NULL,
    note        text,
    data        jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX warning_audit_warning_idx ON warning_audit (warning_id, id);

-- One delivery per (message, channel, target); state moves queued -> sent -> delivered / acknowledged /
-- played, or failed (with the reason) / cancelled.
CREATE TABLE warning_deliveries (
    id              bigserial PRIMARY KEY,
    warning_id      bigint NOT NULL REFERENCES warnings (id) ON DELETE CASCADE,
    cap_message_id  bigint NOT NULL REFERENCES cap_messages (id),
    msg_type        text NOT NULL,
    channel         text NOT NULL CHECK (channel IN ('radio', 'wall', 'console', 'push', 'email', 'webhook')),
    target          text NOT NULL,
    state           text NOT NULL DEFAULT 'queued'
                    CHECK (state IN ('queued', 'sent', 'delivered', 'acknowledged', 'played', 'failed', 'cancelled')),
    attempts        integer NOT NULL DEFAULT 0,
    next_at         timestamptz NOT NULL,
    reason          text,
    detail          jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    UNIQUE (cap_message_id, channel, target)
);
CREATE INDEX warning_deliveries_due_idx ON warning_deliveries (next_at) WHERE state IN ('queued', 'sent');
CREATE INDEX warning_deliveries_warning_idx ON warning_deliveries (warning_id, id);

-- The ledger: every move of every delivery, append-only (what the wall shows and the export prints).
CREATE TABLE warning_ledger (
    id           bigserial PRIMARY KEY,
    warning_id   bigint NOT NULL REFERENCES warnings (id) ON DELETE CASCADE,
    delivery_id  bigint NOT NULL REFERENCES warning_deliveries (id) ON DELETE CASCADE,
    at           timestamptz NOT NULL,
    msg_type     text NOT NULL,
    channel      text NOT NULL,
    target       text NOT NULL,
    state        text NOT NULL,
    attempt      integer NOT NULL DEFAULT 0,
    reason       text
);
CREATE INDEX warning_ledger_warning_idx ON warning_ledger (warning_id, id);

-- Officers' phones: Web Push subscriptions (RFC 8030 endpoint + RFC 8291 keys).
CREATE TABLE push_subscriptions (
    id          bigserial PRIMARY KEY,
    user_id     bigint,
    actor       text NOT NULL,
    unit_ids    text[],                 -- NULL: district-wide staff
    endpoint    text NOT NULL UNIQUE,
    p256dh      text NOT NULL,
    auth        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Radio commands of a CAP warning expire with it (docs/radio.md); [device-trust] may add the same column.
ALTER TABLE radio_broadcasts ADD COLUMN IF NOT EXISTS expires_at timestamptz;
