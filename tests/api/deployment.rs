//! What a deployment relies on: `serve --no-migrate` leaves migrations to `serac migrate`
//! (a Kubernetes Job), and `serac healthcheck` checks a running server from inside an image
//! that has no shell or HTTP client.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::both_backends;
use crate::common::{Backend, TestApp, database_url, free_port};

/// Whether the database holds sqlx's migration table.
async fn migrations_table_exists(url: &str) -> bool {
    if url.starts_with("sqlite://") {
        let path = url.trim_start_matches("sqlite://");
        if !std::path::Path::new(path).exists() {
            return false;
        }
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .read_only(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        pool.close().await;
        n > 0
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = '_sqlx_migrations'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        pool.close().await;
        n > 0
    }
}

/// `serve --no-migrate` on an empty database applies nothing and waits; once `serac migrate`
/// has run, it starts and reports ready.
async fn serve_no_migrate_waits_for_serac_migrate(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let database = database_url(backend, dir.path()).await;
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_serac"))
        .args(["--log-format", "json", "--log-level", "info", "serve"])
        .args(["--bind", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--database-url", &database])
        .env("SERAC_NO_MIGRATE", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serac starts");

    // Its first look found no schema (a server that migrated would never say so).
    let stderr = child.stderr.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let waiting = loop {
        match lines_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) if line.contains("waiting for `serac migrate`") => break line,
            Ok(_) => continue,
            Err(e) => {
                let _ = child.kill();
                panic!("serve --no-migrate never said it waits for migrations: {e}");
            }
        }
    };
    assert!(waiting.contains("--no-migrate"), "{waiting}");
    assert!(
        !migrations_table_exists(&database).await,
        "serve --no-migrate applied migrations"
    );
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    assert!(
        client.get(format!("{base}/health")).send().await.is_err(),
        "listening before the schema is current"
    );

    let migrate = Command::new(env!("CARGO_BIN_EXE_serac"))
        .args(["migrate", "--database-url", &database])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    assert!(migrations_table_exists(&database).await);

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut status = None;
    while Instant::now() < deadline {
        if let Ok(r) = client.get(format!("{base}/ready")).send().await {
            status = Some(r.status());
            if r.status() == StatusCode::OK {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, Some(StatusCode::OK), "never ready after migrate");
    let r = client
        .get(format!("{base}/v1/config"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
}

both_backends!(serve_no_migrate_waits_for_serac_migrate);

fn healthcheck(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_serac"))
        .arg("healthcheck")
        .args(args)
        .env_remove("SERAC_BIND")
        .output()
        .unwrap()
}

/// `serac healthcheck` exits 0 on a 200 from `/health` (also for a server bound to every
/// address), and 1 on another status or when nothing listens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_exits_by_the_health_status() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let port = url::Url::parse(&app.base).unwrap().port().unwrap();
    let bind = format!("127.0.0.1:{port}");
    let ok = healthcheck(&["--bind", &bind]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let any = healthcheck(&["--bind", &format!("0.0.0.0:{port}")]);
    assert!(
        any.status.success(),
        "{}",
        String::from_utf8_lossy(&any.stderr)
    );

    let missing = healthcheck(&["--bind", &bind, "--path", "/no-such-route"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("answered 404"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );

    let closed = free_port();
    let refused = healthcheck(&["--bind", &format!("127.0.0.1:{closed}")]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("cannot connect"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}
