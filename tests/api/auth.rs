//! Authentication: tokens by the OAuth2 client credentials flow, bearer checks on every
//! route but the open ones, the bootstrap admin, principals made on the database, and the
//! rule that a server on a non-loopback address never runs without an explicit choice.

use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::common::{ADMIN_ID, ADMIN_SECRET, Backend, Resp, TestApp, auth_args};

async fn spawn_authenticated(backend: Backend, extra: &[&str]) -> TestApp {
    let mut args = auth_args().to_vec();
    args.extend_from_slice(extra);
    TestApp::spawn_with(backend, &args).await
}

/// Posts a token request as a form (`basic`: the credentials as HTTP Basic instead).
async fn token_request(app: &TestApp, form: &[(&str, &str)], basic: Option<(&str, &str)>) -> Resp {
    let mut req = app.client.post(app.url("/v1/oauth/tokens")).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let r = req.send().await.expect("token request sent");
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    Resp {
        status,
        headers,
        text,
    }
}

async fn token(app: &TestApp, id: &str, secret: &str) -> String {
    let r = token_request(
        app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
            ("scope", "PRINCIPAL_ROLE:ALL"),
        ],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json()["access_token"].as_str().unwrap().to_owned()
}

async fn with_token(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<&Value>,
    token: &str,
) -> Resp {
    let bearer = format!("Bearer {token}");
    app.request_with(method, path, body, &[("authorization", bearer.as_str())])
        .await
}

/// A request with a token that must succeed (200).
async fn ok_with_token(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<&Value>,
    token: &str,
) -> Resp {
    let r = with_token(app, method.clone(), path, body, token).await;
    assert_eq!(r.status, StatusCode::OK, "{method} {path}: {}", r.text);
    r
}

fn assert_challenge(r: &Resp) {
    let challenge = r
        .headers
        .get("www-authenticate")
        .unwrap_or_else(|| panic!("401 without WWW-Authenticate: {}", r.text))
        .to_str()
        .unwrap();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
}

async fn tokens_are_issued_and_required(backend: Backend) {
    let app = spawn_authenticated(backend, &[]).await;

    // Open without a token: health, readiness, config without a warehouse, metrics.
    for path in ["/health", "/ready", "/v1/config", "/metrics"] {
        assert_eq!(app.get(path).await.status, StatusCode::OK, "{path}");
    }
    // Everything else needs one, however the query spells the warehouse.
    for (method, path) in [
        (Method::GET, "/v1/config?warehouse=default"),
        (Method::GET, "/v1/config?%77arehouse=default"),
        (Method::GET, "/v1/config?x=1&warehouse=%64efault"),
        (Method::GET, "/v1/config?warehouse=default&warehouse="),
        (Method::GET, "/v1/namespaces"),
        (Method::GET, "/v1/default/namespaces"),
        (Method::GET, "/management/v1/warehouses"),
        (Method::GET, "/management/v1/audit"),
        (Method::HEAD, "/v1/namespaces/x/tables/y"),
    ] {
        let r = app.request(method.clone(), path, None).await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "{method} {path}: {}",
            r.text
        );
        assert_challenge(&r);
        if method != Method::HEAD {
            let msg = r.assert_error(StatusCode::UNAUTHORIZED, "NotAuthorizedException");
            assert!(msg.contains("bearer token"), "{msg}");
        }
    }
    let r = app
        .post("/v1/namespaces", &json!({"namespace": ["sneaky"]}))
        .await;
    r.assert_error(StatusCode::UNAUTHORIZED, "NotAuthorizedException");

    // The client credentials flow, the way PyIceberg and Spark send it (form) ...
    let r = token_request(
        &app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", ADMIN_ID),
            ("client_secret", ADMIN_SECRET),
            ("scope", "PRINCIPAL_ROLE:ALL"),
        ],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.headers["cache-control"], "no-store");
    let body = r.json();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "PRINCIPAL_ROLE:ALL");
    assert_eq!(
        body["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    let admin = body["access_token"].as_str().unwrap().to_owned();
    // ... and as HTTP Basic.
    let r = token_request(
        &app,
        &[("grant_type", "client_credentials")],
        Some((ADMIN_ID, ADMIN_SECRET)),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // Wrong secrets, unknown clients and other grants are refused in OAuth2's words.
    for (form, basic, status, error) in [
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", ADMIN_ID),
                ("client_secret", "wrong-secret"),
            ],
            None,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", "nobody"),
                ("client_secret", ADMIN_SECRET),
            ],
            None,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            vec![("grant_type", "client_credentials")],
            Some((ADMIN_ID, "wrong-secret")),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            vec![
                ("grant_type", "password"),
                ("client_id", ADMIN_ID),
                ("client_secret", ADMIN_SECRET),
            ],
            None,
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
        (
            vec![("grant_type", "client_credentials")],
            None,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ] {
        let r = token_request(&app, &form, basic).await;
        assert_eq!(r.status, status, "{form:?}: {}", r.text);
        let body = r.json();
        assert_eq!(body["error"], error, "{}", r.text);
        assert!(
            body["error_description"]
                .as_str()
                .is_some_and(|d| !d.is_empty())
        );
        assert!(!r.text.contains(ADMIN_SECRET));
        if status == StatusCode::UNAUTHORIZED {
            assert!(r.headers.contains_key("www-authenticate"), "{}", r.text);
        }
    }
    // A JSON body is not a token request.
    let r = app
        .client
        .post(app.url("/v1/oauth/tokens"))
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // With the token, the admin may do anything, and is named in the audit log.
    let create = json!({"namespace": ["owned"]});
    ok_with_token(&app, Method::POST, "/v1/namespaces", Some(&create), &admin).await;
    ok_with_token(
        &app,
        Method::GET,
        "/v1/config?warehouse=default",
        None,
        &admin,
    )
    .await;
    let r = ok_with_token(
        &app,
        Method::GET,
        "/management/v1/audit?limit=100",
        None,
        &admin,
    )
    .await;
    let audit = r.json();
    let row = audit["records"]
        .as_array()
        .unwrap_or_else(|| panic!("audit records: {audit}"))
        .iter()
        .find(|r| r["object"] == "/v1/namespaces" && r["status"] == 200)
        .unwrap_or_else(|| panic!("namespace creation audited: {audit}"))
        .clone();
    assert_eq!(row["actor"], ADMIN_ID, "{row}");
    let rejected = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["object"] == "/v1/namespaces" && r["status"] == 401)
        .unwrap_or_else(|| panic!("the refused creation is audited: {audit}"))
        .clone();
    assert_eq!(rejected["actor"], "anonymous", "{rejected}");

    // Broken tokens: garbage, a changed signature, another scheme.
    let mut tampered = admin.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    for bad in [
        "Bearer not-a-jwt",
        &format!("Bearer {tampered}"),
        "Basic YTpi",
        "Bearer ",
    ] {
        let r = app
            .request_with(
                Method::GET,
                "/v1/namespaces",
                None,
                &[("authorization", bad)],
            )
            .await;
        r.assert_error(StatusCode::UNAUTHORIZED, "NotAuthorizedException");
        assert_challenge(&r);
    }
    // A token with no signature at all ("alg": "none").
    let claims = admin.split('.').nth(1).unwrap();
    let unsigned = format!(
        "{}.{claims}.",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#)
    );
    let r = with_token(&app, Method::GET, "/v1/namespaces", None, &unsigned).await;
    r.assert_error(StatusCode::UNAUTHORIZED, "NotAuthorizedException");
}

async fn principals_without_admin_are_refused(backend: Backend) {
    let app = spawn_authenticated(backend, &[]).await;
    let store = open_store(&app.database_url).await;
    let analyst = serac::auth::principals::Principals::new(store.as_ref())
        .create("analyst", false)
        .await
        .unwrap();
    assert_eq!(analyst.client_secret.len(), 43);
    let token_of_analyst = token(&app, &analyst.client_id, &analyst.client_secret).await;
    let admin = token(&app, ADMIN_ID, ADMIN_SECRET).await;
    let r = with_token(
        &app,
        Method::POST,
        "/v1/namespaces",
        Some(&json!({"namespace": ["finance"]})),
        &admin,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // Without grants, a principal that is not an admin may do nothing, and is told what it
    // lacks (tests/api/authz.rs covers grants).
    for (method, path, body, privilege) in [
        (Method::GET, "/v1/namespaces/finance", None, "read"),
        (
            Method::POST,
            "/v1/namespaces",
            Some(json!({"namespace": ["mine"]})),
            "create",
        ),
        (Method::DELETE, "/v1/namespaces/finance", None, "drop"),
        (Method::GET, "/management/v1/warehouses", None, "admin"),
        (Method::GET, "/management/v1/audit", None, "admin"),
    ] {
        let r = with_token(&app, method.clone(), path, body.as_ref(), &token_of_analyst).await;
        let msg = r.assert_error(StatusCode::FORBIDDEN, "ForbiddenException");
        assert!(
            msg.contains("'analyst'") && msg.contains(&format!("'{privilege}'")),
            "{method} {path}: {msg}"
        );
    }
    // Lists are filtered rather than refused: nothing to see.
    let r = with_token(&app, Method::GET, "/v1/namespaces", None, &token_of_analyst).await;
    assert_eq!(r.json()["namespaces"], json!([]), "{}", r.text);
    // Nothing was changed by the refused requests.
    let r = with_token(&app, Method::GET, "/v1/namespaces", None, &admin).await;
    assert_eq!(r.json()["namespaces"], json!([["finance"]]), "{}", r.text);

    // A new secret replaces the old one at once; the principal list never shows secrets.
    let rotated = serac::auth::principals::Principals::new(store.as_ref())
        .rotate_secret("analyst")
        .await
        .unwrap();
    assert_eq!(rotated.client_id, analyst.client_id);
    let old = token_request(
        &app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &analyst.client_id),
            ("client_secret", &analyst.client_secret),
        ],
        None,
    )
    .await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED, "{}", old.text);
    token(&app, &rotated.client_id, &rotated.client_secret).await;
    let listed = store.list_principals().await.unwrap();
    let names: Vec<&str> = listed.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["analyst", ADMIN_ID]);
    for p in &listed {
        assert!(p.secret_hash.starts_with("$argon2id$"), "{}", p.secret_hash);
        assert!(!p.secret_hash.contains(&rotated.client_secret));
    }
    // The bootstrap settings are ignored once a principal exists: a restart with another
    // bootstrap secret does not change the admin's.
    let backend = app.backend;
    let (dir, url) = app.stop().await;
    let app = TestApp::spawn_on(
        backend,
        dir,
        url,
        &[
            "--auth",
            "oauth2",
            "--bootstrap-client-id",
            ADMIN_ID,
            "--bootstrap-client-secret",
            "another-bootstrap-secret",
        ],
    )
    .await;
    token(&app, ADMIN_ID, ADMIN_SECRET).await;
}

/// Replicas on one database share the signing key: a token of one is honoured by another.
async fn replicas_honour_each_others_tokens(backend: Backend) {
    let first = spawn_authenticated(backend, &[]).await;
    let admin = token(&first, ADMIN_ID, ADMIN_SECRET).await;
    let second = first.authenticated_replica().await;
    let r = with_token(&second, Method::GET, "/v1/namespaces", None, &admin).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // Forged tokens naming made-up keys: refused, and together they make the replica read
    // the stored keys at most once (not once per token).
    let key_reads = |text: &str| {
        crate::metrics::sample(
            text,
            "serac_db_query_duration_seconds_count",
            &[r#"operation="signing_keys""#],
        )
        .unwrap_or(0.0)
    };
    let before = key_reads(&second.get("/metrics").await.text);
    for n in 0..20 {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(format!("forged-{n}"));
        let forged = jsonwebtoken::encode(
            &header,
            &json!({"sub": "x", "name": "x", "admin": true, "iss": "serac", "aud": "serac", "exp": 4_000_000_000i64}),
            &jsonwebtoken::EncodingKey::from_secret(b"any-key-of-thirty-two-bytes-long!").unwrap(),
        )
        .unwrap();
        let r = with_token(&second, Method::GET, "/v1/namespaces", None, &forged).await;
        r.assert_error(StatusCode::UNAUTHORIZED, "NotAuthorizedException");
    }
    let after = key_reads(&second.get("/metrics").await.text);
    assert!(
        after - before <= 1.0,
        "{before} -> {after} reads of the signing keys"
    );
}

/// API keys: made by an admin (management API) or on the command line, sent as bearer
/// tokens; revoked on one replica, refused at once on another; expiry honoured.
async fn api_keys_stand_for_their_principal(backend: Backend) {
    let mut app = spawn_authenticated(backend, &[]).await;
    let admin = token(&app, ADMIN_ID, ADMIN_SECRET).await;
    let store = open_store(&app.database_url).await;
    serac::auth::principals::Principals::new(store.as_ref())
        .create("etl-job", false)
        .await
        .unwrap();
    app.token = Some(admin.clone());
    let created = app
        .post("/management/v1/principals/etl-job/api-keys", &json!({}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let key = created.json()["key"].as_str().unwrap().to_owned();
    let id = created.json()["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with(&format!("serac_{id}_")), "{key}");
    for (path, body, status) in [
        (
            "/management/v1/principals/nobody/api-keys",
            json!({}),
            StatusCode::NOT_FOUND,
        ),
        (
            "/management/v1/principals/etl-job/api-keys",
            json!({"expires-in": "soon"}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        assert_eq!(app.post(path, &body).await.status, status, "{path}");
    }
    // The management API of principals answers what is wrong with the right status, and a
    // rotated secret comes back with the principal's client id.
    for (method, path, body, status) in [
        (
            Method::POST,
            "/management/v1/principals",
            Some(json!({"name": "etl-job"})),
            StatusCode::CONFLICT,
        ),
        (
            Method::POST,
            "/management/v1/principals",
            Some(json!({"name": "bad name"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/management/v1/principals/nobody/rotate-secret",
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::DELETE,
            "/management/v1/principals/nobody",
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::DELETE,
            "/management/v1/api-keys/nothing",
            None,
            StatusCode::NOT_FOUND,
        ),
    ] {
        let r = app.request(method.clone(), path, body.as_ref()).await;
        assert_eq!(r.status, status, "{method} {path}: {}", r.text);
    }
    let listed = app.get("/management/v1/principals").await.json();
    let client_id = listed["principals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "etl-job")
        .map(|p| p["client-id"].clone())
        .unwrap();
    let rotated = app
        .request(
            Method::POST,
            "/management/v1/principals/etl-job/rotate-secret",
            None,
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text);
    assert_eq!(rotated.json()["client-id"], client_id);
    // The key acts as its principal (no grants: lists are empty, creates refused), twice
    // (the second time from the verified-key memory).
    app.token = Some(key.clone());
    for _ in 0..2 {
        let r = app.get("/v1/namespaces").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    let msg = app
        .post("/v1/namespaces", &json!({"namespace": ["by_key"]}))
        .await
        .assert_error(StatusCode::FORBIDDEN, "ForbiddenException");
    assert!(msg.contains("'etl-job'"), "{msg}");
    // A changed secret, an unknown id, a malformed key.
    let mut wrong = key.clone();
    wrong.push('x');
    for bad in [
        wrong.as_str(),
        "serac_0000000000000000_abc",
        "serac_",
        "serac_x",
    ] {
        app.token = Some(bad.to_owned());
        app.get("/v1/namespaces")
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "NotAuthorizedException");
    }
    // The list shows the key with its last use, never the secret.
    app.token = Some(admin.clone());
    let mut listed = Value::Null;
    for _ in 0..50 {
        listed = app
            .get("/management/v1/api-keys?principal=etl-job")
            .await
            .json();
        if listed["api-keys"][0].get("last-used-at-ms").is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(listed["api-keys"][0]["id"], id.as_str(), "{listed}");
    assert!(
        listed["api-keys"][0]["last-used-at-ms"].is_i64(),
        "{listed}"
    );
    assert!(!listed.to_string().contains(key.rsplit('_').next().unwrap()));

    // Revoked through another replica: refused here at the next request.
    let mut other = app.authenticated_replica().await;
    other.token = Some(admin.clone());
    let r = other.delete(&format!("/management/v1/api-keys/{id}")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    app.token = Some(key.clone());
    app.get("/v1/namespaces")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "NotAuthorizedException");

    // An admin's key acts as an admin; an expired key is refused as expired.
    let expiring = serac::auth::principals::Principals::new(store.as_ref())
        .create_api_key(ADMIN_ID, Some(std::time::Duration::from_secs(1)))
        .await
        .unwrap();
    app.token = Some(expiring.key.clone());
    let r = app
        .post("/v1/namespaces", &json!({"namespace": ["by_admin_key"]}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let msg = app
        .get("/v1/namespaces")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "NotAuthorizedException");
    assert!(msg.contains("expired"), "{msg}");
}

both_backends!(
    api_keys_stand_for_their_principal,
    tokens_are_issued_and_required,
    principals_without_admin_are_refused,
    replicas_honour_each_others_tokens,
);

/// Tokens signed with a key from a file: expired, foreign-issuer and wrongly signed tokens are
/// refused; a token made with the key and the right claims is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_checked_for_expiry_issuer_and_key() {
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("signing.key");
    let key = "0123456789abcdef0123456789abcdef-test-key";
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    let key_path = key_file.display().to_string();
    let app = spawn_authenticated(
        Backend::Sqlite,
        &[
            "--token-signing-key-file",
            &key_path,
            "--token-lifetime",
            "10m",
        ],
    )
    .await;
    let issued = token(&app, ADMIN_ID, ADMIN_SECRET).await;
    let now = chrono::Utc::now().timestamp();
    let sign = |claims: Value, secret: &str, kid: &str| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()).unwrap(),
        )
        .unwrap()
    };
    let claims = |exp: i64, iss: &str| json!({"sub": "x", "name": "forged", "admin": true, "iss": iss, "aud": "serac", "iat": now, "exp": exp});
    let good = sign(claims(now + 60, "serac"), key, "file");
    let r = with_token(&app, Method::GET, "/v1/namespaces", None, &good).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = with_token(&app, Method::GET, "/v1/namespaces", None, &issued).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let decoded = jsonwebtoken::decode::<Value>(
        &issued,
        &jsonwebtoken::DecodingKey::from_secret(key.as_bytes()).unwrap(),
        &{
            let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
            v.set_audience(&["serac"]);
            v
        },
    )
    .unwrap();
    assert_eq!(decoded.claims["name"], ADMIN_ID);
    let lifetime =
        decoded.claims["exp"].as_i64().unwrap() - decoded.claims["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 600);

    for (bad, expect) in [
        (sign(claims(now - 5, "serac"), key, "file"), "expired"),
        (
            sign(claims(now + 60, "someone-else"), key, "file"),
            "not valid",
        ),
        (
            sign(
                claims(now + 60, "serac"),
                "another-key-of-32-bytes-or-more!!",
                "file",
            ),
            "not valid",
        ),
        (
            sign(claims(now + 60, "serac"), key, "other-kid"),
            "unknown signing key",
        ),
    ] {
        let r = with_token(&app, Method::GET, "/v1/namespaces", None, &bad).await;
        let msg = r.assert_error(StatusCode::UNAUTHORIZED, "NotAuthorizedException");
        assert!(msg.contains(expect), "{msg}");
    }
}

/// With authentication off, the token endpoint says so instead of issuing tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_not_issued_without_authentication() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let r = token_request(
        &app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "a"),
            ("client_secret", "b"),
        ],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(
        r.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("--auth none")
    );
    assert_eq!(app.get("/v1/namespaces").await.status, StatusCode::OK);
}

/// Listening beyond loopback needs an explicit choice; on loopback the default is `none`.
#[test]
fn authentication_off_needs_an_explicit_choice_beyond_loopback() {
    use clap::Parser;
    use serac::config::{Cli, Command};
    let settings = |args: &[&str]| {
        let mut argv = vec!["serac", "serve"];
        argv.extend_from_slice(args);
        let Command::Serve(serve) = Cli::try_parse_from(argv).unwrap().command else {
            unreachable!()
        };
        serve.auth_settings()
    };
    let err = settings(&["--bind", "0.0.0.0:8181"]).unwrap_err();
    assert!(
        err.contains("0.0.0.0:8181")
            && err.contains("SERAC_AUTH=oauth2")
            && err.contains("--auth none"),
        "{err}"
    );
    assert!(!err.contains('\n'), "{err}");
    assert_eq!(
        settings(&["--bind", "0.0.0.0:8181", "--auth", "none"])
            .unwrap()
            .mode,
        serac::auth::AuthMode::None
    );
    assert_eq!(
        settings(&["--bind", "127.0.0.1:8181"]).unwrap().mode,
        serac::auth::AuthMode::None
    );
    assert_eq!(
        settings(&["--bind", "[::1]:8181", "--auth", "oauth2"])
            .unwrap()
            .mode,
        serac::auth::AuthMode::Oauth2
    );
    let err = settings(&["--auth", "oauth2", "--bootstrap-client-id", "x"]).unwrap_err();
    assert!(err.contains("SERAC_BOOTSTRAP_CLIENT_SECRET"), "{err}");
    // The binary refuses to start with that one line.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_serac"))
        .args(["serve", "--bind", "0.0.0.0:0"])
        .env_remove("SERAC_AUTH")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("without authentication"), "{stderr}");
}

async fn open_store(database_url: &str) -> std::sync::Arc<dyn serac::store::Store> {
    use clap::Parser;
    let cli =
        serac::config::Cli::try_parse_from(["serac", "migrate", "--database-url", database_url])
            .unwrap();
    let serac::config::Command::Migrate(database) = cli.command else {
        unreachable!()
    };
    serac::server::open_store(
        &database,
        serac::metrics::DbMetrics::unregistered(),
        serac::server::Schema::Migrate,
    )
    .await
    .unwrap()
}

/// The command line makes principals and API keys on the database directly; a key it prints
/// works against a server on that database, and a revoked one does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_makes_principals_and_api_keys() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/cli.db", dir.path().display());
    let serac = |args: &[&str]| crate::common::serac_cli(&database, args);
    let (ok, out, err) = serac(&["principal", "create", "ops", "--admin"]);
    assert!(ok, "{err}");
    assert!(out.contains("client secret:"), "{out}");
    let (ok, out, err) = serac(&[
        "api-key",
        "create",
        "--principal",
        "ops",
        "--expires-in",
        "30d",
    ]);
    assert!(ok, "{err}");
    let key = out
        .lines()
        .find_map(|l| l.strip_prefix("key:"))
        .map(|k| k.trim().to_owned())
        .unwrap_or_else(|| panic!("no key in {out}"));
    let id = key.split('_').nth(1).unwrap().to_owned();
    let (ok, _, err) = serac(&["api-key", "create", "--principal", "nobody"]);
    assert!(!ok && err.contains("'nobody' does not exist"), "{err}");
    let (ok, out, _) = serac(&["principal", "list"]);
    assert!(
        ok && out.contains("ops") && !out.contains("argon2"),
        "{out}"
    );

    let mut app = TestApp::spawn_on(
        Backend::Sqlite,
        dir,
        database.clone(),
        &["--auth", "oauth2"],
    )
    .await;
    app.token = Some(key.clone());
    let r = app
        .post("/v1/namespaces", &json!({"namespace": ["cli_key"]}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let (ok, out, err) = serac(&["api-key", "list", "--principal", "ops"]);
    assert!(ok && out.contains(&id), "{out}{err}");
    let (ok, _, err) = serac(&["api-key", "revoke", &id]);
    assert!(ok, "{err}");
    app.get("/v1/namespaces")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "NotAuthorizedException");
}
