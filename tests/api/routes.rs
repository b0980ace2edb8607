//! Every operation of `openapi/serac.yaml`, checked against the authorization rule of
//! `src/catalog/authz.rs` on one server with `--auth oauth2`:
//!
//! - without a token: 401 `NotAuthorizedException` with a `WWW-Authenticate` challenge (an
//!   open route answers as it does for anyone);
//! - as a principal that holds no grant: 403 `ForbiddenException` naming the missing
//!   privilege, on the operation's objects and on objects that do not exist (a list answers
//!   200 and shows nothing instead);
//! - as a principal holding every other privilege on the same objects: refused alike;
//! - as a principal whose one role holds exactly the operation's least privilege: success.
//!
//! [`OPERATIONS`] decides for every operationId how to call it and what it needs. An
//! operation of the document that the table lacks fails the test (a new route without a
//! decision), and so does an entry the document lacks, a call that does not match its
//! documented method and path, or an open route the document does not say is open.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::common::{
    ADMIN_ID, ADMIN_SECRET, Backend, Resp, TestApp, add_one_function, append_commit, auth_args,
    next_snapshot_id, simple_schema,
};

/// A principal that holds no grant, ever.
const NOBODY: &str = "nobody";
/// A principal that holds, for one operation at a time, exactly that operation's need.
const HOLDER: &str = "holder";

/// What an operation needs to succeed.
#[derive(Debug, Clone, Copy)]
enum Need {
    /// Nothing: no token.
    Open,
    /// Any principal; what it is shown is filtered by its grants (the change feed).
    Token,
    /// All these grants, each on an object of the operation's fixture.
    Grants(&'static [(&'static str, On)]),
    /// An admin principal.
    Admin,
}

/// The objects of an operation's fixture a grant can be on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum On {
    /// The warehouse `default`, where every fixture lives.
    Warehouse,
    /// The fixture's namespace (which holds the table, view, function and child namespace).
    Namespace,
    /// The empty namespace below it.
    Child,
    Table,
    View,
}

/// The least privilege of granting and revoking (`grantToRole`, `revokeFromRole`):
/// `manage-grants` on the object of the grant (the fixture's namespace).
const MANAGE_GRANTS: Need = Need::Grants(&[("manage-grants", On::Namespace)]);

/// What a principal without the need gets.
#[derive(Debug, Clone, Copy)]
enum Refused {
    /// 403 `ForbiddenException` naming a privilege of the need.
    Forbidden,
    /// 200 with an empty array under this key (a list filtered to what the caller may read).
    Filtered(&'static str),
}

/// Objects made for one operation only, besides its namespace, table, view and function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Make {
    Nothing,
    /// A principal of its own (to delete, or whose secret to rotate).
    Principal,
    /// An API key of [`NOBODY`] (to revoke).
    ApiKey,
    /// A plan of table `t` split in plan tasks (kept by the server until fetched or
    /// cancelled).
    SplitPlan,
    /// An empty warehouse on the local file system (to delete).
    Warehouse,
    /// A warehouse on the test S3 store (`tests/lib/s3.sh`), credential mode `none` (to give
    /// a new storage profile: the same one).
    S3Warehouse,
}

enum Body {
    None,
    Json(Value),
    Form(Vec<(&'static str, String)>),
    /// A WebSocket handshake.
    Upgrade,
}

struct Call {
    method: Method,
    path: String,
    body: Body,
}

fn call(method: Method, path: String, body: Body) -> Call {
    Call { method, path, body }
}

/// The names an operation's call uses: made for it, or (a ghost) made for nobody.
struct Fx {
    /// A top-level namespace holding the child namespace `child`, table `t`, view `v` and
    /// function `f`.
    ns: String,
    /// A warehouse name, in bodies that name one.
    warehouse: String,
    /// A role without members or grants.
    role: String,
    principal: String,
    api_key: String,
    /// The metadata file of a table that was unregistered, and of a view that was dropped
    /// (kept: dropping a view leaves its files), to register again.
    table_location: String,
    view_location: String,
    /// A split plan of table `t` and one of its plan tasks.
    plan_id: String,
    plan_task: String,
    /// For names an operation creates.
    fresh: String,
    /// The credentials of [`NOBODY`], for the token endpoint.
    client: (String, String),
    /// The server's data directory, for new warehouses.
    data_dir: String,
    /// A warehouse made for this operation ([`Make::Warehouse`], [`Make::S3Warehouse`]), and
    /// a storage profile for it.
    own_warehouse: String,
    profile: Value,
}

impl Fx {
    fn v1(&self, rest: &str) -> String {
        format!("/v1/default/namespaces/{}{rest}", self.ns)
    }

    fn ident(&self, name: &str) -> Value {
        json!({"namespace": [self.ns], "name": name})
    }

    fn grant(&self) -> Value {
        json!({"privilege": "read", "warehouse": self.warehouse, "namespace": [self.ns]})
    }
}

struct Operation {
    id: &'static str,
    need: Need,
    refused: Refused,
    /// The status of success.
    ok: u16,
    make: Make,
    call: fn(&Fx) -> Call,
}

const fn op(id: &'static str, need: Need, ok: u16, call: fn(&Fx) -> Call) -> Operation {
    Operation {
        id,
        need,
        refused: Refused::Forbidden,
        ok,
        make: Make::Nothing,
        call,
    }
}

const fn list(id: &'static str, need: Need, key: &'static str, call: fn(&Fx) -> Call) -> Operation {
    Operation {
        refused: Refused::Filtered(key),
        ..op(id, need, 200, call)
    }
}

const fn making(make: Make, operation: Operation) -> Operation {
    Operation { make, ..operation }
}

const READ_NS: Need = Need::Grants(&[("read", On::Namespace)]);
const WRITE_NS: Need = Need::Grants(&[("write", On::Namespace)]);
const CREATE_NS: Need = Need::Grants(&[("create", On::Namespace)]);
const READ_TABLE: Need = Need::Grants(&[("read", On::Table)]);
const WRITE_TABLE: Need = Need::Grants(&[("write", On::Table)]);
const DROP_TABLE: Need = Need::Grants(&[("drop", On::Table)]);
const READ_VIEW: Need = Need::Grants(&[("read", On::View)]);
const WRITE_VIEW: Need = Need::Grants(&[("write", On::View)]);
const DROP_VIEW: Need = Need::Grants(&[("drop", On::View)]);

fn get(path: String) -> Call {
    call(Method::GET, path, Body::None)
}

fn head(path: String) -> Call {
    call(Method::HEAD, path, Body::None)
}

fn delete(path: String) -> Call {
    call(Method::DELETE, path, Body::None)
}

fn post(path: String, body: Value) -> Call {
    call(Method::POST, path, Body::Json(body))
}

fn set_property() -> Value {
    json!({"requirements": [], "updates": [{"action": "set-properties", "updates": {"k": "v"}}]})
}

fn view_version() -> Value {
    json!({
        "version-id": 1,
        "schema-id": 0,
        "timestamp-ms": 1_700_000_000_000i64,
        "summary": {"engine-name": "tests"},
        "representations": [{"type": "sql", "sql": "SELECT 1", "dialect": "spark"}],
        "default-namespace": ["v"]
    })
}

/// A function's metadata with a uuid of its own.
fn function_metadata() -> Value {
    let mut metadata = add_one_function();
    metadata["function-uuid"] = json!(uuid::Uuid::new_v4().to_string());
    metadata
}

/// Renames `tables` or `views` object `from` of the fixture's namespace to `fresh`.
fn rename(kind: &str, fx: &Fx, from: &str) -> Call {
    post(
        format!("/v1/default/{kind}/rename"),
        json!({"source": fx.ident(from), "destination": fx.ident(&fx.fresh)}),
    )
}

/// Every operation of the document: how to call it, and what it needs.
const OPERATIONS: &[Operation] = &[
    // Open routes.
    op("getConfig", Need::Open, 200, |_| get("/v1/config".into())),
    op("getToken", Need::Open, 200, |fx| {
        let form = vec![
            ("grant_type", "client_credentials".to_owned()),
            ("client_id", fx.client.0.clone()),
            ("client_secret", fx.client.1.clone()),
        ];
        call(Method::POST, "/v1/oauth/tokens".into(), Body::Form(form))
    }),
    op("metrics", Need::Open, 200, |_| get("/metrics".into())),
    op("health", Need::Open, 200, |_| get("/health".into())),
    op("ready", Need::Open, 200, |_| get("/ready".into())),
    // Namespaces.
    // Below the fixture's namespace, which holds `child` (the top level is in authz.rs).
    list("listNamespaces", READ_NS, "namespaces", |fx| {
        get(format!("/v1/default/namespaces?parent={}", fx.ns))
    }),
    op("createNamespace", CREATE_NS, 200, |fx| {
        post(
            "/v1/default/namespaces".into(),
            json!({"namespace": [fx.ns, fx.fresh]}),
        )
    }),
    op("loadNamespaceMetadata", READ_NS, 200, |fx| get(fx.v1(""))),
    op("namespaceExists", READ_NS, 204, |fx| head(fx.v1(""))),
    op(
        "dropNamespace",
        Need::Grants(&[("drop", On::Child)]),
        204,
        |fx| delete(fx.v1("%1Fchild")),
    ),
    op("updateProperties", WRITE_NS, 200, |fx| {
        post(fx.v1("/properties"), json!({"updates": {"k": "v"}}))
    }),
    // Tables.
    list("listTables", READ_TABLE, "identifiers", |fx| {
        get(fx.v1("/tables"))
    }),
    op("createTable", CREATE_NS, 200, |fx| {
        post(
            fx.v1("/tables"),
            json!({"name": fx.fresh, "schema": simple_schema()}),
        )
    }),
    op("registerTable", CREATE_NS, 200, |fx| {
        post(
            fx.v1("/register"),
            json!({"name": fx.fresh, "metadata-location": fx.table_location}),
        )
    }),
    op("loadTable", READ_TABLE, 200, |fx| get(fx.v1("/tables/t"))),
    op("tableExists", READ_TABLE, 204, |fx| {
        head(fx.v1("/tables/t"))
    }),
    op("updateTable", WRITE_TABLE, 200, |fx| {
        post(fx.v1("/tables/t"), set_property())
    }),
    op("dropTable", DROP_TABLE, 204, |fx| {
        delete(fx.v1("/tables/t"))
    }),
    op("reportMetrics", READ_TABLE, 204, |fx| {
        post(
            fx.v1("/tables/t/metrics"),
            json!({"report-type": "scan-report", "snapshot-id": 1}),
        )
    }),
    op(
        "renameTable",
        Need::Grants(&[("drop", On::Table), ("create", On::Namespace)]),
        204,
        |fx| rename("tables", fx, "t"),
    ),
    op("unregisterTable", DROP_TABLE, 200, |fx| {
        call(Method::POST, fx.v1("/tables/t/unregister"), Body::None)
    }),
    op("loadCredentials", READ_TABLE, 200, |fx| {
        get(fx.v1("/tables/t/credentials"))
    }),
    // The fixture's warehouse is file://, which signs nothing: the least privilege gets the
    // 400 that says so (tests/api/s3.rs signs for real on an S3 warehouse).
    op("signS3Request", READ_TABLE, 400, |fx| {
        post(
            fx.v1("/tables/t/sign"),
            json!({"method": "GET", "region": "us-east-1",
                   "uri": "http://127.0.0.1:1/bucket/t/data/f.parquet", "headers": {}}),
        )
    }),
    // The legacy path finds the table from the signer properties here (the file:// fixture
    // has no bucket to find it by); the same 400 once found and readable.
    op("signS3RequestLegacy", READ_TABLE, 400, |fx| {
        post(
            "/v1/aws/s3/sign".into(),
            json!({"method": "GET", "region": "us-east-1",
                   "uri": "http://127.0.0.1:1/bucket/t/data/f.parquet", "headers": {},
                   "properties": {"prefix": "default", "namespace": fx.ns, "table": "t"}}),
        )
    }),
    op("commitTransaction", WRITE_TABLE, 204, |fx| {
        let mut change = set_property();
        change["identifier"] = fx.ident("t");
        post(
            "/v1/default/transactions/commit".into(),
            json!({"table-changes": [change]}),
        )
    }),
    // Scan planning.
    op("planTableScan", READ_TABLE, 200, |fx| {
        post(fx.v1("/tables/t/plan"), json!({}))
    }),
    making(
        Make::SplitPlan,
        op("fetchPlanningResult", READ_TABLE, 200, |fx| {
            get(fx.v1(&format!("/tables/t/plan/{}", fx.plan_id)))
        }),
    ),
    making(
        Make::SplitPlan,
        op("cancelPlanning", READ_TABLE, 204, |fx| {
            delete(fx.v1(&format!("/tables/t/plan/{}", fx.plan_id)))
        }),
    ),
    making(
        Make::SplitPlan,
        op("fetchScanTasks", READ_TABLE, 200, |fx| {
            post(fx.v1("/tables/t/tasks"), json!({"plan-task": fx.plan_task}))
        }),
    ),
    // Views.
    list("listViews", READ_VIEW, "identifiers", |fx| {
        get(fx.v1("/views"))
    }),
    op("createView", CREATE_NS, 200, |fx| {
        post(
            fx.v1("/views"),
            json!({"name": fx.fresh, "schema": simple_schema(), "view-version": view_version()}),
        )
    }),
    op("loadView", READ_VIEW, 200, |fx| get(fx.v1("/views/v"))),
    op("viewExists", READ_VIEW, 204, |fx| head(fx.v1("/views/v"))),
    op("replaceView", WRITE_VIEW, 200, |fx| {
        post(fx.v1("/views/v"), set_property())
    }),
    op("dropView", DROP_VIEW, 204, |fx| delete(fx.v1("/views/v"))),
    op(
        "renameView",
        Need::Grants(&[("drop", On::View), ("create", On::Namespace)]),
        204,
        |fx| rename("views", fx, "v"),
    ),
    op("registerView", CREATE_NS, 200, |fx| {
        post(
            fx.v1("/register-view"),
            json!({"name": fx.fresh, "metadata-location": fx.view_location}),
        )
    }),
    // Functions: grants cannot name one, so they are reached through their namespace.
    op("listFunctions", READ_NS, 200, |fx| get(fx.v1("/functions"))),
    op(
        "loadFunction",
        READ_NS,
        200,
        |fx| get(fx.v1("/functions/f")),
    ),
    op("createFunction", CREATE_NS, 201, |fx| {
        post(
            format!(
                "/management/v1/warehouses/default/namespaces/{}/functions",
                fx.ns
            ),
            json!({"name": fx.fresh, "metadata": function_metadata()}),
        )
    }),
    // Warehouses and the audit log.
    op("listWarehouses", Need::Admin, 200, |_| {
        get("/management/v1/warehouses".into())
    }),
    op("createWarehouse", Need::Admin, 201, |fx| {
        post(
            "/management/v1/warehouses".into(),
            json!({"name": fx.fresh, "location": format!("file://{}/{}", fx.data_dir, fx.fresh)}),
        )
    }),
    making(
        Make::Warehouse,
        op("deleteWarehouse", Need::Admin, 204, |fx| {
            delete(format!("/management/v1/warehouses/{}", fx.own_warehouse))
        }),
    ),
    making(
        Make::S3Warehouse,
        op("updateWarehouseStorage", Need::Admin, 200, |fx| {
            call(
                Method::PUT,
                format!("/management/v1/warehouses/{}/storage", fx.own_warehouse),
                Body::Json(fx.profile.clone()),
            )
        }),
    ),
    op("listAuditRecords", Need::Admin, 200, |_| {
        get("/management/v1/audit".into())
    }),
    // Principals and API keys.
    op("listPrincipals", Need::Admin, 200, |_| {
        get("/management/v1/principals".into())
    }),
    op("createPrincipal", Need::Admin, 201, |fx| {
        post(
            "/management/v1/principals".into(),
            json!({"name": fx.fresh}),
        )
    }),
    making(
        Make::Principal,
        op("deletePrincipal", Need::Admin, 204, |fx| {
            delete(format!("/management/v1/principals/{}", fx.principal))
        }),
    ),
    making(
        Make::Principal,
        op("rotatePrincipalSecret", Need::Admin, 200, |fx| {
            call(
                Method::POST,
                format!("/management/v1/principals/{}/rotate-secret", fx.principal),
                Body::None,
            )
        }),
    ),
    op("createApiKey", Need::Admin, 201, |fx| {
        post(
            format!("/management/v1/principals/{}/api-keys", fx.principal),
            json!({"expires-in": "1h"}),
        )
    }),
    op("listApiKeys", Need::Admin, 200, |_| {
        get("/management/v1/api-keys".into())
    }),
    making(
        Make::ApiKey,
        op("revokeApiKey", Need::Admin, 204, |fx| {
            delete(format!("/management/v1/api-keys/{}", fx.api_key))
        }),
    ),
    // Roles, members and grants.
    op("listRoles", Need::Admin, 200, |_| {
        get("/management/v1/roles".into())
    }),
    op("createRole", Need::Admin, 201, |fx| {
        post("/management/v1/roles".into(), json!({"name": fx.fresh}))
    }),
    op("deleteRole", Need::Admin, 204, |fx| {
        delete(format!("/management/v1/roles/{}", fx.role))
    }),
    op("addRoleMember", Need::Admin, 204, |fx| {
        call(
            Method::PUT,
            format!("/management/v1/roles/{}/members/{}", fx.role, fx.principal),
            Body::None,
        )
    }),
    op("removeRoleMember", Need::Admin, 204, |fx| {
        delete(format!(
            "/management/v1/roles/{}/members/{}",
            fx.role, fx.principal
        ))
    }),
    op("listRoleGrants", Need::Admin, 200, |fx| {
        get(format!("/management/v1/roles/{}/grants", fx.role))
    }),
    op("grantToRole", MANAGE_GRANTS, 204, |fx| {
        post(
            format!("/management/v1/roles/{}/grants", fx.role),
            fx.grant(),
        )
    }),
    op("revokeFromRole", MANAGE_GRANTS, 204, |fx| {
        post(
            format!("/management/v1/roles/{}/revoke", fx.role),
            fx.grant(),
        )
    }),
    // The change feed: any principal may connect; it carries what the principal may read.
    op("streamEvents", Need::Token, 101, |_| {
        call(Method::GET, "/v1/events/stream".into(), Body::Upgrade)
    }),
];

// ------------------------------------------------------------------------ the document

/// (operationId, method, path template, open) of every operation of the document; open
/// when its `security` (or the document's) admits a request without credentials.
fn documented() -> Vec<(String, Method, String, bool)> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/serac.yaml"))
        .expect("openapi/serac.yaml");
    let docs = yaml_rust2::YamlLoader::load_from_str(&text).expect("openapi/serac.yaml is YAML");
    let doc = &docs[0];
    let admits_anonymous = |security: &yaml_rust2::Yaml| {
        security.as_vec().is_some_and(|requirements| {
            requirements.is_empty()
                || requirements
                    .iter()
                    .any(|r| r.as_hash().is_some_and(|h| h.is_empty()))
        })
    };
    let open_by_default = admits_anonymous(&doc["security"]);
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_hash().expect("paths") {
        let path = path.as_str().expect("a path");
        for (method, operation) in item.as_hash().expect("a path item") {
            let method = method.as_str().expect("a key");
            if ![
                "get", "put", "post", "delete", "head", "patch", "options", "trace",
            ]
            .contains(&method)
            {
                continue;
            }
            let id = operation["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            let open = if operation["security"].is_badvalue() {
                open_by_default
            } else {
                admits_anonymous(&operation["security"])
            };
            out.push((
                id.to_owned(),
                Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap(),
                path.to_owned(),
                open,
            ));
        }
    }
    out
}

/// Whether a request path (its query left out) matches a path template of the document.
fn matches_template(template: &str, path: &str) -> bool {
    let path = path.split('?').next().unwrap_or_default();
    let (t, p): (Vec<_>, Vec<_>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter().zip(&p).all(|(t, p)| {
            if t.starts_with('{') && t.ends_with('}') {
                !p.is_empty()
            } else {
                t == p
            }
        })
}

/// The table and the document name the same operations, with the same method, path and
/// openness.
fn check_table_against_document(fx: &Fx) -> Vec<String> {
    let documented = documented();
    let mut problems = Vec::new();
    let ids: BTreeSet<&str> = OPERATIONS.iter().map(|o| o.id).collect();
    if ids.len() != OPERATIONS.len() {
        problems.push("an operationId stands twice in OPERATIONS".to_owned());
    }
    let by_id: BTreeMap<&str, _> = documented
        .iter()
        .map(|(id, m, p, open)| (id.as_str(), (m, p, *open)))
        .collect();
    for (id, method, path, _) in &documented {
        if !ids.contains(id.as_str()) {
            problems.push(format!(
                "{id} ({method} {path}) is in openapi/serac.yaml but not in OPERATIONS: a new route without a decision; add how to call it and what it needs"
            ));
        }
    }
    for operation in OPERATIONS {
        let Some((method, template, open)) = by_id.get(operation.id) else {
            problems.push(format!(
                "{} is in OPERATIONS but not in openapi/serac.yaml",
                operation.id
            ));
            continue;
        };
        let call = (operation.call)(fx);
        if call.method != **method || !matches_template(template, &call.path) {
            problems.push(format!(
                "{}: the table calls {} {}, the document says {method} {template}",
                operation.id, call.method, call.path
            ));
        }
        if *open != matches!(operation.need, Need::Open) {
            problems.push(format!(
                "{}: the document says the route is {}, the table says it needs {:?}",
                operation.id,
                if *open { "open" } else { "not open" },
                operation.need
            ));
        }
    }
    problems
}

// ------------------------------------------------------------------------ the server

/// One server, its admin token, and the principals every operation reuses.
struct World {
    app: TestApp,
    admin: String,
    nobody: String,
    holder: String,
    nobody_client: (String, String),
}

impl World {
    async fn start(backend: Backend) -> Self {
        let mut args = auth_args().to_vec();
        args.extend(["--scan-files-per-task", "1"]);
        let mut app = TestApp::spawn_with(backend, &args).await;
        let admin = app.token_for(ADMIN_ID, ADMIN_SECRET).await;
        // `TestApp::manage` (the admin's setup calls) sends as the admin; the operations
        // under test name their token themselves (`World::send`).
        app.token = Some(admin.clone());
        let mut world = Self {
            app,
            admin,
            nobody: String::new(),
            holder: String::new(),
            nobody_client: Default::default(),
        };
        for name in [NOBODY, HOLDER] {
            let c = world
                .admin_call(
                    Method::POST,
                    "/management/v1/principals",
                    Some(json!({"name": name})),
                    StatusCode::CREATED,
                )
                .await;
            let (id, secret) = (
                c["client-id"].as_str().unwrap().to_owned(),
                c["client-secret"].as_str().unwrap().to_owned(),
            );
            let t = world.app.token_for(&id, &secret).await;
            if name == NOBODY {
                world.nobody = t;
                world.nobody_client = (id, secret);
            } else {
                world.holder = t;
            }
        }
        world
    }

    /// A request as the admin that must answer `status`; its JSON body, if any.
    async fn admin_call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        status: StatusCode,
    ) -> Value {
        self.app.manage(method, path, body, status).await
    }

    async fn send(&self, token: Option<&str>, call: &Call) -> Resp {
        let app = &self.app;
        if let Body::Upgrade = call.body {
            return self.handshake(token, &call.path).await;
        }
        let mut request = app.client.request(call.method.clone(), app.url(&call.path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request = match &call.body {
            Body::Json(body) => request.json(body),
            Body::Form(form) => request.form(form),
            Body::None | Body::Upgrade => request,
        };
        let r = request.send().await.expect("request sent");
        let (status, headers) = (r.status(), r.headers().clone());
        let text = r.text().await.expect("response body");
        Resp {
            status,
            headers,
            text,
        }
    }

    /// A WebSocket handshake: 101 when the server upgrades, else its answer.
    async fn handshake(&self, token: Option<&str>, path: &str) -> Resp {
        use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};
        let url = self.app.url(path).replacen("http://", "ws://", 1);
        let mut request = url.into_client_request().expect("a WebSocket URL");
        if let Some(token) = token {
            request.headers_mut().insert(
                "authorization",
                format!("Bearer {token}").parse().expect("a header value"),
            );
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((mut socket, response)) => {
                let _ = socket.close(None).await;
                Resp {
                    status: response.status(),
                    headers: response.headers().clone(),
                    text: String::new(),
                }
            }
            Err(tungstenite::Error::Http(response)) => Resp {
                status: response.status(),
                headers: response.headers().clone(),
                text: String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                    .into_owned(),
            },
            Err(e) => panic!("WebSocket handshake on {path}: {e}"),
        }
    }

    /// A POST as the admin that must answer `status`.
    async fn admin_post(&self, path: &str, body: Value, status: StatusCode) -> Value {
        self.admin_call(Method::POST, path, Some(body), status)
            .await
    }

    /// The objects of operation number `n`, made as the admin.
    async fn fixture(&self, n: usize, operation: &Operation) -> Fx {
        let ns = format!("op{n}_{}", operation.id);
        let role = format!("role-{n}");
        let ok = StatusCode::OK;
        let namespaces = "/v1/default/namespaces";
        let (tables, views) = (
            format!("{namespaces}/{ns}/tables"),
            format!("{namespaces}/{ns}/views"),
        );
        let table = |name: &str| json!({"name": name, "schema": simple_schema()});
        let view = |name: &str| json!({"name": name, "schema": simple_schema(), "view-version": view_version()});
        self.admin_post(namespaces, json!({"namespace": [ns]}), ok)
            .await;
        self.admin_post(namespaces, json!({"namespace": [ns, "child"]}), ok)
            .await;
        let t = self.admin_post(&tables, table("t"), ok).await;
        self.admin_post(&views, view("v"), ok).await;
        self.admin_post(
            &format!("/management/v1/warehouses/default/namespaces/{ns}/functions"),
            json!({"name": "f", "metadata": function_metadata()}),
            StatusCode::CREATED,
        )
        .await;
        let (plan_id, plan_task) = match operation.make {
            Make::SplitPlan => self.split_plan(&tables, &t["metadata"]).await,
            _ => ("no-plan".to_owned(), "no-plan:0".to_owned()),
        };
        // A table and a view whose metadata files outlive them, to register again.
        self.admin_post(&tables, table("gone_t"), ok).await;
        let gone_table = self
            .admin_call(
                Method::POST,
                &format!("{tables}/gone_t/unregister"),
                None,
                ok,
            )
            .await;
        let gone_view = self.admin_post(&views, view("gone_v"), ok).await;
        self.admin_call(
            Method::DELETE,
            &format!("{views}/gone_v"),
            None,
            StatusCode::NO_CONTENT,
        )
        .await;
        let created = StatusCode::CREATED;
        self.admin_post("/management/v1/roles", json!({"name": role}), created)
            .await;
        let principal = match operation.make {
            Make::Principal => {
                let name = format!("principal-{n}");
                self.admin_post("/management/v1/principals", json!({"name": name}), created)
                    .await;
                name
            }
            _ => NOBODY.to_owned(),
        };
        let api_key = match operation.make {
            Make::ApiKey => {
                let path = format!("/management/v1/principals/{NOBODY}/api-keys");
                let key = self.admin_post(&path, json!({}), created).await;
                key["id"].as_str().unwrap().to_owned()
            }
            _ => "0000000000000000".to_owned(),
        };
        let own_warehouse = format!("own-{n}");
        let profile = match operation.make {
            Make::Warehouse => {
                let location = format!("file://{}/{own_warehouse}", self.app.dir.path().display());
                let body = json!({"name": own_warehouse, "location": location});
                self.admin_post("/management/v1/warehouses", body, created)
                    .await;
                json!({})
            }
            Make::S3Warehouse => {
                let s3 = crate::common::s3::s3_env();
                let profile = s3.profile("none");
                let location = format!("s3://{}/{}", s3.bucket, crate::common::unique("routes"));
                let body = json!({"name": own_warehouse, "location": location, "storage": profile});
                self.admin_post("/management/v1/warehouses", body, created)
                    .await;
                profile
            }
            _ => json!({}),
        };
        let text = |v: &Value| v.as_str().expect("a metadata location").to_owned();
        Fx {
            ns,
            warehouse: "default".to_owned(),
            role,
            principal,
            api_key,
            table_location: text(&gone_table["metadata-location"]),
            view_location: text(&gone_view["metadata-location"]),
            plan_id,
            plan_task,
            fresh: format!("fresh_{n}"),
            client: self.nobody_client.clone(),
            data_dir: self.app.dir.path().display().to_string(),
            own_warehouse,
            profile,
        }
    }

    /// Gives table `t` (at `tables`/t, its `metadata` as created) a snapshot of two data
    /// files and plans a scan of it, which splits in two plan tasks (the server runs with
    /// `--scan-files-per-task 1`): the plan's id and its first task. The manifests are
    /// written here; the data files need not exist, planning reads manifests only.
    async fn split_plan(&self, tables: &str, metadata: &Value) -> (String, String) {
        use iceberg::io::{FileIOBuilder, LocalFsStorageFactory};
        use iceberg::spec::{
            DataContentType, DataFileBuilder, DataFileFormat, ManifestListWriter,
            ManifestWriterBuilder, PartitionSpec, Schema, Struct,
        };
        let location = metadata["location"].as_str().expect("a table location");
        let schema: Schema =
            serde_json::from_value(metadata["schemas"][0].clone()).expect("an Iceberg schema");
        let io = FileIOBuilder::new(std::sync::Arc::new(LocalFsStorageFactory)).build();
        let snapshot_id = next_snapshot_id();
        let output = |path: String| io.new_output(path).expect("an output file");
        let mut manifest = ManifestWriterBuilder::new(
            output(format!("{location}/metadata/{snapshot_id}-m0.avro")),
            Some(snapshot_id),
            std::sync::Arc::new(schema),
            PartitionSpec::unpartition_spec(),
        )
        .build_v2_data();
        for i in 0..2 {
            let file = DataFileBuilder::default()
                .content(DataContentType::Data)
                .file_format(DataFileFormat::Parquet)
                .file_path(format!("{location}/data/{i}.parquet"))
                .file_size_in_bytes(100)
                .record_count(1)
                .partition_spec_id(0)
                .partition(Struct::empty())
                .build()
                .expect("a data file");
            manifest.add_file(file, 1).expect("a manifest entry");
        }
        let manifest = manifest.write_manifest_file().await.expect("a manifest");
        // Where `append_commit` names the manifest list.
        let list = output(format!("{location}/metadata/snap-{snapshot_id}.avro"));
        let mut list =
            ManifestListWriter::v2(list.writer().await.expect("a writer"), snapshot_id, None, 1);
        list.add_manifests(std::iter::once(manifest))
            .expect("a manifest list");
        list.close().await.expect("the manifest list written");
        let ok = StatusCode::OK;
        self.admin_post(
            &format!("{tables}/t"),
            append_commit(metadata, snapshot_id),
            ok,
        )
        .await;
        let plan = self
            .admin_post(&format!("{tables}/t/plan"), json!({}), ok)
            .await;
        let first_task = plan["plan-tasks"][0].as_str();
        let text = |v: Option<&str>| {
            v.unwrap_or_else(|| panic!("a split plan: {plan}"))
                .to_owned()
        };
        (text(plan["plan-id"].as_str()), text(first_task))
    }

    /// Names for operation number `n` that name nothing: a namespace, role, principal, API
    /// key and warehouse that do not exist.
    fn ghost(&self, n: usize) -> Fx {
        Fx {
            ns: format!("ghost{n}"),
            warehouse: format!("ghost-warehouse-{n}"),
            role: format!("ghost-role-{n}"),
            principal: format!("ghost-principal-{n}"),
            api_key: "ffffffffffffffff".to_owned(),
            table_location: format!("file:///ghost{n}/metadata/00000-ghost.metadata.json"),
            view_location: format!("file:///ghost{n}/metadata/00000-ghost.metadata.json"),
            plan_id: "ghost-plan".to_owned(),
            plan_task: "ghost-plan:0".to_owned(),
            fresh: format!("ghost_fresh_{n}"),
            client: ("ghost-client".to_owned(), "ghost-secret".to_owned()),
            data_dir: self.app.dir.path().display().to_string(),
            own_warehouse: format!("ghost-warehouse-{n}"),
            profile: json!({}),
        }
    }

    /// Gives [`HOLDER`] exactly `grants` on the fixture's objects, through a new role.
    async fn hold(&self, role: &str, grants: &[(&str, On)], fx: &Fx) {
        let created = StatusCode::CREATED;
        self.admin_post("/management/v1/roles", json!({"name": role}), created)
            .await;
        let member = format!("/management/v1/roles/{role}/members/{HOLDER}");
        self.admin_call(Method::PUT, &member, None, StatusCode::NO_CONTENT)
            .await;
        for (privilege, on) in grants {
            let mut body = json!({"privilege": privilege, "warehouse": "default"});
            match on {
                On::Warehouse => {}
                On::Namespace => body["namespace"] = json!([fx.ns]),
                On::Child => body["namespace"] = json!([fx.ns, "child"]),
                On::Table => body["table"] = json!("t"),
                On::View => body["view"] = json!("v"),
            }
            if matches!(on, On::Table | On::View) {
                body["namespace"] = json!([fx.ns]);
            }
            let path = format!("/management/v1/roles/{role}/grants");
            self.admin_post(&path, body, StatusCode::NO_CONTENT).await;
        }
    }

    /// Sends `call` as [`HOLDER`] holding exactly `grants` (for this request only).
    async fn send_holding(&self, role: &str, grants: &[(&str, On)], fx: &Fx, call: &Call) -> Resp {
        self.hold(role, grants, fx).await;
        let r = self.send(Some(&self.holder), call).await;
        let path = format!("/management/v1/roles/{role}");
        self.admin_call(Method::DELETE, &path, None, StatusCode::NO_CONTENT)
            .await;
        r
    }
}

/// The privileges a grant can give.
const GRANTABLE: [&str; 4] = ["read", "write", "create", "drop"];

/// Every grantable privilege on the objects of `need` that `need` does not name (for an
/// admin's need: all of them, on the whole warehouse). Holding them must not do.
fn other_grants(need: Need) -> Vec<(&'static str, On)> {
    let mut out = Vec::new();
    let (objects, needed): (Vec<On>, &[(&str, On)]) = match need {
        Need::Open | Need::Token => return out,
        Need::Admin => (vec![On::Warehouse], &[]),
        Need::Grants(grants) => (grants.iter().map(|(_, on)| *on).collect(), grants),
    };
    for on in objects {
        for privilege in GRANTABLE {
            if !needed.contains(&(privilege, on)) && !out.contains(&(privilege, on)) {
                out.push((privilege, on));
            }
        }
    }
    out
}

fn privileges(need: Need) -> Vec<&'static str> {
    match need {
        Need::Open | Need::Token => Vec::new(),
        Need::Grants(grants) => grants.iter().map(|(p, _)| *p).collect(),
        Need::Admin => vec!["admin"],
    }
}

fn error_type(r: &Resp) -> Option<String> {
    serde_json::from_str::<Value>(&r.text)
        .ok()
        .and_then(|v| v["error"]["type"].as_str().map(str::to_owned))
}

/// What is wrong with a refusal of a principal without the need (`None`: nothing).
fn check_refusal(operation: &Operation, call: &Call, r: &Resp) -> Option<String> {
    let what = format!("{} {}", call.method, call.path);
    match operation.refused {
        Refused::Forbidden => {
            if r.status != StatusCode::FORBIDDEN {
                return Some(format!(
                    "{what}: expected 403, got {}: {}",
                    r.status, r.text
                ));
            }
            if call.method == Method::HEAD {
                return None;
            }
            let message = serde_json::from_str::<Value>(&r.text)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or_default();
            let named = privileges(operation.need)
                .iter()
                .any(|p| message.contains(&format!("'{p}'")));
            (error_type(r).as_deref() != Some("ForbiddenException") || !named).then(|| {
                format!(
                    "{what}: a 403 ForbiddenException naming the missing privilege, got {}",
                    r.text
                )
            })
        }
        Refused::Filtered(key) => {
            let shown = serde_json::from_str::<Value>(&r.text)
                .ok()
                .and_then(|v| v[key].as_array().map(Vec::len));
            (r.status != StatusCode::OK || shown != Some(0)).then(|| {
                format!(
                    "{what}: expected 200 with nothing under '{key}', got {}: {}",
                    r.status, r.text
                )
            })
        }
    }
}

/// Checks one operation; returns what is wrong.
async fn check(world: &World, n: usize, operation: &Operation) -> Vec<String> {
    let mut problems = Vec::new();
    let fx = world.fixture(n, operation).await;
    let call = (operation.call)(&fx);
    let what = format!("{} ({} {})", operation.id, call.method, call.path);
    let ok = StatusCode::from_u16(operation.ok).unwrap();
    let expect_ok = |r: &Resp, who: &str| {
        (r.status != ok).then(|| {
            format!(
                "{what} as {who}: expected {ok}, got {}: {}",
                r.status, r.text
            )
        })
    };

    // Without a token.
    let r = world.send(None, &call).await;
    if let Need::Open = operation.need {
        problems.extend(expect_ok(&r, "anyone without a token"));
        return problems;
    }
    let challenge = r
        .headers
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer"));
    let kind_ok = call.method == Method::HEAD
        || matches!(call.body, Body::Upgrade)
        || error_type(&r).as_deref() == Some("NotAuthorizedException");
    if r.status != StatusCode::UNAUTHORIZED || !challenge || !kind_ok {
        problems.push(format!(
            "{what} without a token: expected 401 NotAuthorizedException with a Bearer challenge, got {} {:?}: {}",
            r.status,
            r.headers.get("www-authenticate"),
            r.text
        ));
    }

    // A principal without grants, on the fixture's objects and on objects that do not exist.
    if let Need::Token = operation.need {
        problems.extend(expect_ok(
            &world.send(Some(&world.nobody), &call).await,
            NOBODY,
        ));
    } else {
        let r = world.send(Some(&world.nobody), &call).await;
        problems.extend(check_refusal(operation, &call, &r).map(|p| format!("{p} (as {NOBODY})")));
        let ghost = (operation.call)(&world.ghost(n));
        let r = world.send(Some(&world.nobody), &ghost).await;
        problems.extend(
            check_refusal(operation, &ghost, &r)
                .map(|p| format!("{p} (as {NOBODY}, on objects that do not exist)")),
        );
    }

    // Every other privilege on the same objects: refused as without grants.
    let others = other_grants(operation.need);
    if !others.is_empty() {
        let r = world
            .send_holding(&format!("others-{n}"), &others, &fx, &call)
            .await;
        problems.extend(
            check_refusal(operation, &call, &r)
                .map(|p| format!("{p} (as {HOLDER} holding the other privileges {others:?})")),
        );
    }

    // The least privilege.
    let r = match operation.need {
        Need::Open => unreachable!("answered above"),
        Need::Token => world.send(Some(&world.holder), &call).await,
        Need::Admin => world.send(Some(&world.admin), &call).await,
        Need::Grants(grants) => {
            world
                .send_holding(&format!("least-{n}"), grants, &fx, &call)
                .await
        }
    };
    let who = match operation.need {
        Need::Admin => "an admin".to_owned(),
        need => format!("{HOLDER} holding {need:?}"),
    };
    problems.extend(expect_ok(&r, &who));
    if let Refused::Filtered(key) = operation.refused {
        let shown = serde_json::from_str::<Value>(&r.text)
            .ok()
            .and_then(|v| v[key].as_array().map(Vec::len));
        if r.status == ok && shown.unwrap_or(0) == 0 {
            problems.push(format!(
                "{what} as {who}: the list shows nothing: {}",
                r.text
            ));
        }
    }
    problems
}

async fn every_route_follows_the_rule(backend: Backend) {
    let world = World::start(backend).await;
    let mut problems = check_table_against_document(&world.ghost(0));
    for (n, operation) in OPERATIONS.iter().enumerate() {
        problems.extend(check(&world, n, operation).await);
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

both_backends!(every_route_follows_the_rule);
