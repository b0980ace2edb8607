//! The server as a process and its database as a process: a SIGTERM under load drains without
//! failing an admitted request, and a PostgreSQL outage gives fast 503s and heals by itself.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use common::{Backend, TestApp};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    for _ in 0..300 {
        if let Ok(r) = client.get(format!("{base}/ready")).send().await
            && r.status() == StatusCode::OK
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
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
    let r = client
        .post(format!("{base}/v1/namespaces"))
        .json(&json!({"namespace": ["drain"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    for t in 0..8 {
        let r = client
            .post(format!("{base}/v1/namespaces/drain/tables"))
            .json(&json!({"name": format!("t{t}"), "schema": common::simple_schema()}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
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

    cluster.shell("serac_pg_resume");
    wait_ready(&app.client, &app.base).await;
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
