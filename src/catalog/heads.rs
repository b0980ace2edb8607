//! Coalesced table-head lookups for loads. Concurrent loads of one table share a database
//! lookup, but only one that started after they arrived: its answer is at least as new as any
//! commit acknowledged (by any replica) before the load arrived, so sharing never serves an
//! older version than asking alone would.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use iceberg::TableIdent;
use tokio::sync::Mutex;

use crate::store::{StoreResult, TableHead};

type Key = (String, TableIdent);

#[derive(Debug)]
struct Lookup {
    started: Instant,
    head: Option<TableHead>,
}

#[derive(Debug)]
pub(crate) struct HeadLookups {
    slots: moka::sync::Cache<Key, Arc<Mutex<Option<Lookup>>>>,
}

impl HeadLookups {
    pub(crate) fn new() -> Self {
        Self {
            slots: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(60))
                .build(),
        }
    }

    /// The head of a table, from a lookup that started after this call began.
    pub(crate) async fn lookup<F, Fut>(
        &self,
        warehouse_id: &str,
        table: &TableIdent,
        query: F,
    ) -> StoreResult<Option<TableHead>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = StoreResult<Option<TableHead>>>,
    {
        let arrived = Instant::now();
        let slot = self
            .slots
            .get_with((warehouse_id.to_owned(), table.clone()), || {
                Arc::new(Mutex::new(None))
            });
        let mut last = slot.lock().await;
        if let Some(lookup) = last.as_ref()
            && lookup.started > arrived
        {
            return Ok(lookup.head.clone());
        }
        let started = Instant::now();
        let head = query().await?;
        *last = Some(Lookup {
            started,
            head: head.clone(),
        });
        Ok(head)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use iceberg::NamespaceIdent;

    use super::*;

    fn head(location: &str) -> Option<TableHead> {
        Some(TableHead {
            id: "t".into(),
            metadata_location: location.into(),
        })
    }

    #[tokio::test]
    async fn a_lookup_is_shared_only_by_loads_that_arrived_before_it_started() {
        let lookups = Arc::new(HeadLookups::new());
        let table = TableIdent::new(NamespaceIdent::new("n".into()), "t".into());
        let queries = Arc::new(AtomicUsize::new(0));
        // Sequential loads never share: each needs a lookup that began after it arrived.
        for i in 0..3 {
            let q = queries.clone();
            let got = lookups
                .lookup("w", &table, || async move {
                    q.fetch_add(1, Ordering::SeqCst);
                    Ok(head(&format!("v{i}")))
                })
                .await
                .unwrap();
            assert_eq!(got, head(&format!("v{i}")));
        }
        assert_eq!(queries.load(Ordering::SeqCst), 3);

        // Many loads arriving while one lookup runs are answered by at most one more.
        queries.store(0, Ordering::SeqCst);
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let (lookups, table, q) = (lookups.clone(), table.clone(), queries.clone());
            tasks.push(tokio::spawn(async move {
                lookups
                    .lookup("w", &table, || async move {
                        q.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok(head("v9"))
                    })
                    .await
                    .unwrap()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), head("v9"));
        }
        assert!(
            queries.load(Ordering::SeqCst) < 32,
            "concurrent loads were not coalesced"
        );
    }
}
