//! The test harness: the real server on a random port, against a fresh SQLite file or a fresh
//! database in the throwaway PostgreSQL cluster (`SERAC_TEST_PG_URL`, set by `tests/run.sh`).
#![allow(dead_code)]

pub mod raw_http;
pub mod s3;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use clap::Parser;
use reqwest::{Method, StatusCode};
use serac::config::{Cli, Command};
use serac::server::Server;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs an async scenario once per backend: `both_backends!(scenario_fn);`
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::common::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::common::Backend::Postgres).await
            }
        }
    )*};
}

/// A TCP port on 127.0.0.1 that was free a moment ago (for a server started as a process).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The admin URL of the throwaway PostgreSQL cluster.
pub fn pg_admin_url() -> String {
    std::env::var("SERAC_TEST_PG_URL").expect(
        "SERAC_TEST_PG_URL is not set: run the suite with ./tests/run.sh, which starts a throwaway PostgreSQL cluster",
    )
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The test process's log writer (one subscriber for all servers of the process).
static LOGS: std::sync::OnceLock<serac::telemetry::LogGuard> = std::sync::OnceLock::new();

/// A unique name for this process and call.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates a fresh database in the throwaway cluster and returns its URL.
pub async fn fresh_pg_database() -> String {
    use sqlx::Executor;
    let admin = pg_admin_url();
    let name = unique("serac_test");
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
        .await
        .expect("connect to the throwaway PostgreSQL cluster");
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .expect("create a test database");
    let base = admin.rsplit_once('/').expect("admin URL has a database").0;
    format!("{base}/{name}")
}

/// The database argument for a backend, creating a fresh database.
pub async fn database_url(backend: Backend, dir: &Path) -> String {
    match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.join("serac.db").display()),
        Backend::Postgres => fresh_pg_database().await,
    }
}

/// The bootstrap admin of a server started with [`auth_args`].
pub const ADMIN_ID: &str = "platform-admin";
pub const ADMIN_SECRET: &str = "a-long-bootstrap-secret";

/// `serac serve` flags for authentication on, with the bootstrap admin.
pub fn auth_args() -> [&'static str; 6] {
    [
        "--auth",
        "oauth2",
        "--bootstrap-client-id",
        ADMIN_ID,
        "--bootstrap-client-secret",
        ADMIN_SECRET,
    ]
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub backend: Backend,
    pub database_url: String,
    /// Holds the SQLite file and the default warehouse.
    pub dir: TempDir,
    /// A bearer token sent with every request of the helpers below, when set.
    pub token: Option<String>,
    catalog: std::sync::Arc<serac::catalog::Catalog>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), String>>>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, &[]).await
    }

    /// Starts a server with extra `serac serve` flags.
    pub async fn spawn_with(backend: Backend, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let database_url = database_url(backend, dir.path()).await;
        Self::spawn_on(backend, dir, database_url, extra).await
    }

    /// Starts a server on an existing data directory and database.
    /// Another replica on this server's database, with authentication on (as `--auth oauth2`).
    pub async fn authenticated_replica(&self) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::spawn_on(
            self.backend,
            dir,
            self.database_url.clone(),
            &["--auth", "oauth2"],
        )
        .await
    }

    pub async fn spawn_on(
        backend: Backend,
        dir: TempDir,
        database_url: String,
        extra: &[&str],
    ) -> Self {
        let data_dir = dir.path().display().to_string();
        let mut argv = vec![
            "serac",
            "--log-level",
            "warn",
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--data-dir",
            &data_dir,
            "--database-url",
            &database_url,
            "--db-max-connections",
            "8",
        ];
        argv.extend_from_slice(extra);
        let cli = Cli::try_parse_from(argv).expect("valid test arguments");
        let Command::Serve(args) = cli.command else {
            unreachable!("serve")
        };
        LOGS.get_or_init(|| {
            serac::telemetry::init(serac::telemetry::LogFormat::Pretty, "warn").expect("logging")
        });
        let server = Server::build(&args).await.expect("server starts");
        let base = format!("http://{}", server.local_addr());
        let catalog = server.catalog();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        Self {
            base,
            client: reqwest::Client::new(),
            backend,
            database_url,
            dir,
            token: None,
            catalog,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// A token for a principal's client id and secret (the request must succeed).
    pub async fn token_for(&self, id: &str, secret: &str) -> String {
        let r = self
            .client
            .post(self.url("/v1/oauth/tokens"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", secret),
            ])
            .send()
            .await
            .expect("token request sent");
        let r = Resp::from(r).await;
        assert_eq!(r.status, StatusCode::OK, "token for '{id}': {}", r.text);
        r.json()["access_token"]
            .as_str()
            .expect("an access token")
            .to_owned()
    }

    /// Stops the server and hands back its data directory and database.
    pub async fn stop(mut self) -> (TempDir, String) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server ran");
        }
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
        (dir, self.database_url.clone())
    }

    /// The server's catalog, for test hooks.
    pub fn catalog(&self) -> &serac::catalog::Catalog {
        &self.catalog
    }

    pub fn warehouse_dir(&self) -> PathBuf {
        self.dir.path().join("warehouse")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn request(&self, method: Method, path: &str, body: Option<&Value>) -> Resp {
        self.request_with(method, path, body, &[]).await
    }

    pub async fn request_with(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = self.client.request(method, self.url(path));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Resp::from(req.send().await.expect("request sent")).await
    }

    /// A request with this bearer token alone (not `self.token`).
    pub async fn request_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Resp {
        let mut req = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token);
        if let Some(body) = body {
            req = req.json(body);
        }
        Resp::from(req.send().await.expect("request sent")).await
    }

    /// Sends a request as `self.token`'s principal, checks its status, and returns its JSON
    /// body (`null` when empty).
    pub async fn manage(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        status: StatusCode,
    ) -> Value {
        let r = self.request(method.clone(), path, body.as_ref()).await;
        assert_eq!(r.status, status, "{method} {path}: {}", r.text);
        if r.text.is_empty() {
            Value::Null
        } else {
            r.json()
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.request(Method::GET, path, None).await
    }

    pub async fn head(&self, path: &str) -> Resp {
        self.request(Method::HEAD, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.request(Method::POST, path, Some(body)).await
    }

    /// Posts a JSON body exactly as written (key order included).
    pub async fn post_text(&self, path: &str, body: String) -> Resp {
        let req = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body);
        Resp::from(req.send().await.expect("request sent")).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.request(Method::DELETE, path, None).await
    }

    /// Creates a namespace (levels joined by 0x1F in URLs) and asserts it worked.
    pub async fn create_namespace(&self, levels: &[&str]) {
        let r = self
            .post(
                "/v1/namespaces",
                &json!({"namespace": levels, "properties": {"owner": "tests"}}),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "create namespace {levels:?}: {}",
            r.text
        );
    }

    /// Creates a table with a small schema; returns the load result.
    pub async fn create_table(&self, ns: &str, name: &str, properties: Value) -> Value {
        let r = self
            .post(
                &format!("/v1/namespaces/{ns}/tables"),
                &json!({
                    "name": name,
                    "schema": simple_schema(),
                    "partition-spec": {"spec-id": 0, "fields": [
                        {"source-id": 1, "field-id": 1000, "name": "id_bucket", "transform": "bucket[4]"}
                    ]},
                    "properties": properties,
                }),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "create table {ns}.{name}: {}",
            r.text
        );
        r.json()
    }

    /// Appends one snapshot to `main`, asserting the current main snapshot like clients do.
    /// Returns the response.
    pub async fn append_snapshot(&self, ns: &str, table: &str, metadata: &Value) -> Resp {
        let commit = append_commit(metadata, next_snapshot_id());
        self.post(&format!("/v1/namespaces/{ns}/tables/{table}"), &commit)
            .await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Waits up to 20 s for `done` to hold (background work such as a purge), looking every
/// 20 ms; panics naming `what` when it never does.
pub async fn eventually<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if done().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("{what}: still not so after 20 s");
}

/// The value of one series in the server's /metrics text (0 when absent).
pub async fn metric(app: &TestApp, series: &str) -> f64 {
    let text = app.get("/metrics").await.text;
    text.lines()
        .find_map(|line| {
            line.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

pub fn simple_schema() -> Value {
    json!({
        "type": "struct",
        "schema-id": 0,
        "fields": [
            {"id": 1, "name": "id", "required": true, "type": "long"},
            {"id": 2, "name": "data", "required": false, "type": "string"},
            {"id": 3, "name": "ts", "required": false, "type": "timestamptz"}
        ]
    })
}

/// The metadata of a function `x + 1`, as the Iceberg REST spec defines function metadata.
pub fn add_one_function() -> Value {
    json!({
        "function-uuid": "42fd3f91-bc10-41c1-8a52-92b57dd0a9b2",
        "format-version": 1,
        "definitions": [{
            "definition-id": "int",
            "parameters": [{"name": "x", "type": "int"}],
            "return-type": "int",
            "function-type": "udf",
            "current-version-id": 1,
            "versions": [{"version-id": 1, "timestamp-ms": 1, "representations": [
                {"type": "sql", "dialect": "spark", "sql": "x + 1"}]}]
        }],
        "definition-log": [{"timestamp-ms": 1, "definition-versions": [{"definition-id": "int", "version-id": 1}]}],
        "properties": {"owner": "ana"}
    })
}

static SNAPSHOT_IDS: AtomicU64 = AtomicU64::new(1);

/// A snapshot id unique within this test process.
pub fn next_snapshot_id() -> i64 {
    let base = (std::process::id() as i64 % 10_000) * 1_000_000_000;
    base + SNAPSHOT_IDS.fetch_add(1, Ordering::Relaxed) as i64
}

/// The commit a client sends to append a snapshot on top of the metadata it read.
pub fn append_commit(metadata: &Value, snapshot_id: i64) -> Value {
    let current = metadata["current-snapshot-id"]
        .as_i64()
        .filter(|id| *id != -1);
    let sequence = metadata["last-sequence-number"].as_i64().unwrap_or(0) + 1;
    let last_updated = metadata["last-updated-ms"].as_i64().unwrap_or(0);
    let now = chrono::Utc::now().timestamp_millis().max(last_updated + 1);
    let location = metadata["location"].as_str().expect("table location");
    let mut snapshot = json!({
        "snapshot-id": snapshot_id,
        "sequence-number": sequence,
        "timestamp-ms": now,
        "manifest-list": format!("{location}/metadata/snap-{snapshot_id}.avro"),
        "summary": {"operation": "append"},
        "schema-id": 0
    });
    if let Some(parent) = current {
        snapshot["parent-snapshot-id"] = json!(parent);
    }
    json!({
        "requirements": [{"type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": current}],
        "updates": [
            {"action": "add-snapshot", "snapshot": snapshot},
            {"action": "set-snapshot-ref", "ref-name": "main", "type": "branch", "snapshot-id": snapshot_id}
        ]
    })
}

/// The snapshot ids on the ancestry of `main`, newest first.
pub fn main_ancestry(metadata: &Value) -> Vec<i64> {
    let snapshots = metadata["snapshots"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let parent_of = |id: i64| {
        snapshots
            .iter()
            .find(|s| s["snapshot-id"].as_i64() == Some(id))
            .and_then(|s| s["parent-snapshot-id"].as_i64())
    };
    let mut out = Vec::new();
    let mut cursor = metadata["refs"]["main"]["snapshot-id"].as_i64();
    while let Some(id) = cursor {
        out.push(id);
        cursor = parent_of(id);
    }
    out
}

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Resp {
    async fn from(r: reqwest::Response) -> Self {
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.expect("response body");
        Self {
            status,
            headers,
            text,
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// Asserts the spec's error model with the given status and type.
    pub fn assert_error(&self, status: StatusCode, kind: &str) -> String {
        assert_eq!(
            self.status, status,
            "expected {status} {kind}, got: {}",
            self.text
        );
        let body = self.json();
        assert_eq!(body["error"]["type"], kind, "error type in {}", self.text);
        assert_eq!(
            body["error"]["code"],
            status.as_u16(),
            "error code in {}",
            self.text
        );
        let message = body["error"]["message"]
            .as_str()
            .expect("error message")
            .to_owned();
        assert!(!message.is_empty(), "empty error message");
        message
    }
}

/// A change-feed connection (`GET /v1/events/stream`).
pub type Feed =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl TestApp {
    /// Connects to the change feed with a query string (such as `cursor=...&types=table`).
    pub async fn feed(&self, query: &str) -> Feed {
        let url = format!(
            "{}/v1/events/stream?{query}",
            self.base.replacen("http://", "ws://", 1)
        );
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = url.into_client_request().expect("feed URL");
        if let Some(token) = &self.token {
            request.headers_mut().insert(
                "authorization",
                format!("Bearer {token}").parse().expect("token header"),
            );
        }
        let (feed, _) = tokio_tungstenite::connect_async(request)
            .await
            .unwrap_or_else(|e| panic!("change feed connect ({query}): {e}"));
        feed
    }
}

/// The next event of a feed; panics after 15 s without one (a missing event).
pub async fn next_event(feed: &mut Feed) -> Value {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let message = tokio::time::timeout(std::time::Duration::from_secs(15), feed.next())
            .await
            .expect("an event within 15 s")
            .expect("the feed is open")
            .expect("a WebSocket message");
        match message {
            Message::Text(text) => {
                return serde_json::from_str(text.as_str()).expect("events are JSON");
            }
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected feed message: {other:?}"),
        }
    }
}

/// The next `n` events of a feed.
pub async fn next_events(feed: &mut Feed, n: usize) -> Vec<Value> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(next_event(feed).await);
    }
    out
}

/// Asserts that no event arrives within `wait`.
pub async fn assert_no_event(feed: &mut Feed, wait: std::time::Duration) {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, feed.next()).await {
            Err(_) => return,
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            Ok(other) => panic!("expected no event, got {other:?}"),
        }
    }
}

/// Runs the `serac` binary with `args` on `database`: (success, stdout, stderr).
pub fn serac_cli(database: &str, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_serac"))
        .args(args)
        .args(["--database-url", database])
        .env_remove("SERAC_DATABASE_URL")
        .output()
        .expect("serac runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
