//! SQLite: the embedded default. WAL mode lets readers run beside the single writer; all
//! writes go through one connection so they queue in the pool instead of failing busy.

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use sqlx::migrate::Migrator;

use super::sql::{event_columns, sql_store};
use super::{AccessCache, EventSignals};
use crate::metrics::DbMetrics;

#[derive(Debug, Clone)]
pub struct SqliteStore {
    readers: SqlitePool,
    writer: SqlitePool,
    metrics: DbMetrics,
    signals: EventSignals,
    access: std::sync::Arc<AccessCache>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file.
    pub async fn open(
        path: &Path,
        max_readers: u32,
        metrics: DbMetrics,
    ) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone().journal_mode(SqliteJournalMode::Wal))
            .await
            .map_err(map_err)?;
        let readers = SqlitePoolOptions::new()
            .max_connections(max_readers.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.read_only(true))
            .await
            .map_err(map_err)?;
        Ok(Self {
            readers,
            writer,
            metrics,
            signals: EventSignals::default(),
            access: Default::default(),
        })
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        Self::MIGRATOR
            .run(&self.writer)
            .await
            .map_err(|e| StoreError::Database(format!("migration failed: {e}")))
    }

    const MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

    /// Write transactions take the write lock when they begin. A deferred one starts as a
    /// reader, and when another process (a replica on the same file) wrote after its first
    /// read, SQLite refuses its first write at once ("database is locked", without waiting
    /// for the busy timeout); taking the lock first makes it wait its turn instead.
    const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

    /// One writer commits at a time, so every committed event is settled. `tx` is always 0
    /// here, so the id alone orders events; comparing the `(tx, id)` row value instead makes
    /// SQLite walk the whole index (about 100 ms per read at a million events), while the
    /// rowid range below takes microseconds.
    const EVENTS_AFTER: &str = concat!(
        "SELECT ",
        event_columns!(),
        ", TRUE AS settled FROM events WHERE +tx >= $1 AND id > $2 ORDER BY id LIMIT $3"
    );
    const EVENT_TAIL: &str = "SELECT 0 AS tail_tx, COALESCE(MAX(id), 0) AS tail_id, \
         NULL AS tx, NULL AS id FROM events";
    const CLEANUP_LOCK: &str = "SELECT TRUE";
    /// SQLite has one writer at a time: claims cannot interleave.
    const LOCATION_LOCK: &str = "SELECT TRUE";
    /// See the PostgreSQL store.
    const AUDIT_TX: &str = "SELECT TRUE";
    /// SQLite runs in the process (no round trips to save) and has no data-modifying CTEs:
    /// changes take the transaction path.
    const SWAP_ONE_STATEMENT: Option<&str> = None;
    const CREATE_NAMESPACE_ONE_STATEMENT: Option<&str> = None;
    /// See the PostgreSQL store.
    const LOCATION_TAKEN: &str = "SELECT 1 FROM tables WHERE id <> $1 AND \
         (location IN (SELECT value FROM json_each($2)) \
          OR (location > $3 AND location < $4)) LIMIT 1";
    /// See the PostgreSQL store.
    const OBJECTS_AT: &str = "SELECT t.kind, w.name AS warehouse, n.name AS namespace, \
         t.name FROM tables t JOIN namespaces n ON n.id = t.namespace_id \
         JOIN warehouses w ON w.id = n.warehouse_id \
         WHERE t.location IN (SELECT value FROM json_each($1)) LIMIT 4";
    const PURGE_POINT: &str = "SELECT tx, id FROM events WHERE created_at_ms < $1 \
         ORDER BY tx DESC, id DESC LIMIT 1";
    const PURGE_AUDIT: &str = "DELETE FROM audit_log WHERE id IN \
         (SELECT id FROM audit_log WHERE at_ms < $1 ORDER BY at_ms LIMIT $2)";
    /// By rowid, for the same reason as `EVENTS_AFTER`.
    const PURGE_UP_TO: &str = "DELETE FROM events WHERE +tx <= $1 AND id <= $2";

    /// Subscribers of this process are woken directly; one server serves a file.
    fn relay(&self) -> Vec<tokio::task::JoinHandle<()>> {
        Vec::new()
    }

    /// The database is a local file: it is never "down" the way a server is.
    fn known_down(&self) -> Option<String> {
        None
    }

    fn acquire_failed(&self) {}

    fn reader(&self) -> &SqlitePool {
        &self.readers
    }

    fn writer(&self) -> &SqlitePool {
        &self.writer
    }
}

sql_store!(SqliteStore, sqlx::Sqlite, sqlx::sqlite::SqliteRow, "sqlite");
