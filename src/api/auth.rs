//! Authentication at the HTTP edge: the layer that gives every request its [`Caller`], and the
//! OAuth2 token endpoint (`POST /v1/oauth/tokens`, client credentials).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Serialize;

use super::AppState;
use super::error::ApiError;
use crate::auth::{AuthError, AuthMode, TokenError};
use crate::catalog::{ANONYMOUS, Caller, Principal};

/// The path of the token endpoint.
pub const TOKEN_PATH: &str = "/v1/oauth/tokens";

/// Routes every client may reach without a token: health, readiness, the token endpoint,
/// and `/v1/config` without a warehouse (clients read it before they authenticate).
fn is_open(request: &Request, metrics_require_token: bool) -> bool {
    match request.uri().path() {
        "/health" | "/ready" | TOKEN_PATH => true,
        "/metrics" => !metrics_require_token,
        // Decoded as the handler decodes it (`%77arehouse=` is `warehouse=` too); a query
        // that does not decode is not open.
        "/v1/config" => request
            .uri()
            .query()
            .map_or(Ok(None), super::requested_warehouse)
            .is_ok_and(|warehouse| warehouse.is_none()),
        _ => false,
    }
}

/// Gives the request its [`Caller`]: anonymous when authentication is off, else the
/// principal of its bearer token. A request that needs a token and has no valid one is
/// answered 401 here. The principal also goes into the response's extensions, for the
/// access log and the audit log.
pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let arrived = std::time::Instant::now();
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let principal = match state.auth.mode() {
        AuthMode::None => Principal::anonymous(),
        // The token endpoint reads its own credentials (HTTP Basic among them).
        AuthMode::Oauth2 if request.uri().path() == TOKEN_PATH => unauthenticated(),
        AuthMode::Oauth2 => match bearer(request.headers()) {
            Ok(Some(token)) => match state.auth.verify(token, arrived).await {
                Ok(principal) => principal,
                Err(e) => return unauthorized(&e),
            },
            Ok(None) if is_open(&request, state.metrics_require_token) => unauthenticated(),
            Ok(None) => return unauthorized(&AuthError::Missing),
            Err(e) => return unauthorized(&e),
        },
    };
    request
        .extensions_mut()
        .insert(Caller::new(principal.clone(), request_id).arrived_at(arrived));
    let mut response = next.run(request).await;
    response.extensions_mut().insert(principal);
    response
}

/// The principal of a request that needs none: allowed nothing.
fn unauthenticated() -> Arc<Principal> {
    static NOBODY: std::sync::OnceLock<Arc<Principal>> = std::sync::OnceLock::new();
    NOBODY
        .get_or_init(|| {
            Arc::new(Principal {
                id: None,
                name: ANONYMOUS.to_owned(),
                unrestricted: false,
            })
        })
        .clone()
}

/// The name of the principal a response was made for (`anonymous` before authentication).
pub fn principal_name(response: &Response) -> &str {
    response
        .extensions()
        .get::<Arc<Principal>>()
        .map_or(ANONYMOUS, |p| p.name.as_str())
}

/// The bearer token of a request, if it sends one.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, AuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| AuthError::Invalid("the Authorization header is not ASCII".into()))?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Invalid(format!(
            "the Authorization scheme must be Bearer, not '{}'",
            scheme.chars().take(20).collect::<String>().escape_debug()
        )));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::Invalid("the bearer token is empty".into()));
    }
    Ok(Some(token))
}

fn unauthorized(err: &AuthError) -> Response {
    if let AuthError::Unavailable(msg) = err {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailableException",
            format!("tokens cannot be verified right now: {msg}"),
        )
        .into_response();
    }
    let challenge = match err {
        AuthError::Missing => r#"Bearer realm="serac""#.to_owned(),
        _ => format!(
            r#"Bearer realm="serac", error="invalid_token", error_description="{}""#,
            err.to_string().replace(['"', '\\'], "'")
        ),
    };
    let mut response = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "NotAuthorizedException",
        err.to_string(),
    )
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
    issued_token_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
}

#[derive(Serialize)]
struct OAuthError {
    error: &'static str,
    error_description: String,
}

/// `POST /v1/oauth/tokens`: the client credentials grant (RFC 6749, section 4.4), with the
/// client's id and secret in the form or in HTTP Basic authentication.
pub async fn issue_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Response {
    if state.auth.mode() == AuthMode::None {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "authentication is off on this server (--auth none): no token is needed".into(),
            false,
        );
    }
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form_type {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the token request must be sent as application/x-www-form-urlencoded".into(),
            false,
        );
    }
    let form: HashMap<String, String> = match serde_urlencoded::from_bytes(&body) {
        Ok(form) => form,
        Err(e) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("the token request is not a valid form: {e}"),
                false,
            );
        }
    };
    let basic = match basic_credentials(&headers) {
        Ok(basic) => basic,
        Err(msg) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", msg, false),
    };
    let grant = form.get("grant_type").map(String::as_str).unwrap_or("");
    if grant != "client_credentials" {
        let err = if grant.is_empty() {
            TokenError::InvalidRequest("grant_type is missing; use client_credentials".into())
        } else {
            TokenError::UnsupportedGrantType(grant.chars().take(64).collect())
        };
        return token_error(&err, basic.is_some());
    }
    let (client_id, secret) = match (&basic, form.get("client_id"), form.get("client_secret")) {
        (Some((id, secret)), _, _) => (id.as_str(), secret.as_str()),
        (None, Some(id), Some(secret)) => (id.as_str(), secret.as_str()),
        _ => {
            return token_error(
                &TokenError::InvalidRequest(
                    "client_id and client_secret are needed, in the form or as HTTP Basic".into(),
                ),
                false,
            );
        }
    };
    match state.auth.issue(client_id, secret).await {
        Ok(token) => {
            let body = TokenResponse {
                access_token: &token.access_token,
                token_type: "bearer",
                expires_in: token.expires_in,
                issued_token_type: "urn:ietf:params:oauth:token-type:access_token",
                scope: form.get("scope").map(String::as_str),
            };
            let mut response = super::error::json(StatusCode::OK, &body);
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(e) => token_error(&e, basic.is_some()),
    }
}

fn token_error(err: &TokenError, basic: bool) -> Response {
    let (status, code) = match err {
        TokenError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
        TokenError::InvalidClient => (StatusCode::UNAUTHORIZED, "invalid_client"),
        TokenError::UnsupportedGrantType(_) => (StatusCode::BAD_REQUEST, "unsupported_grant_type"),
        TokenError::Unavailable(_) => {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailableException",
                format!("tokens cannot be issued right now: {err}"),
            )
            .into_response();
        }
    };
    oauth_error(status, code, err.to_string(), basic)
}

fn oauth_error(
    status: StatusCode,
    error: &'static str,
    description: String,
    basic: bool,
) -> Response {
    let mut response = super::error::json(
        status,
        &OAuthError {
            error,
            error_description: description,
        },
    );
    if status == StatusCode::UNAUTHORIZED {
        let challenge = if basic {
            r#"Basic realm="serac""#
        } else {
            r#"Bearer realm="serac""#
        };
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `Authorization: Basic` credentials: id and secret, each form-url-decoded (RFC 6749,
/// section 2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, String> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| "the Authorization header is not ASCII".to_owned())?;
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| "the Basic credentials are not base64".to_owned())?;
    let decoded =
        String::from_utf8(decoded).map_err(|_| "the Basic credentials are not UTF-8".to_owned())?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or_else(|| "the Basic credentials have no ':'".to_owned())?;
    let unescape = |s: &str| -> Result<String, String> {
        serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("v={s}"))
            .ok()
            .and_then(|mut v| v.pop())
            .map(|(_, v)| v)
            .ok_or_else(|| "the Basic credentials are not form-encoded".to_owned())
    };
    Ok(Some((unescape(id)?, unescape(secret)?)))
}
