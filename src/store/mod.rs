//! Persistence of catalog metadata. All SQL of Serac lives below this module.
//!
//! The [`Store`] trait is implemented once in SQL ([`sql`]) and instantiated for PostgreSQL
//! (production, several replicas on one database) and SQLite (the embedded default).

mod fresh;
mod postgres;
mod sql;
mod sqlite;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

pub use fresh::FreshReads;
pub use postgres::{PostgresOptions, PostgresStore};
pub use sqlite::SqliteStore;

/// The separator joining namespace levels in the database. It may not appear in a level.
pub const LEVEL_SEPARATOR: char = '\u{1F}';
const LEVEL_SEPARATOR_STR: &str = "\u{1F}";

/// Errors of the store. Infrastructure failures are separated from outcomes a caller acts on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A row with the same unique name exists already.
    #[error("already exists")]
    AlreadyExists,
    /// A row the operation needs (a parent namespace, a warehouse) does not exist.
    #[error("a referenced entity does not exist")]
    MissingReference,
    /// Another table or view lies at, above or below the location claimed.
    #[error("the location is taken by another table or view")]
    LocationTaken,
    /// The row is still referenced by others (a namespace holding tables or namespaces).
    #[error("still referenced")]
    StillReferenced,
    /// The idempotency key was recorded already (by an earlier or a concurrent request).
    #[error("idempotency key already recorded")]
    IdempotencyKeyUsed,
    /// The database cannot be reached or did not answer in time.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database may or may not have committed the change (the answer to COMMIT was
    /// lost): files the change refers to must be kept.
    #[error("the database did not confirm the commit: {0}")]
    OutcomeUnknown(String),
    /// Any other database failure.
    #[error("database error: {0}")]
    Database(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarehouseRow {
    pub id: String,
    pub name: String,
    pub location: String,
    pub properties: HashMap<String, String>,
    /// The storage profile as stored (JSON with its secret, sealed when the server has a
    /// secrets key); `None` for local files.
    pub storage: Option<String>,
    pub created_at_ms: i64,
    /// The warehouse epoch (see [`Epochs`]) read in the same statement as the row; 0 for a
    /// row about to be written.
    pub epoch: i64,
}

/// What a warehouse still holds, when it cannot be deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WarehouseContents {
    pub namespaces: i64,
    pub tables: i64,
    pub views: i64,
    pub functions: i64,
    /// Purge tasks of dropped tables not finished yet.
    pub purge_tasks: i64,
}

impl WarehouseContents {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The outcome of deleting a warehouse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarehouseDeletion {
    Deleted,
    /// There was no such warehouse.
    NotFound,
    /// It still holds these (nothing was changed). All zero: something was created in it
    /// while it was being deleted.
    NotEmpty(WarehouseContents),
}

/// The two counters of the `access_epoch` row, read together: `access` moves with every
/// change of what principals may do (migration 11), `warehouses` with every change of a
/// warehouse row a replica may hold in memory (a new storage profile, a deletion; migration
/// 15).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Epochs {
    pub access: i64,
    pub warehouses: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceRow {
    pub id: String,
    pub levels: Vec<String>,
    pub properties: HashMap<String, String>,
    /// Incremented on every property change; used for compare-and-set updates.
    pub version: i64,
}

/// What a row of the `tables` relation holds: a table or a view (they share one name space
/// per namespace).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Table,
    View,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Table => "table",
            Self::View => "view",
        }
    }
}

/// The cheap part of a table row: enough to decide whether a cached copy is current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableHead {
    pub id: String,
    pub metadata_location: String,
}

/// A table or view found by its location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectAt {
    pub kind: ObjectKind,
    pub warehouse: String,
    pub namespace: Vec<String>,
    pub name: String,
}

/// A table row with its metadata document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRow {
    pub id: String,
    pub metadata_location: String,
    /// The table metadata JSON as written to the metadata file; without its `snapshots` when
    /// those are kept apart.
    pub metadata: String,
    /// The snapshots, when kept apart from the rest of the document (one row each, so that a
    /// commit writes only those it adds): a JSON array of them in commit order.
    pub snapshots: Option<String>,
}

/// How a swap changes the snapshots of a table that keeps them apart from its document.
#[derive(Debug, Clone)]
pub struct SnapshotChanges<'a> {
    /// The table kept none apart so far (its document was whole): any rows it has are
    /// replaced by `added`, and `removed` is empty.
    pub first: bool,
    pub added: Vec<StoredSnapshot<'a>>,
    pub removed: Vec<i64>,
}

/// One snapshot as kept apart: its JSON as written in the document, and its commit order.
#[derive(Debug, Clone)]
pub struct StoredSnapshot<'a> {
    pub id: i64,
    pub sequence_number: i64,
    pub timestamp_ms: i64,
    pub body: &'a str,
}

/// A location a table or view claims: no other may lie at, above or below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedLocation {
    /// The normalised location, without trailing slash.
    pub location: String,
    /// The location and every ancestor up to its root.
    pub self_and_ancestors: Vec<String>,
}

/// A new table to insert.
#[derive(Debug, Clone)]
pub struct NewTable<'a> {
    /// Table or view (`create_function` ignores it: functions have their own relation).
    pub kind: ObjectKind,
    pub id: &'a str,
    pub name: &'a str,
    pub metadata_location: &'a str,
    pub metadata: &'a str,
    /// The location a table or view claims (`None` for functions).
    pub location: Option<&'a ClaimedLocation>,
}

/// Entity counts, for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EntityCounts {
    pub warehouses: i64,
    pub namespaces: i64,
    pub tables: i64,
    pub views: i64,
}

/// One row of a multi-table compare-and-set.
#[derive(Debug, Clone)]
pub struct TableSwap<'a> {
    pub table_id: &'a str,
    pub expected_location: &'a str,
    pub new_location: &'a str,
    /// The new document; without its snapshots when `snapshots` is given.
    pub new_metadata: &'a str,
    /// The snapshots to keep apart from the document. `None`: the document is whole, and any
    /// snapshots the table kept apart are dropped.
    pub snapshots: Option<SnapshotChanges<'a>>,
    /// A new table location to claim (a commit that moves the table).
    pub new_object_location: Option<&'a ClaimedLocation>,
}

/// Marks a mutation with an idempotency key, recorded in the same database transaction.
#[derive(Debug, Clone)]
pub struct IdempotencyRecord {
    pub key: String,
    /// What the key was used for (method and path), to refuse reuse for another request.
    pub operation: String,
    /// The HTTP status of the outcome.
    pub status: u16,
    /// The stored response body, for outcomes that are replayed verbatim (errors).
    pub body: Option<String>,
    pub created_at_ms: i64,
    /// Rows older than this may be replaced: their key has expired.
    pub expired_before_ms: i64,
}

/// A recorded idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyEntry {
    pub operation: String,
    pub status: u16,
    pub body: Option<String>,
    pub created_at_ms: i64,
}

/// A change event, written in the same database transaction as the change it reports (an
/// outbox): it exists if and only if the change happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// What happened, such as `table.updated`.
    pub event_type: &'static str,
    /// The warehouse's name.
    pub warehouse: String,
    /// The namespace levels (empty for warehouse events).
    pub namespace: Vec<String>,
    /// The table, view or function; `None` for namespace and warehouse events.
    pub name: Option<String>,
    /// Event details, a JSON object.
    pub data: String,
    pub request_id: Option<String>,
    pub actor: Option<String>,
}

/// What a mutation records beside the change itself, in the same database transaction: its
/// idempotency key and its change events. Events are written only when the change happens.
#[derive(Debug, Clone, Default)]
pub struct Change<'a> {
    pub idempotency: Option<&'a IdempotencyRecord>,
    pub events: Vec<NewEvent>,
    /// The principal id that owns what the change creates.
    pub owner: Option<&'a str>,
}

impl<'a> Change<'a> {
    pub fn new(idempotency: Option<&'a IdempotencyRecord>, events: Vec<NewEvent>) -> Self {
        Self {
            idempotency,
            events,
            owner: None,
        }
    }

    /// The same change, making `owner` the owner of what it creates.
    pub fn owned_by(self, owner: Option<&'a str>) -> Self {
        Self { owner, ..self }
    }
}

/// A dropped table whose files are still to be deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeTask {
    pub id: String,
    pub warehouse_id: String,
    pub namespace: Vec<String>,
    pub name: String,
    pub metadata_location: String,
    /// The table's document, and its snapshots when they were kept apart (see [`TableRow`]).
    pub metadata: String,
    pub snapshots: Option<String>,
    /// Attempts so far, this one included.
    pub attempts: i32,
    pub deleted_files: i64,
}

/// A place in the event stream. Events are totally ordered by `(tx, id)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventPosition {
    pub tx: i64,
    pub id: i64,
}

/// A stored change event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub position: EventPosition,
    pub created_at_ms: i64,
    pub event_type: String,
    pub warehouse: String,
    pub namespace: Vec<String>,
    pub name: Option<String>,
    pub request_id: Option<String>,
    pub actor: Option<String>,
    pub data: String,
}

/// See [`Store::event_tail`].
#[derive(Debug, Clone, Default)]
pub struct EventTail {
    pub position: EventPosition,
    pub committed: Vec<EventPosition>,
}

/// Events after a position, in order.
#[derive(Debug, Clone, Default)]
pub struct EventBatch {
    pub events: Vec<EventRow>,
    /// Later events exist but are held back until an older, still running transaction ends
    /// (it may yet add events before them): read again shortly.
    pub held_back: bool,
}

/// A principal of authentication, with its client secret's argon2 hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalRow {
    pub id: String,
    pub name: String,
    pub client_id: String,
    pub secret_hash: String,
    pub admin: bool,
    /// Signs in through the OpenID Connect provider (`--oidc-issuer`): its name is a claim of
    /// the provider's tokens, and it has no client secret (its `secret_hash` verifies nothing).
    pub external: bool,
    pub created_at_ms: i64,
}

/// An API key: its public id, its principal, and the hash of its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRow {
    pub id: String,
    pub principal_id: String,
    /// Filled in by lookups (the principal's name and admin flag).
    pub principal_name: String,
    pub principal_admin: bool,
    pub secret_hash: String,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    pub last_used_at_ms: Option<i64>,
}

/// A key that signs issued tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRow {
    pub kid: String,
    pub secret: String,
    pub created_at_ms: i64,
}

/// A role and the names of its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleRow {
    pub name: String,
    pub members: Vec<String>,
    pub created_at_ms: i64,
}

/// What a grant is on: a whole warehouse, a namespace (and everything below it), or one table
/// or view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantObject {
    Warehouse,
    Namespace(Vec<String>),
    Object(ObjectKind, Vec<String>, String),
}

/// A grant of a privilege to a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRow {
    pub role: String,
    pub privilege: String,
    pub warehouse_id: String,
    pub object: GrantObject,
}

/// What a principal may do, as the database says now: whether it is an admin, and every grant
/// that reaches it: those of its roles, and `owner` of each namespace, table and view it
/// created (`role` empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrincipalAccess {
    pub admin: bool,
    pub grants: Vec<GrantRow>,
}

/// The privilege name of an owner's implicit grant: every privilege.
pub const OWNER: &str = "owner";

/// Per process: what principals may do and the API keys looked up, each kept with the access
/// epoch it was read at and used only while the epoch stands. (The same row holds the
/// warehouse epoch, read with it: see `catalog/warehouses.rs`.) The epoch is a counter in the
/// database that every change of access moves in its own transaction (triggers of migration
/// 11), whoever makes it: a replica, the command line, another process on the SQLite file. It
/// is read once per request (concurrent requests share a read that started after they
/// arrived), so a revocation holds for every request that arrives after it committed, on
/// every replica, while a decision costs no grant query.
#[derive(Debug)]
pub(crate) struct AccessCache {
    pub(crate) epochs: FreshReads<(), Epochs>,
    principals: moka::sync::Cache<String, (i64, Option<Arc<PrincipalAccess>>)>,
    api_keys: moka::sync::Cache<String, (i64, Option<ApiKeyRow>)>,
}

impl Default for AccessCache {
    fn default() -> Self {
        Self {
            epochs: FreshReads::new(1),
            principals: cache(10_000),
            api_keys: cache(10_000),
        }
    }
}

fn cache<V: Clone + Send + Sync + 'static>(capacity: u64) -> moka::sync::Cache<String, V> {
    moka::sync::Cache::builder()
        .max_capacity(capacity)
        .time_to_idle(std::time::Duration::from_secs(600))
        .build()
}

impl AccessCache {
    pub(crate) fn principal(&self, id: &str, epoch: i64) -> Option<Option<Arc<PrincipalAccess>>> {
        let (at, access) = self.principals.get(id)?;
        (at == epoch).then_some(access)
    }

    pub(crate) fn keep_principal(
        &self,
        id: &str,
        epoch: i64,
        access: Option<Arc<PrincipalAccess>>,
    ) {
        self.principals.insert(id.to_owned(), (epoch, access));
    }

    pub(crate) fn api_key(&self, id: &str, epoch: i64) -> Option<Option<ApiKeyRow>> {
        let (at, row) = self.api_keys.get(id)?;
        (at == epoch).then_some(row)
    }

    pub(crate) fn keep_api_key(&self, id: &str, epoch: i64, row: Option<ApiKeyRow>) {
        self.api_keys.insert(id.to_owned(), (epoch, row));
    }
}

/// One mutating request, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub at_ms: i64,
    pub request_id: Option<String>,
    /// Who: the authenticated principal, or `anonymous`.
    pub actor: String,
    /// The client's address.
    pub client: Option<String>,
    /// What: method and route template, such as `POST /v1/{prefix}/namespaces`.
    pub operation: String,
    /// Which object: the request path.
    pub object: String,
    pub status: u16,
    /// `success`, `denied` (403: a privilege was missing), `rejected` (other 4xx) or
    /// `failed` (5xx).
    pub outcome: String,
    /// For a denial: the privilege that was missing.
    pub missing_privilege: Option<String>,
}

/// Signals between committed events and the change feed.
#[derive(Debug, Clone)]
pub struct EventSignals {
    /// Bumped when events are committed here or announced by another replica.
    pub local: tokio::sync::watch::Sender<u64>,
    /// Bumped when events are committed here; the relay announces them to other replicas.
    pub outgoing: tokio::sync::watch::Sender<u64>,
}

impl Default for EventSignals {
    fn default() -> Self {
        Self {
            local: tokio::sync::watch::Sender::new(0),
            outgoing: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl EventSignals {
    pub fn committed(&self) {
        self.local.send_modify(|n| *n = n.wrapping_add(1));
        self.outgoing.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn remote(&self) {
        self.local.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// One page of names, in byte order, after an optional cursor.
#[derive(Debug, Clone, Copy)]
pub struct PageQuery<'a> {
    /// Return names strictly greater than this one.
    pub after: Option<&'a str>,
    /// Return at most this many names; `None` returns them all.
    pub limit: Option<usize>,
}

#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Which backend this is, for logs and metrics.
    fn backend(&self) -> &'static str;

    /// A round trip to the database.
    async fn ping(&self) -> StoreResult<()>;

    /// Whether every migration this build knows is applied (the schema may be newer).
    async fn schema_current(&self) -> StoreResult<bool>;

    /// A request failed because the database seemed unavailable: check (in the background)
    /// whether it is down, so that further requests fail at once instead of waiting.
    fn suspect_outage(&self);

    /// Open and idle connections of the pool(s).
    fn pool_stats(&self) -> (u32, u32);

    /// How many warehouses, namespaces, tables and views the catalog holds.
    async fn entity_counts(&self) -> StoreResult<EntityCounts>;

    // --- warehouses -------------------------------------------------------------------------
    async fn create_warehouse(&self, row: &WarehouseRow, change: &Change<'_>) -> StoreResult<()>;
    /// A warehouse by name, with the warehouse epoch read in the same statement.
    async fn warehouse_by_name(&self, name: &str) -> StoreResult<Option<WarehouseRow>>;
    /// A warehouse by id, with the warehouse epoch read in the same statement.
    async fn warehouse_by_id(&self, id: &str) -> StoreResult<Option<WarehouseRow>>;
    async fn list_warehouses(&self) -> StoreResult<Vec<WarehouseRow>>;
    /// Replaces a warehouse's stored storage profile (which moves the warehouse epoch), only
    /// while it still is `expected` when that is given. `Ok(false)`: no such warehouse, or
    /// its profile is no longer `expected`; nothing changed.
    async fn set_warehouse_storage(
        &self,
        id: &str,
        expected: Option<&str>,
        storage: &str,
        change: &Change<'_>,
    ) -> StoreResult<bool>;
    /// Deletes a warehouse that holds nothing (no namespace, hence no table, view or
    /// function, and no pending purge task), with its grants, in one transaction.
    async fn delete_warehouse(
        &self,
        id: &str,
        change: &Change<'_>,
    ) -> StoreResult<WarehouseDeletion>;
    /// The access and warehouse epochs, from a read that started after `since` (concurrent
    /// callers share one; a table head read after `since` serves it too).
    async fn epochs(&self, since: std::time::Instant) -> StoreResult<Epochs>;
    /// The newest epochs this process has read, without asking the database (`None`: none
    /// yet, or a read is running).
    fn seen_epochs(&self) -> Option<Epochs>;

    // --- namespaces -------------------------------------------------------------------------
    /// Inserts a namespace, and in the same transaction each missing ancestor (with no
    /// properties, recording the event `ancestor_event` makes for it). `AlreadyExists` when
    /// the name is taken.
    async fn create_namespace(
        &self,
        warehouse_id: &str,
        levels: &[String],
        properties: &HashMap<String, String>,
        change: &Change<'_>,
        ancestor_event: &(dyn for<'x> Fn(&'x [String]) -> NewEvent + Send + Sync),
    ) -> StoreResult<NamespaceRow>;
    async fn namespace(
        &self,
        warehouse_id: &str,
        levels: &[String],
    ) -> StoreResult<Option<NamespaceRow>>;
    /// Child namespaces of `parent` (empty: the top level), ordered by name.
    /// Child namespaces of `parent`, one page. With `visible_to` (a principal id): only those
    /// a role of that principal holds `read` on directly.
    async fn list_namespaces(
        &self,
        warehouse_id: &str,
        parent: &[String],
        page: PageQuery<'_>,
        visible_to: Option<&str>,
    ) -> StoreResult<Vec<Vec<String>>>;
    /// Deletes a namespace. `Ok(false)`: it did not exist; `StillReferenced`: it holds tables
    /// or namespaces.
    async fn drop_namespace(
        &self,
        warehouse_id: &str,
        levels: &[String],
        change: &Change<'_>,
    ) -> StoreResult<bool>;
    /// Replaces the properties if the namespace is still at `expected_version`.
    /// `Ok(false)`: someone else changed it first (or it was dropped).
    async fn swap_namespace_properties(
        &self,
        namespace_id: &str,
        expected_version: i64,
        properties: &HashMap<String, String>,
        change: &Change<'_>,
    ) -> StoreResult<bool>;

    // --- tables -----------------------------------------------------------------------------
    async fn table_head(
        &self,
        kind: ObjectKind,
        warehouse_id: &str,
        namespace: &[String],
        name: &str,
    ) -> StoreResult<Option<TableHead>>;
    async fn table_by_id(&self, table_id: &str) -> StoreResult<Option<TableRow>>;
    /// The tables and views (at most a few) whose claimed location is one of `locations`
    /// (normalised, without trailing slash), in any warehouse.
    async fn objects_at(&self, locations: &[String]) -> StoreResult<Vec<ObjectAt>>;
    /// A table or view row by name, with its metadata (one query).
    async fn object(
        &self,
        kind: ObjectKind,
        warehouse_id: &str,
        namespace: &[String],
        name: &str,
    ) -> StoreResult<Option<TableRow>>;
    /// Tables of a namespace by name; `None` when the namespace does not exist.
    /// Tables or views of a namespace, one page (`None`: no such namespace). With
    /// `visible_to` (a principal id): only those a role of that principal holds `read` on.
    async fn list_tables(
        &self,
        kind: ObjectKind,
        warehouse_id: &str,
        namespace: &[String],
        page: PageQuery<'_>,
        visible_to: Option<&str>,
    ) -> StoreResult<Option<Vec<String>>>;
    /// Inserts a table or view. `MissingReference`: no such namespace; `AlreadyExists`: the
    /// name is taken (by a table or a view); `LocationTaken`: its location overlaps another's.
    async fn create_table(
        &self,
        warehouse_id: &str,
        namespace: &[String],
        table: &NewTable<'_>,
        change: &Change<'_>,
    ) -> StoreResult<()>;
    /// Compare-and-set of several tables in one database transaction: every row must still
    /// hold its expected location, else nothing changes and the result is `Ok(false)`.
    /// `LocationTaken`: a new table location overlaps another object's.
    async fn swap_tables_metadata(
        &self,
        swaps: &[TableSwap<'_>],
        change: &Change<'_>,
    ) -> StoreResult<bool>;
    /// Deletes a table row and returns it; `None` when there was none. With `purge`, a purge
    /// task for its files is recorded in the same transaction.
    async fn drop_table(
        &self,
        kind: ObjectKind,
        warehouse_id: &str,
        namespace: &[String],
        name: &str,
        purge: bool,
        change: &Change<'_>,
    ) -> StoreResult<Option<TableRow>>;
    /// Moves a table. `Ok(false)`: no such source table; `MissingReference`: no destination
    /// namespace; `AlreadyExists`: the destination name is taken.
    async fn rename_table(
        &self,
        kind: ObjectKind,
        warehouse_id: &str,
        source: (&[String], &str),
        destination: (&[String], &str),
        change: &Change<'_>,
    ) -> StoreResult<bool>;

    // --- functions --------------------------------------------------------------------------
    /// Inserts a function. `MissingReference`: no such namespace; `AlreadyExists`: name taken.
    async fn create_function(
        &self,
        warehouse_id: &str,
        namespace: &[String],
        function: &NewTable<'_>,
        change: &Change<'_>,
    ) -> StoreResult<()>;
    async fn function(
        &self,
        warehouse_id: &str,
        namespace: &[String],
        name: &str,
    ) -> StoreResult<Option<TableRow>>;
    /// Functions of a namespace by name; `None` when the namespace does not exist.
    async fn list_functions(
        &self,
        warehouse_id: &str,
        namespace: &[String],
        page: PageQuery<'_>,
    ) -> StoreResult<Option<Vec<String>>>;

    // --- purge tasks ------------------------------------------------------------------------
    /// Takes the oldest due purge task until `lease_until_ms` (no replica takes it meanwhile)
    /// and counts the attempt; `None` when no task is due.
    async fn claim_purge_task(&self, lease_until_ms: i64) -> StoreResult<Option<PurgeTask>>;
    /// Extends a task's lease and records how many files are deleted so far.
    async fn renew_purge_task(
        &self,
        id: &str,
        lease_until_ms: i64,
        deleted_files: i64,
    ) -> StoreResult<()>;
    /// A task is done: it goes, with the change's events, in one transaction.
    async fn finish_purge_task(&self, id: &str, change: &Change<'_>) -> StoreResult<()>;
    /// An attempt failed: the task waits until `due_at_ms`, with the error kept.
    async fn fail_purge_task(
        &self,
        id: &str,
        error: &str,
        due_at_ms: i64,
        deleted_files: i64,
    ) -> StoreResult<()>;
    /// How many purge tasks are waiting or running.
    async fn purge_task_count(&self) -> StoreResult<u64>;

    // --- idempotency keys -------------------------------------------------------------------
    async fn idempotency_entry(&self, key: &str) -> StoreResult<Option<IdempotencyEntry>>;
    /// Records an outcome that changed nothing (a final error). `Ok(false)`: the key exists.
    async fn record_idempotency(&self, record: &IdempotencyRecord) -> StoreResult<bool>;
    /// Stores the response body of a recorded success, for outcomes that cannot be rebuilt
    /// from the catalog's state later (the table is gone after an unregister).
    async fn set_idempotency_body(&self, key: &str, body: &str) -> StoreResult<()>;
    /// Deletes keys created before the given time; returns how many.
    async fn purge_idempotency_keys(&self, created_before_ms: i64) -> StoreResult<u64>;

    // --- change events and audit ------------------------------------------------------------
    /// Up to `limit` events after `after`, in order. Only events that can no longer be
    /// preceded by another (their transaction and every older one have ended) are returned.
    async fn events_after(&self, after: EventPosition, limit: usize) -> StoreResult<EventBatch>;
    /// Where "from now on" starts: every event committed later comes after `position`;
    /// `committed` lists the events after it that are committed already (they are past).
    async fn event_tail(&self) -> StoreResult<EventTail>;
    /// The newest position deleted by retention, if any.
    async fn event_floor(&self) -> StoreResult<Option<EventPosition>>;
    /// Deletes events created before the given time, if this replica wins the cleanup lock.
    /// `Ok(None)`: another replica is cleaning up.
    async fn purge_events(&self, created_before_ms: i64) -> StoreResult<Option<u64>>;
    /// Changes whenever events may have been committed: by this process, or by another
    /// replica (once the relay runs).
    fn event_signal(&self) -> tokio::sync::watch::Receiver<u64>;
    /// Starts the tasks that carry event announcements between replicas (PostgreSQL
    /// `LISTEN`/`NOTIFY`); none for SQLite, which serves one process.
    fn start_event_relay(&self) -> Vec<tokio::task::JoinHandle<()>>;
    async fn insert_audit_records(&self, records: &[AuditRecord]) -> StoreResult<()>;
    /// The newest audit records, newest first (for operators and tests).
    async fn audit_records(&self, limit: usize) -> StoreResult<Vec<AuditRecord>>;
    /// Deletes audit records made before the given time; returns how many went.
    async fn purge_audit_records(&self, before_ms: i64) -> StoreResult<u64>;

    // --- authentication ---------------------------------------------------------------------
    /// Inserts a principal (`AlreadyExists` for a taken name or client id). With
    /// `only_if_none`, nothing is inserted when any principal exists (`Ok(false)`).
    async fn create_principal(&self, row: &PrincipalRow, only_if_none: bool) -> StoreResult<bool>;
    async fn principal_by_client_id(&self, client_id: &str) -> StoreResult<Option<PrincipalRow>>;
    async fn principal_by_name(&self, name: &str) -> StoreResult<Option<PrincipalRow>>;
    async fn list_principals(&self) -> StoreResult<Vec<PrincipalRow>>;
    /// Replaces a principal's secret hash; its client id, or `None` if there is no such
    /// principal.
    async fn set_principal_secret(
        &self,
        name: &str,
        secret_hash: &str,
    ) -> StoreResult<Option<String>>;
    /// `false` if there is no such principal.
    async fn delete_principal(&self, name: &str) -> StoreResult<bool>;
    /// Every signing key, newest first.
    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRow>>;
    async fn add_signing_key(&self, row: &SigningKeyRow) -> StoreResult<()>;

    /// Stores a new API key for the principal named `principal`; `MissingReference` if there
    /// is no such principal. The row's principal fields are ignored.
    async fn create_api_key(&self, principal: &str, row: &ApiKeyRow) -> StoreResult<()>;
    /// A key by its public id, with its principal, as of a moment after `since` (when the
    /// asking request arrived).
    async fn api_key(&self, id: &str, since: std::time::Instant) -> StoreResult<Option<ApiKeyRow>>;
    /// The keys of a principal, or of every principal.
    async fn list_api_keys(&self, principal: Option<&str>) -> StoreResult<Vec<ApiKeyRow>>;
    /// Revokes (deletes) a key; `false` if there is no such key.
    async fn delete_api_key(&self, id: &str) -> StoreResult<bool>;
    async fn touch_api_key(&self, id: &str, at_ms: i64) -> StoreResult<()>;

    // --- authorization ----------------------------------------------------------------------
    async fn create_role(&self, id: &str, name: &str) -> StoreResult<()>;
    /// `false` if there is no such role.
    async fn delete_role(&self, name: &str) -> StoreResult<bool>;
    async fn list_roles(&self) -> StoreResult<Vec<RoleRow>>;
    /// Adds or removes a principal (by name) to or from a role. `MissingReference` if either
    /// does not exist; `false` if nothing changed.
    async fn set_role_member(&self, role: &str, principal: &str, member: bool)
    -> StoreResult<bool>;
    /// Records a grant; `false` if the role held it already. `MissingReference` if the role or
    /// the object does not exist.
    async fn grant(&self, grant: &GrantRow) -> StoreResult<bool>;
    /// Removes a grant; `false` if the role did not hold it.
    async fn revoke(&self, grant: &GrantRow) -> StoreResult<bool>;
    /// The grants of a role, or `None` if there is no such role.
    async fn role_grants(&self, role: &str) -> StoreResult<Option<Vec<GrantRow>>>;
    /// What a principal may do (`None`: there is no such principal any more). Served from
    /// memory while the access epoch stands (see [`AccessCache`]).
    /// `since`: when the asking request arrived (changes acknowledged before then are seen).
    async fn principal_access(
        &self,
        principal_id: &str,
        since: std::time::Instant,
    ) -> StoreResult<Option<Arc<PrincipalAccess>>>;
}

/// Joins namespace levels for storage.
pub(crate) fn join_levels(levels: &[String]) -> String {
    levels.join(LEVEL_SEPARATOR_STR)
}

/// Splits stored namespace levels; the empty string (warehouse events) has none.
pub(crate) fn split_levels(joined: &str) -> Vec<String> {
    if joined.is_empty() {
        return Vec::new();
    }
    joined.split(LEVEL_SEPARATOR).map(str::to_owned).collect()
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
