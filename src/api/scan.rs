//! Server-side scan planning endpoints.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiResult, json};
use super::extract::{ApiJson, ApiPath};
use super::tables::TablePath;
use crate::catalog::Caller;
use crate::catalog::{PlanResult, PlanTableScanRequest, ScanTasks};

#[derive(Deserialize)]
pub(super) struct PlanPath {
    #[serde(flatten)]
    table: TablePath,
    #[serde(rename = "plan-id")]
    plan_id: String,
}

#[derive(Deserialize)]
pub(super) struct FetchScanTasksRequest {
    #[serde(rename = "plan-task")]
    plan_task: String,
}

fn tasks_json(tasks: ScanTasks, mut into: Value) -> Value {
    into["file-scan-tasks"] = Value::Array(tasks.file_scan_tasks);
    into["delete-files"] = Value::Array(tasks.delete_files);
    into
}

fn result_json(result: PlanResult, mut body: Value) -> Value {
    match result {
        PlanResult::Complete(tasks) => tasks_json(tasks, body),
        PlanResult::Split(plan_tasks) => {
            body["plan-tasks"] = json!(plan_tasks);
            body
        }
    }
}

fn respond(body: Value) -> Response {
    json(StatusCode::OK, &body)
}

pub async fn plan(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<TablePath>,
    ApiJson(request): ApiJson<PlanTableScanRequest>,
) -> ApiResult<Response> {
    let warehouse = state.catalog.warehouse(path.prefix.as_deref()).await?;
    let ident = path.ident()?;
    let (plan_id, result) = state
        .catalog
        .plan_table_scan(&caller, &warehouse, &ident, request)
        .await?;
    Ok(respond(result_json(
        result,
        json!({"status": "completed", "plan-id": plan_id}),
    )))
}

pub async fn fetch_result(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<PlanPath>,
) -> ApiResult<Response> {
    let warehouse = state
        .catalog
        .warehouse(path.table.prefix.as_deref())
        .await?;
    let ident = path.table.ident()?;
    let result = state
        .catalog
        .fetch_planning_result(&caller, &warehouse, &ident, &path.plan_id)
        .await?;
    Ok(respond(result_json(result, json!({"status": "completed"}))))
}

pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<PlanPath>,
) -> ApiResult<Response> {
    let warehouse = state
        .catalog
        .warehouse(path.table.prefix.as_deref())
        .await?;
    let ident = path.table.ident()?;
    state
        .catalog
        .cancel_planning(&caller, &warehouse, &ident, &path.plan_id)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn fetch_tasks(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<TablePath>,
    ApiJson(request): ApiJson<FetchScanTasksRequest>,
) -> ApiResult<Response> {
    let warehouse = state.catalog.warehouse(path.prefix.as_deref()).await?;
    let ident = path.ident()?;
    let tasks = state
        .catalog
        .fetch_scan_tasks(&caller, &warehouse, &ident, &request.plan_task)
        .await?;
    Ok(respond(tasks_json(tasks, json!({}))))
}
