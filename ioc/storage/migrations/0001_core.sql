-- Core relational schema: units, devices, users, alerts (+ audit), citizen reports (+ media),
-- radio broadcasts, dossiers, dead letters. Time-series tables come in 0002 (server-dependent DDL).
-- Conventions: times are timestamptz (stored UTC, shown in Asia/Ho_Chi_Minh); Vietnamese text is
-- stored NFC-normalised by the application; *_search columns hold the lower-case, diacritic-free
-- form (computed in Python: PostgreSQL's unaccent() is not immutable and misses đ/Đ in some configs).

CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- Administrative units: a tree of any depth (province > district > commune, or province > commune
-- after the 2025 reform). A unit renamed or merged keeps its row; `successor_id` + `valid_to`
-- say where its records roll up from that date.
CREATE TABLE units (
    id            text PRIMARY KEY,
    name          text NOT NULL,
    name_search   text NOT NULL,
    level         text NOT NULL,
    parent_id     text REFERENCES units (id),
    valid_from    date,
    valid_to      date,
    successor_id  text REFERENCES units (id),
    geometry      jsonb,
    properties    jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (valid_to IS NULL OR valid_from IS NULL OR valid_to > valid_from),
    CHECK (successor_id IS NULL OR successor_id <> id)
);
CREATE INDEX units_parent_idx ON units (parent_id);

-- Earlier names of a unit, so records show the name the unit had at their time.
CREATE TABLE unit_names (
    unit_id     text NOT NULL REFERENCES units (id),
    name        text NOT NULL,
    valid_from  date,
    valid_to    date,
    PRIMARY KEY (unit_id, name)
);

-- The unit a record rolls up to today: follow successor links (merges) to the end of the chain.
CREATE FUNCTION unit_rollup(p_unit text) RETURNS text
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE chain(id, successor_id, depth) AS (
        SELECT id, successor_id, 0 FROM units WHERE id = p_unit
        UNION ALL
        SELECT u.id, u.successor_id, c.depth + 1
        FROM units u JOIN chain c ON u.id = c.successor_id
        WHERE c.depth < 32
    )
    SELECT id FROM chain ORDER BY depth DESC LIMIT 1
$$;

-- Devices of every kind (camera, radio, sensor, ...). `expected_interval_s` is how long the device
-- may stay silent before presence tracking marks it offline.
CREATE TABLE devices (
    id                   text PRIMARY KEY,
    kind                 text NOT NULL,
    unit_id              text NOT NULL REFERENCES units (id),
    name                 text NOT NULL,
    lat                  double precision,
    lon                  double precision,
    expected_interval_s  integer NOT NULL DEFAULT 300 CHECK (expected_interval_s > 0),
    properties           jsonb NOT NULL DEFAULT '{}'::jsonb,
    enabled              boolean NOT NULL DEFAULT true,
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_unit_kind_idx ON devices (unit_id, kind);

CREATE TABLE device_presence (
    device_id   text PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    state       text NOT NULL DEFAULT 'unknown' CHECK (state IN ('unknown', 'online', 'offline')),
    last_seen   timestamptz,
    changed_at  timestamptz,
    reason      text,
    status      jsonb NOT NULL DEFAULT '{}'::jsonb
);

-- People and integrations.
CREATE TABLE users (
    id               bigserial PRIMARY KEY,
    username         text NOT NULL UNIQUE,
    display_name     text NOT NULL,
    role             text NOT NULL CHECK (role IN ('admin', 'operator', 'leader', 'commune_officer')),
    unit_id          text REFERENCES units (id),
    password_hash    text,
    active           boolean NOT NULL DEFAULT true,
    failed_logins    integer NOT NULL DEFAULT 0,
    locked_until     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (role <> 'commune_officer' OR unit_id IS NOT NULL)
);

CREATE TABLE api_keys (
    id           bigserial PRIMARY KEY,
    name         text NOT NULL UNIQUE,
    key_hash     text NOT NULL,
    role         text NOT NULL CHECK (role IN ('device', 'integration')),
    unit_id      text REFERENCES units (id),
    active       boolean NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Alerts: one row per cause (dedup_key), updated while the cause repeats.
CREATE TABLE alerts (
    id            bigserial PRIMARY KEY,
    kind          text NOT NULL,
    severity      text NOT NULL CHECK (severity IN ('info', 'minor', 'moderate', 'severe', 'critical')),
    title         text NOT NULL,
    title_search  text NOT NULL DEFAULT '',
    description   text,
    unit_id       text REFERENCES units (id),
    lat           double precision,
    lon           double precision,
    area          jsonb,
    evidence      jsonb NOT NULL DEFAULT '{}'::jsonb,
    source_refs   jsonb NOT NULL DEFAULT '[]'::jsonb,
    dedup_key     text,
    count         integer NOT NULL DEFAULT 1,
    first_seen    timestamptz NOT NULL,
    last_seen     timestamptz NOT NULL,
    status        text NOT NULL DEFAULT 'new'
                  CHECK (status IN ('new', 'acknowledged', 'in_progress', 'resolved', 'closed', 'dismissed')),
    assigned_unit_id text REFERENCES units (id),
    escalation_level integer NOT NULL DEFAULT 0,
    seq           bigint NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE SEQUENCE alert_seq;
-- Only one open alert per cause; closed/dismissed ones keep their key for history.
CREATE UNIQUE INDEX alerts_open_dedup_idx ON alerts (dedup_key)
    WHERE dedup_key IS NOT NULL AND status NOT IN ('closed', 'dismissed', 'resolved');
CREATE INDEX alerts_unit_status_idx ON alerts (unit_id, status, last_seen DESC);
CREATE INDEX alerts_seq_idx ON alerts (seq);
CREATE INDEX alerts_title_trgm_idx ON alerts USING gin (title_search gin_trgm_ops);

-- Append-only audit of every alert transition: UPDATE and DELETE are refused by a trigger.
CREATE TABLE alert_audit (
    id           bigserial PRIMARY KEY,
    alert_id     bigint NOT NULL REFERENCES alerts (id),
    at           timestamptz NOT NULL DEFAULT now(),
    actor        text NOT NULL,
    action       text NOT NULL,
    from_status  text,
    to_status    text,
    note         text,
    photo_ref    text,
    data         jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX alert_audit_alert_idx ON alert_audit (alert_id, id);

CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER alert_audit_append_only BEFORE UPDATE OR DELETE ON alert_audit
    FOR EACH ROW EXECUTE FUNCTION refuse_change();

-- Citizen reports ("phản ánh, kiến nghị").
CREATE TABLE reports (
    id                  bigserial PRIMARY KEY,
    tracking_code       text NOT NULL UNIQUE,
    category            text NOT NULL,
    description         text NOT NULL DEFAULT '',
    description_search  text NOT NULL DEFAULT '',
    lat                 double precision,
    lon                 double precision,
    address             text,
    unit_id             text REFERENCES units (id),
    status              text NOT NULL DEFAULT 'received',
    source              text NOT NULL DEFAULT 'web',
    source_ref          text,
    reporter_name       text,
    reporter_phone      text,
    reporter_email      text,
    consent             boolean NOT NULL DEFAULT false,
    privacy             text NOT NULL DEFAULT 'public_hidden' CHECK (privacy IN ('public_hidden', 'ioc_only')),
    alert_id            bigint REFERENCES alerts (id),
    merged_into         bigint REFERENCES reports (id),
    due_at              timestamptz,
    resolved_at         timestamptz,
    rating              smallint CHECK (rating BETWEEN 1 AND 5),
    rating_comment      text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source, source_ref)
);
CREATE INDEX reports_unit_status_idx ON reports (unit_id, status, created_at DESC);
CREATE INDEX reports_desc_trgm_idx ON reports USING gin (description_search gin_trgm_ops);

CREATE TABLE report_media (
    id           bigserial PRIMARY KEY,
    report_id    bigint NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
    sha256       text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('photo', 'video')),
    mime         text NOT NULL,
    bytes        bigint NOT NULL,
    width        integer,
    height       integer,
    duration_s   double precision,
    storage_key  text NOT NULL,
    thumb_key    text,
    role         text NOT NULL DEFAULT 'submission',
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX report_media_report_idx ON report_media (report_id);

-- IP public-address radio: one broadcast, many per-device playbacks (the proof of broadcast).
CREATE TABLE radio_broadcasts (
    id            bigserial PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('scheduled', 'urgent')),
    title         text NOT NULL,
    content_ref   text,
    targets       jsonb NOT NULL DEFAULT '{}'::jsonb,
    repeat        integer NOT NULL DEFAULT 1 CHECK (repeat >= 1),
    status        text NOT NULL DEFAULT 'pending',
    requested_by  text,
    cap_identifier text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    ended_at      timestamptz
);

CREATE TABLE radio_playbacks (
    broadcast_id  bigint NOT NULL REFERENCES radio_broadcasts (id) ON DELETE CASCADE,
    device_id     text NOT NULL REFERENCES devices (id),
    state         text NOT NULL DEFAULT 'pending',
    acked_at      timestamptz,
    started_at    timestamptz,
    finished_at   timestamptz,
    position_s    double precision,
    reason        text,
    PRIMARY KEY (broadcast_id, device_id)
);

-- Administrative dossiers (hồ sơ TTHC): current state; their lifecycle events are time series (0002).
CREATE TABLE dossiers (
    id              text PRIMARY KEY,
    unit_id         text NOT NULL REFERENCES units (id),
    procedure_code  text,
    channel         text CHECK (channel IN ('direct', 'online', 'postal')),
    received_at     timestamptz,
    due_at          timestamptz,
    status          text NOT NULL DEFAULT 'received',
    resolved_at     timestamptz,
    paid_online     boolean NOT NULL DEFAULT false,
    digitised       boolean NOT NULL DEFAULT false,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dossiers_unit_due_idx ON dossiers (unit_id, due_at);

-- Whatever could not be accepted, kept with its raw bytes and the precise reason.
CREATE TABLE dead_letters (
    id           bigserial PRIMARY KEY,
    received_at  timestamptz NOT NULL DEFAULT now(),
    source       text NOT NULL,
    topic        text,
    payload      bytea,
    reason       text NOT NULL,
    detail       jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX dead_letters_received_idx ON dead_letters USING brin (received_at);
