-- depends: 0007_open311
-- Staff replies on a citizen report: public ones show on the citizen's tracking page, internal ones
-- only to staff. Append-only, like the alert audit.
CREATE TABLE report_replies (
    id         bigserial PRIMARY KEY,
    report_id  bigint NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
    at         timestamptz NOT NULL DEFAULT now(),
    author     text NOT NULL,
    text       text NOT NULL CHECK (length(text) BETWEEN 1 AND 4000),
    public     boolean NOT NULL
);
CREATE INDEX report_replies_report_idx ON report_replies (report_id, id);
CREATE TRIGGER report_replies_append_only BEFORE UPDATE OR DELETE ON report_replies
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
