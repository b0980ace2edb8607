//! The change feed: every committed change has event rows written in its own database
//! transaction (see the store), read back here in order for subscribers, with filters and
//! resumable cursors. Also the audit log writer and the background upkeep (retention).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};

use super::{Catalog, CatalogError, CatalogResult, Warehouse};
use crate::store::{AuditRecord, EventPosition, EventRow, NewEvent, Store, now_ms};

/// Every event type. A subscriber's `types` filter may name these or a kind (`table`).
pub const EVENT_TYPES: &[&str] = &[
    "warehouse.created",
    "warehouse.updated",
    "warehouse.deleted",
    "namespace.created",
    "namespace.updated",
    "namespace.dropped",
    "table.created",
    "table.updated",
    "table.renamed",
    "table.dropped",
    "table.purged",
    "view.created",
    "view.updated",
    "view.renamed",
    "view.dropped",
    "function.created",
];

/// How many events one read takes.
const BATCH: usize = 500;
/// How soon to look again when events wait for an older transaction to end.
const HELD_BACK_RETRY: Duration = Duration::from_millis(20);

/// Which events a subscriber wants; `None` fields match everything.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub warehouse: Option<String>,
    /// This namespace and the namespaces below it.
    pub namespace: Option<Vec<String>>,
    /// A table, view or function name.
    pub table: Option<String>,
    /// Event types (`table.updated`) or kinds (`table`).
    pub types: Option<BTreeSet<String>>,
}

impl EventFilter {
    /// Checks the `types` filter against the known event types.
    pub fn validate(&self) -> CatalogResult<()> {
        for t in self.types.iter().flatten() {
            let known = EVENT_TYPES
                .iter()
                .any(|k| k == t || k.split('.').next() == Some(t.as_str()));
            if !known {
                return Err(CatalogError::BadRequest(format!(
                    "unknown event type '{t}'; known types: {}",
                    EVENT_TYPES.join(", ")
                )));
            }
        }
        Ok(())
    }

    fn matches(&self, event: &EventRow) -> bool {
        if self
            .warehouse
            .as_ref()
            .is_some_and(|w| *w != event.warehouse)
        {
            return false;
        }
        if let Some(ns) = &self.namespace
            && !event.namespace.starts_with(ns)
        {
            return false;
        }
        if let Some(name) = &self.table
            && event.name.as_ref() != Some(name)
        {
            return false;
        }
        if let Some(types) = &self.types {
            let kind = event.event_type.split('.').next().unwrap_or_default();
            if !types.contains(&event.event_type) && !types.contains(kind) {
                return false;
            }
        }
        true
    }
}

/// A cursor as subscribers see it: `<tx>-<id>`, opaque to them.
pub fn format_cursor(position: EventPosition) -> String {
    format!("{}-{}", position.tx, position.id)
}

pub fn parse_cursor(raw: &str) -> CatalogResult<EventPosition> {
    raw.split_once('-')
        .and_then(|(tx, id)| {
            Some(EventPosition {
                tx: tx.parse().ok()?,
                id: id.parse().ok()?,
            })
        })
        .filter(|p| p.tx >= 0 && p.id >= 0)
        .ok_or_else(|| {
            CatalogError::BadRequest(format!(
                "invalid cursor '{}': pass the cursor of the last event received",
                raw.escape_debug()
            ))
        })
}

/// An event as sent to subscribers.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct FeedEvent {
    pub cursor: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub timestamp_ms: i64,
    pub warehouse: String,
    pub namespace: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    pub data: serde_json::Value,
}

impl From<EventRow> for FeedEvent {
    fn from(row: EventRow) -> Self {
        Self {
            cursor: format_cursor(row.position),
            event_type: row.event_type,
            timestamp_ms: row.created_at_ms,
            warehouse: row.warehouse,
            namespace: row.namespace,
            name: row.name,
            request_id: row.request_id,
            actor: row.actor,
            data: serde_json::from_str(&row.data).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// One subscriber's place in the feed.
pub struct Subscription {
    store: Arc<dyn Store>,
    position: EventPosition,
    filter: EventFilter,
    signal: watch::Receiver<u64>,
    poll_interval: Duration,
    /// Events after the start that were committed before the subscription (PostgreSQL: while
    /// an older transaction was still running); they are not sent.
    past: std::collections::HashSet<EventPosition>,
    /// For a principal that is not unrestricted: only events of objects it may read.
    reader: Option<Reader>,
}

/// A restricted subscriber: its principal, and the warehouse ids of names seen so far.
struct Reader {
    principal_id: String,
    warehouse_ids: std::collections::HashMap<String, Option<String>>,
}

impl Reader {
    /// Drops the events the principal may not read, by its grants as they are now (read
    /// once per batch, so a revocation holds for the next batch).
    async fn keep_readable(
        &mut self,
        store: &dyn Store,
        events: Vec<EventRow>,
    ) -> Result<Vec<EventRow>, crate::store::StoreError> {
        if events.is_empty() {
            return Ok(events);
        }
        // A principal deleted since it subscribed reads nothing more.
        let Some(stored) = store
            .principal_access(&self.principal_id, std::time::Instant::now())
            .await?
        else {
            return Ok(Vec::new());
        };
        let access = super::authz::Access::of(&stored);
        if access.is_admin() {
            // Everything, also the events of a warehouse deleted before this batch was read
            // (its name no longer resolves to an id).
            return Ok(events);
        }
        let mut kept = Vec::with_capacity(events.len());
        for event in events {
            if !self.warehouse_ids.contains_key(&event.warehouse) {
                let id = store
                    .warehouse_by_name(&event.warehouse)
                    .await?
                    .map(|w| w.id);
                self.warehouse_ids.insert(event.warehouse.clone(), id);
            }
            let Some(Some(warehouse_id)) = self.warehouse_ids.get(&event.warehouse) else {
                continue;
            };
            let kind = event.event_type.split('.').next().unwrap_or_default();
            let object = match (kind, event.name.as_deref()) {
                ("table", Some(name)) => Some((crate::store::ObjectKind::Table, name)),
                ("view", Some(name)) => Some((crate::store::ObjectKind::View, name)),
                _ => None,
            };
            let namespace = (kind != "warehouse").then_some(event.namespace.as_slice());
            if access.allows(super::Privilege::Read, warehouse_id, namespace, object) {
                kept.push(event);
            }
        }
        Ok(kept)
    }
}

impl Subscription {
    /// The next events that match, in order; waits for them. `None` when `closing` fires.
    /// Database failures are retried (the subscriber stays connected and loses nothing).
    pub async fn next(&mut self, closing: &mut watch::Receiver<bool>) -> Option<Vec<FeedEvent>> {
        let mut wait = Duration::ZERO;
        loop {
            if wait > Duration::ZERO {
                tokio::select! {
                    _ = self.signal.changed() => {}
                    () = tokio::time::sleep(wait) => {}
                    _ = closing.wait_for(|c| *c) => return None,
                }
            }
            if *closing.borrow() {
                return None;
            }
            // Marked seen before reading: a commit after this read wakes the next wait.
            self.signal.borrow_and_update();
            let batch = match self.store.events_after(self.position, BATCH).await {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::warn!(error = %e, "change feed: cannot read events; retrying");
                    wait = Duration::from_secs(1);
                    continue;
                }
            };
            let full = batch.events.len() == BATCH;
            let mut events = batch.events;
            let last = events.last().map(|e| e.position);
            if let Some(reader) = &mut self.reader {
                events = match reader.keep_readable(self.store.as_ref(), events).await {
                    Ok(events) => events,
                    Err(e) => {
                        tracing::warn!(error = %e, "change feed: cannot read grants; retrying");
                        wait = Duration::from_secs(1);
                        continue;
                    }
                };
            }
            if let Some(last) = last {
                self.position = last;
            }
            let past = &mut self.past;
            let matched: Vec<FeedEvent> = events
                .into_iter()
                .filter(|e| past.is_empty() || !past.remove(&e.position))
                .filter(|e| self.filter.matches(e))
                .map(FeedEvent::from)
                .collect();
            if !matched.is_empty() {
                return Some(matched);
            }
            wait = if full {
                Duration::ZERO
            } else if batch.held_back {
                HELD_BACK_RETRY
            } else {
                self.poll_interval
            };
        }
    }
}

/// A queue of audit records written in batches by one task, so mutations do not wait for
/// them. `flush` waits until everything queued before it is written.
#[derive(Debug)]
pub(super) struct AuditLog {
    queue: mpsc::Sender<AuditMessage>,
    pub(super) receiver: std::sync::Mutex<Option<mpsc::Receiver<AuditMessage>>>,
}

#[derive(Debug)]
pub(super) enum AuditMessage {
    Record(AuditRecord),
    Flush(oneshot::Sender<()>),
}

/// Records queued beyond this are dropped (and counted) rather than slowing requests.
const AUDIT_QUEUE: usize = 65_536;

impl AuditLog {
    pub(super) fn new() -> Self {
        let (queue, receiver) = mpsc::channel(AUDIT_QUEUE);
        Self {
            queue,
            receiver: std::sync::Mutex::new(Some(receiver)),
        }
    }
}

impl Catalog {
    /// An event of a change about to be written, attributed to the current request.
    pub(super) fn event(
        &self,
        caller: &super::Caller,
        event_type: &'static str,
        warehouse: &Warehouse,
        namespace: &[String],
        name: Option<&str>,
        data: serde_json::Value,
    ) -> NewEvent {
        debug_assert!(EVENT_TYPES.contains(&event_type));
        NewEvent {
            event_type,
            warehouse: warehouse.name.clone(),
            namespace: namespace.to_vec(),
            name: name.map(str::to_owned),
            data: data.to_string(),
            request_id: caller.request_id.clone(),
            actor: Some(caller.principal.name.clone()),
        }
    }

    /// Subscribes to the feed after `cursor`, or from now on without one.
    pub async fn subscribe(
        &self,
        caller: &super::Caller,
        filter: EventFilter,
        cursor: Option<&str>,
    ) -> CatalogResult<Subscription> {
        if let Some(name) = &filter.warehouse {
            // A warehouse that does not exist is a 404, not an empty feed.
            self.warehouse(Some(name)).await?;
        }
        // Every principal may subscribe; a restricted one gets only the events of objects it
        // may read (`Reader`). Without an id (unauthenticated) it would get nothing: refused.
        let reader = if caller.principal.unrestricted {
            None
        } else {
            let Some(id) = caller.principal.id.clone() else {
                return Err(CatalogError::Forbidden {
                    privilege: super::Privilege::Read.name(),
                    message: format!(
                        "principal '{}' lacks the 'read' privilege on every object of the change feed",
                        caller.principal.name
                    ),
                });
            };
            Some(Reader {
                principal_id: id,
                warehouse_ids: std::collections::HashMap::new(),
            })
        };
        filter.validate()?;
        let signal = self.store.event_signal();
        let mut past = std::collections::HashSet::new();
        let position = match cursor {
            Some(raw) => {
                let position = parse_cursor(raw)?;
                if let Some(floor) = self.store.event_floor().await?
                    && position < floor
                {
                    return Err(CatalogError::CursorExpired(format!(
                        "cursor '{raw}' is older than the retained events (retention deleted \
                         events up to '{}'); subscribe without a cursor to start from now",
                        format_cursor(floor)
                    )));
                }
                position
            }
            None => {
                let tail = self.store.event_tail().await?;
                past.extend(tail.committed);
                tail.position
            }
        };
        Ok(Subscription {
            store: self.store.clone(),
            position,
            filter,
            signal,
            poll_interval: self.settings.event_poll_interval,
            past,
            reader,
        })
    }

    /// Queues an audit record (written by the audit task).
    pub fn audit(&self, record: AuditRecord) {
        if self
            .audit
            .queue
            .try_send(AuditMessage::Record(record))
            .is_err()
        {
            self.metrics
                .audit_records
                .with_label_values(&["dropped"])
                .inc();
        }
    }

    /// Waits until every audit record queued so far is written (or the writer is gone).
    pub async fn flush_audit(&self) {
        let (done, wait) = oneshot::channel();
        if self
            .audit
            .queue
            .send(AuditMessage::Flush(done))
            .await
            .is_ok()
        {
            let _ = wait.await;
        }
    }

    /// The newest audit records, newest first, after a flush.
    pub async fn audit_records(
        &self,
        caller: &super::Caller,
        limit: usize,
    ) -> CatalogResult<Vec<AuditRecord>> {
        self.authorize(
            caller,
            super::Privilege::Admin,
            super::authz::Target::Server,
        )
        .await?;
        self.flush_audit().await;
        Ok(self.store.audit_records(limit).await?)
    }
}

pub(super) async fn write_audit(catalog: Arc<Catalog>, mut receiver: mpsc::Receiver<AuditMessage>) {
    let mut messages = Vec::with_capacity(512);
    let mut records = Vec::with_capacity(512);
    while receiver.recv_many(&mut messages, 512).await > 0 {
        let mut flushes = Vec::new();
        for message in messages.drain(..) {
            match message {
                AuditMessage::Record(r) => records.push(r),
                AuditMessage::Flush(done) => flushes.push(done),
            }
        }
        if !records.is_empty() {
            let count = records.len() as u64;
            let mut attempt = 0;
            loop {
                match catalog.store.insert_audit_records(&records).await {
                    Ok(()) => {
                        catalog
                            .metrics
                            .audit_records
                            .with_label_values(&["written"])
                            .inc_by(count);
                        break;
                    }
                    Err(e) if attempt < 5 => {
                        attempt += 1;
                        tracing::warn!(error = %e, attempt, "audit records not written yet; retrying");
                        tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, records = count, "audit records dropped");
                        catalog
                            .metrics
                            .audit_records
                            .with_label_values(&["dropped"])
                            .inc_by(count);
                        break;
                    }
                }
            }
            records.clear();
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// Deletes events older than the retention, on one replica at a time (the store's cleanup
/// lock decides which).
pub(super) async fn retain_events(catalog: Arc<Catalog>) {
    let retention = catalog.settings.event_retention;
    let every = (retention / 2).clamp(Duration::from_secs(1), Duration::from_secs(60));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let cutoff = now_ms() - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        match catalog.store.purge_events(cutoff).await {
            Ok(Some(0)) => {}
            Ok(Some(n)) => {
                tracing::info!(deleted = n, "change feed: events past retention deleted")
            }
            Ok(None) => tracing::debug!("change feed: another replica is cleaning up events"),
            Err(e) => tracing::warn!(error = %e, "change feed: cannot delete old events"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let p = EventPosition { tx: 7, id: 42 };
        assert_eq!(parse_cursor(&format_cursor(p)).unwrap(), p);
        for bad in ["", "7", "7-", "-1-2", "a-b", "1-2-3"] {
            assert!(parse_cursor(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn filters_match_kind_type_namespace_and_name() {
        let event = EventRow {
            position: EventPosition::default(),
            created_at_ms: 0,
            event_type: "table.updated".into(),
            warehouse: "w".into(),
            namespace: vec!["a".into(), "b".into()],
            name: Some("t".into()),
            request_id: None,
            actor: None,
            data: "{}".into(),
        };
        let types = |t: &[&str]| Some(t.iter().map(|s| s.to_string()).collect());
        let f = |filter: EventFilter| filter.matches(&event);
        assert!(f(EventFilter::default()));
        assert!(f(EventFilter {
            types: types(&["table"]),
            ..Default::default()
        }));
        assert!(f(EventFilter {
            types: types(&["table.updated"]),
            ..Default::default()
        }));
        assert!(!f(EventFilter {
            types: types(&["view"]),
            ..Default::default()
        }));
        assert!(f(EventFilter {
            namespace: Some(vec!["a".into()]),
            ..Default::default()
        }));
        assert!(!f(EventFilter {
            namespace: Some(vec!["b".into()]),
            ..Default::default()
        }));
        assert!(!f(EventFilter {
            table: Some("u".into()),
            ..Default::default()
        }));
        assert!(!f(EventFilter {
            warehouse: Some("x".into()),
            ..Default::default()
        }));
        assert!(
            EventFilter {
                types: types(&["tables"]),
                ..Default::default()
            }
            .validate()
            .is_err()
        );
    }
}
