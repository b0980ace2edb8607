//! Table metadata to and from JSON, the way the Java reference writes and keeps it, where the
//! iceberg crate's serde form differs:
//!
//! - **Refs of format-version 1 tables.** The crate's v1 form has no `refs`, so branches and
//!   tags of a v1 table would be dropped on every write and read. Java keeps them (the spec
//!   does not restrict them to v2). They are written beside the crate's document and put back
//!   into the parsed metadata.
//! - **Order.** Snapshots in commit order; schemas, specs and sort orders by id (the crate keeps
//!   them in hash maps).
//! - **Float defaults.** A `float` field's `initial-default` and `write-default` are written in
//!   the shortest form that reads back as the same float (`22.27`, not `22.270000457763672`),
//!   as Java writes them; readers that use doubles then see the value the client sent.

use iceberg::spec::{FormatVersion, SnapshotReference, TableMetadata, TableMetadataBuilder};
use serde_json::{Map, Value};

use super::{CatalogError, CatalogResult};

const MAIN_BRANCH: &str = "main";

/// The JSON document of table metadata, as Serac writes metadata files and keeps rows.
pub(crate) fn to_json(metadata: &TableMetadata) -> CatalogResult<String> {
    let failed = |e: serde_json::Error| {
        CatalogError::Internal(format!("table metadata failed to serialize: {e}"))
    };
    let mut doc = serde_json::to_value(metadata).map_err(failed)?;
    if metadata.format_version() == FormatVersion::V1
        && let Some(refs) = v1_refs(metadata)?
    {
        doc["refs"] = refs;
    }
    in_commit_order(&mut doc);
    if let Some(Value::Array(schemas)) = doc.get_mut("schemas") {
        schemas.iter_mut().for_each(shortest_float_defaults);
    }
    if let Some(schema) = doc.get_mut("schema") {
        shortest_float_defaults(schema);
    }
    serde_json::to_string(&doc).map_err(failed)
}

/// Parses table metadata, keeping the refs of a format-version 1 document.
pub(crate) fn parse(json: &[u8]) -> Result<TableMetadata, String> {
    let metadata: TableMetadata = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    if metadata.format_version() != FormatVersion::V1 {
        return Ok(metadata);
    }
    // Only a document that names refs other than main needs a second look.
    let doc: Value = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    let Some(Value::Object(refs)) = doc.get("refs") else {
        return Ok(metadata);
    };
    let others: Vec<(&String, &Value)> = refs.iter().filter(|(n, _)| *n != MAIN_BRANCH).collect();
    if others.is_empty() {
        return Ok(metadata);
    }
    let mut builder = TableMetadataBuilder::new_from_metadata(metadata, None);
    for (name, reference) in others {
        let reference: SnapshotReference =
            serde_json::from_value(reference.clone()).map_err(|e| format!("ref '{name}': {e}"))?;
        builder = builder
            .set_ref(name, reference)
            .map_err(|e| format!("ref '{name}': {e}"))?;
    }
    Ok(builder.build().map_err(|e| e.to_string())?.metadata)
}

/// The refs of a v1 table other than `main` as JSON (`None` when there are none): the crate
/// keeps them in memory but its v1 form cannot write them, so they are read off the same
/// metadata in the v2 form.
fn v1_refs(metadata: &TableMetadata) -> CatalogResult<Option<Value>> {
    // A ref needs a snapshot to point at.
    if metadata.snapshots().len() == 0 {
        return Ok(None);
    }
    let as_v2 = metadata
        .clone()
        .into_builder(None)
        .upgrade_format_version(FormatVersion::V2)
        .and_then(|b| b.build())
        .map_err(|e| CatalogError::Internal(format!("reading the refs of a v1 table: {e}")))?
        .metadata;
    let doc = serde_json::to_value(&as_v2)
        .map_err(|e| CatalogError::Internal(format!("reading the refs of a v1 table: {e}")))?;
    match doc.get("refs") {
        Some(Value::Object(refs)) if refs.keys().any(|k| k != MAIN_BRANCH) => {
            Ok(Some(Value::Object(refs.clone())))
        }
        _ => Ok(None),
    }
}

/// Lists snapshots in commit order, and schemas, specs and sort orders by id, as the Java
/// catalogs write them (the iceberg crate keeps them in hash maps, in no order).
fn in_commit_order(doc: &mut Value) {
    let sort_by = |doc: &mut Value, list: &str, keys: &[&str]| {
        if let Some(Value::Array(items)) = doc.get_mut(list) {
            items.sort_by_key(|item| {
                keys.iter()
                    .map(|k| item.get(*k).and_then(Value::as_i64).unwrap_or(0))
                    .collect::<Vec<_>>()
            });
        }
    };
    sort_by(
        doc,
        "snapshots",
        &["sequence-number", "timestamp-ms", "snapshot-id"],
    );
    sort_by(doc, "schemas", &["schema-id"]);
    sort_by(doc, "partition-specs", &["spec-id"]);
    sort_by(doc, "sort-orders", &["order-id"]);
}

/// Rewrites the defaults of `float` fields anywhere in a schema (or type) in their shortest
/// single-precision form.
fn shortest_float_defaults(node: &mut Value) {
    match node {
        Value::Object(map) => {
            if map.get("type").and_then(Value::as_str) == Some("float") {
                for key in ["initial-default", "write-default"] {
                    shorten(map, key);
                }
            }
            for value in map.values_mut() {
                shortest_float_defaults(value);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(shortest_float_defaults),
        _ => {}
    }
}

fn shorten(map: &mut Map<String, Value>, key: &str) {
    let Some(Value::Number(n)) = map.get(key) else {
        return;
    };
    let Some(wide) = n.as_f64() else {
        return;
    };
    #[allow(clippy::cast_possible_truncation)]
    let single = wide as f32;
    // Rust prints the shortest decimal that reads back as the same f32.
    if let Ok(shortest) = single.to_string().parse::<f64>()
        && let Some(number) = serde_json::Number::from_f64(shortest)
    {
        map.insert(key.to_owned(), Value::Number(number));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_defaults_are_shortest() {
        let mut schema = serde_json::json!({"type": "struct", "fields": [
            {"id": 1, "name": "f", "type": "float", "write-default": 22.270000457763672,
             "initial-default": 0.10000000149011612},
            {"id": 2, "name": "d", "type": "double", "write-default": 22.270000457763672}]});
        shortest_float_defaults(&mut schema);
        assert_eq!(schema["fields"][0]["write-default"].to_string(), "22.27");
        assert_eq!(schema["fields"][0]["initial-default"].to_string(), "0.1");
        assert_eq!(
            schema["fields"][1]["write-default"].to_string(),
            "22.270000457763672",
            "doubles stay as they are"
        );
    }
}
