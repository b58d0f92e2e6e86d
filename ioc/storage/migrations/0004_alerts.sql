-- depends: 0003_auth
-- Alert lifecycle bookkeeping: when the next escalation is due, under which policy, and the
-- timestamps the wall and the KPIs read without walking the audit trail.

ALTER TABLE alerts
    ADD COLUMN policy           text,
    ADD COLUMN escalate_at      timestamptz,
    ADD COLUMN acknowledged_at  timestamptz,
    ADD COLUMN resolved_at      timestamptz,
    ADD COLUMN closed_at        timestamptz;

-- `seq` is the order in which changes became visible (see ioc.alerts.store): replay with since=<seq>.
DROP INDEX alerts_seq_idx;
CREATE UNIQUE INDEX alerts_seq_idx ON alerts (seq);
-- The escalation job's question: which unacknowledged alerts are due now?
CREATE INDEX alerts_escalate_idx ON alerts (escalate_at) WHERE status = 'new' AND escalate_at IS NOT NULL;
