//! Start-up: open the database, run migrations, build the catalog and the HTTP stack, serve,
//! and drain in-flight requests on shutdown.

mod connections;
mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Request, StatusCode};
use axum::response::Response;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use connections::{ConnectionSettings, HttpServer};
use tls::Tls;

use crate::api::{self, ApiError, AppState, Lifecycle};
use crate::auth::{AuthMode, Authenticator};
use crate::catalog::{Catalog, CatalogSettings};
use crate::config::{AllowedOrigin, Database, DatabaseArgs, ServeArgs, redact};
use crate::metrics::{DbMetrics, Metrics};
use crate::storage::Storage;
use crate::store::{PostgresOptions, PostgresStore, SqliteStore, Store};

/// What [`open_store`] does about the database schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// Apply the migrations this build holds (the default, and `serac migrate`).
    Migrate,
    /// Apply none: wait until someone else (`serac migrate`, run once by a deployment tool)
    /// has applied them all, so that replicas never race on migrations (`serve --no-migrate`).
    AwaitMigrations,
}

/// Opens the configured database and brings its schema up to date, or waits until it is (see
/// [`Schema`]). The store records its database metrics in `metrics`.
pub async fn open_store(
    args: &DatabaseArgs,
    metrics: DbMetrics,
    schema: Schema,
) -> Result<Arc<dyn Store>, String> {
    let store = connect_store(args, metrics, schema).await?;
    if schema == Schema::AwaitMigrations {
        await_migrations(store.as_ref()).await;
    }
    Ok(store)
}

/// Polls until the schema holds every migration of this build. Nothing listens meanwhile, so
/// an orchestrator's startup probe bounds the wait; SIGTERM ends it (no handler is installed
/// yet).
async fn await_migrations(store: &dyn Store) {
    const POLL: Duration = Duration::from_secs(1);
    const REMIND_EVERY: u32 = 30;
    let mut polls = 0u32;
    loop {
        let why = match store.schema_current().await {
            Ok(true) => {
                if polls > 0 {
                    tracing::info!("the database schema is up to date; starting");
                }
                return;
            }
            Ok(false) => "the schema is older than this build".to_owned(),
            Err(e) => e.to_string(),
        };
        if polls.is_multiple_of(REMIND_EVERY) {
            tracing::warn!(
                reason = %why,
                "--no-migrate: waiting for `serac migrate` to bring the database schema up to date"
            );
        }
        polls = polls.wrapping_add(1);
        tokio::time::sleep(POLL).await;
    }
}

async fn connect_store(
    args: &DatabaseArgs,
    metrics: DbMetrics,
    schema: Schema,
) -> Result<Arc<dyn Store>, String> {
    let migrate = schema == Schema::Migrate;
    match args.database()? {
        Database::Sqlite(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    format!("SERAC_DATA_DIR: cannot create '{}': {e}", dir.display())
                })?;
            }
            let store = SqliteStore::open(&path, args.db_max_connections, metrics)
                .await
                .map_err(|e| format!("cannot open SQLite database '{}': {e}", path.display()))?;
            if migrate {
                store.migrate().await.map_err(|e| e.to_string())?;
            }
            Ok(Arc::new(store))
        }
        Database::Postgres(url) => {
            let store = PostgresStore::connect(
                &PostgresOptions {
                    url: url.clone(),
                    max_connections: args.db_max_connections,
                    acquire_timeout: args.db_acquire_timeout,
                },
                metrics,
            )
            .map_err(|e| format!("SERAC_DATABASE_URL: {e}"))?;
            if migrate {
                store
                    .migrate()
                    .await
                    .map_err(|e| format!("PostgreSQL at {}: {e}", redact(&url)))?;
            }
            Ok(Arc::new(store))
        }
    }
}

/// A server bound to its address, ready to serve.
pub struct Server {
    listener: TcpListener,
    app: Router,
    catalog: Arc<Catalog>,
    lifecycle: Arc<Lifecycle>,
    connections: ConnectionSettings,
    /// `None`: plain HTTP.
    tls: Option<Arc<Tls>>,
    shutdown_delay: Duration,
}

impl Server {
    pub async fn build(args: &ServeArgs) -> Result<Self, String> {
        let auth_settings = args.auth_settings()?;
        // Before the database: a start with a wrong certificate fails at once.
        let tls = args.tls()?.map(Tls::load).transpose()?.map(Arc::new);
        // So does one with an unreadable secrets key.
        let secret_keys = args.secrets.keys()?;
        let metrics = Arc::new(Metrics::new());
        let schema = if args.no_migrate {
            Schema::AwaitMigrations
        } else {
            Schema::Migrate
        };
        let store = open_store(&args.database, metrics.db.clone(), schema).await?;
        let auth = Arc::new(Authenticator::start(store.clone(), &auth_settings).await?);
        if auth.mode() == AuthMode::None {
            tracing::warn!("authentication is off (--auth none): every request may do anything");
        }
        let settings = CatalogSettings {
            default_warehouse: args.database.default_warehouse.clone(),
            commit_retries: args.commit_retries,
            idempotency_lifetime: args.idempotency_key_lifetime,
            table_cache_bytes: args.table_cache_mb.saturating_mul(1024 * 1024),
            scan_files_per_task: args.scan_files_per_task,
            scan_plan_lifetime: args.scan_plan_lifetime,
            purge_lease: args.purge_lease,
            event_retention: args.event_retention,
            event_poll_interval: args.event_poll_interval,
            audit_retention: args.audit_retention,
            limits: args.limits(),
            sign_batch_deletes: args.sign_batch_deletes,
        };
        let storage = Storage::new(args.max_metadata_bytes).with_secret_keys(secret_keys);
        let catalog = Arc::new(Catalog::new(store, storage, settings, metrics));
        let location = args.default_warehouse_location()?;
        if let Some(dir) = crate::storage::Location::parse(&location)
            .ok()
            .and_then(|l| l.local_path())
        {
            std::fs::create_dir_all(&dir).map_err(|e| {
                format!(
                    "SERAC_WAREHOUSE_LOCATION: cannot create '{}': {e}",
                    dir.display()
                )
            })?;
        }
        catalog
            .ensure_default_warehouse(&location)
            .await
            .map_err(|e| format!("default warehouse: {e}"))?;
        catalog
            .check_stored_secrets()
            .await
            .map_err(|e| format!("stored secrets: {e}"))?;
        let listener = listen(args.bind, args.listen_backlog)
            .map_err(|e| format!("SERAC_BIND: cannot listen on {}: {e}", args.bind))?;
        let lifecycle = Arc::new(Lifecycle::default());
        let state = AppState {
            catalog: catalog.clone(),
            lifecycle: lifecycle.clone(),
            access_log: args.access_log,
            feed_origins: args.allowed_origins.clone().into(),
            api_origins: args.cors_allowed_origins.clone().into(),
            auth,
            metrics_require_token: args.metrics_require_token,
        };
        let app = with_middleware(api::router(state.clone()), args, state);
        Ok(Self {
            listener,
            app,
            catalog,
            lifecycle,
            connections: ConnectionSettings {
                header_read_timeout: args.header_read_timeout,
                max_connections: args.max_connections as usize,
                drain_timeout: args.drain_timeout,
            },
            tls,
            shutdown_delay: args.shutdown_delay,
        })
    }

    /// The catalog this server serves.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.clone()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` completes. Then: `/ready` turns 503 and every response
    /// carries `Connection: close` at once; after the shutdown delay the listener closes
    /// (without resetting the connections waiting in its backlog), change-feed connections get
    /// a close frame, idle connections close and in-flight requests finish within the drain
    /// timeout; queued audit records are written.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), String> {
        let addr = self.local_addr();
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        tracing::info!(%addr, scheme, backend = self.catalog.backend(), "serac is serving the Iceberg REST catalog");
        #[cfg(unix)]
        let reloads = match &self.tls {
            Some(tls) => Some(
                tls.clone()
                    .reload_on_sighup()
                    .map_err(|e| format!("cannot handle SIGHUP (TLS certificate reloads): {e}"))?,
            ),
            None => None,
        };
        let mut background = self.catalog.start_background();
        #[cfg(unix)]
        background.extend(reloads);
        let acceptor = self.tls.as_ref().map(|tls| tls.acceptor().clone());
        let http = HttpServer::start(self.listener, self.app, self.connections, acceptor);
        shutdown.await;
        self.lifecycle.start_drain();
        self.catalog.metrics().draining.set(1);
        http.start_draining();
        let delay = self.shutdown_delay;
        tracing::info!(delay = ?delay, "shutdown requested: reporting unready");
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        tracing::info!("closing the listener and change feeds; draining in-flight requests");
        self.lifecycle.close_feeds();
        let cut = http.stop().await;
        if cut > 0 {
            tracing::warn!(
                connections = cut,
                "drain timeout elapsed; closing the remaining connections"
            );
        }
        // Feeds got their close frame; give them a moment to send it.
        let _ = tokio::time::timeout(Duration::from_secs(5), self.lifecycle.feeds_closed()).await;
        if tokio::time::timeout(Duration::from_secs(10), self.catalog.flush_audit())
            .await
            .is_err()
        {
            tracing::warn!("audit records still queued at exit were not written");
        }
        for task in background {
            task.abort();
        }
        tracing::info!("serac stopped");
        Ok(())
    }
}

fn with_middleware(router: Router, args: &ServeArgs, state: AppState) -> Router {
    // `record_request` wraps the timeout, the panic handler and CORS, so that timed-out,
    // panicked and preflight requests are counted, logged and audited too.
    let router = router
        .layer(DefaultBodyLimit::max(args.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            args.request_timeout,
            request_timeout,
        ))
        .layer(CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| -> Response {
                axum::response::IntoResponse::into_response(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "ServiceFailureException",
                    "the server failed while handling this request",
                ))
            },
        ));
    let router = match cors(&args.cors_allowed_origins) {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router
        .layer(axum::middleware::from_fn_with_state(
            state,
            api::record_request,
        ))
        .layer(
            // A span per request carries its id into every log line; the access log line
            // itself is written by `api::record_request`, which knows the route.
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request<_>| {
                    let request_id = request
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    tracing::info_span!(
                        "request",
                        method = %request.method(),
                        path = %request.uri().path(),
                        request_id,
                    )
                })
                .on_request(())
                .on_response(())
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// Answers a request that takes longer than `limit` with the spec's 503 (dropping its work).
async fn request_timeout(
    axum::extract::State(limit): axum::extract::State<Duration>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => axum::response::IntoResponse::into_response(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailableException",
            format!(
                "the request took longer than the configured timeout of {} (--request-timeout)",
                humantime::format_duration(limit)
            ),
        )),
    }
}

/// CORS for the configured origins (`--cors-allowed-origins`); none when unset, so that no
/// response carries CORS headers.
fn cors(origins: &[AllowedOrigin]) -> Option<CorsLayer> {
    use axum::http::{HeaderName, Method, header};
    if origins.is_empty() {
        return None;
    }
    let allow_origin = if origins.contains(&AllowedOrigin::Any) {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| match o {
            AllowedOrigin::Exact(origin) => axum::http::HeaderValue::from_str(origin).ok(),
            AllowedOrigin::Any => None,
        }))
    };
    // What the REST API's requests use and its responses carry.
    Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([Method::GET, Method::HEAD, Method::POST, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::IF_NONE_MATCH,
                HeaderName::from_static("idempotency-key"),
                HeaderName::from_static("x-request-id"),
                HeaderName::from_static("x-iceberg-access-delegation"),
                HeaderName::from_static("x-client-version"),
                HeaderName::from_static("x-client-git-commit-short"),
            ])
            .expose_headers([header::ETAG, HeaderName::from_static("x-request-id")])
            .max_age(Duration::from_secs(600)),
    )
}

/// How many tasks a worker runs between two looks at the I/O driver (tokio's default).
const EVENT_INTERVAL: u32 = 61;

/// The most sockets one look at the I/O driver wakes (tokio's default: 1,024). A worker's
/// local run queue holds 256 tasks; what a look wakes beyond that spills into the shared
/// queue, which a busy worker only serves every 31st task. With thousands of busy
/// connections the spilled ones then waited for seconds while those that stayed local were
/// served again and again: at 10,000 keep-alive connections p50 was 17 ms and p99 720 ms.
/// Waking fewer sockets per look than the tasks run between two looks keeps the local
/// queue from spilling, so connections are served in the order their requests arrived
/// (the kernel's ready list is first in, first out): p50 215 ms, p99 290 ms, the same
/// throughput (benches/README.md). With few connections a look wakes fewer anyway.
const IO_EVENTS_PER_TICK: usize = 48;

/// A multi-threaded tokio runtime (I/O and timers on) that serves thousands of busy sockets
/// in the order they became ready: the server's, and the load generator's, whose own
/// queueing would otherwise count as server latency.
pub fn fair_runtime() -> tokio::runtime::Builder {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder
        .enable_all()
        .event_interval(EVENT_INTERVAL)
        .max_io_events_per_tick(IO_EVENTS_PER_TICK);
    builder
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// A listening socket on `addr` with a backlog of `backlog` (tokio's `bind` uses 128).
fn listen(addr: std::net::SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}
