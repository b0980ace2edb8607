//! The server as a process and its database as a process: a SIGTERM under load drains without
//! failing an admitted request, a PostgreSQL outage gives fast 503s and heals by itself, and
//! HTTPS with its certificate reloaded on SIGHUP (`lifecycle/tls.rs`), and purges that survive
//! a crash (`lifecycle/purge.rs`), and what an idle keep-alive connection costs in memory
//! (`lifecycle/connections.rs`).

mod common;
#[path = "lifecycle/connections.rs"]
mod connections;
#[path = "lifecycle/purge.rs"]
mod purge;
#[path = "lifecycle/tls.rs"]
mod tls;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use common::{Backend, TestApp, free_port};

/// Namespace `drain` with tables `t0`..`t{count-1}`.
async fn create_drain_tables(client: &reqwest::Client, base: &str, count: usize) {
    let r = client
        .post(format!("{base}/v1/namespaces"))
        .json(&json!({"namespace": ["drain"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    for t in 0..count {
        let r = client
            .post(format!("{base}/v1/namespaces/drain/tables"))
            .json(&json!({"name": format!("t{t}"), "schema": common::simple_schema()}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    wait_ready_every(client, base, Duration::from_millis(100)).await;
}

/// Waits up to 30 s for `/ready`, looking every `interval`.
async fn wait_ready_every(client: &reqwest::Client, base: &str, interval: Duration) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = client.get(format!("{base}/ready")).send().await
            && r.status() == StatusCode::OK
        {
            return;
        }
        tokio::time::sleep(interval).await;
    }
    panic!("{base} never became ready");
}

/// What one request of the load ended with, as the client saw it.
#[derive(Debug)]
struct Outcome {
    request_id: String,
    /// `None`: no HTTP response (connection refused or closed).
    status: Option<u16>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_admitted_requests_and_closes_feeds() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let log_path = dir.path().join("serac.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_serac"))
        .args(["--log-format", "json", "--log-level", "info", "serve"])
        .args(["--bind", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--shutdown-delay", "1s", "--drain-timeout", "20s"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("serac starts");
    let client = reqwest::Client::new();
    wait_ready(&client, &base).await;
    create_drain_tables(&client, &base, 8).await;
    let (mut feed, _) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/v1/events/stream"))
            .await
            .unwrap();

    // Eight writers commit without pause; each stops at its first request without a response.
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for t in 0..8 {
        let (base, stop) = (base.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let url = format!("{base}/v1/namespaces/drain/tables/t{t}");
            let mut outcomes = Vec::new();
            for i in 0.. {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let request_id = format!("drain-{t}-{i}");
                let commit = json!({"requirements": [], "updates": [
                    {"action": "set-properties", "updates": {"n": i.to_string()}}]});
                let sent = client
                    .post(&url)
                    .header("x-request-id", &request_id)
                    .json(&commit)
                    .send()
                    .await;
                let status = match sent {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        // A response counts only once its body arrived whole.
                        r.bytes().await.ok().map(|_| status)
                    }
                    Err(_) => None,
                };
                outcomes.push(Outcome { request_id, status });
                if status.is_none() {
                    break;
                }
            }
            outcomes
        }));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let signalled = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // During the shutdown delay the server still serves but reports unready.
    let mut saw_unready = false;
    while signalled.elapsed() < Duration::from_millis(900) {
        match client.get(format!("{base}/ready")).send().await {
            Ok(r) if r.status() == StatusCode::SERVICE_UNAVAILABLE => {
                let body: Value = r.json().await.unwrap();
                assert_eq!(body["error"]["type"], "ServiceUnavailableException");
                saw_unready = true;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    assert!(saw_unready, "/ready never answered 503 during the drain");

    // The change feed ends with a close frame "going away".
    let frame = loop {
        match tokio::time::timeout(Duration::from_secs(20), feed.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => break frame,
            Ok(Some(Ok(_))) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(u16::from(frame.expect("close code").code), 1001);

    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    stop.store(true, Ordering::SeqCst);
    assert!(status.success(), "serac exited with {status}");
    let mut outcomes = Vec::new();
    for w in writers {
        outcomes.extend(w.await.unwrap());
    }

    // Admitted requests are those the server audited: every one was answered 2xx, and the
    // client got that answer. Requests without an answer were never admitted.
    let db = format!("sqlite://{}", dir.path().join("serac.db").display());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&db)
        .await
        .unwrap();
    let audited: Vec<(String, i64)> =
        sqlx::query_as("SELECT request_id, status FROM audit_log WHERE request_id LIKE 'drain-%'")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let audited: std::collections::HashMap<String, i64> = audited.into_iter().collect();
    let answered: Vec<&Outcome> = outcomes.iter().filter(|o| o.status.is_some()).collect();
    assert!(
        answered.len() > 50,
        "too little load went through: {}",
        answered.len()
    );
    for o in &answered {
        assert_eq!(o.status, Some(200), "{o:?} failed");
        assert_eq!(
            audited.get(&o.request_id),
            Some(&200),
            "{o:?} is not audited"
        );
    }
    for o in outcomes.iter().filter(|o| o.status.is_none()) {
        assert!(
            !audited.contains_key(&o.request_id),
            "{o:?} was admitted but its answer never arrived"
        );
    }
    assert_eq!(audited.len(), answered.len());
    let after_signal = answered.len();
    println!(
        "{after_signal} requests answered, all 200; drain took {:?}",
        signalled.elapsed()
    );

    // Logs: JSON lines; one per request with route, status, latency and the request id.
    let log = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let access = lines
        .iter()
        .find(|l| l["span"]["request_id"] == answered[0].request_id.as_str())
        .unwrap_or_else(|| panic!("no log line for {}", answered[0].request_id));
    assert_eq!(access["message"], "request");
    assert_eq!(access["route"], "/v1/namespaces/{namespace}/tables/{table}");
    assert_eq!(access["status"], 200);
    assert!(access["latency_ms"].as_f64().unwrap() > 0.0);
    assert!(
        lines.iter().any(|l| l["message"] == "serac stopped"),
        "{log}"
    );
}

/// A private PostgreSQL cluster (from `tests/lib/pg.sh`) that the test may stop and start.
struct Cluster {
    tmp: String,
    bindir: String,
    url: String,
}

impl Cluster {
    fn shell(&self, function: &str) {
        let ok = Command::new("bash")
            .args(["-c", &format!("source tests/lib/pg.sh && {function}")])
            .env("_SERAC_PG_TMP", &self.tmp)
            .env("SERAC_PG_BINDIR", &self.bindir)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap()
            .success();
        assert!(ok, "{function} failed");
    }

    fn start() -> Self {
        let out = Command::new("bash")
            .args([
                "-c",
                "source tests/lib/pg.sh && serac_pg_start >&2 && \
                 printf '%s\\n%s\\n%s\\n' \"$_SERAC_PG_TMP\" \"$SERAC_PG_BINDIR\" \"$SERAC_TEST_PG_URL\"",
            ])
            // A cluster of its own: with the shared cluster's variables in the environment,
            // `serac_pg_start` would reuse the shared one, and this test would stop it.
            .env_remove("_SERAC_PG_TMP")
            .env_remove("SERAC_PG_PORT")
            .env_remove("SERAC_PG_DATA")
            .env_remove("SERAC_TEST_PG_URL")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let mut lines = text.lines().map(str::to_owned);
        Self {
            tmp: lines.next().unwrap(),
            bindir: lines.next().unwrap(),
            url: lines.next().unwrap(),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shell("serac_pg_stop");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_fails_fast_and_heals() {
    let cluster = Cluster::start();
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_on(Backend::Postgres, dir, cluster.url.clone(), &[]).await;
    app.create_namespace(&["outage"]).await;
    let created = app.create_table("outage", "t", json!({})).await;
    assert_eq!(
        app.get("/v1/namespaces/outage/tables/t").await.status,
        StatusCode::OK
    );

    cluster.shell("serac_pg_pause");
    for path in ["/v1/namespaces/outage/tables/t", "/v1/namespaces"] {
        let started = Instant::now();
        let r = app.get(path).await;
        let m = r.assert_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailableException",
        );
        assert!(m.contains("database"), "{m}");
        println!(
            "GET {path} during the outage: 503 after {:?}",
            started.elapsed()
        );
    }
    let r = app
        .post("/v1/namespaces", &json!({"namespace": ["during"]}))
        .await;
    r.assert_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceUnavailableException",
    );
    // Once the pool has no live connection left, the outage is known and every request is
    // refused at once (the figures are printed, not asserted).
    let mut slowest = Duration::ZERO;
    for _ in 0..30 {
        let started = Instant::now();
        let r = app.get("/v1/namespaces/outage/tables/t").await;
        r.assert_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailableException",
        );
        slowest = slowest.max(started.elapsed());
    }
    println!("30 loads during the outage: all 503, slowest {slowest:?}");
    let started = Instant::now();
    let r = app.get("/ready").await;
    let m = r.assert_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceUnavailableException",
    );
    assert!(m.contains("database"), "{m}");
    println!(
        "/ready during the outage: 503 after {:?}",
        started.elapsed()
    );
    assert_eq!(app.get("/health").await.status, StatusCode::OK);
    let metrics = app.get("/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(
        metrics.text.lines().any(|l| l == "serac_database_up 0"),
        "{}",
        metrics.text
    );

    cluster.shell("serac_pg_resume");
    wait_ready(&app.client, &app.base).await;
    let metrics = app.get("/metrics").await;
    assert!(
        metrics.text.lines().any(|l| l == "serac_database_up 1"),
        "{}",
        metrics.text
    );
    // Every request after recovery succeeds (no stale pooled connection fails one).
    for _ in 0..20 {
        let r = app.get("/v1/namespaces/outage/tables/t").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    assert_eq!(
        app.append_snapshot("outage", "t", &created["metadata"])
            .await
            .status,
        StatusCode::OK
    );
    let r = app
        .post("/v1/namespaces", &json!({"namespace": ["after"]}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

/// What the clients of the drain test saw.
#[derive(Debug, Default)]
struct ClientStats {
    answered: usize,
    /// Answers that asked to close the connection.
    closes: usize,
    /// Requests on an established connection without a response: a reset (or a close)
    /// while the request was being written or answered.
    resets: Vec<String>,
    /// Answers other than 200 (commits: other than 200 and 409).
    unexpected: Vec<String>,
}

/// What happened to the commits: 200, something else, or unknown (no answer).
#[derive(Debug, Default)]
struct Ledger {
    committed: Vec<(usize, i64)>,
    rejected: Vec<(usize, i64, u16)>,
    unknown: Vec<(usize, i64)>,
}

const DRAIN_TABLES: usize = 8;

/// One keep-alive client: its own connection, a new one when the server closes it, and no
/// more requests once a connection is refused (the server is gone). A committer appends
/// snapshots to its table, each asserting the snapshot it last saw (409 when another
/// committer got there first: it reloads); a reader loads tables and the config.
async fn drain_client(
    addr: String,
    id: usize,
    commits: bool,
    ledger: Arc<std::sync::Mutex<Ledger>>,
    mut exited: tokio::sync::watch::Receiver<bool>,
) -> ClientStats {
    use common::raw_http::RawConn;
    let table = (id / 2) % DRAIN_TABLES;
    let table_path = format!("/v1/namespaces/drain/tables/t{table}");
    let mut stats = ClientStats::default();
    let mut metadata: Option<Value> = None;
    let mut conn: Option<RawConn> = None;
    for i in 0usize.. {
        let c = match conn.as_mut() {
            Some(c) => c,
            // A connect the server no longer completes is refused once it is gone (a
            // dropped SYN is retried after a second); no need to wait for that.
            None => tokio::select! {
                connected = RawConn::connect_timeout(&addr, Duration::from_secs(5)) => match connected {
                    Ok(c) => conn.insert(c),
                    Err(_) => break,
                },
                _ = exited.wait_for(|e| *e) => break,
            },
        };
        let (method, path, commit) = match (&metadata, commits) {
            (Some(m), true) => {
                let snapshot = common::next_snapshot_id();
                let path = table_path.as_str();
                (
                    "POST",
                    path,
                    Some((snapshot, common::append_commit(m, snapshot))),
                )
            }
            (None, true) => ("GET", table_path.as_str(), None),
            (_, false) if i % 2 == 0 => ("GET", "/v1/config", None),
            (_, false) => ("GET", table_path.as_str(), None),
        };
        let request_id = format!("c{id}-{i}-{}", std::process::id());
        let sent = c
            .request(
                method,
                path,
                commit.as_ref().map(|(_, body)| body),
                &[("x-request-id", &request_id)],
            )
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(failure) => {
                stats
                    .resets
                    .push(format!("{request_id} {method} {path}: {failure:?}"));
                if let Some((snapshot, _)) = commit {
                    ledger.lock().unwrap().unknown.push((table, snapshot));
                }
                conn = None;
                metadata = None;
                continue;
            }
        };
        stats.answered += 1;
        if response.closes() {
            stats.closes += 1;
            conn = None;
        }
        match (commit, response.status) {
            (None, 200) => {
                if commits {
                    metadata = Some(response.json()["metadata"].clone());
                }
            }
            (Some((snapshot, _)), 200) => {
                ledger.lock().unwrap().committed.push((table, snapshot));
                metadata = Some(response.json()["metadata"].clone());
            }
            (Some((snapshot, _)), status) => {
                ledger
                    .lock()
                    .unwrap()
                    .rejected
                    .push((table, snapshot, status));
                if status != 409 {
                    stats.unexpected.push(format!(
                        "{method} {path}: {status} {}",
                        String::from_utf8_lossy(&response.body)
                    ));
                }
                metadata = None;
            }
            (None, status) => {
                stats.unexpected.push(format!(
                    "{method} {path}: {status} {}",
                    String::from_utf8_lossy(&response.body)
                ));
            }
        }
    }
    stats
}

fn start_serac(dir: &std::path::Path, port: u16, extra: &[&str]) -> std::process::Child {
    serac_command(dir, port, extra)
        .spawn()
        .expect("serac starts")
}

/// `serac serve` on `port` with its data and log in `dir`.
fn serac_command(dir: &std::path::Path, port: u16, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_serac"));
    command
        .args(["--log-format", "json", "--log-level", "warn", "serve"])
        .args(["--bind", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("serac.log"))
                .unwrap(),
        );
    command
}

/// 64 keep-alive clients (32 committing, 32 reading), each on its own HTTP/1.1 connection,
/// through 20 SIGTERM drains in a row of a server on SQLite: no request written on an
/// established connection goes unanswered, and every commit answered 200 is in its table's
/// history after a restart while no other is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_drains_under_keep_alive_load_reset_nothing_and_lose_no_commit() {
    repeated_drains(Backend::Sqlite, 20).await;
}

/// The same on PostgreSQL, with fewer drains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_drains_on_postgres_reset_nothing_and_lose_no_commit() {
    repeated_drains(Backend::Postgres, 8).await;
}

async fn repeated_drains(backend: Backend, rounds: usize) {
    const CLIENTS: usize = 64;
    let dir = tempfile::tempdir().unwrap();
    let database_url = common::database_url(backend, dir.path()).await;
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let base = format!("http://{addr}");
    let client = reqwest::Client::new();
    let ledger = Arc::new(std::sync::Mutex::new(Ledger::default()));
    let started = Instant::now();
    let (mut resets, mut answered, mut closes) = (Vec::new(), 0, 0);
    for round in 0..rounds {
        let mut child = start_serac(
            dir.path(),
            port,
            &[
                "--database-url",
                &database_url,
                "--shutdown-delay",
                "1s",
                "--drain-timeout",
                "20s",
            ],
        );
        wait_ready_every(&client, &base, Duration::from_millis(20)).await;
        if round == 0 {
            create_drain_tables(&client, &base, DRAIN_TABLES).await;
        }
        let (exited_tx, exited) = tokio::sync::watch::channel(false);
        let clients: Vec<_> = (0..CLIENTS)
            .map(|id| {
                let client = drain_client(
                    addr.clone(),
                    id,
                    id % 2 == 0,
                    ledger.clone(),
                    exited.clone(),
                );
                tokio::spawn(client)
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let killed = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = tokio::task::spawn_blocking(move || child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "serac exited with {status}");
        exited_tx.send_replace(true);
        let mut round_stats = ClientStats::default();
        for c in clients {
            let stats = tokio::time::timeout(Duration::from_secs(30), c)
                .await
                .expect("a client hung after the server exited")
                .unwrap();
            round_stats.answered += stats.answered;
            round_stats.closes += stats.closes;
            round_stats.resets.extend(stats.resets);
            round_stats.unexpected.extend(stats.unexpected);
        }
        println!(
            "drain {round}: {} answered, {} with Connection: close, {} resets",
            round_stats.answered,
            round_stats.closes,
            round_stats.resets.len()
        );
        assert!(
            round_stats.unexpected.is_empty(),
            "unexpected answers: {:?}",
            round_stats.unexpected
        );
        answered += round_stats.answered;
        closes += round_stats.closes;
        resets.extend(
            round_stats
                .resets
                .into_iter()
                .map(|r| format!("drain {round}: {r}")),
        );
    }
    let elapsed = started.elapsed();

    // After a restart, every table's history holds exactly the commits answered 200.
    let mut child = start_serac(dir.path(), port, &["--database-url", &database_url]);
    wait_ready(&client, &base).await;
    let mut histories = Vec::new();
    for t in 0..DRAIN_TABLES {
        let r = client
            .get(format!("{base}/v1/namespaces/drain/tables/t{t}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "load t{t}");
        let loaded: Value = r.json().await.unwrap();
        histories.push(loaded["metadata"].clone());
    }
    let _ = child.kill();
    let _ = child.wait();
    let ledger = ledger.lock().unwrap();
    let mut lost = Vec::new();
    let mut phantom: Vec<&(usize, i64, u16)> = Vec::new();
    for (t, history) in histories.iter().enumerate() {
        let ancestry: std::collections::HashSet<i64> =
            common::main_ancestry(history).into_iter().collect();
        let snapshots: std::collections::HashSet<i64> = history["snapshots"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| s["snapshot-id"].as_i64().unwrap())
            .collect();
        let committed: std::collections::HashSet<i64> = ledger
            .committed
            .iter()
            .filter(|(table, _)| *table == t)
            .map(|(_, s)| *s)
            .collect();
        lost.extend(committed.difference(&ancestry).map(|s| (t, *s)));
        phantom.extend(
            ledger
                .rejected
                .iter()
                .filter(|(table, s, _)| *table == t && snapshots.contains(s)),
        );
        // Nothing else is on main but commits whose answer was lost (none when no resets).
        let unknown: std::collections::HashSet<i64> = ledger
            .unknown
            .iter()
            .filter(|(table, _)| *table == t)
            .map(|(_, s)| *s)
            .collect();
        for s in &ancestry {
            assert!(
                committed.contains(s) || unknown.contains(s),
                "t{t}: snapshot {s} on main was never answered 200"
            );
        }
    }
    println!(
        "{backend:?}: {rounds} drains in {elapsed:?}: {answered} requests answered ({closes} with Connection: close), \
         {} commits answered 200, {} refused (409), {} without an answer; {} resets",
        ledger.committed.len(),
        ledger.rejected.len(),
        ledger.unknown.len(),
        resets.len()
    );
    assert!(lost.is_empty(), "commits answered 200 but lost: {lost:?}");
    assert!(
        phantom.is_empty(),
        "commits answered otherwise but applied: {phantom:?}"
    );
    assert!(
        ledger.committed.len() > 20 * rounds,
        "too few commits went through: {}",
        ledger.committed.len()
    );
    assert!(resets.is_empty(), "{} resets: {resets:#?}", resets.len());
}
