//! The rules of Iceberg: warehouses, the namespace hierarchy, table lifecycles and the commit
//! algorithm. This layer knows neither HTTP nor SQL: it talks to a [`Store`] and a [`Storage`].

mod access;
mod authz;
mod cache;
mod caller;
mod error;
pub mod events;
mod fresh_ids;
mod functions;
#[doc(hidden)]
pub mod fuzzing;
pub mod ident;
mod locations;
mod locks;
mod metadata_json;
mod namespaces;
mod page;
mod purge;
mod scan;
mod tables;
mod validate;
mod views;
mod warehouses;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

pub use access::{StorageCredential, TableAccess};
pub use authz::Privilege;
pub use cache::TableVersion;
pub use caller::{ANONYMOUS, COMMAND_LINE, Caller, Principal};
pub use error::{CatalogError, CatalogResult};
pub use functions::LoadedFunction;
pub use metadata_json::SummaryOrder;
pub use namespaces::PropertiesChange;
pub use page::{MAX_PAGE_SIZE, PageRequest, Paged};
pub use scan::{PlanResult, PlanTableScanRequest, ScanTasks, parse_filter};
pub use tables::{CreatedTable, DropTable};
pub use views::{CommitViewRequest, CreateViewRequest, LoadedView, RegisterViewRequest};
pub use warehouses::{SecretRotation, Warehouse};

use cache::TableCache;
use events::AuditLog;
use locks::CommitLocks;
use scan::Plans;

use crate::metrics::Metrics;
use crate::storage::Storage;
pub use crate::storage::signer::{SignRequest, SignedRequest};
pub use crate::storage::{StorageProfile, StoredSecrets};
pub use crate::store::{
    AuditRecord, GrantObject, GrantRow, IdempotencyEntry, IdempotencyRecord, ObjectKind, RoleRow,
};
use crate::store::{Store, now_ms};

/// Tunables of the catalog, from the configuration.
#[derive(Debug, Clone)]
pub struct CatalogSettings {
    /// Name of the warehouse served without a prefix.
    pub default_warehouse: String,
    /// How often a commit that lost a compare-and-set race is retried inside the server.
    pub commit_retries: u32,
    /// How long an idempotency key is honoured.
    pub idempotency_lifetime: Duration,
    /// Upper bound of the table cache, in bytes (approximate).
    pub table_cache_bytes: u64,
    /// Largest number of file scan tasks answered at once; larger plans are split into plan
    /// tasks that clients fetch.
    pub scan_files_per_task: usize,
    /// How long a split scan plan can be fetched.
    pub scan_plan_lifetime: Duration,
    /// How long a replica holds a purge task without renewing its lease.
    pub purge_lease: Duration,
    /// How long change events are kept.
    pub event_retention: Duration,
    /// How often an idle change-feed subscriber looks for events nobody announced (a missed
    /// notification, a transaction that held others back).
    pub event_poll_interval: Duration,
    /// How long audit records are kept; zero keeps them forever.
    pub audit_retention: Duration,
    /// Caps on the work of one request.
    pub limits: Limits,
    /// Whether remote signing signs batch deletes (`--sign-batch-deletes`).
    pub sign_batch_deletes: bool,
}

/// Caps on the work one request can ask for; each is a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Table changes in one multi-table transaction.
    pub max_transaction_changes: usize,
    /// Updates in one table or view commit.
    pub max_commit_updates: usize,
    /// Properties of one namespace, table or view.
    pub max_properties: usize,
    /// Size of a metadata file Serac reads or writes.
    pub max_metadata_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_transaction_changes: 1_000,
            max_commit_updates: 10_000,
            max_properties: 10_000,
            max_metadata_bytes: crate::storage::DEFAULT_MAX_METADATA_BYTES,
        }
    }
}

#[derive(Debug)]
pub struct Catalog {
    store: Arc<dyn Store>,
    storage: Storage,
    tables: TableCache,
    commit_locks: CommitLocks,
    /// Table heads for loads: concurrent loads of one table share a lookup that started after
    /// they arrived (never older than asking alone).
    heads: crate::store::FreshReads<(String, iceberg::TableIdent), Option<crate::store::TableHead>>,
    plans: Plans,
    metrics: Arc<Metrics>,
    audit: AuditLog,
    #[cfg(feature = "failpoints")]
    fail_next_swap: std::sync::atomic::AtomicBool,
    /// Warehouses by name, each with the warehouse epoch it was read at: an entry is used
    /// while no newer epoch is known (see [`Catalog::warehouse`] and [`Catalog::io`]).
    warehouses: RwLock<HashMap<String, (Arc<Warehouse>, i64)>>,
    /// Per principal id: the access the store handed out last, and its index.
    access_index:
        moka::sync::Cache<String, (Arc<crate::store::PrincipalAccess>, Arc<authz::Access>)>,
    /// Wakes this replica's purge worker when a drop recorded a purge task.
    purge_wake: tokio::sync::Notify,
    settings: CatalogSettings,
}

impl Catalog {
    /// A catalog over `store` and `storage`. `metrics` should be the one whose database
    /// metrics the store records.
    pub fn new(
        store: Arc<dyn Store>,
        storage: Storage,
        settings: CatalogSettings,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            store,
            storage,
            tables: TableCache::new(settings.table_cache_bytes),
            commit_locks: CommitLocks::new(),
            heads: crate::store::FreshReads::new(100_000),
            plans: Plans::new(settings.scan_files_per_task, settings.scan_plan_lifetime),
            metrics,
            audit: AuditLog::new(),
            #[cfg(feature = "failpoints")]
            fail_next_swap: std::sync::atomic::AtomicBool::new(false),
            warehouses: RwLock::new(HashMap::new()),
            purge_wake: tokio::sync::Notify::new(),
            access_index: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_idle(std::time::Duration::from_secs(600))
                .build(),
            settings,
        }
    }

    /// Test builds only: the next commit fails after writing its metadata files and before
    /// swapping any row, like a crash at that point.
    #[cfg(feature = "failpoints")]
    pub fn fail_next_swap(&self) {
        self.fail_next_swap
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// The server's metrics (recorded here and by the HTTP layer).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Refreshes the metrics that need a query (pool, entity and database-up gauges); run on
    /// scrape.
    pub async fn refresh_metrics(&self) -> CatalogResult<()> {
        let (open, idle) = self.store.pool_stats();
        self.metrics.db_pool_connections.set(i64::from(open));
        self.metrics.db_pool_idle.set(i64::from(idle));
        let counts = self.store.entity_counts().await;
        self.metrics.database_up.set(i64::from(counts.is_ok()));
        if let Ok(pending) = self.store.purge_task_count().await {
            self.metrics
                .purge_tasks
                .set(i64::try_from(pending).unwrap_or(i64::MAX));
        }
        let counts = counts?;
        for (kind, count) in [
            ("warehouse", counts.warehouses),
            ("namespace", counts.namespaces),
            ("table", counts.tables),
            ("view", counts.views),
        ] {
            self.metrics.entities.with_label_values(&[kind]).set(count);
        }
        Ok(())
    }

    pub fn settings(&self) -> &CatalogSettings {
        &self.settings
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> CatalogResult<()> {
        Ok(self.store.ping().await?)
    }

    /// A request failed with "database unavailable": let the store check whether the database
    /// is down (then later requests fail at once).
    pub fn suspect_database_outage(&self) {
        self.store.suspect_outage();
    }

    /// Whether the database answers and holds every migration of this build.
    pub async fn check_ready(&self) -> CatalogResult<()> {
        if self.store.schema_current().await? {
            Ok(())
        } else {
            Err(CatalogError::Unavailable(
                "the catalog database schema is older than this server: run `serac migrate`".into(),
            ))
        }
    }

    pub fn backend(&self) -> &'static str {
        self.store.backend()
    }

    // --- idempotency keys -----------------------------------------------------------------------

    /// The recorded outcome of a key, if it has not expired.
    pub async fn idempotency_entry(&self, key: &str) -> CatalogResult<Option<IdempotencyEntry>> {
        let oldest = now_ms() - self.idempotency_lifetime_ms();
        Ok(self
            .store
            .idempotency_entry(key)
            .await?
            .filter(|e| e.created_at_ms >= oldest))
    }

    /// A record for a key, to pass to a mutation (or to [`Self::record_outcome`]).
    pub fn idempotency_record(
        &self,
        key: &str,
        operation: String,
        status: u16,
        body: Option<String>,
    ) -> IdempotencyRecord {
        let now = now_ms();
        IdempotencyRecord {
            key: key.to_owned(),
            operation,
            status,
            body,
            created_at_ms: now,
            expired_before_ms: now - self.idempotency_lifetime_ms(),
        }
    }

    /// Records a final outcome that changed nothing. `false`: the key was recorded already.
    pub async fn record_outcome(&self, record: &IdempotencyRecord) -> CatalogResult<bool> {
        Ok(self.store.record_idempotency(record).await?)
    }

    /// Keeps the response of a success for replays (see `Store::set_idempotency_body`).
    pub async fn record_response(&self, key: &str, body: &str) -> CatalogResult<()> {
        Ok(self.store.set_idempotency_body(key, body).await?)
    }

    /// Starts the background work of a serving catalog: the audit writer, the event relay
    /// between replicas, event retention and the expiry of idempotency keys.
    pub fn start_background(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = self.store.start_event_relay();
        if let Some(receiver) = self.audit.receiver.lock().expect("audit lock").take() {
            tasks.push(tokio::spawn(events::write_audit(self.clone(), receiver)));
        }
        tasks.push(tokio::spawn(events::retain_events(self.clone())));
        tasks.push(tokio::spawn(self.clone().purge_worker()));
        let catalog = self.clone();
        tasks.push(tokio::spawn(clean_up_every(
            Duration::from_secs(300),
            "expired idempotency keys",
            move || {
                let catalog = catalog.clone();
                async move { catalog.purge_expired_idempotency_keys().await }
            },
        )));
        let retention = self.settings.audit_retention;
        if !retention.is_zero() {
            let catalog = self.clone();
            tasks.push(tokio::spawn(clean_up_every(
                (retention / 2).clamp(Duration::from_secs(1), Duration::from_secs(3600)),
                "audit records past retention",
                move || {
                    let catalog = catalog.clone();
                    async move {
                        let cutoff =
                            now_ms() - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
                        Ok(catalog.store.purge_audit_records(cutoff).await?)
                    }
                },
            )));
        }
        tasks
    }

    /// Deletes expired keys; run periodically.
    async fn purge_expired_idempotency_keys(&self) -> CatalogResult<u64> {
        // Keep keys a while past their lifetime, for clients whose clocks run late.
        let cutoff = now_ms() - 2 * self.idempotency_lifetime_ms();
        Ok(self.store.purge_idempotency_keys(cutoff).await?)
    }

    fn idempotency_lifetime_ms(&self) -> i64 {
        i64::try_from(self.settings.idempotency_lifetime.as_millis()).unwrap_or(i64::MAX)
    }
}

/// Runs a cleanup `round` (which returns how many rows it deleted) every `period`, for ever.
async fn clean_up_every<F, Fut>(period: Duration, what: &'static str, mut round: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = CatalogResult<u64>>,
{
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match round().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "deleted {what}"),
            Err(e) => tracing::warn!(error = %e, "could not delete {what}"),
        }
    }
}
