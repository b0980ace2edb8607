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

    fn stripe(warehouse_id: &str, table: &TableIdent) -> usize {
        let mut hasher = std::hash::DefaultHasher::new();
        warehouse_id.hash(&mut hasher);
        table.hash(&mut hasher);
        (hasher.finish() % STRIPES as u64) as usize
    }

    /// Waits for the turn of a table. Two tables may share a stripe; that only orders them.
    pub(crate) async fn lock(&self, warehouse_id: &str, table: &TableIdent) -> MutexGuard<'_, ()> {
        self.stripes[Self::stripe(warehouse_id, table)].lock().await
    }

    /// Waits for the turn of several tables, taking stripes in ascending order so that two
    /// transactions never wait on each other in a cycle.
    pub(crate) async fn lock_all(
        &self,
        warehouse_id: &str,
        tables: &[TableIdent],
    ) -> Vec<MutexGuard<'_, ()>> {
        let mut stripes: Vec<usize> = tables
            .iter()
            .map(|t| Self::stripe(warehouse_id, t))
            .collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut guards = Vec::with_capacity(stripes.len());
        for stripe in stripes {
            guards.push(self.stripes[stripe].lock().await);
        }
        guards
    }
}
