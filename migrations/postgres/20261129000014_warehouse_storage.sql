-- A warehouse's storage profile (JSON; NULL for a local file system warehouse): how Serac
-- reaches its object store and what clients get. It holds the profile's secret access key:
-- the database is as sensitive as that key, and no response, event or log line shows it.
ALTER TABLE warehouses ADD COLUMN storage TEXT;
