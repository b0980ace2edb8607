//! Warehouses after creation: a new storage profile that every replica uses from its next
//! request on (two servers on one database, a real S3 with STS), deleting empty warehouses,
//! and profiles' secrets encrypted at rest (read back with SQL from the database itself).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::common::s3::{S3Env, s3_env};
use crate::common::{
    ADMIN_ID, ADMIN_SECRET, Backend, TestApp, auth_args, next_event, serac_cli, unique,
};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run ./tests/run.sh"))
}

/// The S3 store's admin identity: a second pair of keys a profile can rotate to.
fn admin_keys() -> (String, String) {
    (
        env("SERAC_TEST_S3_ADMIN_ACCESS_KEY_ID"),
        env("SERAC_TEST_S3_ADMIN_SECRET_ACCESS_KEY"),
    )
}

fn wh_name(prefix: &str) -> String {
    unique(prefix).replace('_', "-")
}

/// Creates an S3 warehouse `name` with `profile`, a namespace `ns` and a table `t` in it.
async fn s3_warehouse_with_table(app: &TestApp, s3: &S3Env, name: &str, profile: &Value) {
    app.manage(
        Method::POST,
        "/management/v1/warehouses",
        Some(
            json!({"name": name, "location": format!("s3://{}/{name}", s3.bucket),
                    "storage": profile}),
        ),
        StatusCode::CREATED,
    )
    .await;
    app.manage(
        Method::POST,
        &format!("/v1/{name}/namespaces"),
        Some(json!({"namespace": ["ns"]})),
        StatusCode::OK,
    )
    .await;
    app.manage(
        Method::POST,
        &format!("/v1/{name}/namespaces/ns/tables"),
        Some(json!({"name": "t", "schema": crate::common::simple_schema()})),
        StatusCode::OK,
    )
    .await;
}

/// The `storage-credentials` entry's config of a load of `wh`.ns.t.
async fn loaded_keys(app: &TestApp, wh: &str) -> Value {
    let r = app.get(&format!("/v1/{wh}/namespaces/ns/tables/t")).await;
    assert_eq!(r.status, StatusCode::OK, "load: {}", r.text);
    let load = r.json();
    load["storage-credentials"][0]["config"].clone()
}

/// A token of a new principal that holds no grant and is no admin.
async fn non_admin_token(app: &TestApp) -> String {
    let principal = app
        .manage(
            Method::POST,
            "/management/v1/principals",
            Some(json!({"name": "not-an-admin"})),
            StatusCode::CREATED,
        )
        .await;
    app.token_for(
        principal["client-id"].as_str().unwrap(),
        principal["client-secret"].as_str().unwrap(),
    )
    .await
}

fn storage_path(wh: &str) -> String {
    format!("/management/v1/warehouses/{wh}/storage")
}

async fn profile_updates_reach_every_replica_at_once(backend: Backend) {
    let s3 = s3_env();
    let mut a = TestApp::spawn_with(backend, &auth_args()).await;
    a.token = Some(a.token_for(ADMIN_ID, ADMIN_SECRET).await);
    let mut b = a.authenticated_replica().await;
    b.token = a.token.clone();
    let wh = wh_name("rotated");
    let mut profile = s3.profile("vended");
    s3_warehouse_with_table(&a, &s3, &wh, &profile).await;

    // Replica B vends credentials, and hands the same ones out again (its cache).
    let first = loaded_keys(&b, &wh).await;
    let first_key = first["s3.access-key-id"].as_str().unwrap().to_owned();
    assert_eq!(
        loaded_keys(&b, &wh).await["s3.access-key-id"],
        first_key.as_str(),
        "credentials are cached"
    );

    // A new STS session duration, through replica A: B's next load vends new credentials
    // that live as long as the new profile says.
    let mut feed = a.feed("types=warehouse").await;
    profile["sts"]["session-duration"] = json!("20m");
    let r = a
        .request(Method::PUT, &storage_path(&wh), Some(&profile))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(!r.text.contains(&s3.secret_access_key), "{}", r.text);
    assert_eq!(r.json()["storage"]["sts"]["session-duration"], "20m");
    let after = loaded_keys(&b, &wh).await;
    assert_ne!(
        after["s3.access-key-id"],
        first_key.as_str(),
        "replica B handed out credentials vended with the old profile"
    );
    let expires: i64 = after["s3.session-token-expires-at-ms"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    assert!(expires > now + 16 * 60 * 1000, "{after}");
    let event = next_event(&mut feed).await;
    assert_eq!(event["type"], "warehouse.updated", "{event}");
    assert_eq!(event["data"]["changed"], json!(["sts"]), "{event}");
    assert_eq!(event["data"]["storage"]["credential-mode"], "vended");

    // Key rotation: the profile's keys become the admin identity's (static mode hands them
    // out): B serves the new keys at once, and writes with them.
    let (admin_key, admin_secret) = admin_keys();
    let mut rotated = s3.profile("static");
    rotated["access-key-id"] = json!(admin_key);
    rotated["secret-access-key"] = json!(admin_secret);
    let r = a
        .request(Method::PUT, &storage_path(&wh), Some(&rotated))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(!r.text.contains(&admin_secret), "{}", r.text);
    let keys = loaded_keys(&b, &wh).await;
    assert_eq!(keys["s3.access-key-id"], admin_key.as_str(), "{keys}");
    assert!(keys.get("s3.session-token").is_none(), "{keys}");
    let r = b
        .post(
            &format!("/v1/{wh}/namespaces/ns/tables/t"),
            &json!({"requirements": [], "updates": [
                {"action": "set-properties", "updates": {"after": "rotation"}}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "commit through B: {}", r.text);
    let event = next_event(&mut feed).await;
    assert_eq!(
        event["data"]["changed"],
        json!([
            "access-key-id",
            "credential-mode",
            "secret-access-key",
            "sts"
        ]),
        "{event}"
    );
    let shown = event.to_string();
    for secret in [&s3.secret_access_key, &admin_secret] {
        assert!(!shown.contains(secret.as_str()), "{shown}");
    }

    // A profile that fails its check is a 400 naming the step, and changes nothing.
    let mut wrong = rotated.clone();
    wrong["secret-access-key"] = json!("not-the-secret");
    let r = a
        .request(Method::PUT, &storage_path(&wh), Some(&wrong))
        .await;
    let message = r.assert_error(StatusCode::BAD_REQUEST, "BadRequestException");
    assert!(message.contains("writing a probe object"), "{message}");
    assert_eq!(
        loaded_keys(&b, &wh).await["s3.access-key-id"],
        admin_key.as_str()
    );
    // The location is not part of a profile; a local warehouse takes none; a warehouse
    // that does not exist is a 404.
    let mut moved = rotated.clone();
    moved["location"] = json!(format!("s3://{}/elsewhere", s3.bucket));
    let r = a
        .request(Method::PUT, &storage_path(&wh), Some(&moved))
        .await;
    let message = r.assert_error(StatusCode::BAD_REQUEST, "BadRequestException");
    assert!(message.contains("location"), "{message}");
    let r = a
        .request(Method::PUT, &storage_path("default"), Some(&rotated))
        .await;
    let message = r.assert_error(StatusCode::BAD_REQUEST, "BadRequestException");
    assert!(message.contains("takes no storage profile"), "{message}");
    let r = a
        .request(Method::PUT, &storage_path("no-such-wh"), Some(&rotated))
        .await;
    r.assert_error(StatusCode::NOT_FOUND, "NoSuchWarehouseException");

    // Only admins.
    let token = non_admin_token(&a).await;
    let r = a
        .request_as(&token, Method::PUT, &storage_path(&wh), Some(&profile))
        .await;
    r.assert_error(StatusCode::FORBIDDEN, "ForbiddenException");
    assert_eq!(
        loaded_keys(&b, &wh).await["s3.access-key-id"],
        admin_key.as_str()
    );

    // The audit log has the update, without secrets.
    let audit = a.get("/management/v1/audit?limit=1000").await;
    let records = audit.json()["records"].as_array().unwrap().clone();
    assert!(
        records.iter().any(|r| r["operation"]
            == "PUT /management/v1/warehouses/{warehouse}/storage"
            && r["status"] == 200),
        "{}",
        audit.text
    );
    assert!(!audit.text.contains(&admin_secret));
}

async fn empty_warehouses_can_be_deleted(backend: Backend) {
    let mut a = TestApp::spawn_with(backend, &auth_args()).await;
    a.token = Some(a.token_for(ADMIN_ID, ADMIN_SECRET).await);
    let mut b = a.authenticated_replica().await;
    b.token = a.token.clone();
    let wh = wh_name("gone");
    let location = |name: &str| format!("file://{}/{name}", a.dir.path().display());
    let create = |name: String, at: String| {
        let a = &a;
        async move {
            a.manage(
                Method::POST,
                "/management/v1/warehouses",
                Some(json!({"name": name, "location": at})),
                StatusCode::CREATED,
            )
            .await
        }
    };
    create(wh.clone(), location(&wh)).await;
    let ok = StatusCode::OK;
    let namespaces = format!("/v1/{wh}/namespaces");
    // Replica B serves it (and keeps it in memory).
    b.manage(Method::GET, &namespaces, None, ok).await;
    a.manage(
        Method::POST,
        &namespaces,
        Some(json!({"namespace": ["ns"]})),
        ok,
    )
    .await;
    a.manage(
        Method::POST,
        &format!("{namespaces}/ns/tables"),
        Some(json!({"name": "t", "schema": crate::common::simple_schema()})),
        ok,
    )
    .await;
    a.manage(
        Method::POST,
        "/management/v1/roles",
        Some(json!({"name": "on-gone"})),
        StatusCode::CREATED,
    )
    .await;
    a.manage(
        Method::POST,
        "/management/v1/roles/on-gone/grants",
        Some(json!({"privilege": "read", "warehouse": wh})),
        StatusCode::NO_CONTENT,
    )
    .await;
    let path = format!("/management/v1/warehouses/{wh}");

    // Refused while it holds something, saying what.
    let r = a.delete(&path).await;
    let message = r.assert_error(StatusCode::CONFLICT, "ConflictException");
    assert!(
        message.contains("1 namespace, 1 table") && message.contains("drop them first"),
        "{message}"
    );
    let r = a.delete("/management/v1/warehouses/default").await;
    let message = r.assert_error(StatusCode::CONFLICT, "ConflictException");
    assert!(message.contains("default warehouse"), "{message}");
    a.delete("/management/v1/warehouses/no-such-warehouse")
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchWarehouseException");
    // A function keeps its warehouse too (functions cannot be dropped).
    let with_function = wh_name("fn");
    create(with_function.clone(), location(&with_function)).await;
    a.manage(
        Method::POST,
        &format!("/v1/{with_function}/namespaces"),
        Some(json!({"namespace": ["udfs"]})),
        ok,
    )
    .await;
    a.manage(
        Method::POST,
        &format!("/management/v1/warehouses/{with_function}/namespaces/udfs/functions"),
        Some(json!({"name": "f", "metadata": crate::common::add_one_function()})),
        StatusCode::CREATED,
    )
    .await;
    let r = a
        .delete(&format!("/management/v1/warehouses/{with_function}"))
        .await;
    let message = r.assert_error(StatusCode::CONFLICT, "ConflictException");
    assert!(message.contains("1 function"), "{message}");

    // Only admins.
    let token = non_admin_token(&a).await;
    a.request_as(&token, Method::DELETE, &path, None)
        .await
        .assert_error(StatusCode::FORBIDDEN, "ForbiddenException");

    // Emptied, it goes, with its grants; both replicas stop serving it.
    let mut feed = a.feed("types=warehouse").await;
    let mut tables_feed = a.feed("types=table").await;
    a.manage(
        Method::DELETE,
        &format!("{namespaces}/ns/tables/t"),
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    let dropped = next_event(&mut tables_feed).await;
    assert_eq!(dropped["type"], "table.dropped", "{dropped}");
    a.manage(
        Method::DELETE,
        &format!("{namespaces}/ns"),
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    a.manage(Method::DELETE, &path, None, StatusCode::NO_CONTENT)
        .await;
    let event = next_event(&mut feed).await;
    assert_eq!(event["type"], "warehouse.deleted", "{event}");
    assert_eq!(event["warehouse"], wh.as_str(), "{event}");
    // Read after the deletion (a replay from a cursor, or a live batch read late), the
    // admin still gets every event of the deleted warehouse.
    let cursor = dropped["cursor"].as_str().expect("events carry a cursor");
    let mut replay = a.feed(&format!("cursor={cursor}")).await;
    for expected in ["namespace.dropped", "warehouse.deleted"] {
        let event = next_event(&mut replay).await;
        assert_eq!(event["type"], expected, "{event}");
        assert_eq!(event["warehouse"], wh.as_str(), "{event}");
    }
    let grants = a
        .manage(Method::GET, "/management/v1/roles/on-gone/grants", None, ok)
        .await;
    assert_eq!(grants["grants"], json!([]), "{grants}");
    a.get(&namespaces)
        .await
        .assert_error(StatusCode::NOT_FOUND, "NoSuchWarehouseException");
    crate::common::eventually("replica B stops serving the deleted warehouse", || async {
        b.get(&namespaces).await.status == StatusCode::NOT_FOUND
    })
    .await;
    let listed = a.get("/management/v1/warehouses").await;
    assert!(
        !listed.text.contains(&format!("\"{wh}\"")),
        "{}",
        listed.text
    );

    // A new warehouse of the same name elsewhere is served by both replicas.
    create(wh.clone(), location(&format!("{wh}-again"))).await;
    b.manage(
        Method::POST,
        &namespaces,
        Some(json!({"namespace": ["fresh"]})),
        ok,
    )
    .await;
    let listed = a.manage(Method::GET, &namespaces, None, ok).await;
    assert_eq!(listed["namespaces"], json!([["fresh"]]), "{listed}");
}

/// The stored profile of a warehouse, read from the database with SQL.
async fn stored_profile(backend: Backend, database: &str, warehouse: &str) -> String {
    use sqlx::Connection;
    let sql = "SELECT storage FROM warehouses WHERE name = $1";
    let stored: Option<String> = match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(database).await.unwrap();
            sqlx::query_scalar(sql)
                .bind(warehouse)
                .fetch_one(&mut conn)
                .await
                .unwrap()
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(database).await.unwrap();
            sqlx::query_scalar(sql)
                .bind(warehouse)
                .fetch_one(&mut conn)
                .await
                .unwrap()
        }
    };
    stored.expect("a stored profile")
}

/// The id of the secrets key in `file`, as the server names it.
fn key_id(file: &std::path::Path) -> String {
    serac::storage::SecretKeys::from_files(Some(file), &[])
        .unwrap()
        .current_id()
        .unwrap()
        .to_owned()
}

async fn secrets_are_encrypted_at_rest(backend: Backend) {
    let s3 = s3_env();
    let keys = tempfile::tempdir().unwrap();
    let (k1, k2) = (keys.path().join("k1"), keys.path().join("k2"));
    std::fs::write(&k1, "first secrets key: at least thirty-two bytes\n").unwrap();
    std::fs::write(&k2, "second secrets key: at least thirty-two bytes\n").unwrap();
    let (k1_flag, k2_flag) = (
        k1.to_str().unwrap().to_owned(),
        k2.to_str().unwrap().to_owned(),
    );

    // A server with key 1: the row holds the secret sealed, never in plain text.
    let app = TestApp::spawn_with(backend, &["--secrets-key-file", &k1_flag]).await;
    let database = app.database_url.clone();
    let wh = wh_name("sealed");
    s3_warehouse_with_table(&app, &s3, &wh, &s3.profile("static")).await;
    let stored = stored_profile(backend, &database, &wh).await;
    assert!(!stored.contains(&s3.secret_access_key), "{stored}");
    let row: Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(row["secret-access-key"]["sealed"], 1, "{stored}");
    assert_eq!(row["secret-access-key"]["key-id"], key_id(&k1).as_str());
    assert_eq!(
        loaded_keys(&app, &wh).await["s3.secret-access-key"],
        s3.secret_access_key.as_str()
    );
    // A warehouse made without a key keeps its secret in plain text (and is warned about).
    let (dir, _) = app.stop().await;
    let plain_app = TestApp::spawn_on(backend, dir, database.clone(), &[]).await;
    let plain = wh_name("plain");
    s3_warehouse_with_table(&plain_app, &s3, &plain, &s3.profile("static")).await;
    assert!(
        stored_profile(backend, &database, &plain)
            .await
            .contains(&s3.secret_access_key)
    );

    // The same database without key 1: the warehouse's storage is refused with what is
    // wrong, and everything else still works.
    for (app, lacks) in [
        (&plain_app, "it has no secrets key"),
        (
            &TestApp::spawn_on(
                backend,
                tempfile::tempdir().unwrap(),
                database.clone(),
                &["--secrets-key-file", &k2_flag],
            )
            .await,
            "it has '",
        ),
    ] {
        let r = app.get(&format!("/v1/{wh}/namespaces/ns/tables/t")).await;
        let message = r.assert_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailableException",
        );
        assert!(
            message.contains(&key_id(&k1)) && message.contains(lacks),
            "{message}"
        );
        assert!(message.contains("--secrets-key-file"), "{message}");
        assert!(!r.text.contains(&s3.secret_access_key));
        let listed = app.get("/management/v1/warehouses").await;
        assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
        assert!(listed.text.contains(&wh), "{}", listed.text);
        let r = app
            .get(&format!("/v1/{plain}/namespaces/ns/tables/t"))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }

    // Rotation to key 2 (key 1 kept as a previous key): every secret, plain or sealed with
    // key 1, is sealed with key 2.
    let (ok, stdout, stderr) = serac_cli(
        &database,
        &[
            "secrets",
            "rotate",
            "--secrets-key-file",
            &k2_flag,
            "--secrets-previous-key-files",
            &k1_flag,
        ],
    );
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("{wh}\trewritten")),
        "{stdout}{stderr}"
    );
    assert!(stdout.contains(&format!("{plain}\trewritten")), "{stdout}");
    for name in [&wh, &plain] {
        let stored = stored_profile(backend, &database, name).await;
        assert!(!stored.contains(&s3.secret_access_key), "{stored}");
        let row: Value = serde_json::from_str(&stored).unwrap();
        assert_eq!(row["secret-access-key"]["key-id"], key_id(&k2).as_str());
    }
    let (ok, stdout, _) = serac_cli(
        &database,
        &["secrets", "rotate", "--secrets-key-file", &k2_flag],
    );
    assert!(
        ok && stdout.contains(&format!("{wh}\tunchanged")),
        "{stdout}"
    );
    // Without key 2, rotation says which warehouses it could not read, and fails.
    let (ok, stdout, _) = serac_cli(
        &database,
        &["secrets", "rotate", "--secrets-key-file", &k1_flag],
    );
    assert!(
        !ok && stdout.contains(&format!("{wh}\tSKIPPED")),
        "{stdout}"
    );

    // A server with key 2 serves both; a new profile written through it is sealed with
    // the current key.
    let app = TestApp::spawn_on(
        backend,
        tempfile::tempdir().unwrap(),
        database.clone(),
        &[
            "--secrets-key-file",
            &k2_flag,
            "--secrets-previous-key-files",
            &k1_flag,
        ],
    )
    .await;
    for name in [&wh, &plain] {
        assert_eq!(
            loaded_keys(&app, name).await["s3.secret-access-key"],
            s3.secret_access_key.as_str()
        );
    }
    let r = app
        .request(Method::PUT, &storage_path(&wh), Some(&s3.profile("none")))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let row: Value = serde_json::from_str(&stored_profile(backend, &database, &wh).await).unwrap();
    assert_eq!(row["secret-access-key"]["key-id"], key_id(&k2).as_str());
    assert_eq!(row["credential-mode"], "none");
    drop(plain_app);
}

both_backends!(
    profile_updates_reach_every_replica_at_once,
    empty_warehouses_can_be_deleted,
    secrets_are_encrypted_at_rest,
);
