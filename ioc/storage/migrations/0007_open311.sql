-- depends: 0006_report_status
-- Open311 GeoReport v2 requests carry media URLs and service attributes of their own.
ALTER TABLE reports
    ADD COLUMN media_urls text[] NOT NULL DEFAULT '{}',
    ADD COLUMN attributes jsonb NOT NULL DEFAULT '{}'::jsonb;
CREATE INDEX reports_created_idx ON reports (created_at DESC);
