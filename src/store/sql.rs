//! The one SQL implementation of [`Store`](super::Store), written once and instantiated for
//! each sqlx backend by [`sql_store!`]. Both backends accept `$N` placeholders, `RETURNING`,
//! and `ON CONFLICT`, so the statements are shared verbatim.

use std::collections::HashMap;

use super::{SnapshotChanges, StoreError};

/// Maps a sqlx error to a [`StoreError`]; foreign-key violations mean a missing reference.
pub(super) fn map_err(err: sqlx::Error) -> StoreError {
    match &err {
        sqlx::Error::Database(db) => {
            if db.is_unique_violation() {
                return StoreError::AlreadyExists;
            }
            if db.is_foreign_key_violation() {
                return StoreError::MissingReference;
            }
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            // PostgreSQL: connection exceptions (08) and operator intervention (57, e.g. the
            // server shutting down). SQLite: busy (5) and locked (6).
            // SQLite reports extended codes (517 busy snapshot, 262 locked shared cache, ...);
            // the primary code is the low byte.
            let sqlite_busy = code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6));
            if code.starts_with("08") || code.starts_with("57") || sqlite_busy {
                return StoreError::Unavailable(db.message().to_owned());
            }
            StoreError::Database(err.to_string())
        }
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(err.to_string()),
        _ => StoreError::Database(err.to_string()),
    }
}

pub(super) fn parse_properties(text: &str) -> Result<HashMap<String, String>, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Database(format!("stored properties are not a JSON map: {e}")))
}

pub(super) fn properties_json(properties: &HashMap<String, String>) -> String {
    serde_json::to_string(properties).expect("a string map always serializes")
}

pub(super) fn page_limit(limit: Option<usize>) -> i64 {
    limit.map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX))
}

pub(super) const INSERT_IDEMPOTENCY_KEY: &str = "INSERT INTO idempotency_keys \
     (key, operation, status, body, created_at_ms) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (key) DO UPDATE SET operation = excluded.operation, status = excluded.status, \
     body = excluded.body, created_at_ms = excluded.created_at_ms \
     WHERE idempotency_keys.created_at_ms < $6";

pub(super) const INSERT_EVENT: &str = "INSERT INTO events (created_at_ms, event_type, warehouse, \
     namespace, name, request_id, actor, data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// The columns of an event row, for the backends' `EVENTS_AFTER` statements.
macro_rules! event_columns {
    () => {
        "tx, id, created_at_ms, event_type, warehouse, namespace, name, request_id, actor, data"
    };
}
pub(super) use event_columns;

pub(super) const NAMESPACE_ID: &str =
    "SELECT id FROM namespaces WHERE warehouse_id = $1 AND name = $2";

/// Binds an event's fields after the query's own, in the order of `INSERT_EVENT`'s columns
/// from `event_type` on.
macro_rules! bind_event {
    ($query:expr, $event:expr) => {
        $query
            .bind($event.event_type)
            .bind(&$event.warehouse)
            .bind(join_levels(&$event.namespace))
            .bind($event.name.as_deref())
            .bind($event.request_id.as_deref())
            .bind($event.actor.as_deref())
            .bind(&$event.data)
    };
}

pub(super) use bind_event;

/// Selects `$columns` of the table or view named by warehouse ($1), namespace ($2), name
/// ($3) and kind ($4).
macro_rules! object_by_name {
    ($columns:expr) => {
        concat!(
            "SELECT ",
            $columns,
            " FROM tables t JOIN namespaces n ON n.id = t.namespace_id \
             WHERE n.warehouse_id = $1 AND n.name = $2 AND t.name = $3 AND t.kind = $4"
        )
    };
}

pub(super) const TABLE_ID: &str = object_by_name!("t.id");
/// The head, and the epochs read in the same statement (a load's decision needs the access
/// epoch, and the credentials it hands out the warehouse epoch).
pub(super) const OBJECT_HEAD: &str = object_by_name!(
    "t.id, t.metadata_location, (SELECT n FROM access_epoch) AS access_epoch, \
     (SELECT warehouses_n FROM access_epoch) AS warehouse_epoch"
);

/// The columns of a warehouse row, with the warehouse epoch read in the same statement;
/// `FROM warehouses` and a `WHERE` or `ORDER BY` follow.
macro_rules! warehouse_columns {
    () => {
        "SELECT id, name, location, properties, created_at_ms, storage, \
         (SELECT warehouses_n FROM access_epoch) AS warehouse_epoch FROM warehouses "
    };
}
pub(super) use warehouse_columns;
/// The snapshots a table (`t`) keeps apart, as a JSON array in commit order, in the same
/// statement as its row (so both are of one version); NULL when its document is whole. Both
/// backends have `string_agg` with an `ORDER BY` (SQLite since 3.44).
macro_rules! apart_snapshots {
    () => {
        "CASE WHEN t.snapshots_apart THEN (SELECT '[' || COALESCE(string_agg(s.body, ',' \
         ORDER BY s.sequence_number, s.timestamp_ms, s.snapshot_id), '') || ']' \
         FROM table_snapshots s WHERE s.table_id = t.id) END AS snapshots"
    };
}

pub(super) const OBJECT_ROW: &str = object_by_name!(concat!(
    "t.id, t.metadata_location, t.metadata, ",
    apart_snapshots!()
));
pub(super) const TABLE_BY_ID: &str = concat!(
    "SELECT t.id, t.metadata_location, t.metadata, ",
    apart_snapshots!(),
    " FROM tables t WHERE t.id = $1"
);

/// The rows of the snapshots a swap adds, as a JSON array that PostgreSQL's one-statement
/// swap reads with `json_to_recordset`.
pub(super) fn added_snapshots_json(changes: Option<&SnapshotChanges<'_>>) -> String {
    #[derive(serde::Serialize)]
    struct Added<'a> {
        id: i64,
        seq: i64,
        ts: i64,
        body: &'a str,
    }
    let added: Vec<Added> = changes
        .map(|c| {
            c.added
                .iter()
                .map(|a| Added {
                    id: a.id,
                    seq: a.sequence_number,
                    ts: a.timestamp_ms,
                    body: a.body,
                })
                .collect()
        })
        .unwrap_or_default();
    serde_json::to_string(&added).expect("snapshot rows always serialize")
}

/// Implements [`Store`](super::Store) for a type with `reader()` and `writer()` pools.
/// Grants with their objects' names, as `grant_from_row` reads them; a `WHERE` follows.
macro_rules! grant_rows {
    () => {
        "SELECT r.name AS role, g.privilege, g.warehouse_id, COALESCE(n.name, tn.name) AS ns, \
         t.name AS table_name, t.kind FROM grants g JOIN roles r ON r.id = g.role_id \
         LEFT JOIN namespaces n ON n.id = g.namespace_id \
         LEFT JOIN tables t ON t.id = g.table_id \
         LEFT JOIN namespaces tn ON tn.id = t.namespace_id "
    };
}

pub(super) use grant_rows;

macro_rules! sql_store {
    ($store:ty, $db:ty, $row:ty, $backend:literal) => {
        use std::collections::HashMap;

        use async_trait::async_trait;
        use sqlx::Row as _;

        use $crate::store::sql::{
            INSERT_EVENT, INSERT_IDEMPOTENCY_KEY, NAMESPACE_ID, OBJECT_HEAD, OBJECT_ROW, TABLE_BY_ID, TABLE_ID, added_snapshots_json, bind_event, grant_rows,
            warehouse_columns, map_err, page_limit, parse_properties, properties_json,
        };
        use $crate::store::{
            AuditRecord, Change, EntityCounts, EventBatch, EventPosition, EventRow, EventTail,
            IdempotencyEntry, IdempotencyRecord, NamespaceRow, Epochs, WarehouseContents, WarehouseDeletion, NewTable, ObjectAt, ObjectKind, PageQuery,
            Store, StoreError, StoreResult, TableHead, TableRow, TableSwap, WarehouseRow, PrincipalRow, SigningKeyRow, ApiKeyRow, RoleRow, GrantRow, GrantObject, PrincipalAccess, PurgeTask,
            join_levels, now_ms, split_levels,
        };

        type Conn = sqlx::pool::PoolConnection<$db>;

        impl $store {
            /// A connection from `pool`; the wait is recorded as the pool's acquire wait.
            async fn conn(&self, pool: &sqlx::Pool<$db>) -> StoreResult<Conn> {
                if let Some(reason) = self.known_down() {
                    return Err(StoreError::Unavailable(reason));
                }
                let started = std::time::Instant::now();
                let conn = pool.acquire().await.map_err(map_err);
                self.metrics.acquire_wait.observe(started.elapsed().as_secs_f64());
                if matches!(conn, Err(StoreError::Unavailable(_))) {
                    self.acquire_failed();
                }
                conn
            }

            async fn read_conn(&self) -> StoreResult<Conn> {
                self.conn(self.reader()).await
            }

            async fn write_conn(&self) -> StoreResult<Conn> {
                self.conn(self.writer()).await
            }

            /// One row of a table or view by name (`sql` is built by `object_by_name!`).
            async fn object_by_name(
                &self,
                sql: &'static str,
                kind: ObjectKind,
                warehouse_id: &str,
                namespace: &[String],
                name: &str,
            ) -> StoreResult<Option<$row>> {
                sqlx::query(sql)
                    .bind(warehouse_id)
                    .bind(join_levels(namespace))
                    .bind(name)
                    .bind(kind.as_str())
                    .fetch_optional(&mut *self.read_conn().await?)
                    .await
                    .map_err(map_err)
            }

            /// Times one store operation (the timer records when dropped).
            fn time(&self, operation: &str) -> prometheus::HistogramTimer {
                self.metrics.query_duration.with_label_values(&[operation]).start_timer()
            }
        }

        async fn begin(conn: &mut Conn) -> StoreResult<sqlx::Transaction<'_, $db>> {
            sqlx::Connection::begin_with(&mut **conn, <$store>::BEGIN_WRITE)
                .await
                .map_err(map_err)
        }

        /// Begins the transaction of a change and records its idempotency key in it.
        async fn begin_change<'c>(
            conn: &'c mut Conn,
            change: &Change<'_>,
        ) -> StoreResult<sqlx::Transaction<'c, $db>> {
            let mut tx = begin(conn).await?;
            record_key(&mut *tx, change.idempotency).await?;
            Ok(tx)
        }

        /// The id of a namespace, by warehouse and joined name.
        async fn namespace_id<'c, E>(
            executor: E,
            warehouse_id: &str,
            levels: &[String],
        ) -> StoreResult<Option<String>>
        where
            E: sqlx::Executor<'c, Database = $db>,
        {
            sqlx::query_scalar(NAMESPACE_ID)
                .bind(warehouse_id)
                .bind(join_levels(levels))
                .fetch_optional(executor)
                .await
                .map_err(map_err)
        }

        /// Writes a change's events inside its transaction.
        async fn write_events(
            tx: &mut sqlx::Transaction<'_, $db>,
            change: &Change<'_>,
        ) -> StoreResult<()> {
            let now = now_ms();
            for event in &change.events {
                bind_event!(sqlx::query(INSERT_EVENT).bind(now), event)
                    .execute(&mut **tx)
                    .await
                    .map_err(map_err)?;
            }
            Ok(())
        }

        fn event_from_row(row: &$row) -> StoreResult<EventRow> {
            let namespace: String = row.try_get("namespace").map_err(map_err)?;
            Ok(EventRow {
                position: EventPosition {
                    tx: row.try_get("tx").map_err(map_err)?,
                    id: row.try_get("id").map_err(map_err)?,
                },
                created_at_ms: row.try_get("created_at_ms").map_err(map_err)?,
                event_type: row.try_get("event_type").map_err(map_err)?,
                warehouse: row.try_get("warehouse").map_err(map_err)?,
                namespace: split_levels(&namespace),
                name: row.try_get("name").map_err(map_err)?,
                request_id: row.try_get("request_id").map_err(map_err)?,
                actor: row.try_get("actor").map_err(map_err)?,
                data: row.try_get("data").map_err(map_err)?,
            })
        }

        /// A grant from a row of `GRANT_COLUMNS`.
        fn grant_from_row(row: &$row) -> StoreResult<GrantRow> {
            let ns: Option<String> = row.try_get("ns").map_err(map_err)?;
            let table: Option<String> = row.try_get("table_name").map_err(map_err)?;
            let kind: Option<String> = row.try_get("kind").map_err(map_err)?;
            let object = match (ns, table) {
                (Some(ns), Some(table)) => GrantObject::Object(
                    if kind.as_deref() == Some("view") { ObjectKind::View } else { ObjectKind::Table },
                    split_levels(&ns),
                    table,
                ),
                (Some(ns), None) => GrantObject::Namespace(split_levels(&ns)),
                _ => GrantObject::Warehouse,
            };
            Ok(GrantRow {
                role: row.try_get("role").map_err(map_err)?,
                privilege: row.try_get("privilege").map_err(map_err)?,
                warehouse_id: row.try_get("warehouse_id").map_err(map_err)?,
                object,
            })
        }

        /// The `target` column of a grant and its namespace and table ids, looked up by name
        /// (`None`: the namespace or object does not exist).
        async fn grant_target(
            conn: &mut Conn,
            grant: &GrantRow,
        ) -> StoreResult<Option<(String, Option<String>, Option<String>)>> {
            Ok(match &grant.object {
                GrantObject::Warehouse => Some(("w".to_owned(), None, None)),
                GrantObject::Namespace(levels) => namespace_id(&mut **conn, &grant.warehouse_id, levels)
                    .await?
                    .map(|id| (format!("n:{id}"), Some(id), None)),
                GrantObject::Object(kind, levels, name) => {
                    let id: Option<String> = sqlx::query_scalar(
                        "SELECT t.id FROM tables t JOIN namespaces n ON n.id = t.namespace_id \
                         WHERE n.warehouse_id = $1 AND n.name = $2 AND t.name = $3 AND t.kind = $4",
                    )
                    .bind(&grant.warehouse_id)
                    .bind(join_levels(levels))
                    .bind(name)
                    .bind(kind.as_str())
                    .fetch_optional(&mut **conn)
                    .await
                    .map_err(map_err)?;
                    id.map(|id| (format!("t:{id}"), None, Some(id)))
                }
            })
        }

        fn api_key_from_row(row: &$row) -> StoreResult<ApiKeyRow> {
            Ok(ApiKeyRow {
                id: row.try_get("id").map_err(map_err)?,
                principal_id: row.try_get("principal_id").map_err(map_err)?,
                principal_name: row.try_get("name").map_err(map_err)?,
                principal_admin: row.try_get("admin").map_err(map_err)?,
                secret_hash: row.try_get("secret_hash").map_err(map_err)?,
                created_at_ms: row.try_get("created_at_ms").map_err(map_err)?,
                expires_at_ms: row.try_get("expires_at_ms").map_err(map_err)?,
                last_used_at_ms: row.try_get("last_used_at_ms").map_err(map_err)?,
            })
        }

        fn principal_from_row(row: &$row) -> StoreResult<PrincipalRow> {
            Ok(PrincipalRow {
                id: row.try_get("id").map_err(map_err)?,
                name: row.try_get("name").map_err(map_err)?,
                client_id: row.try_get("client_id").map_err(map_err)?,
                secret_hash: row.try_get("secret_hash").map_err(map_err)?,
                admin: row.try_get("admin").map_err(map_err)?,
                external: row.try_get("external").map_err(map_err)?,
                created_at_ms: row.try_get("created_at_ms").map_err(map_err)?,
            })
        }

        fn warehouse_from_row(row: &$row) -> StoreResult<WarehouseRow> {
            Ok(WarehouseRow {
                id: row.try_get("id").map_err(map_err)?,
                name: row.try_get("name").map_err(map_err)?,
                location: row.try_get("location").map_err(map_err)?,
                properties: parse_properties(row.try_get("properties").map_err(map_err)?)?,
                storage: row.try_get("storage").map_err(map_err)?,
                created_at_ms: row.try_get("created_at_ms").map_err(map_err)?,
                epoch: row.try_get("warehouse_epoch").map_err(map_err)?,
            })
        }

        fn namespace_from_row(row: &$row) -> StoreResult<NamespaceRow> {
            Ok(NamespaceRow {
                id: row.try_get("id").map_err(map_err)?,
                levels: split_levels(row.try_get("name").map_err(map_err)?),
                properties: parse_properties(row.try_get("properties").map_err(map_err)?)?,
                version: row.try_get("version").map_err(map_err)?,
            })
        }

        fn table_from_row(row: &$row) -> StoreResult<TableRow> {
            Ok(TableRow {
                id: row.try_get("id").map_err(map_err)?,
                metadata_location: row.try_get("metadata_location").map_err(map_err)?,
                metadata: row.try_get("metadata").map_err(map_err)?,
                snapshots: row.try_get("snapshots").map_err(map_err)?,
            })
        }

        /// Records the idempotency key inside a transaction; fails when it is taken.
        async fn record_key<'c, E>(executor: E, record: Option<&IdempotencyRecord>) -> StoreResult<()>
        where
            E: sqlx::Executor<'c, Database = $db>,
        {
            let Some(record) = record else {
                return Ok(());
            };
            let done = sqlx::query(INSERT_IDEMPOTENCY_KEY)
                .bind(&record.key)
                .bind(&record.operation)
                .bind(i32::from(record.status))
                .bind(record.body.as_deref())
                .bind(record.created_at_ms)
                .bind(record.expired_before_ms)
                .execute(executor)
                .await
                .map_err(map_err)?;
            if done.rows_affected() == 0 {
                return Err(StoreError::IdempotencyKeyUsed);
            }
            Ok(())
        }

        impl $store {
            /// Fails with `LocationTaken` when another table or view than `id` lies at, above
            /// or below `claim`, then records the claim on row `id`.
            /// Writes the snapshot rows of a swapped table (see [`TableSwap::snapshots`]).
            async fn write_snapshots(
                tx: &mut sqlx::Transaction<'_, $db>,
                swap: &TableSwap<'_>,
            ) -> StoreResult<()> {
                let everything = swap.snapshots.as_ref().is_none_or(|c| c.first);
                if everything {
                    sqlx::query("DELETE FROM table_snapshots WHERE table_id = $1")
                        .bind(swap.table_id)
                        .execute(&mut **tx)
                        .await
                        .map_err(map_err)?;
                }
                let Some(changes) = &swap.snapshots else {
                    return Ok(());
                };
                // A first swap has nothing to remove: every row went above.
                for id in &changes.removed {
                    sqlx::query("DELETE FROM table_snapshots WHERE table_id = $1 AND snapshot_id = $2")
                        .bind(swap.table_id)
                        .bind(id)
                        .execute(&mut **tx)
                        .await
                        .map_err(map_err)?;
                }
                for added in &changes.added {
                    sqlx::query(
                        "INSERT INTO table_snapshots (table_id, snapshot_id, sequence_number, \
                         timestamp_ms, body) VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(swap.table_id)
                    .bind(added.id)
                    .bind(added.sequence_number)
                    .bind(added.timestamp_ms)
                    .bind(added.body)
                    .execute(&mut **tx)
                    .await
                    .map_err(map_err)?;
                }
                Ok(())
            }

            async fn claim_location(
                tx: &mut sqlx::Transaction<'_, $db>,
                id: &str,
                claim: &$crate::store::ClaimedLocation,
            ) -> StoreResult<()> {
                sqlx::query(Self::LOCATION_LOCK).execute(&mut **tx).await.map_err(map_err)?;
                let ancestors = serde_json::to_string(&claim.self_and_ancestors)
                    .map_err(|e| StoreError::Database(e.to_string()))?;
                let taken: Option<i32> = sqlx::query_scalar(Self::LOCATION_TAKEN)
                    .bind(id)
                    .bind(ancestors)
                    .bind(format!("{}/", claim.location))
                    .bind(format!("{}0", claim.location))
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(map_err)?;
                if taken.is_some() {
                    return Err(StoreError::LocationTaken);
                }
                sqlx::query("UPDATE tables SET location = $1 WHERE id = $2")
                    .bind(&claim.location)
                    .bind(id)
                    .execute(&mut **tx)
                    .await
                    .map_err(map_err)?;
                Ok(())
            }
        }

        fn swap_query<'q>(
            swap: &'q TableSwap<'q>,
        ) -> sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments> {
            sqlx::query(
                "UPDATE tables SET metadata_location = $1, metadata = $2, updated_at_ms = $3, \
                 snapshots_apart = $6 WHERE id = $4 AND metadata_location = $5",
            )
            .bind(swap.new_location)
            .bind(swap.new_metadata)
            .bind(now_ms())
            .bind(swap.table_id)
            .bind(swap.expected_location)
            .bind(swap.snapshots.is_some())
        }

        impl $store {
            /// Commits when the statement changed a row (with the change's events), else rolls
            /// back (the idempotency key recorded in the transaction goes with it). Committed
            /// events wake this process's change-feed subscribers and are announced to the
            /// other replicas.
            async fn finish(
                &self,
                mut tx: sqlx::Transaction<'_, $db>,
                changed: bool,
                change: &Change<'_>,
            ) -> StoreResult<bool> {
                if !changed {
                    tx.rollback().await.map_err(map_err)?;
                    return Ok(false);
                }
                write_events(&mut tx, change).await?;
                // A failed COMMIT may still have committed (the answer was lost).
                tx.commit()
                    .await
                    .map_err(|e| StoreError::OutcomeUnknown(e.to_string()))?;
                self.committed(change);
                Ok(true)
            }

            /// After a change committed: counts its events and wakes the change feed.
            fn committed(&self, change: &Change<'_>) {
                if !change.events.is_empty() {
                    let count = u64::try_from(change.events.len()).unwrap_or(u64::MAX);
                    self.metrics.events_published.inc_by(count);
                    self.signals.committed();
                }
            }

            /// The epochs, from a read that started after `since` (see
            /// [`AccessCache`](crate::store::AccessCache)).
            async fn read_epochs(&self, since: std::time::Instant) -> StoreResult<Epochs> {
                self.access
                    .epochs
                    .read_since((), since, || async {
                        let _t = self.time("access_epoch");
                        let row = sqlx::query("SELECT n, warehouses_n FROM access_epoch")
                            .fetch_one(&mut *self.read_conn().await?)
                            .await
                            .map_err(map_err)?;
                        Ok(Epochs {
                            access: row.try_get("n").map_err(map_err)?,
                            warehouses: row.try_get("warehouses_n").map_err(map_err)?,
                        })
                    })
                    .await
            }

            /// The access epoch, from a read that started after `since`.
            async fn access_epoch(&self, since: std::time::Instant) -> StoreResult<i64> {
                Ok(self.read_epochs(since).await?.access)
            }

            /// The error of a change made in one statement: once the statement was sent, a
            /// lost connection leaves unknown whether it committed.
            fn one_statement_error(err: sqlx::Error) -> StoreError {
                match err {
                    sqlx::Error::Io(_)
                    | sqlx::Error::Protocol(_)
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::WorkerCrashed => StoreError::OutcomeUnknown(err.to_string()),
                    other => map_err(other),
                }
            }
        }

        #[async_trait]
        impl Store for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            async fn ping(&self) -> StoreResult<()> {
                let _t = self.time("ping");
                sqlx::query("SELECT 1")
                    .execute(&mut *self.read_conn().await?)
                    .await
                    .map_err(map_err)?;
                Ok(())
            }

            async fn schema_current(&self) -> StoreResult<bool> {
                let _t = self.time("schema_current");
                let applied: Option<i64> = sqlx::query_scalar(
                    "SELECT MAX(version) FROM _sqlx_migrations WHERE success",
                )
                .fetch_one(&mut *self.read_conn().await?)
                .await
                .map_err(map_err)?;
                let known = Self::MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
                Ok(applied.unwrap_or(0) >= known)
            }

            fn suspect_outage(&self) {
                self.acquire_failed();
            }

            fn pool_stats(&self) -> (u32, u32) {
                let (r, w) = (self.reader(), self.writer());
                if std::ptr::eq(r, w) {
                    (r.size(), u32::try_from(r.num_idle()).unwrap_or(u32::MAX))
                } else {
                    let idle = r.num_idle() + w.num_idle();
                    (r.size() + w.size(), u32::try_from(idle).unwrap_or(u32::MAX))
                }
            }

            async fn entity_counts(&self) -> StoreResult<EntityCounts> {
                let _t = self.time("entity_counts");
                let row = sqlx::query(
                    "SELECT (SELECT COUNT(*) FROM warehouses) AS warehouses, \
                     (SELECT COUNT(*) FROM namespaces) AS namespaces, \
                     (SELECT COUNT(*) FROM tables WHERE kind = 'table') AS tables, \
                     (SELECT COUNT(*) FROM tables WHERE kind = 'view') AS views",
                )
                .fetch_one(&mut *self.read_conn().await?)
                .await
                .map_err(map_err)?;
                Ok(EntityCounts {
                    warehouses: row.try_get("warehouses").map_err(map_err)?,
                    namespaces: row.try_get("namespaces").map_err(map_err)?,
                    tables: row.try_get("tables").map_err(map_err)?,
                    views: row.try_get("views").map_err(map_err)?,
                })
            }

            async fn create_warehouse(&self, row: &WarehouseRow, change: &Change<'_>) -> StoreResult<()> {
                let _t = self.time("create_warehouse");
                let mut conn = self.write_conn().await?;
                let mut tx = begin_change(&mut conn, change).await?;
                sqlx::query(
                    "INSERT INTO warehouses (id, name, location, properties, created_at_ms, storage) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&row.id)
                .bind(&row.name)
                .bind(&row.location)
                .bind(properties_json(&row.properties))
                .bind(row.created_at_ms)
                .bind(row.storage.as_deref())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                self.finish(tx, true, change).await?;
                Ok(())
            }

            async fn warehouse_by_name(&self, name: &str) -> StoreResult<Option<WarehouseRow>> {
                let _t = self.time("warehouse_by_name");
                let row = sqlx::query(concat!(warehouse_columns!(), "WHERE name = $1"))
                    .bind(name)
                    .fetch_optional(&mut *self.read_conn().await?)
                    .await
                    .map_err(map_err)?;
                row.as_ref().map(warehouse_from_row).transpose()
            }

            async fn warehouse_by_id(&self, id: &str) -> StoreResult<Option<WarehouseRow>> {
                let _t = self.time("warehouse_by_id");
                let row = sqlx::query(concat!(warehouse_columns!(), "WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(&mut *self.read_conn().await?)
                    .await
                    .map_err(map_err)?;
                row.as_ref().map(warehouse_from_row).transpose()
            }

            async fn list_warehouses(&self) -> StoreResult<Vec<WarehouseRow>> {
                let _t = self.time("list_warehouses");
                let rows = sqlx::query(concat!(warehouse_columns!(), "ORDER BY name"))
                    .fetch_all(&mut *self.read_conn().await?)
                    .await
                    .map_err(map_err)?;
                rows.iter().map(warehouse_from_row).collect()
            }

            async fn set_warehouse_storage(
                &self,
                id: &str,
                expected: Option<&str>,
                storage: &str,
                change: &Change<'_>,
            ) -> StoreResult<bool> {
                let _t = self.time("set_warehouse_storage");
                let mut conn = self.write_conn().await?;
                let mut tx = begin_change(&mut conn, change).await?;
                let query = match expected {
                    None => sqlx::query("UPDATE warehouses SET storage = $1 WHERE id = $2")
                        .bind(storage)
                        .bind(id),
                    Some(expected) => sqlx::query(
                        "UPDATE warehouses SET storage = $1 WHERE id = $2 AND storage = $3",
                    )
                    .bind(storage)
                    .bind(id)
                    .bind(expected),
                };
                let done = query.execute(&mut *tx).await.map_err(map_err)?;
                self.finish(tx, done.rows_affected() == 1, change).await
            }

            async fn delete_warehouse(
                &self,
                id: &str,
                change: &Change<'_>,
            ) -> StoreResult<WarehouseDeletion> {
                let _t = self.time("delete_warehouse");
                let mut conn = self.write_conn().await?;
                let mut tx = begin_change(&mut conn, change).await?;
                // What it holds, counted in the deleting transaction. A namespace created
                // meanwhile by another transaction makes the DELETE fail on its foreign key.
                let row = sqlx::query(
                    "SELECT (SELECT COUNT(*) FROM warehouses WHERE id = $1) AS found, \
                     (SELECT COUNT(*) FROM namespaces WHERE warehouse_id = $1) AS namespaces, \
                     (SELECT COUNT(*) FROM tables t JOIN namespaces n ON n.id = t.namespace_id \
                      WHERE n.warehouse_id = $1 AND t.kind = 'table') AS tables, \
                     (SELECT COUNT(*) FROM tables t JOIN namespaces n ON n.id = t.namespace_id \
                      WHERE n.warehouse_id = $1 AND t.kind = 'view') AS views, \
                     (SELECT COUNT(*) FROM functions f JOIN namespaces n ON n.id = f.namespace_id \
                      WHERE n.warehouse_id = $1) AS functions, \
                     (SELECT COUNT(*) FROM purge_tasks WHERE warehouse_id = $1) AS purge_tasks",
                )
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
                let found: i64 = row.try_get("found").map_err(map_err)?;
                let contents = WarehouseContents {
                    namespaces: row.try_get("namespaces").map_err(map_err)?,
                    tables: row.try_get("tables").map_err(map_err)?,
                    views: row.try_get("views").map_err(map_err)?,
                    functions: row.try_get("functions").map_err(map_err)?,
                    purge_tasks: row.try_get("purge_tasks").map_err(map_err)?,
                };
                if found == 0 || !contents.is_empty() {
                    tx.rollback().await.map_err(map_err)?;
                    return Ok(if found == 0 {
                        WarehouseDeletion::NotFound
                    } else {
                        WarehouseDeletion::NotEmpty(contents)
                    });
                }
                let done = sqlx::query("DELETE FROM warehouses WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await;
                match done {
                    Ok(done) => {
                        self.finish(tx, done.rows_affected() == 1, change).await?;
                        Ok(WarehouseDeletion::Deleted)
                    }
                    Err(e) => match map_err(e) {
                        // Something was created in it meanwhile (not counted above).
                        StoreError::MissingReference => {
                            Ok(WarehouseDeletion::NotEmpty(WarehouseContents::default()))
                        }
                        other => Err(other),
                    },
                }
            }

            async fn epochs(&self, since: std::time::Instant) -> StoreResult<Epochs> {
                self.read_epochs(since).await
            }

            fn seen_epochs(&self) -> Option<Epochs> {
                self.access.epochs.last(&())
            }

            async fn create_namespace(
                &self,
                warehouse_id: &str,
                levels: &[String],
                properties: &HashMap<String, String>,
                change: &Change<'_>,
                ancestor_event: &(dyn for<'x> Fn(&'x [String]) -> crate::store::NewEvent + Send + Sync),
            ) -> StoreResult<NamespaceRow> {
                let _t = self.time("create_namespace");
                let mut conn = self.write_conn().await?;
                let now = now_ms();
                if let (Some(sql), None, [event]) = (
                    Self::CREATE_NAMESPACE_ONE_STATEMENT,
                    change.idempotency,
                    change.events.as_slice(),
                ) {
                    let id = uuid::Uuid::now_v7().to_string();
                    let query = sqlx::query_scalar(sql)
                        .bind(&id)
                        .bind(warehouse_id)
                        .bind(join_levels(levels))
                        .bind(join_levels(&levels[..levels.len() - 1]))
                        .bind(properties_json(properties))
                        .bind(now);
                    let created: i64 = bind_event!(query, event)
                        .bind(change.owner)
                        .fetch_one(&mut *conn)
                        .await
                        .map_err(Self::one_statement_error)?;
                    if created > 0 {
                        self.committed(change);
                        return Ok(NamespaceRow {
                            id,
                            levels: levels.to_vec(),
                            properties: properties.clone(),
                            version: 0,
                        });
                    }
                    // The parent is missing: made below with its ancestors.
                }
                let mut tx = begin_change(&mut conn, change).await?;
                // Like a JDBC catalog of the Java reference, where a namespace exists as soon as
                // one below it does, creating `a.b.c` makes `a` and `a.b` when they are missing:
                // the hierarchy stays whole, listable from the top and droppable bottom-up.
                let mut change = change.clone();
                let mut parent_id: Option<String> = None;
                let mut made = 0;
                for depth in 1..levels.len() {
                    let ancestor = &levels[..depth];
                    let created: Option<String> = sqlx::query_scalar(
                        "INSERT INTO namespaces (id, warehouse_id, parent_id, name, parent, \
                         properties, version, created_at_ms, updated_at_ms, owner_id) \
                         VALUES ($1, $2, $3, $4, $5, '{}', 0, $6, $6, $7) \
                         ON CONFLICT (warehouse_id, name) DO NOTHING RETURNING id",
                    )
                    .bind(uuid::Uuid::now_v7().to_string())
                    .bind(warehouse_id)
                    .bind(&parent_id)
                    .bind(join_levels(ancestor))
                    .bind(join_levels(&levels[..depth - 1]))
                    .bind(now)
                    .bind(change.owner)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    parent_id = match created {
                        Some(id) => {
                            change.events.insert(made, ancestor_event(ancestor));
                            made += 1;
                            Some(id)
                        }
                        None => namespace_id(&mut *tx, warehouse_id, ancestor).await?,
                    };
                }
                let id = uuid::Uuid::now_v7().to_string();
                sqlx::query(
                    "INSERT INTO namespaces (id, warehouse_id, parent_id, name, parent, properties, \
                     version, created_at_ms, updated_at_ms, owner_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $7, $8)",
                )
                .bind(&id)
                .bind(warehouse_id)
                .bind(parent_id)
                .bind(join_levels(levels))
                .bind(join_levels(&levels[..levels.len() - 1]))
                .bind(properties_json(properties))
                .bind(now)
                .bind(change.owner)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                self.finish(tx, true, &change).await?;
                Ok(NamespaceRow {
                    id,
                    levels: levels.to_vec(),
                    properties: properties.clone(),
                    version: 0,
                })
            }

            async fn namespace(
                &self,
                warehouse_id: &str,
                levels: &[String],
            ) -> StoreResult<Option<NamespaceRow>> {
                let _t = self.time("namespace");
                let row = sqlx::query(
                    "SELECT id, name, properties, version FROM namespaces \
                     WHERE warehouse_id = $1 AND name = $2",
                )
                .bind(warehouse_id)
                .bind(join_levels(levels))
                .fetch_optional(&mut *self.read_conn().await?)
                .await
                .map_err(map_err)?;
                row.as_ref().map(namespace_from_row).transpose()
            }

            async fn list_namespaces(
                &self,
                warehouse_id: &str,
                parent: &[String],
                page: PageQuery<'_>,
                visible_to: Option<&str>,
            ) -> StoreResult<Vec<Vec<String>>> {
                let _t = self.time("list_namespaces");
                // The filter is part of the one query: a read grant of one of the
                // principal's roles on the namespace itself.
                let sql = match visible_to {
                    None => "SELECT name FROM namespaces WHERE warehouse_id = $1 AND parent = $2 \
                             AND name > $3 ORDER BY name LIMIT $4",
                    Some(_) => "SELECT c.name FROM namespaces c WHERE c.warehouse_id = $1 AND c.parent = $2 \
                                AND c.name > $3 AND (c.owner_id = $5 OR EXISTS (SELECT 1 FROM grants g \
                                JOIN role_members m ON m.role_id = g.role_id \
                                WHERE m.principal_id = $5 AND g.namespace_id = c.id AND g.privilege = 'read')) \
                                ORDER BY c.name LIMIT $4",
                };
                let mut query = sqlx::query_scalar(sql)
                    .bind(warehouse_id)
                    .bind(join_levels(parent))
                    .bind(page.after.unwrap_or(""))
                    .bind(page_limit(page.limit));
                if let Some(principal) = visible_to {
                    query = query.bind(principal);
                }
                let names: Vec<String> = query
                    .fetch_all(&mut *self.read_conn().await?)
                    .await
                    .map_err(map_err)?;
                Ok(names.iter().map(|n| split_levels(n)).collect())
            }

            async fn drop_namespace(
                &self,
                warehouse_id: &str,
                levels: &[String],
                change: &Change<'_>,
            ) -> StoreResult<bool> {
                let _t = self.time("drop_namespace");
                let mut conn = self.write_conn().await?;
                let mut tx = begin_change(&mut conn, change).await?;
                let done = sqlx::query("DELETE FROM namespaces WHERE warehouse_id = $1 AND name = $2")
                    .bind(warehouse_id)
                    .bind(join_levels(levels))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| match map_err(e) {
                        StoreError::MissingReference => StoreError::StillReferenced,
                        other => other,
                    })?;
                self.finish(tx, done.rows_affected() > 0, change).await
            }

            async fn swap_namespace_properties(
                &self,
                namespace_id: &str,
                expected_version: i64,
                properties: &HashMap<String, String>,
                change: &Change<'_>,
            ) -> StoreResult<bool> {
                let _t = self.time("swap_namespace_properties");
                let mut conn = self.write_conn().await?;
                let mut tx = begin_change(&mut conn, change).await?;
                let done = sqlx::query(
                    "UPDATE namespaces SET properties = $1, version = version + 1, updated_at_ms = $2 \
                     WHERE id = $3 AND version = $4",
                )
                .bind(properties_json(properties))
                .bind(now_ms())
                .bind(namespace_id)
                .bind(expected_version)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                self.finish(tx, done.rows_affected() > 0, change).await
            }

            async fn table_head(
                &self,
                kind: ObjectKind,
                warehouse_id: &str,
                namespace: &[String],
                name: &str,
            ) -> StoreResult<Option<TableHead>> {
                let _t = self.time("table_head");
                let started = std::time::Instant::now();
                let row = self
                    .object_by_name(OBJECT_HEAD, kind, warehouse_id, namespace, name)
                    .await?;
                if let Some(row) = &row {
                    let epochs = Epochs {
                        access: row.try_get("access_epoch").map_err(map_err)?,
                        warehouses: row.try_get("warehouse_epoch").map_err(map_err)?,
                    };
                    self.access.epochs.offer((), started, epochs);
                }
                row.map(|row| {
                    Ok(TableHead {
                        id: row.try_get("id").map_err(map_err)?,
                        metadata_location: row.try_get("metadata_location").map_err(map_err)?,
                    })
                })
                .transpose()
            }

            async fn objects_at(&self, locations: &[String]) -> StoreResult<Vec<ObjectAt>> {
                let _t = self.time("objects_at");
                let locations = serde_json::to_string(locations)
                    .map_err(|e| StoreError::Database(e.to_string()))?;
                let rows = sqlx::query(Self::OBJECTS_AT)
                    .bind(locations)
                    .fetch_all(&mut *self.read_conn().await?)
                    .await
                    .map_err(map_err)?;
                rows.iter()
                    .map(|row| {
                        let kind: String = row.try_get("kind").map_err(map_err)?;
                        let namespace: String = row.try_get("namespace").map_err(map_err)?;
                        Ok(ObjectAt {
                            kind: if kind == ObjectKind::View.as_str() {
                                ObjectKind::View
                            } else {
                                ObjectKind::Table
                            },
                            warehouse: row.try_get("warehouse").map_err(map_err)?,
                            namespace: split_levels(&namespace),
                            name: row.try_get("name").map_err(map_err)?,
                        })
                    })
                    .collect()
            }

            async fn table_by_id(&self, table_id: &str) -> StoreResult<Option<TableRow>> {
                let _t = self.time("table_by_id");
                let row = sqlx::query(TABLE_BY_ID)
                    .bind(table_id)
                    .fetch_optional(&mut *self.read_conn().await?)
                    .await
                    .map_err(map_err)?;
                row.as_ref().map(table_from_row).transpose()
            }

            async fn object(
                &self,
                kind: ObjectKind,
                warehouse_id: &str,
                namespace: &[String],
                name: &str,
            ) -> StoreResult<Option<TableRow>> {
                let _t = self.time("object");
                let row = self
                    .object_by_name(OBJECT_ROW, kind, warehouse_id, namespace, name)
                    .await?;
                row.as_ref().map(table_from_row).transpose()
            }

            async fn list_tables(
                &self,
                kind: ObjectKind,
                warehouse_id: &str,
                namespace: &[String],
                page: PageQuery<'_>,
                visible_to: Option<&str>,
            ) -> StoreResult<Option<Vec<String>>> {
                let _t = self.time("list_tables");
                let mut conn = self.read_conn().await?;
                let namespace_id = namespace_id(&mut *conn, warehouse_id, namespace).await?;
                let Some(namespace_id) = namespace_id else {
                    return Ok(None);
                };
                let sql = match visible_to {
                    None => "SELECT name FROM tables WHERE namespace_id = $1 AND kind = $4 AND name > $2 \
                             ORDER BY name LIMIT $3",
                    Some(_) => "SELECT t.name FROM tables t WHERE t.namespace_id = $1 AND t.kind = $4 \
                                AND t.name > $2 AND (t.owner_id = $5 OR EXISTS (SELECT 1 FROM grants g \
                                JOIN role_members m ON m.role_id = g.role_id \
                                WHERE m.principal_id = $5 AND g.table_id = t.id AND g.privilege = 'read')) \
                                ORDER BY t.name LIMIT $3",
                };
                let mut query = sqlx::query_scalar(sql)
                    .bind(namespace_id)
                    .bind(page.after.unwrap_or(""))
                    .bind(page_limit(page.limit))
                    .bind(kind.as_str());
                if let Some(principal) = visible_to {
                    query = query.bind(principal);
                }
                let names: Vec<String> = query
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(map_err)?;
                Ok(Some(names))
            }

            async fn create_table(
                &self,
                warehouse_id: &str,
                namespace: &[String],
                table: &NewTable<'_>,
                change: &Change<'_>,
            ) -> StoreResult<()> {
                let _t = self.time("create_table");
                let mut conn = self.write_conn().await?;
                let mut tx = begin_change(&mut conn, change).await?;
                let namespace_id = namespace_id(&mut *tx, warehouse_id, namespace).await?;
                let namespace_id = namespace_id.ok_or(StoreError::MissingReference)?;
                let now = now_ms();
                sqlx::query(
                    "INSERT INTO tables (id, namespace_id, name, metadata_location, metadata, \
                     created_at_ms, updated_at_ms, kind, owner_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8)",
                )
                .bind(table.id)
                .bind(namespace_id)
                .bind(table.name)
                .bind(table.metadata_location)
                .bind(table.metadata)
                .bind(now)
                .bind(table.kind.as_str())
                .bind(change.owner)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                if let Some(claim) = table.location {
                    Self::claim_location(&mut tx, table.id, claim).await?;
                }
                self.finish(tx, true, change).await?;
                Ok(())
            }

            async fn swap_tables_metadata(
                &self,
                swaps: &[TableSwap<'_>],
                change: &Change<'_>,
            ) -> StoreResult<bool> {
                let _t = self.time("swap_tables_metadata");
                let mut conn = self.write_conn().await?;
                if let (Some(sql), [swap], None, [event]) = (
                    Self::SWAP_ONE_STATEMENT,
                    swaps,
                    change.idempotency,
                    change.events.as_slice(),
                ) && swap.new_object_location.is_none()
                    && !swap.snapshots.as_ref().is_some_and(|c| c.first)
                {
                    let query = sqlx::query_scalar(sql)
                        .bind(swap.new_location)
                        .bind(swap.new_metadata)
                        .bind(now_ms())
                        .bind(swap.table_id)
                        .bind(swap.expected_location);
                    let removed = swap.snapshots.as_ref().map_or(&[][..], |c| c.removed.as_slice());
                    let swapped: i64 = bind_event!(query, event)
                        .bind(swap.snapshots.is_some())
                        .bind(serde_json::to_string(&removed).expect("ids always serialize"))
                        .bind(added_snapshots_json(swap.snapshots.as_ref()))
                        .fetch_one(&mut *conn)
                        .await
                        .map_err(Self::one_statement_error)?;
                    if swapped > 0 {
                        self.committed(change);
                    }
                    return Ok(swapped > 0);
                }
                let mut tx = begin_change(&mut conn, change).await?;
                for swap in swaps {
                    let done = swap_query(swap).execute(&mut *tx).await.map_err(map_err)?;
                    if done.rows_affected() == 0 {
                        return self.finish(tx, false, change).await;
                    }
                    Self::write_snapshots(&mut tx, swap).await?;
                    if let Some(claim) = swap.new_object_location {
                        Self::claim_location(&mut tx, swap.table_id, claim).await?;
                    }
                }
                self.finish(tx, true, change).await
            }

            async fn drop_table(
                &self,
                kind: ObjectKind,
                warehouse_id: &str,
                namespace: &[String],
                name: &str,
                purge: bool,
                change: &Change<'_>,
            ) -> StoreResult<Option<TableRow>> {
                let _t = self.time("drop_table");
                let mut conn = self.write_conn().await?;
                let mut tx = begin_change(&mut conn, change).await?;
                let row = sqlx::query(
                    "DELETE FROM tables WHERE kind = $4 AND name = $3 AND namespace_id = \
                     (SELECT id FROM namespaces WHERE warehouse_id = $1 AND name = $2) \
                     RETURNING id, metadata_location, metadata, snapshots_apart",
                )
                .bind(warehouse_id)
                .bind(join_levels(namespace))
                .bind(name)
                .bind(kind.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
                let Some(row) = row else {
                    self.finish(tx, false, change).await?;
                    return Ok(None);
                };
                // The row went first: a commit racing the drop now waits for it, then finds
                // no row, so the snapshots read here are the dropped version's.
                let id: String = row.try_get("id").map_err(map_err)?;
                let mut snapshots: Vec<(i64, i64, i64, String)> = sqlx::query_as(
                    "DELETE FROM table_snapshots WHERE table_id = $1 \
                     RETURNING sequence_number, timestamp_ms, snapshot_id, body",
                )
                .bind(&id)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                snapshots.sort_unstable_by_key(|(seq, ts, id, _)| (*seq, *ts, *id));
                let apart: bool = row.try_get("snapshots_apart").map_err(map_err)?;
                let table = TableRow {
                    id,
                    metadata_location: row.try_get("metadata_location").map_err(map_err)?,
                    metadata: row.try_get("metadata").map_err(map_err)?,
                    snapshots: apart.then(|| {
                        let bodies: Vec<&str> = snapshots.iter().map(|s| s.3.as_str()).collect();
                        format!("[{}]", bodies.join(","))
                    }),
                };
                let table = Some(table);
                if let (true, Some(table)) = (purge, &table) {
                    let now = now_ms();
                    sqlx::query(
                        "INSERT INTO purge_tasks (id, warehouse_id, namespace, name, metadata_location, \
                         metadata, snapshots, created_at_ms, due_at_ms) \
                         VALUES ($1, $2, $3, $4, $5, $6, $8, $7, $7)",
                    )
                    .bind(uuid::Uuid::now_v7().to_string())
                    .bind(warehouse_id)
                    .bind(join_levels(namespace))
                    .bind(name)
                    .bind(&table.metadata_location)
                    .bind(&table.metadata)
                    .bind(now)
                    .bind(&table.snapshots)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                }
                self.finish(tx, table.is_some(), change).await?;
                Ok(table)
            }

            async fn claim_purge_task(&self, lease_until_ms: i64) -> StoreResult<Option<PurgeTask>> {
                let _t = self.time("claim_purge_task");
                // Two replicas may pick the same task; the second finds it no longer due.
                let row = sqlx::query(
                    "UPDATE purge_tasks SET due_at_ms = $1, attempts = attempts + 1 \
                     WHERE id = (SELECT id FROM purge_tasks WHERE due_at_ms <= $2 \
                     ORDER BY due_at_ms, id LIMIT 1) AND due_at_ms <= $2 \
                     RETURNING id, warehouse_id, namespace, name, metadata_location, metadata, \
                     snapshots, attempts, deleted_files",
                )
                .bind(lease_until_ms)
                .bind(now_ms())
                .fetch_optional(&mut *self.write_conn().await?)
                .await
                .map_err(map_err)?;
                row.map(|row| {
                    let namespace: String = row.try_get("namespace").map_err(map_err)?;
                    Ok(PurgeTask {
                        id: row.try_get("id").map_err(map_err)?,
                        warehouse_id: row.try_get("warehouse_id").map_err(map_err)?,
                        namespace: split_levels(&namespace),
                        name: row.try_get("name").map_err(map_err)?,
                        metadata_location: row.try_get("metadata_location").map_err(map_err)?,
                        metadata: row.try_get("metadata").map_err(map_err)?,
                        snapshots: row.try_get("snapshots").map_err(map_err)?,
                        attempts: row.try_get("attempts").map_err(map_err)?,
                        deleted_files: row.try_get("deleted_files").map_err(map_err)?,
                    })
                })
                .transpose()
            }

            async fn renew_purge_task(&self, id: &str, lease_until_ms: i64, deleted_files: i64) -> StoreResult<()> {
                let _t = self.time("renew_purge_task");
                sqlx::query("UPDATE purge_tasks SET due_at_ms = $2, deleted_files = $3 WHERE id = $1")
                    .bind(id)
                    .bind(lease_until_ms)
                    .bind(deleted_files)
                    .execute(&mut *self.write_conn().await?)
                    .await
                    .map_err(map_err)?;
                Ok(())
            }

            async fn finish_purge_task(&self, id: &str, change: &Change<'_>) -> StoreResult<()> {
                let _t = self.time("finish_purge_task");
                let mut conn = self.write_conn().await?;
                let mut tx = begin_change(&mut conn, change).await?;
                let done = sqlx::query("DELETE FROM purge_tasks WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                self.finish(tx, done.rows_affected() > 0, change).await?;
                Ok(())
            }

            async fn fail_purge_task(
                &self,
                id: &str,
                error: &str,
                due_at_ms: i64,
                deleted_files: i64,
            ) -> StoreResult<()> {
                let _t = self.time("fail_purge_task");
                sqlx::query(
                    "UPDATE purge_tasks SET due_at_ms = $2, last_error = $3, deleted_files = $4 WHERE id = $1",
                )
                .bind(id)
                .bind(due_at_ms)
                .bind(error)
                .bind(deleted_files)
                .execute(&mut *self.write_conn().await?)
                .await
                .map_err(map_err)?;
                Ok(())
            }

            async fn purge_task_count(&self) -> StoreResult<u64> {
                let _t = self.time("purge_task_count");
                let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM purge_tasks")
                    .fetch_one(&mut *self.read_conn().await?)
                    .await
                    .map_err(map_err)?;
                Ok(u64::try_from(n).unwrap_or(0))
            }

            async fn rename_table(
                &self,
                kind: ObjectKind,
                warehouse_id: &str,
                source: (&[String], &str),
                destination: (&[String], &str),
                change: &Change<'_>,
            ) -> StoreResult<bool> {
                let _t = self.time("rename_table");
                let mut conn = self.write_conn().await?;
                let mut tx = begin_change(&mut conn, change).await?;
                let id: Option<String> = sqlx::query_scalar(TABLE_ID)
                    .bind(warehouse_id)
                    .bind(join_levels(source.0))
                    .bind(source.1)
                    .bind(kind.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
                let Some(id) = id else {
                    return self.finish(tx, false, change).await;
                };
                let namespace_id = namespace_id(&mut *tx, warehouse_id, destination.0).await?;
                let namespace_id = namespace_id.ok_or(StoreError::MissingReference)?;
                let done = sqlx::query(
                    "UPDATE tables SET namespace_id = $1, name = $2, updated_at_ms = $3 WHERE id = $4",
                )
                .bind(namespace_id)
                .bind(destination.1)
                .bind(now_ms())
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                self.finish(tx, done.rows_affected() > 0, change).await
            }

            async fn create_function(
                &self,
                warehouse_id: &str,
                namespace: &[String],
                function: &NewTable<'_>,
                change: &Change<'_>,
            ) -> StoreResult<()> {
                let _t = self.time("create_function");
                let mut conn = self.write_conn().await?;
                let mut tx = begin_change(&mut conn, change).await?;
                let namespace_id = namespace_id(&mut *tx, warehouse_id, namespace).await?;
                let namespace_id = namespace_id.ok_or(StoreError::MissingReference)?;
                sqlx::query(
                    "INSERT INTO functions (id, namespace_id, name, metadata_location, metadata, \
                     created_at_ms) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(function.id)
                .bind(namespace_id)
                .bind(function.name)
                .bind(function.metadata_location)
                .bind(function.metadata)
                .bind(now_ms())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                self.finish(tx, true, change).await?;
                Ok(())
            }

            async fn function(
                &self,
                warehouse_id: &str,
                namespace: &[String],
                name: &str,
            ) -> StoreResult<Option<TableRow>> {
                let _t = self.time("function");
                let row = sqlx::query(
                    "SELECT f.id, f.metadata_location, f.metadata, NULL AS snapshots FROM functions f \
                     JOIN namespaces n ON n.id = f.namespace_id \
                     WHERE n.warehouse_id = $1 AND n.name = $2 AND f.name = $3",
                )
                .bind(warehouse_id)
                .bind(join_levels(namespace))
                .bind(name)
                .fetch_optional(&mut *self.read_conn().await?)
                .await
                .map_err(map_err)?;
                row.as_ref().map(table_from_row).transpose()
            }

            async fn list_functions(
                &self,
                warehouse_id: &str,
                namespace: &[String],
                page: PageQuery<'_>,
            ) -> StoreResult<Option<Vec<String>>> {
                let _t = self.time("list_functions");
                let mut conn = self.read_conn().await?;
                let namespace_id = namespace_id(&mut *conn, warehouse_id, namespace).await?;
                let Some(namespace_id) = namespace_id else {
                    return Ok(None);
                };
                let names: Vec<String> = sqlx::query_scalar(
                    "SELECT name FROM functions WHERE namespace_id = $1 AND name > $2 \
                     ORDER BY name LIMIT $3",
                )
                .bind(namespace_id)
                .bind(page.after.unwrap_or(""))
                .bind(page_limit(page.limit))
                .fetch_all(&mut *conn)
                .await
                .map_err(map_err)?;
                Ok(Some(names))
            }

            async fn idempotency_entry(&self, key: &str) -> StoreResult<Option<IdempotencyEntry>> {
                let _t = self.time("idempotency_entry");
                let row = sqlx::query(
                    "SELECT operation, status, body, created_at_ms FROM idempotency_keys WHERE key = $1",
                )
                .bind(key)
                .fetch_optional(&mut *self.read_conn().await?)
                .await
                .map_err(map_err)?;
                row.map(|row| {
                    let status: i32 = row.try_get("status").map_err(map_err)?;
                    Ok(IdempotencyEntry {
                        operation: row.try_get("operation").map_err(map_err)?,
                        status: u16::try_from(status).unwrap_or(500),
                        body: row.try_get("body").map_err(map_err)?,
                        created_at_ms: row.try_get("created_at_ms").map_err(map_err)?,
                    })
                })
                .transpose()
            }

            async fn record_idempotency(&self, record: &IdempotencyRecord) -> StoreResult<bool> {
                let _t = self.time("record_idempotency");
                match record_key(&mut *self.write_conn().await?, Some(record)).await {
                    Ok(()) => Ok(true),
                    Err(StoreError::IdempotencyKeyUsed) => Ok(false),
                    Err(e) => Err(e),
                }
            }

            async fn set_idempotency_body(&self, key: &str, body: &str) -> StoreResult<()> {
                let _t = self.time("set_idempotency_body");
                sqlx::query("UPDATE idempotency_keys SET body = $1 WHERE key = $2")
                    .bind(body)
                    .bind(key)
                    .execute(&mut *self.write_conn().await?)
                    .await
                    .map_err(map_err)?;
                Ok(())
            }

            async fn purge_idempotency_keys(&self, created_before_ms: i64) -> StoreResult<u64> {
                let _t = self.time("purge_idempotency_keys");
                let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at_ms < $1")
                    .bind(created_before_ms)
                    .execute(&mut *self.write_conn().await?)
                    .await
                    .map_err(map_err)?;
                Ok(done.rows_affected())
            }

            async fn events_after(&self, after: EventPosition, limit: usize) -> StoreResult<EventBatch> {
                let _t = self.time("events_after");
                let rows = sqlx::query(Self::EVENTS_AFTER)
                    .bind(after.tx)
                    .bind(after.id)
                    .bind(page_limit(Some(limit)))
                    .fetch_all(&mut *self.read_conn().await?)
                    .await
                    .map_err(map_err)?;
                let mut batch = EventBatch::default();
                for row in &rows {
                    let settled: bool = row.try_get("settled").map_err(map_err)?;
                    if !settled {
                        // Everything from here on waits for an older transaction.
                        batch.held_back = true;
                        break;
                    }
                    batch.events.push(event_from_row(row)?);
                }
                Ok(batch)
            }

            async fn event_tail(&self) -> StoreResult<EventTail> {
                let _t = self.time("event_tail");
                let rows = sqlx::query(Self::EVENT_TAIL)
                    .fetch_all(&mut *self.read_conn().await?)
                    .await
                    .map_err(map_err)?;
                let mut tail = EventTail::default();
                for row in &rows {
                    tail.position = EventPosition {
                        tx: row.try_get("tail_tx").map_err(map_err)?,
                        id: row.try_get("tail_id").map_err(map_err)?,
                    };
                    let tx: Option<i64> = row.try_get("tx").map_err(map_err)?;
                    let id: Option<i64> = row.try_get("id").map_err(map_err)?;
                    if let (Some(tx), Some(id)) = (tx, id) {
                        tail.committed.push(EventPosition { tx, id });
                    }
                }
                Ok(tail)
            }

            async fn event_floor(&self) -> StoreResult<Option<EventPosition>> {
                let _t = self.time("event_floor");
                let row = sqlx::query("SELECT tx, id FROM event_floor WHERE one = 1")
                    .fetch_optional(&mut *self.read_conn().await?)
                    .await
                    .map_err(map_err)?;
                row.map(|row| {
                    Ok(EventPosition {
                        tx: row.try_get("tx").map_err(map_err)?,
                        id: row.try_get("id").map_err(map_err)?,
                    })
                })
                .transpose()
            }

            async fn purge_events(&self, created_before_ms: i64) -> StoreResult<Option<u64>> {
                let _t = self.time("purge_events");
                let mut conn = self.write_conn().await?;
                let mut tx = begin(&mut conn).await?;
                let won: bool = sqlx::query_scalar(Self::CLEANUP_LOCK)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map_err)?;
                if !won {
                    tx.rollback().await.map_err(map_err)?;
                    return Ok(None);
                }
                // The newest settled event old enough to go; everything up to it goes, so the
                // floor is one position and a cursor before it is known to have lost events.
                let last = sqlx::query(Self::PURGE_POINT)
                    .bind(created_before_ms)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
                let Some(last) = last else {
                    tx.rollback().await.map_err(map_err)?;
                    return Ok(Some(0));
                };
                let (ptx, pid): (i64, i64) = (
                    last.try_get("tx").map_err(map_err)?,
                    last.try_get("id").map_err(map_err)?,
                );
                let done = sqlx::query(Self::PURGE_UP_TO)
                    .bind(ptx)
                    .bind(pid)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                sqlx::query(
                    "INSERT INTO event_floor (one, tx, id) VALUES (1, $1, $2) \
                     ON CONFLICT (one) DO UPDATE SET tx = excluded.tx, id = excluded.id",
                )
                .bind(ptx)
                .bind(pid)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                Ok(Some(done.rows_affected()))
            }

            fn event_signal(&self) -> tokio::sync::watch::Receiver<u64> {
                self.signals.local.subscribe()
            }

            fn start_event_relay(&self) -> Vec<tokio::task::JoinHandle<()>> {
                self.relay()
            }

            async fn insert_audit_records(&self, records: &[AuditRecord]) -> StoreResult<()> {
                let _t = self.time("insert_audit_records");
                let mut conn = self.write_conn().await?;
                let mut tx = begin(&mut conn).await?;
                sqlx::query(Self::AUDIT_TX).execute(&mut *tx).await.map_err(map_err)?;
                // One multi-row statement per chunk (9 parameters a row stay under SQLite's
                // and PostgreSQL's parameter limits).
                for chunk in records.chunks(1000) {
                    let mut insert = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO audit_log (at_ms, request_id, actor, client, operation, \
                         object, status, outcome, missing_privilege) ",
                    );
                    insert.push_values(chunk, |mut row, record| {
                        row.push_bind(record.at_ms)
                            .push_bind(record.request_id.as_deref())
                            .push_bind(&record.actor)
                            .push_bind(record.client.as_deref())
                            .push_bind(&record.operation)
                            .push_bind(&record.object)
                            .push_bind(i32::from(record.status))
                            .push_bind(&record.outcome)
                            .push_bind(record.missing_privilege.as_deref());
                    });
                    insert.build().execute(&mut *tx).await.map_err(map_err)?;
                }
                tx.commit().await.map_err(map_err)
            }

            async fn purge_audit_records(&self, before_ms: i64) -> StoreResult<u64> {
                let _t = self.time("purge_audit_records");
                // In bounded batches, so a first cleanup of a large backlog never holds one
                // long transaction (or SQLite's write lock) for the whole of it.
                const BATCH: i64 = 10_000;
                let mut deleted = 0;
                loop {
                    let done = sqlx::query(Self::PURGE_AUDIT)
                    .bind(before_ms)
                    .bind(BATCH)
                    .execute(&mut *self.write_conn().await?)
                    .await
                    .map_err(map_err)?;
                    deleted += done.rows_affected();
                    if done.rows_affected() < BATCH as u64 {
                        return Ok(deleted);
                    }
                }
            }

            async fn create_principal(
                &self,
                row: &PrincipalRow,
                only_if_none: bool,
            ) -> StoreResult<bool> {
                let _t = self.time("create_principal");
                let sql = if only_if_none {
                    "INSERT INTO principals (id, name, client_id, secret_hash, admin, created_at_ms, external) \
                     SELECT $1, $2, $3, $4, $5, $6, $7 WHERE NOT EXISTS (SELECT 1 FROM principals)"
                } else {
                    "INSERT INTO principals (id, name, client_id, secret_hash, admin, created_at_ms, external) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)"
                };
                let done = sqlx::query(sql)
                    .bind(&row.id)
                    .bind(&row.name)
                    .bind(&row.client_id)
                    .bind(&row.secret_hash)
                    .bind(row.admin)
                    .bind(row.created_at_ms)
                    .bind(row.external)
                    .execute(&mut *self.write_conn().await?)
                    .await
                    .map_err(map_err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn principal_by_client_id(&self, client_id: &str) -> StoreResult<Option<PrincipalRow>> {
                let _t = self.time("principal_by_client_id");
                let row = sqlx::query(
                    "SELECT id, name, client_id, secret_hash, admin, external, created_at_ms FROM principals \
                     WHERE client_id = $1",
                )
                .bind(client_id)
                .fetch_optional(&mut *self.read_conn().await?)
                .await
                .map_err(map_err)?;
                row.as_ref().map(principal_from_row).transpose()
            }

            async fn principal_by_name(&self, name: &str) -> StoreResult<Option<PrincipalRow>> {
                let _t = self.time("principal_by_name");
                let row = sqlx::query(
                    "SELECT id, name, client_id, secret_hash, admin, external, created_at_ms FROM principals \
                     WHERE name = $1",
                )
                .bind(name)
                .fetch_optional(&mut *self.read_conn().await?)
                .await
                .map_err(map_err)?;
                row.as_ref().map(principal_from_row).transpose()
            }

            async fn list_principals(&self) -> StoreResult<Vec<PrincipalRow>> {
                let _t = self.time("list_principals");
                let rows = sqlx::query(
                    "SELECT id, name, client_id, secret_hash, admin, external, created_at_ms FROM principals \
                     ORDER BY name",
                )
                .fetch_all(&mut *self.read_conn().await?)
                .await
                .map_err(map_err)?;
                rows.iter().map(principal_from_row).collect()
            }

            async fn set_principal_secret(&self, name: &str, secret_hash: &str) -> StoreResult<Option<String>> {
                let _t = self.time("set_principal_secret");
                sqlx::query_scalar(
                    "UPDATE principals SET secret_hash = $1 WHERE name = $2 RETURNING client_id",
                )
                .bind(secret_hash)
                .bind(name)
                .fetch_optional(&mut *self.write_conn().await?)
                .await
                .map_err(map_err)
            }

            async fn delete_principal(&self, name: &str) -> StoreResult<bool> {
                let _t = self.time("delete_principal");
                let done = sqlx::query("DELETE FROM principals WHERE name = $1")
                    .bind(name)
                    .execute(&mut *self.write_conn().await?)
                    .await
                    .map_err(map_err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRow>> {
                let _t = self.time("signing_keys");
                let rows = sqlx::query(
                    "SELECT kid, secret, created_at_ms FROM signing_keys \
                     ORDER BY created_at_ms DESC, kid",
                )
                .fetch_all(&mut *self.read_conn().await?)
                .await
                .map_err(map_err)?;
                rows.iter()
                    .map(|row| {
                        Ok(SigningKeyRow {
                            kid: row.try_get("kid").map_err(map_err)?,
                            secret: row.try_get("secret").map_err(map_err)?,
                            created_at_ms: row.try_get("created_at_ms").map_err(map_err)?,
                        })
                    })
                    .collect()
            }

            async fn add_signing_key(&self, row: &SigningKeyRow) -> StoreResult<()> {
                let _t = self.time("add_signing_key");
                sqlx::query("INSERT INTO signing_keys (kid, secret, created_at_ms) VALUES ($1, $2, $3)")
                    .bind(&row.kid)
                    .bind(&row.secret)
                    .bind(row.created_at_ms)
                    .execute(&mut *self.write_conn().await?)
                    .await
                    .map_err(map_err)?;
                Ok(())
            }

            async fn create_api_key(&self, principal: &str, row: &ApiKeyRow) -> StoreResult<()> {
                let _t = self.time("create_api_key");
                let done = sqlx::query(
                    "INSERT INTO api_keys (id, principal_id, secret_hash, created_at_ms, expires_at_ms) \
                     SELECT $1, id, $3, $4, $5 FROM principals WHERE name = $2",
                )
                .bind(&row.id)
                .bind(principal)
                .bind(&row.secret_hash)
                .bind(row.created_at_ms)
                .bind(row.expires_at_ms)
                .execute(&mut *self.write_conn().await?)
                .await
                .map_err(map_err)?;
                if done.rows_affected() == 1 { Ok(()) } else { Err(StoreError::MissingReference) }
            }

            async fn api_key(&self, id: &str, since: std::time::Instant) -> StoreResult<Option<ApiKeyRow>> {
                let epoch = self.access_epoch(since).await?;
                if let Some(row) = self.access.api_key(id, epoch) {
                    return Ok(row);
                }
                let _t = self.time("api_key");
                let row = sqlx::query(
                    "SELECT k.id, k.principal_id, p.name, p.admin, k.secret_hash, k.created_at_ms, \
                     k.expires_at_ms, k.last_used_at_ms FROM api_keys k \
                     JOIN principals p ON p.id = k.principal_id WHERE k.id = $1",
                )
                .bind(id)
                .fetch_optional(&mut *self.read_conn().await?)
                .await
                .map_err(map_err)?;
                let row = row.as_ref().map(api_key_from_row).transpose()?;
                self.access.keep_api_key(id, epoch, row.clone());
                Ok(row)
            }

            async fn list_api_keys(&self, principal: Option<&str>) -> StoreResult<Vec<ApiKeyRow>> {
                let _t = self.time("list_api_keys");
                let rows = sqlx::query(
                    "SELECT k.id, k.principal_id, p.name, p.admin, k.secret_hash, k.created_at_ms, \
                     k.expires_at_ms, k.last_used_at_ms FROM api_keys k \
                     JOIN principals p ON p.id = k.principal_id \
                     WHERE $1 = '' OR p.name = $1 ORDER BY p.name, k.created_at_ms, k.id",
                )
                .bind(principal.unwrap_or(""))
                .fetch_all(&mut *self.read_conn().await?)
                .await
                .map_err(map_err)?;
                rows.iter().map(api_key_from_row).collect()
            }

            async fn delete_api_key(&self, id: &str) -> StoreResult<bool> {
                let _t = self.time("delete_api_key");
                let done = sqlx::query("DELETE FROM api_keys WHERE id = $1")
                    .bind(id)
                    .execute(&mut *self.write_conn().await?)
                    .await
                    .map_err(map_err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn touch_api_key(&self, id: &str, at_ms: i64) -> StoreResult<()> {
                let _t = self.time("touch_api_key");
                sqlx::query("UPDATE api_keys SET last_used_at_ms = $2 WHERE id = $1")
                    .bind(id)
                    .bind(at_ms)
                    .execute(&mut *self.write_conn().await?)
                    .await
                    .map_err(map_err)?;
                Ok(())
            }

            async fn create_role(&self, id: &str, name: &str) -> StoreResult<()> {
                let _t = self.time("create_role");
                sqlx::query("INSERT INTO roles (id, name, created_at_ms) VALUES ($1, $2, $3)")
                    .bind(id)
                    .bind(name)
                    .bind(now_ms())
                    .execute(&mut *self.write_conn().await?)
                    .await
                    .map_err(map_err)?;
                Ok(())
            }

            async fn delete_role(&self, name: &str) -> StoreResult<bool> {
                let _t = self.time("delete_role");
                let done = sqlx::query("DELETE FROM roles WHERE name = $1")
                    .bind(name)
                    .execute(&mut *self.write_conn().await?)
                    .await
                    .map_err(map_err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn list_roles(&self) -> StoreResult<Vec<RoleRow>> {
                let _t = self.time("list_roles");
                let rows = sqlx::query(
                    "SELECT r.name, r.created_at_ms, p.name AS member FROM roles r \
                     LEFT JOIN role_members m ON m.role_id = r.id \
                     LEFT JOIN principals p ON p.id = m.principal_id \
                     ORDER BY r.name, p.name",
                )
                .fetch_all(&mut *self.read_conn().await?)
                .await
                .map_err(map_err)?;
                let mut roles: Vec<RoleRow> = Vec::new();
                for row in &rows {
                    let name: String = row.try_get("name").map_err(map_err)?;
                    let member: Option<String> = row.try_get("member").map_err(map_err)?;
                    if roles.last().is_none_or(|r| r.name != name) {
                        roles.push(RoleRow {
                            name,
                            members: Vec::new(),
                            created_at_ms: row.try_get("created_at_ms").map_err(map_err)?,
                        });
                    }
                    if let (Some(member), Some(role)) = (member, roles.last_mut()) {
                        role.members.push(member);
                    }
                }
                Ok(roles)
            }

            async fn set_role_member(&self, role: &str, principal: &str, member: bool) -> StoreResult<bool> {
                let _t = self.time("set_role_member");
                let mut conn = self.write_conn().await?;
                let ids: Option<(Option<String>, Option<String>)> = sqlx::query_as(
                    "SELECT (SELECT id FROM roles WHERE name = $1), (SELECT id FROM principals WHERE name = $2)",
                )
                .bind(role)
                .bind(principal)
                .fetch_optional(&mut *conn)
                .await
                .map_err(map_err)?;
                let Some((Some(role_id), Some(principal_id))) = ids else {
                    return Err(StoreError::MissingReference);
                };
                let sql = if member {
                    "INSERT INTO role_members (role_id, principal_id) VALUES ($1, $2) ON CONFLICT DO NOTHING"
                } else {
                    "DELETE FROM role_members WHERE role_id = $1 AND principal_id = $2"
                };
                let done = sqlx::query(sql)
                    .bind(role_id)
                    .bind(principal_id)
                    .execute(&mut *conn)
                    .await
                    .map_err(map_err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn grant(&self, grant: &GrantRow) -> StoreResult<bool> {
                let _t = self.time("grant");
                let mut conn = self.write_conn().await?;
                let (target, namespace_id, table_id) = grant_target(&mut conn, grant)
                    .await?
                    .ok_or(StoreError::MissingReference)?;
                let done = sqlx::query(
                    "INSERT INTO grants (role_id, privilege, warehouse_id, namespace_id, table_id, target, created_at_ms) \
                     SELECT id, $2, $3, $4, $5, $6, $7 FROM roles WHERE name = $1 \
                     ON CONFLICT DO NOTHING",
                )
                .bind(&grant.role)
                .bind(&grant.privilege)
                .bind(&grant.warehouse_id)
                .bind(namespace_id)
                .bind(table_id)
                .bind(target)
                .bind(now_ms())
                .execute(&mut *conn)
                .await
                .map_err(map_err)?;
                if done.rows_affected() == 1 {
                    return Ok(true);
                }
                let role: Option<String> = sqlx::query_scalar("SELECT id FROM roles WHERE name = $1")
                    .bind(&grant.role)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(map_err)?;
                role.map(|_| false).ok_or(StoreError::MissingReference)
            }

            async fn revoke(&self, grant: &GrantRow) -> StoreResult<bool> {
                let _t = self.time("revoke");
                let mut conn = self.write_conn().await?;
                let Some((target, _, _)) = grant_target(&mut conn, grant).await? else {
                    return Ok(false);
                };
                let done = sqlx::query(
                    "DELETE FROM grants WHERE privilege = $2 AND warehouse_id = $3 AND target = $4 \
                     AND role_id = (SELECT id FROM roles WHERE name = $1)",
                )
                .bind(&grant.role)
                .bind(&grant.privilege)
                .bind(&grant.warehouse_id)
                .bind(target)
                .execute(&mut *conn)
                .await
                .map_err(map_err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn role_grants(&self, role: &str) -> StoreResult<Option<Vec<GrantRow>>> {
                let _t = self.time("role_grants");
                let mut conn = self.read_conn().await?;
                let exists: Option<String> = sqlx::query_scalar("SELECT id FROM roles WHERE name = $1")
                    .bind(role)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(map_err)?;
                if exists.is_none() {
                    return Ok(None);
                }
                let rows = sqlx::query(
                    concat!(grant_rows!(), "WHERE r.name = $1 ORDER BY g.warehouse_id, g.target, g.privilege"),
                )
                .bind(role)
                .fetch_all(&mut *conn)
                .await
                .map_err(map_err)?;
                rows.iter().map(grant_from_row).collect::<StoreResult<Vec<_>>>().map(Some)
            }

            async fn principal_access(
                &self,
                principal_id: &str,
                since: std::time::Instant,
            ) -> StoreResult<Option<std::sync::Arc<PrincipalAccess>>> {
                let epoch = self.access_epoch(since).await?;
                if let Some(access) = self.access.principal(principal_id, epoch) {
                    return Ok(access);
                }
                let _t = self.time("principal_access");
                let mut conn = self.read_conn().await?;
                let admin: Option<bool> = sqlx::query_scalar("SELECT admin FROM principals WHERE id = $1")
                    .bind(principal_id)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(map_err)?;
                let access = match admin {
                    None => None,
                    Some(admin) => {
                        // The grants of its roles, then what it owns (every privilege).
                        let rows = sqlx::query(
                            concat!(grant_rows!(), "JOIN role_members m ON m.role_id = g.role_id \
                             WHERE m.principal_id = $1 \
                             UNION ALL SELECT '', 'owner', n.warehouse_id, n.name, NULL, NULL \
                             FROM namespaces n WHERE n.owner_id = $1 \
                             UNION ALL SELECT '', 'owner', tn.warehouse_id, tn.name, t.name, t.kind \
                             FROM tables t JOIN namespaces tn ON tn.id = t.namespace_id WHERE t.owner_id = $1"),
                        )
                        .bind(principal_id)
                        .fetch_all(&mut *conn)
                        .await
                        .map_err(map_err)?;
                        let grants = rows.iter().map(grant_from_row).collect::<StoreResult<Vec<_>>>()?;
                        Some(std::sync::Arc::new(PrincipalAccess { admin, grants }))
                    }
                };
                self.access.keep_principal(principal_id, epoch, access.clone());
                Ok(access)
            }

            async fn audit_records(&self, limit: usize) -> StoreResult<Vec<AuditRecord>> {
                let _t = self.time("audit_records");
                let rows = sqlx::query(
                    "SELECT at_ms, request_id, actor, client, operation, object, status, outcome, \
                     missing_privilege FROM audit_log ORDER BY id DESC LIMIT $1",
                )
                .bind(page_limit(Some(limit)))
                .fetch_all(&mut *self.read_conn().await?)
                .await
                .map_err(map_err)?;
                rows.iter()
                    .map(|row| {
                        let status: i32 = row.try_get("status").map_err(map_err)?;
                        Ok(AuditRecord {
                            at_ms: row.try_get("at_ms").map_err(map_err)?,
                            request_id: row.try_get("request_id").map_err(map_err)?,
                            actor: row.try_get("actor").map_err(map_err)?,
                            client: row.try_get("client").map_err(map_err)?,
                            operation: row.try_get("operation").map_err(map_err)?,
                            object: row.try_get("object").map_err(map_err)?,
                            status: u16::try_from(status).unwrap_or(0),
                            outcome: row.try_get("outcome").map_err(map_err)?,
                            missing_privilege: row.try_get("missing_privilege").map_err(map_err)?,
                        })
                    })
                    .collect()
            }
        }
    };
}

pub(super) use sql_store;
