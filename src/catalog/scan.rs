//! Server-side scan planning: the spec's filter expressions become the iceberg crate's
//! `Predicate`, the crate's scan plans the files (manifest pruning, delete-file matching), and
//! the tasks are returned whole or split into plan tasks that clients fetch. Plans live in
//! memory for a limited time; a cancelled or expired plan is gone (404).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use iceberg::TableIdent;
use iceberg::expr::{Predicate, Reference};
use iceberg::io::FileIO;
use iceberg::spec::{
    DataContentType, Datum, ManifestContentType, PrimitiveLiteral, PrimitiveType, Schema, Struct,
    TableMetadata, Type,
};
use iceberg::table::Table;
use serde::Deserialize;
use serde_json::{Value, json};

use super::authz::{Privilege, Target};
use super::ident::validate_table_ident;
use super::tables::display_ident;
use super::{Caller, Catalog, CatalogError, CatalogResult, Warehouse};

/// `POST .../plan`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct PlanTableScanRequest {
    #[serde(default)]
    pub snapshot_id: Option<i64>,
    #[serde(default)]
    pub select: Option<Vec<String>>,
    #[serde(default)]
    pub filter: Option<Value>,
    #[serde(default = "yes")]
    pub case_sensitive: bool,
    #[serde(default)]
    pub use_snapshot_schema: bool,
    #[serde(default)]
    pub start_snapshot_id: Option<i64>,
    #[serde(default)]
    pub end_snapshot_id: Option<i64>,
    #[serde(default)]
    pub stats_fields: Option<Vec<String>>,
    #[serde(default)]
    pub min_rows_requested: Option<i64>,
}

fn yes() -> bool {
    true
}

/// A part of a plan: file scan tasks and the delete files they refer to (by index).
#[derive(Debug, Clone, Default)]
pub struct ScanTasks {
    pub file_scan_tasks: Vec<Value>,
    pub delete_files: Vec<Value>,
}

/// The outcome of planning.
#[derive(Debug, Clone)]
pub enum PlanResult {
    /// Every task is in the answer.
    Complete(ScanTasks),
    /// Tasks are fetched per plan task.
    Split(Vec<String>),
}

#[derive(Debug)]
struct StoredPlan {
    table: TableIdent,
    parts: Vec<ScanTasks>,
}

/// Plans that were split, by plan id, until they expire or are cancelled.
#[derive(Debug)]
pub(crate) struct Plans {
    plans: moka::sync::Cache<String, Arc<StoredPlan>>,
    files_per_task: usize,
}

impl Plans {
    pub(crate) fn new(files_per_task: usize, lifetime: Duration) -> Self {
        Self {
            plans: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(lifetime)
                .build(),
            files_per_task: files_per_task.max(1),
        }
    }
}

fn bad(message: impl Into<String>) -> CatalogError {
    CatalogError::BadRequest(message.into())
}

fn no_such_plan(what: &str) -> CatalogError {
    CatalogError::NoSuchPlan(format!(
        "{what} does not exist: it was cancelled, it expired, or it was never issued"
    ))
}

// --- expressions -------------------------------------------------------------------------------

/// Converts a filter expression of the REST spec into a predicate on `schema`'s fields.
pub fn parse_filter(
    expr: &Value,
    schema: &Schema,
    case_sensitive: bool,
) -> CatalogResult<Predicate> {
    Parser {
        schema,
        case_sensitive,
    }
    .predicate(expr)
}

struct Parser<'a> {
    schema: &'a Schema,
    case_sensitive: bool,
}

impl Parser<'_> {
    fn predicate(&self, expr: &Value) -> CatalogResult<Predicate> {
        match expr {
            Value::Bool(true) => return Ok(Predicate::AlwaysTrue),
            Value::Bool(false) => return Ok(Predicate::AlwaysFalse),
            Value::Object(_) => {}
            other => {
                return Err(bad(format!(
                    "a filter must be a boolean or an object, not {other}"
                )));
            }
        }
        let kind = expr
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("filter expression without a 'type': {expr}")))?;
        let child = |name: &str| {
            expr.get(name)
                .ok_or_else(|| bad(format!("'{kind}' expression needs '{name}': {expr}")))
        };
        Ok(match kind {
            "true" => Predicate::AlwaysTrue,
            "false" => Predicate::AlwaysFalse,
            "and" => self
                .predicate(child("left")?)?
                .and(self.predicate(child("right")?)?),
            "or" => self
                .predicate(child("left")?)?
                .or(self.predicate(child("right")?)?),
            "not" => !self.predicate(child("child")?)?,
            "is-null" | "not-null" | "is-nan" | "not-nan" => {
                let (reference, _) =
                    self.reference(expr.get("child").or(expr.get("term")), expr)?;
                match kind {
                    "is-null" => reference.is_null(),
                    "not-null" => reference.is_not_null(),
                    "is-nan" => reference.is_nan(),
                    _ => reference.is_not_nan(),
                }
            }
            "in" | "not-in" => {
                let (reference, ty) =
                    self.reference(expr.get("child").or(expr.get("term")), expr)?;
                let values = self.literals(child("values")?, &ty)?;
                if kind == "in" {
                    reference.is_in(values)
                } else {
                    reference.is_not_in(values)
                }
            }
            "lt" | "lt-eq" | "gt" | "gt-eq" | "eq" | "not-eq" | "starts-with"
            | "not-starts-with" => self.comparison(kind, expr)?,
            other => {
                return Err(bad(format!(
                    "filter expression type '{other}' is not supported"
                )));
            }
        })
    }

    /// `{"term": ref, "value": lit}` (older clients) or `{"left": ..., "right": ...}` with a
    /// reference on one side and a literal on the other.
    fn comparison(&self, kind: &str, expr: &Value) -> CatalogResult<Predicate> {
        let (term, literal, flipped) = match (expr.get("term"), expr.get("value")) {
            (Some(term), Some(value)) => (term, value, false),
            _ => {
                let left = expr
                    .get("left")
                    .ok_or_else(|| bad(format!("'{kind}' needs 'left': {expr}")))?;
                let right = expr
                    .get("right")
                    .ok_or_else(|| bad(format!("'{kind}' needs 'right': {expr}")))?;
                if is_reference(left) {
                    (left, right, false)
                } else {
                    (right, left, true)
                }
            }
        };
        let (reference, ty) = self.reference(Some(term), expr)?;
        let datum = self.literal(literal, &ty)?;
        let kind = if flipped {
            match kind {
                "lt" => "gt",
                "lt-eq" => "gt-eq",
                "gt" => "lt",
                "gt-eq" => "lt-eq",
                "eq" | "not-eq" => kind,
                other => {
                    return Err(bad(format!(
                        "'{other}' needs the field on its left: {expr}"
                    )));
                }
            }
        } else {
            kind
        };
        Ok(match kind {
            "lt" => reference.less_than(datum),
            "lt-eq" => reference.less_than_or_equal_to(datum),
            "gt" => reference.greater_than(datum),
            "gt-eq" => reference.greater_than_or_equal_to(datum),
            "eq" => reference.equal_to(datum),
            "not-eq" => reference.not_equal_to(datum),
            "starts-with" => reference.starts_with(datum),
            _ => reference.not_starts_with(datum),
        })
    }

    /// A field reference: a name, `{"type": "reference", "term": name}`, or `{"type":
    /// "reference", "name": ...}`; returns it with the field's type.
    fn reference(
        &self,
        term: Option<&Value>,
        expr: &Value,
    ) -> CatalogResult<(Reference, PrimitiveType)> {
        let term = term.ok_or_else(|| bad(format!("expression without a field: {expr}")))?;
        let name = match term {
            Value::String(name) => name.as_str(),
            Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("reference") => o
                .get("term")
                .or(o.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| bad(format!("reference without a name: {term}")))?,
            other => {
                return Err(bad(format!(
                    "only field references are supported as terms, not {other}"
                )));
            }
        };
        let field = if self.case_sensitive {
            self.schema.field_by_name(name)
        } else {
            self.schema.field_by_name_case_insensitive(name)
        }
        .ok_or_else(|| {
            bad(format!(
                "the filter names field '{name}', which the schema does not have"
            ))
        })?;
        match field.field_type.as_ref() {
            Type::Primitive(p) => Ok((Reference::new(name), p.clone())),
            _ => Err(bad(format!("field '{name}' is not of a primitive type"))),
        }
    }

    fn literals(&self, values: &Value, ty: &PrimitiveType) -> CatalogResult<Vec<Datum>> {
        let items = match values {
            Value::Array(items) => items,
            Value::Object(o) => o
                .get("values")
                .and_then(Value::as_array)
                .ok_or_else(|| bad(format!("'values' must be a list: {values}")))?,
            other => return Err(bad(format!("'values' must be a list, not {other}"))),
        };
        items.iter().map(|v| self.literal(v, ty)).collect()
    }

    /// A literal for a field of type `ty`: a bare value or `{"type": "literal", "value": ...}`.
    fn literal(&self, value: &Value, ty: &PrimitiveType) -> CatalogResult<Datum> {
        let value = match value {
            Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("literal") => o
                .get("value")
                .ok_or_else(|| bad(format!("literal without a value: {value}")))?,
            other => other,
        };
        datum(value, ty).map_err(|e| bad(format!("literal {value} does not fit type {ty}: {e}")))
    }
}

fn is_reference(term: &Value) -> bool {
    matches!(term, Value::String(_))
        || term.get("type").and_then(Value::as_str) == Some("reference")
}

/// The spec's single-value JSON for a primitive type.
fn datum(value: &Value, ty: &PrimitiveType) -> Result<Datum, String> {
    let err = |e: iceberg::Error| e.to_string();
    let int = || {
        value
            .as_i64()
            .ok_or_else(|| "expected a whole number".to_owned())
    };
    let float = || value.as_f64().ok_or_else(|| "expected a number".to_owned());
    let text = || value.as_str().ok_or_else(|| "expected a string".to_owned());
    Ok(match ty {
        PrimitiveType::Boolean => Datum::bool(value.as_bool().ok_or("expected true or false")?),
        PrimitiveType::Int => Datum::int(i32::try_from(int()?).map_err(|e| e.to_string())?),
        PrimitiveType::Long => Datum::long(int()?),
        PrimitiveType::Float => Datum::float(float()? as f32),
        PrimitiveType::Double => Datum::double(float()?),
        PrimitiveType::Date => match value {
            Value::String(s) => Datum::date_from_str(s).map_err(err)?,
            _ => Datum::date(i32::try_from(int()?).map_err(|e| e.to_string())?),
        },
        PrimitiveType::Time => match value {
            Value::String(s) => Datum::time_from_str(s).map_err(err)?,
            _ => Datum::time_micros(int()?).map_err(err)?,
        },
        PrimitiveType::Timestamp => match value {
            Value::String(s) => Datum::timestamp_from_str(s).map_err(err)?,
            _ => Datum::timestamp_micros(int()?),
        },
        PrimitiveType::Timestamptz => match value {
            Value::String(s) => Datum::timestamptz_from_str(s).map_err(err)?,
            _ => Datum::timestamptz_micros(int()?),
        },
        PrimitiveType::TimestampNs => Datum::timestamp_nanos(int()?),
        PrimitiveType::TimestamptzNs => Datum::timestamptz_nanos(int()?),
        PrimitiveType::String => Datum::string(text()?),
        PrimitiveType::Uuid => Datum::uuid_from_str(text()?).map_err(err)?,
        PrimitiveType::Decimal { .. } => match value {
            Value::String(s) => Datum::decimal_from_str(s).map_err(err)?,
            Value::Number(n) => Datum::decimal_from_str(n.to_string()).map_err(err)?,
            _ => return Err("expected a decimal string".into()),
        },
        PrimitiveType::Fixed(_) | PrimitiveType::Binary => {
            let hex = text()?;
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| {
                    hex.get(i..i + 2)
                        .and_then(|b| u8::from_str_radix(b, 16).ok())
                })
                .collect::<Option<Vec<u8>>>()
                .ok_or("expected hexadecimal bytes")?;
            if matches!(ty, PrimitiveType::Binary) {
                Datum::binary(bytes)
            } else {
                Datum::fixed(bytes)
            }
        }
    })
}

// --- content files -----------------------------------------------------------------------------

/// Partition values as the spec's list of single values, in the spec's field order.
fn partition_json(metadata: &TableMetadata, spec_id: i32, partition: &Struct) -> Value {
    let schema = metadata.current_schema();
    let types = metadata
        .partition_spec_by_id(spec_id)
        .and_then(|spec| spec.partition_type(schema).ok());
    let values = partition
        .iter()
        .enumerate()
        .map(|(i, literal)| {
            let field_type = types
                .as_ref()
                .and_then(|t| t.fields().get(i))
                .map(|f| f.field_type.clone());
            match (literal, field_type) {
                (Some(literal), Some(ty)) => {
                    literal.clone().try_into_json(&ty).unwrap_or(Value::Null)
                }
                _ => Value::Null,
            }
        })
        .collect();
    Value::Array(values)
}

/// The reserved field id of a position delete file's `file_path` column.
const POSITION_DELETE_FILE_PATH: i32 =
    iceberg::metadata_columns::RESERVED_FIELD_ID_DELETE_FILE_PATH;

/// A delete file as the spec describes it, and the one data file it is scoped to, if any.
struct DeleteFileDetails {
    json: Value,
    only_for: Option<String>,
}

/// The data file a position delete file applies to alone: named by `referenced_data_file`,
/// or by equal lower and upper bounds of its `file_path` column.
fn scoped_data_file(file: &iceberg::spec::DataFile) -> Option<String> {
    if let Some(referenced) = file.referenced_data_file() {
        return Some(referenced);
    }
    let lower = file.lower_bounds().get(&POSITION_DELETE_FILE_PATH)?;
    let upper = file.upper_bounds().get(&POSITION_DELETE_FILE_PATH)?;
    match (lower.literal(), upper.literal()) {
        (PrimitiveLiteral::String(l), PrimitiveLiteral::String(u)) if l == u => Some(l.clone()),
        _ => None,
    }
}

/// What the scan tasks do not carry about delete files (record count, partition, format,
/// scope), read from the snapshot's delete manifests.
async fn delete_file_details(
    table: &Table,
    snapshot_id: Option<i64>,
) -> CatalogResult<HashMap<String, DeleteFileDetails>> {
    let metadata = table.metadata();
    let snapshot = match snapshot_id {
        Some(id) => metadata.snapshot_by_id(id).cloned(),
        None => metadata.current_snapshot().cloned(),
    };
    let Some(snapshot) = snapshot else {
        return Ok(HashMap::new());
    };
    let io = table.file_io();
    let list = table
        .manifest_list_reader(&snapshot)
        .load()
        .await
        .map_err(storage_err)?;
    let mut details = HashMap::new();
    for manifest in list.entries() {
        if manifest.content != ManifestContentType::Deletes {
            continue;
        }
        let loaded = manifest.load_manifest(io).await.map_err(storage_err)?;
        for entry in loaded.entries().iter().filter(|e| e.is_alive()) {
            let file = entry.data_file();
            let content = match file.content_type() {
                DataContentType::PositionDeletes => "position-deletes",
                DataContentType::EqualityDeletes => "equality-deletes",
                DataContentType::Data => continue,
            };
            let mut value = json!({
                "content": content,
                "file-path": file.file_path(),
                "file-format": file.file_format().to_string(),
                "spec-id": manifest.partition_spec_id,
                "partition": partition_json(metadata, manifest.partition_spec_id, file.partition()),
                "file-size-in-bytes": file.file_size_in_bytes(),
                "record-count": file.record_count(),
            });
            if let Some(ids) = file.equality_ids() {
                value["equality-ids"] = json!(ids);
            }
            if let Some(referenced) = file.referenced_data_file() {
                value["referenced-data-file"] = json!(referenced);
            }
            let only_for = if file.content_type() == DataContentType::PositionDeletes {
                scoped_data_file(file)
            } else {
                None
            };
            details.insert(
                file.file_path().to_owned(),
                DeleteFileDetails {
                    json: value,
                    only_for,
                },
            );
        }
    }
    Ok(details)
}

fn storage_err(e: iceberg::Error) -> CatalogError {
    CatalogError::Internal(format!("reading the table's manifests failed: {e}"))
}

// --- planning ----------------------------------------------------------------------------------

impl Catalog {
    /// Plans a scan of a table's current (or given) snapshot.
    pub async fn plan_table_scan(
        &self,
        caller: &Caller,
        warehouse: &Warehouse,
        ident: &TableIdent,
        request: PlanTableScanRequest,
    ) -> CatalogResult<(String, PlanResult)> {
        self.authorize(caller, Privilege::Read, Target::Table(warehouse, ident))
            .await?;
        validate_table_ident(ident)?;
        if request.start_snapshot_id.is_some() || request.end_snapshot_id.is_some() {
            return Err(bad(
                "incremental scan planning (start-snapshot-id, end-snapshot-id) is not supported yet; plan a snapshot instead",
            ));
        }
        let head = self.lookup_head(warehouse, ident).await?;
        let version = self.table_version(&head).await?;
        let metadata = version.metadata()?;
        if let Some(id) = request.snapshot_id
            && metadata.snapshot_by_id(id).is_none()
        {
            return Err(bad(format!(
                "table '{}' has no snapshot {id}",
                display_ident(ident)
            )));
        }
        let schema = match (request.use_snapshot_schema, request.snapshot_id) {
            (true, Some(id)) => metadata
                .snapshot_by_id(id)
                .and_then(|s| s.schema_id())
                .and_then(|sid| metadata.schema_by_id(sid))
                .cloned()
                .unwrap_or_else(|| metadata.current_schema().clone()),
            _ => metadata.current_schema().clone(),
        };
        let filter = request
            .filter
            .as_ref()
            .map(|f| parse_filter(f, &schema, request.case_sensitive))
            .transpose()?;

        // Manifests are read through the warehouse's confined file IO: a manifest list or
        // manifest named outside the warehouse is refused, not read.
        let io: FileIO = self.io(caller.arrived, warehouse).await?.file_io();
        let table = Table::builder()
            .metadata(metadata.clone())
            .metadata_location(version.metadata_location.clone())
            .identifier(ident.clone())
            .file_io(io)
            .runtime(iceberg::Runtime::try_current().map_err(storage_err)?)
            .readonly(true)
            .build()
            .map_err(storage_err)?;
        let mut builder = table.scan().with_case_sensitive(request.case_sensitive);
        builder = match &request.select {
            Some(columns) => builder.select(columns.clone()),
            None => builder.select_all(),
        };
        if let Some(filter) = filter {
            builder = builder.with_filter(filter);
        }
        if let Some(id) = request.snapshot_id {
            builder = builder.snapshot_id(id);
        }
        let scan = builder
            .build()
            .map_err(|e| bad(format!("cannot plan this scan: {e}")))?;
        let tasks: Vec<_> = scan
            .plan_files()
            .await
            .map_err(storage_err)?
            .try_collect()
            .await
            .map_err(storage_err)?;
        let needs_deletes = tasks.iter().any(|t| !t.deletes.is_empty());
        let details = if needs_deletes {
            delete_file_details(&table, request.snapshot_id).await?
        } else {
            HashMap::new()
        };

        if let Some(missing) = tasks
            .iter()
            .flat_map(|t| &t.deletes)
            .find(|d| !details.contains_key(&d.file_path))
        {
            return Err(CatalogError::Internal(format!(
                "delete file '{}' of the plan is not in the snapshot's delete manifests",
                missing.file_path
            )));
        }
        let parts: Vec<ScanTasks> = tasks
            .chunks(self.plans.files_per_task)
            .map(|chunk| {
                let mut part = ScanTasks::default();
                let mut delete_index: HashMap<String, usize> = HashMap::new();
                for task in chunk {
                    let mut references = Vec::new();
                    for delete in &task.deletes {
                        let known = details.get(&delete.file_path);
                        // A file-scoped position delete file applies to its own data file only.
                        if let Some(scope) = known.and_then(|d| d.only_for.as_deref())
                            && scope != task.data_file_path
                        {
                            continue;
                        }
                        let index =
                            *delete_index
                                .entry(delete.file_path.clone())
                                .or_insert_with(|| {
                                    part.delete_files
                                        .push(known.map_or(Value::Null, |d| d.json.clone()));
                                    part.delete_files.len() - 1
                                });
                        references.push(index);
                    }
                    let spec_id = task.partition_spec.as_ref().map_or(0, |s| s.spec_id());
                    let partition = task
                        .partition
                        .as_ref()
                        .map_or(Value::Array(Vec::new()), |p| {
                            partition_json(&metadata, spec_id, p)
                        });
                    let mut file_task = json!({
                        "data-file": {
                            "content": "data",
                            "file-path": task.data_file_path,
                            "file-format": task.data_file_format.to_string(),
                            "spec-id": spec_id,
                            "partition": partition,
                            "file-size-in-bytes": task.file_size_in_bytes,
                            "record-count": task.record_count.unwrap_or(0),
                        }
                    });
                    if !references.is_empty() {
                        file_task["delete-file-references"] = json!(references);
                    }
                    // The whole filter is a correct residual: rows of this file must still
                    // satisfy it (the crate does not compute per-file residuals).
                    if let Some(filter) = &request.filter {
                        file_task["residual-filter"] = filter.clone();
                    }
                    part.file_scan_tasks.push(file_task);
                }
                part
            })
            .collect();

        let plan_id = uuid::Uuid::now_v7().to_string();
        if parts.len() <= 1 {
            return Ok((
                plan_id,
                PlanResult::Complete(parts.into_iter().next().unwrap_or_default()),
            ));
        }
        let tokens = (0..parts.len()).map(|i| format!("{plan_id}:{i}")).collect();
        self.plans.plans.insert(
            plan_id.clone(),
            Arc::new(StoredPlan {
                table: ident.clone(),
                parts,
            }),
        );
        Ok((plan_id, PlanResult::Split(tokens)))
    }

    /// The result of a plan that was split: its plan tasks.
    pub async fn fetch_planning_result(
        &self,
        caller: &Caller,
        warehouse: &Warehouse,
        ident: &TableIdent,
        plan_id: &str,
    ) -> CatalogResult<PlanResult> {
        self.authorize(caller, Privilege::Read, Target::Table(warehouse, ident))
            .await?;
        self.lookup_head(warehouse, ident).await?;
        let plan = self
            .plans
            .plans
            .get(plan_id)
            .filter(|p| &p.table == ident)
            .ok_or_else(|| no_such_plan(&format!("plan '{plan_id}'")))?;
        Ok(PlanResult::Split(
            (0..plan.parts.len())
                .map(|i| format!("{plan_id}:{i}"))
                .collect(),
        ))
    }

    /// Forgets a plan; later fetches of it answer 404.
    pub async fn cancel_planning(
        &self,
        caller: &Caller,
        warehouse: &Warehouse,
        ident: &TableIdent,
        plan_id: &str,
    ) -> CatalogResult<()> {
        self.authorize(caller, Privilege::Read, Target::Table(warehouse, ident))
            .await?;
        self.lookup_head(warehouse, ident).await?;
        self.plans.plans.invalidate(plan_id);
        Ok(())
    }

    /// The file scan tasks of one plan task.
    pub async fn fetch_scan_tasks(
        &self,
        caller: &Caller,
        warehouse: &Warehouse,
        ident: &TableIdent,
        plan_task: &str,
    ) -> CatalogResult<ScanTasks> {
        self.authorize(caller, Privilege::Read, Target::Table(warehouse, ident))
            .await?;
        self.lookup_head(warehouse, ident).await?;
        let missing = || no_such_plan(&format!("plan task '{plan_task}'"));
        let (plan_id, index) = plan_task.rsplit_once(':').ok_or_else(missing)?;
        let index: usize = index.parse().map_err(|_| missing())?;
        let plan = self
            .plans
            .plans
            .get(plan_id)
            .filter(|p| &p.table == ident)
            .ok_or_else(missing)?;
        plan.parts.get(index).cloned().ok_or_else(missing)
    }
}

#[cfg(test)]
mod tests {
    use iceberg::spec::{NestedField, PrimitiveType, Schema, Type};
    use serde_json::json;

    use super::parse_filter;

    fn schema() -> Schema {
        Schema::builder()
            .with_fields(vec![
                NestedField::required(1, "id", Type::Primitive(PrimitiveType::Long)).into(),
                NestedField::optional(2, "name", Type::Primitive(PrimitiveType::String)).into(),
                NestedField::optional(3, "day", Type::Primitive(PrimitiveType::Date)).into(),
            ])
            .build()
            .unwrap()
    }

    #[test]
    fn both_spellings_of_comparisons_parse() {
        let s = schema();
        let old = parse_filter(&json!({"type": "gt", "term": "id", "value": 5}), &s, true).unwrap();
        let new = parse_filter(&json!({"type": "gt", "left": "id", "right": 5}), &s, true).unwrap();
        let flipped =
            parse_filter(&json!({"type": "lt", "left": 5, "right": "id"}), &s, true).unwrap();
        assert_eq!(old.to_string(), new.to_string());
        assert_eq!(old.to_string(), flipped.to_string());
        let p = parse_filter(
            &json!({"type": "and",
                    "left": {"type": "in", "term": "name", "values": ["a", "b"]},
                    "right": {"type": "not", "child": {"type": "eq", "term": "day", "value": "2024-03-01"}}}),
            &s,
            true,
        )
        .unwrap();
        assert!(p.to_string().contains("name"), "{p}");
        assert_eq!(
            parse_filter(&json!(true), &s, true).unwrap().to_string(),
            "TRUE"
        );
        assert!(parse_filter(&json!({"type": "is-null", "term": "name"}), &s, true).is_ok());
        assert!(parse_filter(&json!({"type": "eq", "term": "ID", "value": 1}), &s, false).is_ok());
    }

    #[test]
    fn split_plans_expire() {
        use std::sync::Arc;
        use std::time::Duration;

        let plans = super::Plans::new(10, Duration::from_millis(50));
        let table = iceberg::TableIdent::new(iceberg::NamespaceIdent::new("n".into()), "t".into());
        plans.plans.insert(
            "p".into(),
            Arc::new(super::StoredPlan {
                table,
                parts: vec![super::ScanTasks::default(), super::ScanTasks::default()],
            }),
        );
        assert!(plans.plans.get("p").is_some());
        std::thread::sleep(Duration::from_millis(120));
        assert!(plans.plans.get("p").is_none(), "an expired plan is gone");
    }

    #[test]
    fn bad_filters_are_explained() {
        let s = schema();
        let err = |e: serde_json::Value| parse_filter(&e, &s, true).unwrap_err().to_string();
        assert!(err(json!({"type": "eq", "term": "nope", "value": 1})).contains("nope"));
        assert!(err(json!({"type": "eq", "term": "ID", "value": 1})).contains("ID"));
        assert!(err(json!({"type": "eq", "term": "id", "value": "x"})).contains("does not fit"));
        assert!(err(json!({"type": "frobnicate"})).contains("frobnicate"));
        assert!(err(json!({"type": "and", "left": true})).contains("right"));
        assert!(err(json!(5)).contains("boolean or an object"));
    }
}
