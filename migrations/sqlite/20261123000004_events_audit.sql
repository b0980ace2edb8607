-- Change feed (an outbox) and audit log. SQLite has a single writer, so the autoincrement id
-- follows commit order and tx is always 0; events are still read in (tx, id) order, like on
-- PostgreSQL.
CREATE TABLE events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    tx            INTEGER NOT NULL DEFAULT 0,
    created_at_ms INTEGER NOT NULL,
    event_type    TEXT NOT NULL,
    warehouse     TEXT NOT NULL,
    namespace     TEXT NOT NULL,
    name          TEXT,
    request_id    TEXT,
    actor         TEXT,
    data          TEXT NOT NULL
);
CREATE INDEX events_position ON events (tx, id);
CREATE INDEX events_created ON events (created_at_ms);

CREATE TABLE event_floor (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    tx  INTEGER NOT NULL,
    id  INTEGER NOT NULL
);

CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms      INTEGER NOT NULL,
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
