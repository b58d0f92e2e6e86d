-- depends: 0010_dossier_finished
-- Education, health and online-information figures (docs/kpi.md), derived by the ingest worker
-- from the stored `school`, `clinic` and `mention` events in the same transaction.

-- One row per school and local day; a later report for the same day replaces it (newest ts wins).
CREATE TABLE school_attendance (
    school_id        text NOT NULL REFERENCES devices (id),
    day              date NOT NULL,
    unit_id          text NOT NULL REFERENCES units (id),
    pupils_enrolled  integer NOT NULL CHECK (pupils_enrolled >= 0),
    pupils_present   integer NOT NULL CHECK (pupils_present >= 0 AND pupils_present <= pupils_enrolled),
    reported_at      timestamptz NOT NULL,  -- ts of the message the row comes from (newest source event)
    message_id       text NOT NULL,
    PRIMARY KEY (school_id, day)
);
CREATE INDEX school_attendance_unit_day_idx ON school_attendance (unit_id, day);

-- One row per clinic and local day, and its new cases by disease; replaced like attendance.
CREATE TABLE clinic_daily (
    clinic_id     text NOT NULL REFERENCES devices (id),
    day           date NOT NULL,
    unit_id       text NOT NULL REFERENCES units (id),
    visits        integer NOT NULL CHECK (visits >= 0),
    vaccinations  integer NOT NULL CHECK (vaccinations >= 0),
    reported_at   timestamptz NOT NULL,
    message_id    text NOT NULL,
    PRIMARY KEY (clinic_id, day)
);
CREATE INDEX clinic_daily_unit_day_idx ON clinic_daily (unit_id, day);

CREATE TABLE disease_cases (
    clinic_id  text NOT NULL,
    day        date NOT NULL,
    disease    text NOT NULL,
    unit_id    text NOT NULL REFERENCES units (id),
    cases      integer NOT NULL CHECK (cases >= 0),
    PRIMARY KEY (clinic_id, day, disease),
    FOREIGN KEY (clinic_id, day) REFERENCES clinic_daily (clinic_id, day) ON DELETE CASCADE
);
CREATE INDEX disease_cases_unit_disease_day_idx ON disease_cases (unit_id, disease, day);

-- Online mentions, once per URL, with the lexicon's verdict.
CREATE TABLE mentions (
    id            bigserial PRIMARY KEY,
    url           text NOT NULL UNIQUE,
    source        text NOT NULL,
    device_id     text REFERENCES devices (id),      -- the monitoring integration (null: staff over HTTP)
    scope_unit_id text NOT NULL REFERENCES units (id), -- the unit the source watches (spikes are counted there)
    unit_id       text NOT NULL REFERENCES units (id), -- the unit it is about
    published_at  timestamptz NOT NULL,
    title         text NOT NULL,
    body          text NOT NULL,
    sentiment     text NOT NULL CHECK (sentiment IN ('negative', 'neutral', 'positive')),
    score         real NOT NULL,
    tags          text[] NOT NULL DEFAULT '{}',
    message_id    text,
    received_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mentions_unit_published_idx ON mentions (unit_id, published_at);
CREATE INDEX mentions_scope_negative_idx ON mentions (scope_unit_id, published_at) WHERE sentiment = 'negative';

-- Episodes of a threshold rule (a disease cluster, a spike of negative mentions): one alert each.
-- An episode goes on while new evidence comes within its window of the last evidence, so the same
-- cluster does not alert again as more cases arrive (docs/kpi.md).
CREATE TABLE sector_episodes (
    id          bigserial PRIMARY KEY,
    rule        text NOT NULL,                 -- attendance | disease_cluster | negative_mentions
    scope       text NOT NULL,                 -- school id | unit:disease | unit
    unit_id     text NOT NULL REFERENCES units (id),
    started_at  timestamptz NOT NULL,
    last_at     timestamptz NOT NULL,
    evidence    integer NOT NULL DEFAULT 0,    -- cases, or negative mentions, seen so far
    dedup_key   text NOT NULL UNIQUE,          -- the alert's dedup key
    alert_id    bigint REFERENCES alerts (id),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sector_episodes_scope_idx ON sector_episodes (rule, scope, last_at);
