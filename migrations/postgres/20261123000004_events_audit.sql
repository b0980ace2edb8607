-- Change feed (an outbox) and audit log.
--
-- Every committed change writes its event rows in the same transaction as the change. Events
-- are ordered by (tx, id): tx is the writing transaction's id, so a reader that only takes
-- events of transactions older than every transaction still running (the snapshot's xmin)
-- never sees a later event before an earlier one commits, and a cursor never skips one.
CREATE TABLE events (
    id            BIGINT GENERATED ALWAYS AS IDENTITY,
    tx            BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    created_at_ms BIGINT NOT NULL,
    event_type    TEXT NOT NULL,
    warehouse     TEXT COLLATE "C" NOT NULL,
    namespace     TEXT COLLATE "C" NOT NULL,
    name          TEXT COLLATE "C",
    request_id    TEXT,
    actor         TEXT,
    data          TEXT NOT NULL,
    PRIMARY KEY (tx, id)
);
CREATE INDEX events_created ON events (created_at_ms);

-- The position of the newest event deleted by retention (one row at most): a cursor before it
-- can no longer be resumed without a gap.
CREATE TABLE event_floor (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    tx  BIGINT NOT NULL,
    id  BIGINT NOT NULL
);

-- Who did what to which object, and how it ended: one row per mutating request.
CREATE TABLE audit_log (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at_ms      BIGINT NOT NULL,
    request_id TEXT,
    actor      TEXT NOT NULL,
    client     TEXT,
    operation  TEXT NOT NULL,
    object     TEXT NOT NULL,
    status     INTEGER NOT NULL,
    outcome    TEXT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at_ms);
CREATE INDEX audit_log_request ON audit_log (request_id);
