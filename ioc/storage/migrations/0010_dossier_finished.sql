-- depends: 0009_report_duplicates
-- When a dossier stopped being open (resolved, refused or withdrawn): what "open at a date" needs.
ALTER TABLE dossiers ADD COLUMN finished_at timestamptz;
CREATE INDEX dossiers_unit_received_idx ON dossiers (unit_id, received_at);
