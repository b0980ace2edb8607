-- Views share the tables' rows (and so their namespace-wide unique names: a view and a table
-- cannot have the same name in one namespace); `kind` tells them apart.
ALTER TABLE tables ADD COLUMN kind TEXT NOT NULL DEFAULT 'table';
