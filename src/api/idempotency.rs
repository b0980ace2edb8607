//! `Idempotency-Key` handling: a retried mutation returns the first outcome and applies
//! nothing twice. Successful changes record the key in the same database transaction as the
//! change (the store does that); final errors (4xx) are recorded on their own. A replayed
//! success is answered from the current state, which the spec allows.

use std::future::Future;
use std::sync::Arc;

use axum::extract::{FromRequestParts, OriginalUri};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::{ApiError, ApiResult, json_response};
use crate::catalog::{Catalog, IdempotencyRecord};

/// The error type the catalog's `IdempotencyKeyUsed` maps to.
const KEY_CONFLICT: &str = "IdempotencyKeyConflictException";

/// A mutating request: its `Idempotency-Key` (a UUID in its 36-character form), if sent, and
/// what it does (method and path), to refuse a key reused for another request.
pub struct Mutation {
    catalog: Arc<Catalog>,
    key: Option<String>,
    operation: String,
}

impl FromRequestParts<AppState> for Mutation {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let key = match parts.headers.get("idempotency-key") {
            None => None,
            Some(value) => Some(
                value
                    .to_str()
                    .ok()
                    .filter(|k| k.len() == 36 && uuid::Uuid::try_parse(k).is_ok())
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "Idempotency-Key must be a UUID in its 36-character form",
                        )
                    })?
                    .to_ascii_lowercase(),
            ),
        };
        let path = parts
            .extensions
            .get::<OriginalUri>()
            .map_or_else(|| parts.uri.path(), |u| u.0.path());
        Ok(Self {
            catalog: state.catalog.clone(),
            key,
            operation: format!("{} {path}", parts.method),
        })
    }
}

impl Mutation {
    /// The key, when the request carries one.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// Drops the key: for requests that change nothing (a staged create).
    pub fn without_key(self) -> Self {
        Self { key: None, ..self }
    }

    /// Runs a mutation answered by 204 No Content.
    pub async fn run_no_content<A, AF>(self, apply: A) -> ApiResult<Response>
    where
        A: FnOnce(Option<IdempotencyRecord>) -> AF,
        AF: Future<Output = Result<(), crate::catalog::CatalogError>>,
    {
        let no_content = || async { Ok(StatusCode::NO_CONTENT.into_response()) };
        let apply = |record| async move {
            apply(record).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        };
        self.run(StatusCode::NO_CONTENT, apply, no_content).await
    }

    /// Runs `apply` once for a key; `replay` answers a repeat of a success.
    pub async fn run<A, AF, R, RF>(
        self,
        success: StatusCode,
        apply: A,
        replay: R,
    ) -> ApiResult<Response>
    where
        A: FnOnce(Option<IdempotencyRecord>) -> AF,
        AF: Future<Output = ApiResult<Response>>,
        R: Fn() -> RF,
        RF: Future<Output = ApiResult<Response>>,
    {
        let Some(key) = self.key.clone() else {
            return apply(None).await;
        };
        let catalog = &self.catalog;
        if let Some(response) = self.replay_recorded(&key, &replay).await? {
            return Ok(response);
        }
        let record =
            catalog.idempotency_record(&key, self.operation.clone(), success.as_u16(), None);
        match apply(Some(record)).await {
            Ok(response) => Ok(response),
            Err(err) if err.kind == KEY_CONFLICT => {
                // A concurrent request with the same key finished first: its outcome stands.
                self.replay_recorded(&key, &replay).await?.ok_or(err)
            }
            Err(err) if err.is_final() => {
                let record = catalog.idempotency_record(
                    &key,
                    self.operation.clone(),
                    err.status.as_u16(),
                    Some(err.body()),
                );
                if !catalog.record_outcome(&record).await?
                    && let Some(response) = self.replay_recorded(&key, &replay).await?
                {
                    // Someone recorded the key meanwhile; theirs is the outcome.
                    return Ok(response);
                }
                Err(err)
            }
            Err(err) => Err(err),
        }
    }

    async fn replay_recorded<R, RF>(&self, key: &str, replay: &R) -> ApiResult<Option<Response>>
    where
        R: Fn() -> RF,
        RF: Future<Output = ApiResult<Response>>,
    {
        let Some(entry) = self.catalog.idempotency_entry(key).await? else {
            return Ok(None);
        };
        if entry.operation != self.operation {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "UnprocessableEntityException",
                format!(
                    "Idempotency-Key {key} was used for another request ({}); use a new key for a new operation",
                    entry.operation
                ),
            ));
        }
        if let Some(body) = entry.body {
            return Ok(Some(stored_response(entry.status, body)));
        }
        let mut response = replay().await?;
        if let Ok(status) = StatusCode::from_u16(entry.status) {
            *response.status_mut() = status;
        }
        Ok(Some(response))
    }
}

fn stored_response(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(status, body)
}
