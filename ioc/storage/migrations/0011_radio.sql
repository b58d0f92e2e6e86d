-- depends: 0010_dossier_finished
-- IP public-address radio (docs/radio.md): recordings, programmes, broadcasts with their per-cluster
-- proof, the commands sent and their acks, the clusters' live state and the CAP messages handled.

CREATE TABLE radio_audio (
    id           bigserial PRIMARY KEY,
    sha256       text NOT NULL UNIQUE,
    title        text NOT NULL,
    format       text NOT NULL,
    subtype      text,
    duration_s   double precision NOT NULL CHECK (duration_s > 0),
    sample_rate  integer NOT NULL,
    channels     integer NOT NULL,
    bytes        bigint NOT NULL,
    storage_key  text NOT NULL,
    source       text NOT NULL DEFAULT 'upload' CHECK (source IN ('upload', 'tts')),
    text         text,
    created_by   text,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Broadcasts: 0001 made the table; a broadcast now names its recording, its targets and who confirmed it.
ALTER TABLE radio_broadcasts DROP CONSTRAINT IF EXISTS radio_broadcasts_kind_check;
ALTER TABLE radio_broadcasts
    ADD CONSTRAINT radio_broadcasts_kind_check CHECK (kind IN ('scheduled', 'urgent', 'normal')),
    ADD COLUMN text text,
    ADD COLUMN audio_id bigint REFERENCES radio_audio (id),
    ADD COLUMN source text NOT NULL DEFAULT 'operator',
    ADD COLUMN confirmed_by text,
    ADD COLUMN confirmed_at timestamptz,
    ADD COLUMN stopped_by text,
    ADD COLUMN reason text,
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
-- status: awaiting_confirmation | proposed | pending | playing | finished | stopped | cancelled
CREATE INDEX radio_broadcasts_status_idx ON radio_broadcasts (status) WHERE status IN ('pending', 'playing');
CREATE INDEX radio_broadcasts_cap_idx ON radio_broadcasts (cap_identifier) WHERE cap_identifier IS NOT NULL;

-- One row per (broadcast, cluster): the proof of broadcast.
-- state: pending | sent | accepted | playing | finished | interrupted | rejected | timeout | stopped
ALTER TABLE radio_playbacks
    ADD COLUMN unit_id text REFERENCES units (id),
    ADD COLUMN duration_s double precision,
    ADD COLUMN repeats_done integer NOT NULL DEFAULT 0,
    ADD COLUMN offline_at_start boolean NOT NULL DEFAULT false,
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX radio_playbacks_device_idx ON radio_playbacks (device_id, broadcast_id);

-- Every command sent to a cluster, with its bounded retries and the device's answer.
CREATE TABLE radio_commands (
    correlation_id  text PRIMARY KEY,
    device_id       text NOT NULL REFERENCES devices (id),
    unit_id         text NOT NULL REFERENCES units (id),
    command         text NOT NULL,
    payload         jsonb NOT NULL,
    broadcast_id    bigint REFERENCES radio_broadcasts (id) ON DELETE CASCADE,
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'sent', 'accepted', 'rejected', 'timeout', 'cancelled')),
    attempts        integer NOT NULL DEFAULT 0,
    max_attempts    integer NOT NULL CHECK (max_attempts >= 1),
    timeout_s       double precision NOT NULL CHECK (timeout_s > 0),
    next_at         timestamptz NOT NULL,
    sent_at         timestamptz,
    acked_at        timestamptz,
    reason          text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX radio_commands_due_idx ON radio_commands (next_at) WHERE state IN ('pending', 'sent');
CREATE INDEX radio_commands_broadcast_idx ON radio_commands (broadcast_id);

-- Daily and weekly programmes (local time Asia/Ho_Chi_Minh), per commune and/or cluster.
CREATE TABLE radio_schedules (
    id           bigserial PRIMARY KEY,
    title        text NOT NULL,
    audio_id     bigint NOT NULL REFERENCES radio_audio (id),
    unit_ids     text[] NOT NULL DEFAULT '{}',
    cluster_ids  text[] NOT NULL DEFAULT '{}',
    days         text[] NOT NULL,
    start_local  time NOT NULL,
    repeat       integer NOT NULL DEFAULT 1 CHECK (repeat >= 1),
    enabled      boolean NOT NULL DEFAULT true,
    created_by   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- The clusters' live state, from their retained status (the wall's radio panel).
CREATE TABLE radio_cluster_state (
    device_id         text PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    online            boolean NOT NULL DEFAULT false,
    playing           boolean NOT NULL DEFAULT false,
    item              text,
    volume            integer,
    power             text,
    battery_pct       double precision,
    firmware          text,
    schedule_version  text,
    synced_version    text,
    reason            text,
    last_seen         timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- Every playback event a cluster reported (broadcast or programme), once per message.
CREATE TABLE radio_plays (
    id             bigserial PRIMARY KEY,
    device_id      text NOT NULL REFERENCES devices (id),
    message_id     text NOT NULL,
    event          text NOT NULL,
    item           text NOT NULL,
    broadcast_id   bigint,
    schedule_id    bigint,
    at             timestamptz NOT NULL,
    scheduled_for  timestamptz,
    position_s     double precision,
    reason         text,
    buffered       boolean NOT NULL DEFAULT false,
    received_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (device_id, message_id)
);
CREATE INDEX radio_plays_schedule_idx ON radio_plays (schedule_id, at) WHERE schedule_id IS NOT NULL;

-- CAP messages the radio service has looked at, and what it decided.
CREATE TABLE radio_cap_seen (
    cap_message_id  bigint PRIMARY KEY REFERENCES cap_messages (id) ON DELETE CASCADE,
    decision        text NOT NULL,
    broadcast_id    bigint REFERENCES radio_broadcasts (id),
    at              timestamptz NOT NULL DEFAULT now()
);
