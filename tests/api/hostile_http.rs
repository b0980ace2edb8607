//! Hostile input at the HTTP edge, through real sockets: slow and silent connections, too many
//! connections, bodies that are not JSON, requests that outlive their timeout, made-up
//! methods. Every refusal is the spec's error JSON.

use std::time::{Duration, Instant};

use clap::Parser;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::common::raw_http::RawConn;
use crate::common::{Backend, TestApp, simple_schema};

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_and_silent_connections_are_closed_after_the_header_timeout() {
    let app = TestApp::spawn_with(Backend::Sqlite, &["--header-read-timeout", "1s"]).await;
    let mut half = RawConn::connect(&addr(&app)).await.unwrap();
    half.send_raw(b"GET /v1/config HTTP/1.1\r\nHost: x\r\nAccept: app")
        .await
        .unwrap();
    let mut silent = RawConn::connect(&addr(&app)).await.unwrap();
    let opened = Instant::now();

    // Meanwhile the server answers others at once.
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(app.get("/health").await.status, StatusCode::OK);
        assert!(started.elapsed() < Duration::from_millis(500));
    }
    assert!(
        half.closed_within(Duration::from_secs(5)).await,
        "half-sent head still open"
    );
    let waited = opened.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "closed after {waited:?}"
    );
    assert!(
        silent.closed_within(Duration::from_secs(2)).await,
        "silent connection still open"
    );

    // A whole request in time is served as usual.
    let mut whole = RawConn::connect(&addr(&app)).await.unwrap();
    let r = whole.request("GET", "/health", None, &[]).await.unwrap();
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_does_not_hold_up_shutdown() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut silent = RawConn::connect(&addr(&app)).await.unwrap();
    let mut idle = RawConn::connect(&addr(&app)).await.unwrap();
    let r = idle.request("GET", "/health", None, &[]).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(!r.closes());
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), app.stop())
        .await
        .expect("shutdown held up by a silent connection");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(silent.closed_within(Duration::from_millis(100)).await);
    assert!(idle.closed_within(Duration::from_millis(100)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_wait_until_one_closes() {
    let app = TestApp::spawn_with(Backend::Sqlite, &["--max-connections", "4"]).await;
    let mut open = Vec::new();
    for _ in 0..4 {
        let mut c = RawConn::connect(&addr(&app)).await.unwrap();
        let r = c.request("GET", "/health", None, &[]).await.unwrap();
        assert_eq!(r.status, 200);
        open.push(c);
    }
    // The fifth connection is made by the kernel (backlog) but not served.
    let mut fifth = RawConn::connect(&addr(&app)).await.unwrap();
    let waiting = tokio::spawn(async move {
        let started = Instant::now();
        let r = fifth.request("GET", "/health", None, &[]).await;
        (
            r.map(|r| r.status).map_err(|e| format!("{e:?}")),
            started.elapsed(),
        )
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !waiting.is_finished(),
        "the fifth connection was served beyond the limit"
    );
    // The connections within the limit are still served.
    let r = open[0].request("GET", "/health", None, &[]).await.unwrap();
    assert_eq!(r.status, 200);

    drop(open.pop());
    let (status, waited) = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the fifth connection is served once one closed")
        .unwrap();
    assert_eq!(status, Ok(200));
    assert!(waited >= Duration::from_millis(700), "{waited:?}");
}

/// A request body that is not declared as JSON, for the 415 checks.
struct Refused {
    content_type: Option<&'static str>,
    body: String,
}

fn not_json(body: &Value) -> Vec<Refused> {
    vec![
        Refused {
            content_type: Some("text/plain"),
            body: body.to_string(),
        },
        Refused {
            content_type: Some("text/plain;charset=UTF-8"),
            body: body.to_string(),
        },
        Refused {
            content_type: Some("application/x-www-form-urlencoded"),
            body: format!("{}=", body),
        },
        Refused {
            content_type: Some("multipart/form-data; boundary=x"),
            body: format!(
                "--x\r\nContent-Disposition: form-data; name=\"{body}\"\r\n\r\n\r\n--x--\r\n"
            ),
        },
        Refused {
            content_type: None,
            body: body.to_string(),
        },
    ]
}

async fn send_refused(app: &TestApp, path: &str, refused: &Refused) -> crate::common::Resp {
    let mut req = app.client.post(app.url(path)).body(refused.body.clone());
    if let Some(ct) = refused.content_type {
        req = req.header("content-type", ct);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    crate::common::Resp {
        status,
        headers,
        text,
    }
}

fn assert_unsupported(r: &crate::common::Resp, refused: &Refused) {
    let message = r.assert_error(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UnsupportedMediaTypeException",
    );
    assert!(message.contains("application/json"), "{message}");
    match refused.content_type {
        Some(ct) => assert!(message.contains(ct), "{message} should name {ct}"),
        None => assert!(message.contains("no Content-Type"), "{message}"),
    }
}

async fn bodies_that_are_not_json_are_refused_with_415(backend: Backend) {
    let app = TestApp::spawn(backend).await;

    // createNamespace
    let create_ns = json!({"namespace": ["forged"]});
    for refused in not_json(&create_ns) {
        let r = send_refused(&app, "/v1/namespaces", &refused).await;
        assert_unsupported(&r, &refused);
    }
    assert_eq!(
        app.get("/v1/namespaces/forged").await.status,
        StatusCode::NOT_FOUND
    );

    // createTable
    app.create_namespace(&["hostile"]).await;
    let create_table = json!({"name": "forged", "schema": simple_schema()});
    for refused in not_json(&create_table) {
        let r = send_refused(&app, "/v1/namespaces/hostile/tables", &refused).await;
        assert_unsupported(&r, &refused);
    }
    assert_eq!(
        app.get("/v1/namespaces/hostile/tables/forged").await.status,
        StatusCode::NOT_FOUND
    );

    // commit (updateTable)
    let created = app.create_table("hostile", "t", json!({})).await;
    let commit =
        crate::common::append_commit(&created["metadata"], crate::common::next_snapshot_id());
    for refused in not_json(&commit) {
        let r = send_refused(&app, "/v1/namespaces/hostile/tables/t", &refused).await;
        assert_unsupported(&r, &refused);
    }
    let loaded = app.get("/v1/namespaces/hostile/tables/t").await.json();
    assert_eq!(
        loaded["metadata"]["snapshots"]
            .as_array()
            .map_or(0, Vec::len),
        0
    );
    assert_eq!(loaded["metadata-location"], created["metadata-location"]);

    // JSON with parameters and in any case is accepted; an empty body without a type is
    // still a 400 about the body.
    for ct in ["application/json; charset=utf-8", "Application/JSON"] {
        let name = format!("ok_{}", ct.len());
        let r = app
            .client
            .post(app.url("/v1/namespaces"))
            .header("content-type", ct)
            .body(json!({"namespace": [name]}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{ct}");
    }
    let r = app
        .client
        .post(app.url("/v1/namespaces"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["type"], "BadRequestException");
}

/// Holds the database's write lock from outside the server until dropped.
enum WriteLock {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl WriteLock {
    async fn take(app: &TestApp) -> Self {
        use sqlx::{Connection, Executor};
        match app.backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&app.database_url)
                    .await
                    .unwrap();
                conn.execute("BEGIN IMMEDIATE").await.unwrap();
                Self::Sqlite(conn)
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&app.database_url)
                    .await
                    .unwrap();
                conn.execute("BEGIN").await.unwrap();
                conn.execute("LOCK TABLE namespaces IN ACCESS EXCLUSIVE MODE")
                    .await
                    .unwrap();
                Self::Postgres(conn)
            }
        }
    }

    async fn release(self) {
        use sqlx::Executor;
        match self {
            Self::Sqlite(mut conn) => {
                conn.execute("ROLLBACK").await.unwrap();
            }
            Self::Postgres(mut conn) => {
                conn.execute("ROLLBACK").await.unwrap();
            }
        }
    }
}

async fn a_request_past_its_timeout_gets_the_json_503(backend: Backend) {
    let app = TestApp::spawn_with(backend, &["--request-timeout", "300ms"]).await;
    let lock = WriteLock::take(&app).await;
    let started = Instant::now();
    let r = app
        .post("/v1/namespaces", &json!({"namespace": ["slow"]}))
        .await;
    let waited = started.elapsed();
    let message = r.assert_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceUnavailableException",
    );
    assert!(
        message.contains("longer than the configured timeout") && message.contains("300ms"),
        "{message}"
    );
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!(
        r.headers["content-type"], "application/json",
        "the timeout answer is JSON"
    );
    lock.release().await;
    // The server serves on.
    assert_eq!(app.get("/health").await.status, StatusCode::OK);
    let mut created = false;
    for _ in 0..50 {
        let r = app
            .post("/v1/namespaces", &json!({"namespace": ["after"]}))
            .await;
        if r.status == StatusCode::OK {
            created = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        created,
        "no namespace could be created after the lock was released"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_methods_share_one_metric_label() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    assert_eq!(app.get("/health").await.status, StatusCode::OK);
    let mut conn = RawConn::connect(&addr(&app)).await.unwrap();
    for (method, path) in [
        ("FOO", "/v1/config"),
        ("BAR", "/v1/config"),
        ("XYZZY", "/health"),
        ("FOO", "/nowhere"),
    ] {
        let r = conn.request(method, path, None, &[]).await.unwrap();
        assert!(
            r.status == 405 || r.status == 404,
            "{method} {path}: {}",
            r.status
        );
        let body = r.json();
        assert!(body["error"]["type"].is_string(), "{body}");
    }
    let text = app.get("/metrics").await.text;
    let methods: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("serac_http_requests_total{"))
        .filter_map(|l| l.split("method=\"").nth(1))
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert!(methods.contains("other"), "{methods:?}");
    assert!(methods.contains("GET"), "{methods:?}");
    for made_up in ["FOO", "BAR", "XYZZY"] {
        assert!(
            !methods.contains(made_up),
            "{made_up} has its own label: {methods:?}"
        );
    }
    let other: f64 = text
        .lines()
        .filter(|l| l.starts_with("serac_http_requests_total{") && l.contains("method=\"other\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(other, 4.0, "{text}");
}

#[test]
fn edge_settings_are_validated_at_start() {
    let parse = |extra: &[&str]| {
        let mut argv = vec!["serac", "serve"];
        argv.extend_from_slice(extra);
        serac::config::Cli::try_parse_from(argv).map(|_| ())
    };
    assert!(parse(&[]).is_ok());
    for bad in [
        &["--max-connections", "0"][..],
        &["--header-read-timeout", "0s"],
        &["--header-read-timeout", "soon"],
    ] {
        let err = parse(bad).expect_err(&format!("{bad:?} should be refused"));
        assert!(!err.to_string().is_empty());
    }
}

both_backends!(
    bodies_that_are_not_json_are_refused_with_415,
    a_request_past_its_timeout_gets_the_json_503,
);
