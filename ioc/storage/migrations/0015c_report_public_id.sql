-- depends: 0015b_alert_photos
-- A report's public id, shown in public lists (Open311, maps), separate from its tracking code, which
-- is the reporter's secret (it follows, rates and reopens the report). 8 symbols of Crockford's
-- base32 like the tracking code; displayed as YC-XXXX-XXXX. Not a secret, so random() is enough:
-- it only has to say nothing about the tracking code or how many reports there are.
CREATE FUNCTION report_public_id() RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT string_agg(substr('0123456789ABCDEFGHJKMNPQRSTVWXYZ', 1 + floor(random() * 32)::int, 1), '')
    FROM generate_series(1, 8)
$$;
ALTER TABLE reports ADD COLUMN public_id text NOT NULL DEFAULT report_public_id();
CREATE UNIQUE INDEX reports_public_id_idx ON reports (public_id);
