//! The management API: warehouses (create, list, a new storage profile, delete), functions
//! and the audit log; admins only (see `catalog/authz.rs`).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::{ApiError, ApiResult, json};
use super::extract::{ApiJson, ApiPath, parse_namespace};
use crate::catalog::Caller;
use crate::catalog::{StorageProfile, Warehouse};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/warehouses", get(list).post(create))
        .route("/warehouses/{warehouse}", axum::routing::delete(delete))
        .route("/warehouses/{warehouse}/storage", put(update_storage))
        .route("/audit", get(audit))
        .route(
            "/warehouses/{warehouse}/namespaces/{namespace}/functions",
            axum::routing::post(create_function),
        )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    limit: Option<usize>,
}

#[derive(Serialize)]
struct AuditList {
    records: Vec<AuditEntry>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct AuditEntry {
    timestamp_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
    actor: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    client: Option<String>,
    operation: String,
    object: String,
    status: u16,
    outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    missing_privilege: Option<String>,
}

/// `GET /management/v1/audit?limit=N`: the newest audit records (default 100, at most
/// 1000), newest first, including every mutation this replica answered so far.
async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    super::extract::ApiQuery(query): super::extract::ApiQuery<AuditQuery>,
) -> ApiResult<Response> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(super::error::ApiError::bad_request(format!(
            "limit must be between 1 and 1000, not {limit}"
        )));
    }
    let records: Vec<AuditEntry> = state
        .catalog
        .audit_records(&caller, limit)
        .await?
        .into_iter()
        .map(|r| AuditEntry {
            timestamp_ms: r.at_ms,
            request_id: r.request_id,
            actor: r.actor,
            client: r.client,
            operation: r.operation,
            object: r.object,
            status: r.status,
            outcome: r.outcome,
            missing_privilege: r.missing_privilege,
        })
        .collect();
    Ok(json(StatusCode::OK, &AuditList { records }))
}

#[derive(Deserialize)]
struct FunctionsPath {
    warehouse: String,
    namespace: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateFunction {
    name: String,
    /// A function metadata document as the Iceberg REST spec defines it.
    metadata: serde_json::Value,
}

/// Adds a function after validating its metadata (the REST spec has no create operation).
async fn create_function(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<FunctionsPath>,
    ApiJson(request): ApiJson<CreateFunction>,
) -> ApiResult<Response> {
    let warehouse = state.catalog.warehouse(Some(&path.warehouse)).await?;
    let ident = iceberg::TableIdent::new(parse_namespace(&path.namespace)?, request.name);
    let function = state
        .catalog
        .create_function(&caller, &warehouse, &ident, request.metadata)
        .await?;
    let mut response = super::functions::function_result(&function);
    *response.status_mut() = StatusCode::CREATED;
    Ok(response)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateWarehouse {
    name: String,
    location: String,
    /// The storage profile (an `s3` location needs one); parsed by the storage layer so
    /// that its messages name the profile's fields.
    #[serde(default)]
    storage: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct WarehouseBody<'a> {
    id: &'a str,
    name: &'a str,
    location: &'a str,
    /// The profile without its keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    storage: Option<serde_json::Value>,
}

impl<'a> From<&'a Warehouse> for WarehouseBody<'a> {
    fn from(w: &'a Warehouse) -> Self {
        Self {
            id: &w.id,
            name: &w.name,
            location: &w.location,
            storage: w.storage.as_ref().map(StorageProfile::redacted),
        }
    }
}

#[derive(Serialize)]
struct WarehouseList<'a> {
    warehouses: Vec<WarehouseBody<'a>>,
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<CreateWarehouse>,
) -> ApiResult<Response> {
    let storage = match request.storage {
        Some(serde_json::Value::Null) | None => None,
        Some(value) => Some(StorageProfile::parse(value).map_err(ApiError::bad_request)?),
    };
    let warehouse = state
        .catalog
        .create_warehouse(&caller, &request.name, &request.location, storage)
        .await?;
    Ok(json(
        StatusCode::CREATED,
        &WarehouseBody::from(warehouse.as_ref()),
    ))
}

async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    let warehouses = state.catalog.list_warehouses(&caller).await?;
    let body = WarehouseList {
        warehouses: warehouses.iter().map(WarehouseBody::from).collect(),
    };
    Ok(json(StatusCode::OK, &body))
}

#[derive(Deserialize)]
struct WarehousePath {
    warehouse: String,
}

/// `PUT /management/v1/warehouses/{warehouse}/storage`: a new storage profile (the body, as
/// `storage` on create), checked against the store before it replaces the old one.
async fn update_storage(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<WarehousePath>,
    ApiJson(profile): ApiJson<serde_json::Value>,
) -> ApiResult<Response> {
    let warehouse = state
        .catalog
        .update_warehouse_storage(&caller, &path.warehouse, profile)
        .await?;
    Ok(json(
        StatusCode::OK,
        &WarehouseBody::from(warehouse.as_ref()),
    ))
}

/// `DELETE /management/v1/warehouses/{warehouse}`: only an empty warehouse (409 otherwise).
async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<WarehousePath>,
) -> ApiResult<Response> {
    state
        .catalog
        .delete_warehouse(&caller, &path.warehouse)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
