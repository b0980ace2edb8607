-- A table's snapshots, one row each, apart from the rest of its metadata document, so that a
-- commit writes the snapshots it adds instead of the table's whole history: the document a
-- table row holds then stays about the same size however many snapshots the table has.
-- Rows written before keep their whole document until their next commit.
ALTER TABLE tables ADD COLUMN snapshots_apart INTEGER NOT NULL DEFAULT 0;
-- A dropped table's snapshots go with its purge task.
ALTER TABLE purge_tasks ADD COLUMN snapshots TEXT;
CREATE TABLE table_snapshots (
    -- Checked at commit: dropping a table deletes its row, then its snapshots (the order
    -- that keeps a concurrent commit from slipping in between).
    table_id        TEXT NOT NULL REFERENCES tables (id) DEFERRABLE INITIALLY DEFERRED,
    snapshot_id     BIGINT NOT NULL,
    -- the commit order, as documents list snapshots
    sequence_number BIGINT NOT NULL,
    timestamp_ms    BIGINT NOT NULL,
    -- the snapshot's JSON, as written in the metadata file
    body            TEXT NOT NULL,
    PRIMARY KEY (table_id, snapshot_id)
);
