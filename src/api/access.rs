//! The management API of access: principals, roles, role members and grants. Every route
//! needs an admin principal.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::{ApiError, ApiResult, json};
use super::extract::{ApiJson, ApiPath};
use crate::auth::principals;
use crate::catalog::{Caller, CatalogError};
use crate::catalog::{GrantObject, GrantRow, ObjectKind};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/principals", get(list_principals).post(create_principal))
        .route(
            "/principals/{name}",
            axum::routing::delete(delete_principal),
        )
        .route("/principals/{name}/rotate-secret", post(rotate_secret))
        .route("/principals/{name}/api-keys", post(create_api_key))
        .route("/api-keys", get(list_api_keys))
        .route("/api-keys/{id}", axum::routing::delete(revoke_api_key))
        .route("/roles", get(list_roles).post(create_role))
        .route("/roles/{role}", axum::routing::delete(delete_role))
        .route(
            "/roles/{role}/members/{principal}",
            put(add_member).delete(remove_member),
        )
        .route("/roles/{role}/grants", get(list_grants).post(grant))
        .route("/roles/{role}/revoke", post(revoke))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreatePrincipal {
    name: String,
    #[serde(default)]
    admin: bool,
    /// A principal of the OpenID Connect provider: no secret is made or returned.
    #[serde(default)]
    external: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct CredentialsBody {
    name: String,
    client_id: String,
    client_secret: String,
}

impl From<principals::Credentials> for CredentialsBody {
    fn from(c: principals::Credentials) -> Self {
        Self {
            name: c.name,
            client_id: c.client_id,
            client_secret: c.client_secret,
        }
    }
}

/// A failure of the principals' functions: missing ones are 404, taken names 409, invalid
/// input 400, the rest 503 (the database).
fn principal_error(err: principals::PrincipalError) -> ApiError {
    use principals::PrincipalError as E;
    ApiError::from(match err {
        E::Invalid(msg) => CatalogError::BadRequest(msg),
        E::NotFound(msg) => CatalogError::NotFound(msg),
        E::AlreadyExists(msg) => CatalogError::AlreadyExists(msg),
        E::Failed(msg) => CatalogError::Unavailable(msg),
    })
}

async fn create_principal(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<CreatePrincipal>,
) -> ApiResult<Response> {
    state.catalog.authorize_admin(&caller).await?;
    let principals = state.auth.principals();
    if request.external {
        let created = principals
            .create_external(&request.name, request.admin)
            .await
            .map_err(principal_error)?;
        return Ok(json(StatusCode::CREATED, &PrincipalBody::from(created)));
    }
    let created = principals
        .create(&request.name, request.admin)
        .await
        .map_err(principal_error)?;
    Ok(json(StatusCode::CREATED, &CredentialsBody::from(created)))
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct PrincipalBody {
    name: String,
    client_id: String,
    admin: bool,
    external: bool,
    created_at_ms: i64,
}

impl From<principals::PrincipalRow> for PrincipalBody {
    fn from(p: principals::PrincipalRow) -> Self {
        Self {
            name: p.name,
            client_id: p.client_id,
            admin: p.admin,
            external: p.external,
            created_at_ms: p.created_at_ms,
        }
    }
}

#[derive(Serialize)]
struct PrincipalList {
    principals: Vec<PrincipalBody>,
}

async fn list_principals(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    state.catalog.authorize_admin(&caller).await?;
    let rows = state
        .auth
        .principals()
        .list()
        .await
        .map_err(principal_error)?;
    let principals = rows.into_iter().map(PrincipalBody::from).collect();
    Ok(json(StatusCode::OK, &PrincipalList { principals }))
}

async fn delete_principal(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Response> {
    state.catalog.authorize_admin(&caller).await?;
    state
        .auth
        .principals()
        .delete(&name)
        .await
        .map_err(principal_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Response> {
    state.catalog.authorize_admin(&caller).await?;
    let rotated = state
        .auth
        .principals()
        .rotate_secret(&name)
        .await
        .map_err(principal_error)?;
    Ok(json(StatusCode::OK, &CredentialsBody::from(rotated)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRole {
    name: String,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct RoleBody {
    name: String,
    members: Vec<String>,
    created_at_ms: i64,
}

#[derive(Serialize)]
struct RoleList {
    roles: Vec<RoleBody>,
}

async fn create_role(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<CreateRole>,
) -> ApiResult<Response> {
    state.catalog.create_role(&caller, &request.name).await?;
    Ok(StatusCode::CREATED.into_response())
}

async fn list_roles(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    let roles = state
        .catalog
        .list_roles(&caller)
        .await?
        .into_iter()
        .map(|r| RoleBody {
            name: r.name,
            members: r.members,
            created_at_ms: r.created_at_ms,
        })
        .collect();
    Ok(json(StatusCode::OK, &RoleList { roles }))
}

async fn delete_role(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(role): ApiPath<String>,
) -> ApiResult<Response> {
    state.catalog.delete_role(&caller, &role).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((role, principal)): ApiPath<(String, String)>,
) -> ApiResult<Response> {
    set_member(&state, &caller, &role, &principal, true).await
}

async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((role, principal)): ApiPath<(String, String)>,
) -> ApiResult<Response> {
    set_member(&state, &caller, &role, &principal, false).await
}

async fn set_member(
    state: &AppState,
    caller: &Caller,
    role: &str,
    principal: &str,
    member: bool,
) -> ApiResult<Response> {
    state
        .catalog
        .set_role_member(caller, role, principal, member)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A grant as the API shows and takes it: a privilege on a warehouse, or on a namespace in
/// it, or on a table or view in a namespace.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantBody {
    privilege: String,
    warehouse: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    table: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    view: Option<String>,
}

impl GrantBody {
    fn object(&self) -> ApiResult<GrantObject> {
        let object = match (&self.namespace, &self.table, &self.view) {
            (None, None, None) => GrantObject::Warehouse,
            (Some(ns), None, None) => GrantObject::Namespace(ns.clone()),
            (Some(ns), Some(t), None) => {
                GrantObject::Object(ObjectKind::Table, ns.clone(), t.clone())
            }
            (Some(ns), None, Some(v)) => {
                GrantObject::Object(ObjectKind::View, ns.clone(), v.clone())
            }
            (None, _, _) => {
                return Err(ApiError::bad_request(
                    "a grant on a table or view names its namespace too",
                ));
            }
            (Some(_), Some(_), Some(_)) => {
                return Err(ApiError::bad_request(
                    "a grant is on a table or on a view, not both",
                ));
            }
        };
        if let GrantObject::Namespace(ns) | GrantObject::Object(_, ns, _) = &object
            && (ns.is_empty() || ns.iter().any(String::is_empty))
        {
            return Err(ApiError::bad_request(
                "the namespace of a grant has an empty level",
            ));
        }
        Ok(object)
    }
}

#[derive(Serialize)]
struct GrantList {
    grants: Vec<GrantBody>,
}

async fn change_grant(
    state: &AppState,
    caller: &Caller,
    role: &str,
    body: &GrantBody,
    grant: bool,
) -> ApiResult<Response> {
    let object = body.object()?;
    state
        .catalog
        .change_grant(
            caller,
            role,
            &body.privilege,
            Some(&body.warehouse),
            object,
            grant,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn grant(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(role): ApiPath<String>,
    ApiJson(body): ApiJson<GrantBody>,
) -> ApiResult<Response> {
    change_grant(&state, &caller, &role, &body, true).await
}

async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(role): ApiPath<String>,
    ApiJson(body): ApiJson<GrantBody>,
) -> ApiResult<Response> {
    change_grant(&state, &caller, &role, &body, false).await
}

async fn list_grants(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(role): ApiPath<String>,
) -> ApiResult<Response> {
    let rows: Vec<GrantRow> = state.catalog.role_grants(&caller, &role).await?;
    let warehouses = state.catalog.list_warehouses(&caller).await?;
    let name_of = |id: &str| {
        warehouses
            .iter()
            .find(|w| w.id == id)
            .map_or_else(|| id.to_owned(), |w| w.name.clone())
    };
    let grants = rows
        .into_iter()
        .map(|g| {
            let (namespace, table, view) = match g.object {
                GrantObject::Warehouse => (None, None, None),
                GrantObject::Namespace(ns) => (Some(ns), None, None),
                GrantObject::Object(ObjectKind::Table, ns, t) => (Some(ns), Some(t), None),
                GrantObject::Object(ObjectKind::View, ns, v) => (Some(ns), None, Some(v)),
            };
            GrantBody {
                privilege: g.privilege,
                warehouse: name_of(&g.warehouse_id),
                namespace,
                table,
                view,
            }
        })
        .collect();
    Ok(json(StatusCode::OK, &GrantList { grants }))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct CreateApiKey {
    /// How long the key is valid (`90d`, `12h`); without it, until revoked.
    expires_in: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct NewApiKeyBody {
    id: String,
    key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at_ms: Option<i64>,
}

async fn create_api_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(request): ApiJson<CreateApiKey>,
) -> ApiResult<Response> {
    state.catalog.authorize_admin(&caller).await?;
    let expires_in = request
        .expires_in
        .as_deref()
        .map(|d| {
            humantime::parse_duration(d)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "expires-in '{}' is not a positive duration such as 90d or 12h",
                        d.escape_debug()
                    ))
                })
        })
        .transpose()?;
    let key = state
        .auth
        .principals()
        .create_api_key(&name, expires_in)
        .await
        .map_err(principal_error)?;
    Ok(json(
        StatusCode::CREATED,
        &NewApiKeyBody {
            id: key.id,
            key: key.key,
            expires_at_ms: key.expires_at_ms,
        },
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiKeyQuery {
    principal: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct ApiKeyBody {
    id: String,
    principal: String,
    created_at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_used_at_ms: Option<i64>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct ApiKeyList {
    api_keys: Vec<ApiKeyBody>,
}

async fn list_api_keys(
    State(state): State<AppState>,
    caller: Caller,
    super::extract::ApiQuery(query): super::extract::ApiQuery<ApiKeyQuery>,
) -> ApiResult<Response> {
    state.catalog.authorize_admin(&caller).await?;
    let rows = state
        .auth
        .principals()
        .list_api_keys(query.principal.as_deref())
        .await
        .map_err(principal_error)?;
    let api_keys = rows
        .into_iter()
        .map(|k| ApiKeyBody {
            id: k.id,
            principal: k.principal_name,
            created_at_ms: k.created_at_ms,
            expires_at_ms: k.expires_at_ms,
            last_used_at_ms: k.last_used_at_ms,
        })
        .collect();
    Ok(json(StatusCode::OK, &ApiKeyList { api_keys }))
}

async fn revoke_api_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    state.catalog.authorize_admin(&caller).await?;
    state
        .auth
        .principals()
        .revoke_api_key(&id)
        .await
        .map_err(principal_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
