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

/// The TCP sockets of this process whose local or peer port is `port`, with whether
/// `TCP_NODELAY` is set on each.
fn tcp_sockets_on(port: u16) -> Vec<(String, bool)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd") {
        let Ok(entry) = entry else { continue };
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if !is_socket {
            continue;
        }
        let port_of = |peer: bool| {
            // SAFETY: fd is open (listed in /proc/self/fd); the buffers are sized for the call.
            unsafe {
                let mut addr: libc::sockaddr_storage = std::mem::zeroed();
                let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                let ptr = (&raw mut addr).cast::<libc::sockaddr>();
                let rc = if peer {
                    libc::getpeername(fd, ptr, &mut len)
                } else {
                    libc::getsockname(fd, ptr, &mut len)
                };
                (rc == 0 && i32::from(addr.ss_family) == libc::AF_INET).then(|| {
                    let v4 = *(&raw const addr).cast::<libc::sockaddr_in>();
                    u16::from_be(v4.sin_port)
                })
            }
        };
        let (local, peer) = (port_of(false), port_of(true));
        // Listeners (no peer) pass the option on to accepted sockets only.
        if peer.is_none() || (local != Some(port) && peer != Some(port)) {
            continue;
        }
        let mut flag: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: as above.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&raw mut flag).cast(),
                &mut len,
            )
        };
        if rc == 0 {
            found.push((format!("fd {fd}: {local:?} -> {peer:?}"), flag != 0));
        }
    }
    found
}

/// Both ends Serac owns send small writes at once: its connections to PostgreSQL (sqlx 0.9.0
/// dropped `TCP_NODELAY`; vendor/sqlx-core puts it back) and the HTTP connections it accepts.
/// Without it a statement or response split over two segments waits 40 ms for a delayed ACK.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_connections_disable_nagle() {
    let app = TestApp::spawn(Backend::Postgres).await;
    app.create_namespace(&["nagle"]).await;
    let pg_port = url::Url::parse(&app.database_url)
        .unwrap()
        .port()
        .expect("the test cluster listens on TCP");
    let db = tcp_sockets_on(pg_port);
    assert!(!db.is_empty(), "no database connection found");
    assert_nodelay(db, pg_port).await;
    let http_port = url::Url::parse(&app.url("/")).unwrap().port().unwrap();
    let http: Vec<_> = tcp_sockets_on(http_port);
    // The server's end of the connection and the test client's.
    assert!(http.len() >= 2, "{http:?}");
    assert_nodelay(http, http_port).await;
}

/// Looking a namespace up by name (every create looks up its parent) must take the unique
/// (warehouse, name) index in the generic plan a prepared statement settles on. With the
/// index for listing children leading on the warehouse, PostgreSQL planned that lookup on
/// the listing index while the table was empty and kept the plan for the connection: every
/// create then stepped through the index entries of every namespace of the warehouse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_lookups_by_name_take_the_unique_index() {
    use sqlx::{Connection as _, Executor as _};
    let app = TestApp::spawn(Backend::Postgres).await;
    let mut conn = sqlx::PgConnection::connect(&app.database_url)
        .await
        .unwrap();
    conn.execute(
        "SET plan_cache_mode = force_generic_plan; \
         PREPARE lookup(text, text) AS SELECT id FROM namespaces WHERE warehouse_id = $1 AND name = $2",
    )
    .await
    .unwrap();
    let plan: Vec<String> = sqlx::query_scalar("EXPLAIN EXECUTE lookup('default', '')")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let plan = plan.join("\n");
    assert!(
        plan.contains("namespaces_warehouse_id_name_key") && !plan.contains("namespaces_by_parent"),
        "{plan}"
    );
}

/// Fails when a socket has Nagle on. Other tests of this process connect at the same time:
/// a socket caught between its connect and its `set_nodelay` gets a second look.
async fn assert_nodelay(sockets: Vec<(String, bool)>, port: u16) {
    if sockets.iter().all(|(_, nodelay)| *nodelay) {
        return;
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let again = tcp_sockets_on(port);
    let off: Vec<_> = sockets
        .iter()
        .filter(|(socket, nodelay)| !nodelay && again.contains(&(socket.clone(), false)))
        .collect();
    assert!(off.is_empty(), "Nagle on: {off:?}");
}
