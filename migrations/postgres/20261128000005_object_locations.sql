-- Each table and view owns its location: no other may lie at, above or below it (a purge
-- must never reach another object's files). The location is kept beside the metadata so that
-- the check is an index lookup.
ALTER TABLE tables ADD COLUMN location TEXT COLLATE "C";
UPDATE tables SET location = rtrim(metadata::json->>'location', '/');
CREATE INDEX tables_location ON tables (location);
