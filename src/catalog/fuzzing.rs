//! Entry points for the coverage-guided fuzz targets (`tests/fuzz`): request bodies taken
//! through everything that needs neither a database nor storage (parsing, location
//! confinement, definition checks, the crate's metadata builder, serialisation). Any input may
//! be refused; none may panic or hang.

use std::collections::HashMap;
use std::sync::OnceLock;

use iceberg::spec::{FormatVersion, TableMetadata};
use iceberg_catalog_rest::{CommitTableRequest, CreateTableRequest};

use super::locations::object_location;
use super::tables::{
    NewTableDefinition, apply_commit, create_request_metadata, new_table_builder, to_json,
};
use super::{Limits, Warehouse};
use crate::storage::Location;

fn warehouse() -> &'static Warehouse {
    static WAREHOUSE: OnceLock<Warehouse> = OnceLock::new();
    WAREHOUSE.get_or_init(|| {
        let location = "file:///fuzz/warehouse".to_owned();
        Warehouse {
            id: "fuzz".into(),
            name: "fuzz".into(),
            root: Location::parse(&location).expect("a valid root"),
            location,
            storage: None,
            stored_secrets: None,
        }
    })
}

/// A small table to apply commits to: three columns, a bucket partition, format v2.
fn current() -> &'static TableMetadata {
    static CURRENT: OnceLock<TableMetadata> = OnceLock::new();
    CURRENT.get_or_init(|| {
        let schema = serde_json::from_value(serde_json::json!({
            "type": "struct", "schema-id": 0, "fields": [
                {"id": 1, "name": "id", "required": true, "type": "long"},
                {"id": 2, "name": "data", "required": false, "type": "string"},
                {"id": 3, "name": "ts", "required": false, "type": "timestamptz"}]
        }))
        .expect("a valid schema");
        let spec = serde_json::from_value(serde_json::json!({"spec-id": 0, "fields": [
            {"source-id": 1, "field-id": 1000, "name": "id_bucket", "transform": "bucket[4]"}]}))
        .expect("a valid spec");
        new_table_builder(NewTableDefinition {
            name: "t".into(),
            location: &warehouse().root.join("ns/t"),
            schema,
            spec: Some(spec),
            order: None,
            properties: HashMap::new(),
            format_version: FormatVersion::V2,
        })
        .and_then(|b| {
            b.build()
                .map_err(|e| super::tables::invalid("fuzz table", e))
        })
        .expect("the fuzz table builds")
        .metadata
    })
}

/// A `createTable` body; true when it would be accepted.
pub fn create_table_body(data: &[u8]) -> bool {
    let Ok(request) = serde_json::from_slice::<CreateTableRequest>(data) else {
        return false;
    };
    let warehouse = warehouse();
    let location = match &request.location {
        Some(raw) => match object_location(warehouse, raw, "location") {
            Ok(location) => location,
            Err(_) => return false,
        },
        None => warehouse.root.join("ns/t"),
    };
    match create_request_metadata(request, &location) {
        Ok(metadata) => {
            to_json(&metadata).expect("valid metadata serializes");
            true
        }
        Err(_) => false,
    }
}

/// A `commitTable` body, applied to a small table; true when it would be accepted.
pub fn commit_table_body(data: &[u8]) -> bool {
    let Ok(request) = serde_json::from_slice::<CommitTableRequest>(data) else {
        return false;
    };
    let current = current();
    for requirement in &request.requirements {
        if requirement.check(Some(current)).is_err() {
            return false;
        }
    }
    let location = "file:///fuzz/warehouse/ns/t/metadata/00000-x.metadata.json";
    if let Ok(built) = apply_commit(
        warehouse(),
        &Limits::default(),
        current,
        location,
        &request.updates,
    ) {
        to_json(&built.metadata).expect("valid metadata serializes");
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    /// The fuzz targets' seeds are accepted (so the fuzzer starts from valid bodies), and a
    /// hostile variant of each is refused.
    #[test]
    fn seeds_are_accepted_and_escapes_refused() {
        let seeds = |kind: &str| {
            std::fs::read_dir(format!("tests/fuzz/seeds/{kind}"))
                .unwrap()
                .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
                .collect::<Vec<_>>()
        };
        for seed in seeds("create_table") {
            assert!(super::create_table_body(seed.as_bytes()), "{seed}");
            let hostile = seed.replace("file:///fuzz/warehouse/", "file:///fuzz/warehouse/../");
            let hostile = hostile.replace(
                "\"name\":\"t\",\"schema\"",
                "\"name\":\"t\",\"location\":\"file:///etc\",\"schema\"",
            );
            assert!(!super::create_table_body(hostile.as_bytes()), "{hostile}");
        }
        for seed in seeds("commit_table") {
            assert!(super::commit_table_body(seed.as_bytes()), "{seed}");
            let hostile = seed.replace("file:///fuzz/warehouse/", "file:///elsewhere/");
            assert!(!super::commit_table_body(hostile.as_bytes()), "{hostile}");
        }
    }
}
