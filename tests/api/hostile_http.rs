//! Hostile input at the HTTP edge, through real sockets: slow and silent connections, too many
//! connections, bodies that are not JSON, requests that outlive their timeout, made-up
//! methods, WebSocket pages from other sites and CORS. Every refusal is the spec's error JSON.

use std::time::{Duration, Instant};

use clap::Parser;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

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

/// Opens the change feed with an `Origin` (or none): `Ok` on 101, else the refusal.
async fn open_feed(app: &TestApp, origin: Option<&str>) -> Result<(), (u16, Value)> {
    let url = format!(
        "{}/v1/events/stream",
        app.base.replacen("http://", "ws://", 1)
    );
    let mut request = url.into_client_request().unwrap();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((mut feed, response)) => {
            assert_eq!(response.status(), 101);
            let _ = feed.close(None).await;
            Ok(())
        }
        Err(tungstenite::Error::Http(response)) => {
            let status = response.status().as_u16();
            let body = response.body().clone().unwrap_or_default();
            Err((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
        }
        Err(e) => panic!("change feed connect: {e}"),
    }
}

fn assert_forbidden(result: Result<(), (u16, Value)>, origin: &str) {
    let (status, body) = result.expect_err("the origin should be refused");
    assert_eq!(status, 403);
    assert_eq!(body["error"]["type"], "ForbiddenException", "{body}");
    assert_eq!(body["error"]["code"], 403);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(origin), "{message}");
}

async fn change_feed_checks_the_origin(backend: Backend) {
    // Default: no Origin, or a page of the host the request is addressed to.
    let app = TestApp::spawn(backend).await;
    assert_eq!(open_feed(&app, None).await, Ok(()));
    assert_eq!(open_feed(&app, Some(&app.base)).await, Ok(()));
    assert_eq!(
        open_feed(&app, Some(&app.base.replace("http://", "HTTP://"))).await,
        Ok(())
    );
    for evil in [
        "http://evil.example",
        "https://127.0.0.1.evil.example",
        &app.base.replace("127.0.0.1", "localhost"),
        "null",
    ] {
        assert_forbidden(open_feed(&app, Some(evil)).await, evil);
    }
    drop(app);

    // A list: only those (a same-host page is not on it), and clients without an Origin.
    let app = TestApp::spawn_with(
        backend,
        &[
            "--allowed-origins",
            "https://ui.example.com,http://localhost:3000",
        ],
    )
    .await;
    assert_eq!(
        open_feed(&app, Some("https://ui.example.com")).await,
        Ok(())
    );
    assert_eq!(
        open_feed(&app, Some("https://UI.example.com:443")).await,
        Ok(())
    );
    assert_eq!(open_feed(&app, Some("http://localhost:3000")).await, Ok(()));
    assert_eq!(open_feed(&app, None).await, Ok(()));
    assert_forbidden(
        open_feed(&app, Some("http://evil.example")).await,
        "http://evil.example",
    );
    assert_forbidden(open_feed(&app, Some(&app.base)).await, &app.base);
    drop(app);

    let app = TestApp::spawn_with(backend, &["--allowed-origins", "*"]).await;
    assert_eq!(open_feed(&app, Some("http://evil.example")).await, Ok(()));
}

/// A CORS preflight for `POST /v1/namespaces` from `origin`.
async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.client
        .request(reqwest::Method::OPTIONS, app.url("/v1/namespaces"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,idempotency-key",
        )
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_is_off_unless_configured() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let r = preflight(&app, "https://ui.example.com").await;
    assert!(
        r.headers().get("access-control-allow-origin").is_none(),
        "{:?}",
        r.headers()
    );
    let r = app
        .client
        .get(app.url("/v1/config"))
        .header("origin", "https://ui.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()
            .keys()
            .all(|k| !k.as_str().starts_with("access-control-"))
    );
    drop(app);

    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &["--cors-allowed-origins", "https://ui.example.com"],
    )
    .await;
    let r = preflight(&app, "https://ui.example.com").await;
    assert!(r.status().is_success(), "{}", r.status());
    let header = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_ascii_lowercase())
            .unwrap_or_default()
    };
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        "https://ui.example.com"
    );
    assert!(header(&r, "access-control-allow-methods").contains("post"));
    assert!(header(&r, "access-control-allow-headers").contains("content-type"));
    assert!(header(&r, "access-control-allow-headers").contains("idempotency-key"));
    let r = app
        .client
        .post(app.url("/v1/namespaces"))
        .header("origin", "https://ui.example.com")
        .json(&json!({"namespace": ["from_ui"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        "https://ui.example.com"
    );
    // Other sites get nothing.
    let r = preflight(&app, "http://evil.example").await;
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[test]
fn edge_settings_are_validated_at_start() {
    let parse = |extra: &[&str]| {
        let mut argv = vec!["serac", "serve"];
        argv.extend_from_slice(extra);
        serac::config::Cli::try_parse_from(argv).map(|_| ())
    };
    assert!(parse(&[]).is_ok());
    assert!(
        parse(&[
            "--allowed-origins",
            "https://ui.example.com,http://localhost:3000"
        ])
        .is_ok()
    );
    assert!(parse(&["--cors-allowed-origins", "*"]).is_ok());
    for bad in [
        &["--max-connections", "0"][..],
        &["--header-read-timeout", "0s"],
        &["--header-read-timeout", "soon"],
        &["--allowed-origins", "ui.example.com"],
        &["--allowed-origins", "https://ui.example.com/app"],
        &["--cors-allowed-origins", "ftp://files.example.com"],
        &["--cors-allowed-origins", "https://user@ui.example.com"],
    ] {
        let err = parse(bad).expect_err(&format!("{bad:?} should be refused"));
        assert!(!err.to_string().is_empty());
    }
}

/// A page of another origin cannot change the catalog, even with a request that has no body
/// (which the content-type check cannot catch); reads, the server's own pages, configured
/// CORS origins and clients without an `Origin` are unaffected.
async fn pages_of_other_origins_cannot_change_the_catalog(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &["--cors-allowed-origins", "https://ui.example.com"],
    )
    .await;
    app.create_namespace(&["ns"]).await;
    app.create_table("ns", "victim", json!({})).await;
    let with_origin = |method: reqwest::Method, path: &str, origin: &str| {
        app.client
            .request(method, app.url(path))
            .header("Origin", origin.to_owned())
    };
    for (method, path) in [
        (
            reqwest::Method::POST,
            "/v1/namespaces/ns/tables/victim/unregister",
        ),
        (
            reqwest::Method::DELETE,
            "/v1/namespaces/ns/tables/victim?purgeRequested=true",
        ),
        (reqwest::Method::DELETE, "/v1/namespaces/ns"),
    ] {
        let r = with_origin(method.clone(), path, "https://evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{method} {path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["type"], "ForbiddenException");
    }
    assert_eq!(
        app.get("/v1/namespaces/ns/tables/victim").await.status,
        StatusCode::OK,
        "a refused request changed the table"
    );
    // Reads from anywhere, changes from the configured origin and the server's own host.
    let r = with_origin(
        reqwest::Method::GET,
        "/v1/namespaces/ns/tables/victim",
        "https://evil.example",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = with_origin(
        reqwest::Method::POST,
        "/v1/namespaces",
        "https://ui.example.com",
    )
    .json(&json!({"namespace": ["from_ui"]}))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = with_origin(reqwest::Method::POST, "/v1/namespaces", &app.base.clone())
        .json(&json!({"namespace": ["from_self"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

both_backends!(
    pages_of_other_origins_cannot_change_the_catalog,
    bodies_that_are_not_json_are_refused_with_415,
    a_request_past_its_timeout_gets_the_json_503,
    change_feed_checks_the_origin,
);
