-- depends: 0004_alerts
-- CAP 1.2 messages sent (exports of our alerts) and received (from outside authorities).
-- A CAP message is named by (sender, identifier); Update and Cancel messages reference earlier ones,
-- and this table is how a reference finds its alert.

CREATE TABLE cap_messages (
    id           bigserial PRIMARY KEY,
    direction    text NOT NULL CHECK (direction IN ('in', 'out')),
    sender       text NOT NULL,
    identifier   text NOT NULL,
    sent         timestamptz NOT NULL,
    sent_text    text NOT NULL,
    msg_type     text NOT NULL,
    status       text NOT NULL,
    scope        text NOT NULL,
    alert_id     bigint REFERENCES alerts (id),
    alert_seq    bigint,
    refs         text[] NOT NULL DEFAULT '{}',
    xml          bytea NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (sender, identifier)
);
CREATE INDEX cap_messages_alert_idx ON cap_messages (alert_id, id);
