//! PostgreSQL: the production backend, shared by several replicas.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::Connection as _;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};

use super::sql::{event_columns, sql_store};
use super::{AccessCache, EventSignals};
use crate::metrics::DbMetrics;

/// The channel replicas announce committed events on.
const EVENTS_CHANNEL: &str = "serac_events";

/// Settings of the PostgreSQL connection pool.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    metrics: DbMetrics,
    signals: EventSignals,
    health: Arc<Health>,
    access: Arc<AccessCache>,
}

/// Whether the database is known to be unreachable. When the pool cannot hand out a
/// connection, a probe tries a fresh connection outside the pool: if that fails too, the
/// database is down and requests fail at once with 503 (instead of each waiting the acquire
/// timeout) until the probe, retried every half second, succeeds. A busy pool alone never
/// counts as down.
#[derive(Debug)]
struct Health {
    connect: PgConnectOptions,
    down: AtomicBool,
    probing: AtomicBool,
}

/// Idle connections older than this are pinged before use: after a database restart they
/// are dead, and a request should not find out.
const PING_IDLE_AFTER: Duration = Duration::from_secs(1);

impl PostgresStore {
    /// Connects lazily: the pool opens connections on first use, so a server can start (and
    /// report itself unready) while the database is away.
    pub fn connect(options: &PostgresOptions, metrics: DbMetrics) -> Result<Self, StoreError> {
        let connect = PgConnectOptions::from_str(&options.url)
            .map_err(|e| StoreError::Database(format!("invalid PostgreSQL URL: {e}")))?
            .application_name("serac");
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .min_connections(0)
            .acquire_timeout(options.acquire_timeout)
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for > PING_IDLE_AFTER {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            // A connection's buffers grow to the largest message it ever carried (a commit
            // of a table with thousands of snapshots sends megabytes of metadata) and keep
            // that size for as long as it lives: 16 MB across the pool after the benchmark's
            // 2,000-snapshot commits. Back in the pool they shrink to sqlx's default again.
            .after_release(|conn, _| {
                Box::pin(async move {
                    conn.shrink_buffers();
                    Ok(true)
                })
            })
            .connect_lazy_with(connect.clone());
        Ok(Self {
            pool,
            metrics,
            signals: EventSignals::default(),
            access: Arc::default(),
            health: Arc::new(Health {
                connect,
                down: AtomicBool::new(false),
                probing: AtomicBool::new(false),
            }),
        })
    }

    /// `Some(reason)` while the database is known to be down.
    fn known_down(&self) -> Option<String> {
        self.health.down.load(Ordering::Acquire).then(|| {
            "PostgreSQL is unreachable (the server reconnects in the background)".to_owned()
        })
    }

    /// The pool could not hand out a connection, or a query failed as if the database were
    /// gone: find out, with a fresh connection, whether it is down.
    fn acquire_failed(&self) {
        if self.health.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let health = self.health.clone();
        tokio::spawn(async move {
            loop {
                let probe = tokio::time::timeout(Duration::from_secs(2), async {
                    let mut conn = sqlx::PgConnection::connect_with(&health.connect).await?;
                    conn.ping().await?;
                    conn.close().await
                })
                .await;
                // Down means unreachable: a refused or broken connection, or a server that
                // is shutting down or starting. A slow or full server (a timeout, too many
                // connections) is busy, not down; requests keep trying it.
                let unreachable = match &probe {
                    Ok(Err(sqlx::Error::Io(_) | sqlx::Error::Tls(_))) => true,
                    Ok(Err(sqlx::Error::Database(e))) => e
                        .code()
                        .is_some_and(|c| c.starts_with("08") || c.starts_with("57P0")),
                    _ => false,
                };
                if !unreachable {
                    if health.down.swap(false, Ordering::AcqRel) {
                        tracing::info!("PostgreSQL is reachable again");
                    }
                    health.probing.store(false, Ordering::Release);
                    return;
                }
                if !health.down.swap(true, Ordering::AcqRel) {
                    tracing::error!("PostgreSQL is unreachable; answering 503 until it is back");
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }

    /// Runs the embedded migrations (under an advisory lock, so replicas may start together).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        Self::MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Database(format!("migration failed: {e}")))
    }

    const MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

    /// Events after a position; `settled` is false from the first event whose transaction is
    /// not older than every running transaction (an older one may still add events before it).
    const EVENTS_AFTER: &str = concat!(
        "SELECT ",
        event_columns!(),
        ", tx < (pg_snapshot_xmin(pg_current_snapshot())::text::bigint) AS settled \
         FROM events WHERE (tx, id) > ($1, $2) ORDER BY tx, id LIMIT $3"
    );
    /// Every transaction that has not ended yet has an id at least the snapshot's xmin, so
    /// later events come after `(xmin - 1, max)`; the events after it that this snapshot
    /// sees are committed already.
    const EVENT_TAIL: &str = "WITH t AS (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint - 1 AS tx) \
         SELECT t.tx AS tail_tx, 9223372036854775807::bigint AS tail_id, e.tx, e.id \
         FROM t LEFT JOIN events e ON e.tx > t.tx";
    /// One replica at a time cleans up (the lock ends with the transaction).
    const CLEANUP_LOCK: &str = "SELECT pg_try_advisory_xact_lock(5365726163)";
    /// Claims of table and view locations take turns across replicas (the lock ends with the
    /// transaction), so two overlapping claims cannot both pass the check.
    const LOCATION_LOCK: &str = "SELECT pg_advisory_xact_lock(5365726164)";
    /// Audit records are written in the background, after the changes they record, and are
    /// lost with the process if it dies before a batch is written: their transaction does not
    /// wait for its WAL flush (PostgreSQL flushes it within `wal_writer_delay`), so it never
    /// queues behind or delays the flushes of commits that requests wait for.
    const AUDIT_TX: &str = "SET LOCAL synchronous_commit = off";
    /// Write transactions begin as PostgreSQL's default (read committed; rows lock as written).
    const BEGIN_WRITE: &str = "BEGIN";
    /// A commit of one table (no location claim, no idempotency key, one event) as one
    /// statement, its own transaction: one round trip instead of four (BEGIN, UPDATE, INSERT,
    /// COMMIT). The event is written only if the row swapped, and so are the snapshot rows
    /// ($13: the table keeps them apart; $14: the ids removed, $15: the rows added, both JSON
    /// arrays). A whole document ($13 false: views) leaves snapshot rows alone: a table has
    /// none then, and rows left over would be replaced by its next commit (`first`).
    /// Answers the swapped rows (0/1).
    const SWAP_ONE_STATEMENT: Option<&str> = Some(
        "WITH s AS (UPDATE tables SET metadata_location = $1, metadata = $2, updated_at_ms = $3, \
         snapshots_apart = $13 WHERE id = $4 AND metadata_location = $5 RETURNING id), \
         e AS (INSERT INTO events (created_at_ms, event_type, warehouse, namespace, name, \
         request_id, actor, data) SELECT $3, $6, $7, $8, $9, $10, $11, $12 FROM s), \
         d AS (DELETE FROM table_snapshots WHERE table_id = (SELECT id FROM s) AND \
         snapshot_id IN (SELECT json_array_elements_text($14::json)::bigint)), \
         i AS (INSERT INTO table_snapshots (table_id, snapshot_id, sequence_number, timestamp_ms, body) \
         SELECT s.id, a.id, a.seq, a.ts, a.body FROM s, \
         json_to_recordset($15::json) AS a(id bigint, seq bigint, ts bigint, body text)) \
         SELECT COUNT(*) FROM s",
    );
    /// A namespace whose parent exists (or a top-level one) with its event, as one statement
    /// ($14: its owner).
    /// Answers 0 when the parent is missing (the caller then creates the ancestors too).
    const CREATE_NAMESPACE_ONE_STATEMENT: Option<&str> = Some(
        "WITH p AS (SELECT id FROM namespaces WHERE warehouse_id = $2 AND name = $4), \
         n AS (INSERT INTO namespaces (id, warehouse_id, parent_id, name, parent, properties, \
         version, created_at_ms, updated_at_ms, owner_id) SELECT $1, $2, (SELECT id FROM p), $3, $4, \
         $5, 0, $6, $6, $14 WHERE $4 = '' OR EXISTS (SELECT 1 FROM p) RETURNING id), \
         e AS (INSERT INTO events (created_at_ms, event_type, warehouse, namespace, name, \
         request_id, actor, data) SELECT $6, $7, $8, $9, $10, $11, $12, $13 FROM n) \
         SELECT COUNT(*) FROM n",
    );
    /// Another object at, above ($2: the location and its ancestors, a JSON array) or below
    /// ($3..$4: the range of strings starting with the location and a slash) a location.
    const LOCATION_TAKEN: &str = "SELECT 1 FROM tables WHERE id <> $1 AND \
         (location = ANY(ARRAY(SELECT json_array_elements_text($2::json))) \
          OR (location > $3 AND location < $4)) LIMIT 1";
    /// The objects at one of the locations ($1, a JSON array), by the location index.
    const OBJECTS_AT: &str = "SELECT t.kind, w.name AS warehouse, n.name AS namespace, \
         t.name FROM tables t JOIN namespaces n ON n.id = t.namespace_id \
         JOIN warehouses w ON w.id = n.warehouse_id \
         WHERE t.location = ANY(ARRAY(SELECT json_array_elements_text($1::json))) LIMIT 4";
    /// The old events come from the `created_at_ms` index first (materialized, so that the
    /// generic plan of the prepared statement cannot instead walk the primary key backwards
    /// through every event still within retention: 200 ms at a million events, against
    /// 0.5 ms this way).
    const PURGE_POINT: &str = "WITH old AS MATERIALIZED \
         (SELECT tx, id FROM events WHERE created_at_ms < $1) \
         SELECT tx, id FROM old \
         WHERE tx < (pg_snapshot_xmin(pg_current_snapshot())::text::bigint) \
         ORDER BY tx DESC, id DESC LIMIT 1";
    /// A batch of old audit records, found by the `at_ms` index and deleted by primary key
    /// (an `IN (subquery)` becomes a hash join over the whole table: 170 ms at a million
    /// records, against about 1 ms).
    const PURGE_AUDIT: &str = "DELETE FROM audit_log WHERE id = ANY(ARRAY( \
         SELECT id FROM audit_log WHERE at_ms < $1 ORDER BY at_ms LIMIT $2))";
    const PURGE_UP_TO: &str = "DELETE FROM events WHERE (tx, id) <= ($1, $2)";

    /// Two tasks: one NOTIFYs the other replicas after local commits (one announcement
    /// covers every commit made while the previous one was sent), one LISTENs and wakes the
    /// local subscribers.
    fn relay(&self) -> Vec<tokio::task::JoinHandle<()>> {
        vec![
            tokio::spawn(announce(
                self.pool.clone(),
                self.signals.outgoing.subscribe(),
            )),
            tokio::spawn(listen(self.pool.clone(), self.signals.clone())),
        ]
    }

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }
}

async fn announce(pool: PgPool, mut outgoing: tokio::sync::watch::Receiver<u64>) {
    while outgoing.changed().await.is_ok() {
        outgoing.borrow_and_update();
        let sent = sqlx::query("SELECT pg_notify($1, '')")
            .bind(EVENTS_CHANNEL)
            .execute(&pool)
            .await;
        if let Err(e) = sent {
            // Other replicas still find the events on their periodic read.
            tracing::warn!(error = %e, "could not announce committed events to other replicas");
        }
    }
}

/// LISTENs on a connection of its own. After a lost connection it wakes the subscribers
/// anyway (announcements may have been missed) and listens again.
async fn listen(pool: PgPool, signals: EventSignals) {
    loop {
        let listener = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(EVENTS_CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        match listener.await {
            Ok(mut listener) => {
                signals.remote();
                loop {
                    match listener.try_recv().await {
                        Ok(Some(_)) => signals.remote(),
                        Ok(None) => {
                            tracing::warn!("event listener lost its connection; reconnecting");
                            signals.remote();
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "event listener failed; retrying");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "event listener cannot connect yet"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

sql_store!(
    PostgresStore,
    sqlx::Postgres,
    sqlx::postgres::PgRow,
    "postgres"
);
