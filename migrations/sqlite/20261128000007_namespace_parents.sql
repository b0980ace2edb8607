-- Namespaces an earlier version let be created before their parent get their parent's id
-- when the parent exists (creating a namespace now creates its missing ancestors with it).
UPDATE namespaces SET parent_id = (
    SELECT p.id FROM namespaces p
    WHERE p.warehouse_id = namespaces.warehouse_id AND p.name = namespaces.parent
)
WHERE parent_id IS NULL AND parent <> '';
