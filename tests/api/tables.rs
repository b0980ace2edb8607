use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::common::{Backend, TestApp, simple_schema};

fn file_path(location: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(location.strip_prefix("file://").expect("file location"))
}

async fn table_lifecycle(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_namespace(&["db"]).await;
    let created = app
        .create_table(
            "db",
            "events",
            json!({"owner": "ana", "format-version": "2"}),
        )
        .await;
    let location = created["metadata-location"].as_str().unwrap().to_owned();
    assert!(
        location.contains("/metadata/00000-") && location.ends_with(".metadata.json"),
        "{location}"
    );
    assert!(
        file_path(&location).exists(),
        "metadata file was not written: {location}"
    );
    let metadata = &created["metadata"];
    assert_eq!(metadata["format-version"], 2);
    assert_eq!(metadata["properties"]["owner"], "ana");
    assert!(
        metadata["properties"].get("format-version").is_none(),
        "format-version is not a table property"
    );
    assert_eq!(
        metadata["partition-specs"][0]["fields"][0]["transform"],
        "bucket[4]"
    );
    let table_dir = metadata["location"].as_str().unwrap();
    assert!(
        table_dir.starts_with(&format!("file://{}", app.warehouse_dir().display())),
        "{table_dir}"
    );

    app.post(
        "/v1/namespaces/db/tables",
        &json!({"name": "events", "schema": simple_schema()}),
    )
    .await
    .assert_error(StatusCode::CONFLICT, "AlreadyExistsException");
    app.post(
        "/v1/namespaces/nope/tables",
        &json!({"name": "x", "schema": simple_schema()}),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "NoSuchNamespaceException");

    // Load, with an ETag answered by 304.
    let r = app.get("/v1/namespaces/db/tables/events").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["metadata-location"], location.as_str());
    assert_eq!(r.json()["metadata"], created["metadata"]);
    let etag = r
        .headers
        .get("etag")
        .expect("an ETag")
        .to_str()
        .unwrap()
        .to_owned();
    let r = app
        .request_with(
            Method::GET,
            "/v1/namespaces/db/tables/events",
            None,
            &[("If-None-Match", &etag)],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    let refs = app
        .get("/v1/namespaces/db/tables/events?snapshots=refs")
        .await;
    assert_ne!(
        refs.headers.get("etag").unwrap().to_str().unwrap(),
        etag,
        "modes have distinct tags"
    );
    app.get("/v1/namespaces/db/tables/events?snapshots=some")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "BadRequestException");
    assert_eq!(
        app.head("/v1/namespaces/db/tables/events").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.head("/v1/namespaces/db/tables/nope").await.status,
        StatusCode::NOT_FOUND
    );
    app.get("/v1/namespaces/db/tables/nope")
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchTableException");

    // A commit changes the version: the old tag no longer matches.
    let r = app
        .append_snapshot("db", "events", &created["metadata"])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app
        .request_with(
            Method::GET,
            "/v1/namespaces/db/tables/events",
            None,
            &[("If-None-Match", &etag)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json()["metadata"]["snapshots"].as_array().unwrap().len(),
        1
    );

    // Rename, across namespaces too.
    app.create_namespace(&["other"]).await;
    let rename = |from: (&str, &str), to: (&str, &str)| json!({"source": {"namespace": [from.0], "name": from.1}, "destination": {"namespace": [to.0], "name": to.1}});
    let r = app
        .post(
            "/v1/tables/rename",
            &rename(("db", "events"), ("other", "moved")),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    app.get("/v1/namespaces/db/tables/events")
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchTableException");
    let moved = app.get("/v1/namespaces/other/tables/moved").await;
    assert_eq!(
        moved.json()["metadata"]["snapshots"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    app.post(
        "/v1/tables/rename",
        &rename(("db", "events"), ("other", "x")),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "NoSuchTableException");
    app.create_table("db", "taken", json!({})).await;
    app.post(
        "/v1/tables/rename",
        &rename(("other", "moved"), ("db", "taken")),
    )
    .await
    .assert_error(StatusCode::CONFLICT, "AlreadyExistsException");
    app.post(
        "/v1/tables/rename",
        &rename(("other", "moved"), ("ghost", "x")),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "NoSuchNamespaceException");

    // Metrics reports are accepted.
    let r = app
        .post(
            "/v1/namespaces/other/tables/moved/metrics",
            &json!({"report-type": "scan-report", "table-name": "other.moved", "snapshot-id": 1,
                    "filter": true, "schema-id": 0, "projected-field-ids": [1], "projected-field-names": ["id"], "metrics": {}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);

    // Drop without purge keeps the files; the table can be registered again from them.
    let metadata_location = moved.json()["metadata-location"]
        .as_str()
        .unwrap()
        .to_owned();
    app.delete("/v1/namespaces/other/tables/moved?purgeRequested=maybe")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "BadRequestException");
    // Python clients send `False`.
    assert_eq!(
        app.delete("/v1/namespaces/other/tables/moved?purgeRequested=False")
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert!(
        file_path(&metadata_location).exists(),
        "drop without purge deleted files"
    );
    app.delete("/v1/namespaces/other/tables/moved")
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchTableException");
    let r = app
        .post(
            "/v1/namespaces/other/register",
            &json!({"name": "back", "metadata-location": metadata_location}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["metadata-location"], metadata_location.as_str());
    assert_eq!(
        r.json()["metadata"]["snapshots"].as_array().unwrap().len(),
        1
    );
    app.post(
        "/v1/namespaces/other/register",
        &json!({"name": "back", "metadata-location": metadata_location}),
    )
    .await
    .assert_error(StatusCode::CONFLICT, "AlreadyExistsException");
    let r = app
        .post(
            "/v1/namespaces/other/register",
            &json!({"name": "back", "metadata-location": metadata_location, "overwrite": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    app.post(
        "/v1/namespaces/other/register",
        &json!({"name": "x", "metadata-location": "file:///nonexistent/m.json"}),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "BadRequestException");

    // Drop with purge deletes the table's files and directory.
    let purged = app.create_table("db", "purged", json!({})).await;
    let dir = file_path(purged["metadata"]["location"].as_str().unwrap());
    assert!(dir.exists());
    let r = app
        .delete("/v1/namespaces/db/tables/purged?purgeRequested=True")
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    crate::common::eventually(&format!("purge of {}", dir.display()), || async {
        !dir.exists()
    })
    .await;
}

async fn table_pagination(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_namespace(&["pg"]).await;
    for i in 0..7 {
        app.create_table("pg", &format!("t{i}"), json!({})).await;
    }
    let mut names = Vec::new();
    let mut token = String::new();
    loop {
        let body = app
            .get(&format!(
                "/v1/namespaces/pg/tables?pageSize=3&pageToken={token}"
            ))
            .await
            .json();
        for ident in body["identifiers"].as_array().unwrap() {
            assert_eq!(ident["namespace"], json!(["pg"]));
            names.push(ident["name"].as_str().unwrap().to_owned());
        }
        match body["next-page-token"].as_str() {
            Some(t) => token = t.to_owned(),
            None => break,
        }
    }
    assert_eq!(names, (0..7).map(|i| format!("t{i}")).collect::<Vec<_>>());
    app.get("/v1/namespaces/nope/tables")
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchNamespaceException");
}

async fn staged_create_then_commit(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_namespace(&["st"]).await;
    let r = app
        .post(
            "/v1/namespaces/st/tables",
            &json!({"name": "ctas", "schema": simple_schema(), "stage-create": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let staged = r.json();
    assert!(
        staged["metadata-location"].is_null(),
        "a staged table has no metadata file yet"
    );
    app.get("/v1/namespaces/st/tables/ctas")
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchTableException");
    let meta = &staged["metadata"];
    // Clients such as DuckDB write manifests into a staged table's location before its first
    // commit: its metadata directory exists already.
    assert!(
        file_path(meta["location"].as_str().unwrap())
            .join("metadata")
            .is_dir()
    );
    let uuid = meta["table-uuid"].as_str().unwrap();
    let commit = json!({
        "requirements": [{"type": "assert-create"}],
        "updates": [
            {"action": "assign-uuid", "uuid": uuid},
            {"action": "upgrade-format-version", "format-version": 2},
            {"action": "add-schema", "schema": meta["schemas"][0], "last-column-id": 3},
            {"action": "set-current-schema", "schema-id": -1},
            {"action": "add-spec", "spec": {"fields": []}},
            {"action": "set-default-spec", "spec-id": -1},
            {"action": "add-sort-order", "sort-order": {"order-id": 0, "fields": []}},
            {"action": "set-default-sort-order", "sort-order-id": -1},
            {"action": "set-location", "location": meta["location"]},
            {"action": "set-properties", "updates": {"created-by": "ctas"}}
        ]
    });
    let r = app.post("/v1/namespaces/st/tables/ctas", &commit).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let body = r.json();
    assert_eq!(body["metadata"]["table-uuid"], uuid);
    assert_eq!(body["metadata"]["properties"]["created-by"], "ctas");
    let loaded = app.get("/v1/namespaces/st/tables/ctas").await.json();
    assert_eq!(loaded["metadata-location"], body["metadata-location"]);
    // A second create transaction for the same name loses.
    app.post("/v1/namespaces/st/tables/ctas", &commit)
        .await
        .assert_error(StatusCode::CONFLICT, "CommitFailedException");
    // Staging a name that exists is refused at once.
    app.post(
        "/v1/namespaces/st/tables",
        &json!({"name": "ctas", "schema": simple_schema(), "stage-create": true}),
    )
    .await
    .assert_error(StatusCode::CONFLICT, "AlreadyExistsException");
}

both_backends!(table_lifecycle, table_pagination, staged_create_then_commit);
