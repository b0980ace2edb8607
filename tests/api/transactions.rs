use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::common::{Backend, TestApp, append_commit, next_snapshot_id};

fn change(table: &str, requirements: Value, updates: Value) -> Value {
    json!({"identifier": {"namespace": ["tx"], "name": table}, "requirements": requirements, "updates": updates})
}

fn set_property(key: &str, value: &str) -> Value {
    json!([{"action": "set-properties", "updates": {key: value}}])
}

async fn locations(app: &TestApp, tables: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for t in tables {
        let body = app
            .get(&format!("/v1/namespaces/tx/tables/{t}"))
            .await
            .json();
        out.push(body["metadata-location"].as_str().unwrap().to_owned());
    }
    out
}

async fn transactions_are_all_or_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_namespace(&["tx"]).await;
    let mut metadata = Vec::new();
    for t in ["a", "b", "c"] {
        metadata.push(app.create_table("tx", t, json!({})).await["metadata"].clone());
    }
    let before = locations(&app, &["a", "b", "c"]).await;

    // The third table's requirement fails: nothing changes anywhere.
    let failing = json!({"table-changes": [
        change("a", json!([]), set_property("k", "1")),
        change("b", json!([{"type": "assert-table-uuid", "uuid": metadata[1]["table-uuid"]}]), set_property("k", "1")),
        change("c", json!([{"type": "assert-table-uuid", "uuid": "00000000-0000-0000-0000-000000000000"}]), set_property("k", "1")),
    ]});
    app.post("/v1/transactions/commit", &failing)
        .await
        .assert_error(StatusCode::CONFLICT, "CommitFailedException");
    assert_eq!(
        locations(&app, &["a", "b", "c"]).await,
        before,
        "a failed transaction changed a table"
    );

    // A missing table and an invalid update also change nothing.
    let missing = json!({"table-changes": [change("a", json!([]), set_property("k", "1")), change("zzz", json!([]), set_property("k", "1"))]});
    app.post("/v1/transactions/commit", &missing)
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchTableException");
    let invalid = json!({"table-changes": [change("a", json!([]), set_property("k", "1")),
        change("b", json!([]), json!([{"action": "set-current-schema", "schema-id": 99}]))]});
    app.post("/v1/transactions/commit", &invalid)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "BadRequestException");
    let twice = json!({"table-changes": [change("a", json!([]), set_property("k", "1")), change("a", json!([]), set_property("k", "2"))]});
    app.post("/v1/transactions/commit", &twice)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "BadRequestException");
    let no_ident = json!({"table-changes": [{"requirements": [], "updates": []}]});
    app.post("/v1/transactions/commit", &no_ident)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "BadRequestException");
    assert_eq!(locations(&app, &["a", "b", "c"]).await, before);

    // All requirements hold: every table changes.
    let mut commit_a = append_commit(&metadata[0], next_snapshot_id());
    commit_a["identifier"] = json!({"namespace": ["tx"], "name": "a"});
    let ok = json!({"table-changes": [
        commit_a,
        change("b", json!([{"type": "assert-table-uuid", "uuid": metadata[1]["table-uuid"]}]), set_property("k", "2")),
        change("c", json!([]), set_property("k", "2")),
    ]});
    let r = app.post("/v1/transactions/commit", &ok).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let after = locations(&app, &["a", "b", "c"]).await;
    for (b, a) in before.iter().zip(&after) {
        assert_ne!(b, a, "a table of a successful transaction did not change");
    }
    let a = app.get("/v1/namespaces/tx/tables/a").await.json();
    assert_eq!(a["metadata"]["snapshots"].as_array().unwrap().len(), 1);
    let c = app.get("/v1/namespaces/tx/tables/c").await.json();
    assert_eq!(c["metadata"]["properties"]["k"], "2");
}

/// Concurrent transactions over the same two tables: each sets one marker on both, so the
/// tables must always end with the same marker and the same number of versions.
async fn concurrent_transactions_never_interleave(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_namespace(&["tx"]).await;
    app.create_table("tx", "x", json!({})).await;
    app.create_table("tx", "y", json!({})).await;
    let mut tasks = Vec::new();
    for writer in 0..8 {
        let client = app.client.clone();
        let url = app.url("/v1/transactions/commit");
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            for round in 0..5 {
                let marker = format!("w{writer}-r{round}");
                // Alternate the order of tables so that lock ordering matters.
                let (first, second) = if writer % 2 == 0 {
                    ("x", "y")
                } else {
                    ("y", "x")
                };
                let body = json!({"table-changes": [
                    change(first, json!([]), set_property("marker", &marker)),
                    change(second, json!([]), set_property("marker", &marker)),
                ]});
                let r = client.post(&url).json(&body).send().await.unwrap();
                assert_eq!(
                    r.status(),
                    StatusCode::NO_CONTENT,
                    "{}",
                    r.text().await.unwrap()
                );
                done += 1;
            }
            done
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    let x = app.get("/v1/namespaces/tx/tables/x").await.json();
    let y = app.get("/v1/namespaces/tx/tables/y").await.json();
    assert_eq!(
        x["metadata"]["properties"]["marker"],
        y["metadata"]["properties"]["marker"]
    );
    let versions = |t: &Value| {
        t["metadata-location"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()[..5]
            .parse::<u32>()
            .unwrap()
    };
    assert_eq!(versions(&x), total);
    assert_eq!(versions(&y), total);
}

async fn unregister_keeps_files(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_namespace(&["tx"]).await;
    let created = app.create_table("tx", "u", json!({})).await;
    let r = app.append_snapshot("tx", "u", &created["metadata"]).await;
    let committed = r.json();
    let r = app
        .post("/v1/namespaces/tx/tables/u/unregister", &json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let body = r.json();
    assert_eq!(body["metadata-location"], committed["metadata-location"]);
    assert_eq!(body["metadata"]["snapshots"].as_array().unwrap().len(), 1);
    let location = body["metadata-location"].as_str().unwrap();
    assert!(std::path::Path::new(location.strip_prefix("file://").unwrap()).exists());
    app.get("/v1/namespaces/tx/tables/u")
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchTableException");
    app.post("/v1/namespaces/tx/tables/u/unregister", &json!({}))
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchTableException");
    // It registers back from its last metadata file.
    let r = app
        .post(
            "/v1/namespaces/tx/register",
            &json!({"name": "u", "metadata-location": location}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // With a key, a retry gets the same answer although the table is gone.
    let key = uuid::Uuid::now_v7().to_string();
    let first = app
        .request_with(
            reqwest::Method::POST,
            "/v1/namespaces/tx/tables/u/unregister",
            None,
            &[("Idempotency-Key", &key)],
        )
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let again = app
        .request_with(
            reqwest::Method::POST,
            "/v1/namespaces/tx/tables/u/unregister",
            None,
            &[("Idempotency-Key", &key)],
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.json(), first.json());
}

both_backends!(
    transactions_are_all_or_nothing,
    concurrent_transactions_never_interleave,
    unregister_keeps_files
);

/// A failure after the metadata files are written and before any row swaps (a crash at the
/// worst moment) leaves every table as it was.
#[cfg(feature = "failpoints")]
async fn a_crash_between_write_and_swap_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_namespace(&["tx"]).await;
    app.create_table("tx", "p", json!({})).await;
    app.create_table("tx", "q", json!({})).await;
    let before = locations(&app, &["p", "q"]).await;
    app.catalog().fail_next_swap();
    let body = json!({"table-changes": [change("p", json!([]), set_property("k", "1")), change("q", json!([]), set_property("k", "1"))]});
    let r = app.post("/v1/transactions/commit", &body).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.text);
    assert_eq!(locations(&app, &["p", "q"]).await, before);
    for t in ["p", "q"] {
        let loaded = app
            .get(&format!("/v1/namespaces/tx/tables/{t}"))
            .await
            .json();
        assert!(loaded["metadata"]["properties"].get("k").is_none());
    }
    // The next attempt goes through.
    let r = app.post("/v1/transactions/commit", &body).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
}

#[cfg(feature = "failpoints")]
both_backends!(a_crash_between_write_and_swap_changes_nothing);
