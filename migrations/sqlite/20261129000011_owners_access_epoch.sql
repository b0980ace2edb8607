-- Owners: the principal that created a namespace, table or view may do everything to it (for
-- a namespace: to everything below it too). Objects made with authentication off, or from
-- the command line, have no owner; a deleted principal leaves its objects ownerless.
ALTER TABLE namespaces ADD COLUMN owner_id TEXT REFERENCES principals (id) ON DELETE SET NULL;
ALTER TABLE tables ADD COLUMN owner_id TEXT REFERENCES principals (id) ON DELETE SET NULL;
CREATE INDEX namespaces_by_owner ON namespaces (owner_id) WHERE owner_id IS NOT NULL;
CREATE INDEX tables_by_owner ON tables (owner_id) WHERE owner_id IS NOT NULL;

-- A refusal for a missing privilege is audited with the privilege it lacked.
ALTER TABLE audit_log ADD COLUMN missing_privilege TEXT;

-- The server keeps in memory what each principal may do (its grants, owned objects, admin
-- flag) and the API keys it verified, stamped with this number. Every change that could
-- alter those counts it up in the same transaction, whoever made it (the server, the command
-- line, another process on the file), so a stale entry is never used.
CREATE TABLE access_epoch (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  INTEGER NOT NULL
);
INSERT INTO access_epoch (id, n) VALUES (1, 0);

CREATE TRIGGER principals_access_i AFTER INSERT ON principals
    BEGIN UPDATE access_epoch SET n = n + 1; END;
CREATE TRIGGER principals_access_u AFTER UPDATE ON principals
    BEGIN UPDATE access_epoch SET n = n + 1; END;
CREATE TRIGGER principals_access_d AFTER DELETE ON principals
    BEGIN UPDATE access_epoch SET n = n + 1; END;
CREATE TRIGGER roles_access_i AFTER INSERT ON roles
    BEGIN UPDATE access_epoch SET n = n + 1; END;
CREATE TRIGGER roles_access_u AFTER UPDATE ON roles
    BEGIN UPDATE access_epoch SET n = n + 1; END;
CREATE TRIGGER roles_access_d AFTER DELETE ON roles
    BEGIN UPDATE access_epoch SET n = n + 1; END;
CREATE TRIGGER role_members_access_i AFTER INSERT ON role_members
    BEGIN UPDATE access_epoch SET n = n + 1; END;
CREATE TRIGGER role_members_access_u AFTER UPDATE ON role_members
    BEGIN UPDATE access_epoch SET n = n + 1; END;
CREATE TRIGGER role_members_access_d AFTER DELETE ON role_members
    BEGIN UPDATE access_epoch SET n = n + 1; END;
CREATE TRIGGER grants_access_i AFTER INSERT ON grants
    BEGIN UPDATE access_epoch SET n = n + 1; END;
CREATE TRIGGER grants_access_u AFTER UPDATE ON grants
    BEGIN UPDATE access_epoch SET n = n + 1; END;
CREATE TRIGGER grants_access_d AFTER DELETE ON grants
    BEGIN UPDATE access_epoch SET n = n + 1; END;
CREATE TRIGGER api_keys_access_d AFTER DELETE ON api_keys
    BEGIN UPDATE access_epoch SET n = n + 1; END;
CREATE TRIGGER api_keys_access_u AFTER UPDATE OF principal_id, secret_hash, expires_at_ms ON api_keys
    BEGIN UPDATE access_epoch SET n = n + 1; END;
CREATE TRIGGER namespaces_owned_made AFTER INSERT ON namespaces WHEN NEW.owner_id IS NOT NULL
    BEGIN UPDATE access_epoch SET n = n + 1; END;
CREATE TRIGGER namespaces_owned_dropped AFTER DELETE ON namespaces WHEN OLD.owner_id IS NOT NULL
    BEGIN UPDATE access_epoch SET n = n + 1; END;
CREATE TRIGGER namespaces_access AFTER UPDATE OF owner_id, name ON namespaces
    BEGIN UPDATE access_epoch SET n = n + 1; END;
CREATE TRIGGER tables_owned_made AFTER INSERT ON tables WHEN NEW.owner_id IS NOT NULL
    BEGIN UPDATE access_epoch SET n = n + 1; END;
CREATE TRIGGER tables_owned_dropped AFTER DELETE ON tables WHEN OLD.owner_id IS NOT NULL
    BEGIN UPDATE access_epoch SET n = n + 1; END;
CREATE TRIGGER tables_access AFTER UPDATE OF owner_id, name, namespace_id ON tables
    BEGIN UPDATE access_epoch SET n = n + 1; END;
