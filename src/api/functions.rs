//! Function endpoints: list and load (the REST API has no create; see the management API).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use super::AppState;
use super::error::{ApiResult, json, json_response};
use super::extract::{ApiPath, ApiQuery, parse_namespace};
use super::tables::{ListQuery, NamespacePath, table_result_body};
use crate::catalog::Caller;
use crate::catalog::LoadedFunction;

#[derive(serde::Deserialize)]
pub(super) struct FunctionPath {
    prefix: Option<String>,
    namespace: String,
    function: String,
}

#[derive(Serialize)]
struct ListFunctionsResponse {
    /// Each function as its namespace levels followed by its name.
    identifiers: Vec<Vec<String>>,
    #[serde(rename = "next-page-token")]
    next_page_token: Option<String>,
}

pub(super) fn function_result(function: &LoadedFunction) -> Response {
    json_response(
        StatusCode::OK,
        table_result_body(
            Some(&function.metadata_location),
            &function.metadata_json,
            None,
        ),
    )
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<NamespacePath>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Response> {
    let warehouse = state.catalog.warehouse(path.prefix.as_deref()).await?;
    let namespace = parse_namespace(&path.namespace)?;
    let paged = state
        .catalog
        .list_functions(&caller, &warehouse, &namespace, &query.page())
        .await?;
    let body = ListFunctionsResponse {
        identifiers: paged
            .items
            .into_iter()
            .map(|ident| {
                let mut levels = ident.namespace().clone().inner();
                levels.push(ident.name().to_owned());
                levels
            })
            .collect(),
        next_page_token: paged.next_page_token,
    };
    Ok(json(StatusCode::OK, &body))
}

pub async fn load(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<FunctionPath>,
) -> ApiResult<Response> {
    let warehouse = state.catalog.warehouse(path.prefix.as_deref()).await?;
    let ident = iceberg::TableIdent::new(parse_namespace(&path.namespace)?, path.function);
    let function = state
        .catalog
        .load_function(&caller, &warehouse, &ident)
        .await?;
    Ok(function_result(&function))
}
