//! Hostile input at the HTTP edge, through real sockets: slow and silent connections, too many
//! connections.

use std::time::{Duration, Instant};

use clap::Parser;
use reqwest::StatusCode;

use crate::common::raw_http::RawConn;
use crate::common::{Backend, TestApp};

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
