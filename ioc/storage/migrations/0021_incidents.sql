-- depends: 0013_sectors
-- Incidents: one case from many signals (docs/incidents.md). Alerts and urgent radio broadcasts are
-- attached by the correlation rules in the transaction that raises them; operators merge and split.

CREATE TABLE incidents (
    id               bigserial PRIMARY KEY,
    rule_id          text NOT NULL,
    title            text NOT NULL,
    severity         text NOT NULL CHECK (severity IN ('info', 'minor', 'moderate', 'severe', 'critical')),
    -- open: signals still arrive or nobody closed it; resolved: every signal handled (a new one re-opens
    -- it); closed: an operator closed it (final; a later signal opens a new incident); merged: folded
    -- into merged_into.
    status           text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved', 'closed', 'merged')),
    lead_unit_id     text REFERENCES units (id),
    helper_unit_ids  text[] NOT NULL DEFAULT '{}',
    lat              double precision,
    lon              double precision,
    first_signal_at  timestamptz NOT NULL,
    last_signal_at   timestamptz NOT NULL,
    signal_count     integer NOT NULL DEFAULT 0,
    merged_into      bigint REFERENCES incidents (id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    closed_at        timestamptz
);
CREATE INDEX incidents_candidates_idx ON incidents (rule_id, last_signal_at DESC) WHERE status IN ('open', 'resolved');
CREATE INDEX incidents_units_idx ON incidents (lead_unit_id, status);
CREATE INDEX incidents_helpers_idx ON incidents USING gin (helper_unit_ids);

-- Each signal belongs to exactly one incident at a time (merge and split move it).
CREATE TABLE incident_signals (
    signal       text NOT NULL CHECK (signal IN ('alert', 'broadcast')),
    ref          bigint NOT NULL,
    incident_id  bigint NOT NULL REFERENCES incidents (id),
    topic        text NOT NULL,
    cause        text,
    severity     text NOT NULL DEFAULT 'minor',
    unit_ids     text[] NOT NULL DEFAULT '{}',
    lat          double precision,
    lon          double precision,
    at           timestamptz NOT NULL,
    attached_by  text NOT NULL,
    PRIMARY KEY (signal, ref)
);
CREATE INDEX incident_signals_incident_idx ON incident_signals (incident_id, at);
CREATE INDEX incident_signals_cause_idx ON incident_signals (cause) WHERE cause IS NOT NULL;

-- The incident's own history: opened, signal attached, merged, split, status, lead, steps, notes.
CREATE TABLE incident_events (
    id           bigserial PRIMARY KEY,
    incident_id  bigint NOT NULL REFERENCES incidents (id),
    at           timestamptz NOT NULL,
    actor        text NOT NULL,
    action       text NOT NULL,
    note         text,
    data         jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX incident_events_incident_idx ON incident_events (incident_id, id);
CREATE TRIGGER incident_events_append_only BEFORE UPDATE OR DELETE ON incident_events
    FOR EACH ROW EXECUTE FUNCTION refuse_change();

-- Checklist steps done (the steps themselves come from the rule's checklist in config).
CREATE TABLE incident_steps (
    incident_id  bigint NOT NULL REFERENCES incidents (id),
    step_id      text NOT NULL,
    done_by      text NOT NULL,
    done_at      timestamptz NOT NULL,
    note         text,
    PRIMARY KEY (incident_id, step_id)
);
