//! Agreement with the Java reference where the iceberg crate's model differs: what a client
//! sets must come back from the response, a fresh load, the metadata file and a restart.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::common::{Backend, TestApp, append_commit, next_snapshot_id};

fn refs_of(metadata: &Value) -> Vec<String> {
    let mut names: Vec<String> = metadata["refs"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// Branches and tags of a format-version 1 table are kept everywhere (the crate's v1 form
/// has no `refs`; a 200 for a change that was dropped is the worst answer).
async fn v1_refs_are_kept(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_namespace(&["ns"]).await;
    let created = app
        .create_table("ns", "v1", json!({"format-version": "1"}))
        .await;
    assert_eq!(created["metadata"]["format-version"], 1);
    // A v1 snapshot has no sequence number.
    let mut commit = append_commit(&created["metadata"], next_snapshot_id());
    commit["updates"][0]["snapshot"]
        .as_object_mut()
        .unwrap()
        .remove("sequence-number");
    let r = app.post("/v1/namespaces/ns/tables/v1", &commit).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let snapshot_id = r.json()["metadata"]["current-snapshot-id"]
        .as_i64()
        .unwrap();
    let r = app
        .post(
            "/v1/namespaces/ns/tables/v1",
            &json!({"requirements": [], "updates": [
                {"action": "set-snapshot-ref", "ref-name": "audit", "type": "tag",
                 "snapshot-id": snapshot_id, "max-ref-age-ms": 86400000},
                {"action": "set-snapshot-ref", "ref-name": "dev", "type": "branch",
                 "snapshot-id": snapshot_id}
            ]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let committed = r.json();
    let expected = vec!["audit".to_owned(), "dev".to_owned(), "main".to_owned()];
    assert_eq!(refs_of(&committed["metadata"]), expected, "commit response");
    assert_eq!(committed["metadata"]["format-version"], 1);
    assert_eq!(
        committed["metadata"]["refs"]["audit"],
        json!({"snapshot-id": snapshot_id, "type": "tag", "max-ref-age-ms": 86400000})
    );
    let file = committed["metadata-location"].as_str().unwrap();
    let on_disk: Value =
        serde_json::from_slice(&std::fs::read(file.strip_prefix("file://").unwrap()).unwrap())
            .unwrap();
    assert_eq!(refs_of(&on_disk), expected, "metadata file");

    // A later commit keeps them; a requirement on a tag is checked against them.
    let r = app
        .post(
            "/v1/namespaces/ns/tables/v1",
            &json!({"requirements": [
                {"type": "assert-ref-snapshot-id", "ref": "dev", "snapshot-id": snapshot_id}],
                "updates": [{"action": "set-properties", "updates": {"k": "v"}}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        refs_of(&r.json()["metadata"]),
        expected,
        "after another commit"
    );

    // A fresh process reads them back from the database.
    let (dir, database_url) = app.stop().await;
    let app = TestApp::spawn_on(backend, dir, database_url, &[]).await;
    let loaded = app.get("/v1/namespaces/ns/tables/v1").await.json();
    assert_eq!(refs_of(&loaded["metadata"]), expected, "after a restart");
    let r = app
        .post(
            "/v1/namespaces/ns/tables/v1",
            &json!({"requirements": [
                {"type": "assert-ref-snapshot-id", "ref": "audit", "snapshot-id": snapshot_id}],
                "updates": [{"action": "remove-snapshot-ref", "ref-name": "audit"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        refs_of(&r.json()["metadata"]),
        vec!["dev".to_owned(), "main".to_owned()]
    );

    // Registering a v1 metadata file that names refs keeps them too.
    let file = r.json()["metadata-location"].as_str().unwrap().to_owned();
    let r = app
        .post(
            "/v1/namespaces/ns/register",
            &json!({"name": "again", "metadata-location": file, "overwrite": false}),
        )
        .await;
    // The location is v1's own: registering it under another name is refused...
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    // ...but the owner may re-register it over itself.
    let r = app
        .post(
            "/v1/namespaces/ns/register",
            &json!({"name": "v1", "metadata-location": file, "overwrite": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        refs_of(&r.json()["metadata"]),
        vec!["dev".to_owned(), "main".to_owned()]
    );
}

/// A float default comes back as the client wrote it, not widened to a double's digits.
async fn float_defaults_keep_their_digits(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_namespace(&["ns"]).await;
    let r = app
        .post(
            "/v1/namespaces/ns/tables",
            &json!({"name": "f", "properties": {"format-version": "3"}, "schema": {
                "type": "struct", "schema-id": 0, "fields": [
                    {"id": 1, "name": "id", "required": true, "type": "long"},
                    {"id": 2, "name": "ratio", "required": false, "type": "float",
                     "initial-default": 22.27, "write-default": 22.27}]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.contains("\"write-default\":22.27"), "{}", r.text);
    assert!(!r.text.contains("22.270000457763672"), "{}", r.text);
    let loaded = app.get("/v1/namespaces/ns/tables/f").await;
    assert!(
        !loaded.text.contains("22.270000457763672"),
        "{}",
        loaded.text
    );
}

/// New tables get the properties the Java reference adds, unless the client set them.
async fn new_tables_get_java_defaults(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_namespace(&["ns"]).await;
    let t = app.create_table("ns", "plain", json!({})).await;
    assert_eq!(
        t["metadata"]["properties"]["write.parquet.compression-codec"],
        "zstd"
    );
    let t = app
        .create_table(
            "ns",
            "snappy",
            json!({"write.parquet.compression-codec": "snappy"}),
        )
        .await;
    assert_eq!(
        t["metadata"]["properties"]["write.parquet.compression-codec"],
        "snappy"
    );
}

/// Fresh field ids are given in the Java reference's order: a struct's fields first, then the
/// types inside them; a map's key and value ids before either type.
async fn fresh_ids_follow_java(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_namespace(&["ns"]).await;
    let int =
        |id: i32, name: &str| json!({"id": id, "name": name, "required": false, "type": "int"});
    let schema = json!({"type": "struct", "schema-id": 0, "identifier-field-ids": [1], "fields": [
        {"id": 1, "name": "id", "required": true, "type": "long"},
        {"id": 2, "name": "m", "required": false, "type": {"type": "map",
            "key-id": 3, "key": {"type": "struct", "fields": [int(4, "k1")]},
            "value-id": 5, "value": {"type": "struct", "fields": [int(6, "v1"), int(7, "v2")]},
            "value-required": false}},
        {"id": 8, "name": "l", "required": false, "type": {"type": "list",
            "element-id": 9, "element": {"type": "struct", "fields": [int(10, "e1")]},
            "element-required": false}},
        {"id": 11, "name": "s", "required": false, "type": {"type": "struct",
            "fields": [int(12, "s1")]}}]});
    let r = app
        .post(
            "/v1/namespaces/ns/tables",
            &json!({"name": "ids", "schema": schema,
                    "partition-spec": {"spec-id": 0, "fields": [
                        {"source-id": 12, "field-id": 1000, "name": "s1_b", "transform": "bucket[4]"}]},
                    "write-order": {"order-id": 1, "fields": [
                        {"source-id": 1, "transform": "identity", "direction": "asc", "null-order": "nulls-first"}]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let metadata = r.json()["metadata"].clone();
    let fields = &metadata["schemas"][0]["fields"];
    // Java: id 1, m 2, l 3, s 4; m's key 5 and value 6; key's k1 7; value's v1 8, v2 9;
    // l's element 10, its e1 11; s's s1 12.
    assert_eq!(fields[0]["id"], 1);
    assert_eq!(fields[1]["id"], 2);
    assert_eq!(fields[2]["id"], 3);
    assert_eq!(fields[3]["id"], 4);
    assert_eq!(fields[1]["type"]["key-id"], 5);
    assert_eq!(fields[1]["type"]["value-id"], 6);
    assert_eq!(fields[1]["type"]["key"]["fields"][0]["id"], 7);
    assert_eq!(fields[1]["type"]["value"]["fields"][0]["id"], 8);
    assert_eq!(fields[1]["type"]["value"]["fields"][1]["id"], 9);
    assert_eq!(fields[2]["type"]["element-id"], 10);
    assert_eq!(fields[2]["type"]["element"]["fields"][0]["id"], 11);
    assert_eq!(fields[3]["type"]["fields"][0]["id"], 12);
    assert_eq!(metadata["last-column-id"], 12);
    assert_eq!(metadata["schemas"][0]["identifier-field-ids"], json!([1]));
    // The partition and sort fields still name the same columns.
    assert_eq!(metadata["partition-specs"][0]["fields"][0]["source-id"], 12);
    let order = metadata["sort-orders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["order-id"] == metadata["default-sort-order-id"])
        .unwrap();
    assert_eq!(order["fields"][0]["source-id"], 1);
    let loaded = app.get("/v1/namespaces/ns/tables/ids").await.json();
    assert_eq!(loaded["metadata"]["schemas"], metadata["schemas"]);
}

/// Every field the v1, v2 and v3 forms carry comes back from the commit response, a fresh
/// process's load and the metadata file: statistics, partition statistics, refs, and on v3
/// encryption keys and row lineage (next-row-id).
async fn fields_survive_every_form(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_namespace(&["ns"]).await;
    for version in [1, 2, 3] {
        let name = format!("f_v{version}");
        let created = app
            .create_table("ns", &name, json!({"format-version": version.to_string()}))
            .await;
        let mut commit = append_commit(&created["metadata"], next_snapshot_id());
        let snapshot = commit["updates"][0]["snapshot"].as_object_mut().unwrap();
        if version == 1 {
            snapshot.remove("sequence-number");
        }
        if version == 3 {
            snapshot.insert("first-row-id".into(), json!(0));
            snapshot.insert("added-rows".into(), json!(42));
        }
        let r = app
            .post(&format!("/v1/namespaces/ns/tables/{name}"), &commit)
            .await;
        assert_eq!(r.status, StatusCode::OK, "v{version}: {}", r.text);
        let metadata = r.json()["metadata"].clone();
        let snapshot_id = metadata["current-snapshot-id"].as_i64().unwrap();
        let location = metadata["location"].as_str().unwrap().to_owned();
        let mut updates = vec![
            json!({"action": "set-statistics", "snapshot-id": snapshot_id, "statistics": {
                "snapshot-id": snapshot_id, "statistics-path": format!("{location}/metadata/s.puffin"),
                "file-size-in-bytes": 10, "file-footer-size-in-bytes": 2, "blob-metadata": [
                    {"type": "apache-datasketches-theta-v1", "snapshot-id": snapshot_id,
                     "sequence-number": 1, "fields": [1], "properties": {"ndv": "3"}}]}}),
            json!({"action": "set-partition-statistics", "partition-statistics": {
                "snapshot-id": snapshot_id, "statistics-path": format!("{location}/metadata/p.parquet"),
                "file-size-in-bytes": 20}}),
            json!({"action": "set-snapshot-ref", "ref-name": "tagged", "type": "tag",
                   "snapshot-id": snapshot_id}),
        ];
        if version == 3 {
            updates.push(json!({"action": "add-encryption-key", "encryption-key": {
                "key-id": "k1", "encrypted-key-metadata": "AAEC", "properties": {"a": "b"}}}));
        }
        let r = app
            .post(
                &format!("/v1/namespaces/ns/tables/{name}"),
                &json!({"requirements": [], "updates": updates}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "v{version}: {}", r.text);
        let check = |what: &str, m: &Value| {
            assert_eq!(
                m["statistics"][0]["statistics-path"],
                format!("{location}/metadata/s.puffin"),
                "v{version} {what}: {m}"
            );
            assert_eq!(
                m["statistics"][0]["blob-metadata"][0]["properties"]["ndv"], "3",
                "v{version} {what}"
            );
            assert_eq!(
                m["partition-statistics"][0]["file-size-in-bytes"], 20,
                "v{version} {what}: {m}"
            );
            assert_eq!(m["refs"]["tagged"]["type"], "tag", "v{version} {what}: {m}");
            if version == 3 {
                assert_eq!(m["next-row-id"], 42, "v{version} {what}: {m}");
                assert_eq!(
                    m["encryption-keys"][0]["key-id"], "k1",
                    "v{version} {what}: {m}"
                );
            }
        };
        let committed = r.json();
        check("response", &committed["metadata"]);
        let file = committed["metadata-location"]
            .as_str()
            .unwrap()
            .strip_prefix("file://")
            .unwrap()
            .to_owned();
        let on_disk: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        check("file", &on_disk);
    }
    let (dir, database_url) = app.stop().await;
    let app = TestApp::spawn_on(backend, dir, database_url, &[]).await;
    for version in [1, 2, 3] {
        let loaded = app
            .get(&format!("/v1/namespaces/ns/tables/f_v{version}"))
            .await
            .json();
        let m = &loaded["metadata"];
        assert_eq!(
            m["statistics"].as_array().map(Vec::len),
            Some(1),
            "v{version} load: {m}"
        );
        assert_eq!(
            m["partition-statistics"].as_array().map(Vec::len),
            Some(1),
            "v{version} load"
        );
        assert_eq!(m["refs"]["tagged"]["type"], "tag", "v{version} load: {m}");
        if version == 3 {
            assert_eq!(m["next-row-id"], 42, "v3 load: {m}");
            assert_eq!(m["encryption-keys"][0]["key-id"], "k1", "v3 load: {m}");
        }
    }
}

/// Partition specs Java binds and the crate used to refuse: two time transforms of one
/// column (PyIceberg's `test_add_hour_to_day`), and the `void` field a v1 table keeps in place
/// of a dropped partition field, named like its source column (vendor/iceberg patches).
async fn specs_bind_like_java(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_namespace(&["ns"]).await;
    let spec_update = |fields: Value| {
        json!({"requirements": [], "updates": [
            {"action": "add-spec", "spec": {"fields": fields}},
            {"action": "set-default-spec", "spec-id": -1}]})
    };
    for version in ["1", "2"] {
        let name = format!("days_v{version}");
        let r = app
            .post(
                "/v1/namespaces/ns/tables",
                &json!({"name": name, "schema": crate::common::simple_schema(),
                        "properties": {"format-version": version},
                        "partition-spec": {"spec-id": 0, "fields": [
                            {"source-id": 3, "field-id": 1000, "name": "ts_day", "transform": "day"},
                            {"source-id": 2, "field-id": 1001, "name": "data", "transform": "identity"}]}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        // Day and hour of one column side by side.
        let r = app
            .post(
                &format!("/v1/namespaces/ns/tables/{name}"),
                &spec_update(json!([
                    {"source-id": 3, "field-id": 1000, "name": "ts_day", "transform": "day"},
                    {"source-id": 2, "field-id": 1001, "name": "data", "transform": "identity"},
                    {"source-id": 3, "field-id": 1002, "name": "ts_hour", "transform": "hour"}])),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "v{version}: {}", r.text);
        assert_eq!(r.json()["metadata"]["default-spec-id"], 1, "v{version}");
        // The v1 way to drop a field: replace its transform with void, keep its name.
        let r = app
            .post(
                &format!("/v1/namespaces/ns/tables/{name}"),
                &spec_update(json!([
                    {"source-id": 3, "field-id": 1000, "name": "ts_day", "transform": "day"},
                    {"source-id": 2, "field-id": 1001, "name": "data", "transform": "void"},
                    {"source-id": 3, "field-id": 1002, "name": "ts_hour", "transform": "hour"}])),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "v{version}: {}", r.text);
        // Later commits still build (the default spec is bound again at every build).
        let r = app
            .post(
                &format!("/v1/namespaces/ns/tables/{name}"),
                &json!({"requirements": [], "updates": [
                    {"action": "set-properties", "updates": {"after": "yes"}}]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "v{version}: {}", r.text);
        let loaded = app
            .get(&format!("/v1/namespaces/ns/tables/{name}"))
            .await
            .json()["metadata"]
            .clone();
        assert_eq!(loaded["default-spec-id"], 2, "v{version}: {loaded}");
        let default = loaded["partition-specs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["spec-id"] == 2)
            .unwrap();
        assert_eq!(default["fields"][1]["transform"], "void", "v{version}");
        assert_eq!(default["fields"][1]["name"], "data", "v{version}");
        // A name that belongs to another column is still refused.
        let r = app
            .post(
                &format!("/v1/namespaces/ns/tables/{name}"),
                &spec_update(json!([
                    {"source-id": 3, "field-id": 1000, "name": "data", "transform": "day"}])),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "v{version}: {}", r.text);
    }
}

/// A requirement that no longer holds is a 409 in the Java reference's words, which clients
/// match on.
async fn requirement_failures_speak_java(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_namespace(&["ns"]).await;
    let created = app.create_table("ns", "t", json!({})).await;
    let r = app.append_snapshot("ns", "t", &created["metadata"]).await;
    let snapshot_id = r.json()["metadata"]["current-snapshot-id"]
        .as_i64()
        .unwrap();
    for (name, kind) in [("v1", "tag"), ("dev", "branch")] {
        let r = app
            .post(
                "/v1/namespaces/ns/tables/t",
                &json!({"requirements": [], "updates": [{"action": "set-snapshot-ref",
                    "ref-name": name, "type": kind, "snapshot-id": snapshot_id}]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    for (requirement, expected) in [
        (
            json!({"type": "assert-ref-snapshot-id", "ref": "v1", "snapshot-id": 2}),
            format!("Requirement failed: tag v1 has changed: expected id 2 != {snapshot_id}"),
        ),
        (
            json!({"type": "assert-ref-snapshot-id", "ref": "dev", "snapshot-id": 3}),
            format!("Requirement failed: branch dev has changed: expected id 3 != {snapshot_id}"),
        ),
        (
            json!({"type": "assert-default-spec-id", "default-spec-id": 7}),
            "Requirement failed: default partition spec changed: expected id 7 != 0".to_owned(),
        ),
        (
            json!({"type": "assert-current-schema-id", "current-schema-id": 3}),
            "Requirement failed: current schema changed: expected id 3 != 0".to_owned(),
        ),
        (
            json!({"type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": 1}),
            format!("Requirement failed: branch main has changed: expected id 1 != {snapshot_id}"),
        ),
        (
            json!({"type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": null}),
            "Requirement failed: branch main was created concurrently".to_owned(),
        ),
        (
            json!({"type": "assert-ref-snapshot-id", "ref": "gone", "snapshot-id": 5}),
            "Requirement failed: branch or tag gone is missing, expected 5".to_owned(),
        ),
    ] {
        let r = app
            .post(
                "/v1/namespaces/ns/tables/t",
                &json!({"requirements": [requirement], "updates": [
                    {"action": "set-properties", "updates": {"k": "v"}}]}),
            )
            .await;
        let message = r.assert_error(StatusCode::CONFLICT, "CommitFailedException");
        assert!(message.contains(&expected), "{message} lacks {expected}");
    }
}

/// Snapshot summaries keep the key order their writer gave them (Java and PyIceberg show
/// them so), through later commits, both load modes, a transaction and a register.
async fn summaries_keep_the_writers_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_namespace(&["ns"]).await;
    let created = app.create_table("ns", "s", json!({})).await;
    let written = r#""summary":{"operation":"append","added-files-size":"10","added-data-files":"1","zeta":"z","added-records":"5","alpha":"a"}"#;
    let commit = |metadata: &Value| {
        let text = append_commit(metadata, next_snapshot_id()).to_string();
        assert!(
            text.contains(r#""summary":{"operation":"append"}"#),
            "{text}"
        );
        text.replace(r#""summary":{"operation":"append"}"#, written)
    };
    let r = app
        .post_text("/v1/namespaces/ns/tables/s", commit(&created["metadata"]))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.contains(written), "{}", r.text);
    // A later commit (here, a transaction) leaves the first summary's order alone.
    let second = commit(&r.json()["metadata"]).replacen(
        '{',
        r#"{"identifier":{"namespace":["ns"],"name":"s"},"#,
        1,
    );
    let r = app
        .post_text(
            "/v1/transactions/commit",
            format!(r#"{{"table-changes":[{second}]}}"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    for path in [
        "/v1/namespaces/ns/tables/s",
        "/v1/namespaces/ns/tables/s?snapshots=refs",
    ] {
        let loaded = app.get(path).await;
        assert_eq!(
            loaded.text.matches(written).count(),
            if path.ends_with("refs") { 1 } else { 2 },
            "{path}: {}",
            loaded.text
        );
    }
    let loaded = app.get("/v1/namespaces/ns/tables/s").await.json();
    let file = loaded["metadata-location"].as_str().unwrap();
    let text = std::fs::read_to_string(file.trim_start_matches("file://")).unwrap();
    assert_eq!(text.matches(written).count(), 2, "{text}");
    // Registered elsewhere, the file's order is kept.
    let r = app
        .post(
            "/v1/namespaces/ns/register",
            &json!({"name": "again", "metadata-location": file}),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::CONFLICT,
        "the location is taken: {}",
        r.text
    );
    assert_eq!(
        app.delete("/v1/namespaces/ns/tables/s").await.status,
        StatusCode::NO_CONTENT
    );
    let r = app
        .post(
            "/v1/namespaces/ns/register",
            &json!({"name": "again", "metadata-location": file}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.text.matches(written).count(), 2, "{}", r.text);
}

both_backends!(
    summaries_keep_the_writers_order,
    requirement_failures_speak_java,
    specs_bind_like_java,
    fields_survive_every_form,
    fresh_ids_follow_java,
    v1_refs_are_kept,
    float_defaults_keep_their_digits,
    new_tables_get_java_defaults
);
