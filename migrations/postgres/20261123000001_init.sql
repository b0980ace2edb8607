-- Serac catalog schema (PostgreSQL). Names compare byte-wise (COLLATE "C") so that keyset
-- pagination orders exactly like the SQLite backend.

CREATE TABLE warehouses (
    id            TEXT PRIMARY KEY,
    name          TEXT COLLATE "C" NOT NULL UNIQUE,
    location      TEXT NOT NULL,
    properties    TEXT NOT NULL DEFAULT '{}',
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE namespaces (
    id            TEXT PRIMARY KEY,
    warehouse_id  TEXT NOT NULL REFERENCES warehouses (id),
    parent_id     TEXT REFERENCES namespaces (id),
    -- the levels joined by the unit separator 0x1F; parent is '' for a top-level namespace
    name          TEXT COLLATE "C" NOT NULL,
    parent        TEXT COLLATE "C" NOT NULL,
    properties    TEXT NOT NULL DEFAULT '{}',
    version       BIGINT NOT NULL DEFAULT 0,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    UNIQUE (warehouse_id, name)
);
CREATE INDEX namespaces_by_parent ON namespaces (warehouse_id, parent, name);
CREATE INDEX namespaces_parent_id ON namespaces (parent_id);

CREATE TABLE tables (
    id                TEXT PRIMARY KEY,
    namespace_id      TEXT NOT NULL REFERENCES namespaces (id),
    name              TEXT COLLATE "C" NOT NULL,
    metadata_location TEXT NOT NULL,
    metadata          TEXT NOT NULL,
    created_at_ms     BIGINT NOT NULL,
    updated_at_ms     BIGINT NOT NULL,
    UNIQUE (namespace_id, name)
);

CREATE TABLE idempotency_keys (
    key           TEXT PRIMARY KEY,
    operation     TEXT NOT NULL,
    status        INTEGER NOT NULL,
    body          TEXT,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at_ms);
