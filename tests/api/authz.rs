//! Authorization: principals in roles, grants on warehouses, namespaces (reaching every level
//! below), tables and views; lists filtered to what a principal may read; refusals that name
//! the missing privilege; revocation honoured at once by another replica.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::common::{Backend, TestApp};

pub(crate) const ADMIN_ID: &str = "platform-admin";
pub(crate) const ADMIN_SECRET: &str = "a-long-bootstrap-secret";

/// Authentication on, with the bootstrap admin `ADMIN_ID`.
pub(crate) fn auth_args() -> [&'static str; 6] {
    [
        "--auth",
        "oauth2",
        "--bootstrap-client-id",
        ADMIN_ID,
        "--bootstrap-client-secret",
        ADMIN_SECRET,
    ]
}

async fn token(app: &TestApp, id: &str, secret: &str) -> String {
    app.client_credentials_token(id, secret).await
}

/// Sends a management request as the current principal and checks its status.
async fn manage(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
    status: StatusCode,
) -> Value {
    app.manage(method, path, body, status).await
}

fn names(listing: &Value, key: &str) -> Vec<String> {
    listing[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} in {listing}"))
        .iter()
        .map(|v| match v {
            Value::Array(levels) => levels
                .iter()
                .map(|l| l.as_str().unwrap())
                .collect::<Vec<_>>()
                .join("."),
            Value::String(level) => level.clone(),
            other => other["name"].as_str().unwrap().to_owned(),
        })
        .collect()
}

async fn roles_and_grants_decide(backend: Backend) {
    let mut app = TestApp::spawn_with(backend, &auth_args()).await;
    let admin = token(&app, ADMIN_ID, ADMIN_SECRET).await;
    app.token = Some(admin.clone());
    let ns = "/v1/namespaces";
    for levels in [vec!["team_a", "l1", "l2"], vec!["team_b"]] {
        app.create_namespace(&levels).await;
    }
    app.create_table("team_a\u{1F}l1\u{1F}l2", "deep", json!({}))
        .await;
    app.create_table("team_b", "shared", json!({})).await;

    // Two principals, each in its own role.
    let mut creds = Vec::new();
    for (who, role) in [("alice", "team-a"), ("bob", "team-b")] {
        let c = manage(
            &app,
            Method::POST,
            "/management/v1/principals",
            Some(json!({"name": who})),
            StatusCode::CREATED,
        )
        .await;
        assert!(
            c["client-secret"].as_str().is_some_and(|s| s.len() == 43),
            "{c}"
        );
        manage(
            &app,
            Method::POST,
            "/management/v1/roles",
            Some(json!({"name": role})),
            StatusCode::CREATED,
        )
        .await;
        manage(
            &app,
            Method::PUT,
            &format!("/management/v1/roles/{role}/members/{who}"),
            None,
            StatusCode::NO_CONTENT,
        )
        .await;
        creds.push(c);
    }
    for (role, namespace, privileges) in [
        ("team-a", "team_a", ["read", "write", "create"].as_slice()),
        ("team-b", "team_b", ["read", "create"].as_slice()),
    ] {
        for privilege in privileges {
            manage(
                &app,
                Method::POST,
                &format!("/management/v1/roles/{role}/grants"),
                Some(json!({"privilege": privilege, "warehouse": "default", "namespace": [namespace]})),
                StatusCode::NO_CONTENT,
            )
            .await;
        }
    }
    let grants = manage(
        &app,
        Method::GET,
        "/management/v1/roles/team-b/grants",
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        grants["grants"],
        json!([
            {"privilege": "create", "warehouse": "default", "namespace": ["team_b"]},
            {"privilege": "read", "warehouse": "default", "namespace": ["team_b"]},
        ]),
        "{grants}"
    );
    let roles = manage(
        &app,
        Method::GET,
        "/management/v1/roles",
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(roles["roles"][0]["members"], json!(["alice"]), "{roles}");
    // Bad grants are refused with what is wrong.
    for (body, status) in [
        (
            json!({"privilege": "own", "warehouse": "default"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"privilege": "read", "warehouse": "default", "table": "t"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"privilege": "read", "warehouse": "default", "namespace": ["nowhere"]}),
            StatusCode::NOT_FOUND,
        ),
        (
            json!({"privilege": "read", "warehouse": "nowhere"}),
            StatusCode::NOT_FOUND,
        ),
    ] {
        manage(
            &app,
            Method::POST,
            "/management/v1/roles/team-a/grants",
            Some(body),
            status,
        )
        .await;
    }
    manage(
        &app,
        Method::POST,
        "/management/v1/roles/no-such-role/grants",
        Some(json!({"privilege": "read", "warehouse": "default"})),
        StatusCode::NOT_FOUND,
    )
    .await;

    let alice = token(
        &app,
        creds[0]["client-id"].as_str().unwrap(),
        creds[0]["client-secret"].as_str().unwrap(),
    )
    .await;
    let bob = token(
        &app,
        creds[1]["client-id"].as_str().unwrap(),
        creds[1]["client-secret"].as_str().unwrap(),
    )
    .await;
    let deep = "/v1/namespaces/team_a%1Fl1%1Fl2/tables/deep";

    // A grant on a namespace reaches a table three levels down; the other team's does not.
    app.token = Some(alice.clone());
    let metadata = {
        let r = app.get(deep).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.json()["metadata"].clone()
    };
    let r = app
        .append_snapshot("team_a%1Fl1%1Fl2", "deep", &metadata)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    app.create_table("team_a", "made_by_alice", json!({})).await;
    for (method, path, body, privilege) in [
        (
            Method::GET,
            "/v1/namespaces/team_b/tables/shared".to_owned(),
            None,
            "read",
        ),
        (
            Method::POST,
            format!("{ns}/team_b/tables"),
            Some(json!({"name": "x", "schema": crate::common::simple_schema()})),
            "create",
        ),
        (Method::DELETE, deep.to_owned(), None, "drop"),
        (Method::DELETE, format!("{ns}/team_a"), None, "drop"),
        (
            Method::POST,
            "/v1/tables/rename".to_owned(),
            Some(
                json!({"source": {"namespace": ["team_a"], "name": "made_by_alice"}, "destination": {"namespace": ["team_b"], "name": "moved"}}),
            ),
            "drop",
        ),
        (
            Method::GET,
            "/management/v1/roles".to_owned(),
            None,
            "admin",
        ),
    ] {
        let r = app.request(method.clone(), &path, body.as_ref()).await;
        let msg = r.assert_error(StatusCode::FORBIDDEN, "ForbiddenException");
        assert!(
            msg.contains("'alice'") && msg.contains(&format!("'{privilege}'")),
            "{method} {path}: {msg}"
        );
    }
    // A transaction that touches one table of each team is refused whole.
    let r = app
        .post(
            "/v1/transactions/commit",
            &json!({"table-changes": [
                {"identifier": {"namespace": ["team_a"], "name": "made_by_alice"}, "requirements": [], "updates": [{"action": "set-properties", "updates": {"k": "v"}}]},
                {"identifier": {"namespace": ["team_b"], "name": "shared"}, "requirements": [], "updates": [{"action": "set-properties", "updates": {"k": "v"}}]},
            ]}),
        )
        .await;
    r.assert_error(StatusCode::FORBIDDEN, "ForbiddenException");
    let r = app.get("/v1/namespaces/team_a/tables/made_by_alice").await;
    assert!(
        r.json()["metadata"]["properties"].get("k").is_none(),
        "half a transaction applied: {}",
        r.text
    );

    // Lists show what each may read, filtered in the list's query.
    assert_eq!(names(&app.get(ns).await.json(), "namespaces"), ["team_a"]);
    assert_eq!(
        names(&app.get(&format!("{ns}/team_a")).await.json(), "namespace"),
        ["team_a"]
    );
    assert_eq!(
        names(
            &app.get(&format!("{ns}/team_a/tables")).await.json(),
            "identifiers"
        ),
        ["made_by_alice"]
    );
    assert!(
        names(
            &app.get(&format!("{ns}/team_b/tables")).await.json(),
            "identifiers"
        )
        .is_empty()
    );
    app.token = Some(bob.clone());
    assert_eq!(names(&app.get(ns).await.json(), "namespaces"), ["team_b"]);
    app.get(deep)
        .await
        .assert_error(StatusCode::FORBIDDEN, "ForbiddenException");

    // A grant on one table: bob may read it, and lists show just it.
    app.token = Some(admin.clone());
    manage(
        &app,
        Method::POST,
        "/management/v1/roles/team-b/grants",
        Some(json!({"privilege": "read", "warehouse": "default", "namespace": ["team_a", "l1", "l2"], "table": "deep"})),
        StatusCode::NO_CONTENT,
    )
    .await;
    app.token = Some(bob.clone());
    assert_eq!(app.get(deep).await.status, StatusCode::OK);
    assert_eq!(
        names(
            &app.get(&format!("{ns}/team_a%1Fl1%1Fl2/tables"))
                .await
                .json(),
            "identifiers"
        ),
        ["deep"]
    );
    let r = app
        .append_snapshot("team_a%1Fl1%1Fl2", "deep", &metadata)
        .await;
    r.assert_error(StatusCode::FORBIDDEN, "ForbiddenException");

    // Revoked on another replica: the next request here is refused.
    let dir = tempfile::tempdir().unwrap();
    let mut other = TestApp::spawn_on(
        backend,
        dir,
        app.database_url.clone(),
        &["--auth", "oauth2"],
    )
    .await;
    other.token = Some(admin.clone());
    manage(
        &other,
        Method::POST,
        "/management/v1/roles/team-a/revoke",
        Some(json!({"privilege": "read", "warehouse": "default", "namespace": ["team_a"]})),
        StatusCode::NO_CONTENT,
    )
    .await;
    app.token = Some(alice.clone());
    app.get(deep)
        .await
        .assert_error(StatusCode::FORBIDDEN, "ForbiddenException");
    assert!(names(&app.get(ns).await.json(), "namespaces").is_empty());
    // Leaving the role takes the rest away too.
    manage(
        &other,
        Method::DELETE,
        "/management/v1/roles/team-a/members/alice",
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    app.create_namespace_as_refused("team_a\u{1F}new").await;
}

impl TestApp {
    async fn create_namespace_as_refused(&self, levels: &str) {
        let namespace: Vec<&str> = levels.split('\u{1F}').collect();
        self.post("/v1/namespaces", &json!({"namespace": namespace}))
            .await
            .assert_error(StatusCode::FORBIDDEN, "ForbiddenException");
    }
}

/// The change feed of a principal that is not an admin carries only the events of objects
/// it may read.
async fn the_feed_shows_what_a_principal_may_read(backend: Backend) {
    let mut app = TestApp::spawn_with(backend, &auth_args()).await;
    let admin = token(&app, ADMIN_ID, ADMIN_SECRET).await;
    app.token = Some(admin.clone());
    app.create_namespace(&["visible"]).await;
    app.create_namespace(&["hidden"]).await;
    let c = manage(
        &app,
        Method::POST,
        "/management/v1/principals",
        Some(json!({"name": "watcher"})),
        StatusCode::CREATED,
    )
    .await;
    manage(
        &app,
        Method::POST,
        "/management/v1/roles",
        Some(json!({"name": "watchers"})),
        StatusCode::CREATED,
    )
    .await;
    manage(
        &app,
        Method::PUT,
        "/management/v1/roles/watchers/members/watcher",
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    manage(
        &app,
        Method::POST,
        "/management/v1/roles/watchers/grants",
        Some(json!({"privilege": "read", "warehouse": "default", "namespace": ["visible"]})),
        StatusCode::NO_CONTENT,
    )
    .await;
    let watcher = token(
        &app,
        c["client-id"].as_str().unwrap(),
        c["client-secret"].as_str().unwrap(),
    )
    .await;
    app.token = Some(watcher);
    let mut feed = app.feed("").await;
    app.token = Some(admin);
    app.create_table("hidden", "secret_table", json!({})).await;
    app.create_table("visible", "open_table", json!({})).await;
    let event = crate::common::next_event(&mut feed).await;
    assert_eq!(event["type"], "table.created", "{event}");
    assert_eq!(event["namespace"], json!(["visible"]), "{event}");
    assert_eq!(event["name"], "open_table", "{event}");
    crate::common::assert_no_event(&mut feed, std::time::Duration::from_millis(500)).await;
}

both_backends!(
    roles_and_grants_decide,
    the_feed_shows_what_a_principal_may_read
);

/// The command line manages roles, members and grants on the database directly; the server
/// on that database decides by them at the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_manages_roles_and_grants() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/cli.db", dir.path().display());
    let serac = |args: &[&str]| {
        let (ok, stdout, stderr) = crate::common::serac_cli(&database, args);
        assert!(ok, "serac {args:?}: {stderr}");
        stdout
    };
    let mut app = TestApp::spawn_on(Backend::Sqlite, dir, database.clone(), &auth_args()).await;
    app.token = Some(token(&app, ADMIN_ID, ADMIN_SECRET).await);
    let created = serac(&["principal", "create", "carol"]);
    let field = |name: &str| {
        created
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap()
    };
    let (id, secret) = (field("client id:"), field("client secret:"));
    app.create_namespace(&["sales"]).await;

    serac(&["role", "create", "analysts"]);
    serac(&["role", "add-member", "analysts", "carol"]);
    serac(&[
        "role",
        "grant",
        "analysts",
        "--privilege",
        "read",
        "--namespace",
        "sales",
    ]);
    assert!(serac(&["role", "list"]).contains("analysts\tcarol"));
    assert!(serac(&["role", "grants", "analysts"]).contains("read\tdefault\tnamespace sales"));

    app.token = Some(token(&app, &id, &secret).await);
    assert_eq!(app.get("/v1/namespaces/sales").await.status, StatusCode::OK);
    serac(&[
        "role",
        "revoke",
        "analysts",
        "--privilege",
        "read",
        "--namespace",
        "sales",
    ]);
    app.get("/v1/namespaces/sales")
        .await
        .assert_error(StatusCode::FORBIDDEN, "ForbiddenException");
}
