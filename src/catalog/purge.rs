//! Purges of dropped tables, carried out in the background from durable tasks: a drop with
//! `purgeRequested=true` records its task in the drop's transaction and answers at once; a
//! worker on every replica takes due tasks one at a time under a lease (renewed while it
//! works), deletes the table's files, and removes the task with a `table.purged` event. A
//! replica that dies mid-purge leaves its lease to run out; the task is then taken again
//! (deleting is idempotent and goes files first, manifests after, so nothing is stranded).
//! A failed attempt is retried with a growing pause; its error stays on the task.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{Catalog, CatalogError, CatalogResult, TableVersion, Warehouse};
use crate::store::{Change, PurgeTask, now_ms};

/// How often a replica looks for due tasks when nothing woke it (drops by other replicas,
/// retries, leases run out).
const POLL_EVERY: Duration = Duration::from_secs(5);
/// The longest pause before a failed purge is tried again.
const MAX_BACKOFF: Duration = Duration::from_secs(600);

impl Catalog {
    /// Wakes this replica's purge worker (a drop just recorded a task).
    pub(super) fn purge_requested(&self) {
        self.purge_wake.notify_one();
    }

    /// The purge worker: runs until the server stops.
    pub(super) async fn purge_worker(self: Arc<Self>) {
        loop {
            match self.purge_next().await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "purge worker: cannot take a task"),
            }
            tokio::select! {
                () = self.purge_wake.notified() => {}
                () = tokio::time::sleep(POLL_EVERY) => {}
            }
        }
    }

    /// Takes one due task and works on it; `false` when none was due.
    async fn purge_next(&self) -> CatalogResult<bool> {
        let lease = self.settings.purge_lease.max(Duration::from_secs(1));
        let lease_until = || now_ms() + i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2);
        let Some(task) = self.store.claim_purge_task(lease_until()).await? else {
            return Ok(false);
        };
        let deleted = AtomicU64::new(u64::try_from(task.deleted_files).unwrap_or(0));
        let outcome = {
            let purge = self.purge_task(&task, &deleted);
            tokio::pin!(purge);
            loop {
                tokio::select! {
                    outcome = &mut purge => break outcome,
                    // Renewed (with the progress so far) well before it runs out.
                    () = tokio::time::sleep(lease / 4) => {
                        let so_far = i64::try_from(deleted.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
                        if let Err(e) = self.store.renew_purge_task(&task.id, lease_until(), so_far).await {
                            tracing::warn!(task = %task.id, error = %e, "purge worker: cannot renew a lease");
                        }
                    }
                }
            }
        };
        let so_far = i64::try_from(deleted.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
        let table = format!("{}.{}", task.namespace.join("."), task.name);
        match outcome {
            Ok(warehouse) => {
                let event = self.event(
                    &super::Caller::server(),
                    "table.purged",
                    &warehouse,
                    &task.namespace,
                    Some(&task.name),
                    serde_json::json!({
                        "metadata-location": task.metadata_location,
                        "deleted-files": so_far,
                        "attempts": task.attempts,
                    }),
                );
                self.store
                    .finish_purge_task(&task.id, &Change::new(None, vec![event]))
                    .await?;
                self.metrics.purges.with_label_values(&["done"]).inc();
                tracing::info!(%table, deleted_files = so_far, attempts = task.attempts, "purged a dropped table");
            }
            Err(e) => {
                let pause = backoff(task.attempts);
                let due = now_ms() + i64::try_from(pause.as_millis()).unwrap_or(i64::MAX / 2);
                self.metrics.purges.with_label_values(&["failed"]).inc();
                tracing::warn!(%table, error = %e, attempts = task.attempts, retry_in_s = pause.as_secs(), "purge of a dropped table failed; it will be tried again");
                self.store
                    .fail_purge_task(&task.id, &e.to_string(), due, so_far)
                    .await?;
            }
        }
        Ok(true)
    }

    /// Deletes a task's files; the warehouse it belonged to when done.
    async fn purge_task(
        &self,
        task: &PurgeTask,
        deleted: &AtomicU64,
    ) -> CatalogResult<Arc<Warehouse>> {
        let warehouse = self
            .store
            .warehouse_by_id(&task.warehouse_id)
            .await?
            .ok_or_else(|| CatalogError::Internal("the warehouse of a purge is gone".into()))?;
        let warehouse = Arc::new(Warehouse::from_row(warehouse, self.storage.secret_keys())?);
        let version = TableVersion::from_stored(
            String::new(),
            task.metadata_location.clone(),
            task.metadata.clone(),
            task.snapshots.clone(),
        )?;
        let metadata = version.metadata()?;
        let report = self
            .io(std::time::Instant::now(), &warehouse)
            .await?
            .purge_table(metadata, &task.metadata_location, deleted)
            .await?;
        self.metrics
            .purge_files_deleted
            .inc_by(u64::try_from(report.deleted).unwrap_or(0));
        if let Some(first) = report.failures.first() {
            return Err(CatalogError::PurgeIncomplete(format!(
                "{} of its files could not be deleted (first: {first})",
                report.failures.len()
            )));
        }
        Ok(warehouse)
    }
}

/// 2^attempts seconds, at most [`MAX_BACKOFF`].
fn backoff(attempts: i32) -> Duration {
    let exponent = u32::try_from(attempts.clamp(0, 20)).unwrap_or(20);
    Duration::from_secs(2u64.pow(exponent)).min(MAX_BACKOFF)
}
