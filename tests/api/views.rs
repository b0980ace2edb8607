use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::common::{Backend, TestApp, simple_schema};

fn view_version(sql: &str) -> Value {
    json!({
        "version-id": 1,
        "schema-id": 0,
        "timestamp-ms": 1_700_000_000_000i64,
        "summary": {"engine-name": "tests"},
        "representations": [{"type": "sql", "sql": sql, "dialect": "spark"}],
        "default-namespace": ["v"]
    })
}

async fn view_lifecycle(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_namespace(&["v"]).await;
    app.create_table("v", "events", json!({})).await;
    let create = json!({"name": "recent", "schema": simple_schema(), "view-version": view_version("SELECT * FROM events"), "properties": {"owner": "ana"}});
    let r = app.post("/v1/namespaces/v/views", &create).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let created = r.json();
    let location = created["metadata-location"].as_str().unwrap().to_owned();
    assert!(std::path::Path::new(location.strip_prefix("file://").unwrap()).exists());
    assert_eq!(created["metadata"]["properties"]["owner"], "ana");
    assert_eq!(
        created["metadata"]["versions"][0]["representations"][0]["sql"],
        "SELECT * FROM events"
    );

    // One name space for tables and views.
    app.post("/v1/namespaces/v/views", &create)
        .await
        .assert_error(StatusCode::CONFLICT, "AlreadyExistsException");
    let clash = json!({"name": "events", "schema": simple_schema(), "view-version": view_version("SELECT 1"), "properties": {}});
    app.post("/v1/namespaces/v/views", &clash)
        .await
        .assert_error(StatusCode::CONFLICT, "AlreadyExistsException");
    app.post(
        "/v1/namespaces/v/tables",
        &json!({"name": "recent", "schema": simple_schema()}),
    )
    .await
    .assert_error(StatusCode::CONFLICT, "AlreadyExistsException");
    app.get("/v1/namespaces/v/views/events")
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchViewException");
    app.get("/v1/namespaces/v/tables/recent")
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchTableException");

    let loaded = app.get("/v1/namespaces/v/views/recent").await.json();
    assert_eq!(loaded["metadata-location"], location.as_str());
    assert_eq!(
        app.head("/v1/namespaces/v/views/recent").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.head("/v1/namespaces/v/views/nope").await.status,
        StatusCode::NOT_FOUND
    );
    let listed = app.get("/v1/namespaces/v/views").await.json();
    assert_eq!(
        listed["identifiers"],
        json!([{"namespace": ["v"], "name": "recent"}])
    );
    let tables = app.get("/v1/namespaces/v/tables").await.json();
    assert_eq!(
        tables["identifiers"],
        json!([{"namespace": ["v"], "name": "events"}]),
        "views are not tables"
    );

    // Replace: a new version becomes current.
    let uuid = created["metadata"]["view-uuid"].clone();
    let mut v2 = view_version("SELECT id FROM events");
    v2["version-id"] = json!(2);
    v2["timestamp-ms"] = json!(chrono::Utc::now().timestamp_millis());
    let replace = json!({
        "requirements": [{"type": "assert-view-uuid", "uuid": uuid}],
        "updates": [
            {"action": "add-view-version", "view-version": v2},
            {"action": "set-current-view-version", "view-version-id": -1},
            {"action": "set-properties", "updates": {"k": "v"}}
        ]
    });
    let r = app.post("/v1/namespaces/v/views/recent", &replace).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let replaced = r.json();
    assert_ne!(replaced["metadata-location"], location.as_str());
    let current = replaced["metadata"]["current-version-id"].as_i64().unwrap();
    let sql = replaced["metadata"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["version-id"].as_i64() == Some(current))
        .unwrap()["representations"][0]["sql"]
        .clone();
    assert_eq!(sql, "SELECT id FROM events");
    assert_eq!(replaced["metadata"]["properties"]["k"], "v");
    let wrong = json!({"requirements": [{"type": "assert-view-uuid", "uuid": "00000000-0000-0000-0000-000000000000"}], "updates": []});
    app.post("/v1/namespaces/v/views/recent", &wrong)
        .await
        .assert_error(StatusCode::CONFLICT, "CommitFailedException");
    let bad = json!({"requirements": [], "updates": [{"action": "set-current-view-version", "view-version-id": 42}]});
    app.post("/v1/namespaces/v/views/recent", &bad)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "BadRequestException");

    // Rename, drop, register.
    let rename = json!({"source": {"namespace": ["v"], "name": "recent"}, "destination": {"namespace": ["v"], "name": "latest"}});
    assert_eq!(
        app.post("/v1/views/rename", &rename).await.status,
        StatusCode::NO_CONTENT
    );
    app.post("/v1/views/rename", &rename)
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchViewException");
    let onto_table = json!({"source": {"namespace": ["v"], "name": "latest"}, "destination": {"namespace": ["v"], "name": "events"}});
    app.post("/v1/views/rename", &onto_table)
        .await
        .assert_error(StatusCode::CONFLICT, "AlreadyExistsException");
    app.delete("/v1/namespaces/v")
        .await
        .assert_error(StatusCode::CONFLICT, "NamespaceNotEmptyException");
    let last = app.get("/v1/namespaces/v/views/latest").await.json()["metadata-location"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.delete("/v1/namespaces/v/views/latest").await.status,
        StatusCode::NO_CONTENT
    );
    app.delete("/v1/namespaces/v/views/latest")
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchViewException");
    let r = app
        .post(
            "/v1/namespaces/v/register-view",
            &json!({"name": "back", "metadata-location": last}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["metadata"]["properties"]["k"], "v");
}

async fn table_credentials_for_file_warehouses(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_namespace(&["cr"]).await;
    app.create_table("cr", "t", json!({})).await;
    let r = app.get("/v1/namespaces/cr/tables/t/credentials").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json(), json!({"storage-credentials": []}));
    app.get("/v1/namespaces/cr/tables/nope/credentials")
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchTableException");
}

both_backends!(view_lifecycle, table_credentials_for_file_warehouses);
