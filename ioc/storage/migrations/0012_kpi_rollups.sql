-- depends: 0010_dossier_finished
-- Dossier KPI rollups (docs/kpi.md, "Rollups"): per (unit, local day) counts kept exact by statement
-- triggers on `dossiers`, which remove a changed row's old contribution and add its new one, so a
-- dossier rewritten by a late or out-of-order event moves its counts with it. Every figure for a
-- range of whole local days is a sum over these rows; stock figures (open at a date) are differences
-- of cumulative sums. Also the citizen's satisfaction verdict (`rated` events) on the dossier.

ALTER TABLE dossiers ADD COLUMN rated_at timestamptz, ADD COLUMN satisfied boolean;

CREATE TABLE dossier_kpi_daily (
    unit_id            text NOT NULL,
    day                date NOT NULL,          -- local date in Asia/Ho_Chi_Minh
    received           bigint NOT NULL DEFAULT 0,  -- by day of received_at
    received_direct    bigint NOT NULL DEFAULT 0,
    received_online    bigint NOT NULL DEFAULT 0,
    received_postal    bigint NOT NULL DEFAULT 0,
    paid_online        bigint NOT NULL DEFAULT 0,  -- received that day and paid online
    digitised          bigint NOT NULL DEFAULT 0,  -- received that day and digitised
    resolved           bigint NOT NULL DEFAULT 0,  -- by day of resolved_at
    resolved_early     bigint NOT NULL DEFAULT 0,
    resolved_on_time   bigint NOT NULL DEFAULT 0,
    resolved_late      bigint NOT NULL DEFAULT 0,
    refused            bigint NOT NULL DEFAULT 0,  -- by day of finished_at
    withdrawn          bigint NOT NULL DEFAULT 0,
    closed             bigint NOT NULL DEFAULT 0,  -- by day of greatest(received_at, finished_at)
    due_received       bigint NOT NULL DEFAULT 0,  -- by day of greatest(received_at, due_at)
    due_closed         bigint NOT NULL DEFAULT 0,  -- by day of greatest(received_at, due_at, finished_at)
    rated              bigint NOT NULL DEFAULT 0,  -- by day of rated_at
    rated_satisfied    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (unit_id, day)
);

-- What one dossier row adds to the daily counts: up to seven (day, counts) parts.
-- The local time zone is the district's, as in ioc.clock.LOCAL_TZ.
CREATE FUNCTION dossier_kpi_parts(d dossiers) RETURNS TABLE (
    day date, received int, received_direct int, received_online int, received_postal int, paid_online int,
    digitised int, resolved int, resolved_early int, resolved_on_time int, resolved_late int, refused int,
    withdrawn int, closed int, due_received int, due_closed int, rated int, rated_satisfied int
) LANGUAGE sql STABLE AS $$
    SELECT (d.received_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date, 1, (d.channel IS NOT DISTINCT FROM 'direct')::int,
           (d.channel IS NOT DISTINCT FROM 'online')::int, (d.channel IS NOT DISTINCT FROM 'postal')::int,
           d.paid_online::int, d.digitised::int, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
    WHERE d.received_at IS NOT NULL
    UNION ALL
    SELECT (d.resolved_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date, 0, 0, 0, 0, 0, 0, 1,
           coalesce((d.resolved_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date
                    < (d.due_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date, false)::int,
           coalesce((d.resolved_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date
                    = (d.due_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date AND d.resolved_at <= d.due_at, false)::int,
           coalesce(d.resolved_at > d.due_at, false)::int, 0, 0, 0, 0, 0, 0, 0
    WHERE d.status = 'resolved' AND d.resolved_at IS NOT NULL
    UNION ALL
    SELECT (d.finished_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
           (d.status = 'refused')::int, (d.status = 'withdrawn')::int, 0, 0, 0, 0, 0
    WHERE d.status IN ('refused', 'withdrawn') AND d.finished_at IS NOT NULL
    UNION ALL
    SELECT (greatest(d.received_at, d.finished_at) AT TIME ZONE 'Asia/Ho_Chi_Minh')::date,
           0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0
    WHERE d.received_at IS NOT NULL AND d.finished_at IS NOT NULL
    UNION ALL
    SELECT (greatest(d.received_at, d.due_at) AT TIME ZONE 'Asia/Ho_Chi_Minh')::date,
           0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0
    WHERE d.received_at IS NOT NULL AND d.due_at IS NOT NULL
    UNION ALL
    SELECT (greatest(d.received_at, d.due_at, d.finished_at) AT TIME ZONE 'Asia/Ho_Chi_Minh')::date,
           0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0
    WHERE d.received_at IS NOT NULL AND d.due_at IS NOT NULL AND d.finished_at IS NOT NULL
    UNION ALL
    SELECT (d.rated_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
           1, d.satisfied::int
    WHERE d.rated_at IS NOT NULL AND d.satisfied IS NOT NULL
$$;

-- Subtract the old rows' parts, add the new rows' parts, one upsert in key order (with the advisory
-- lock that ioc.kpi.dossiers.refresh takes, concurrent writers cannot deadlock on rollup rows).
CREATE FUNCTION dossier_kpi_apply(olds dossiers[], news dossiers[]) RETURNS void LANGUAGE sql AS $$
    INSERT INTO dossier_kpi_daily AS r (unit_id, day, received, received_direct, received_online, received_postal,
        paid_online, digitised, resolved, resolved_early, resolved_on_time, resolved_late, refused, withdrawn,
        closed, due_received, due_closed, rated, rated_satisfied)
    SELECT c.unit_id, p.day, sum(c.sign * p.received), sum(c.sign * p.received_direct),
           sum(c.sign * p.received_online), sum(c.sign * p.received_postal), sum(c.sign * p.paid_online),
           sum(c.sign * p.digitised), sum(c.sign * p.resolved), sum(c.sign * p.resolved_early),
           sum(c.sign * p.resolved_on_time), sum(c.sign * p.resolved_late), sum(c.sign * p.refused),
           sum(c.sign * p.withdrawn), sum(c.sign * p.closed), sum(c.sign * p.due_received),
           sum(c.sign * p.due_closed), sum(c.sign * p.rated), sum(c.sign * p.rated_satisfied)
    FROM (SELECT -1 AS sign, o AS d, o.unit_id FROM unnest(olds) AS o
          UNION ALL SELECT 1, n, n.unit_id FROM unnest(news) AS n) AS c
    CROSS JOIN LATERAL dossier_kpi_parts(c.d) AS p
    GROUP BY c.unit_id, p.day
    HAVING (sum(c.sign * p.received) <> 0 OR sum(c.sign * p.paid_online) <> 0
        OR sum(c.sign * p.digitised) <> 0 OR sum(c.sign * p.received_direct) <> 0
        OR sum(c.sign * p.received_online) <> 0 OR sum(c.sign * p.received_postal) <> 0
        OR sum(c.sign * p.resolved) <> 0 OR sum(c.sign * p.resolved_early) <> 0
        OR sum(c.sign * p.resolved_on_time) <> 0 OR sum(c.sign * p.resolved_late) <> 0
        OR sum(c.sign * p.refused) <> 0 OR sum(c.sign * p.withdrawn) <> 0 OR sum(c.sign * p.closed) <> 0
        OR sum(c.sign * p.due_received) <> 0 OR sum(c.sign * p.due_closed) <> 0 OR sum(c.sign * p.rated) <> 0
        OR sum(c.sign * p.rated_satisfied) <> 0)
    ORDER BY c.unit_id, p.day
    ON CONFLICT (unit_id, day) DO UPDATE SET
        received = r.received + EXCLUDED.received, received_direct = r.received_direct + EXCLUDED.received_direct,
        received_online = r.received_online + EXCLUDED.received_online,
        received_postal = r.received_postal + EXCLUDED.received_postal,
        paid_online = r.paid_online + EXCLUDED.paid_online, digitised = r.digitised + EXCLUDED.digitised,
        resolved = r.resolved + EXCLUDED.resolved, resolved_early = r.resolved_early + EXCLUDED.resolved_early,
        resolved_on_time = r.resolved_on_time + EXCLUDED.resolved_on_time,
        resolved_late = r.resolved_late + EXCLUDED.resolved_late, refused = r.refused + EXCLUDED.refused,
        withdrawn = r.withdrawn + EXCLUDED.withdrawn, closed = r.closed + EXCLUDED.closed,
        due_received = r.due_received + EXCLUDED.due_received, due_closed = r.due_closed + EXCLUDED.due_closed,
        rated = r.rated + EXCLUDED.rated, rated_satisfied = r.rated_satisfied + EXCLUDED.rated_satisfied
$$;

CREATE FUNCTION dossier_kpi_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM dossier_kpi_apply('{}'::dossiers[], ARRAY(SELECT n::dossiers FROM new_rows AS n));
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM dossier_kpi_apply(ARRAY(SELECT o::dossiers FROM old_rows AS o), ARRAY(SELECT n::dossiers FROM new_rows AS n));
    ELSE
        PERFORM dossier_kpi_apply(ARRAY(SELECT o::dossiers FROM old_rows AS o), '{}'::dossiers[]);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER dossier_kpi_insert AFTER INSERT ON dossiers
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dossier_kpi_follow();
CREATE TRIGGER dossier_kpi_update AFTER UPDATE ON dossiers
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dossier_kpi_follow();
CREATE TRIGGER dossier_kpi_delete AFTER DELETE ON dossiers
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION dossier_kpi_follow();

-- Dossiers already stored before this migration.
INSERT INTO dossier_kpi_daily (unit_id, day, received, received_direct, received_online, received_postal,
    paid_online, digitised, resolved, resolved_early, resolved_on_time, resolved_late, refused, withdrawn,
    closed, due_received, due_closed, rated, rated_satisfied)
SELECT d.unit_id, p.day, sum(p.received), sum(p.received_direct), sum(p.received_online), sum(p.received_postal),
       sum(p.paid_online), sum(p.digitised), sum(p.resolved), sum(p.resolved_early), sum(p.resolved_on_time),
       sum(p.resolved_late), sum(p.refused), sum(p.withdrawn), sum(p.closed), sum(p.due_received),
       sum(p.due_closed), sum(p.rated), sum(p.rated_satisfied)
FROM dossiers AS d CROSS JOIN LATERAL dossier_kpi_parts(d) AS p
GROUP BY d.unit_id, p.day;
