//! OpenID Connect: bearer JWTs of an external identity provider, verified against its JWK set
//! (a file, a URL, or discovery). The provider here is the test itself: it signs tokens with
//! the test-only keys of tests/fixtures/oidc and serves or writes their public JWK set.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::common::{ADMIN_ID, ADMIN_SECRET};
use crate::common::{Backend, Resp, TestApp};

const ISSUER: &str = "https://idp.test/realms/data";
const AUDIENCE: &str = "serac-catalog";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/oidc")
        .join(name)
}

/// The committed JWK set, cut down to the keys named.
fn jwks(kids: &[&str]) -> Value {
    let all: Value = serde_json::from_slice(&std::fs::read(fixture("jwks.json")).unwrap()).unwrap();
    let keys: Vec<Value> = all["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| kids.contains(&k["kid"].as_str().unwrap()))
        .cloned()
        .collect();
    assert_eq!(keys.len(), kids.len(), "{kids:?}");
    json!({ "keys": keys })
}

fn write_jwks(path: &Path, kids: &[&str]) {
    // Written next to the file and renamed, so the server never reads half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, jwks(kids).to_string()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Claims of a provider's token for `name` (in `preferred_username`), valid for 5 minutes.
fn claims(name: &str) -> Value {
    json!({
        "iss": ISSUER,
        "aud": [AUDIENCE, "account"],
        "sub": format!("subject-of-{name}"),
        "preferred_username": name,
        "iat": now(),
        "exp": now() + 300,
    })
}

/// A token signed the way the provider signs: `key` is a fixture (`rsa1`, `rsa2`, `ec1`), in
/// DER (PKCS#1 for RSA, PKCS#8 for EC) as jsonwebtoken takes it without its `use_pem` feature.
fn sign(alg: Algorithm, key: &str, kid: Option<&str>, claims: &Value) -> String {
    let der = std::fs::read(fixture(&format!("{key}.der"))).unwrap();
    let key = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_der(&der),
        _ => EncodingKey::from_rsa_der(&der),
    };
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

fn rs256(kid: &str, claims: &Value) -> String {
    let key = if kid == "rsa-2" { "rsa2" } else { "rsa1" };
    sign(Algorithm::RS256, key, Some(kid), claims)
}

fn oidc_args<'a>(issuer: &'a str, keys: &'a [&'a str]) -> Vec<&'a str> {
    let mut args = crate::common::auth_args().to_vec();
    args.extend([
        "--oidc-issuer",
        issuer,
        "--oidc-audience",
        AUDIENCE,
        "--oidc-principal-claim",
        "preferred_username",
    ]);
    args.extend_from_slice(keys);
    args
}

/// A server whose provider's keys are in a file (in `keys`' directory, which must outlive it).
async fn spawn_with_file(backend: Backend, keys: &Path) -> TestApp {
    let path = keys.display().to_string();
    TestApp::spawn_with(
        backend,
        &oidc_args(ISSUER, &["--oidc-jwks-file", path.as_str()]),
    )
    .await
}

async fn as_bearer(app: &TestApp, method: Method, path: &str, token: &str) -> Resp {
    app.request_as(token, method, path, None).await
}

/// A token that must be refused with 401, a challenge, and a message saying `expect`.
async fn assert_refused(app: &TestApp, token: &str, expect: &str) {
    let r = as_bearer(app, Method::GET, "/v1/namespaces", token).await;
    let msg = r.assert_error(StatusCode::UNAUTHORIZED, "NotAuthorizedException");
    assert!(msg.contains(expect), "expected '{expect}' in: {msg}");
    let challenge = r.headers["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("Bearer") && challenge.contains("invalid_token"),
        "{challenge}"
    );
    let signature = token.rsplit('.').next().unwrap();
    assert!(
        signature.len() < 8 || !r.text.contains(signature),
        "the token is echoed: {}",
        r.text
    );
}

/// The first element of `listing[key]` that `matches`, or a panic showing the listing.
fn find(listing: &Value, key: &str, matches: impl Fn(&Value) -> bool) -> Value {
    listing[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {listing}"))
        .iter()
        .find(|v| matches(v))
        .unwrap_or_else(|| panic!("not found in {listing}"))
        .clone()
}

/// A principal of `GET /management/v1/principals` (as the admin).
async fn principal(app: &TestApp, name: &str) -> Value {
    let listed = app.get("/management/v1/principals").await.json();
    find(&listed, "principals", |p| p["name"] == name)
}

async fn admin_app(app: &mut TestApp) {
    app.token = Some(app.token_for(ADMIN_ID, ADMIN_SECRET).await);
}

/// The provider's tokens are accepted with their key, issuer, audience and expiry checked;
/// the claim names the principal (made at its first request, never an admin); every kind of
/// wrong token is refused with a 401 that says what is wrong.
async fn provider_tokens_name_their_principal(backend: Backend) {
    let keys = tempfile::tempdir().unwrap();
    let file = keys.path().join("jwks.json");
    write_jwks(&file, &["rsa-1"]);
    let mut app = spawn_with_file(backend, &file).await;
    admin_app(&mut app).await;

    // One key in the set: a token that names no key is verified with it.
    let alice = rs256("rsa-1", &claims("alice@corp.example"));
    let unnamed = sign(
        Algorithm::RS256,
        "rsa1",
        None,
        &claims("alice@corp.example"),
    );
    for token in [&alice, &unnamed, &alice] {
        let r = as_bearer(&app, Method::GET, "/v1/namespaces", token).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    // alice has no grants: creating is refused, and the audit log names her.
    let create = json!({"namespace": ["alices"]});
    let r = app
        .request_as(&alice, Method::POST, "/v1/namespaces", Some(&create))
        .await;
    r.assert_error(StatusCode::FORBIDDEN, "ForbiddenException");
    let audit = app.get("/management/v1/audit?limit=100").await.json();
    let row = find(&audit, "records", |r| {
        r["object"] == "/v1/namespaces" && r["status"] == 403
    });
    assert_eq!(row["actor"], "alice@corp.example", "{row}");
    // She was made at her first request.
    let alice_row = principal(&app, "alice@corp.example").await;
    assert_eq!(alice_row["external"], true, "{alice_row}");
    assert_eq!(alice_row["admin"], false, "{alice_row}");
    let admin_row = principal(&app, ADMIN_ID).await;
    assert_eq!(admin_row["external"], false, "{admin_row}");

    // A key added to the file after the start is read at the first token naming it ...
    write_jwks(&file, &["rsa-1", "ec-1"]);
    let ec = sign(Algorithm::ES256, "ec1", Some("ec-1"), &claims("bob"));
    let r = as_bearer(&app, Method::GET, "/v1/namespaces", &ec).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // ... but the file is read at most once per 5 s: a key added right after is not known yet.
    write_jwks(&file, &["rsa-1", "ec-1", "rsa-2"]);
    let second = rs256("rsa-2", &claims("carol"));
    assert_refused(&app, &second, "unknown signing key 'rsa-2'").await;
    tokio::time::sleep(std::time::Duration::from_millis(5_100)).await;
    let r = as_bearer(&app, Method::GET, "/v1/namespaces", &second).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // Refused, each for what is wrong with it.
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = claims("mallory");
        f(&mut c);
        c
    };
    let expired = with(&|c| c["exp"] = json!(now() - 120));
    let mut tampered = alice.clone().into_bytes();
    let at = tampered.len() - 20;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let public_pem = std::fs::read(fixture("rsa1.pub.pem")).unwrap();
    let confused = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("rsa-1".into());
        jsonwebtoken::encode(
            &header,
            &claims("mallory"),
            &EncodingKey::from_secret(&public_pem).unwrap(),
        )
        .unwrap()
    };
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let unsigned = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT", "kid": "rsa-1"})),
        b64(claims("mallory"))
    );
    for (token, expect) in [
        (
            rs256("rsa-1", &with(&|c| c["iss"] = json!("https://evil.test"))),
            "wrong issuer",
        ),
        (
            rs256("rsa-1", &with(&|c| c["aud"] = json!("another-app"))),
            "wrong audience",
        ),
        (rs256("rsa-1", &expired), "expired"),
        (
            rs256(
                "rsa-1",
                &with(&|c| {
                    c.as_object_mut().unwrap().remove("exp");
                }),
            ),
            "'exp'",
        ),
        (
            sign(Algorithm::RS256, "rsa1", None, &claims("mallory")),
            "names no key (kid)",
        ),
        (rs256("rsa-9", &claims("mallory")), "unknown signing key"),
        (tampered, "bad signature"),
        // Signed by the right key, but naming another key of the set.
        (
            sign(Algorithm::RS256, "rsa1", Some("rsa-2"), &claims("mallory")),
            "bad signature",
        ),
        // An RSA signature said to be by the EC key.
        (
            sign(Algorithm::RS256, "rsa1", Some("ec-1"), &claims("mallory")),
            "not accepted for this signing key",
        ),
        (confused, "algorithm HS256 is not accepted"),
        (unsigned, "not a JWT"),
        (
            rs256(
                "rsa-1",
                &with(&|c| {
                    c.as_object_mut().unwrap().remove("preferred_username");
                }),
            ),
            "no string claim 'preferred_username'",
        ),
        (
            rs256(
                "rsa-1",
                &with(&|c| c["preferred_username"] = json!("not a name!")),
            ),
            "does not name a valid principal",
        ),
        // An identity named like the bootstrap admin never takes it over.
        (
            rs256(
                "rsa-1",
                &with(&|c| c["preferred_username"] = json!(ADMIN_ID)),
            ),
            "signs in with a client secret",
        ),
    ] {
        assert_refused(&app, &token, expect).await;
    }
    // The refusals made no principals.
    let listed = app.get("/management/v1/principals").await.json();
    let names: Vec<&str> = listed["principals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        !names.contains(&"mallory") && !names.contains(&"not a name!"),
        "{names:?}"
    );
    // Serac's own tokens still work beside the provider's.
    assert_eq!(app.get("/v1/namespaces").await.status, StatusCode::OK);
}

/// Admins make external principals ahead of their first sign-in and give them roles; they
/// have no secret, so the token endpoint never issues one of Serac's tokens for them.
async fn pre_created_external_principals_get_roles(backend: Backend) {
    let keys = tempfile::tempdir().unwrap();
    let file = keys.path().join("jwks.json");
    write_jwks(&file, &["rsa-1", "rsa-2"]);
    let mut app = spawn_with_file(backend, &file).await;
    admin_app(&mut app).await;
    app.create_namespace(&["sales"]).await;
    let created = app
        .manage(
            Method::POST,
            "/management/v1/principals",
            Some(json!({"name": "carol", "external": true})),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(created["external"], true, "{created}");
    assert!(created.get("client-secret").is_none(), "{created}");
    for body in [
        json!({"name": "dave", "external": true}),
        json!({"name": "erin", "external": true, "admin": true}),
    ] {
        app.manage(
            Method::POST,
            "/management/v1/principals",
            Some(body),
            StatusCode::CREATED,
        )
        .await;
    }
    app.manage(
        Method::POST,
        "/management/v1/principals",
        Some(json!({"name": "carol", "external": true})),
        StatusCode::CONFLICT,
    )
    .await;
    app.manage(
        Method::POST,
        "/management/v1/roles",
        Some(json!({"name": "readers"})),
        StatusCode::CREATED,
    )
    .await;
    app.manage(
        Method::PUT,
        "/management/v1/roles/readers/members/carol",
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    app.manage(
        Method::POST,
        "/management/v1/roles/readers/grants",
        Some(json!({"privilege": "read", "warehouse": "default", "namespace": ["sales"]})),
        StatusCode::NO_CONTENT,
    )
    .await;
    // An external principal has no secret to rotate, and the token endpoint refuses it.
    let r = app
        .request(
            Method::POST,
            "/management/v1/principals/carol/rotate-secret",
            None,
        )
        .await;
    let msg = r.assert_error(StatusCode::BAD_REQUEST, "BadRequestException");
    assert!(msg.contains("external"), "{msg}");
    let carol = principal(&app, "carol").await;
    assert_eq!(carol["external"], true, "{carol}");
    let r = app
        .client
        .post(app.url("/v1/oauth/tokens"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", carol["client-id"].as_str().unwrap()),
            (
                "client_secret",
                serac::auth::principals::EXTERNAL_SECRET_HASH,
            ),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let sales = "/v1/namespaces/sales";
    let carol = rs256("rsa-2", &claims("carol"));
    let r = as_bearer(&app, Method::GET, sales, &carol).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let dave = rs256("rsa-1", &claims("dave"));
    as_bearer(&app, Method::GET, sales, &dave)
        .await
        .assert_error(StatusCode::FORBIDDEN, "ForbiddenException");
    let erin = rs256("rsa-1", &claims("erin"));
    let r = as_bearer(&app, Method::GET, "/management/v1/principals", &erin).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    as_bearer(&app, Method::GET, "/management/v1/principals", &carol)
        .await
        .assert_error(StatusCode::FORBIDDEN, "ForbiddenException");
}

/// A small identity provider: its discovery document and JWK set over HTTP, counting the
/// fetches of the key set.
struct Provider {
    base: String,
    key_fetches: Arc<AtomicUsize>,
}

async fn serve_provider() -> Provider {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let key_fetches = Arc::new(AtomicUsize::new(0));
    let discovery = json!({
        "issuer": base,
        "jwks_uri": format!("{base}/protocol/openid-connect/certs"),
        "id_token_signing_alg_values_supported": ["RS256"],
    });
    let fetches = key_fetches.clone();
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            axum::routing::get(move || async move { axum::Json(discovery) }),
        )
        .route(
            "/protocol/openid-connect/certs",
            axum::routing::get(move || async move {
                fetches.fetch_add(1, Ordering::SeqCst);
                axum::Json(jwks(&["rsa-1"]))
            }),
        )
        // A key set larger than Serac reads (1 MiB).
        .route(
            "/huge",
            axum::routing::get(|| async {
                format!(r#"{{"keys": [], "pad": "{}"}}"#, "x".repeat(2 << 20))
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Provider { base, key_fetches }
}

/// Keys from a URL, and from the URL the issuer's discovery document names; forged kids make
/// at most one fetch per 5 s.
async fn keys_come_from_a_url_or_discovery(backend: Backend) {
    let provider = serve_provider().await;
    let jwks_url = format!("{}/protocol/openid-connect/certs", provider.base);
    let app =
        TestApp::spawn_with(backend, &oidc_args(ISSUER, &["--oidc-jwks-url", &jwks_url])).await;
    let r = as_bearer(
        &app,
        Method::GET,
        "/v1/namespaces",
        &rs256("rsa-1", &claims("alice")),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let before = provider.key_fetches.load(Ordering::SeqCst);
    assert_eq!(before, 1, "read once at the start");
    for i in 0..20 {
        let forged = rs256(&format!("forged-{i}"), &claims("mallory"));
        assert_refused(&app, &forged, "unknown signing key").await;
    }
    let after = provider.key_fetches.load(Ordering::SeqCst);
    assert!(
        after - before <= 1,
        "20 forged kids made {} fetches",
        after - before
    );

    // Discovery: the issuer is the provider's URL; its document names the key set.
    let discovered = TestApp::spawn_with(backend, &oidc_args(&provider.base, &[])).await;
    let mut by_discovery = claims("alice");
    by_discovery["iss"] = json!(provider.base);
    let r = as_bearer(
        &discovered,
        Method::GET,
        "/v1/namespaces",
        &rs256("rsa-1", &by_discovery),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // The same token at the server of the other issuer: wrong issuer.
    assert_refused(&app, &rs256("rsa-1", &by_discovery), "wrong issuer").await;

    // A provider whose keys cannot be read does not stop the start; its tokens are a 503
    // that says why (Serac's own tokens still work), and a fetch is bounded in size.
    let huge = format!("{}/huge", provider.base);
    let mut broken =
        TestApp::spawn_with(backend, &oidc_args(ISSUER, &["--oidc-jwks-url", &huge])).await;
    let r = as_bearer(
        &broken,
        Method::GET,
        "/v1/namespaces",
        &rs256("rsa-1", &claims("alice")),
    )
    .await;
    let msg = r.assert_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceUnavailableException",
    );
    assert!(msg.contains("larger than 1048576 bytes"), "{msg}");
    broken.token = Some(broken.token_for(ADMIN_ID, ADMIN_SECRET).await);
    assert_eq!(broken.get("/v1/namespaces").await.status, StatusCode::OK);
}

both_backends!(
    provider_tokens_name_their_principal,
    pre_created_external_principals_get_roles,
    keys_come_from_a_url_or_discovery,
);

/// Misconfigured `--oidc-*` flags stop the start with one line that names the setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misconfiguration_is_refused_at_start() {
    use clap::Parser;
    use serac::config::{Cli, Command};
    let parse = |args: &[&str]| {
        let mut argv = vec!["serac", "serve", "--auth", "oauth2"];
        argv.extend_from_slice(args);
        let Command::Serve(serve) = Cli::try_parse_from(argv).unwrap().command else {
            unreachable!()
        };
        serve
    };
    let jwks = fixture("jwks.json").display().to_string();
    for (args, expect) in [
        (vec!["--oidc-issuer", ISSUER], "SERAC_OIDC_AUDIENCE"),
        (vec!["--oidc-audience", AUDIENCE], "SERAC_OIDC_ISSUER"),
        (vec!["--oidc-jwks-file", jwks.as_str()], "SERAC_OIDC_ISSUER"),
        (
            vec![
                "--oidc-issuer",
                ISSUER,
                "--oidc-audience",
                AUDIENCE,
                "--oidc-jwks-file",
                &jwks,
                "--oidc-jwks-url",
                "https://idp.test/certs",
            ],
            "set one of them",
        ),
        (
            vec![
                "--oidc-issuer",
                "idp",
                "--oidc-audience",
                AUDIENCE,
                "--oidc-jwks-file",
                &jwks,
            ],
            "not an http(s) URL",
        ),
        (
            vec![
                "--oidc-issuer",
                ISSUER,
                "--oidc-audience",
                AUDIENCE,
                "--oidc-jwks-url",
                "file:///etc/keys",
            ],
            "SERAC_OIDC_JWKS_URL",
        ),
        (
            vec![
                "--oidc-issuer",
                ISSUER,
                "--oidc-audience",
                AUDIENCE,
                "--oidc-principal-claim",
                " ",
            ],
            "SERAC_OIDC_PRINCIPAL_CLAIM",
        ),
    ] {
        let err = parse(&args).auth_settings().unwrap_err();
        assert!(
            err.contains(expect) && !err.contains('\n'),
            "{args:?}: {err}"
        );
    }
    let Command::Serve(none) = Cli::try_parse_from([
        "serac",
        "serve",
        "--auth",
        "none",
        "--oidc-issuer",
        ISSUER,
        "--oidc-audience",
        AUDIENCE,
    ])
    .unwrap()
    .command
    else {
        unreachable!()
    };
    let err = none.auth_settings().unwrap_err();
    assert!(err.contains("--auth oauth2"), "{err}");

    let settings = parse(&["--oidc-issuer", ISSUER, "--oidc-audience", AUDIENCE])
        .auth_settings()
        .unwrap()
        .oidc
        .unwrap();
    assert_eq!(settings.jwks, serac::auth::oidc::JwksSource::Discovery);
    assert_eq!(settings.principal_claim, "sub");

    // A key file that is missing, or holds no usable key, stops the start.
    let dir = tempfile::tempdir().unwrap();
    let symmetric = dir.path().join("oct.json");
    std::fs::write(
        &symmetric,
        r#"{"keys": [{"kty": "oct", "kid": "s", "k": "c2VjcmV0LXNlY3JldA"}]}"#,
    )
    .unwrap();
    for (file, expect) in [
        (dir.path().join("missing.json"), "cannot read"),
        (symmetric, "no usable signing key"),
    ] {
        let database = format!("sqlite://{}/serac.db", dir.path().display());
        let file = file.display().to_string();
        let args = parse(&[
            "--bind",
            "127.0.0.1:0",
            "--database-url",
            &database,
            "--data-dir",
            &dir.path().display().to_string(),
            "--oidc-issuer",
            ISSUER,
            "--oidc-audience",
            AUDIENCE,
            "--oidc-jwks-file",
            &file,
        ]);
        let err = serac::server::Server::build(&args)
            .await
            .err()
            .expect("the start is refused");
        assert!(
            err.contains("SERAC_OIDC_JWKS_FILE") && err.contains(expect),
            "{err}"
        );
    }
}

/// `serac principal create --external`: an admin of the provider, made before its first
/// sign-in, listed as external.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_makes_external_principals() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/cli.db", dir.path().display());
    let serac = |args: &[&str]| crate::common::serac_cli(&database, args);
    let (ok, out, err) = serac(&[
        "principal",
        "create",
        "ops@corp.example",
        "--external",
        "--admin",
    ]);
    assert!(ok, "{err}");
    assert!(!out.contains("client secret"), "{out}");
    let (ok, out, _) = serac(&["principal", "list"]);
    let line = out
        .lines()
        .find(|l| l.starts_with("ops@corp.example\t"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(ok && line.contains("\ttrue\ttrue\t"), "{line}");
    let (ok, _, err) = serac(&["principal", "rotate-secret", "ops@corp.example"]);
    assert!(!ok && err.contains("external"), "{err}");

    let jwks = fixture("jwks.json").display().to_string();
    let app = TestApp::spawn_on(
        Backend::Sqlite,
        dir,
        database.clone(),
        &oidc_args(ISSUER, &["--oidc-jwks-file", &jwks]),
    )
    .await;
    let ops = rs256("rsa-1", &claims("ops@corp.example"));
    let r = as_bearer(&app, Method::GET, "/management/v1/principals", &ops).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}
