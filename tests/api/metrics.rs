use reqwest::StatusCode;
use serde_json::json;

use crate::both_backends;
use crate::common::{Backend, TestApp};

/// The value of the sample whose name and labels contain all of `parts`.
pub(crate) fn sample(text: &str, name: &str, parts: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .find(|l| parts.iter().all(|p| l.contains(p)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn metrics_count_requests_commits_and_entities(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_namespace(&["metricsns"]).await;
    let created = app.create_table("metricsns", "t", json!({})).await;
    assert_eq!(
        app.append_snapshot("metricsns", "t", &created["metadata"])
            .await
            .status,
        StatusCode::OK
    );
    // A stale client: its requirement no longer holds.
    assert_eq!(
        app.append_snapshot("metricsns", "t", &created["metadata"])
            .await
            .status,
        StatusCode::CONFLICT
    );
    for _ in 0..3 {
        assert_eq!(
            app.get("/v1/namespaces/metricsns/tables/t").await.status,
            StatusCode::OK
        );
    }
    app.get("/v1/namespaces/metricsns/tables/missing").await;

    let r = app.get("/metrics").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = r.text;
    let route = r#"route="/v1/namespaces/{namespace}/tables/{table}""#;
    assert!(
        sample(
            &text,
            "serac_http_requests_total",
            &[route, r#"method="GET""#, r#"status="200""#]
        )
        .unwrap()
            >= 3.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "serac_http_requests_total",
            &[route, r#"status="404""#]
        ),
        Some(1.0)
    );
    assert!(
        !text.contains("metricsns"),
        "a raw path leaked into a label"
    );
    assert!(sample(&text, "serac_http_request_duration_seconds_count", &[route]).unwrap() >= 4.0);
    assert_eq!(
        sample(&text, "serac_commits_total", &[r#"outcome="committed""#]),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "serac_commits_total", &[r#"outcome="conflict""#]),
        Some(1.0)
    );
    assert!(sample(&text, "serac_commit_duration_seconds_count", &[]).unwrap() >= 2.0);
    assert!(sample(&text, "serac_metadata_write_duration_seconds_count", &[]).unwrap() >= 1.0);
    assert!(
        sample(
            &text,
            "serac_table_cache_lookups_total",
            &[r#"result="hit""#]
        )
        .unwrap()
            >= 1.0
    );
    assert_eq!(
        sample(&text, "serac_catalog_entities", &[r#"kind="table""#]),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "serac_catalog_entities", &[r#"kind="namespace""#]),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "serac_catalog_entities", &[r#"kind="warehouse""#]),
        Some(1.0)
    );
    assert!(sample(&text, "serac_db_pool_connections", &[]).unwrap() >= 1.0);
    assert_eq!(sample(&text, "serac_database_up", &[]), Some(1.0));
    assert_eq!(
        sample(&text, "serac_build_info", &[env!("CARGO_PKG_VERSION")]),
        Some(1.0)
    );
    // Process metrics under the standard names, and (deprecated) under the prefix.
    for name in [
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
        "serac_process_resident_memory_bytes",
    ] {
        assert!(
            sample(&text, name, &[]).unwrap_or(0.0) > 0.0,
            "{name}: {text}"
        );
    }
    assert!(
        sample(&text, "process_cpu_seconds_total", &[]).is_some(),
        "{text}"
    );
    assert_eq!(
        text.matches("# TYPE process_resident_memory_bytes ")
            .count(),
        1,
        "{text}"
    );
    // Database: pool acquire wait and time per store operation.
    assert!(sample(&text, "serac_db_pool_acquire_wait_seconds_count", &[]).unwrap() >= 5.0);
    assert!(
        sample(
            &text,
            "serac_db_query_duration_seconds_count",
            &[r#"operation="swap_tables_metadata""#]
        )
        .unwrap()
            >= 1.0,
        "{text}"
    );
    assert!(
        sample(
            &text,
            "serac_db_query_duration_seconds_count",
            &[r#"operation="table_head""#]
        )
        .unwrap()
            >= 1.0
    );
    // Change feed: the default warehouse (made at first start), the namespace, the table and
    // one commit were published; nobody is subscribed.
    assert_eq!(
        sample(&text, "serac_events_published_total", &[]),
        Some(4.0)
    );
    assert_eq!(
        sample(&text, "serac_change_feed_subscribers", &[]),
        Some(0.0)
    );
    assert_eq!(sample(&text, "serac_draining", &[]), Some(0.0));
}

both_backends!(metrics_count_requests_commits_and_entities);
