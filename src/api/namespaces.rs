//! Namespace endpoints.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use iceberg_catalog_rest::{
    CreateNamespaceRequest, ListNamespaceResponse, NamespaceResponse,
    UpdateNamespacePropertiesRequest, UpdateNamespacePropertiesResponse,
};
use serde::Deserialize;

use super::AppState;
use super::error::{ApiResult, json};
use super::extract::{ApiJson, ApiPath, ApiQuery, parse_namespace};
use super::idempotency::Mutation;
use super::tables::{NamespacePath, PrefixPath};
use crate::catalog::Caller;

#[derive(Deserialize)]
pub struct ListQuery {
    parent: Option<String>,
    #[serde(rename = "pageToken")]
    page_token: Option<String>,
    #[serde(rename = "pageSize")]
    page_size: Option<usize>,
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<PrefixPath>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Response> {
    let warehouse = state.catalog.warehouse(path.prefix.as_deref()).await?;
    let parent = query
        .parent
        .as_deref()
        .filter(|p| !p.is_empty())
        .map(parse_namespace)
        .transpose()?;
    let page = crate::catalog::PageRequest {
        token: query.page_token,
        size: query.page_size,
    };
    let paged = state
        .catalog
        .list_namespaces(&caller, &warehouse, parent.as_ref(), &page)
        .await?;
    Ok(json(
        StatusCode::OK,
        &ListNamespaceResponse {
            namespaces: paged.items,
            next_page_token: paged.next_page_token,
        },
    ))
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<PrefixPath>,
    mutation: Mutation,
    ApiJson(request): ApiJson<CreateNamespaceRequest>,
) -> ApiResult<Response> {
    let warehouse = state.catalog.warehouse(path.prefix.as_deref()).await?;
    let catalog = &state.catalog;
    let caller = &caller;
    let CreateNamespaceRequest {
        namespace,
        properties,
    } = request;
    let namespace = &namespace;
    let warehouse = &warehouse;
    mutation
        .run(
            StatusCode::OK,
            |record| async move {
                let ns = catalog
                    .create_namespace(
                        &caller.with_idempotency(record),
                        warehouse,
                        namespace,
                        properties,
                    )
                    .await?;
                Ok(json(StatusCode::OK, &NamespaceResponse::from(&ns)))
            },
            || async {
                let ns = catalog.load_namespace(caller, warehouse, namespace).await?;
                Ok(json(StatusCode::OK, &NamespaceResponse::from(&ns)))
            },
        )
        .await
}

pub async fn load(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<NamespacePath>,
) -> ApiResult<Response> {
    let warehouse = state.catalog.warehouse(path.prefix.as_deref()).await?;
    let namespace = parse_namespace(&path.namespace)?;
    let ns = state
        .catalog
        .load_namespace(&caller, &warehouse, &namespace)
        .await?;
    Ok(json(StatusCode::OK, &NamespaceResponse::from(&ns)))
}

pub async fn exists(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<NamespacePath>,
) -> ApiResult<Response> {
    let warehouse = state.catalog.warehouse(path.prefix.as_deref()).await?;
    let namespace = parse_namespace(&path.namespace)?;
    state
        .catalog
        .load_namespace(&caller, &warehouse, &namespace)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn drop(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<NamespacePath>,
    mutation: Mutation,
) -> ApiResult<Response> {
    let warehouse = state.catalog.warehouse(path.prefix.as_deref()).await?;
    let namespace = parse_namespace(&path.namespace)?;
    let catalog = &state.catalog;
    let caller = &caller;
    let warehouse = &warehouse;
    mutation
        .run_no_content(|record| async move {
            catalog
                .drop_namespace(&caller.with_idempotency(record), warehouse, &namespace)
                .await
        })
        .await
}

pub async fn update_properties(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<NamespacePath>,
    mutation: Mutation,
    ApiJson(request): ApiJson<UpdateNamespacePropertiesRequest>,
) -> ApiResult<Response> {
    let warehouse = state.catalog.warehouse(path.prefix.as_deref()).await?;
    let namespace = parse_namespace(&path.namespace)?;
    let catalog = &state.catalog;
    let caller = &caller;
    let removals = request.removals.unwrap_or_default();
    let updates: HashMap<String, String> = request.updates;
    let replayed = UpdateNamespacePropertiesResponse {
        updated: updates.keys().cloned().collect(),
        removed: removals.clone(),
        missing: None,
    };
    let warehouse = &warehouse;
    mutation
        .run(
            StatusCode::OK,
            |record| async move {
                let change = catalog
                    .update_namespace_properties(
                        &caller.with_idempotency(record),
                        warehouse,
                        &namespace,
                        removals,
                        updates,
                    )
                    .await?;
                Ok(json(
                    StatusCode::OK,
                    &UpdateNamespacePropertiesResponse {
                        updated: change.updated,
                        removed: change.removed,
                        missing: Some(change.missing),
                    },
                ))
            },
            || async { Ok(json(StatusCode::OK, &replayed)) },
        )
        .await
}
