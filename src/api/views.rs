//! View endpoints.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use iceberg::TableIdent;
use iceberg_catalog_rest::RenameTableRequest;

use super::AppState;
use super::error::{ApiResult, json_response};
use super::extract::{ApiJson, ApiPath, ApiQuery, parse_namespace};
use super::idempotency::Mutation;
use super::tables::{
    ListQuery, NamespacePath, PrefixPath, TablePath, identifiers_page, table_result_body,
};
use crate::catalog::Caller;
use crate::catalog::{CommitViewRequest, CreateViewRequest, LoadedView, RegisterViewRequest};

/// The path's `table` segment is the view's name.
type ViewPath = TablePath;

fn view_result(view: &LoadedView) -> Response {
    json_response(
        StatusCode::OK,
        table_result_body(
            Some(&view.metadata_location),
            &view.metadata_json,
            Some(&crate::catalog::TableAccess::default()),
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
        .list_views(&caller, &warehouse, &namespace, &query.page())
        .await?;
    Ok(identifiers_page(paged))
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<NamespacePath>,
    mutation: Mutation,
    ApiJson(request): ApiJson<CreateViewRequest>,
) -> ApiResult<Response> {
    let warehouse = state.catalog.warehouse(path.prefix.as_deref()).await?;
    let namespace = parse_namespace(&path.namespace)?;
    let ident = TableIdent::new(namespace.clone(), request.name.clone());
    let catalog = &state.catalog;
    let caller = &caller;
    let (warehouse, ident) = (&warehouse, &ident);
    mutation
        .run(
            StatusCode::OK,
            |record| async move {
                let view = catalog
                    .create_view(
                        &caller.with_idempotency(record),
                        warehouse,
                        &namespace,
                        request,
                    )
                    .await?;
                Ok(view_result(&view))
            },
            || async {
                Ok(view_result(
                    &catalog.load_view(caller, warehouse, ident).await?,
                ))
            },
        )
        .await
}

pub async fn load(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<ViewPath>,
) -> ApiResult<Response> {
    let warehouse = state.catalog.warehouse(path.prefix.as_deref()).await?;
    let view = state
        .catalog
        .load_view(&caller, &warehouse, &path.view_ident()?)
        .await?;
    Ok(view_result(&view))
}

pub async fn exists(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<ViewPath>,
) -> ApiResult<Response> {
    let warehouse = state.catalog.warehouse(path.prefix.as_deref()).await?;
    state
        .catalog
        .view_exists(&caller, &warehouse, &path.view_ident()?)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn replace(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<ViewPath>,
    mutation: Mutation,
    ApiJson(request): ApiJson<CommitViewRequest>,
) -> ApiResult<Response> {
    let warehouse = state.catalog.warehouse(path.prefix.as_deref()).await?;
    let ident = path.view_ident()?;
    let catalog = &state.catalog;
    let caller = &caller;
    let (warehouse, ident) = (&warehouse, &ident);
    mutation
        .run(
            StatusCode::OK,
            |record| async move {
                let view = catalog
                    .replace_view(&caller.with_idempotency(record), warehouse, ident, request)
                    .await?;
                Ok(view_result(&view))
            },
            || async {
                Ok(view_result(
                    &catalog.load_view(caller, warehouse, ident).await?,
                ))
            },
        )
        .await
}

pub async fn drop(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<ViewPath>,
    mutation: Mutation,
) -> ApiResult<Response> {
    let warehouse = state.catalog.warehouse(path.prefix.as_deref()).await?;
    let ident = path.view_ident()?;
    let catalog = &state.catalog;
    let caller = &caller;
    let warehouse = &warehouse;
    mutation
        .run_no_content(|record| async move {
            catalog
                .drop_view(&caller.with_idempotency(record), warehouse, &ident)
                .await
        })
        .await
}

pub async fn rename(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<PrefixPath>,
    mutation: Mutation,
    ApiJson(request): ApiJson<RenameTableRequest>,
) -> ApiResult<Response> {
    let warehouse = state.catalog.warehouse(path.prefix.as_deref()).await?;
    let catalog = &state.catalog;
    let caller = &caller;
    let warehouse = &warehouse;
    mutation
        .run_no_content(|record| async move {
            catalog
                .rename_view(
                    &caller.with_idempotency(record),
                    warehouse,
                    &request.source,
                    &request.destination,
                )
                .await
        })
        .await
}

pub async fn register(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<NamespacePath>,
    mutation: Mutation,
    ApiJson(request): ApiJson<RegisterViewRequest>,
) -> ApiResult<Response> {
    let warehouse = state.catalog.warehouse(path.prefix.as_deref()).await?;
    let namespace = parse_namespace(&path.namespace)?;
    let ident = TableIdent::new(namespace.clone(), request.name.clone());
    let catalog = &state.catalog;
    let caller = &caller;
    let (warehouse, ident) = (&warehouse, &ident);
    mutation
        .run(
            StatusCode::OK,
            |record| async move {
                let view = catalog
                    .register_view(
                        &caller.with_idempotency(record),
                        warehouse,
                        &namespace,
                        request,
                    )
                    .await?;
                Ok(view_result(&view))
            },
            || async {
                Ok(view_result(
                    &catalog.load_view(caller, warehouse, ident).await?,
                ))
            },
        )
        .await
}
