-- Table and view metadata documents are large (hundreds of KiB for a table with a long
-- history) and rewritten on every commit: compress them with lz4, several times faster than
-- PostgreSQL's default pglz. Servers built without lz4 keep pglz (the statement fails there,
-- and the block ignores the failure). Rows written before keep their compression until their
-- next commit.
DO $$
BEGIN
    ALTER TABLE tables ALTER COLUMN metadata SET COMPRESSION lz4;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'lz4 compression is not available (%); metadata keeps pglz', SQLERRM;
END
$$;
