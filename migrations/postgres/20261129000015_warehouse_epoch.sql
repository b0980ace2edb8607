-- Replicas keep each warehouse (its root and storage profile) and the storage built from it
-- in memory, stamped with this counter, next to the access epoch in the same row so that the
-- reads that already fetch the access epoch (a table head, an authorization decision) fetch
-- it too. Every change of a warehouse row that could make a replica's copy stale (a new
-- storage profile, a deletion) moves it in the same transaction, whoever makes it (a replica,
-- the command line, an operator's SQL), so no replica uses an old profile's keys once the
-- change committed. Creating a warehouse moves nothing: no replica holds it yet.
ALTER TABLE access_epoch ADD COLUMN warehouses_n BIGINT NOT NULL DEFAULT 0;

CREATE FUNCTION serac_warehouses_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE access_epoch SET warehouses_n = warehouses_n + 1 WHERE id = 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER warehouses_changed AFTER UPDATE OF name, location, storage ON warehouses
    FOR EACH STATEMENT EXECUTE FUNCTION serac_warehouses_changed();
-- A deleted warehouse takes its grants with it (ON DELETE CASCADE): the access epoch moves
-- too.
CREATE FUNCTION serac_warehouses_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE access_epoch SET warehouses_n = warehouses_n + 1, n = n + 1 WHERE id = 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER warehouses_deleted AFTER DELETE ON warehouses
    FOR EACH STATEMENT EXECUTE FUNCTION serac_warehouses_deleted();
