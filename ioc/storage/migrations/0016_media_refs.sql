-- depends: 0013_sectors
-- Shared media files are reference-counted (#16): photos are stored once by their hash, so one
-- file may back a citizen's report, a staff member's photo and a refused upload at once. A file is
-- removed only when the last holder releases it (ioc/reports/mediarefs.py).
CREATE TABLE media_refs (
    storage_key text PRIMARY KEY,
    refs        integer NOT NULL CHECK (refs >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Files already in use: one reference per report_media row (file and thumbnail) and per staff
-- photo named in the audit trail (file and its thumbnail).
INSERT INTO media_refs (storage_key, refs)
SELECT key, count(*) FROM (
    SELECT storage_key AS key FROM report_media
    UNION ALL SELECT thumb_key FROM report_media WHERE thumb_key IS NOT NULL
    UNION ALL SELECT photo_ref FROM alert_audit WHERE photo_ref LIKE 'reports/%'
    UNION ALL SELECT regexp_replace(photo_ref, '\.[a-z0-9]+$', '-thumb.jpg') FROM alert_audit
        WHERE photo_ref LIKE 'reports/%'
) keys GROUP BY key;

-- Citizen submissions retried after a timeout carry the same key: one report, the same receipt.
ALTER TABLE reports ADD COLUMN idempotency_key text;
CREATE UNIQUE INDEX reports_idempotency_key_idx ON reports (idempotency_key) WHERE idempotency_key IS NOT NULL;
