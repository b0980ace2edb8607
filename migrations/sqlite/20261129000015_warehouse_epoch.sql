-- The server keeps each warehouse (its root and storage profile) and the storage built from
-- it in memory, stamped with this counter, next to the access epoch in the same row so that
-- the reads that already fetch the access epoch fetch it too. Every change of a warehouse row
-- that could make that copy stale (a new storage profile, a deletion) counts it up in the same
-- transaction, whoever made it (the server, the command line, another process on the file).
-- Creating a warehouse counts nothing: nobody holds it yet.
ALTER TABLE access_epoch ADD COLUMN warehouses_n INTEGER NOT NULL DEFAULT 0;

CREATE TRIGGER warehouses_changed AFTER UPDATE OF name, location, storage ON warehouses
    BEGIN UPDATE access_epoch SET warehouses_n = warehouses_n + 1; END;
-- A deleted warehouse takes its grants with it (ON DELETE CASCADE): the access epoch moves
-- too, whether or not the cascade fires the grants' own triggers.
CREATE TRIGGER warehouses_deleted AFTER DELETE ON warehouses
    BEGIN UPDATE access_epoch SET warehouses_n = warehouses_n + 1, n = n + 1; END;
