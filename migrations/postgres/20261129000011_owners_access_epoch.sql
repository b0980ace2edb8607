-- Owners: the principal that created a namespace, table or view may do everything to it (for
-- a namespace: to everything below it too). Objects made with authentication off, or from
-- the command line, have no owner; a deleted principal leaves its objects ownerless.
ALTER TABLE namespaces ADD COLUMN owner_id TEXT REFERENCES principals (id) ON DELETE SET NULL;
ALTER TABLE tables ADD COLUMN owner_id TEXT REFERENCES principals (id) ON DELETE SET NULL;
CREATE INDEX namespaces_by_owner ON namespaces (owner_id) WHERE owner_id IS NOT NULL;
CREATE INDEX tables_by_owner ON tables (owner_id) WHERE owner_id IS NOT NULL;

-- A refusal for a missing privilege is audited with the privilege it lacked.
ALTER TABLE audit_log ADD COLUMN missing_privilege TEXT;

-- Replicas keep in memory what each principal may do (its grants, owned objects, admin flag)
-- and the API keys they verified, stamped with this counter, and read it once per request.
-- Every change that could alter those moves it in the same transaction, whoever makes it (a
-- replica, the command line, an operator's SQL), so no replica uses a stale entry once the
-- change committed.
CREATE TABLE access_epoch (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  BIGINT NOT NULL
);
INSERT INTO access_epoch (id, n) VALUES (1, 0);

CREATE FUNCTION serac_access_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE access_epoch SET n = n + 1 WHERE id = 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER principals_access AFTER INSERT OR UPDATE OR DELETE ON principals
    FOR EACH STATEMENT EXECUTE FUNCTION serac_access_changed();
CREATE TRIGGER roles_access AFTER INSERT OR UPDATE OR DELETE ON roles
    FOR EACH STATEMENT EXECUTE FUNCTION serac_access_changed();
CREATE TRIGGER role_members_access AFTER INSERT OR UPDATE OR DELETE ON role_members
    FOR EACH STATEMENT EXECUTE FUNCTION serac_access_changed();
CREATE TRIGGER grants_access AFTER INSERT OR UPDATE OR DELETE ON grants
    FOR EACH STATEMENT EXECUTE FUNCTION serac_access_changed();
-- Not the last-used time, written once a minute per key in use.
CREATE TRIGGER api_keys_access AFTER DELETE OR UPDATE OF principal_id, secret_hash, expires_at_ms
    ON api_keys FOR EACH STATEMENT EXECUTE FUNCTION serac_access_changed();
-- Owned objects made or dropped, owners changed, objects renamed (grants and owners are kept
-- by id, and replicas hold them by name). Commits to a table change none of these columns.
CREATE TRIGGER namespaces_owned_made AFTER INSERT ON namespaces
    FOR EACH ROW WHEN (NEW.owner_id IS NOT NULL) EXECUTE FUNCTION serac_access_changed();
CREATE TRIGGER namespaces_owned_dropped AFTER DELETE ON namespaces
    FOR EACH ROW WHEN (OLD.owner_id IS NOT NULL) EXECUTE FUNCTION serac_access_changed();
CREATE TRIGGER namespaces_access AFTER UPDATE OF owner_id, name ON namespaces
    FOR EACH STATEMENT EXECUTE FUNCTION serac_access_changed();
CREATE TRIGGER tables_owned_made AFTER INSERT ON tables
    FOR EACH ROW WHEN (NEW.owner_id IS NOT NULL) EXECUTE FUNCTION serac_access_changed();
CREATE TRIGGER tables_owned_dropped AFTER DELETE ON tables
    FOR EACH ROW WHEN (OLD.owner_id IS NOT NULL) EXECUTE FUNCTION serac_access_changed();
CREATE TRIGGER tables_access AFTER UPDATE OF owner_id, name, namespace_id ON tables
    FOR EACH STATEMENT EXECUTE FUNCTION serac_access_changed();
