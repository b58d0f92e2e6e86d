-- depends: 0015_login_throttle
-- Photos uploaded for an alert (POST /api/alerts/{id}/photos): an action may only cite a photo
-- uploaded for that same alert, so nobody can attach (and then read) another commune's photo by
-- its hash.
CREATE TABLE alert_photos (
    alert_id     bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    photo_ref    text NOT NULL,
    uploaded_by  text NOT NULL,
    uploaded_at  timestamptz NOT NULL,
    PRIMARY KEY (alert_id, photo_ref)
);
