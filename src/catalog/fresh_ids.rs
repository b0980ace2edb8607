//! Field ids of a new table in the Java reference's order.
//!
//! A create request's field ids are replaced by fresh ones (1, 2, ...). The iceberg crate
//! numbers a map's key type before the map's value id; Java numbers every field of a struct
//! first, then the types inside them, and a map's key and value ids before either type. The
//! same schema must come back with the same ids from every catalog, so the crate's result is
//! renumbered here the Java way (schema, identifier fields, partition and sort sources).

use std::collections::HashMap;

use iceberg::spec::{StructType, TableMetadata, Type};
use serde_json::Value;

use super::metadata_json;
use super::{CatalogError, CatalogResult};

/// `metadata` (a new table's, with one schema) with its field ids renumbered like Java's
/// `TypeUtil.assignFreshIds`.
pub(super) fn renumber(metadata: TableMetadata) -> CatalogResult<TableMetadata> {
    let mut mapping = HashMap::new();
    let mut next = 1;
    assign_struct(
        metadata.current_schema().as_struct(),
        &mut next,
        &mut mapping,
    );
    if mapping.iter().all(|(from, to)| from == to) {
        return Ok(metadata);
    }
    let failed = |e: String| CatalogError::Internal(format!("renumbering field ids: {e}"));
    let mut doc: Value = serde_json::from_str(&metadata_json::to_json(&metadata)?)
        .map_err(|e| failed(e.to_string()))?;
    let map_id = |v: &mut Value| {
        if let Some(id) = v.as_i64().and_then(|i| i32::try_from(i).ok())
            && let Some(new) = mapping.get(&id)
        {
            *v = Value::from(*new);
        }
    };
    if let Some(Value::Array(schemas)) = doc.get_mut("schemas") {
        for schema in schemas {
            rewrite_type(schema, &map_id);
            if let Some(Value::Array(ids)) = schema.get_mut("identifier-field-ids") {
                ids.iter_mut().for_each(map_id);
            }
        }
    }
    if let Some(schema) = doc.get_mut("schema") {
        rewrite_type(schema, &map_id);
    }
    for (list, fields) in [
        ("partition-specs", Some("fields")),
        ("partition-spec", None),
        ("sort-orders", Some("fields")),
    ] {
        let Some(Value::Array(items)) = doc.get_mut(list) else {
            continue;
        };
        for item in items {
            let fields = match fields {
                Some(key) => item.get_mut(key),
                None => Some(item),
            };
            let Some(fields) = fields else { continue };
            let fields: Vec<&mut Value> = match fields {
                Value::Array(fields) => fields.iter_mut().collect(),
                single => vec![single],
            };
            for field in fields {
                if let Some(source) = field.get_mut("source-id") {
                    map_id(source);
                }
                if let Some(Value::Array(sources)) = field.get_mut("source-ids") {
                    sources.iter_mut().for_each(map_id);
                }
            }
        }
    }
    let bytes = serde_json::to_vec(&doc).map_err(|e| failed(e.to_string()))?;
    metadata_json::parse(&bytes).map_err(failed)
}

fn assign_struct(s: &StructType, next: &mut i32, mapping: &mut HashMap<i32, i32>) {
    for field in s.fields() {
        mapping.insert(field.id, *next);
        *next += 1;
    }
    for field in s.fields() {
        assign_type(&field.field_type, next, mapping);
    }
}

fn assign_type(ty: &Type, next: &mut i32, mapping: &mut HashMap<i32, i32>) {
    match ty {
        Type::Primitive(_) => {}
        Type::Struct(s) => assign_struct(s, next, mapping),
        Type::List(list) => {
            mapping.insert(list.element_field.id, *next);
            *next += 1;
            assign_type(&list.element_field.field_type, next, mapping);
        }
        Type::Map(map) => {
            mapping.insert(map.key_field.id, *next);
            mapping.insert(map.value_field.id, *next + 1);
            *next += 2;
            assign_type(&map.key_field.field_type, next, mapping);
            assign_type(&map.value_field.field_type, next, mapping);
        }
    }
}

/// Renumbers the ids in a schema's JSON form (fields, list elements, map keys and values).
fn rewrite_type(node: &mut Value, map_id: &impl Fn(&mut Value)) {
    let Value::Object(object) = node else { return };
    for key in ["id", "element-id", "key-id", "value-id"] {
        if let Some(v) = object.get_mut(key) {
            map_id(v);
        }
    }
    for key in ["fields", "type", "element", "key", "value"] {
        match object.get_mut(key) {
            Some(Value::Array(items)) => items.iter_mut().for_each(|i| rewrite_type(i, map_id)),
            Some(child @ Value::Object(_)) => rewrite_type(child, map_id),
            _ => {}
        }
    }
}
