-- User-defined functions: their own name space per namespace (a function may share a name
-- with a table), the metadata document stored as written to its metadata file.
CREATE TABLE functions (
    id                TEXT PRIMARY KEY,
    namespace_id      TEXT NOT NULL REFERENCES namespaces (id),
    name              TEXT NOT NULL,
    metadata_location TEXT NOT NULL,
    metadata          TEXT NOT NULL,
    created_at_ms     BIGINT NOT NULL,
    UNIQUE (namespace_id, name)
);
