//! Checks on table definitions that the iceberg crate lets through but that the Java
//! reference implementation refuses, so that no table Serac accepts is unreadable by another
//! engine: decimal precision and scale, fixed lengths, bucket and truncate parameters, the
//! source types each transform accepts, unique field ids and names.
//!
//! Only what a change adds is checked (a schema, spec or sort order whose id the table did
//! not have before), so a commit costs the same whatever the table's history.

use std::collections::HashSet;

use iceberg::TableUpdate;
use iceberg::spec::{
    NestedFieldRef, PrimitiveType, Schema, SortOrder, StructType, TableMetadata, Transform, Type,
    UnboundPartitionSpec,
};

use super::{CatalogError, CatalogResult};

const MAX_DECIMAL_PRECISION: u32 = 38;

fn bad(message: String) -> CatalogError {
    CatalogError::BadRequest(message)
}

/// Checks the schemas, partition specs and sort orders of `metadata` that `before` does not
/// have (all of them for a new table).
pub(super) fn new_definitions(
    metadata: &TableMetadata,
    before: Option<&TableMetadata>,
) -> CatalogResult<()> {
    for schema in metadata.schemas_iter() {
        if before.is_none_or(|b| b.schema_by_id(schema.schema_id()).is_none()) {
            check_schema(schema)?;
        }
    }
    let schema = metadata.current_schema();
    let lookup = |source_id: i32| {
        metadata
            .schemas_iter()
            .find_map(|s| s.field_by_id(source_id).cloned())
            .or_else(|| schema.field_by_id(source_id).cloned())
    };
    for spec in metadata.partition_specs_iter() {
        if before.is_some_and(|b| b.partition_spec_by_id(spec.spec_id()).is_some()) {
            continue;
        }
        let mut names = HashSet::new();
        for field in spec.fields() {
            let what = format!("partition field '{}'", field.name);
            if field.name.is_empty() {
                return Err(bad("a partition field needs a name".into()));
            }
            if !names.insert(field.name.as_str()) {
                return Err(bad(format!(
                    "partition spec {} has two fields named '{}'",
                    spec.spec_id(),
                    field.name
                )));
            }
            check_transform(&what, field.transform, field.source_id, &lookup)?;
        }
    }
    for order in metadata.sort_orders_iter() {
        if before.is_some_and(|b| b.sort_order_by_id(order.order_id).is_some()) {
            continue;
        }
        for field in &order.fields {
            let what = format!(
                "sort order {} field on source {}",
                order.order_id, field.source_id
            );
            check_transform(&what, field.transform, field.source_id, &lookup)?;
        }
    }
    Ok(())
}

/// Checks the definitions a table creation sends, before the iceberg crate builds them (so
/// that a refusal names the field).
pub(super) fn creation(
    schema: &Schema,
    spec: Option<&UnboundPartitionSpec>,
    order: Option<&SortOrder>,
) -> CatalogResult<()> {
    check_schema(schema)?;
    let lookup = |id: i32| schema.field_by_id(id).cloned();
    if let Some(spec) = spec {
        check_unbound_spec(spec, &lookup)?;
    }
    if let Some(order) = order {
        check_sort_order(order, &lookup)?;
    }
    Ok(())
}

/// Checks the definitions a commit adds, against the table's schemas, before they are
/// applied.
pub(super) fn updates(updates: &[TableUpdate], current: &TableMetadata) -> CatalogResult<()> {
    let mut added: Vec<&Schema> = Vec::new();
    for update in updates {
        let lookup = |id: i32| {
            added
                .iter()
                .rev()
                .find_map(|s| s.field_by_id(id).cloned())
                .or_else(|| current.current_schema().field_by_id(id).cloned())
                .or_else(|| {
                    current
                        .schemas_iter()
                        .find_map(|s| s.field_by_id(id).cloned())
                })
        };
        match update {
            TableUpdate::AddSchema { schema } => {
                check_schema(schema)?;
                added.push(schema);
            }
            TableUpdate::AddSpec { spec } => check_unbound_spec(spec, &lookup)?,
            TableUpdate::AddSortOrder { sort_order } => check_sort_order(sort_order, &lookup)?,
            _ => {}
        }
    }
    Ok(())
}

fn check_unbound_spec(
    spec: &UnboundPartitionSpec,
    lookup: &impl Fn(i32) -> Option<NestedFieldRef>,
) -> CatalogResult<()> {
    for field in spec.fields() {
        let what = format!("partition field '{}'", field.name);
        check_transform(&what, field.transform, field.source_id, lookup)?;
    }
    Ok(())
}

fn check_sort_order(
    order: &SortOrder,
    lookup: &impl Fn(i32) -> Option<NestedFieldRef>,
) -> CatalogResult<()> {
    for field in &order.fields {
        let what = format!("sort field on source id {}", field.source_id);
        check_transform(&what, field.transform, field.source_id, lookup)?;
    }
    Ok(())
}

fn check_transform(
    what: &str,
    transform: Transform,
    source_id: i32,
    lookup: &impl Fn(i32) -> Option<NestedFieldRef>,
) -> CatalogResult<()> {
    match transform {
        Transform::Bucket(0) => {
            return Err(bad(format!(
                "{what}: bucket[0] is invalid; the number of buckets must be at least 1"
            )));
        }
        Transform::Truncate(0) => {
            return Err(bad(format!(
                "{what}: truncate[0] is invalid; the width must be at least 1"
            )));
        }
        _ => {}
    }
    let source = lookup(source_id).ok_or_else(|| {
        bad(format!(
            "{what}: source field id {source_id} is not in the table's schema"
        ))
    })?;
    if transform == Transform::Void || transform == Transform::Unknown {
        return Ok(());
    }
    if !source.field_type.is_primitive() {
        return Err(bad(format!(
            "{what}: transform {transform} cannot apply to '{}' of type {}",
            source.name, source.field_type
        )));
    }
    transform.result_type(&source.field_type).map_err(|_| {
        bad(format!(
            "{what}: transform {transform} cannot apply to '{}' of type {}",
            source.name, source.field_type
        ))
    })?;
    Ok(())
}

/// Checks one schema: types with valid parameters, field ids unique, names unique within
/// each struct.
pub(super) fn check_schema(schema: &Schema) -> CatalogResult<()> {
    let mut ids = HashSet::new();
    check_struct(schema.as_struct(), "", &mut ids)
}

fn check_struct(s: &StructType, path: &str, ids: &mut HashSet<i32>) -> CatalogResult<()> {
    let mut names = HashSet::new();
    for field in s.fields() {
        let name = if path.is_empty() {
            field.name.clone()
        } else {
            format!("{path}.{}", field.name)
        };
        if field.name.is_empty() {
            return Err(bad(format!(
                "schema field id {} has an empty name",
                field.id
            )));
        }
        if !names.insert(field.name.as_str()) {
            return Err(bad(format!("schema has two fields named '{name}'")));
        }
        check_field(field, &name, ids)?;
    }
    Ok(())
}

fn check_field(field: &NestedFieldRef, name: &str, ids: &mut HashSet<i32>) -> CatalogResult<()> {
    if field.id < 0 {
        return Err(bad(format!(
            "schema field '{name}' has the negative id {}",
            field.id
        )));
    }
    if !ids.insert(field.id) {
        return Err(bad(format!(
            "schema field '{name}' reuses the field id {}",
            field.id
        )));
    }
    match field.field_type.as_ref() {
        Type::Primitive(PrimitiveType::Decimal { precision, scale }) => {
            if !(1..=MAX_DECIMAL_PRECISION).contains(precision) {
                return Err(bad(format!(
                    "schema field '{name}': decimal precision {precision} is outside 1..{MAX_DECIMAL_PRECISION}"
                )));
            }
            if scale > precision {
                return Err(bad(format!(
                    "schema field '{name}': decimal scale {scale} is larger than its precision {precision}"
                )));
            }
        }
        Type::Primitive(PrimitiveType::Fixed(0)) => {
            return Err(bad(format!(
                "schema field '{name}': fixed[0] is invalid; the length must be at least 1"
            )));
        }
        Type::Primitive(_) => {}
        Type::Struct(s) => check_struct(s, name, ids)?,
        Type::List(list) => check_field(&list.element_field, &format!("{name}.element"), ids)?,
        Type::Map(map) => {
            check_field(&map.key_field, &format!("{name}.key"), ids)?;
            check_field(&map.value_field, &format!("{name}.value"), ids)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(json: serde_json::Value) -> Schema {
        serde_json::from_value(json).unwrap()
    }

    fn field(id: i32, name: &str, ty: &str) -> serde_json::Value {
        serde_json::json!({"id": id, "name": name, "required": false, "type": ty})
    }

    #[test]
    fn bad_types_are_refused() {
        for ty in [
            "decimal(100, 2)",
            "decimal(10, 20)",
            "decimal(0, 0)",
            "fixed[0]",
        ] {
            let s = schema(
                serde_json::json!({"type": "struct", "schema-id": 0, "fields": [field(1, "x", ty)]}),
            );
            let err = check_schema(&s).unwrap_err().to_string();
            assert!(err.contains("'x'"), "{ty}: {err}");
        }
        let ok = schema(
            serde_json::json!({"type": "struct", "schema-id": 0, "fields": [
            field(1, "a", "decimal(38, 38)"), field(2, "b", "fixed[1]")]}),
        );
        check_schema(&ok).unwrap();
    }
}
