//! Table endpoints.

use std::hash::{Hash, Hasher};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use iceberg::TableIdent;
use iceberg_catalog_rest::{
    CommitTableRequest, CreateTableRequest, ListTablesResponse, RegisterTableRequest,
    RenameTableRequest,
};
use serde::Deserialize;

use super::AppState;
use super::error::{ApiError, ApiResult, json, json_response};
use super::extract::{ApiJson, ApiJsonWithBody, ApiPath, ApiQuery, parse_namespace};
use super::idempotency::Mutation;
use crate::catalog::Caller;
use crate::catalog::{
    Catalog, DropTable, PageRequest, Paged, SignRequest, SignedRequest, SummaryOrder, TableAccess,
    TableVersion, Warehouse,
};

#[derive(Deserialize)]
pub(super) struct NamespacePath {
    pub prefix: Option<String>,
    pub namespace: String,
}

#[derive(Deserialize)]
pub(super) struct TablePath {
    pub prefix: Option<String>,
    pub namespace: String,
    pub table: String,
}

#[derive(Deserialize)]
pub(super) struct PrefixPath {
    pub prefix: Option<String>,
}

impl TablePath {
    pub(super) fn ident(&self) -> ApiResult<TableIdent> {
        self.object_ident("NoSuchTableException", "table")
    }

    pub(super) fn view_ident(&self) -> ApiResult<TableIdent> {
        self.object_ident("NoSuchViewException", "view")
    }

    /// An object in the empty namespace does not exist (rather than being a bad request).
    fn object_ident(&self, not_found: &'static str, what: &str) -> ApiResult<TableIdent> {
        if self.namespace.is_empty() {
            return Err(ApiError::not_found(
                not_found,
                format!(
                    "{what} '{}' does not exist: the namespace is empty",
                    self.table
                ),
            ));
        }
        Ok(TableIdent::new(
            parse_namespace(&self.namespace)?,
            self.table.clone(),
        ))
    }
}

#[derive(Deserialize)]
pub(super) struct ListQuery {
    #[serde(rename = "pageToken")]
    page_token: Option<String>,
    #[serde(rename = "pageSize")]
    page_size: Option<usize>,
}

impl ListQuery {
    pub(super) fn page(self) -> PageRequest {
        PageRequest {
            token: self.page_token,
            size: self.page_size,
        }
    }
}

#[derive(Deserialize)]
pub struct LoadQuery {
    snapshots: Option<String>,
}

#[derive(Deserialize)]
pub struct DropQuery {
    /// `true` or `false` in any case: Python clients send `True`/`False`.
    #[serde(rename = "purgeRequested")]
    purge_requested: Option<String>,
}

impl DropQuery {
    fn mode(&self) -> ApiResult<DropTable> {
        match self
            .purge_requested
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("false") => Ok(DropTable::KeepFiles),
            Some("true") => Ok(DropTable::Purge),
            Some(other) => Err(ApiError::bad_request(format!(
                "purgeRequested must be true or false, not '{other}'"
            ))),
        }
    }
}

/// Which snapshots a load returns.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Snapshots {
    All = 0,
    Refs = 1,
}

impl Snapshots {
    fn parse(raw: Option<&str>) -> ApiResult<Self> {
        match raw {
            None | Some("all") => Ok(Self::All),
            Some("refs") => Ok(Self::Refs),
            Some(other) => Err(ApiError::bad_request(format!(
                "snapshots must be 'all' or 'refs', not '{other}'"
            ))),
        }
    }
}

/// `{"metadata-location": ..., "metadata": ..., "config": {...}, "storage-credentials":
/// [...]}`, assembled around metadata JSON that is already serialized (the stored document),
/// so a load never re-serializes. `access: None` leaves out `config` (a commit's response).
pub(super) fn table_result_body(
    metadata_location: Option<&str>,
    metadata_json: &str,
    access: Option<&TableAccess>,
) -> Vec<u8> {
    let location = serde_json::to_string(&metadata_location).expect("strings serialize");
    let mut body = Vec::with_capacity(metadata_json.len() + location.len() + 64);
    body.extend_from_slice(b"{\"metadata-location\":");
    body.extend_from_slice(location.as_bytes());
    body.extend_from_slice(b",\"metadata\":");
    body.extend_from_slice(metadata_json.as_bytes());
    match access {
        Some(access) => write_access(&mut body, access),
        None => body.push(b'}'),
    }
    body
}

/// `{"metadata-location": ..., "metadata": ...`: the part of a load result that is the same
/// for every caller.
fn table_result_head(metadata_location: &str, metadata_json: &str) -> Vec<u8> {
    let mut body = table_result_body(Some(metadata_location), metadata_json, None);
    body.pop(); // the closing brace: the caller's part follows
    body
}

/// `,"config": {...}, "storage-credentials": [...]}`: the part of a load result that is the
/// caller's own.
fn table_result_tail(access: &TableAccess) -> Vec<u8> {
    let mut body = Vec::with_capacity(1024);
    write_access(&mut body, access);
    body
}

/// `,"config": {...}, "storage-credentials": [...]}` (the entry only when there are some).
fn write_access(body: &mut Vec<u8>, access: &TableAccess) {
    body.extend_from_slice(b",\"config\":");
    write_config(body, &access.config);
    if !access.credentials.is_empty() {
        body.extend_from_slice(b",\"storage-credentials\":");
        write_credentials(body, access);
    }
    body.push(b'}');
}

/// A JSON object of string entries, by key (a repeated key: the last one).
fn write_config(body: &mut Vec<u8>, entries: &[(&str, String)]) {
    let by_key: std::collections::BTreeMap<&str, &String> =
        entries.iter().map(|(k, v)| (*k, v)).collect();
    serde_json::to_writer(&mut *body, &by_key).expect("string maps serialize");
}

/// A response body sent in two parts (a head shared by every caller, kept with the table's
/// version, and the caller's own tail), so that the head is never copied; its length is
/// known, so it goes out with a `Content-Length`, both parts in one vectored write.
struct TwoPartBody {
    parts: [Option<bytes::Bytes>; 2],
}

impl http_body::Body for TwoPartBody {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        let next = self.parts.iter_mut().find_map(Option::take);
        std::task::Poll::Ready(next.map(|part| Ok(http_body::Frame::data(part))))
    }

    fn is_end_stream(&self) -> bool {
        self.parts.iter().all(Option::is_none)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        let len = self.parts.iter().flatten().map(|p| p.len() as u64).sum();
        http_body::SizeHint::with_exact(len)
    }
}

/// `[{"prefix": ..., "config": {...}}]`
fn write_credentials(body: &mut Vec<u8>, access: &TableAccess) {
    body.push(b'[');
    for (i, credential) in access.credentials.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(b"{\"prefix\":");
        serde_json::to_writer(&mut *body, &credential.prefix).expect("strings serialize");
        body.extend_from_slice(b",\"config\":");
        write_config(body, &credential.config);
        body.push(b'}');
    }
    body.push(b']');
}

/// The first rendering slot of the heads of load results (after the whole ones, one per
/// snapshot mode).
const HEAD_SLOTS: usize = 2;

/// A load result: the version's metadata and what the caller gets to reach its files.
async fn load_result(
    catalog: &Catalog,
    caller: &Caller,
    warehouse: &Warehouse,
    ident: &TableIdent,
    version: &TableVersion,
) -> ApiResult<Response> {
    let access = catalog
        .table_access(caller, warehouse, ident, version)
        .await?;
    Ok(json_response(
        StatusCode::OK,
        table_result_body(
            Some(&version.metadata_location),
            &version.metadata_json,
            Some(&access),
        ),
    ))
}

fn commit_result(version: &TableVersion) -> Response {
    json_response(
        StatusCode::OK,
        table_result_body(
            Some(&version.metadata_location),
            &version.metadata_json,
            None,
        ),
    )
}

/// A strong tag per metadata version and snapshot mode.
fn etag(metadata_location: &str, mode: Snapshots) -> String {
    let mut hasher = std::hash::DefaultHasher::new();
    metadata_location.hash(&mut hasher);
    mode.hash(&mut hasher);
    format!("\"{:016x}\"", hasher.finish())
}

fn matches_if_none_match(headers: &HeaderMap, tag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == tag || t == "*")
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<NamespacePath>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Response> {
    let warehouse = state.catalog.warehouse(path.prefix.as_deref()).await?;
    let namespace = parse_namespace(&path.namespace)?;
    let paged = state
        .catalog
        .list_tables(&caller, &warehouse, &namespace, &query.page())
        .await?;
    Ok(identifiers_page(paged))
}

/// A page of table or view identifiers, as the spec's list response.
pub(super) fn identifiers_page(paged: Paged<TableIdent>) -> Response {
    json(
        StatusCode::OK,
        &ListTablesResponse {
            identifiers: paged.items,
            next_page_token: paged.next_page_token,
        },
    )
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<NamespacePath>,
    mutation: Mutation,
    ApiJson(request): ApiJson<CreateTableRequest>,
) -> ApiResult<Response> {
    let warehouse = state.catalog.warehouse(path.prefix.as_deref()).await?;
    let namespace = parse_namespace(&path.namespace)?;
    let catalog = &state.catalog;
    let caller = &caller;
    let ident = TableIdent::new(namespace.clone(), request.name.clone());
    // A staged create changes nothing, so it needs no key.
    let mutation = if request.stage_create == Some(true) {
        mutation.without_key()
    } else {
        mutation
    };
    let warehouse = &warehouse;
    mutation
        .run(
            StatusCode::OK,
            |record| async move {
                let created = catalog
                    .create_table(
                        &caller.with_idempotency(record),
                        warehouse,
                        &namespace,
                        request,
                    )
                    .await?;
                Ok(json_response(
                    StatusCode::OK,
                    table_result_body(
                        created.metadata_location.as_deref(),
                        &created.metadata_json,
                        Some(&created.access),
                    ),
                ))
            },
            || replay(catalog, caller, warehouse, &ident, true),
        )
        .await
}

/// The answer to a replayed mutation: the table as it is now, as a load result (with what
/// the caller gets to reach its files) or as a commit result.
async fn replay(
    catalog: &Catalog,
    caller: &Caller,
    warehouse: &Warehouse,
    ident: &TableIdent,
    as_load: bool,
) -> ApiResult<Response> {
    let version = catalog.load_table(caller, warehouse, ident).await?;
    if as_load {
        load_result(catalog, caller, warehouse, ident, &version).await
    } else {
        Ok(commit_result(&version))
    }
}

pub async fn load(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<TablePath>,
    ApiQuery(query): ApiQuery<LoadQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let mode = Snapshots::parse(query.snapshots.as_deref())?;
    let warehouse = state.catalog.warehouse(path.prefix.as_deref()).await?;
    let ident = path.ident()?;
    let head = state
        .catalog
        .table_head(&caller, &warehouse, &ident)
        .await?;
    let tag = etag(&head.metadata_location, mode);
    let mut response = if matches_if_none_match(&headers, &tag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let version = state.catalog.table_version(&head).await?;
        // The version may be newer than `head` if a commit landed in between; tag what we send.
        let tag_of_body = etag(&version.metadata_location, mode);
        let metadata = match mode {
            Snapshots::All => version.metadata_json.as_str(),
            Snapshots::Refs => version.refs_only_json()?,
        };
        let mut response = if state.catalog.hands_out_access(&warehouse) {
            // Credentials differ per caller: the part before them is kept with the version.
            let access = state
                .catalog
                .table_access(&caller, &warehouse, &ident, &version)
                .await?;
            let head = version.rendered(HEAD_SLOTS + mode as usize, || {
                table_result_head(&version.metadata_location, metadata).into()
            });
            let tail = table_result_tail(&access).into();
            json_response(
                StatusCode::OK,
                axum::body::Body::new(TwoPartBody {
                    parts: [Some(head), Some(tail)],
                }),
            )
        } else {
            // Local files: the same body for every caller, kept whole with the version.
            let body = version.rendered(mode as usize, || {
                table_result_body(
                    Some(&version.metadata_location),
                    metadata,
                    Some(&TableAccess::default()),
                )
                .into()
            });
            json_response(StatusCode::OK, body)
        };
        response.headers_mut().insert(
            header::ETAG,
            HeaderValue::from_str(&tag_of_body).expect("hex tags are valid headers"),
        );
        return Ok(response);
    };
    response.headers_mut().insert(
        header::ETAG,
        HeaderValue::from_str(&tag).expect("hex tags are valid headers"),
    );
    Ok(response)
}

pub async fn exists(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<TablePath>,
) -> ApiResult<Response> {
    let warehouse = state.catalog.warehouse(path.prefix.as_deref()).await?;
    state
        .catalog
        .table_head(&caller, &warehouse, &path.ident()?)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn commit(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<TablePath>,
    mutation: Mutation,
    ApiJsonWithBody(request, body): ApiJsonWithBody<CommitTableRequest>,
) -> ApiResult<Response> {
    let order = &SummaryOrder::of_commit(&body);
    let warehouse = state.catalog.warehouse(path.prefix.as_deref()).await?;
    let ident = &path.ident()?;
    let catalog = &state.catalog;
    let caller = &caller;
    let warehouse = &warehouse;
    mutation
        .run(
            StatusCode::OK,
            |record| async move {
                let version = catalog
                    .commit_table(
                        &caller.with_idempotency(record),
                        warehouse,
                        ident,
                        request,
                        order,
                    )
                    .await?;
                Ok(commit_result(&version))
            },
            || replay(catalog, caller, warehouse, ident, false),
        )
        .await
}

pub async fn drop(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<TablePath>,
    ApiQuery(query): ApiQuery<DropQuery>,
    mutation: Mutation,
) -> ApiResult<Response> {
    let warehouse = state.catalog.warehouse(path.prefix.as_deref()).await?;
    let ident = path.ident()?;
    let mode = query.mode()?;
    let catalog = &state.catalog;
    let caller = &caller;
    let warehouse = &warehouse;
    mutation
        .run_no_content(|record| async move {
            catalog
                .drop_table(&caller.with_idempotency(record), warehouse, &ident, mode)
                .await
                .map(|_| ())
        })
        .await
}

/// Removes the table from the catalog, keeps its files, and answers with its last version.
pub async fn unregister(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<TablePath>,
    mutation: Mutation,
) -> ApiResult<Response> {
    let warehouse = state.catalog.warehouse(path.prefix.as_deref()).await?;
    let ident = path.ident()?;
    let catalog = &state.catalog;
    let caller = &caller;
    let key = mutation.key().map(str::to_owned);
    let (warehouse, ident) = (&warehouse, &ident);
    mutation
        .run(
            StatusCode::OK,
            |record| async move {
                let version = catalog
                    .unregister_table(&caller.with_idempotency(record), warehouse, ident)
                    .await?;
                let body = table_result_body(
                    Some(&version.metadata_location),
                    &version.metadata_json,
                    None,
                );
                if let Some(key) = &key {
                    // The table is gone: a replay can only answer from the stored response.
                    let text = String::from_utf8_lossy(&body).into_owned();
                    if let Err(e) = catalog.record_response(key, &text).await {
                        tracing::warn!(error = %e, "could not store the response of an unregister");
                    }
                }
                Ok(json_response(StatusCode::OK, body))
            },
            || async {
                Err(crate::catalog::CatalogError::NoSuchTable(format!(
                    "table '{ident}' was unregistered"
                ))
                .into())
            },
        )
        .await
}

#[derive(Deserialize)]
pub struct CommitTransactionRequest {
    #[serde(rename = "table-changes")]
    table_changes: Vec<CommitTableRequest>,
}

/// Commits changes to several tables atomically.
pub async fn commit_transaction(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<PrefixPath>,
    mutation: Mutation,
    ApiJsonWithBody(request, body): ApiJsonWithBody<CommitTransactionRequest>,
) -> ApiResult<Response> {
    let order = &SummaryOrder::of_commit(&body);
    let warehouse = state.catalog.warehouse(path.prefix.as_deref()).await?;
    let catalog = &state.catalog;
    let caller = &caller;
    let warehouse = &warehouse;
    mutation
        .run_no_content(|record| async move {
            catalog
                .commit_transaction(
                    &caller.with_idempotency(record),
                    warehouse,
                    request.table_changes,
                    order,
                )
                .await
        })
        .await
}

pub async fn rename(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<PrefixPath>,
    mutation: Mutation,
    ApiJson(request): ApiJson<RenameTableRequest>,
) -> ApiResult<Response> {
    let warehouse = state.catalog.warehouse(path.prefix.as_deref()).await?;
    let catalog = &state.catalog;
    let caller = &caller;
    let warehouse = &warehouse;
    mutation
        .run_no_content(|record| async move {
            catalog
                .rename_table(
                    &caller.with_idempotency(record),
                    warehouse,
                    &request.source,
                    &request.destination,
                )
                .await
        })
        .await
}

pub async fn register(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<NamespacePath>,
    mutation: Mutation,
    ApiJson(request): ApiJson<RegisterTableRequest>,
) -> ApiResult<Response> {
    let warehouse = state.catalog.warehouse(path.prefix.as_deref()).await?;
    let namespace = parse_namespace(&path.namespace)?;
    let ident = &TableIdent::new(namespace.clone(), request.name.clone());
    let catalog = &state.catalog;
    let caller = &caller;
    let warehouse = &warehouse;
    mutation
        .run(
            StatusCode::OK,
            |record| async move {
                let version = catalog
                    .register_table(
                        &caller.with_idempotency(record),
                        warehouse,
                        &namespace,
                        request,
                    )
                    .await?;
                load_result(catalog, caller, warehouse, ident, &version).await
            },
            || replay(catalog, caller, warehouse, ident, true),
        )
        .await
}

/// Storage credentials of a table (empty for local files); the table must exist.
pub async fn load_credentials(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<TablePath>,
) -> ApiResult<Response> {
    let warehouse = state.catalog.warehouse(path.prefix.as_deref()).await?;
    let ident = path.ident()?;
    let version = state
        .catalog
        .load_table(&caller, &warehouse, &ident)
        .await?;
    let access = state
        .catalog
        .table_access(&caller, &warehouse, &ident, &version)
        .await?;
    let mut body = b"{\"storage-credentials\":".to_vec();
    write_credentials(&mut body, &access);
    body.push(b'}');
    Ok(json_response(StatusCode::OK, body))
}

/// Signs a client's S3 request for the table's objects (warehouses in `remote-signing`
/// mode): 403 unless it stays inside the table and the caller may do what it does.
pub async fn sign(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<TablePath>,
    ApiJson(request): ApiJson<SignRequest>,
) -> ApiResult<Response> {
    let warehouse = state.catalog.warehouse(path.prefix.as_deref()).await?;
    let ident = path.ident()?;
    let signed = state
        .catalog
        .sign_request(&caller, &warehouse, &ident, &request)
        .await?;
    Ok(signed_response(&signed))
}

/// The legacy signing path (`POST /v1/aws/s3/sign`, the default of Java's signer client and
/// PyIceberg): the table is named by the signer properties or found from the request's
/// key, then signed exactly as by [`sign`].
pub async fn sign_legacy(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<SignRequest>,
) -> ApiResult<Response> {
    let signed = state
        .catalog
        .sign_request_by_location(&caller, &request)
        .await?;
    Ok(signed_response(&signed))
}

/// A signing answer, never to be cached: Java's signer client reuses an answer marked
/// `Cache-Control: private` for any request to the same URI (a batch delete's signature
/// binds its body, and a cached answer would outlive the caller's privileges).
fn signed_response(signed: &SignedRequest) -> Response {
    let mut response = json(StatusCode::OK, signed);
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-cache"),
    );
    response
}

/// Metrics reports are accepted, logged and counted; they change nothing in the catalog.
pub async fn report_metrics(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<TablePath>,
    ApiJson(report): ApiJson<serde_json::Value>,
) -> ApiResult<Response> {
    let warehouse = state.catalog.warehouse(path.prefix.as_deref()).await?;
    let ident = path.ident()?;
    state
        .catalog
        .table_head(&caller, &warehouse, &ident)
        .await?;
    let kind = report
        .get("report-type")
        .and_then(|v| v.as_str())
        .ok_or_else(|| ApiError::bad_request("a metrics report needs a 'report-type'"))?
        .to_owned();
    state.catalog.metrics().metrics_reports.inc();
    tracing::info!(table = %ident, report_type = %kind, snapshot_id = ?report.get("snapshot-id"), "metrics report");
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::StorageCredential;

    #[tokio::test]
    async fn a_load_in_two_parts_is_the_whole_body() {
        use http_body_util::BodyExt;
        let access = TableAccess {
            config: vec![
                ("s3.region", "us-east-1".into()),
                ("client.region", "us-east-1".into()),
                ("s3.region", "eu-west-1".into()),
                ("quote\"d", "back\\slash".into()),
            ],
            credentials: vec![StorageCredential {
                prefix: "s3://b/t".into(),
                config: vec![("s3.access-key-id", "AK".into())],
            }],
        };
        let metadata = r#"{"format-version":2,"location":"s3://b/t"}"#;
        let whole = table_result_body(Some("s3://b/t/m.json"), metadata, Some(&access));
        let body = TwoPartBody {
            parts: [
                Some(table_result_head("s3://b/t/m.json", metadata).into()),
                Some(table_result_tail(&access).into()),
            ],
        };
        assert_eq!(
            http_body::Body::size_hint(&body).exact(),
            Some(whole.len() as u64)
        );
        let sent = body.collect().await.unwrap().to_bytes();
        assert_eq!(sent.as_ref(), whole.as_slice());
        let parsed: serde_json::Value = serde_json::from_slice(&sent).unwrap();
        // A repeated key is written once, with its last value; keys in order.
        assert_eq!(parsed["config"]["s3.region"], "eu-west-1", "{parsed}");
        assert_eq!(parsed["config"]["quote\"d"], "back\\slash", "{parsed}");
        let keys: Vec<&String> = parsed["config"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["client.region", "quote\"d", "s3.region"]);
        assert_eq!(
            parsed["storage-credentials"][0]["config"]["s3.access-key-id"],
            "AK"
        );
    }
}
