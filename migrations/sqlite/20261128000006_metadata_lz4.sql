-- The PostgreSQL migration of this number sets lz4 compression on table metadata; SQLite has
-- no column compression. Kept so both backends share their migration numbers.
SELECT 1;
