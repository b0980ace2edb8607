//! S3 warehouses against a real S3 with STS that enforces session policies (SeaweedFS,
//! started by `tests/run.sh` through `tests/lib/s3.sh`): profiles checked on create, metadata
//! written to the bucket, credentials handed out per table that the store itself refuses on
//! another table's objects, read-only credentials for readers, purges that delete one
//! table's objects and leave the others', and secrets that never show.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::common::s3::{S3Env, key_of, s3_env};
use crate::common::{ADMIN_ID, ADMIN_SECRET, Backend, TestApp, auth_args, unique};

/// Creates an S3 warehouse `name` at `s3://bucket/name` with `profile`.
async fn create_warehouse(app: &TestApp, s3: &S3Env, name: &str, profile: Value) -> Value {
    let r = app
        .post(
            "/management/v1/warehouses",
            &json!({"name": name, "location": format!("s3://{}/{name}", s3.bucket), "storage": profile}),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "create warehouse: {}",
        r.text
    );
    assert!(
        !r.text.contains(&s3.secret_access_key),
        "the response shows the secret: {}",
        r.text
    );
    r.json()
}

async fn create_table(app: &TestApp, wh: &str, ns: &str, name: &str) -> Value {
    let r = app
        .post(
            &format!("/v1/{wh}/namespaces/{ns}/tables"),
            &json!({"name": name, "schema": crate::common::simple_schema()}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "create {ns}.{name}: {}", r.text);
    r.json()
}

/// Makes a principal that may only read namespace `ns` of `wh` (as the admin whose token
/// is given); its token.
async fn reader_token(app: &TestApp, admin: &str, wh: &str) -> String {
    let grant = json!({"privilege": "read", "warehouse": wh, "namespace": ["ns"]});
    principal_with(app, admin, "reader", grant).await
}

/// Makes principal `name` whose one role holds `grant`; its token.
async fn principal_with(app: &TestApp, admin: &str, name: &str, grant: Value) -> String {
    let role = format!("{name}-role");
    let send = |method: Method, path: &str, body: Option<Value>| {
        let mut request = app.client.request(method, app.url(path)).bearer_auth(admin);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send()
    };
    let reader: Value = send(
        Method::POST,
        "/management/v1/principals",
        Some(json!({"name": name})),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    for (method, path, body) in [
        (
            Method::POST,
            "/management/v1/roles".to_owned(),
            Some(json!({"name": role})),
        ),
        (
            Method::PUT,
            format!("/management/v1/roles/{role}/members/{name}"),
            None,
        ),
        (
            Method::POST,
            format!("/management/v1/roles/{role}/grants"),
            Some(grant),
        ),
    ] {
        let r = send(method, &path, body).await.unwrap();
        assert!(r.status().is_success(), "{path}: {:?}", r.text().await);
    }
    app.token_for(
        reader["client-id"].as_str().unwrap(),
        reader["client-secret"].as_str().unwrap(),
    )
    .await
}

/// Whether an S3 call was refused with AccessDenied.
fn denied<T, E: aws_sdk_s3::error::ProvideErrorMetadata + std::fmt::Debug>(
    result: Result<T, aws_sdk_s3::error::SdkError<E>>,
) -> bool {
    match result {
        Ok(_) => false,
        Err(e) => {
            let code = e
                .as_service_error()
                .and_then(|s| s.code())
                .map(str::to_owned);
            assert_eq!(code.as_deref(), Some("AccessDenied"), "{e:?}");
            true
        }
    }
}

async fn put(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> bool {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"data"))
        .send()
        .await
        .is_ok()
}

/// The one `storage-credentials` entry of a load result, checked: scoped to the table's
/// location, with every key and the same keys in `config`.
fn credentials_entry(load: &Value) -> Value {
    let entries = load["storage-credentials"]
        .as_array()
        .unwrap_or_else(|| panic!("storage-credentials in {load}"));
    assert_eq!(entries.len(), 1, "{load}");
    let entry = entries[0].clone();
    assert_eq!(entry["prefix"], load["metadata"]["location"], "{entry}");
    for key in [
        "s3.access-key-id",
        "s3.secret-access-key",
        "s3.session-token",
        "s3.session-token-expires-at-ms",
        "s3.endpoint",
        "s3.region",
        "client.region",
    ] {
        let value = entry["config"][key].as_str().unwrap_or_default();
        assert!(!value.is_empty(), "{key} missing in {entry}");
        assert_eq!(load["config"][key], entry["config"][key], "{key} in config");
    }
    assert_eq!(entry["config"]["s3.path-style-access"], "true");
    assert_eq!(entry["config"]["s3.force-virtual-addressing"], "false");
    entry
}

async fn vended_credentials_reach_one_table_only(backend: Backend) {
    let s3 = s3_env();
    let mut app = TestApp::spawn_with(backend, &auth_args()).await;
    app.token = Some(app.token_for(ADMIN_ID, ADMIN_SECRET).await);
    let wh = unique("lake").replace('_', "-");
    let created = create_warehouse(&app, &s3, &wh, s3.profile("vended")).await;
    assert_eq!(created["storage"]["credential-mode"], "vended", "{created}");
    assert!(created["storage"].get("secret-access-key").is_none());

    let r = app
        .post(
            &format!("/v1/{wh}/namespaces"),
            &json!({"namespace": ["ns"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let a = create_table(&app, &wh, "ns", "a").await;
    let b = create_table(&app, &wh, "ns", "b").await;
    credentials_entry(&a);
    let a_location = a["metadata"]["location"].as_str().unwrap().to_owned();
    let b_location = b["metadata"]["location"].as_str().unwrap().to_owned();
    assert!(
        a_location.starts_with(&format!("s3://{}/{wh}/", s3.bucket)),
        "{a_location}"
    );

    // A commit writes its metadata file to the bucket.
    let r = app
        .post(
            &format!("/v1/{wh}/namespaces/ns/tables/a"),
            &json!({"requirements": [], "updates": [
                {"action": "set-properties", "updates": {"committed": "yes"}}
            ]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "commit: {}", r.text);
    let committed = r.json()["metadata-location"].as_str().unwrap().to_owned();
    let a_keys = s3.keys_below(&key_of(&a_location)).await;
    assert!(a_keys.contains(&key_of(&committed)), "{a_keys:?}");

    // Loading hands out credentials for A; the store lets them work on A's objects only.
    let load = app.get(&format!("/v1/{wh}/namespaces/ns/tables/a")).await;
    assert_eq!(load.status, StatusCode::OK, "{}", load.text);
    let load = load.json();
    assert_eq!(load["metadata"]["properties"]["committed"], "yes");
    let entry = credentials_entry(&load);
    let client = s3.client_of(&entry);
    let bucket = s3.bucket.as_str();
    let a_prefix = key_of(&a_location);
    let b_prefix = key_of(&b_location);
    let own = format!("{a_prefix}/data/probe.parquet");
    assert!(put(&client, bucket, &own).await, "put under A");
    client
        .get_object()
        .bucket(bucket)
        .key(key_of(&committed))
        .send()
        .await
        .expect("get A's metadata file");
    let listed = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(format!("{a_prefix}/"))
        .send()
        .await
        .expect("list A");
    assert!(
        listed
            .contents()
            .iter()
            .any(|o| o.key() == Some(own.as_str()))
    );
    client
        .delete_object()
        .bucket(bucket)
        .key(&own)
        .send()
        .await
        .expect("delete under A");

    let b_metadata = key_of(b["metadata-location"].as_str().unwrap());
    assert!(
        denied(
            client
                .get_object()
                .bucket(bucket)
                .key(&b_metadata)
                .send()
                .await
        ),
        "get on B"
    );
    assert!(
        denied(
            client
                .put_object()
                .bucket(bucket)
                .key(format!("{b_prefix}/data/x.parquet"))
                .body(aws_sdk_s3::primitives::ByteStream::from_static(b"x"))
                .send()
                .await
        ),
        "put on B"
    );
    assert!(
        denied(
            client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(format!("{b_prefix}/"))
                .send()
                .await
        ),
        "list on B"
    );
    assert!(
        denied(
            client
                .delete_object()
                .bucket(bucket)
                .key(&b_metadata)
                .send()
                .await
        ),
        "delete on B"
    );
    assert!(
        denied(client.list_objects_v2().bucket(bucket).send().await),
        "list the bucket root"
    );
    assert!(
        s3.keys_below(&b_prefix).await.contains(&b_metadata),
        "B's metadata file is still there"
    );

    // The credentials endpoint answers the same scope.
    let r = app
        .get(&format!("/v1/{wh}/namespaces/ns/tables/a/credentials"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let creds = r.json();
    assert_eq!(
        creds["storage-credentials"][0]["prefix"],
        a_location.as_str()
    );

    // A principal that may only read gets credentials that cannot write.
    let admin_token = app.token.take();
    app.token = Some(reader_token(&app, admin_token.as_deref().unwrap(), &wh).await);
    let load = app.get(&format!("/v1/{wh}/namespaces/ns/tables/a")).await;
    assert_eq!(load.status, StatusCode::OK, "{}", load.text);
    let reader_client = s3.client_of(&credentials_entry(&load.json()));
    reader_client
        .get_object()
        .bucket(bucket)
        .key(key_of(&committed))
        .send()
        .await
        .expect("a reader reads A");
    assert!(
        denied(
            reader_client
                .put_object()
                .bucket(bucket)
                .key(format!("{a_prefix}/data/r.parquet"))
                .body(aws_sdk_s3::primitives::ByteStream::from_static(b"r"))
                .send()
                .await
        ),
        "a reader's put"
    );
    app.token = admin_token;

    // A purge deletes A's objects (also ones no metadata names) and leaves B's.
    assert!(
        put(
            &s3.catalog_client(),
            bucket,
            &format!("{a_prefix}/data/orphan.parquet")
        )
        .await
    );
    let r = app
        .delete(&format!(
            "/v1/{wh}/namespaces/ns/tables/a?purgeRequested=true"
        ))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    crate::common::eventually("A's objects are purged", || async {
        s3.keys_below(&a_prefix).await.is_empty()
    })
    .await;
    assert!(s3.keys_below(&b_prefix).await.contains(&b_metadata));
}

async fn profiles_are_checked_and_modes_hand_out_what_they_say(backend: Backend) {
    let s3 = s3_env();
    let app = TestApp::spawn(backend).await;
    let location = |name: &str| format!("s3://{}/{name}", s3.bucket);

    // What cannot work is refused with what failed, and nothing is created.
    let mut wrong_secret = s3.profile("static");
    wrong_secret["secret-access-key"] = json!("not-the-secret");
    let mut wrong_role = s3.profile("vended");
    wrong_role["sts"]["role-arn"] = json!("arn:aws:iam::role/NoSuchRole");
    let cases = [
        (
            json!({"name": "w1", "location": location("w1")}),
            "storage profile",
        ),
        (
            json!({"name": "w2", "location": location("w2"), "storage": wrong_secret}),
            "writing a probe object",
        ),
        (
            json!({"name": "w3", "location": location("w3"), "storage": wrong_role}),
            "assuming the role",
        ),
        (
            json!({"name": "w4", "location": "file:///tmp/serac-w4", "storage": s3.profile("none")}),
            "takes no storage profile",
        ),
        (
            json!({"name": "w5", "location": location("w5"), "storage": {"type": "s3"}}),
            "invalid storage profile",
        ),
    ];
    for (body, needle) in cases {
        let r = app.post("/management/v1/warehouses", &body).await;
        let message = r.assert_error(StatusCode::BAD_REQUEST, "BadRequestException");
        assert!(message.contains(needle), "{needle}: {message}");
        assert!(!r.text.contains(&s3.secret_access_key), "{}", r.text);
    }
    let list = app.get("/management/v1/warehouses").await;
    assert!(!list.text.contains("\"w2\""), "{}", list.text);

    // `static` hands out the profile's own keys (no token, no expiry); `none` no keys.
    let wh = unique("static").replace('_', "-");
    create_warehouse(&app, &s3, &wh, s3.profile("static")).await;
    app.post(
        &format!("/v1/{wh}/namespaces"),
        &json!({"namespace": ["ns"]}),
    )
    .await;
    let t = create_table(&app, &wh, "ns", "t").await;
    let entry = &t["storage-credentials"][0];
    assert_eq!(
        entry["config"]["s3.access-key-id"],
        s3.access_key_id.as_str()
    );
    assert!(entry["config"].get("s3.session-token").is_none(), "{entry}");
    assert_eq!(t["config"]["s3.endpoint"], s3.endpoint.as_str());

    // A staged create and a registration hand out credentials for their table too.
    let staged = app
        .post(
            &format!("/v1/{wh}/namespaces/ns/tables"),
            &json!({"name": "staged", "schema": crate::common::simple_schema(), "stage-create": true}),
        )
        .await;
    assert_eq!(staged.status, StatusCode::OK, "{}", staged.text);
    let staged = staged.json();
    assert_eq!(
        staged["storage-credentials"][0]["prefix"], staged["metadata"]["location"],
        "{staged}"
    );
    let r = app
        .post(
            &format!("/v1/{wh}/namespaces/ns/tables/t/unregister"),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app
        .post(
            &format!("/v1/{wh}/namespaces/ns/register"),
            &json!({"name": "again", "metadata-location": t["metadata-location"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "register: {}", r.text);
    let registered = r.json();
    assert_eq!(
        registered["storage-credentials"][0]["config"]["s3.access-key-id"],
        s3.access_key_id.as_str()
    );

    let wh = unique("none").replace('_', "-");
    create_warehouse(&app, &s3, &wh, s3.profile("none")).await;
    app.post(
        &format!("/v1/{wh}/namespaces"),
        &json!({"namespace": ["ns"]}),
    )
    .await;
    let t = create_table(&app, &wh, "ns", "t").await;
    assert!(t.get("storage-credentials").is_none(), "{t}");
    assert!(t["config"].get("s3.secret-access-key").is_none(), "{t}");
    assert_eq!(t["config"]["s3.region"], "us-east-1");
    let loaded = app.get(&format!("/v1/{wh}/namespaces/ns/tables/t")).await;
    assert_eq!(loaded.status, StatusCode::OK, "{}", loaded.text);
    let creds = app
        .get(&format!("/v1/{wh}/namespaces/ns/tables/t/credentials"))
        .await;
    assert_eq!(creds.json(), json!({"storage-credentials": []}));

    // A location outside the warehouse is refused before any request.
    let r = app
        .post(
            &format!("/v1/{wh}/namespaces/ns/tables"),
            &json!({"name": "outside", "schema": crate::common::simple_schema(),
                    "location": format!("s3://{}/elsewhere/outside", s3.bucket)}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
}

/// The server as a process with debug logs: the profile's secret and the vended keys show in
/// no log line, no event and no management response; the CLI creates S3 warehouses from a
/// profile file.
async fn secrets_never_show(backend: Backend) {
    let s3 = s3_env();
    let dir = tempfile::tempdir().unwrap();
    let database = crate::common::database_url(backend, dir.path()).await;
    // The CLI: a profile file, checked and stored.
    let wh = unique("cli").replace('_', "-");
    let profile_file = dir.path().join("profile.json");
    std::fs::write(&profile_file, s3.profile("vended").to_string()).unwrap();
    let (ok, stdout, stderr) = crate::common::serac_cli(
        &database,
        &[
            "warehouse",
            "create",
            &wh,
            "--location",
            &format!("s3://{}/{wh}", s3.bucket),
            "--storage-file",
            profile_file.to_str().unwrap(),
            "--data-dir",
            dir.path().to_str().unwrap(),
        ],
    );
    assert!(ok, "{stdout}{stderr}");
    assert!(!stdout.contains(&s3.secret_access_key) && !stderr.contains(&s3.secret_access_key));

    let port = crate::common::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let log_path = dir.path().join("serac.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_serac"))
        .args([
            "--log-level",
            "debug",
            "serve",
            "--bind",
            &format!("127.0.0.1:{port}"),
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--database-url", &database])
        .env_remove("SERAC_DATABASE_URL")
        .stdout(std::fs::File::create(&log_path).unwrap())
        .stderr(std::process::Stdio::from(
            std::fs::File::options()
                .append(true)
                .open(&log_path)
                .unwrap(),
        ))
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    crate::common::eventually("the server is ready", || async {
        client
            .get(format!("{base}/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK)
    })
    .await;
    let mut seen = String::new();
    let r = client
        .post(format!("{base}/v1/{wh}/namespaces"))
        .json(&json!({"namespace": ["ns"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = client
        .post(format!("{base}/v1/{wh}/namespaces/ns/tables"))
        .json(&json!({"name": "t", "schema": crate::common::simple_schema()}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let created: Value = r.json().await.unwrap();
    let vended = credentials_entry(&created)["config"].clone();
    for path in ["/management/v1/warehouses", "/management/v1/audit"] {
        seen.push_str(
            &client
                .get(format!("{base}{path}"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
    }
    // A warehouse created through the API while the change feed is open: its
    // warehouse.created event carries the profile without keys.
    let url = format!("ws://127.0.0.1:{port}/v1/events/stream?types=warehouse");
    let (mut feed, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let api_wh = unique("api").replace('_', "-");
    let r = client
        .post(format!("{base}/management/v1/warehouses"))
        .json(
            &json!({"name": api_wh, "location": format!("s3://{}/{api_wh}", s3.bucket),
                      "storage": s3.profile("vended")}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    seen.push_str(&r.text().await.unwrap());
    let mut events = vec![crate::common::next_event(&mut feed).await];
    // A new profile with the store's other keys, through the API and the CLI: its
    // warehouse.updated events carry no key either.
    let admin_secret = std::env::var("SERAC_TEST_S3_ADMIN_SECRET_ACCESS_KEY").unwrap();
    let mut rotated = s3.profile("static");
    rotated["access-key-id"] = json!(std::env::var("SERAC_TEST_S3_ADMIN_ACCESS_KEY_ID").unwrap());
    rotated["secret-access-key"] = json!(admin_secret);
    let r = client
        .put(format!("{base}/management/v1/warehouses/{api_wh}/storage"))
        .json(&rotated)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    seen.push_str(&r.text().await.unwrap());
    std::fs::write(&profile_file, rotated.to_string()).unwrap();
    let (ok, stdout, stderr) = crate::common::serac_cli(
        &database,
        &[
            "warehouse",
            "update",
            &wh,
            "--storage-file",
            profile_file.to_str().unwrap(),
            "--data-dir",
            dir.path().to_str().unwrap(),
        ],
    );
    assert!(ok, "{stdout}{stderr}");
    seen.push_str(&stdout);
    seen.push_str(&stderr);
    events.push(crate::common::next_event(&mut feed).await);
    assert_eq!(events[1]["type"], "warehouse.updated", "{}", events[1]);
    let warehouse_event = &events[0];
    assert_eq!(
        warehouse_event["type"], "warehouse.created",
        "{warehouse_event}"
    );
    assert_eq!(
        warehouse_event["data"]["storage"]["credential-mode"], "vended",
        "{warehouse_event}"
    );
    seen.push_str(&serde_json::to_string(&events).unwrap());
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    child.wait().unwrap();
    seen.push_str(&std::fs::read_to_string(&log_path).unwrap());
    assert!(seen.contains("warehouse.created") || seen.contains(&wh));
    for (what, secret) in [
        ("the profile's secret key", s3.secret_access_key.as_str()),
        ("the rotated secret key", admin_secret.as_str()),
        (
            "a vended secret key",
            vended["s3.secret-access-key"].as_str().unwrap(),
        ),
        (
            "a vended session token",
            vended["s3.session-token"].as_str().unwrap(),
        ),
    ] {
        assert!(
            !seen.contains(secret),
            "{what} shows in a response, event or log line"
        );
    }
}

/// Sends a request as a signing response says.
async fn send_signed(
    client: &reqwest::Client,
    method: &str,
    signed: &Value,
    body: Option<&'static [u8]>,
) -> reqwest::Response {
    send_signed_with(client, method, signed, &[], body.map(<[u8]>::to_vec)).await
}

/// Sends a request with its own `headers` and those a signing response adds.
async fn send_signed_with(
    client: &reqwest::Client,
    method: &str,
    signed: &Value,
    headers: &[(&str, String)],
    body: Option<Vec<u8>>,
) -> reqwest::Response {
    let mut request = client.request(
        method.parse().unwrap(),
        signed["uri"].as_str().expect("a signed URI"),
    );
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    for (name, values) in signed["headers"].as_object().expect("signed headers") {
        for value in values.as_array().unwrap() {
            request = request.header(name.as_str(), value.as_str().unwrap());
        }
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    request.send().await.unwrap()
}

/// A server with authentication, as its admin, with a remote-signing warehouse holding
/// tables `ns.a` and `ns.b`.
struct Signing {
    app: TestApp,
    s3: S3Env,
    wh: String,
    a: Value,
    b: Value,
}

impl Signing {
    async fn start(backend: Backend) -> Self {
        Self::start_with(backend, &[]).await
    }

    /// With extra `serac serve` flags.
    async fn start_with(backend: Backend, extra: &[&str]) -> Self {
        let s3 = s3_env();
        let args: Vec<&str> = auth_args().iter().chain(extra).copied().collect();
        let mut app = TestApp::spawn_with(backend, &args).await;
        app.token = Some(app.token_for(ADMIN_ID, ADMIN_SECRET).await);
        let wh = unique("signed").replace('_', "-");
        let mut profile = s3.profile("remote-signing");
        profile.as_object_mut().unwrap().remove("sts");
        create_warehouse(&app, &s3, &wh, profile).await;
        app.post(
            &format!("/v1/{wh}/namespaces"),
            &json!({"namespace": ["ns"]}),
        )
        .await;
        let a = create_table(&app, &wh, "ns", "a").await;
        let b = create_table(&app, &wh, "ns", "b").await;
        Self { app, s3, wh, a, b }
    }
}

/// The key of a file below a table.
fn key_in(table: &Value, name: &str) -> String {
    format!(
        "{}/data/{name}",
        key_of(table["metadata"]["location"].as_str().unwrap())
    )
}

/// The path-style URL of a key.
fn url_of(s3: &S3Env, key: &str) -> String {
    format!("{}/{}/{key}", s3.endpoint, s3.bucket)
}

/// A signing request for `method` on `uri`.
fn sign(method: &str, uri: &str) -> Value {
    json!({"method": method, "region": "us-east-1", "uri": uri,
           "headers": {"content-type": ["application/octet-stream"]}})
}

async fn remote_signing_signs_inside_the_table_only(backend: Backend) {
    let Signing {
        mut app,
        s3,
        wh,
        a,
        b,
    } = Signing::start(backend).await;
    assert!(a.get("storage-credentials").is_none(), "{a}");
    assert_eq!(a["config"]["s3.remote-signing-enabled"], "true", "{a}");
    let endpoint = format!("v1/{wh}/namespaces/ns/tables/a/sign");
    // The spec's spelling names the table's endpoint; PyIceberg's the legacy path.
    assert_eq!(a["config"]["signer.endpoint"], endpoint.as_str());
    assert_eq!(a["config"]["s3.signer.endpoint"], "v1/aws/s3/sign");
    let object = |location: &Value, name: &str| {
        format!(
            "{}/{}/{}/data/{name}",
            s3.endpoint,
            s3.bucket,
            key_of(location.as_str().unwrap())
        )
    };
    let a_object = object(&a["metadata"]["location"], "signed.parquet");
    let path = format!("/{endpoint}");

    // A PUT and a GET inside A, signed by Serac, are taken by the store.
    let http = reqwest::Client::new();
    let r = app.post(&path, &sign("PUT", &a_object)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let put = send_signed(&http, "PUT", &r.json(), Some(b"signed bytes")).await;
    assert!(put.status().is_success(), "{:?}", put.text().await);
    let r = app.post(&path, &sign("GET", &a_object)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let got = send_signed(&http, "GET", &r.json(), None).await;
    assert!(got.status().is_success());
    assert_eq!(got.bytes().await.unwrap().as_ref(), b"signed bytes");
    let listing = format!(
        "{}/{}?list-type=2&prefix={}/",
        s3.endpoint,
        s3.bucket,
        key_of(a["metadata"]["location"].as_str().unwrap())
    );
    let r = app.post(&path, &sign("GET", &listing)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(
        send_signed(&http, "GET", &r.json(), None)
            .await
            .status()
            .is_success()
    );

    // B's objects through A's endpoint, a batch delete, the bucket root: 403.
    let b_object = object(&b["metadata"]["location"], "x.parquet");
    for (method, uri) in [
        ("GET", b_object.as_str()),
        ("PUT", b_object.as_str()),
        ("DELETE", b_object.as_str()),
        ("POST", &format!("{}/{}?delete", s3.endpoint, s3.bucket)),
        ("GET", &format!("{}/{}?list-type=2", s3.endpoint, s3.bucket)),
    ] {
        let r = app.post(&path, &sign(method, uri)).await;
        r.assert_error(StatusCode::FORBIDDEN, "ForbiddenException");
    }
    // A batch delete of A's own keys, with its body: refused unless the server was told
    // to sign batch deletes.
    let body = delete_body(&[&key_of(&format!(
        "{}/data/x.parquet",
        a["metadata"]["location"].as_str().unwrap()
    ))]);
    let message = app
        .post(&path, &sign_delete(&s3, &body))
        .await
        .assert_error(StatusCode::FORBIDDEN, "ForbiddenException");
    assert!(message.contains("--sign-batch-deletes"), "{message}");
    // A principal that may only read gets reads signed, not writes.
    let admin = app.token.take();
    app.token = Some(reader_token(&app, admin.as_deref().unwrap(), &wh).await);
    let r = app.post(&path, &sign("GET", &a_object)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app.post(&path, &sign("PUT", &a_object)).await;
    r.assert_error(StatusCode::FORBIDDEN, "ForbiddenException");
    app.token = admin;

    // A warehouse in another mode signs nothing.
    let other = unique("vended").replace('_', "-");
    create_warehouse(&app, &s3, &other, s3.profile("static")).await;
    app.post(
        &format!("/v1/{other}/namespaces"),
        &json!({"namespace": ["ns"]}),
    )
    .await;
    create_table(&app, &other, "ns", "t").await;
    let r = app
        .post(
            &format!("/v1/{other}/namespaces/ns/tables/t/sign"),
            &sign("GET", &a_object),
        )
        .await;
    // Asking a warehouse that does not sign is a bad request, not a missing privilege.
    let message = r.assert_error(StatusCode::BAD_REQUEST, "BadRequestException");
    assert!(message.contains("not remote-signing"), "{message}");
}

/// Signs `request` at `path` and expects a 403 that names no table.
async fn refused_as_nowhere(app: &TestApp, path: &str, request: &Value) -> String {
    let r = app.post(path, request).await;
    let message = r.assert_error(StatusCode::FORBIDDEN, "ForbiddenException");
    assert!(message.contains("reaches into no table"), "{message}");
    message
}

async fn legacy_signing_finds_the_table_from_the_key(backend: Backend) {
    let Signing {
        mut app,
        s3,
        wh,
        a,
        b,
    } = Signing::start(backend).await;
    let legacy = "/v1/aws/s3/sign";
    let http = reqwest::Client::new();

    // `/v1/config` of the warehouse says that it signs, and where.
    let config = app.get(&format!("/v1/config?warehouse={wh}")).await.json();
    let defaults = &config["defaults"];
    assert_eq!(defaults["s3.remote-signing-enabled"], "true", "{config}");
    assert_eq!(defaults["s3.signer.endpoint"], "v1/aws/s3/sign", "{config}");
    assert_eq!(defaults["s3.signer"], "S3V4RestSigner", "{config}");
    assert_eq!(
        defaults["py-io-impl"], "pyiceberg.io.fsspec.FsspecFileIO",
        "{config}"
    );
    let other = app.get("/v1/config?warehouse=default").await.json();
    assert_eq!(other["defaults"], json!({}), "{other}");

    // A PUT and a GET inside A, a listing of B: each table found from the key.
    let a_key = key_in(&a, "legacy.parquet");
    let r = app.post(legacy, &sign("PUT", &url_of(&s3, &a_key))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.headers["cache-control"], "no-cache");
    let put = send_signed(&http, "PUT", &r.json(), Some(b"legacy bytes")).await;
    assert!(put.status().is_success(), "{:?}", put.text().await);
    let r = app.post(legacy, &sign("GET", &url_of(&s3, &a_key))).await;
    let got = send_signed(&http, "GET", &r.json(), None).await;
    assert_eq!(got.bytes().await.unwrap().as_ref(), b"legacy bytes");
    let b_prefix = key_of(b["metadata"]["location"].as_str().unwrap());
    let listing = format!(
        "{}/{}?list-type=2&prefix={b_prefix}/",
        s3.endpoint, s3.bucket
    );
    let r = app.post(legacy, &sign("GET", &listing)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(
        send_signed(&http, "GET", &r.json(), None)
            .await
            .status()
            .is_success()
    );

    // Signer properties name the table; a key outside it is then refused.
    let mut named = sign("GET", &url_of(&s3, &a_key));
    named["properties"] = json!({"prefix": wh, "namespace": "ns", "table": "a"});
    let r = app.post(legacy, &named).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    named["uri"] = json!(url_of(&s3, &key_in(&b, "x.parquet")));
    app.post(legacy, &named)
        .await
        .assert_error(StatusCode::FORBIDDEN, "ForbiddenException");
    named["properties"] = json!({"prefix": wh, "table": "a"});
    app.post(legacy, &named)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "BadRequestException");

    // A key in no table, beside the tables or in the warehouse's root: refused.
    let nowhere = refused_as_nowhere(
        &app,
        legacy,
        &sign(
            "GET",
            &url_of(&s3, &format!("{wh}/ns/nothing-here/data/x.parquet")),
        ),
    )
    .await;
    refused_as_nowhere(&app, legacy, &sign("GET", &url_of(&s3, &format!("{wh}/x")))).await;

    // A principal that may read A only: B's keys are refused exactly like keys in no table.
    let admin = app.token.take().unwrap();
    let grant = json!({"privilege": "read", "warehouse": wh, "namespace": ["ns"], "table": "a"});
    app.token = Some(principal_with(&app, &admin, "a-reader", grant).await);
    let reader = &app;
    let r = reader
        .post(legacy, &sign("GET", &url_of(&s3, &a_key)))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    reader
        .post(legacy, &sign("PUT", &url_of(&s3, &a_key)))
        .await
        .assert_error(StatusCode::FORBIDDEN, "ForbiddenException");
    let hidden = refused_as_nowhere(
        reader,
        legacy,
        &sign("GET", &url_of(&s3, &key_in(&b, "x.parquet"))),
    )
    .await;
    assert_eq!(
        hidden, nowhere,
        "a refusal must not tell that B holds the key"
    );
    let mut named_b = sign("GET", &url_of(&s3, &key_in(&b, "x.parquet")));
    named_b["properties"] = json!({"prefix": wh, "namespace": "ns", "table": "b"});
    assert_eq!(refused_as_nowhere(reader, legacy, &named_b).await, nowhere);
    app.token = Some(admin);

    // A table of a warehouse that does not sign: a bad request, as on the table's endpoint.
    let other = unique("static").replace('_', "-");
    create_warehouse(&app, &s3, &other, s3.profile("static")).await;
    app.post(
        &format!("/v1/{other}/namespaces"),
        &json!({"namespace": ["ns"]}),
    )
    .await;
    let t = create_table(&app, &other, "ns", "t").await;
    let message = app
        .post(legacy, &sign("GET", &url_of(&s3, &key_in(&t, "x.parquet"))))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "BadRequestException");
    assert!(message.contains("not remote-signing"), "{message}");
}

/// An S3 `Delete` document for `keys`.
fn delete_body(keys: &[&str]) -> String {
    let objects: String = keys
        .iter()
        .map(|k| format!("<Object><Key>{k}</Key></Object>"))
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">{objects}<Quiet>true</Quiet></Delete>"
    )
}

fn content_md5(body: &str) -> String {
    use base64::Engine;
    use md5::Digest;
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(body.as_bytes()))
}

/// A signing request for the batch delete `body` with its Content-MD5.
fn sign_delete(s3: &S3Env, body: &str) -> Value {
    json!({"method": "POST", "region": "us-east-1",
           "uri": format!("{}/{}?delete", s3.endpoint, s3.bucket),
           "headers": {"Content-MD5": [content_md5(body)], "content-type": ["application/xml"]},
           "body": body})
}

async fn batch_deletes_are_signed_for_the_table_keys_only(backend: Backend) {
    let Signing { app, s3, wh, a, b } =
        Signing::start_with(backend, &["--sign-batch-deletes"]).await;
    let endpoint = format!("/v1/{wh}/namespaces/ns/tables/a/sign");
    let http = reqwest::Client::new();
    let catalog = s3.catalog_client();
    let (a1, a2, a3) = (
        key_in(&a, "1.parquet"),
        key_in(&a, "2.parquet"),
        key_in(&a, "3.parquet"),
    );
    let victim = key_in(&b, "victim.parquet");
    for key in [&a1, &a2, &a3, &victim] {
        assert!(put(&catalog, &s3.bucket, key).await, "plant {key}");
    }
    let a_prefix = key_of(a["metadata"]["location"].as_str().unwrap());
    let b_prefix = key_of(b["metadata"]["location"].as_str().unwrap());

    // All keys inside A: signed over the body, and the store deletes them.
    let body = delete_body(&[&a1, &a2]);
    let r = app.post(&endpoint, &sign_delete(&s3, &body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let signed = r.json();
    use sha2::Digest;
    let sha256 = hex::encode(sha2::Sha256::digest(body.as_bytes()));
    assert_eq!(signed["headers"]["x-amz-content-sha256"], json!([sha256]));
    let md5 = [
        ("content-md5", content_md5(&body)),
        ("content-type", "application/xml".into()),
    ];
    let deleted = send_signed_with(&http, "POST", &signed, &md5, Some(body.into_bytes())).await;
    assert!(deleted.status().is_success(), "{:?}", deleted.text().await);
    let left = s3.keys_below(&a_prefix).await;
    assert!(
        !left.contains(&a1) && !left.contains(&a2) && left.contains(&a3),
        "{left:?}"
    );

    // The legacy path finds A from the first key and signs alike.
    let body = delete_body(&[&a3]);
    let r = app.post("/v1/aws/s3/sign", &sign_delete(&s3, &body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // A key of B among A's, no body, a body that does not parse, a Content-MD5 of another
    // body: refused before anything is signed.
    let r = app
        .post(&endpoint, &sign_delete(&s3, &delete_body(&[&a3, &victim])))
        .await;
    r.assert_error(StatusCode::FORBIDDEN, "ForbiddenException");
    let mut without_body = sign_delete(&s3, &body);
    without_body.as_object_mut().unwrap().remove("body");
    app.post(&endpoint, &without_body)
        .await
        .assert_error(StatusCode::FORBIDDEN, "ForbiddenException");
    for bad in [
        format!("<Delete><Object><Key>{a3}</Key><Key>{victim}</Key></Object></Delete>"),
        format!("<Delete><Object><s3:Key xmlns:s3=\"x\">{victim}</s3:Key></Object></Delete>"),
        format!(
            "<!DOCTYPE d [<!ENTITY v \"{victim}\">]><Delete><Object><Key>&v;</Key></Object></Delete>"
        ),
        "<Delete></Delete>".to_owned(),
    ] {
        app.post(&endpoint, &sign_delete(&s3, &bad))
            .await
            .assert_error(StatusCode::BAD_REQUEST, "BadRequestException");
    }
    let mut wrong_md5 = sign_delete(&s3, &body);
    wrong_md5["headers"]["Content-MD5"] = json!([content_md5("another body")]);
    app.post(&endpoint, &wrong_md5)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "BadRequestException");

    // A body swapped after signing. With the Content-MD5 of the new body, the store refuses
    // (the signature covers Content-MD5). With the signed body's Content-MD5, only a store
    // that checks the payload's SHA-256 against the body refuses: SeaweedFS does not, and
    // deletes what the new body names. This is why `--sign-batch-deletes` is off by default;
    // should SeaweedFS start checking, this test fails and the default can be revisited.
    let r = app.post(&endpoint, &sign_delete(&s3, &body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let signed = r.json();
    let swapped = delete_body(&[&victim]);
    let sent = send_signed_with(
        &http,
        "POST",
        &signed,
        &[("content-md5", content_md5(&swapped))],
        Some(swapped.clone().into_bytes()),
    )
    .await;
    let status = sent.status();
    let text = sent.text().await.unwrap_or_default();
    assert!(
        s3.keys_below(&b_prefix).await.contains(&victim),
        "the swapped body deleted B's object ({status}: {text})"
    );
    assert!(status.is_client_error(), "{status}: {text}");
    let sent = send_signed_with(
        &http,
        "POST",
        &signed,
        &[("content-md5", content_md5(&body))],
        Some(swapped.into_bytes()),
    )
    .await;
    assert!(sent.status().is_success(), "{:?}", sent.text().await);
    assert!(
        !s3.keys_below(&b_prefix).await.contains(&victim),
        "SeaweedFS now checks the payload hash of a batch delete: revisit --sign-batch-deletes"
    );
}

both_backends!(
    remote_signing_signs_inside_the_table_only,
    legacy_signing_finds_the_table_from_the_key,
    batch_deletes_are_signed_for_the_table_keys_only,
    vended_credentials_reach_one_table_only,
    profiles_are_checked_and_modes_hand_out_what_they_say,
    secrets_never_show,
);
