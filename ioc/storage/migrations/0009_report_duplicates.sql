-- depends: 0008_report_replies
-- Duplicate suggestions (same category, close in place and time) and reopenings by the citizen.
ALTER TABLE reports
    ADD COLUMN suggested_duplicate_of bigint REFERENCES reports (id),
    ADD COLUMN reopen_count integer NOT NULL DEFAULT 0;
CREATE INDEX reports_category_open_idx ON reports (category, created_at DESC)
    WHERE status IN ('received', 'in_progress') AND merged_into IS NULL;

-- A merged report follows the report it was merged into, not its own (closed) alert.
CREATE OR REPLACE FUNCTION report_follows_alert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE reports SET
        status = CASE NEW.status
                     WHEN 'new' THEN 'received'
                     WHEN 'acknowledged' THEN 'in_progress'
                     WHEN 'in_progress' THEN 'in_progress'
                     WHEN 'resolved' THEN 'resolved'
                     WHEN 'closed' THEN 'closed'
                     WHEN 'dismissed' THEN 'rejected'
                 END,
        resolved_at = CASE WHEN NEW.status IN ('resolved', 'closed') THEN coalesce(resolved_at, NEW.updated_at)
                           WHEN NEW.status IN ('new', 'acknowledged', 'in_progress') THEN NULL
                           ELSE resolved_at END,
        updated_at = NEW.updated_at
    WHERE alert_id = NEW.id AND merged_into IS NULL;
    RETURN NULL;
END $$;
