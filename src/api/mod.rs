//! The HTTP face of Serac: routes, request parsing and the mapping of errors to the spec's
//! error model. Handlers are thin: they parse, call the catalog, and shape the response.

mod access;
mod auth;
mod error;
mod events;
mod extract;
pub use extract::plus_as_space;
mod functions;
mod idempotency;
mod management;
mod namespaces;
mod scan;
mod tables;
mod views;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use error::json_response;
pub use error::{ApiError, ApiResult};

use crate::catalog::Catalog;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub catalog: Arc<Catalog>,
    /// Turns bearer tokens into principals, and issues tokens.
    pub auth: Arc<crate::auth::Authenticator>,
    /// With authentication on, whether `/metrics` needs a token.
    pub metrics_require_token: bool,
    pub lifecycle: Arc<Lifecycle>,
    /// Whether each request is logged.
    pub access_log: bool,
    /// Browser origins that may open the change feed (empty: the request's own host).
    pub feed_origins: Arc<[crate::config::AllowedOrigin]>,
    /// Browser origins whose pages may change things through the API (the CORS origins;
    /// a page of the server's own host always may).
    pub api_origins: Arc<[crate::config::AllowedOrigin]>,
}

/// Refuses a request that would change something when a browser sends it for a page of
/// another origin (403): request bodies must be JSON, which a page cannot send across
/// origins without CORS, but a POST or DELETE without a body (an unregister, a drop) needs
/// this check. Clients that are not browsers send no `Origin` and pass.
async fn refuse_cross_site_changes(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let safe = matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    if !safe
        && let Some(origin) = events::foreign_origin(&state.api_origins, true, request.headers())
    {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "ForbiddenException",
            format!(
                "requests that change the catalog are not accepted from pages of origin '{origin}' (see --cors-allowed-origins)"
            ),
        )
        .into_response();
    }
    next.run(request).await
}

/// Where the server is in its life: serving, draining (unready, still serving), closing
/// (change-feed connections end).
#[derive(Debug)]
pub struct Lifecycle {
    draining: std::sync::atomic::AtomicBool,
    closing: tokio::sync::watch::Sender<bool>,
    /// Open change-feed connections.
    feeds: tokio::sync::watch::Sender<usize>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self {
            draining: std::sync::atomic::AtomicBool::new(false),
            closing: tokio::sync::watch::Sender::new(false),
            feeds: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl Lifecycle {
    pub fn start_drain(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Tells every change-feed connection to close.
    pub fn close_feeds(&self) {
        self.closing.send_replace(true);
    }

    /// Completes when no change-feed connection is open.
    pub async fn feeds_closed(&self) {
        let _ = self.feeds.subscribe().wait_for(|n| *n == 0).await;
    }
}

/// The REST catalog routes, relative to `/v1` or `/v1/{prefix}`, with the spec's names.
const CATALOG_ROUTES: &[(&str, &str)] = &[
    ("GET", "/namespaces"),
    ("POST", "/namespaces"),
    ("GET", "/namespaces/{namespace}"),
    ("HEAD", "/namespaces/{namespace}"),
    ("DELETE", "/namespaces/{namespace}"),
    ("POST", "/namespaces/{namespace}/properties"),
    ("GET", "/namespaces/{namespace}/tables"),
    ("POST", "/namespaces/{namespace}/tables"),
    ("GET", "/namespaces/{namespace}/tables/{table}"),
    ("HEAD", "/namespaces/{namespace}/tables/{table}"),
    ("POST", "/namespaces/{namespace}/tables/{table}"),
    ("DELETE", "/namespaces/{namespace}/tables/{table}"),
    ("POST", "/namespaces/{namespace}/register"),
    ("POST", "/namespaces/{namespace}/tables/{table}/metrics"),
    ("POST", "/namespaces/{namespace}/tables/{table}/unregister"),
    ("GET", "/namespaces/{namespace}/tables/{table}/credentials"),
    ("POST", "/namespaces/{namespace}/tables/{table}/sign"),
    ("POST", "/tables/rename"),
    ("POST", "/transactions/commit"),
    ("GET", "/namespaces/{namespace}/views"),
    ("POST", "/namespaces/{namespace}/views"),
    ("GET", "/namespaces/{namespace}/views/{view}"),
    ("HEAD", "/namespaces/{namespace}/views/{view}"),
    ("POST", "/namespaces/{namespace}/views/{view}"),
    ("DELETE", "/namespaces/{namespace}/views/{view}"),
    ("POST", "/views/rename"),
    ("POST", "/namespaces/{namespace}/register-view"),
    ("GET", "/namespaces/{namespace}/functions"),
    ("GET", "/namespaces/{namespace}/functions/{function}"),
    ("POST", "/namespaces/{namespace}/tables/{table}/plan"),
    (
        "GET",
        "/namespaces/{namespace}/tables/{table}/plan/{plan-id}",
    ),
    (
        "DELETE",
        "/namespaces/{namespace}/tables/{table}/plan/{plan-id}",
    ),
    ("POST", "/namespaces/{namespace}/tables/{table}/tasks"),
];

fn catalog_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/namespaces",
            get(namespaces::list).post(namespaces::create),
        )
        .route(
            "/namespaces/{namespace}",
            get(namespaces::load)
                .head(namespaces::exists)
                .delete(namespaces::drop),
        )
        .route(
            "/namespaces/{namespace}/properties",
            post(namespaces::update_properties),
        )
        .route(
            "/namespaces/{namespace}/tables",
            get(tables::list).post(tables::create),
        )
        .route(
            "/namespaces/{namespace}/tables/{table}",
            get(tables::load)
                .head(tables::exists)
                .post(tables::commit)
                .delete(tables::drop),
        )
        .route("/namespaces/{namespace}/register", post(tables::register))
        .route(
            "/namespaces/{namespace}/tables/{table}/metrics",
            post(tables::report_metrics),
        )
        .route(
            "/namespaces/{namespace}/tables/{table}/unregister",
            post(tables::unregister),
        )
        .route("/tables/rename", post(tables::rename))
        .route("/transactions/commit", post(tables::commit_transaction))
        .route(
            "/namespaces/{namespace}/tables/{table}/credentials",
            get(tables::load_credentials),
        )
        .route(
            "/namespaces/{namespace}/tables/{table}/sign",
            post(tables::sign),
        )
        .route(
            "/namespaces/{namespace}/views",
            get(views::list).post(views::create),
        )
        .route(
            "/namespaces/{namespace}/views/{table}",
            get(views::load)
                .head(views::exists)
                .post(views::replace)
                .delete(views::drop),
        )
        .route("/views/rename", post(views::rename))
        .route(
            "/namespaces/{namespace}/register-view",
            post(views::register),
        )
        .route("/namespaces/{namespace}/functions", get(functions::list))
        .route(
            "/namespaces/{namespace}/functions/{function}",
            get(functions::load),
        )
        .route(
            "/namespaces/{namespace}/tables/{table}/plan",
            post(scan::plan),
        )
        .route(
            "/namespaces/{namespace}/tables/{table}/plan/{plan-id}",
            get(scan::fetch_result).delete(scan::cancel),
        )
        .route(
            "/namespaces/{namespace}/tables/{table}/tasks",
            post(scan::fetch_tasks),
        )
}

/// The whole HTTP application (without the middleware, which the server adds).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/config", get(config))
        .route(auth::TOKEN_PATH, post(auth::issue_token))
        .route("/v1/aws/s3/sign", post(tables::sign_legacy))
        .nest("/v1/{prefix}", catalog_routes())
        .nest("/v1", catalog_routes())
        .route("/v1/events/stream", get(events::stream))
        .nest(
            "/management/v1",
            management::routes().merge(access::routes()),
        )
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            refuse_cross_site_changes,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .with_state(state)
}

#[derive(Deserialize)]
struct ConfigQuery {
    warehouse: Option<String>,
}

/// The warehouse a `/v1/config` query asks for (`None`: the default one; an empty value is
/// no value). The handler and the authentication layer decode it by this one function.
fn requested_warehouse(query: &str) -> Result<Option<String>, serde_urlencoded::de::Error> {
    let query: ConfigQuery = serde_urlencoded::from_str(query)?;
    Ok(query.warehouse.filter(|w| !w.is_empty()))
}

#[derive(Serialize)]
struct CatalogConfig {
    defaults: BTreeMap<&'static str, String>,
    overrides: BTreeMap<&'static str, String>,
    endpoints: Vec<String>,
    #[serde(rename = "idempotency-key-lifetime")]
    idempotency_key_lifetime: String,
}

/// `GET /v1/config`: the warehouse's prefix, what the server serves, and the key lifetime.
/// `warehouse` may name a warehouse or give its location; without it, the default one.
async fn config(
    State(state): State<AppState>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> ApiResult<Response> {
    let requested = query
        .as_deref()
        .map_or(Ok(None), requested_warehouse)
        .map_err(|e| ApiError::bad_request(format!("invalid query: {e}")))?;
    let warehouse = match requested.as_deref() {
        None => state.catalog.warehouse(None).await?,
        Some(requested) => state.catalog.warehouse_named_or_at(requested).await?,
    };
    let body = CatalogConfig {
        defaults: state
            .catalog
            .warehouse_client_defaults(&warehouse)
            .into_iter()
            .collect(),
        overrides: BTreeMap::from([
            ("prefix", warehouse.name.clone()),
            ("warehouse", warehouse.location.clone()),
        ]),
        endpoints: CATALOG_ROUTES
            .iter()
            .map(|(method, path)| format!("{method} /v1/{{prefix}}{path}"))
            .collect(),
        idempotency_key_lifetime: iso_duration(state.catalog.settings().idempotency_lifetime),
    };
    Ok(error::json(StatusCode::OK, &body))
}

/// An ISO-8601 duration such as `PT30M`.
fn iso_duration(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::from("PT");
    if h > 0 {
        out.push_str(&format!("{h}H"));
    }
    if m > 0 {
        out.push_str(&format!("{m}M"));
    }
    if s > 0 || secs == 0 {
        out.push_str(&format!("{s}S"));
    }
    out
}

/// `GET /metrics`: the Prometheus text format.
async fn metrics(State(state): State<AppState>) -> Response {
    if let Err(e) = state.catalog.refresh_metrics().await {
        tracing::warn!(error = %e, "metrics: the catalog gauges could not be refreshed");
    }
    let mut response = Response::new(state.catalog.metrics().render().into());
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// Counts and times every request by its route template (never the raw path), runs it with
/// its request context (id and principal, for change events and logs), logs it, and audits
/// mutations.
pub async fn record_request(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let started = std::time::Instant::now();
    let metrics = state.catalog.metrics();
    // Both are cheap clones (an `Arc<str>` and a usually static method).
    let matched = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .cloned();
    let route = matched.as_ref().map_or("unmatched", |p| p.as_str());
    let method = request.method().clone();
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let client = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    // Mutations are audited, and every refusal for a missing privilege (reads included).
    let path = matched.is_some().then(|| request.uri().path().to_owned());
    let mutation = is_mutation(&method, route);
    let in_flight = InFlight::enter(&metrics.http_in_flight);
    let response = next.run(request).await;
    drop(in_flight);
    let elapsed = started.elapsed();
    metrics
        .http_duration
        .with_label_values(&[route])
        .observe(elapsed.as_secs_f64());
    let status = response.status();
    if status == StatusCode::SERVICE_UNAVAILABLE && !state.lifecycle.is_draining() {
        state.catalog.suspect_database_outage();
    }
    metrics
        .http_requests
        .with_label_values(&[route, method_label(&method), status.as_str()])
        .inc();
    if state.access_log {
        tracing::info!(
            target: "serac::access",
            route,
            method = %method,
            status = status.as_u16(),
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            client = client.map(tracing::field::display),
            principal = auth::principal_name(&response),
            "request"
        );
    }
    let missing = response
        .extensions()
        .get::<error::MissingPrivilege>()
        .map(|m| m.0.to_owned());
    if let Some(object) = path.filter(|_| mutation || missing.is_some()) {
        state.catalog.audit(crate::catalog::AuditRecord {
            at_ms: chrono::Utc::now().timestamp_millis(),
            request_id,
            actor: auth::principal_name(&response).to_owned(),
            client: client.map(|c| c.to_string()),
            operation: format!("{method} {route}"),
            object,
            status: status.as_u16(),
            outcome: match status.as_u16() {
                200..=399 => "success",
                403 if missing.is_some() => "denied",
                400..=499 => "rejected",
                _ => "failed",
            }
            .to_owned(),
            missing_privilege: missing,
        });
    }
    response
}

/// The metric label of a method: the standard ones by name, every other `other`, so that
/// made-up method names cannot add label values.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Counts a request in flight until dropped (also when the client goes away and the request
/// is abandoned).
struct InFlight<'a>(&'a prometheus::IntGauge);

impl<'a> InFlight<'a> {
    fn enter(gauge: &'a prometheus::IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The principal of unauthenticated requests.
/// Whether a request may change the catalog (and so is audited). Planning a scan, fetching
/// its tasks and reporting metrics change nothing although they are POSTs.
fn is_mutation(method: &Method, route: &str) -> bool {
    let read_only_post =
        route.ends_with("/plan") || route.ends_with("/tasks") || route.ends_with("/metrics");
    match *method {
        Method::PUT | Method::DELETE | Method::PATCH => true,
        Method::POST => !read_only_post,
        _ => false,
    }
}

async fn health() -> Response {
    json_response(StatusCode::OK, r#"{"status":"ok"}"#)
}

/// Ready: not draining, the database answers, and its schema holds every migration.
async fn ready(State(state): State<AppState>) -> ApiResult<Response> {
    if state.lifecycle.is_draining() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailableException",
            "the server is shutting down",
        ));
    }
    let check = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        state.catalog.check_ready(),
    )
    .await
    .map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailableException",
            "the catalog database did not answer within 2 s",
        )
    })?;
    check?;
    Ok(json_response(StatusCode::OK, r#"{"status":"ready"}"#))
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(
        "NoSuchRouteException",
        format!("this server has no route for {method} {}", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowedException",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn method_labels() {
        use axum::http::Method;
        assert_eq!(super::method_label(&Method::POST), "POST");
        assert_eq!(
            super::method_label(&Method::from_bytes(b"FOO").unwrap()),
            "other"
        );
        assert_eq!(
            super::method_label(&Method::from_bytes(b"get").unwrap()),
            "other"
        );
    }

    #[test]
    fn iso_durations() {
        use std::time::Duration;
        assert_eq!(super::iso_duration(Duration::from_secs(1800)), "PT30M");
        assert_eq!(super::iso_duration(Duration::from_secs(3661)), "PT1H1M1S");
        assert_eq!(super::iso_duration(Duration::from_secs(0)), "PT0S");
    }
}
