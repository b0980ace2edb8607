//! Striped in-process locks that make commits to the same table take turns.

use std::hash::{Hash, Hasher};

use iceberg::TableIdent;
use tokio::sync::{Mutex, MutexGuard};

const STRIPES: usize = 512;

#[derive(Debug)]
pub(crate) struct CommitLocks {
    stripes: Vec<Mutex<()>>,
}

impl CommitLocks {
    pub(crate) fn new() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }

    /// Waits for the turn of a table. Two tables may share a stripe; that only orders them.
    pub(crate) async fn lock(&self, warehouse_id: &str, table: &TableIdent) -> MutexGuard<'_, ()> {
        let mut hasher = std::hash::DefaultHasher::new();
        warehouse_id.hash(&mut hasher);
        table.hash(&mut hasher);
        let stripe = (hasher.finish() % STRIPES as u64) as usize;
        self.stripes[stripe].lock().await
    }
}
