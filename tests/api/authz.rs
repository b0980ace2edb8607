//! Authorization: principals in roles, grants on warehouses, namespaces (reaching every level
//! below), tables and views; lists filtered to what a principal may read; refusals that name
//! the missing privilege; revocation honoured at once by another replica.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::common::{Backend, TestApp, token};

const ADMIN_ID: &str = "platform-admin";
const ADMIN_SECRET: &str = "a-long-bootstrap-secret";

fn auth_args() -> [&'static str; 6] {
    crate::common::oauth2_args(ADMIN_ID, ADMIN_SECRET)
}

/// Sends a management request as the current principal and checks its status.
async fn manage(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
    status: StatusCode,
) -> Value {
    let r = app.request(method.clone(), path, body.as_ref()).await;
    assert_eq!(r.status, status, "{method} {path}: {}", r.text);
    if r.text.is_empty() {
        Value::Null
    } else {
        r.json()
    }
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
                json!({"source": {"namespace": ["team_a", "l1", "l2"], "name": "deep"}, "destination": {"namespace": ["team_b"], "name": "moved"}}),
            ),
            "drop",
        ),
        (
            // Alice owns the table she made, but may not create in the other team's namespace.
            Method::POST,
            "/v1/tables/rename".to_owned(),
            Some(
                json!({"source": {"namespace": ["team_a"], "name": "made_by_alice"}, "destination": {"namespace": ["team_b"], "name": "moved"}}),
            ),
            "create",
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
    // Every refusal is audited with the privilege it lacked, reads included.
    app.token = Some(admin.clone());
    let audit = manage(
        &app,
        Method::GET,
        "/management/v1/audit?limit=100",
        None,
        StatusCode::OK,
    )
    .await;
    let denied: Vec<(String, String, String)> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["actor"] == "alice" && r["status"] == 403)
        .map(|r| {
            assert_eq!(r["outcome"], "denied", "{r}");
            (
                r["operation"]
                    .as_str()
                    .unwrap()
                    .split(' ')
                    .next()
                    .unwrap()
                    .to_owned(),
                r["object"].as_str().unwrap().to_owned(),
                r["missing-privilege"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{r}"))
                    .to_owned(),
            )
        })
        .collect();
    for expected in [
        ("GET", "/v1/namespaces/team_b/tables/shared", "read"),
        ("DELETE", "/v1/namespaces/team_a", "drop"),
        ("GET", "/management/v1/roles", "admin"),
    ] {
        assert!(
            denied
                .iter()
                .any(|(m, o, p)| (m.as_str(), o.as_str(), p.as_str()) == expected),
            "{expected:?} not in {denied:?}"
        );
    }
    app.token = Some(alice.clone());
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
    let mut other = app.authenticated_replica().await;
    other.token = Some(admin.clone());
    grant_on(
        &other,
        "revoke",
        "team-a",
        "read",
        &["team_a"],
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
    the_feed_shows_what_a_principal_may_read,
    creators_own_and_managers_grant
);

/// As admin: a principal (its token) in a new role of the same name.
async fn principal_in_role(app: &TestApp, name: &str, admin: bool) -> String {
    let c = manage(
        app,
        Method::POST,
        "/management/v1/principals",
        Some(json!({"name": name, "admin": admin})),
        StatusCode::CREATED,
    )
    .await;
    manage(
        app,
        Method::POST,
        "/management/v1/roles",
        Some(json!({"name": name})),
        StatusCode::CREATED,
    )
    .await;
    manage(
        app,
        Method::PUT,
        &format!("/management/v1/roles/{name}/members/{name}"),
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    token(
        app,
        c["client-id"].as_str().unwrap(),
        c["client-secret"].as_str().unwrap(),
    )
    .await
}

/// Grants (`verb` "grants") or revokes (`verb` "revoke") `privilege` on a namespace to or
/// from a role as the current principal; the status expected.
async fn grant_on(
    app: &TestApp,
    verb: &str,
    role: &str,
    privilege: &str,
    namespace: &[&str],
    status: StatusCode,
) -> Value {
    manage(
        app,
        Method::POST,
        &format!("/management/v1/roles/{role}/{verb}"),
        Some(json!({"privilege": privilege, "warehouse": "default", "namespace": namespace})),
        status,
    )
    .await
}

/// What a principal creates it owns: every privilege on it (and below a namespace), with no
/// grant; it disappears with the object. Owners and holders of `manage-grants` may grant on
/// what they manage, and nothing else. A deleted or demoted admin's token loses its power at
/// once; on another replica, a table just made is its owner's at once.
async fn creators_own_and_managers_grant(backend: Backend) {
    let mut app = TestApp::spawn_with(backend, &auth_args()).await;
    let admin = token(&app, ADMIN_ID, ADMIN_SECRET).await;
    app.token = Some(admin.clone());
    for levels in [["proj"], ["shared"], ["other"]] {
        app.create_namespace(&levels).await;
    }
    app.create_table("shared", "facts", json!({})).await;
    app.create_table("other", "secret", json!({})).await;
    let carol = principal_in_role(&app, "carol", false).await;
    let dave = principal_in_role(&app, "dave", false).await;
    let boss = principal_in_role(&app, "boss", true).await;
    grant_on(
        &app,
        "grants",
        "carol",
        "create",
        &["proj"],
        StatusCode::NO_CONTENT,
    )
    .await;
    grant_on(
        &app,
        "grants",
        "carol",
        "manage-grants",
        &["shared"],
        StatusCode::NO_CONTENT,
    )
    .await;

    // Carol makes a namespace and tables: she may do everything to them, with no grant.
    app.token = Some(carol.clone());
    app.create_namespace(&["proj", "sub"]).await;
    app.create_table("proj", "t1", json!({})).await;
    app.create_table("proj%1Fsub", "t2", json!({})).await;
    let t1 = "/v1/namespaces/proj/tables/t1";
    let metadata = {
        let r = app.get(t1).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.json()["metadata"].clone()
    };
    let r = app.append_snapshot("proj", "t1", &metadata).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        app.get("/v1/namespaces/proj%1Fsub/tables/t2").await.status,
        StatusCode::OK
    );
    // Lists show what she owns, though she holds no read grant on the namespace.
    assert_eq!(
        names(
            &app.get("/v1/namespaces/proj/tables").await.json(),
            "identifiers"
        ),
        ["t1"]
    );
    assert_eq!(
        names(
            &app.get("/v1/namespaces?parent=proj").await.json(),
            "namespaces"
        ),
        ["proj.sub"]
    );
    // The namespace she owns reaches what is below it.
    assert_eq!(
        app.delete("/v1/namespaces/proj%1Fsub/tables/t2")
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    // Others' objects stay closed to her.
    app.get("/v1/namespaces/other/tables/secret")
        .await
        .assert_error(StatusCode::FORBIDDEN, "ForbiddenException");

    // Dave has nothing until an owner or a manager grants it.
    app.token = Some(dave.clone());
    app.get(t1)
        .await
        .assert_error(StatusCode::FORBIDDEN, "ForbiddenException");
    app.get("/v1/namespaces/shared/tables/facts")
        .await
        .assert_error(StatusCode::FORBIDDEN, "ForbiddenException");
    app.token = Some(carol.clone());
    manage(
        &app,
        Method::POST,
        "/management/v1/roles/dave/grants",
        Some(json!({"privilege": "read", "warehouse": "default", "namespace": ["proj"], "table": "t1"})),
        StatusCode::NO_CONTENT,
    )
    .await;
    grant_on(
        &app,
        "grants",
        "dave",
        "read",
        &["shared"],
        StatusCode::NO_CONTENT,
    )
    .await;
    // Not where she manages nothing, nor on the whole warehouse, nor role membership.
    for (method, path, body) in [
        (
            Method::POST,
            "/management/v1/roles/dave/grants",
            Some(json!({"privilege": "read", "warehouse": "default", "namespace": ["other"]})),
        ),
        (
            Method::POST,
            "/management/v1/roles/dave/grants",
            Some(json!({"privilege": "read", "warehouse": "default"})),
        ),
        (Method::PUT, "/management/v1/roles/carol/members/dave", None),
    ] {
        let r = app.request(method.clone(), path, body.as_ref()).await;
        let msg = r.assert_error(StatusCode::FORBIDDEN, "ForbiddenException");
        assert!(msg.contains("'carol'"), "{method} {path}: {msg}");
    }
    app.token = Some(dave.clone());
    assert_eq!(app.get(t1).await.status, StatusCode::OK);
    assert_eq!(
        app.get("/v1/namespaces/shared/tables/facts").await.status,
        StatusCode::OK
    );
    // Read is not write: her table's commits stay hers.
    app.append_snapshot("proj", "t1", &metadata)
        .await
        .assert_error(StatusCode::FORBIDDEN, "ForbiddenException");
    // The manager takes back what she gave.
    app.token = Some(carol.clone());
    grant_on(
        &app,
        "revoke",
        "dave",
        "read",
        &["shared"],
        StatusCode::NO_CONTENT,
    )
    .await;
    app.token = Some(dave.clone());
    app.get("/v1/namespaces/shared/tables/facts")
        .await
        .assert_error(StatusCode::FORBIDDEN, "ForbiddenException");

    // On another replica, a table carol makes here is hers at once, and the reverse.
    let mut other = app.authenticated_replica().await;
    other.token = Some(carol.clone());
    app.token = Some(carol.clone());
    for round in 0..5 {
        let name = format!("fresh{round}");
        let (maker, loader) = if round % 2 == 0 {
            (&app, &other)
        } else {
            (&other, &app)
        };
        maker.create_table("proj", &name, json!({})).await;
        let r = loader
            .get(&format!("/v1/namespaces/proj/tables/{name}"))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{name}: {}", r.text);
    }

    // Ownership goes with the object: made again by the admin, it is not hers.
    assert_eq!(app.delete(t1).await.status, StatusCode::NO_CONTENT);
    app.token = Some(admin.clone());
    app.create_table("proj", "t1", json!({})).await;
    app.token = Some(carol.clone());
    app.get(t1)
        .await
        .assert_error(StatusCode::FORBIDDEN, "ForbiddenException");

    // An admin's token is worth what the database says now, on every replica.
    other.token = Some(boss.clone());
    assert_eq!(
        other.get("/management/v1/roles").await.status,
        StatusCode::OK
    );
    app.token = Some(admin.clone());
    manage(
        &app,
        Method::DELETE,
        "/management/v1/principals/boss",
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    other
        .get("/management/v1/roles")
        .await
        .assert_error(StatusCode::FORBIDDEN, "ForbiddenException");
    // Carol deleted: her token opens nothing, not even what she made.
    manage(
        &app,
        Method::DELETE,
        "/management/v1/principals/carol",
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    other.token = Some(carol.clone());
    other
        .get("/v1/namespaces/proj/tables/fresh0")
        .await
        .assert_error(StatusCode::FORBIDDEN, "ForbiddenException");
}

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
