//! Coalesced reads that are never stale: concurrent callers asking for one key share a
//! database read, but only one that started after they arrived. Its answer is at least as new
//! as any change acknowledged (by any replica) before the caller arrived, so sharing never
//! serves an older state than asking alone would; under load one read answers many callers.

use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The newest read of one key, and the lock that lets one read run at a time. The newest
/// read sits behind a plain mutex held for a copy only, so checking it and offering a newer
/// value never wait on a running read (under load, offers used to be lost while callers
/// checked the slot, and each loss cost a query).
struct Slot<V> {
    latest: std::sync::Mutex<Option<Read<V>>>,
    running: tokio::sync::Mutex<()>,
}

impl<V: Clone> Slot<V> {
    fn new() -> Self {
        Self {
            latest: std::sync::Mutex::new(None),
            running: tokio::sync::Mutex::new(()),
        }
    }

    /// The latest value if its read started after `arrived`.
    fn fresh(&self, arrived: Instant) -> Option<V> {
        let latest = self.latest.lock().expect("fresh-read slot poisoned");
        latest
            .as_ref()
            .filter(|read| read.started > arrived)
            .map(|read| read.value.clone())
    }

    /// Keeps a value read by a query that started at `started`, unless a newer one is kept.
    fn keep(&self, started: Instant, value: V) {
        let mut latest = self.latest.lock().expect("fresh-read slot poisoned");
        if latest.as_ref().is_none_or(|read| read.started < started) {
            *latest = Some(Read { started, value });
        }
    }
}

#[derive(Debug)]
struct Read<V> {
    started: Instant,
    value: V,
}

pub struct FreshReads<K, V> {
    slots: moka::sync::Cache<K, Arc<Slot<V>>>,
}

impl<K, V> std::fmt::Debug for FreshReads<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FreshReads").finish_non_exhaustive()
    }
}

impl<K, V> FreshReads<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub fn new(capacity: u64) -> Self {
        Self {
            slots: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_idle(Duration::from_secs(60))
                .build(),
        }
    }

    fn slot(&self, key: K) -> Arc<Slot<V>> {
        self.slots.get_with(key, || Arc::new(Slot::new()))
    }

    /// The value of `key`, from a read that started after this call began.
    pub async fn read<F, Fut, E>(&self, key: K, query: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        self.read_since(key, Instant::now(), query).await
    }

    /// The value of `key`, from a read that started after `arrived` (when the request that
    /// asks arrived: one read then serves all of that request's questions).
    pub async fn read_since<F, Fut, E>(&self, key: K, arrived: Instant, query: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let slot = self.slot(key);
        if let Some(value) = slot.fresh(arrived) {
            return Ok(value);
        }
        let _running = slot.running.lock().await;
        // A read that finished while this caller waited may do.
        if let Some(value) = slot.fresh(arrived) {
            return Ok(value);
        }
        let started = Instant::now();
        let value = query().await?;
        slot.keep(started, value.clone());
        Ok(value)
    }

    /// The newest value read so far, without waiting (`None`: none yet).
    pub fn last(&self, key: &K) -> Option<V> {
        let slot = self.slots.get(key)?;
        let latest = slot.latest.lock().expect("fresh-read slot poisoned");
        latest.as_ref().map(|read| read.value.clone())
    }

    /// A value read by another query that started at `started` (one that also read this
    /// value): kept when it is newer than the last read, so callers that arrived before
    /// `started` need no read of their own. Never waits for a running read.
    pub fn offer(&self, key: K, started: Instant, value: V) {
        self.slot(key).keep(started, value);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_read_is_shared_only_by_callers_that_arrived_before_it_started() {
        let reads = Arc::new(FreshReads::<&str, String>::new(10));
        let queries = Arc::new(AtomicUsize::new(0));
        // Sequential callers never share: each needs a read that began after it arrived.
        for i in 0..3 {
            let q = queries.clone();
            let got = reads
                .read("k", || async move {
                    q.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, ()>(format!("v{i}"))
                })
                .await
                .unwrap();
            assert_eq!(got, format!("v{i}"));
        }
        assert_eq!(queries.load(Ordering::SeqCst), 3);

        // Many callers arriving while one read runs are answered by at most one more.
        queries.store(0, Ordering::SeqCst);
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let (reads, q) = (reads.clone(), queries.clone());
            tasks.push(tokio::spawn(async move {
                reads
                    .read("k", || async move {
                        q.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok::<_, ()>("v9".to_owned())
                    })
                    .await
                    .unwrap()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), "v9");
        }
        assert!(
            queries.load(Ordering::SeqCst) < 32,
            "concurrent callers were not coalesced"
        );
    }

    #[tokio::test]
    async fn a_value_offered_by_a_later_query_serves_earlier_arrivals() {
        let reads = FreshReads::<(), i64>::new(1);
        let arrived = Instant::now();
        reads.offer((), Instant::now(), 7);
        let got = reads
            .read_since((), arrived, || async {
                Err::<i64, &str>("no read was needed")
            })
            .await;
        assert_eq!(got, Ok(7));
        // One that started before the caller arrived does not serve it.
        let stale = Instant::now();
        let later = Instant::now();
        reads.offer((), stale, 8);
        let got = reads
            .read_since((), later, || async { Ok::<i64, &str>(9) })
            .await;
        assert_eq!(got, Ok(9));
    }
}
