-- The index for listing a namespace's children led on the warehouse: (warehouse_id, parent,
-- name). A lookup by name (warehouse_id = $1 AND name = $2, which every create runs for the
-- parent) could be planned on it as well as on the unique (warehouse_id, name) index, and
-- the generic plan of a prepared statement, made while the table was empty, took it. On
-- that index only the warehouse narrows the scan, so each create stepped through the
-- entries of every namespace of the warehouse: creates at 16 clients fell from about 5,400
-- to 3,500 per second within a few seconds of a benchmark. Leading on the parent, the
-- index still serves every listing (parent and warehouse equal, ordered by name) and can no
-- longer serve a lookup that does not name the parent.
DROP INDEX namespaces_by_parent;
CREATE INDEX namespaces_by_parent ON namespaces (parent, warehouse_id, name);
