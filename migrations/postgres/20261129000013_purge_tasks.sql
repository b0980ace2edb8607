-- Purges of dropped tables, recorded in the drop's transaction and carried out by a
-- background worker: a crash or restart never loses one. A replica works on a task while it
-- holds its lease (renewed as it goes); a lease that ran out (the replica died) lets another
-- replica, or the same after a restart, take the task over. Deleting is idempotent, and files
-- go before the manifests that name them, so a resumed purge finds what is left.
CREATE TABLE purge_tasks (
    id                TEXT PRIMARY KEY,
    warehouse_id      TEXT NOT NULL REFERENCES warehouses (id),
    -- the table as it was named when dropped, for events and logs
    namespace         TEXT NOT NULL,
    name              TEXT NOT NULL,
    metadata_location TEXT NOT NULL,
    metadata          TEXT NOT NULL,
    created_at_ms     BIGINT NOT NULL,
    -- no replica works on it before this time (a lease, or a retry's backoff)
    due_at_ms         BIGINT NOT NULL,
    attempts          INTEGER NOT NULL DEFAULT 0,
    deleted_files     BIGINT NOT NULL DEFAULT 0,
    last_error        TEXT
);
CREATE INDEX purge_tasks_due ON purge_tasks (due_at_ms);
