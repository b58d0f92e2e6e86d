-- depends: 0012_kpi_rollups
-- Dossier figures as official one-stop reports define them (docs/kpi.md, issue #20):
-- * "digitised" is counted among the dossiers resolved in the period (digitised results / resolved),
--   on the day of the result, no longer among those received;
-- * paid online and digitised may be unknown (NULL: a sheet without the column), and their rates
--   divide by the dossiers for which they are known, so a missing column is "no data", never 0 %;
-- * awaiting a citizen's supplement is a figure of its own: `awaiting_since` is when the current
--   wait began, and the rollup counts it (a stock, like "open at the end");
-- * `date_assumed`: a final date the source did not give (a refusal without a date) was assumed.

ALTER TABLE dossiers ALTER COLUMN paid_online DROP NOT NULL, ALTER COLUMN digitised DROP NOT NULL,
    ADD COLUMN awaiting_since timestamptz, ADD COLUMN date_assumed boolean NOT NULL DEFAULT false;
CREATE INDEX dossiers_procedure_idx ON dossiers (procedure_code, received_at);

ALTER TABLE dossier_kpi_daily ADD COLUMN paid_known bigint NOT NULL DEFAULT 0,    -- received, payment known
    ADD COLUMN digitised_known bigint NOT NULL DEFAULT 0,                         -- resolved, digitisation known
    ADD COLUMN awaiting bigint NOT NULL DEFAULT 0;  -- by day of greatest(received_at, awaiting_since)

DROP TRIGGER dossier_kpi_insert ON dossiers;
DROP TRIGGER dossier_kpi_update ON dossiers;
DROP TRIGGER dossier_kpi_delete ON dossiers;
DROP FUNCTION dossier_kpi_follow();
DROP FUNCTION dossier_kpi_apply(dossiers[], dossiers[]);
DROP FUNCTION dossier_kpi_parts(dossiers);

CREATE FUNCTION dossier_kpi_parts(d dossiers) RETURNS TABLE (
    day date, received int, received_direct int, received_online int, received_postal int, paid_online int,
    digitised int, resolved int, resolved_early int, resolved_on_time int, resolved_late int, refused int,
    withdrawn int, closed int, due_received int, due_closed int, rated int, rated_satisfied int,
    paid_known int, digitised_known int, awaiting int
) LANGUAGE sql STABLE AS $$
    SELECT (d.received_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date, 1, (d.channel IS NOT DISTINCT FROM 'direct')::int,
           (d.channel IS NOT DISTINCT FROM 'online')::int, (d.channel IS NOT DISTINCT FROM 'postal')::int,
           coalesce(d.paid_online, false)::int, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
           (d.paid_online IS NOT NULL)::int, 0, 0
    WHERE d.received_at IS NOT NULL
    UNION ALL
    SELECT (d.resolved_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date, 0, 0, 0, 0, 0, coalesce(d.digitised, false)::int, 1,
           coalesce((d.resolved_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date
                    < (d.due_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date, false)::int,
           coalesce((d.resolved_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date
                    = (d.due_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date AND d.resolved_at <= d.due_at, false)::int,
           coalesce(d.resolved_at > d.due_at, false)::int, 0, 0, 0, 0, 0, 0, 0,
           0, (d.digitised IS NOT NULL)::int, 0
    WHERE d.status = 'resolved' AND d.resolved_at IS NOT NULL
    UNION ALL
    SELECT (d.finished_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
           (d.status = 'refused')::int, (d.status = 'withdrawn')::int, 0, 0, 0, 0, 0, 0, 0, 0
    WHERE d.status IN ('refused', 'withdrawn') AND d.finished_at IS NOT NULL
    UNION ALL
    SELECT (greatest(d.received_at, d.finished_at) AT TIME ZONE 'Asia/Ho_Chi_Minh')::date,
           0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0
    WHERE d.received_at IS NOT NULL AND d.finished_at IS NOT NULL
    UNION ALL
    SELECT (greatest(d.received_at, d.due_at) AT TIME ZONE 'Asia/Ho_Chi_Minh')::date,
           0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0
    WHERE d.received_at IS NOT NULL AND d.due_at IS NOT NULL
    UNION ALL
    SELECT (greatest(d.received_at, d.due_at, d.finished_at) AT TIME ZONE 'Asia/Ho_Chi_Minh')::date,
           0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0
    WHERE d.received_at IS NOT NULL AND d.due_at IS NOT NULL AND d.finished_at IS NOT NULL
    UNION ALL
    SELECT (d.rated_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
           1, d.satisfied::int, 0, 0, 0
    WHERE d.rated_at IS NOT NULL AND d.satisfied IS NOT NULL
    UNION ALL
    SELECT (greatest(d.received_at, d.awaiting_since) AT TIME ZONE 'Asia/Ho_Chi_Minh')::date,
           0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1
    WHERE d.status = 'awaiting_supplement' AND d.received_at IS NOT NULL AND d.awaiting_since IS NOT NULL
      AND d.finished_at IS NULL
$$;

CREATE FUNCTION dossier_kpi_apply(olds dossiers[], news dossiers[]) RETURNS void LANGUAGE sql AS $$
    INSERT INTO dossier_kpi_daily AS r (unit_id, day, received, received_direct, received_online, received_postal,
        paid_online, digitised, resolved, resolved_early, resolved_on_time, resolved_late, refused, withdrawn,
        closed, due_received, due_closed, rated, rated_satisfied, paid_known, digitised_known, awaiting)
    SELECT c.unit_id, p.day, sum(c.sign * p.received), sum(c.sign * p.received_direct),
           sum(c.sign * p.received_online), sum(c.sign * p.received_postal), sum(c.sign * p.paid_online),
           sum(c.sign * p.digitised), sum(c.sign * p.resolved), sum(c.sign * p.resolved_early),
           sum(c.sign * p.resolved_on_time), sum(c.sign * p.resolved_late), sum(c.sign * p.refused),
           sum(c.sign * p.withdrawn), sum(c.sign * p.closed), sum(c.sign * p.due_received),
           sum(c.sign * p.due_closed), sum(c.sign * p.rated), sum(c.sign * p.rated_satisfied),
           sum(c.sign * p.paid_known), sum(c.sign * p.digitised_known), sum(c.sign * p.awaiting)
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
        OR sum(c.sign * p.rated_satisfied) <> 0 OR sum(c.sign * p.paid_known) <> 0
        OR sum(c.sign * p.digitised_known) <> 0 OR sum(c.sign * p.awaiting) <> 0)
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
        rated = r.rated + EXCLUDED.rated, rated_satisfied = r.rated_satisfied + EXCLUDED.rated_satisfied,
        paid_known = r.paid_known + EXCLUDED.paid_known, digitised_known = r.digitised_known + EXCLUDED.digitised_known,
        awaiting = r.awaiting + EXCLUDED.awaiting
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

-- Dossiers already stored: their rows gain awaiting_since from their events at the next re-fold
-- (`ioc kpi check --refold --repair`); the rollup is rebuilt with the new definitions now.
UPDATE dossiers AS d SET awaiting_since = e.t FROM (
    SELECT dossier_id, max(time) AS t FROM dossier_events WHERE event = 'supplement_requested' GROUP BY 1
) AS e WHERE e.dossier_id = d.id AND d.status = 'awaiting_supplement';
DELETE FROM dossier_kpi_daily;
INSERT INTO dossier_kpi_daily (unit_id, day, received, received_direct, received_online, received_postal,
    paid_online, digitised, resolved, resolved_early, resolved_on_time, resolved_late, refused, withdrawn,
    closed, due_received, due_closed, rated, rated_satisfied, paid_known, digitised_known, awaiting)
SELECT d.unit_id, p.day, sum(p.received), sum(p.received_direct), sum(p.received_online), sum(p.received_postal),
       sum(p.paid_online), sum(p.digitised), sum(p.resolved), sum(p.resolved_early), sum(p.resolved_on_time),
       sum(p.resolved_late), sum(p.refused), sum(p.withdrawn), sum(p.closed), sum(p.due_received),
       sum(p.due_closed), sum(p.rated), sum(p.rated_satisfied), sum(p.paid_known), sum(p.digitised_known),
       sum(p.awaiting)
FROM dossiers AS d CROSS JOIN LATERAL dossier_kpi_parts(d) AS p
GROUP BY d.unit_id, p.day;
