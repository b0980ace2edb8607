//! User-defined functions: listed and loaded through the REST API; created (after validation
//! against the spec's function metadata model) through the management API and the CLI.
//!
//! The iceberg crate has no function model yet, so the spec's `FunctionMetadata` is typed
//! here, only as far as validation needs; the document is stored as the client sent it.

use std::collections::{HashMap, HashSet};

use iceberg::{NamespaceIdent, TableIdent};
use serde::Deserialize;
use serde_json::Value;

use super::authz::{Privilege, Target};
use super::ident::{validate_namespace, validate_table_name};
use super::locations::metadata_file;
use super::page::{PageRequest, Paged};
use super::tables::{Insert, InsertError, display_ident, no_such_namespace};
use super::{Caller, Catalog, CatalogError, CatalogResult, Warehouse};
use crate::store::Change;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct FunctionMetadata {
    #[serde(rename = "function-uuid")]
    _function_uuid: uuid::Uuid,
    format_version: u8,
    definitions: Vec<FunctionDefinition>,
    definition_log: Vec<DefinitionLogEntry>,
    #[serde(default)]
    location: Option<String>,
    #[serde(default, rename = "properties")]
    _properties: HashMap<String, String>,
    #[serde(default, rename = "secure")]
    _secure: Option<bool>,
    #[serde(default, rename = "doc")]
    _doc: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct FunctionDefinition {
    definition_id: String,
    #[serde(default)]
    specific_name: Option<String>,
    parameters: Vec<FunctionParameter>,
    return_type: DataType,
    #[serde(default, rename = "return-nullable")]
    _return_nullable: Option<bool>,
    versions: Vec<DefinitionVersion>,
    current_version_id: i64,
    function_type: FunctionType,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum FunctionType {
    Udf,
    Udtf,
}

#[derive(Debug, Deserialize)]
struct FunctionParameter {
    #[serde(rename = "type")]
    data_type: DataType,
    #[serde(rename = "name")]
    _name: String,
}

/// A type string (`int`, `decimal(9,2)`) or a nested list, map or struct type.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum DataType {
    Primitive(String),
    Nested(NestedType),
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum NestedType {
    List {
        element: Box<DataType>,
    },
    Map {
        key: Box<DataType>,
        value: Box<DataType>,
    },
    Struct {
        fields: Vec<StructField>,
    },
}

#[derive(Debug, Deserialize)]
struct StructField {
    #[serde(rename = "name")]
    _name: String,
    #[serde(rename = "type")]
    data_type: DataType,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct DefinitionVersion {
    version_id: i64,
    representations: Vec<Representation>,
    #[serde(default, rename = "deterministic")]
    _deterministic: Option<bool>,
    #[serde(default, rename = "on-null-input")]
    _on_null_input: Option<OnNullInput>,
    #[serde(rename = "timestamp-ms")]
    _timestamp_ms: i64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum OnNullInput {
    ReturnNull,
    Call,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Representation {
    Sql {
        #[serde(rename = "dialect")]
        _dialect: String,
        #[serde(rename = "sql")]
        _sql: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct DefinitionLogEntry {
    #[serde(rename = "timestamp-ms")]
    _timestamp_ms: i64,
    definition_versions: Vec<DefinitionVersionRef>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct DefinitionVersionRef {
    definition_id: String,
    version_id: i64,
}

impl DataType {
    fn validate(&self, at: &str) -> Result<(), String> {
        match self {
            Self::Primitive(name) => {
                if name.is_empty()
                    || name.contains(char::is_whitespace)
                    || name.contains(['"', '\''])
                {
                    return Err(format!(
                        "{at}: type '{name}' must be a type string without spaces or quotes"
                    ));
                }
                Ok(())
            }
            Self::Nested(NestedType::List { element }) => {
                element.validate(&format!("{at}.element"))
            }
            Self::Nested(NestedType::Map { key, value }) => {
                key.validate(&format!("{at}.key"))?;
                value.validate(&format!("{at}.value"))
            }
            Self::Nested(NestedType::Struct { fields }) => fields
                .iter()
                .enumerate()
                .try_for_each(|(i, f)| f.data_type.validate(&format!("{at}.fields[{i}]"))),
        }
    }
}

/// Checks a function metadata document: its shape (the spec's model) and its consistency.
fn validate(document: &Value) -> Result<FunctionMetadata, String> {
    let metadata: FunctionMetadata = serde_path_to_error::deserialize(document).map_err(|e| {
        let path = e.path().to_string();
        format!("invalid function metadata at '{path}': {}", e.into_inner())
    })?;
    if metadata.format_version != 1 {
        return Err(format!(
            "function metadata format-version must be 1, not {}",
            metadata.format_version
        ));
    }
    if metadata.definitions.is_empty() {
        return Err("a function needs at least one definition".into());
    }
    let mut ids = HashSet::new();
    let mut specific_names = HashSet::new();
    let mut versions_of: HashMap<&str, HashSet<i64>> = HashMap::new();
    for (i, definition) in metadata.definitions.iter().enumerate() {
        let at = format!("definitions[{i}]");
        if !ids.insert(definition.definition_id.as_str()) {
            return Err(format!(
                "{at}: definition-id '{}' appears twice",
                definition.definition_id
            ));
        }
        if let Some(name) = &definition.specific_name
            && !specific_names.insert(name.as_str())
        {
            return Err(format!("{at}: specific-name '{name}' appears twice"));
        }
        for (p, parameter) in definition.parameters.iter().enumerate() {
            parameter
                .data_type
                .validate(&format!("{at}.parameters[{p}].type"))?;
        }
        definition
            .return_type
            .validate(&format!("{at}.return-type"))?;
        if matches!(definition.function_type, FunctionType::Udtf)
            && !matches!(
                definition.return_type,
                DataType::Nested(NestedType::Struct { .. })
            )
        {
            return Err(format!(
                "{at}: a udtf must return a struct (its output schema)"
            ));
        }
        let versions: HashSet<i64> = definition.versions.iter().map(|v| v.version_id).collect();
        if versions.len() != definition.versions.len() {
            return Err(format!("{at}: version ids must be unique"));
        }
        if !versions.contains(&definition.current_version_id) {
            return Err(format!(
                "{at}: current-version-id {} is not one of its versions",
                definition.current_version_id
            ));
        }
        if definition
            .versions
            .iter()
            .any(|v| v.representations.is_empty())
        {
            return Err(format!(
                "{at}: every version needs at least one representation"
            ));
        }
        versions_of.insert(&definition.definition_id, versions);
    }
    for (i, entry) in metadata.definition_log.iter().enumerate() {
        for reference in &entry.definition_versions {
            let known = versions_of
                .get(reference.definition_id.as_str())
                .is_some_and(|v| v.contains(&reference.version_id));
            if !known {
                return Err(format!(
                    "definition-log[{i}] names version {} of definition '{}', which does not exist",
                    reference.version_id, reference.definition_id
                ));
            }
        }
    }
    Ok(metadata)
}

/// A stored function.
#[derive(Debug, Clone)]
pub struct LoadedFunction {
    pub metadata_location: String,
    pub metadata_json: String,
}

fn no_such_function(ident: &TableIdent) -> CatalogError {
    CatalogError::NoSuchFunction(format!(
        "function '{}' does not exist",
        display_ident(ident)
    ))
}

impl Catalog {
    pub async fn list_functions(
        &self,
        caller: &Caller,
        warehouse: &Warehouse,
        namespace: &NamespaceIdent,
        page: &PageRequest,
    ) -> CatalogResult<Paged<TableIdent>> {
        self.list_objects(caller, None, warehouse, namespace, page)
            .await
    }

    pub async fn load_function(
        &self,
        caller: &Caller,
        warehouse: &Warehouse,
        ident: &TableIdent,
    ) -> CatalogResult<LoadedFunction> {
        self.authorize(caller, Privilege::Read, Target::Function(warehouse, ident))
            .await?;
        validate_namespace(ident.namespace())?;
        let row = self
            .store
            .function(&warehouse.id, ident.namespace(), ident.name())
            .await?;
        match row {
            Some(row) => Ok(LoadedFunction {
                metadata_location: row.metadata_location,
                metadata_json: row.metadata,
            }),
            None if self
                .store
                .namespace(&warehouse.id, ident.namespace())
                .await?
                .is_none() =>
            {
                Err(no_such_namespace(ident.namespace()))
            }
            None => Err(no_such_function(ident)),
        }
    }

    /// Validates a function metadata document, writes its metadata file and stores it.
    pub async fn create_function(
        &self,
        caller: &Caller,
        warehouse: &Warehouse,
        ident: &TableIdent,
        mut document: Value,
    ) -> CatalogResult<LoadedFunction> {
        self.authorize(
            caller,
            Privilege::Create,
            Target::Namespace(warehouse, ident.namespace()),
        )
        .await?;
        validate_namespace(ident.namespace())?;
        validate_table_name(ident.name())?;
        let metadata = validate(&document).map_err(CatalogError::BadRequest)?;
        let location = self
            .new_object_location(warehouse, ident, metadata.location.as_deref())
            .await?;
        if metadata.location.is_none() {
            document["location"] = Value::String(location.to_string());
        }
        let json = serde_json::to_string(&document).expect("a JSON value serializes");
        let metadata_file = metadata_file(&location, None, false);
        let metadata_location = metadata_file.to_string();
        let event = self.event(
            caller,
            "function.created",
            warehouse,
            ident.namespace(),
            Some(ident.name()),
            serde_json::json!({ "metadata-location": metadata_location }),
        );
        self.insert_object(
            Insert {
                kind: None,
                warehouse,
                ident,
                metadata_file: &metadata_file,
                json: &json,
                write_file: true,
                claim: None,
                arrived: caller.arrived,
            },
            Change::new(None, vec![event]),
        )
        .await
        .map_err(|e| match e {
            InsertError::Exists => CatalogError::AlreadyExists(format!(
                "function '{}' already exists",
                display_ident(ident)
            )),
            InsertError::Catalog(e) => e,
        })?;
        Ok(LoadedFunction {
            metadata_location,
            metadata_json: json,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::validate;

    fn add_one() -> serde_json::Value {
        json!({
            "function-uuid": "42fd3f91-bc10-41c1-8a52-92b57dd0a9b2",
            "format-version": 1,
            "definitions": [{
                "definition-id": "int",
                "parameters": [{"name": "x", "type": "int"}],
                "return-type": "int",
                "function-type": "udf",
                "current-version-id": 1,
                "versions": [{"version-id": 1, "timestamp-ms": 1, "representations": [
                    {"type": "sql", "dialect": "spark", "sql": "x + 1"}]}]
            }],
            "definition-log": [{"timestamp-ms": 1, "definition-versions": [{"definition-id": "int", "version-id": 1}]}]
        })
    }

    #[test]
    fn a_valid_function_passes() {
        validate(&add_one()).unwrap();
    }

    #[test]
    fn invalid_functions_are_explained() {
        let mut doc = add_one();
        doc["format-version"] = json!(2);
        assert!(validate(&doc).unwrap_err().contains("format-version"));
        let mut doc = add_one();
        doc["definitions"][0]["current-version-id"] = json!(7);
        assert!(validate(&doc).unwrap_err().contains("current-version-id"));
        let mut doc = add_one();
        doc["definitions"][0]["return-type"] = json!("decimal(9, 2)");
        assert!(validate(&doc).unwrap_err().contains("without spaces"));
        let mut doc = add_one();
        doc["definitions"][0]["function-type"] = json!("udtf");
        assert!(validate(&doc).unwrap_err().contains("struct"));
        let mut doc = add_one();
        doc["definition-log"][0]["definition-versions"][0]["version-id"] = json!(3);
        assert!(validate(&doc).unwrap_err().contains("definition-log"));
        let mut doc = add_one();
        doc["definitions"][0]["versions"][0]["representations"][0]["type"] = json!("python");
        assert!(
            validate(&doc)
                .unwrap_err()
                .contains("definitions[0].versions[0].representations[0]")
        );
        let mut doc = add_one();
        doc.as_object_mut().unwrap().remove("function-uuid");
        assert!(validate(&doc).unwrap_err().contains("function-uuid"));
    }
}
