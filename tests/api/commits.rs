use std::collections::HashSet;
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::common::{Backend, TestApp, append_commit, main_ancestry, next_snapshot_id};

async fn requirements_and_updates_are_checked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_namespace(&["c"]).await;
    let created = app.create_table("c", "t", json!({})).await;
    let r = app.append_snapshot("c", "t", &created["metadata"]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let after_first = r.json();
    assert!(
        after_first["metadata-location"]
            .as_str()
            .unwrap()
            .contains("/metadata/00001-")
    );

    // A client that read the old metadata loses: its requirement no longer holds.
    let message = app
        .append_snapshot("c", "t", &created["metadata"])
        .await
        .assert_error(StatusCode::CONFLICT, "CommitFailedException");
    assert!(
        message.contains("main"),
        "the message names the failed requirement: {message}"
    );
    let uuid_check = json!({"requirements": [{"type": "assert-table-uuid", "uuid": "00000000-0000-0000-0000-000000000000"}], "updates": []});
    app.post("/v1/namespaces/c/tables/t", &uuid_check)
        .await
        .assert_error(StatusCode::CONFLICT, "CommitFailedException");

    // Unknown update actions and invalid updates are bad requests; nothing changes.
    let unknown = json!({"requirements": [], "updates": [{"action": "make-it-fast"}]});
    app.post("/v1/namespaces/c/tables/t", &unknown)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "BadRequestException");
    let invalid =
        json!({"requirements": [], "updates": [{"action": "set-current-schema", "schema-id": 42}]});
    app.post("/v1/namespaces/c/tables/t", &invalid)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "BadRequestException");
    let mismatch = json!({"identifier": {"namespace": ["c"], "name": "other"}, "requirements": [], "updates": []});
    app.post("/v1/namespaces/c/tables/t", &mismatch)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "BadRequestException");
    app.post(
        "/v1/namespaces/c/tables/nope",
        &json!({"requirements": [], "updates": []}),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "NoSuchTableException");
    let now = app.get("/v1/namespaces/c/tables/t").await.json();
    assert_eq!(
        now["metadata-location"], after_first["metadata-location"],
        "a failed commit changed the table"
    );

    // Schema evolution and properties in one commit.
    let evolve = json!({
        "requirements": [{"type": "assert-current-schema-id", "current-schema-id": 0}],
        "updates": [
            {"action": "add-schema", "schema": {"type": "struct", "schema-id": 1, "fields": [
                {"id": 1, "name": "id", "required": true, "type": "long"},
                {"id": 2, "name": "data", "required": false, "type": "string"},
                {"id": 3, "name": "ts", "required": false, "type": "timestamptz"},
                {"id": 4, "name": "score", "required": false, "type": "double"}]}},
            {"action": "set-current-schema", "schema-id": -1},
            {"action": "set-properties", "updates": {"k": "v"}},
            {"action": "remove-properties", "removals": ["owner"]}
        ]
    });
    let r = app.post("/v1/namespaces/c/tables/t", &evolve).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let m = &r.json()["metadata"];
    assert_eq!(m["current-schema-id"], 1);
    assert_eq!(m["last-column-id"], 4);
    assert_eq!(m["properties"]["k"], "v");
    assert_eq!(m["metadata-log"].as_array().unwrap().len(), 2);
}

async fn metadata_files_are_retained_as_configured(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_namespace(&["m"]).await;
    let created = app
        .create_table(
            "m",
            "t",
            json!({"write.metadata.previous-versions-max": "2", "write.metadata.delete-after-commit.enabled": "true"}),
        )
        .await;
    let mut locations = vec![created["metadata-location"].as_str().unwrap().to_owned()];
    let mut metadata = created["metadata"].clone();
    for _ in 0..5 {
        let r = app.append_snapshot("m", "t", &metadata).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let body = r.json();
        locations.push(body["metadata-location"].as_str().unwrap().to_owned());
        metadata = body["metadata"].clone();
    }
    let log: Vec<&str> = metadata["metadata-log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["metadata-file"].as_str().unwrap())
        .collect();
    assert_eq!(log, vec![locations[3].as_str(), locations[4].as_str()]);
    let exists = |l: &str| std::path::Path::new(l.strip_prefix("file://").unwrap()).exists();
    for old in &locations[..3] {
        assert!(!exists(old), "expired metadata file kept: {old}");
    }
    for kept in &locations[3..] {
        assert!(exists(kept), "metadata file deleted too early: {kept}");
    }

    // gzip-compressed metadata files, when asked for.
    let gz = app
        .create_table(
            "m",
            "gz",
            json!({"write.metadata.compression-codec": "gzip"}),
        )
        .await;
    let location = gz["metadata-location"].as_str().unwrap();
    assert!(location.ends_with(".gz.metadata.json"), "{location}");
    let bytes = std::fs::read(location.strip_prefix("file://").unwrap()).unwrap();
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "not gzip");
}

async fn history_does_not_slow_refs_loads(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_namespace(&["h"]).await;
    let mut metadata = app.create_table("h", "t", json!({})).await["metadata"].clone();
    for _ in 0..30 {
        let r = app.append_snapshot("h", "t", &metadata).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        metadata = r.json()["metadata"].clone();
    }
    let tag = json!({"requirements": [], "updates": [{"action": "set-snapshot-ref", "ref-name": "v1", "type": "tag",
        "snapshot-id": metadata["snapshots"][3]["snapshot-id"]}]});
    assert_eq!(
        app.post("/v1/namespaces/h/tables/t", &tag).await.status,
        StatusCode::OK
    );
    let all = app
        .get("/v1/namespaces/h/tables/t?snapshots=all")
        .await
        .json();
    assert_eq!(all["metadata"]["snapshots"].as_array().unwrap().len(), 30);
    let refs = app
        .get("/v1/namespaces/h/tables/t?snapshots=refs")
        .await
        .json();
    let ids: HashSet<i64> = refs["metadata"]["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["snapshot-id"].as_i64().unwrap())
        .collect();
    let expected: HashSet<i64> = [
        metadata["current-snapshot-id"].as_i64().unwrap(),
        metadata["snapshots"][3]["snapshot-id"].as_i64().unwrap(),
    ]
    .into();
    assert_eq!(ids, expected);
    assert_eq!(refs["metadata-location"], all["metadata-location"]);
}

/// 16 writers append to one table, each retrying on 409 like clients do. Every commit the
/// server acknowledged must be in the final history.
async fn concurrent_writers_lose_nothing(backend: Backend) {
    let app = Arc::new(TestApp::spawn(backend).await);
    app.create_namespace(&["w"]).await;
    app.create_table("w", "t", json!({})).await;
    let acknowledged = write_concurrently(vec![app.base.clone()], 16, 6).await;
    assert_eq!(acknowledged.len(), 16 * 6);
    assert_history_contains(
        &app.get("/v1/namespaces/w/tables/t").await.json(),
        &acknowledged,
    );
}

/// Writers, spread over the given servers, each append `per_writer` snapshots to `w.t`.
pub async fn write_concurrently(bases: Vec<String>, writers: usize, per_writer: usize) -> Vec<i64> {
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let base = bases[w % bases.len()].clone();
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let url = format!("{base}/v1/namespaces/w/tables/t");
            let mut done = Vec::new();
            let mut conflicts = 0;
            while done.len() < per_writer {
                let current: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
                let id = next_snapshot_id();
                let r = client
                    .post(&url)
                    .json(&append_commit(&current["metadata"], id))
                    .send()
                    .await
                    .unwrap();
                match r.status() {
                    StatusCode::OK => done.push(id),
                    StatusCode::CONFLICT => {
                        conflicts += 1;
                        assert!(conflicts < 10_000, "writer starved");
                    }
                    other => panic!("unexpected {other}: {}", r.text().await.unwrap()),
                }
            }
            done
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

pub fn assert_history_contains(loaded: &Value, acknowledged: &[i64]) {
    let metadata = &loaded["metadata"];
    let in_log: HashSet<i64> = metadata["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["snapshot-id"].as_i64().unwrap())
        .collect();
    let ancestry: HashSet<i64> = main_ancestry(metadata).into_iter().collect();
    let lost: Vec<&i64> = acknowledged
        .iter()
        .filter(|id| !in_log.contains(id) || !ancestry.contains(id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged commits were lost: {lost:?}",
        lost.len()
    );
    assert_eq!(
        ancestry.len(),
        acknowledged.len(),
        "main has snapshots nobody acknowledged"
    );
    assert_eq!(
        metadata["snapshot-log"].as_array().unwrap().len(),
        acknowledged.len()
    );
}

/// What a table's row holds: its document without the snapshots, whether it keeps them
/// apart, and the ids of the snapshot rows it has.
async fn stored_table(backend: Backend, database: &str, table: &str) -> (Value, bool, Vec<i64>) {
    use sqlx::Connection;
    let row_sql = "SELECT id, metadata, snapshots_apart FROM tables WHERE name = $1";
    let ids_sql =
        "SELECT snapshot_id FROM table_snapshots WHERE table_id = $1 ORDER BY snapshot_id";
    macro_rules! read {
        ($conn:expr) => {{
            let mut conn = $conn;
            let (id, metadata, apart): (String, String, bool) = sqlx::query_as(row_sql)
                .bind(table)
                .fetch_one(&mut conn)
                .await
                .unwrap();
            let ids: Vec<i64> = sqlx::query_scalar(ids_sql)
                .bind(&id)
                .fetch_all(&mut conn)
                .await
                .unwrap();
            (serde_json::from_str(&metadata).unwrap(), apart, ids)
        }};
    }
    match backend {
        Backend::Sqlite => read!(sqlx::SqliteConnection::connect(database).await.unwrap()),
        Backend::Postgres => read!(sqlx::PgConnection::connect(database).await.unwrap()),
    }
}

/// The snapshot rows left of a dropped table (by its id).
async fn snapshot_rows(backend: Backend, database: &str) -> i64 {
    use sqlx::Connection;
    let sql = "SELECT COUNT(*) FROM table_snapshots";
    match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(database).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(database).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
        }
    }
}

/// A commit writes to the database the snapshots it adds and removes, not the table's whole
/// history: the row keeps the rest of the document, and the snapshots one row each. Loads
/// (on a replica that never saw the table) make the document whole again, byte for byte as
/// the metadata file, and commits go on from it.
async fn commits_store_only_the_snapshots_they_change(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let database = app.database_url.clone();
    app.create_namespace(&["apart"]).await;
    let mut metadata = app.create_table("apart", "t", json!({})).await["metadata"].clone();
    // Created: the row holds the whole document (no snapshots yet).
    let (row, apart, ids) = stored_table(backend, &database, "t").await;
    assert!(!apart && ids.is_empty(), "{row}");
    let mut added = Vec::new();
    for _ in 0..5 {
        let id = next_snapshot_id();
        let r = app
            .post(
                "/v1/namespaces/apart/tables/t",
                &append_commit(&metadata, id),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        metadata = r.json()["metadata"].clone();
        added.push(id);
    }
    let (row, apart, ids) = stored_table(backend, &database, "t").await;
    assert!(apart, "the row keeps the snapshots apart after a commit");
    assert!(row.get("snapshots").is_none(), "{row}");
    assert_eq!(row["current-snapshot-id"], added[4]);
    assert_eq!(row["snapshot-log"].as_array().unwrap().len(), 5, "{row}");
    let mut sorted = added.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted);

    // Removing snapshots removes their rows.
    let r = app
        .post(
            "/v1/namespaces/apart/tables/t",
            &json!({"requirements": [], "updates": [{"action": "remove-snapshots", "snapshot-ids": [added[0], added[1]]}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let (_, _, ids) = stored_table(backend, &database, "t").await;
    let mut kept = added[2..].to_vec();
    kept.sort_unstable();
    assert_eq!(ids, kept);

    // A replica that never saw the table serves the document as the metadata file holds it.
    let (dir, _) = app.stop().await;
    let app = TestApp::spawn_on(backend, dir, database.clone(), &[]).await;
    let loaded = app.get("/v1/namespaces/apart/tables/t").await;
    assert_eq!(loaded.status, StatusCode::OK, "{}", loaded.text);
    let location = loaded.json()["metadata-location"]
        .as_str()
        .unwrap()
        .to_owned();
    let file = std::fs::read_to_string(location.strip_prefix("file://").unwrap()).unwrap();
    assert!(
        loaded.text.contains(&format!("\"metadata\":{file}")),
        "the load serves the metadata file's bytes: {}",
        loaded.text
    );
    let listed: Vec<i64> = loaded.json()["metadata"]["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["snapshot-id"].as_i64().unwrap())
        .collect();
    assert_eq!(listed, added[2..]);
    // ... and commits on from it.
    let id = next_snapshot_id();
    let r = app
        .post(
            "/v1/namespaces/apart/tables/t",
            &append_commit(&loaded.json()["metadata"], id),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let location = r.json()["metadata-location"].as_str().unwrap().to_owned();
    let file = std::fs::read_to_string(location.strip_prefix("file://").unwrap()).unwrap();
    let (_, _, ids) = stored_table(backend, &database, "t").await;
    assert_eq!(ids.len(), 4);
    assert!(ids.contains(&id));
    let (dir, _) = app.stop().await;
    let app = TestApp::spawn_on(backend, dir, database.clone(), &[]).await;
    let loaded = app.get("/v1/namespaces/apart/tables/t").await;
    assert!(
        loaded.text.contains(&format!("\"metadata\":{file}")),
        "{}",
        loaded.text
    );

    // A drop takes the table's snapshot rows with it.
    let r = app
        .delete("/v1/namespaces/apart/tables/t?purgeRequested=true")
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(snapshot_rows(backend, &database).await, 0);
}

both_backends!(
    requirements_and_updates_are_checked,
    metadata_files_are_retained_as_configured,
    history_does_not_slow_refs_loads,
    concurrent_writers_lose_nothing,
    commits_store_only_the_snapshots_they_change,
);

/// Two `serac` processes on one PostgreSQL database: concurrent commits lose nothing and
/// each replica sees the other's commits at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_postgres_database() {
    let database = crate::common::fresh_pg_database().await;
    let dir = tempfile::tempdir().unwrap();
    let warehouse = format!("file://{}", dir.path().join("warehouse").display());
    let a = Replica::start(&database, &warehouse, dir.path());
    let b = Replica::start(&database, &warehouse, dir.path());
    let (a_base, b_base) = (a.wait_ready().await, b.wait_ready().await);
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{a_base}/v1/namespaces"))
        .json(&json!({"namespace": ["w"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = client
        .post(format!("{b_base}/v1/namespaces/w/tables"))
        .json(&json!({"name": "t", "schema": crate::common::simple_schema()}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let acknowledged = write_concurrently(vec![a_base.clone(), b_base.clone()], 16, 5).await;
    for base in [&a_base, &b_base] {
        let loaded: Value = client
            .get(format!("{base}/v1/namespaces/w/tables/t"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_history_contains(&loaded, &acknowledged);
    }
    // A commit acknowledged by one replica is what the other serves next, every time, while
    // that other replica's cache is warm and loads of the table keep running on it.
    let shared = client.clone();
    let load = move |base: String| {
        let client = shared.clone();
        async move {
            let r = client
                .get(format!("{base}/v1/namespaces/w/tables/t"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            r.json::<Value>().await.unwrap()
        }
    };
    let background = {
        let (stop, bases) = (
            std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
            [a_base.clone(), b_base.clone()],
        );
        let flag = stop.clone();
        let load = load.clone();
        let task = tokio::spawn(async move {
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                for base in &bases {
                    load(base.clone()).await;
                }
            }
        });
        (stop, task)
    };
    for round in 0..20 {
        let (writer, reader) = if round % 2 == 0 {
            (&a_base, &b_base)
        } else {
            (&b_base, &a_base)
        };
        let before = load(writer.clone()).await;
        let id = next_snapshot_id();
        let r = client
            .post(format!("{writer}/v1/namespaces/w/tables/t"))
            .json(&append_commit(&before["metadata"], id))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let acknowledged: Value = r.json().await.unwrap();
        let after = load(reader.clone()).await;
        assert_eq!(
            after["metadata"]["current-snapshot-id"], id,
            "round {round}"
        );
        assert_eq!(
            after["metadata-location"],
            acknowledged["metadata-location"]
        );
    }
    background
        .0
        .store(true, std::sync::atomic::Ordering::Relaxed);
    background.1.await.unwrap();
}

struct Replica {
    child: std::process::Child,
    port: u16,
}

impl Replica {
    fn start(database: &str, warehouse: &str, dir: &std::path::Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_serac"))
            .args([
                "--log-level",
                "warn",
                "serve",
                "--bind",
                &format!("127.0.0.1:{port}"),
            ])
            .args([
                "--database-url",
                database,
                "--warehouse-location",
                warehouse,
            ])
            .arg("--data-dir")
            .arg(dir)
            .spawn()
            .expect("start serac");
        Self { child, port }
    }

    async fn wait_ready(&self) -> String {
        let base = format!("http://127.0.0.1:{}", self.port);
        for _ in 0..200 {
            if let Ok(r) = reqwest::get(format!("{base}/v1/config")).await
                && r.status() == StatusCode::OK
            {
                return base;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("replica on port {} did not become ready", self.port);
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
