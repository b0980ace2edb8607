//! Hostile input, as a client that wants to break out would send it: each test plants a victim
//! (a file outside the warehouse, another table's files), tries the escape, and checks that the
//! answer is the right 4xx and the victim is intact.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::common::{Backend, Resp, TestApp, simple_schema};

/// A file outside the warehouse (in the server's data directory, beside the warehouse).
fn plant_victim(app: &TestApp, name: &str) -> PathBuf {
    let path = app.warehouse_dir().parent().unwrap().join(name);
    std::fs::write(&path, b"victim").unwrap();
    path
}

fn assert_intact(path: &Path) {
    assert_eq!(
        std::fs::read(path).unwrap_or_else(|e| panic!("{} is gone: {e}", path.display())),
        b"victim",
        "{} was changed",
        path.display()
    );
}

fn url_of(path: &Path) -> String {
    format!("file://{}", path.display())
}

fn table_location(load: &Value) -> String {
    load["metadata"]["location"]
        .as_str()
        .expect("table location")
        .to_owned()
}

fn local(location: &str) -> PathBuf {
    PathBuf::from(location.strip_prefix("file://").expect("a file location"))
}

async fn commit(app: &TestApp, ns: &str, table: &str, updates: Value) -> Resp {
    app.post(
        &format!("/v1/namespaces/{ns}/tables/{table}"),
        &json!({"requirements": [], "updates": updates}),
    )
    .await
}

fn statistics(path: &str, snapshot_id: i64) -> Value {
    json!({
        "snapshot-id": snapshot_id,
        "statistics-path": path,
        "file-size-in-bytes": 6,
        "file-footer-size-in-bytes": 1,
        "blob-metadata": []
    })
}

fn assert_bad_request_naming(r: &Resp, needle: &str) {
    let message = r.assert_error(StatusCode::BAD_REQUEST, "BadRequestException");
    assert!(
        message.contains(needle),
        "message does not name '{needle}': {message}"
    );
}

/// Waits until no purge task is left.
async fn purged(app: &TestApp) {
    crate::common::eventually("every purge done", || async {
        crate::common::metric(app, "serac_purge_tasks").await == 0.0
    })
    .await;
}

async fn purge(app: &TestApp, ns: &str, table: &str) -> Resp {
    app.request(
        Method::DELETE,
        &format!("/v1/namespaces/{ns}/tables/{table}?purgeRequested=true"),
        None,
    )
    .await
}

/// Statistics, set-location, path properties, manifest lists and namespace locations must
/// stay in the warehouse; a purge afterwards leaves the victims alone.
async fn locations_outside_the_warehouse_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let victim = plant_victim(&app, "victim.txt");
    let victim_dir = app
        .warehouse_dir()
        .parent()
        .unwrap()
        .join(format!("loot-{}", "0123456789abcdef0123456789abcdef"));
    std::fs::create_dir_all(&victim_dir).unwrap();
    let victim_in_dir = victim_dir.join("precious.txt");
    std::fs::write(&victim_in_dir, b"victim").unwrap();
    app.create_namespace(&["ns"]).await;
    let load = app.create_table("ns", "t", json!({})).await;
    let location = table_location(&load);
    let r = app.append_snapshot("ns", "t", &load["metadata"]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let snapshot_id = r.json()["metadata"]["current-snapshot-id"]
        .as_i64()
        .unwrap();

    for (path, form) in [
        (url_of(&victim), "file URL"),
        (victim.display().to_string(), "bare path"),
        (format!("{location}/../../victim.txt"), "dot-dot"),
        (
            format!("{location}/%2e%2e/%2e%2e/victim.txt"),
            "encoded dot-dot",
        ),
        ("file:///proc/self/environ".into(), "proc"),
    ] {
        let r = commit(
            &app,
            "ns",
            "t",
            json!([{"action": "set-statistics", "snapshot-id": snapshot_id,
                    "statistics": statistics(&path, snapshot_id)}]),
        )
        .await;
        assert_bad_request_naming(&r, "statistics-path");
        let r = commit(
            &app,
            "ns",
            "t",
            json!([{"action": "set-partition-statistics", "partition-statistics": {
                "snapshot-id": snapshot_id, "statistics-path": path, "file-size-in-bytes": 6}}]),
        )
        .await;
        assert!(r.status == StatusCode::BAD_REQUEST, "{form}: {}", r.text);
    }

    // The "own directory" trick: a sibling of the warehouse named like a generated directory.
    let escape = format!(
        "file://{}/../{}",
        app.warehouse_dir().display(),
        victim_dir.file_name().unwrap().to_str().unwrap()
    );
    let r = commit(
        &app,
        "ns",
        "t",
        json!([{"action": "set-location", "location": escape}]),
    )
    .await;
    assert_bad_request_naming(&r, "set-location");
    let r = commit(
        &app,
        "ns",
        "t",
        json!([{"action": "set-location", "location": url_of(&victim_dir)}]),
    )
    .await;
    assert_bad_request_naming(&r, "outside warehouse");

    for key in [
        "write.data.path",
        "write.metadata.path",
        "write.object-storage.path",
    ] {
        let r = commit(
            &app,
            "ns",
            "t",
            json!([{"action": "set-properties", "updates": {key: url_of(&victim_dir)}}]),
        )
        .await;
        assert_bad_request_naming(&r, key);
    }
    let snapshot = json!({
        "snapshot-id": snapshot_id + 1_000_000,
        "parent-snapshot-id": snapshot_id,
        "sequence-number": 2,
        "timestamp-ms": chrono::Utc::now().timestamp_millis(),
        "manifest-list": "file:///dev/zero",
        "summary": {"operation": "append"},
        "schema-id": 0
    });
    let r = commit(
        &app,
        "ns",
        "t",
        json!([{"action": "add-snapshot", "snapshot": snapshot}]),
    )
    .await;
    assert_bad_request_naming(&r, "manifest-list");

    // Creates: a location outside, the warehouse root itself, a namespace location outside.
    let outside = app
        .warehouse_dir()
        .parent()
        .unwrap()
        .join("created-outside");
    for requested in [url_of(&outside), url_of(&app.warehouse_dir())] {
        let r = app
            .post(
                "/v1/namespaces/ns/tables",
                &json!({"name": "escapee", "schema": simple_schema(), "location": requested}),
            )
            .await;
        assert_bad_request_naming(&r, "location");
    }
    assert!(
        !outside.exists(),
        "a refused create wrote {}",
        outside.display()
    );
    let r = app
        .post(
            "/v1/namespaces",
            &json!({"namespace": ["evil"], "properties": {"location": url_of(&outside)}}),
        )
        .await;
    assert_bad_request_naming(&r, "location");
    let r = app
        .post(
            "/v1/namespaces/ns/properties",
            &json!({"updates": {"location": url_of(&outside)}}),
        )
        .await;
    assert_bad_request_naming(&r, "location");

    // Nothing above changed the table: a purge deletes its own files and nothing else.
    let r = purge(&app, "ns", "t").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    purged(&app).await;
    assert_intact(&victim);
    assert_intact(&victim_in_dir);
    assert!(
        !local(&location).exists(),
        "the purged table's directory is left"
    );
}

/// Tables claim their directories: no create, register or set-location may take a location
/// at, above or below another table's, and a purge keeps files of other tables that its
/// metadata names.
async fn tables_never_share_a_location(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_namespace(&["ns"]).await;
    let a = app.create_table("ns", "a", json!({})).await;
    let a_location = table_location(&a);
    let a_metadata_file = a["metadata-location"].as_str().unwrap().to_owned();
    let parent = a_location.rsplit_once('/').unwrap().0.to_owned();
    for requested in [
        a_location.clone(),
        format!("{a_location}/"),
        format!("{a_location}/sub"),
        format!("{a_location}//sub/./deeper"),
        parent.clone(),
    ] {
        let r = app
            .post(
                "/v1/namespaces/ns/tables",
                &json!({"name": "b", "schema": simple_schema(), "location": requested}),
            )
            .await;
        r.assert_error(StatusCode::CONFLICT, "AlreadyExistsException");
        let r = app
            .post(
                "/v1/namespaces/ns/views",
                &json!({"name": "v", "schema": simple_schema(), "location": requested,
                        "view-version": view_version()}),
            )
            .await;
        r.assert_error(StatusCode::CONFLICT, "AlreadyExistsException");
    }
    let r = app.get("/v1/namespaces/ns/tables/b").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Registering A's metadata file under another name would share A's files.
    let r = app
        .post(
            "/v1/namespaces/ns/register",
            &json!({"name": "copy", "metadata-location": a_metadata_file}),
        )
        .await;
    r.assert_error(StatusCode::CONFLICT, "AlreadyExistsException");

    // B elsewhere may not move into A's directory.
    let b = app.create_table("ns", "b", json!({})).await;
    let b_location = table_location(&b);
    let r = commit(
        &app,
        "ns",
        "b",
        json!([{"action": "set-location", "location": format!("{a_location}/inner")}]),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    // A move to a fresh directory is fine, and frees the old one.
    let fresh = format!("{parent}/b-moved");
    let r = commit(
        &app,
        "ns",
        "b",
        json!([{"action": "set-location", "location": fresh}]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app
        .post(
            "/v1/namespaces/ns/tables",
            &json!({"name": "c", "schema": simple_schema(), "location": b_location}),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "the old location stays claimed: {}",
        r.text
    );

    // A's metadata names a statistics file of B (inside the warehouse, so accepted): purging
    // A must keep it.
    let b_file = local(&fresh).join("data/keep.parquet");
    std::fs::create_dir_all(b_file.parent().unwrap()).unwrap();
    std::fs::write(&b_file, b"victim").unwrap();
    let r = app.append_snapshot("ns", "a", &a["metadata"]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let snapshot_id = r.json()["metadata"]["current-snapshot-id"]
        .as_i64()
        .unwrap();
    let a_stats = local(&a_location).join("metadata/stats.puffin");
    std::fs::write(&a_stats, b"stats").unwrap();
    // Spark's (Hadoop's) local file system writes a checksum beside every file.
    let a_stats_crc = local(&a_location).join("metadata/.stats.puffin.crc");
    std::fs::write(&a_stats_crc, b"crc").unwrap();
    let r = commit(
        &app,
        "ns",
        "a",
        json!([
            {"action": "set-statistics", "snapshot-id": snapshot_id,
             "statistics": statistics(&url_of(&a_stats), snapshot_id)},
            {"action": "set-partition-statistics", "partition-statistics": {
                "snapshot-id": snapshot_id, "statistics-path": url_of(&b_file),
                "file-size-in-bytes": 6}}
        ]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // An orphan in A's directory is not named by its metadata: it stays, with its directory.
    let orphan = local(&a_location).join("data/orphan.parquet");
    std::fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    std::fs::write(&orphan, b"victim").unwrap();
    let r = purge(&app, "ns", "a").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    purged(&app).await;
    assert_intact(&b_file);
    assert_intact(&orphan);
    assert!(!a_stats.exists(), "A's own statistics file was not purged");
    assert!(
        !a_stats_crc.exists(),
        "the checksum of A's statistics file was not purged"
    );
    assert!(
        !local(&a_location).join("metadata").exists(),
        "A's metadata directory is left"
    );
    let r = app.get("/v1/namespaces/ns/tables/b").await;
    assert_eq!(r.status, StatusCode::OK);
}

fn view_version() -> Value {
    json!({
        "version-id": 1, "schema-id": 0, "timestamp-ms": 1,
        "summary": {"engine-name": "tests"},
        "representations": [{"type": "sql", "sql": "select 1", "dialect": "spark"}],
        "default-namespace": ["ns"]
    })
}

/// Registration reads only regular files within the warehouse, under a size cap, without
/// telling whether a path outside exists.
async fn register_reads_cannot_hurt(backend: Backend) {
    let app = TestApp::spawn_with(backend, &["--max-metadata-bytes", "65536"]).await;
    app.create_namespace(&["ns"]).await;
    let t = app.create_table("ns", "t", json!({})).await;
    let metadata_file = local(t["metadata-location"].as_str().unwrap());

    // A real metadata file copied outside the warehouse, and one that does not exist there.
    let outside = app
        .warehouse_dir()
        .parent()
        .unwrap()
        .join("stolen.metadata.json");
    std::fs::copy(&metadata_file, &outside).unwrap();
    let missing = app
        .warehouse_dir()
        .parent()
        .unwrap()
        .join("missing.metadata.json");
    let mut messages = Vec::new();
    for path in [&outside, &missing] {
        let r = app
            .post(
                "/v1/namespaces/ns/register",
                &json!({"name": "r", "metadata-location": url_of(path)}),
            )
            .await;
        let message = r.assert_error(StatusCode::BAD_REQUEST, "BadRequestException");
        assert!(message.contains("outside warehouse"), "{message}");
        messages.push(message.replace(&url_of(path), "<path>"));
    }
    assert_eq!(
        messages[0], messages[1],
        "the answers tell existing from missing"
    );

    // Devices and FIFOs: answered at once, and the server stays responsive.
    let fifo = app.warehouse_dir().join("ns/pipe.metadata.json");
    std::fs::create_dir_all(fifo.parent().unwrap()).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(status.success());
    let dir_as_file = app.warehouse_dir().join("ns");
    let big = app.warehouse_dir().join("ns/big.metadata.json");
    std::fs::write(&big, vec![b' '; 70_000]).unwrap();
    for (path, needle) in [
        ("file:///dev/zero".to_owned(), "outside warehouse"),
        (url_of(&fifo), "not a regular file"),
        (url_of(&dir_as_file), "not a regular file"),
        (url_of(&big), "--max-metadata-bytes"),
    ] {
        let started = Instant::now();
        let body = json!({"name": "r", "metadata-location": path});
        let (r, health) = tokio::join!(app.post("/v1/namespaces/ns/register", &body), async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let started = Instant::now();
            let h = app.get("/health").await;
            (h.status, started.elapsed())
        });
        assert_bad_request_naming(&r, needle);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{path} took {:?}",
            started.elapsed()
        );
        assert_eq!(health.0, StatusCode::OK);
        assert!(
            health.1 < Duration::from_secs(2),
            "/health took {:?}",
            health.1
        );
    }
    let r = app.get("/v1/namespaces/ns/tables/r").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// Warehouse roots are normalised before the overlap check, and system directories refused.
async fn warehouse_roots_are_checked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let wh = app.warehouse_dir().display().to_string();
    for (location, needle) in [
        ("file:///etc".to_owned(), "system directory"),
        ("file:///etc/serac".to_owned(), "system directory"),
        ("file:///".to_owned(), "root"),
        (format!("file://{wh}//inner"), "overlaps"),
        (format!("file://{wh}/./inner/"), "overlaps"),
        (format!("file:{wh}/inner"), "overlaps"),
        (format!("file://{wh}/../x/.."), "'..'"),
        ("file://server/share".to_owned(), "host"),
    ] {
        let r = app
            .post(
                "/management/v1/warehouses",
                &json!({"name": "second", "location": location}),
            )
            .await;
        assert_bad_request_naming(&r, needle);
    }
    let r = app.get("/management/v1/warehouses").await;
    assert_eq!(
        r.json()["warehouses"].as_array().unwrap().len(),
        1,
        "{}",
        r.text
    );
}

/// Names become escaped path segments: every name round-trips and no two collide; dot
/// levels are refused; long names never reach a file system limit.
async fn names_become_safe_segments(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for level in [".", ".."] {
        let r = app
            .post("/v1/namespaces", &json!({"namespace": ["ok", level]}))
            .await;
        assert_bad_request_naming(&r, "namespace level");
    }
    let long_ns = "n".repeat(250);
    app.create_namespace(&["we ird#ns?"]).await;
    app.create_namespace(&["we ird#ns?", &long_ns]).await;
    let ns = format!("we%20ird%23ns%3F%1F{long_ns}");
    let mut locations = std::collections::HashSet::new();
    for name in [
        "h#2",
        "h",
        "q?x",
        "q#x",
        "50%",
        "sp ace",
        "ünïcødé",
        &"t".repeat(250),
        "a%23b",
        "a#b",
    ] {
        let load = app.create_table(&ns, name, json!({})).await;
        let location = table_location(&load);
        assert!(!location.contains(['#', '?', ' ']), "{name}: {location}");
        let dir = location.rsplit('/').next().unwrap().to_owned();
        assert!(dir.len() < 255, "{name}: directory of {} bytes", dir.len());
        assert!(
            locations.insert(location.clone()),
            "{name} shares {location}"
        );
        assert!(local(&location).join("metadata").is_dir(), "{location}");
        let encoded: String = url_encode(name);
        let r = app
            .get(&format!("/v1/namespaces/{ns}/tables/{encoded}"))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{name}: {}", r.text);
        assert_eq!(table_location(&r.json()), location);
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Definitions the Java reference refuses are refused, naming the field; nothing is created.
async fn invalid_definitions_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_namespace(&["ns"]).await;
    let field = |ty: &str| {
        json!({"type": "struct", "schema-id": 0, "fields": [
            {"id": 1, "name": "id", "required": true, "type": "long"},
            {"id": 2, "name": "odd", "required": false, "type": ty}]})
    };
    for (schema, spec, needle) in [
        (field("decimal(100, 200)"), json!([]), "'odd'"),
        (field("decimal(10, 20)"), json!([]), "'odd'"),
        (field("fixed[0]"), json!([]), "'odd'"),
        (
            field("string"),
            json!([{"source-id": 1, "field-id": 1000, "name": "b", "transform": "bucket[0]"}]),
            "bucket[0]",
        ),
        (
            field("string"),
            json!([{"source-id": 2, "field-id": 1000, "name": "t", "transform": "truncate[0]"}]),
            "truncate[0]",
        ),
        (
            field("string"),
            json!([{"source-id": 2, "field-id": 1000, "name": "d", "transform": "day"}]),
            "'odd'",
        ),
    ] {
        let r = app
            .post(
                "/v1/namespaces/ns/tables",
                &json!({"name": "bad", "schema": schema,
                        "partition-spec": {"spec-id": 0, "fields": spec}}),
            )
            .await;
        assert_bad_request_naming(&r, needle);
        let r = app.get("/v1/namespaces/ns/tables/bad").await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    }
    // The same through a commit: add-spec and add-schema.
    app.create_table("ns", "t", json!({})).await;
    let r = commit(
        &app,
        "ns",
        "t",
        json!([{"action": "add-spec", "spec": {"fields": [
            {"source-id": 1, "field-id": 1001, "name": "b0", "transform": "bucket[0]"}]}}]),
    )
    .await;
    assert_bad_request_naming(&r, "bucket[0]");
    let r = commit(
        &app,
        "ns",
        "t",
        json!([{"action": "add-schema", "schema": {"type": "struct", "schema-id": 1, "fields": [
            {"id": 1, "name": "id", "required": true, "type": "long"},
            {"id": 4, "name": "money", "required": false, "type": "decimal(39, 2)"}]}}]),
    )
    .await;
    assert_bad_request_naming(&r, "'money'");
}

/// Each cap answers 400 naming its setting, and nothing is applied.
async fn caps_name_their_setting(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[
            "--max-commit-updates",
            "5",
            "--max-properties",
            "5",
            "--max-transaction-changes",
            "2",
            "--max-metadata-bytes",
            "8192",
        ],
    )
    .await;
    app.create_namespace(&["ns"]).await;
    app.create_table("ns", "t", json!({})).await;
    let updates: Vec<Value> = (0..6)
        .map(|i| json!({"action": "set-properties", "updates": {format!("k{i}"): "v"}}))
        .collect();
    let r = commit(&app, "ns", "t", json!(updates)).await;
    assert_bad_request_naming(&r, "--max-commit-updates");
    let many: serde_json::Map<String, Value> =
        (0..6).map(|i| (format!("k{i}"), json!("v"))).collect();
    let r = commit(
        &app,
        "ns",
        "t",
        json!([{"action": "set-properties", "updates": many}]),
    )
    .await;
    assert_bad_request_naming(&r, "--max-properties");
    let r = app
        .post(
            "/v1/namespaces",
            &json!({"namespace": ["many"], "properties": many}),
        )
        .await;
    assert_bad_request_naming(&r, "--max-properties");
    let r = app
        .post(
            "/v1/namespaces/ns/tables",
            &json!({"name": "wide", "schema": simple_schema(), "properties": many}),
        )
        .await;
    assert_bad_request_naming(&r, "--max-properties");
    let big = "x".repeat(9000);
    let r = commit(
        &app,
        "ns",
        "t",
        json!([{"action": "set-properties", "updates": {"big": big}}]),
    )
    .await;
    assert_bad_request_naming(&r, "--max-metadata-bytes");
    let load = app.get("/v1/namespaces/ns/tables/t").await.json();
    let properties = load["metadata"]["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    assert!(!properties.contains_key("k0") && !properties.contains_key("big"));

    let change = |name: &str| {
        json!({"identifier": {"namespace": ["ns"], "name": name}, "requirements": [],
               "updates": [{"action": "set-properties", "updates": {"x": "y"}}]})
    };
    let r = app
        .post(
            "/v1/transactions/commit",
            &json!({"table-changes": [change("t"), change("t")]}),
        )
        .await;
    assert_bad_request_naming(&r, "twice");
    let r = app
        .post(
            "/v1/transactions/commit",
            &json!({"table-changes": [change("t"), change("u"), change("v")]}),
        )
        .await;
    assert_bad_request_naming(&r, "--max-transaction-changes");
}

/// A purge that cannot delete a file the metadata names is not lost: the drop answers at
/// once, the failed attempt is counted, and the task stays to be tried again.
async fn incomplete_purge_is_visible(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_namespace(&["ns"]).await;
    let t = app.create_table("ns", "t", json!({})).await;
    let location = table_location(&t);
    let r = app.append_snapshot("ns", "t", &t["metadata"]).await;
    let snapshot_id = r.json()["metadata"]["current-snapshot-id"]
        .as_i64()
        .unwrap();
    // The statistics "file" is a directory that holds a file: it cannot be deleted as a file.
    let stats_dir = local(&location).join("metadata/stats.puffin");
    std::fs::create_dir_all(&stats_dir).unwrap();
    std::fs::write(stats_dir.join("inner"), b"x").unwrap();
    let r = commit(
        &app,
        "ns",
        "t",
        json!([{"action": "set-statistics", "snapshot-id": snapshot_id,
                "statistics": statistics(&url_of(&stats_dir), snapshot_id)}]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = purge(&app, "ns", "t").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    crate::common::eventually("a failed purge attempt is counted", || async {
        crate::common::metric(&app, "serac_purges_total{result=\"failed\"}").await >= 1.0
    })
    .await;
    assert_eq!(crate::common::metric(&app, "serac_purge_tasks").await, 1.0);
    assert_eq!(
        crate::common::metric(&app, "serac_purges_total{result=\"done\"}").await,
        0.0
    );
    // The drop itself happened.
    assert_eq!(
        app.get("/v1/namespaces/ns/tables/t").await.status,
        StatusCode::NOT_FOUND
    );
}

/// Views are confined like tables: a create, a replace that moves the view, and a
/// registration of a metadata file outside the warehouse are refused, and nothing is written.
async fn views_are_confined(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_namespace(&["ns"]).await;
    let outside = app.warehouse_dir().parent().unwrap().join("view-outside");
    let view = |name: &str, location: Option<String>| {
        let mut body = json!({"name": name, "schema": simple_schema(),
                              "view-version": view_version()});
        if let Some(location) = location {
            body["location"] = json!(location);
        }
        body
    };
    let r = app
        .post(
            "/v1/namespaces/ns/views",
            &view("v", Some(url_of(&outside))),
        )
        .await;
    assert_bad_request_naming(&r, "outside warehouse");
    assert!(
        !outside.exists(),
        "a refused view create wrote {}",
        outside.display()
    );

    let r = app.post("/v1/namespaces/ns/views", &view("v", None)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let file = local(r.json()["metadata-location"].as_str().unwrap());
    let r = app
        .post(
            "/v1/namespaces/ns/views/v",
            &json!({"requirements": [], "updates": [
                {"action": "set-location", "location": url_of(&outside)}]}),
        )
        .await;
    assert_bad_request_naming(&r, "set-location");
    assert!(
        !outside.exists(),
        "a refused view replace wrote {}",
        outside.display()
    );

    // The view's own metadata file, copied beside the warehouse, cannot be registered.
    let stolen = app
        .warehouse_dir()
        .parent()
        .unwrap()
        .join("stolen.view.json");
    std::fs::copy(&file, &stolen).unwrap();
    let r = app
        .post(
            "/v1/namespaces/ns/register-view",
            &json!({"name": "copy", "metadata-location": url_of(&stolen)}),
        )
        .await;
    assert_bad_request_naming(&r, "outside warehouse");
    assert_eq!(
        app.get("/v1/namespaces/ns/views/copy").await.status,
        StatusCode::NOT_FOUND
    );
}

both_backends!(
    views_are_confined,
    locations_outside_the_warehouse_are_refused,
    tables_never_share_a_location,
    register_reads_cannot_hurt,
    warehouse_roots_are_checked,
    names_become_safe_segments,
    invalid_definitions_are_refused,
    caps_name_their_setting,
    incomplete_purge_is_visible,
);
