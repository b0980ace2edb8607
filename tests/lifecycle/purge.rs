//! Purges survive crashes: a drop with purge is recorded in the drop's transaction, and a
//! server killed in the middle of the purge finishes it after a restart, leaving nothing of
//! the table and every file of the others (on `file://` and on S3).

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{self, Backend, free_port};

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// A server process on `database_url`; with `stall_after`, its purges stop for good after that
/// many deletions (a test build's failpoint), so that it can be killed mid-purge.
fn start(
    dir: &Path,
    port: u16,
    database_url: &str,
    stall_after: Option<u32>,
) -> std::process::Child {
    let mut command = crate::serac_command(
        dir,
        port,
        &["--database-url", database_url, "--purge-lease", "2s"],
    );
    command.env_remove("SERAC_FAILPOINT_PURGE_STALL_AFTER");
    if let Some(n) = stall_after {
        command.env("SERAC_FAILPOINT_PURGE_STALL_AFTER", n.to_string());
    }
    command.spawn().expect("serac starts")
}

async fn send(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> (StatusCode, String) {
    let mut request = client.request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let r = request.send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

/// A table with a few commits (each writes a metadata file) in namespace `p` of the
/// catalog at `api` (`{base}/v1` or `{base}/v1/{prefix}`); its location.
async fn table_with_files(client: &reqwest::Client, api: &str, name: &str) -> String {
    let (status, text) = send(
        client,
        reqwest::Method::POST,
        format!("{api}/namespaces/p/tables"),
        Some(json!({"name": name, "schema": common::simple_schema()})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let location = serde_json::from_str::<Value>(&text).unwrap()["metadata"]["location"]
        .as_str()
        .unwrap()
        .to_owned();
    for i in 0..8 {
        let (status, text) = send(
            client,
            reqwest::Method::POST,
            format!("{api}/namespaces/p/tables/{name}"),
            Some(json!({"requirements": [], "updates": [{"action": "set-properties", "updates": {"round": i.to_string()}}]})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{text}");
    }
    location
}

/// The directory of a `file://` table location.
fn directory(location: &str) -> PathBuf {
    PathBuf::from(location.strip_prefix("file://").unwrap())
}

fn kill(child: &mut std::process::Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Where the warehouse of a crash scenario lives.
enum Storage {
    /// The server's default warehouse, in its data directory.
    File,
    /// A warehouse on the throwaway S3 (static keys).
    S3(common::s3::S3Env),
}

impl Storage {
    /// What lies below a table location (files, or object keys), sorted; an empty list
    /// when nothing (or no directory) is left.
    async fn contents(&self, location: &str) -> Vec<String> {
        match self {
            Self::File => files_under(&directory(location))
                .into_iter()
                .map(|p| p.display().to_string())
                .collect(),
            Self::S3(s3) => {
                let mut keys = s3.keys_below(&common::s3::key_of(location)).await;
                keys.sort();
                keys
            }
        }
    }
}

/// A purge cut short by a crash: three deletions in, the process dies; after a restart (the
/// lease of the dead process runs out) the purge is finished, and the other table keeps all
/// it had.
async fn crash_mid_purge(backend: Backend, storage: Storage) {
    let dir = tempfile::tempdir().unwrap();
    let database_url = common::database_url(backend, dir.path()).await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut server = start(dir.path(), port, &database_url, Some(3));
    crate::wait_ready(&client, &base).await;
    let api = match &storage {
        Storage::File => format!("{base}/v1"),
        Storage::S3(s3) => {
            let wh = common::unique("crash").replace('_', "-");
            let (status, text) = send(
                &client,
                reqwest::Method::POST,
                format!("{base}/management/v1/warehouses"),
                Some(
                    json!({"name": wh, "location": format!("s3://{}/{wh}", s3.bucket),
                            "storage": s3.profile("static")}),
                ),
            )
            .await;
            assert_eq!(status, StatusCode::CREATED, "{text}");
            format!("{base}/v1/{wh}")
        }
    };
    let (status, text) = send(
        &client,
        reqwest::Method::POST,
        format!("{api}/namespaces"),
        Some(json!({"namespace": ["p"]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let doomed = table_with_files(&client, &api, "doomed").await;
    let kept = table_with_files(&client, &api, "kept").await;
    let kept_files = storage.contents(&kept).await;
    let before = storage.contents(&doomed).await.len();
    assert!(before >= 9, "{before} files");

    let (status, text) = send(
        &client,
        reqwest::Method::DELETE,
        format!("{api}/namespaces/p/tables/doomed?purgeRequested=true"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{text}");
    // The purge deletes three files and stalls; the process dies there.
    common::eventually("the purge started", || async {
        storage.contents(&doomed).await.len() <= before - 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let left = storage.contents(&doomed).await.len();
    assert!(
        left > 0 && left == before - 3,
        "{left} of {before} files left"
    );
    kill(&mut server);

    let mut server = start(dir.path(), port, &database_url, None);
    crate::wait_ready(&client, &base).await;
    // On a file system the purge ends by removing the table's directories.
    common::eventually("the purge finished after the restart", || async {
        storage.contents(&doomed).await.is_empty()
            && !(matches!(storage, Storage::File) && directory(&doomed).exists())
    })
    .await;
    assert_eq!(
        storage.contents(&kept).await,
        kept_files,
        "another table's files were touched"
    );
    // The files go before the task is recorded as done: the metric may trail a moment.
    common::eventually("serac_purges_total{result=\"done\"} is 1", || async {
        let (_, metrics) = send(
            &client,
            reqwest::Method::GET,
            format!("{base}/metrics"),
            None,
        )
        .await;
        metrics
            .lines()
            .any(|l| l == "serac_purges_total{result=\"done\"} 1")
    })
    .await;
    let (status, _) = send(
        &client,
        reqwest::Method::GET,
        format!("{api}/namespaces/p/tables/kept"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    kill(&mut server);
}

async fn a_purge_cut_short_by_a_crash_finishes_after_restart(backend: Backend) {
    crash_mid_purge(backend, Storage::File).await;
}

async fn an_s3_purge_cut_short_by_a_crash_finishes_after_restart(backend: Backend) {
    crash_mid_purge(backend, Storage::S3(common::s3::s3_env())).await;
}

crate::both_backends!(
    a_purge_cut_short_by_a_crash_finishes_after_restart,
    an_s3_purge_cut_short_by_a_crash_finishes_after_restart,
);
