-- depends: 0005_cap
-- A citizen report follows the alert it raised: whoever moves the alert (an officer over the API,
-- a CAP Cancel, an automatic resolve), the citizen's view of the report moves with it.

CREATE FUNCTION report_follows_alert() RETURNS trigger LANGUAGE plpgsql AS $$
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
    WHERE alert_id = NEW.id;
    RETURN NULL;
END $$;

CREATE TRIGGER report_follows_alert AFTER UPDATE OF status ON alerts
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION report_follows_alert();

ALTER TABLE reports ADD CONSTRAINT reports_status_check
    CHECK (status IN ('received', 'in_progress', 'resolved', 'closed', 'rejected'));
CREATE INDEX reports_alert_idx ON reports (alert_id);
