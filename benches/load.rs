//! Load generator for Serac (Iceberg REST catalog).
//!
//! Talks to an already running server over HTTP, so it can be pointed at any
//! Iceberg REST catalog. Run it through `./benches/run.sh`, or directly:
//!
//! ```text
//! cargo bench --bench load -- --uri http://127.0.0.1:8181 --duration 5 --concurrency 1,16,64
//! ```
//!
//! See `benches/README.md` for what each scenario measures.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, ValueEnum};
use futures::future::join_all;
use serde::Deserialize;
use serde_json::{Map, Value, json};

#[path = "load/connections.rs"]
mod connections;
#[path = "load/procfs.rs"]
mod procfs;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "load",
    about = "Load generator for the Serac Iceberg REST catalog"
)]
struct Args {
    /// Base URI of the running catalog (without /v1).
    #[arg(long, env = "SERAC_BENCH_URI", default_value = "http://127.0.0.1:8181")]
    uri: String,

    /// Optional catalog prefix inserted after /v1/ (default: prefix-less routes).
    #[arg(long)]
    prefix: Option<String>,

    /// Bearer token sent as `Authorization: Bearer ...`, if the server needs one.
    #[arg(long, env = "SERAC_BENCH_TOKEN", hide_env_values = true)]
    token: Option<String>,

    /// `client_id:client_secret` of a principal: adds the scenario `token` (the OAuth2
    /// client credentials grant at POST /v1/oauth/tokens).
    #[arg(long, env = "SERAC_BENCH_CLIENT_CREDENTIALS", hide_env_values = true)]
    client_credentials: Option<String>,

    /// Seconds each scenario runs at each concurrency level.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,

    /// Comma-separated list of concurrency levels (number of client tasks).
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    concurrency: Vec<usize>,

    /// Snapshots in the "small" table used by the `load` scenario.
    #[arg(long, default_value_t = 50)]
    snapshots: usize,

    /// Snapshots in the "big" table used by the `load-big` scenarios.
    #[arg(long, default_value_t = 2000)]
    big_snapshots: usize,

    /// Writers in the contended-commit scenario (independent of --concurrency).
    #[arg(long, default_value_t = 16)]
    writers: usize,

    /// Scenarios to run (comma-separated); default: all.
    #[arg(long, value_delimiter = ',')]
    scenarios: Option<Vec<Scenario>>,

    /// Print the results as JSON on stdout (the text table then goes to stderr).
    #[arg(long)]
    json: bool,

    /// Size of the HTTP connection pool (idle connections kept per host).
    #[arg(long, default_value_t = 1024)]
    pool: usize,

    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,

    /// Free text printed in the report header (run.sh puts the backend and its durability settings here).
    #[arg(long)]
    label: Option<String>,

    /// Scrape `GET /metrics` every this many seconds while the scenarios run (as Prometheus
    /// would), to measure what scraping costs; 0 (default): no scraping.
    #[arg(long, default_value_t = 0.0)]
    scrape_every: f64,

    /// Pid of the server when it runs on this machine: its RSS (/proc/<pid>/status) is
    /// sampled every 0.5 s and read after each row, and its open-file limit checked.
    #[arg(long)]
    server_pid: Option<u32>,

    /// commit-history: table history sizes (snapshots) at which commits are timed.
    #[arg(long, value_delimiter = ',', default_value = "50,500,2000")]
    history: Vec<usize>,

    /// commit-history: sequential commits timed at each history size.
    #[arg(long, default_value_t = 50)]
    history_commits: usize,

    /// connections: concurrent keep-alive HTTP/1.1 connections, each its own socket.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,

    /// connections: TCP handshakes in flight at once while the connections open (Serac's
    /// listen backlog is 128: more at once overflow it and cost 1 s SYN retransmits).
    #[arg(long, default_value_t = 64)]
    connect_parallel: usize,

    /// list-tables: an existing namespace to list (e.g. one seeded by benches/seed.sh). Setup
    /// checks that the catalog serves it: it lists it, loads its first table, commits one
    /// append to that table, creates a table in it and drops that again. Default: setup
    /// creates a namespace with --list-tables tables through the API.
    #[arg(long)]
    list_namespace: Option<String>,

    /// list-tables: tables setup creates in its own namespace (without --list-namespace).
    #[arg(long, default_value_t = 1000)]
    list_tables: usize,

    /// A line for the report header (repeatable); run.sh puts the seeding figures here.
    #[arg(long)]
    note: Vec<String>,

    /// Passed by `cargo bench` when harness = false; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// GET a table with 50 snapshots.
    Load,
    /// GET a table with 2,000 snapshots, snapshots=refs and snapshots=all.
    LoadBig,
    /// GET /v1/namespaces.
    ListNamespaces,
    /// GET /v1/namespaces/{ns}/tables of a namespace holding 1,000 tables.
    ListTables,
    /// POST /v1/namespaces with unique names.
    CreateNamespace,
    /// Appends, each client on its own table.
    Commit,
    /// Appends by 16 writers on one table, with retry on 409.
    CommitContended,
    /// Sequential commits on one table at growing history sizes (--history).
    CommitHistory,
    /// GET /v1/config on --connections concurrent keep-alive connections.
    Connections,
    /// POST /v1/oauth/tokens (needs --client-credentials).
    Token,
}

const ALL_SCENARIOS: [Scenario; 10] = [
    Scenario::Load,
    Scenario::LoadBig,
    Scenario::ListNamespaces,
    Scenario::ListTables,
    Scenario::CreateNamespace,
    Scenario::Commit,
    Scenario::CommitContended,
    Scenario::CommitHistory,
    Scenario::Connections,
    Scenario::Token,
];

// ---------------------------------------------------------------------------
// HTTP plumbing

struct Bench {
    http: reqwest::Client,
    /// `<uri>/v1` or `<uri>/v1/<prefix>`.
    base: String,
    token: Option<String>,
}

/// Outcome of a commit request.
enum Commit {
    Ok(Meta),
    Conflict(String),
    Failed(String),
}

impl Bench {
    fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let rb = self.http.request(method, self.url(path));
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    /// Send a request, read the whole body, return (status, body).
    async fn send(&self, rb: reqwest::RequestBuilder) -> Result<(u16, bytes_vec::Body), String> {
        let resp = rb.send().await.map_err(|e| format!("transport: {e}"))?;
        let status = resp.status().as_u16();
        let body = resp
            .bytes()
            .await
            .map_err(|e| format!("reading body: {e}"))?;
        Ok((status, bytes_vec::Body(body.to_vec())))
    }

    /// GET `path` and require a 2xx; returns the body length.
    async fn get_ok(&self, path: &str) -> Result<usize, String> {
        let (status, body) = self.send(self.req(reqwest::Method::GET, path)).await?;
        if (200..300).contains(&status) {
            Ok(body.0.len())
        } else {
            Err(format!("GET {path}: {status} {}", body.snippet()))
        }
    }

    /// One token by the client credentials grant.
    async fn token(&self, url: &str, id: &str, secret: &str) -> Result<(), String> {
        let r = self
            .http
            .post(url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", secret),
            ])
            .send()
            .await
            .map_err(|e| format!("POST {url}: {e}"))?;
        let status = r.status();
        let body = r.bytes().await.map_err(|e| format!("POST {url}: {e}"))?;
        if status.is_success() && body.windows(12).any(|w| w == b"access_token") {
            Ok(())
        } else {
            Err(format!("POST {url}: {status}"))
        }
    }

    async fn post_json(&self, path: &str, body: &Value) -> Result<(u16, bytes_vec::Body), String> {
        self.send(self.req(reqwest::Method::POST, path).json(body))
            .await
    }

    async fn create_namespace(&self, name: &str) -> Result<(), String> {
        let body = json!({ "namespace": [name], "properties": { "owner": "serac-bench" } });
        let (status, resp) = self.post_json("namespaces", &body).await?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(format!(
                "POST namespaces {name}: {status} {}",
                resp.snippet()
            ))
        }
    }

    async fn create_table(&self, ns: &str, name: &str) -> Result<TableState> {
        let body = json!({
            "name": name,
            "schema": {
                "type": "struct",
                "schema-id": 0,
                "fields": [
                    { "id": 1, "name": "id", "required": true, "type": "long" },
                    { "id": 2, "name": "data", "required": false, "type": "string" },
                    { "id": 3, "name": "ts", "required": false, "type": "timestamptz" }
                ]
            },
            "properties": { "format-version": "2" }
        });
        let path = format!("namespaces/{ns}/tables");
        let (status, resp) = self.post_json(&path, &body).await.map_err(|e| anyhow!(e))?;
        if !(200..300).contains(&status) {
            bail!("POST {path} ({name}): {status} {}", resp.snippet());
        }
        let r: TableResponse = resp
            .parse()
            .with_context(|| format!("parsing create-table response for {ns}.{name}"))?;
        Ok(TableState::from_meta(&r.metadata))
    }

    async fn load_table(&self, ns: &str, t: &str, snapshots: Option<&str>) -> Result<Meta, String> {
        let path = match snapshots {
            Some(s) => format!("namespaces/{ns}/tables/{t}?snapshots={s}"),
            None => format!("namespaces/{ns}/tables/{t}"),
        };
        let (status, body) = self.send(self.req(reqwest::Method::GET, &path)).await?;
        if status != 200 {
            return Err(format!("GET {path}: {status} {}", body.snippet()));
        }
        body.parse::<TableResponse>()
            .map(|r| r.metadata)
            .map_err(|e| format!("GET {path}: bad body: {e:#}"))
    }

    /// One load of `t`, described: response size, storage credentials and signer settings.
    async fn describe_load(&self, ns: &str, t: &str) -> Result<String, String> {
        let path = format!("namespaces/{ns}/tables/{t}");
        let (status, body) = self.send(self.req(reqwest::Method::GET, &path)).await?;
        if status != 200 {
            return Err(format!("GET {path}: {status} {}", body.snippet()));
        }
        let value: serde_json::Value = body
            .parse()
            .map_err(|e| format!("GET {path}: bad body: {e:#}"))?;
        let credentials = value["storage-credentials"]
            .as_array()
            .map_or(0, |entries| entries.len());
        let signing = value["config"]["s3.remote-signing-enabled"] == "true";
        Ok(format!(
            "loading {t} answers {} bytes, {credentials} storage-credentials entr{}{}",
            body.0.len(),
            if credentials == 1 { "y" } else { "ies" },
            if signing {
                ", remote signing enabled"
            } else {
                ""
            }
        ))
    }

    /// Lists the tables of `ns`, page after page; returns their names.
    async fn list_tables(&self, ns: &str) -> Result<Vec<String>, String> {
        #[derive(Deserialize)]
        struct Ident {
            name: String,
        }
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            identifiers: Vec<Ident>,
            #[serde(default, rename = "next-page-token")]
            next_page_token: Option<String>,
        }
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut rb = self.req(reqwest::Method::GET, &format!("namespaces/{ns}/tables"));
            if let Some(t) = &token {
                rb = rb.query(&[("pageToken", t)]);
            }
            let (status, body) = self.send(rb).await?;
            if status != 200 {
                return Err(format!(
                    "GET namespaces/{ns}/tables: {status} {}",
                    body.snippet()
                ));
            }
            let page: Page = body
                .parse()
                .map_err(|e| format!("GET namespaces/{ns}/tables: bad body: {e:#}"))?;
            names.extend(page.identifiers.into_iter().map(|i| i.name));
            match page.next_page_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => return Ok(names),
            }
        }
    }

    async fn commit(&self, ns: &str, t: &str, body: &Value) -> Commit {
        let path = format!("namespaces/{ns}/tables/{t}");
        match self.post_json(&path, body).await {
            Err(e) => Commit::Failed(e),
            Ok((200, resp)) => match resp.parse::<TableResponse>() {
                Ok(r) => Commit::Ok(r.metadata),
                Err(e) => Commit::Failed(format!("POST {path}: 200 with bad body: {e:#}")),
            },
            Ok((409, resp)) => Commit::Conflict(resp.snippet()),
            Ok((status, resp)) => {
                Commit::Failed(format!("POST {path}: {status} {}", resp.snippet()))
            }
        }
    }
}

mod bytes_vec {
    /// A response body.
    pub struct Body(pub Vec<u8>);

    impl Body {
        pub fn snippet(&self) -> String {
            let s = String::from_utf8_lossy(&self.0);
            let s = s.trim();
            if s.chars().count() > 400 {
                format!("{}...", s.chars().take(400).collect::<String>())
            } else {
                s.to_string()
            }
        }

        pub fn parse<T: serde::de::DeserializeOwned>(&self) -> anyhow::Result<T> {
            serde_json::from_slice(&self.0).map_err(|e| anyhow::anyhow!("{e}: {}", self.snippet()))
        }
    }
}

// ---------------------------------------------------------------------------
// Table metadata (only the fields the bench needs; the rest is skipped)

#[derive(Deserialize)]
struct TableResponse {
    metadata: Meta,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "kebab-case")]
struct Meta {
    location: String,
    #[serde(default)]
    last_sequence_number: i64,
    #[serde(default)]
    last_updated_ms: i64,
    #[serde(default)]
    current_snapshot_id: Option<i64>,
    #[serde(default)]
    refs: HashMap<String, SnapRef>,
    #[serde(default)]
    snapshots: Vec<Snap>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "kebab-case")]
struct SnapRef {
    snapshot_id: i64,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "kebab-case")]
struct Snap {
    snapshot_id: i64,
    #[serde(default)]
    parent_snapshot_id: Option<i64>,
    #[serde(default)]
    timestamp_ms: i64,
}

impl Meta {
    fn main(&self) -> Option<i64> {
        match self.refs.get("main") {
            Some(r) => Some(r.snapshot_id),
            // Tolerate servers that omit `refs` but set current-snapshot-id.
            None if self.refs.is_empty() => self.current_snapshot_id.filter(|id| *id >= 0),
            None => None,
        }
    }
}

/// What a writer needs to know to build the next append.
#[derive(Debug, Clone)]
struct TableState {
    location: String,
    main: Option<i64>,
    last_seq: i64,
    /// Timestamp of the current main snapshot (or last-updated-ms).
    prev_ts: i64,
}

impl TableState {
    fn from_meta(m: &Meta) -> Self {
        let main = m.main();
        let prev_ts = main
            .and_then(|id| m.snapshots.iter().find(|s| s.snapshot_id == id))
            .map(|s| s.timestamp_ms)
            .unwrap_or(m.last_updated_ms);
        TableState {
            location: m.location.clone(),
            main,
            last_seq: m.last_sequence_number,
            prev_ts,
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A random positive 63-bit snapshot id.
fn new_snapshot_id() -> i64 {
    loop {
        let id = (uuid::Uuid::new_v4().as_u128() >> 65) as i64;
        if id > 0 {
            return id;
        }
    }
}

/// Build an append commit (add-snapshot + set-snapshot-ref main) on top of `st`.
/// Returns the body, the new snapshot id and its timestamp.
fn append_body(st: &TableState) -> (Value, i64, i64) {
    let id = new_snapshot_id();
    let ts = now_ms().max(st.prev_ts + 1);
    let mut snap = Map::new();
    snap.insert("snapshot-id".into(), json!(id));
    if let Some(p) = st.main {
        snap.insert("parent-snapshot-id".into(), json!(p));
    }
    snap.insert("sequence-number".into(), json!(st.last_seq + 1));
    snap.insert("timestamp-ms".into(), json!(ts));
    snap.insert(
        "manifest-list".into(),
        json!(format!(
            "{}/metadata/snap-{id}-1-{}.avro",
            st.location.trim_end_matches('/'),
            uuid::Uuid::new_v4()
        )),
    );
    snap.insert("summary".into(), json!({ "operation": "append" }));
    snap.insert("schema-id".into(), json!(0));
    let body = json!({
        "requirements": [
            { "type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": st.main }
        ],
        "updates": [
            { "action": "add-snapshot", "snapshot": Value::Object(snap) },
            { "action": "set-snapshot-ref", "ref-name": "main", "type": "branch", "snapshot-id": id }
        ]
    });
    (body, id, ts)
}

/// What [`fill`] did.
struct Filled {
    state: TableState,
    ids: Vec<i64>,
    /// Latency of each commit.
    lat: Vec<Duration>,
    took: Duration,
}

/// Append `n` snapshots one commit at a time. Any failure is fatal (setup).
async fn fill(b: &Bench, ns: &str, t: &str, mut st: TableState, n: usize) -> Result<Filled> {
    let start = Instant::now();
    let mut ids = Vec::with_capacity(n);
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let (body, id, ts) = append_body(&st);
        let t0 = Instant::now();
        match b.commit(ns, t, &body).await {
            Commit::Ok(m) => {
                lat.push(t0.elapsed());
                let mut next = TableState::from_meta(&m);
                next.prev_ts = next.prev_ts.max(ts);
                if next.main != Some(id) {
                    bail!(
                        "commit {i} on {ns}.{t}: response main ref is {:?}, expected {id}",
                        next.main
                    );
                }
                st = next;
                ids.push(id);
            }
            Commit::Conflict(e) => bail!("commit {i} on {ns}.{t}: unexpected 409 {e}"),
            Commit::Failed(e) => bail!("commit {i} on {ns}.{t}: {e}"),
        }
        if n >= 500 && (i + 1) % 500 == 0 && i + 1 < n {
            eprintln!(
                "  .. {}/{n} snapshots in {:.1} s",
                i + 1,
                start.elapsed().as_secs_f64()
            );
        }
    }
    Ok(Filled {
        state: st,
        ids,
        lat,
        took: start.elapsed(),
    })
}

// ---------------------------------------------------------------------------
// Scenario runner

#[derive(Default)]
struct Stats {
    lat: Vec<Duration>,
    errors: u64,
    retries: u64,
    first_error: Option<String>,
    /// Snapshot ids acknowledged with 200 (commit scenarios).
    acked: Vec<i64>,
}

impl Stats {
    fn error(&mut self, e: String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e);
        }
    }

    fn merge(&mut self, o: Stats) {
        self.lat.extend(o.lat);
        self.errors += o.errors;
        self.retries += o.retries;
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
        self.acked.extend(o.acked);
    }
}

struct Row {
    scenario: String,
    concurrency: usize,
    ops: usize,
    elapsed: Duration,
    rate: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
    errors: u64,
    retries: Option<u64>,
    first_error: Option<String>,
    /// Server RSS after the row (with --server-pid).
    rss_kib: Option<u64>,
    /// Further fields for the JSON output.
    extra: Map<String, Value>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Spawn `n` workers (tokio tasks) that all stop starting new operations at
/// `start + dur`, and aggregate their stats.
async fn run_workers<F, Fut>(n: usize, dur: Duration, mk: F) -> (Stats, Duration)
where
    F: Fn(usize, Instant) -> Fut,
    Fut: Future<Output = Stats> + Send + 'static,
{
    let start = Instant::now();
    let deadline = start + dur;
    let handles: Vec<_> = (0..n).map(|i| tokio::spawn(mk(i, deadline))).collect();
    let mut total = Stats::default();
    for h in join_all(handles).await {
        match h {
            Ok(s) => total.merge(s),
            Err(e) => total.error(format!("worker panicked: {e}")),
        }
    }
    (total, start.elapsed())
}

fn make_row(
    scenario: &str,
    concurrency: usize,
    mut s: Stats,
    elapsed: Duration,
    with_retries: bool,
) -> (Row, Vec<i64>) {
    s.lat.sort_unstable();
    let ops = s.lat.len();
    let row = Row {
        scenario: scenario.to_string(),
        concurrency,
        ops,
        elapsed,
        rate: ops as f64 / elapsed.as_secs_f64().max(1e-9),
        p50: percentile(&s.lat, 50.0),
        p99: percentile(&s.lat, 99.0),
        max: s.lat.last().copied().unwrap_or_default(),
        errors: s.errors,
        retries: with_retries.then_some(s.retries),
        first_error: s.first_error,
        rss_kib: None,
        extra: Map::new(),
    };
    (row, s.acked)
}

/// Stateless request kinds for the read/namespace scenarios.
#[derive(Clone)]
enum Op {
    Get(String),
    /// The client credentials grant: (token endpoint URL, client id, secret).
    Token(String, String, String),
    /// List the tables of a namespace, following `next-page-token`.
    ListTables(String),
    CreateNamespace(String),
}

async fn simple_worker(b: Arc<Bench>, op: Op, worker: usize, deadline: Instant) -> Stats {
    let mut st = Stats::default();
    let mut k: u64 = 0;
    while Instant::now() < deadline {
        let t0 = Instant::now();
        let r = match &op {
            Op::Get(path) => b.get_ok(path).await.map(|_| ()),
            Op::Token(url, id, secret) => b.token(url, id, secret).await,
            Op::ListTables(ns) => b.list_tables(ns).await.map(|_| ()),
            // Worker + counter + a random suffix: unique across levels and runs.
            Op::CreateNamespace(prefix) => {
                let rnd = &uuid::Uuid::new_v4().simple().to_string()[..8];
                b.create_namespace(&format!("{prefix}_{worker}_{k}_{rnd}"))
                    .await
            }
        };
        k += 1;
        match r {
            Ok(()) => st.lat.push(t0.elapsed()),
            Err(e) => st.error(e),
        }
    }
    st
}

/// Uncontended appends: this worker owns `table`; it loads it once, then
/// chains commits using the state returned by each commit response.
async fn own_table_writer(b: Arc<Bench>, ns: String, table: String, deadline: Instant) -> Stats {
    let mut st = Stats::default();
    let mut state = None;
    while Instant::now() < deadline {
        let cur = match state.take() {
            Some(s) => s,
            None => match b.load_table(&ns, &table, Some("refs")).await {
                Ok(m) => TableState::from_meta(&m),
                Err(e) => {
                    st.error(e);
                    continue;
                }
            },
        };
        let (body, id, ts) = append_body(&cur);
        let t0 = Instant::now();
        match b.commit(&ns, &table, &body).await {
            Commit::Ok(m) => {
                st.lat.push(t0.elapsed());
                st.acked.push(id);
                let mut next = TableState::from_meta(&m);
                next.prev_ts = next.prev_ts.max(ts);
                if next.main != Some(id) {
                    st.error(format!(
                        "{ns}.{table}: commit of {id} returned main={:?}",
                        next.main
                    ));
                    continue; // reload
                }
                state = Some(next);
            }
            Commit::Conflict(e) => {
                st.retries += 1;
                st.error(format!(
                    "{ns}.{table}: unexpected 409 without contention: {e}"
                ));
            }
            Commit::Failed(e) => st.error(e),
        }
    }
    st
}

/// Contended appends on one shared table: load, commit with
/// assert-ref-snapshot-id, on 409 reload and retry. Latency is measured from
/// the first attempt to the successful commit.
async fn contended_writer(
    b: Arc<Bench>,
    ns: String,
    table: String,
    deadline: Instant,
    grace: Duration,
) -> Stats {
    let mut st = Stats::default();
    'outer: while Instant::now() < deadline {
        let t0 = Instant::now();
        loop {
            let cur = match b.load_table(&ns, &table, Some("refs")).await {
                Ok(m) => TableState::from_meta(&m),
                Err(e) => {
                    st.error(e);
                    continue 'outer;
                }
            };
            let (body, id, _ts) = append_body(&cur);
            match b.commit(&ns, &table, &body).await {
                Commit::Ok(m) => {
                    st.lat.push(t0.elapsed());
                    st.acked.push(id);
                    if m.main() != Some(id) {
                        st.error(format!(
                            "commit of {id} answered 200 but main is {:?}",
                            m.main()
                        ));
                    }
                    continue 'outer;
                }
                Commit::Conflict(_) => st.retries += 1,
                Commit::Failed(e) => {
                    st.error(e);
                    continue 'outer;
                }
            }
            if Instant::now() > deadline + grace {
                st.error("gave up: still conflicting after the grace period".into());
                break 'outer;
            }
        }
    }
    st
}

/// Creates the tables `names` in `ns`, 8 at a time; returns how long it took.
async fn create_tables(b: &Arc<Bench>, ns: &str, names: Vec<String>) -> Result<Duration> {
    const PARALLEL: usize = 8;
    let start = Instant::now();
    let names = Arc::new(names);
    let tasks = (0..PARALLEL).map(|w| {
        let (b, ns, names) = (b.clone(), ns.to_string(), names.clone());
        tokio::spawn(async move {
            for t in names.iter().skip(w).step_by(PARALLEL) {
                b.create_table(&ns, t)
                    .await
                    .with_context(|| format!("setup: create {ns}.{t}"))?;
            }
            anyhow::Ok(())
        })
    });
    for done in join_all(tasks).await {
        done.context("setup: a create task panicked")??;
    }
    Ok(start.elapsed())
}

/// Checks that the catalog serves an existing namespace (one seeded into its database, say):
/// lists it, loads its first table, commits one append to that table and creates a table in
/// it. Returns a line for the report.
async fn check_namespace(b: &Bench, ns: &str, run_id: &str) -> Result<String> {
    let names = b.list_tables(ns).await.map_err(|e| anyhow!(e))?;
    let first = names
        .first()
        .ok_or_else(|| anyhow!("namespace {ns} holds no table"))?;
    let bytes = b
        .get_ok(&format!("namespaces/{ns}/tables/{first}"))
        .await
        .map_err(|e| anyhow!(e))?;
    let m = b
        .load_table(ns, first, Some("refs"))
        .await
        .map_err(|e| anyhow!(e))?;
    let commit = fill(b, ns, first, TableState::from_meta(&m), 1)
        .await
        .with_context(|| format!("commit to {ns}.{first}"))?;
    // Created and dropped again: the namespace keeps the tables it had for list-tables.
    let created = format!("bench_{run_id}");
    b.create_table(ns, &created).await?;
    let path = format!("namespaces/{ns}/tables/{created}");
    let (status, body) = b
        .send(b.req(reqwest::Method::DELETE, &path))
        .await
        .map_err(|e| anyhow!(e))?;
    if !(200..300).contains(&status) {
        bail!("DELETE {path}: {status} {}", body.snippet());
    }
    Ok(format!(
        "{ns}: listed {} tables, loaded {first} ({bytes} bytes), committed an append to it \
         ({:.1} ms), created and dropped {ns}.{created}",
        names.len(),
        commit.took.as_secs_f64() * 1000.0
    ))
}

/// commit-history: one table is filled to each size of --history (untimed), then
/// --history-commits sequential appends are timed there (one row per size). Returns the
/// number of acknowledged commits missing from the table afterwards.
async fn commit_history(
    b: &Bench,
    ns: &str,
    args: &Args,
    report: &mut dyn FnMut(Row),
    info: &mut Vec<String>,
) -> Result<usize> {
    let t = "t_history";
    let mut state = b.create_table(ns, t).await?;
    let mut have = 0;
    let mut acked = Vec::new();
    let mut sizes = args.history.clone();
    sizes.sort_unstable();
    sizes.dedup();
    for size in sizes {
        if size > have {
            let filled = fill(b, ns, t, state, size - have)
                .await
                .with_context(|| format!("filling {t} to {size} snapshots"))?;
            let msg = format!(
                "commit-history: filled {t} to {size} snapshots in {:.2} s",
                filled.took.as_secs_f64()
            );
            eprintln!("  {msg}");
            info.push(msg);
            state = filled.state;
            acked.extend(filled.ids);
            have = size;
        }
        let bytes = b
            .get_ok(&format!("namespaces/{ns}/tables/{t}"))
            .await
            .map_err(|e| anyhow!(e))?;
        let msg = format!("commit-history: at {have} snapshots, loading {t} answers {bytes} bytes");
        eprintln!("  {msg}");
        info.push(msg);
        let timed = fill(b, ns, t, state, args.history_commits)
            .await
            .with_context(|| format!("timed commits at {have} snapshots"))?;
        acked.extend(timed.ids.iter().copied());
        let stats = Stats {
            lat: timed.lat,
            acked: timed.ids,
            ..Stats::default()
        };
        let label = format!("commit @{} snaps", format_count(have));
        let (mut row, _) = make_row(&label, 1, stats, timed.took, true);
        row.extra.insert("snapshots".into(), json!(have));
        row.extra.insert("metadata_bytes".into(), json!(bytes));
        report(row);
        state = timed.state;
        have += args.history_commits;
    }
    let v = verify(b, ns, t, &acked).await.context("verify")?;
    let msg = format!(
        "commit-history: {} acknowledged, lost commits: {}",
        v.acked,
        v.lost()
    );
    eprintln!("verify: {msg}");
    info.push(msg);
    Ok(v.lost())
}

// ---------------------------------------------------------------------------
// Verification

struct Verify {
    acked: usize,
    snapshots: usize,
    ancestry: usize,
    missing_in_list: Vec<i64>,
    missing_in_ancestry: Vec<i64>,
}

impl Verify {
    fn lost(&self) -> usize {
        let mut lost: HashSet<i64> = self.missing_in_list.iter().copied().collect();
        lost.extend(self.missing_in_ancestry.iter().copied());
        lost.len()
    }
}

/// Load `ns.t` with snapshots=all and check every acknowledged id is in the
/// snapshot list and in the ancestry of main.
async fn verify(b: &Bench, ns: &str, t: &str, acked: &[i64]) -> Result<Verify> {
    let m = b
        .load_table(ns, t, Some("all"))
        .await
        .map_err(|e| anyhow!(e))?;
    let by_id: HashMap<i64, &Snap> = m.snapshots.iter().map(|s| (s.snapshot_id, s)).collect();
    let mut ancestry = HashSet::new();
    let mut cur = m.main();
    while let Some(id) = cur {
        if !ancestry.insert(id) {
            bail!("{ns}.{t}: cycle in snapshot ancestry at {id}");
        }
        cur = by_id.get(&id).and_then(|s| s.parent_snapshot_id);
    }
    Ok(Verify {
        acked: acked.len(),
        snapshots: m.snapshots.len(),
        ancestry: ancestry.len(),
        missing_in_list: acked
            .iter()
            .copied()
            .filter(|id| !by_id.contains_key(id))
            .collect(),
        missing_in_ancestry: acked
            .iter()
            .copied()
            .filter(|id| !ancestry.contains(id))
            .collect(),
    })
}

// ---------------------------------------------------------------------------
// Output

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn render_table(rows: &[Row]) -> String {
    let with_rss = rows.iter().any(|r| r.rss_kib.is_some());
    let mut header = vec![
        "scenario",
        "conc",
        "ops",
        "req/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "errors",
        "409 retries",
    ];
    if with_rss {
        header.push("rss MiB");
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut cells = vec![
                r.scenario.clone(),
                r.concurrency.to_string(),
                r.ops.to_string(),
                format!("{:.1}", r.rate),
                ms(r.p50),
                ms(r.p99),
                ms(r.max),
                r.errors.to_string(),
                r.retries
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "-".into()),
            ];
            if with_rss {
                cells.push(r.rss_kib.map_or_else(|| "-".into(), procfs::mib));
            }
            cells
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cols: Vec<&str>| -> String {
        let mut s = String::new();
        for (i, (c, w)) in cols.iter().zip(&widths).enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            if i == 0 {
                let _ = write!(s, "{c:<w$}");
            } else {
                let _ = write!(s, "{c:>w$}");
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header);
    out += &line(
        widths
            .iter()
            .map(|w| &"------------------------------------------------------------"[..*w])
            .collect(),
    );
    for row in &cells {
        out += &line(row.iter().map(|s| s.as_str()).collect());
    }
    out
}

fn row_json(r: &Row) -> Value {
    let mut row = json!({
        "scenario": r.scenario,
        "concurrency": r.concurrency,
        "ops": r.ops,
        "elapsed_s": r.elapsed.as_secs_f64(),
        "req_per_s": r.rate,
        "p50_ms": r.p50.as_secs_f64() * 1000.0,
        "p99_ms": r.p99.as_secs_f64() * 1000.0,
        "max_ms": r.max.as_secs_f64() * 1000.0,
        "errors": r.errors,
        "retries_409": r.retries,
        "first_error": r.first_error,
        "rss_mib": r.rss_kib.map(|k| k as f64 / 1024.0),
    });
    if let Value::Object(fields) = &mut row {
        fields.extend(r.extra.clone());
    }
    row
}

// ---------------------------------------------------------------------------

fn main() {
    // The server's runtime settings: with tokio's defaults the generator's own 10,000
    // connection tasks were served unfairly, and the connections scenario measured the
    // generator's queueing as the server's latency.
    let runtime = serac::server::fair_runtime()
        .build()
        .expect("the load generator's runtime");
    runtime.block_on(generate());
}

async fn generate() {
    let args = Args::parse();
    match run(args).await {
        Ok(0) => {}
        Ok(lost) => {
            eprintln!("FAILED: {lost} acknowledged commit(s) lost");
            std::process::exit(2);
        }
        Err(e) => {
            eprintln!("FAILED: {e:#}");
            std::process::exit(1);
        }
    }
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs setup and all scenarios; returns the number of lost commits.
async fn run(args: Args) -> Result<usize> {
    if args.concurrency.is_empty() || args.concurrency.contains(&0) {
        bail!("--concurrency must be a list of positive integers");
    }
    if args.duration.is_nan() || args.duration <= 0.0 {
        bail!("--duration must be positive");
    }
    let scenarios = args
        .scenarios
        .clone()
        .unwrap_or_else(|| ALL_SCENARIOS.to_vec());
    let want = |s: Scenario| scenarios.contains(&s);
    let dur = Duration::from_secs_f64(args.duration);
    let max_conc = *args.concurrency.iter().max().unwrap();
    if want(Scenario::CommitHistory) && (args.history.is_empty() || args.history_commits == 0) {
        bail!("--history needs at least one size and --history-commits must be positive");
    }
    let mut info: Vec<String> = args.note.clone();
    let mut warnings: Vec<String> = Vec::new();
    let mut connections_ok = want(Scenario::Connections);
    if connections_ok {
        if args.connections == 0 {
            bail!("--connections must be positive");
        }
        match connections::check_limits(args.connections, args.server_pid) {
            Ok(notes) => {
                for n in notes {
                    eprintln!("connections: {n}");
                    match n.strip_prefix("WARNING: ") {
                        Some(w) => warnings.push(w.to_string()),
                        None => info.push(format!("connections: {n}")),
                    }
                }
            }
            // Asked for by name: fail; part of the default set: skip it and say why.
            Err(msg) if args.scenarios.is_some() => bail!("connections: {msg}"),
            Err(msg) => {
                eprintln!("connections: skipped: {msg}");
                warnings.push(format!("connections scenario skipped: {msg}"));
                connections_ok = false;
            }
        }
    }
    // Sampling starts before anything is sent: the first reading is the idle server.
    let memory = args
        .server_pid
        .map(|pid| procfs::Memory::start(pid, Duration::from_millis(500)))
        .transpose()?;

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.pool)
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs_f64(args.timeout))
        .build()
        .context("building HTTP client")?;
    let uri = args.uri.trim_end_matches('/').to_string();
    let _scraper = (args.scrape_every > 0.0).then(|| {
        let (http, url) = (http.clone(), format!("{uri}/metrics"));
        let every = Duration::from_secs_f64(args.scrape_every);
        eprintln!("scraping {url} every {every:?}");
        AbortOnDrop(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                match http.get(&url).send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                    }
                    other => eprintln!("scrape failed: {other:?}"),
                }
            }
        }))
    });
    let base = match args.prefix.as_deref().map(|p| p.trim_matches('/')) {
        Some(p) if !p.is_empty() => format!("{uri}/v1/{p}"),
        _ => format!("{uri}/v1"),
    };
    let b = Arc::new(Bench {
        http,
        base,
        token: args.token.clone(),
    });

    // --- setup -------------------------------------------------------------
    let config_path = match &args.prefix {
        Some(_) => format!("{uri}/v1/config"),
        None => b.url("config"),
    };
    let mut cfg_req = b.http.get(&config_path);
    if let Some(t) = &b.token {
        cfg_req = cfg_req.bearer_auth(t);
    }
    let cfg = cfg_req
        .send()
        .await
        .with_context(|| format!("GET {config_path}: is the server running?"))?;
    if !cfg.status().is_success() {
        bail!("GET {config_path}: {}", cfg.status());
    }

    let run_id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    let ns = format!("bench_{run_id}");
    eprintln!("setup: namespace {ns} on {uri}");
    b.create_namespace(&ns)
        .await
        .map_err(|e| anyhow!(e))
        .context("setup: create namespace")?;

    if want(Scenario::Load) {
        let st = b
            .create_table(&ns, "t_small")
            .await
            .context("setup: create t_small")?;
        let took = fill(&b, &ns, "t_small", st, args.snapshots)
            .await
            .context("setup: fill t_small")?
            .took;
        let msg = format!(
            "filled t_small with {} snapshots in {:.2} s ({:.0} commits/s)",
            args.snapshots,
            took.as_secs_f64(),
            args.snapshots as f64 / took.as_secs_f64().max(1e-9)
        );
        eprintln!("setup: {msg}");
        info.push(msg);
        // What every timed load answers: its size, and whether it carries storage
        // credentials (an S3 warehouse in vended or static mode) or signing settings.
        let msg = b
            .describe_load(&ns, "t_small")
            .await
            .map_err(|e| anyhow!(e))
            .context("setup: load t_small")?;
        eprintln!("setup: {msg}");
        info.push(msg);
    }
    if want(Scenario::LoadBig) {
        let st = b
            .create_table(&ns, "t_big")
            .await
            .context("setup: create t_big")?;
        eprintln!(
            "setup: filling t_big with {} snapshots ...",
            args.big_snapshots
        );
        let took = fill(&b, &ns, "t_big", st, args.big_snapshots)
            .await
            .context("setup: fill t_big")?
            .took;
        let msg = format!(
            "filled t_big with {} snapshots in {:.2} s ({:.0} commits/s)",
            args.big_snapshots,
            took.as_secs_f64(),
            args.big_snapshots as f64 / took.as_secs_f64().max(1e-9)
        );
        eprintln!("setup: {msg}");
        info.push(msg);
        // Sanity-check the snapshots= filter and record response sizes.
        for mode in ["refs", "all"] {
            let path = format!("namespaces/{ns}/tables/t_big?snapshots={mode}");
            let size = b
                .get_ok(&path)
                .await
                .map_err(|e| anyhow!(e))
                .context("setup: load t_big")?;
            let m = b
                .load_table(&ns, "t_big", Some(mode))
                .await
                .map_err(|e| anyhow!(e))?;
            info.push(format!(
                "t_big snapshots={mode}: {} snapshots, {size} bytes",
                m.snapshots.len()
            ));
            let expected = if mode == "refs" {
                1
            } else {
                args.big_snapshots
            };
            if m.snapshots.len() != expected {
                warnings.push(format!(
                    "GET .../tables/t_big?snapshots={mode} returned {} snapshots, expected {expected}",
                    m.snapshots.len()
                ));
            }
        }
    }
    let mut list_target = None;
    if want(Scenario::ListTables) {
        let list_ns = match &args.list_namespace {
            Some(list_ns) => {
                let msg = check_namespace(&b, list_ns, &run_id)
                    .await
                    .with_context(|| format!("setup: check namespace {list_ns}"))?;
                eprintln!("setup: {msg}");
                info.push(msg);
                list_ns.clone()
            }
            None => {
                let list_ns = format!("{ns}_list");
                b.create_namespace(&list_ns)
                    .await
                    .map_err(|e| anyhow!(e))
                    .context("setup: create the namespace to list")?;
                eprintln!("setup: creating {} tables in {list_ns}", args.list_tables);
                let names = (0..args.list_tables).map(|i| format!("t_{i:05}")).collect();
                let took = create_tables(&b, &list_ns, names).await?;
                let msg = format!(
                    "created {} tables in {list_ns} in {:.2} s",
                    args.list_tables,
                    took.as_secs_f64()
                );
                eprintln!("setup: {msg}");
                info.push(msg);
                list_ns
            }
        };
        let listed = b
            .list_tables(&list_ns)
            .await
            .map_err(|e| anyhow!(e))
            .context("setup: list tables")?
            .len();
        if args.list_namespace.is_none() && listed != args.list_tables {
            warnings.push(format!(
                "GET namespaces/{list_ns}/tables listed {listed} tables, expected {}",
                args.list_tables
            ));
        }
        list_target = Some((list_ns, listed));
    }
    let mut own_tables = Vec::new();
    if want(Scenario::Commit) {
        eprintln!("setup: creating {max_conc} tables for uncontended commits");
        own_tables = (0..max_conc).map(|i| format!("t_own_{i}")).collect();
        create_tables(&b, &ns, own_tables.clone()).await?;
    }
    if want(Scenario::CommitContended) {
        b.create_table(&ns, "t_shared")
            .await
            .context("setup: create t_shared")?;
    }

    // --- scenarios ---------------------------------------------------------
    let mut rows: Vec<Row> = Vec::new();
    let mut lost_total = 0usize;
    let report = |mut row: Row, rows: &mut Vec<Row>| {
        if row.rss_kib.is_none() {
            row.rss_kib = memory.as_ref().and_then(procfs::Memory::rss_kib);
        }
        eprintln!(
            "  {:<28} conc {:>4}: {:>8} ops  {:>10.1} req/s  p50 {:>8} ms  p99 {:>8} ms  errors {}{}",
            row.scenario,
            row.concurrency,
            row.ops,
            row.rate,
            ms(row.p50),
            ms(row.p99),
            row.errors,
            row.rss_kib
                .map(|k| format!("  rss {} MiB", procfs::mib(k)))
                .unwrap_or_default()
        );
        rows.push(row);
    };

    let big = format_count(args.big_snapshots);
    let mut simple: Vec<(Scenario, String, Op)> = vec![
        (
            Scenario::Load,
            format!("load table ({} snaps)", args.snapshots),
            Op::Get(format!("namespaces/{ns}/tables/t_small")),
        ),
        (
            Scenario::LoadBig,
            format!("load {big} snaps, refs"),
            Op::Get(format!("namespaces/{ns}/tables/t_big?snapshots=refs")),
        ),
        (
            Scenario::LoadBig,
            format!("load {big} snaps, all"),
            Op::Get(format!("namespaces/{ns}/tables/t_big?snapshots=all")),
        ),
        (
            Scenario::ListNamespaces,
            "list namespaces".into(),
            Op::Get("namespaces".into()),
        ),
    ];
    if let Some((list_ns, listed)) = &list_target {
        simple.push((
            Scenario::ListTables,
            format!("list tables ({})", format_count(*listed)),
            Op::ListTables(list_ns.clone()),
        ));
    }
    if let Some((id, secret)) = args
        .client_credentials
        .as_deref()
        .and_then(|c| c.split_once(':'))
    {
        simple.push((
            Scenario::Token,
            "issue token".into(),
            Op::Token(
                format!("{uri}/v1/oauth/tokens"),
                id.to_owned(),
                secret.to_owned(),
            ),
        ));
    }
    simple.push((
        Scenario::CreateNamespace,
        "create namespace".into(),
        Op::CreateNamespace(format!("{ns}_n")),
    ));
    for (sc, label, op) in simple {
        if !want(sc) {
            continue;
        }
        eprintln!("scenario: {label}");
        for &c in &args.concurrency {
            let (b2, op2) = (b.clone(), op.clone());
            let (stats, elapsed) = run_workers(c, dur, move |i, deadline| {
                simple_worker(b2.clone(), op2.clone(), i, deadline)
            })
            .await;
            report(make_row(&label, c, stats, elapsed, false).0, &mut rows);
        }
    }

    if want(Scenario::Commit) {
        eprintln!("scenario: commit, one table per client");
        let mut all: Vec<i64> = Vec::new();
        for &c in &args.concurrency {
            let (b2, ns2, tables) = (b.clone(), ns.clone(), own_tables.clone());
            let (stats, elapsed) = run_workers(c, dur, move |i, deadline| {
                own_table_writer(b2.clone(), ns2.clone(), tables[i].clone(), deadline)
            })
            .await;
            let (row, ids) = make_row("commit (own table)", c, stats, elapsed, true);
            all.extend(ids);
            report(row, &mut rows);
        }
        // Verify: every acknowledged id must be in its table's snapshot list and
        // main ancestry. Snapshot ids are random 63-bit values, so checking
        // against the union over all own tables is as good as per table.
        let mut present_list = HashSet::new();
        let mut present_anc = HashSet::new();
        for t in &own_tables {
            let m = b
                .load_table(&ns, t, Some("all"))
                .await
                .map_err(|e| anyhow!(e))
                .context("verify")?;
            let by_id: HashMap<i64, &Snap> =
                m.snapshots.iter().map(|s| (s.snapshot_id, s)).collect();
            present_list.extend(by_id.keys().copied());
            let mut cur = m.main();
            let mut seen = HashSet::new();
            while let Some(id) = cur {
                if !seen.insert(id) {
                    bail!("{ns}.{t}: cycle in snapshot ancestry at {id}");
                }
                cur = by_id.get(&id).and_then(|s| s.parent_snapshot_id);
            }
            present_anc.extend(seen);
        }
        let lost: Vec<i64> = all
            .iter()
            .copied()
            .filter(|id| !present_list.contains(id) || !present_anc.contains(id))
            .collect();
        let msg = format!(
            "commit (own table): {} acknowledged, lost commits: {}",
            all.len(),
            lost.len()
        );
        eprintln!("verify: {msg}");
        info.push(msg);
        if !lost.is_empty() {
            eprintln!(
                "verify: LOST snapshot ids (first 10): {:?}",
                &lost[..lost.len().min(10)]
            );
        }
        lost_total += lost.len();
    }

    if want(Scenario::CommitContended) {
        let w = args.writers;
        eprintln!("scenario: commit, {w} writers on one table");
        let (b2, ns2) = (b.clone(), ns.clone());
        let grace = Duration::from_secs(30).max(dur);
        let (stats, elapsed) = run_workers(w, dur, move |_, deadline| {
            contended_writer(b2.clone(), ns2.clone(), "t_shared".into(), deadline, grace)
        })
        .await;
        let (row, ids) = make_row("commit (one shared table)", w, stats, elapsed, true);
        report(row, &mut rows);
        let v = verify(&b, &ns, "t_shared", &ids)
            .await
            .context("verify t_shared")?;
        let msg = format!(
            "commit contended: {} acknowledged, {} snapshots in table, {} in main ancestry, lost commits: {}",
            v.acked,
            v.snapshots,
            v.ancestry,
            v.lost()
        );
        eprintln!("verify: {msg}");
        info.push(msg);
        if v.lost() > 0 {
            eprintln!(
                "verify: LOST — missing from snapshots: {:?}; missing from main ancestry: {:?}",
                &v.missing_in_list[..v.missing_in_list.len().min(10)],
                &v.missing_in_ancestry[..v.missing_in_ancestry.len().min(10)]
            );
        }
        lost_total += v.lost();
    }

    if want(Scenario::CommitHistory) {
        eprintln!(
            "scenario: commit history, {} commits at {:?} snapshots",
            args.history_commits, args.history
        );
        let mut add = |row: Row| report(row, &mut rows);
        match commit_history(&b, &ns, &args, &mut add, &mut info).await {
            Ok(lost) => lost_total += lost,
            Err(e) => {
                eprintln!("commit-history failed: {e:#}");
                warnings.push(format!("commit-history failed: {e:#}"));
            }
        }
    }

    if connections_ok {
        // Close the pooled connections of the other scenarios first: they would count
        // against the server's connection limit (--max-connections, 10,000 by default).
        drop(b);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let n = args.connections;
        eprintln!("scenario: {n} connections, GET /v1/config on each");
        let settings = connections::Settings {
            uri: uri.clone(),
            token: args.token.clone(),
            connections: n,
            parallel: args.connect_parallel,
            duration: dur,
            timeout: Duration::from_secs_f64(args.timeout),
            server_pid: args.server_pid,
        };
        match connections::run(settings).await {
            Ok(o) => {
                if let Some(m) = &memory {
                    o.rss_open_kib
                        .into_iter()
                        .chain(o.rss_end_kib)
                        .for_each(|k| m.observe(k));
                }
                let mut msg = format!(
                    "connections: opened {} of {n} in {:.2} s, {} failed",
                    o.opened,
                    o.open_time.as_secs_f64(),
                    o.failed
                );
                if let Some(e) = &o.first_open_error {
                    let _ = write!(msg, " (first: {e})");
                }
                if let Some(kib) = o.rss_open_kib {
                    let _ = write!(msg, "; server RSS with all open {} MiB", procfs::mib(kib));
                }
                if let Some(files) = o.server_files_open {
                    let _ = write!(msg, ", {files} open files");
                }
                eprintln!("{msg}");
                info.push(msg);
                let label = format!("config, {} conns", format_count(n));
                let (mut row, _) = make_row(&label, o.opened, o.stats, o.elapsed, false);
                row.rss_kib = o.rss_end_kib;
                row.extra.insert("connections".into(), json!(n));
                row.extra.insert("opened".into(), json!(o.opened));
                row.extra.insert("open_failed".into(), json!(o.failed));
                row.extra
                    .insert("open_s".into(), json!(o.open_time.as_secs_f64()));
                row.extra.insert(
                    "rss_all_open_mib".into(),
                    json!(o.rss_open_kib.map(|k| k as f64 / 1024.0)),
                );
                row.extra
                    .insert("server_open_files".into(), json!(o.server_files_open));
                report(row, &mut rows);
            }
            Err(e) => {
                eprintln!("connections failed: {e:#}");
                warnings.push(format!("connections failed: {e:#}"));
            }
        }
    }

    let memory = memory.map(procfs::Memory::finish);
    if let Some(m) = &memory {
        eprintln!("{}", m.line());
        info.push(m.line());
    }

    // --- output ------------------------------------------------------------
    let mut text = String::new();
    let _ = writeln!(
        text,
        "\nSerac load benchmark — {uri}, {:.1} s per level",
        args.duration
    );
    if let Some(l) = &args.label {
        let _ = writeln!(text, "  {l}");
    }
    for i in &info {
        let _ = writeln!(text, "  {i}");
    }
    text.push('\n');
    text += &render_table(&rows);
    let errs: Vec<&Row> = rows.iter().filter(|r| r.first_error.is_some()).collect();
    if !errs.is_empty() {
        text += "\nfirst error per row:\n";
        for r in errs {
            let _ = writeln!(
                text,
                "  {} (conc {}): {}",
                r.scenario,
                r.concurrency,
                r.first_error.as_deref().unwrap_or("")
            );
        }
    }
    for w in &warnings {
        let _ = writeln!(text, "WARNING: {w}");
    }
    let _ = writeln!(text, "\nlost commits: {lost_total}");

    if args.json {
        eprint!("{text}");
        let doc = json!({
            "uri": uri,
            "label": args.label,
            "duration_s": args.duration,
            "info": info,
            "warnings": warnings,
            "results": rows.iter().map(row_json).collect::<Vec<_>>(),
            "server_memory": memory.as_ref().map(procfs::MemoryReport::json),
            "lost_commits": lost_total,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{text}");
    }
    Ok(lost_total)
}

fn format_count(n: usize) -> String {
    if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}
