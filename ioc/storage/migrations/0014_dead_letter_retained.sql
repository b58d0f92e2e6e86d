-- Retained junk is dead-lettered once (issue #14): the broker hands every retained message to every
-- new subscription, so the same bad retained status would be recorded again at each restart of a
-- consumer. ``retained_key`` is SHA-256(topic NUL payload) of a refused *retained* message; a second
-- copy of the same (source, key) is not inserted.
ALTER TABLE dead_letters ADD COLUMN retained_key bytea;
CREATE UNIQUE INDEX dead_letters_retained_key_idx ON dead_letters (source, retained_key)
    WHERE retained_key IS NOT NULL;
