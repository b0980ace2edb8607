//! What operators rely on: readiness, the audit log and request ids.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::common::{Backend, TestApp};

async fn ready_and_health_answer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let r = app.get("/health").await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app.get("/ready").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["status"], "ready");
}

async fn mutations_are_audited(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let r = app
        .request_with(
            Method::POST,
            "/v1/namespaces",
            Some(&json!({"namespace": ["audited"]})),
            &[("x-request-id", "audit-1")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["x-request-id"], "audit-1");
    let r = app
        .request_with(
            Method::POST,
            "/v1/namespaces",
            Some(&json!({"namespace": ["audited"]})),
            &[("x-request-id", "audit-2")],
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = app
        .request_with(
            Method::DELETE,
            "/v1/namespaces/audited",
            None,
            &[("x-request-id", "audit-3")],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    // Reads are not audited.
    app.request_with(
        Method::GET,
        "/v1/namespaces",
        None,
        &[("x-request-id", "audit-read")],
    )
    .await;

    let r = app.get("/management/v1/audit?limit=10").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let records: Vec<Value> = r.json()["records"].as_array().unwrap().clone();
    let by_id = |id: &str| {
        records
            .iter()
            .find(|r| r["request-id"] == id)
            .unwrap_or_else(|| panic!("no audit record for {id}: {records:?}"))
            .clone()
    };
    let created = by_id("audit-1");
    assert_eq!(created["operation"], "POST /v1/namespaces");
    assert_eq!(created["object"], "/v1/namespaces");
    assert_eq!(created["status"], 200);
    assert_eq!(created["outcome"], "success");
    assert_eq!(created["actor"], "anonymous");
    assert_eq!(created["client"], "127.0.0.1");
    let refused = by_id("audit-2");
    assert_eq!(
        (refused["status"].as_u64(), refused["outcome"].as_str()),
        (Some(409), Some("rejected"))
    );
    let dropped = by_id("audit-3");
    assert_eq!(dropped["operation"], "DELETE /v1/namespaces/{namespace}");
    assert_eq!(dropped["object"], "/v1/namespaces/audited");
    assert!(
        records.iter().all(|r| r["request-id"] != "audit-read"),
        "a read was audited"
    );
    app.get("/management/v1/audit?limit=1001")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "BadRequestException");
    // Newest first.
    let position = |id: &str| records.iter().position(|r| r["request-id"] == id).unwrap();
    assert!(position("audit-3") < position("audit-1"));
}

/// Audit records older than `--audit-retention` are deleted; newer ones stay.
async fn audit_records_past_retention_are_deleted(backend: Backend) {
    let app = TestApp::spawn_with(backend, &["--audit-retention", "2s"]).await;
    let audited = |r: &Value, id: &str| {
        r["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["request-id"] == id)
    };
    let app = &app;
    let create = |name: &'static str| async move {
        app.request_with(
            Method::POST,
            "/v1/namespaces",
            Some(&json!({ "namespace": [name] })),
            &[("x-request-id", name)],
        )
        .await
    };
    assert_eq!(create("aged").await.status, StatusCode::OK);
    let r = app.get("/management/v1/audit?limit=1000").await.json();
    assert!(audited(&r, "aged"), "{r}");
    // The cleanup runs every second; give it up to 10 s past the 2 s retention.
    for round in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let r = app.get("/management/v1/audit?limit=1000").await.json();
        if !audited(&r, "aged") {
            break;
        }
        assert!(round < 99, "an audit record outlived its retention: {r}");
    }
    // A fresh record is kept.
    assert_eq!(create("fresh").await.status, StatusCode::OK);
    let r = app.get("/management/v1/audit?limit=1000").await.json();
    assert!(audited(&r, "fresh"), "{r}");
}

/// A database whose schema lacks a migration of this build makes the server unready.
async fn ready_requires_current_migrations(backend: Backend) {
    use sqlx::Connection as _;
    let app = TestApp::spawn(backend).await;
    assert_eq!(app.get("/ready").await.status, StatusCode::OK);
    let forget_newest = "DELETE FROM _sqlx_migrations WHERE version = \
                         (SELECT MAX(version) FROM _sqlx_migrations)";
    match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&app.database_url)
                .await
                .unwrap();
            sqlx::query(forget_newest).execute(&mut conn).await.unwrap();
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&app.database_url)
                .await
                .unwrap();
            sqlx::query(forget_newest).execute(&mut conn).await.unwrap();
        }
    }
    let m = app.get("/ready").await.assert_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceUnavailableException",
    );
    assert!(m.contains("serac migrate"), "{m}");
}

both_backends!(
    ready_and_health_answer,
    mutations_are_audited,
    audit_records_past_retention_are_deleted,
    ready_requires_current_migrations
);
