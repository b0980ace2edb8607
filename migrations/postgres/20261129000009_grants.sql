-- Authorization: principals belong to roles; roles hold grants of a privilege on a warehouse,
-- a namespace (reaching everything below it) or a table or view. Grants name their objects
-- by id, so they follow a renamed table and vanish with a dropped object (a namespace or
-- table made again later under the same name starts without them).
CREATE TABLE roles (
    id            TEXT PRIMARY KEY,
    name          TEXT COLLATE "C" NOT NULL UNIQUE,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE role_members (
    role_id      TEXT NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    principal_id TEXT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    PRIMARY KEY (role_id, principal_id)
);
CREATE INDEX role_members_by_principal ON role_members (principal_id);

CREATE TABLE grants (
    role_id       TEXT NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    privilege     TEXT NOT NULL,
    warehouse_id  TEXT NOT NULL REFERENCES warehouses (id) ON DELETE CASCADE,
    namespace_id  TEXT REFERENCES namespaces (id) ON DELETE CASCADE,
    table_id      TEXT REFERENCES tables (id) ON DELETE CASCADE,
    -- 'w', 'n:<namespace id>' or 't:<table id>': one grant per role, privilege and object
    target        TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (role_id, privilege, target)
);
CREATE INDEX grants_by_namespace ON grants (namespace_id);
CREATE INDEX grants_by_table ON grants (table_id);
