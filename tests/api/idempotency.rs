use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::common::{Backend, Resp, TestApp, append_commit, next_snapshot_id};

async fn with_key(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<&Value>,
    key: &str,
) -> Resp {
    app.request_with(method, path, body, &[("Idempotency-Key", key)])
        .await
}

async fn retried_requests_apply_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = uuid::Uuid::now_v7().to_string();
    let body = json!({"namespace": ["idem"], "properties": {"a": "1"}});
    let first = with_key(&app, Method::POST, "/v1/namespaces", Some(&body), &key).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let again = with_key(&app, Method::POST, "/v1/namespaces", Some(&body), &key).await;
    assert_eq!(
        again.status,
        StatusCode::OK,
        "a retry replays the first outcome: {}",
        again.text
    );
    assert_eq!(again.json(), first.json());
    // Without the key, the same request is a new one and conflicts.
    app.post("/v1/namespaces", &body)
        .await
        .assert_error(StatusCode::CONFLICT, "AlreadyExistsException");
    // The key may not be reused for another operation.
    with_key(&app, Method::DELETE, "/v1/namespaces/idem", None, &key)
        .await
        .assert_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "UnprocessableEntityException",
        );

    // A commit retried with its key adds one snapshot, not two.
    let table = app.create_table("idem", "t", json!({})).await;
    let commit = append_commit(&table["metadata"], next_snapshot_id());
    let key = uuid::Uuid::now_v7().to_string();
    let first = with_key(
        &app,
        Method::POST,
        "/v1/namespaces/idem/tables/t",
        Some(&commit),
        &key,
    )
    .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let again = with_key(
        &app,
        Method::POST,
        "/v1/namespaces/idem/tables/t",
        Some(&commit),
        &key,
    )
    .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(
        again.json()["metadata-location"],
        first.json()["metadata-location"]
    );
    let loaded = app.get("/v1/namespaces/idem/tables/t").await.json();
    assert_eq!(loaded["metadata"]["snapshots"].as_array().unwrap().len(), 1);
    // The same commit without the key now fails its requirement: it was applied once.
    app.post("/v1/namespaces/idem/tables/t", &commit)
        .await
        .assert_error(StatusCode::CONFLICT, "CommitFailedException");

    // A final error is replayed too, even after the cause went away.
    let key = uuid::Uuid::now_v7().to_string();
    let table = json!({"name": "child", "schema": crate::common::simple_schema()});
    let path = "/v1/namespaces/ghost/tables";
    let first = with_key(&app, Method::POST, path, Some(&table), &key).await;
    first.assert_error(StatusCode::NOT_FOUND, "NoSuchNamespaceException");
    app.create_namespace(&["ghost"]).await;
    let again = with_key(&app, Method::POST, path, Some(&table), &key).await;
    again.assert_error(StatusCode::NOT_FOUND, "NoSuchNamespaceException");
    assert_eq!(
        app.head("/v1/namespaces/ghost/tables/child").await.status,
        StatusCode::NOT_FOUND
    );

    // Drops and renames replay as success.
    let key = uuid::Uuid::now_v7().to_string();
    assert_eq!(
        with_key(
            &app,
            Method::DELETE,
            "/v1/namespaces/idem/tables/t",
            None,
            &key
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        with_key(
            &app,
            Method::DELETE,
            "/v1/namespaces/idem/tables/t",
            None,
            &key
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
}

/// The same key sent by many clients at once: exactly one applies.
async fn concurrent_duplicates_apply_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_namespace(&["dup"]).await;
    let table = app.create_table("dup", "t", json!({})).await;
    let commit = append_commit(&table["metadata"], next_snapshot_id());
    let key = uuid::Uuid::now_v7().to_string();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = app.client.clone();
        let url = app.url("/v1/namespaces/dup/tables/t");
        let commit = commit.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .header("Idempotency-Key", key)
                .json(&commit)
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for t in tasks {
        let status = t.await.unwrap();
        assert_eq!(
            status,
            StatusCode::OK,
            "every duplicate gets the first outcome"
        );
    }
    let loaded = app.get("/v1/namespaces/dup/tables/t").await.json();
    assert_eq!(
        loaded["metadata"]["snapshots"].as_array().unwrap().len(),
        1,
        "a duplicate was applied twice"
    );
}

both_backends!(
    retried_requests_apply_once,
    concurrent_duplicates_apply_once
);
