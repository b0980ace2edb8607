//! The one place where errors become HTTP: the spec's `{"error": {message, type, code}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::catalog::CatalogError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
    /// For a refusal: the privilege that was missing (recorded in the audit log).
    pub denied: Option<&'static str>,
}

/// A response extension: the privilege whose lack refused the request.
#[derive(Debug, Clone, Copy)]
pub struct MissingPrivilege(pub &'static str);

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorModel<'a>,
}

#[derive(Serialize)]
struct ErrorModel<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    code: u16,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            denied: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequestException", message)
    }

    pub fn not_found(kind: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, kind, message)
    }

    /// The JSON body of this error.
    pub fn body(&self) -> String {
        serde_json::to_string(&ErrorBody {
            error: ErrorModel {
                message: &self.message,
                kind: self.kind,
                code: self.status.as_u16(),
            },
        })
        .expect("error bodies always serialize")
    }

    /// Whether the outcome is final (replayed for the same idempotency key): every 4xx.
    pub fn is_final(&self) -> bool {
        self.status.is_client_error()
    }
}

impl From<CatalogError> for ApiError {
    fn from(err: CatalogError) -> Self {
        use CatalogError as E;
        let (status, kind) = match &err {
            E::BadRequest(_) => (StatusCode::BAD_REQUEST, "BadRequestException"),
            E::Unprocessable(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "UnprocessableEntityException",
            ),
            E::NoSuchWarehouse(_) => (StatusCode::NOT_FOUND, "NoSuchWarehouseException"),
            E::NotFound(_) => (StatusCode::NOT_FOUND, "NotFoundException"),
            E::Forbidden { .. } => (StatusCode::FORBIDDEN, "ForbiddenException"),
            E::NoSuchNamespace(_) => (StatusCode::NOT_FOUND, "NoSuchNamespaceException"),
            E::NoSuchTable(_) => (StatusCode::NOT_FOUND, "NoSuchTableException"),
            E::NoSuchView(_) => (StatusCode::NOT_FOUND, "NoSuchViewException"),
            E::NoSuchFunction(_) => (StatusCode::NOT_FOUND, "NoSuchFunctionException"),
            E::NoSuchPlan(_) => (StatusCode::NOT_FOUND, "NoSuchPlanIdException"),
            E::CursorExpired(_) => (StatusCode::GONE, "CursorExpiredException"),
            E::CommitStateUnknown(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "CommitStateUnknownException",
            ),
            E::AlreadyExists(_) => (StatusCode::CONFLICT, "AlreadyExistsException"),
            E::NamespaceNotEmpty(_) => (StatusCode::CONFLICT, "NamespaceNotEmptyException"),
            E::Conflict(_) => (StatusCode::CONFLICT, "ConflictException"),
            E::CommitFailed(_) => (StatusCode::CONFLICT, "CommitFailedException"),
            E::IdempotencyKeyUsed => (StatusCode::CONFLICT, "IdempotencyKeyConflictException"),
            E::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailableException",
            ),
            E::Internal(_) | E::PurgeIncomplete(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "ServiceFailureException")
            }
        };
        let denied = match &err {
            E::Forbidden { privilege, .. } => Some(*privilege),
            _ => None,
        };
        Self {
            denied,
            ..Self::new(status, kind, err.to_string())
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = self.status.as_u16(), kind = self.kind, message = %self.message, "request failed");
        }
        let mut response = json_response(self.status, self.body());
        if let Some(privilege) = self.denied {
            response
                .extensions_mut()
                .insert(MissingPrivilege(privilege));
        }
        response
    }
}

/// A response with a JSON body that is already serialized.
/// A value as a JSON response.
pub fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    json_response(
        status,
        serde_json::to_vec(value).expect("responses always serialize"),
    )
}

pub fn json_response(status: StatusCode, body: impl Into<axum::body::Body>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    response
}

pub type ApiResult<T> = Result<T, ApiError>;
