//! Tables: create (also staged), load, the optimistic commit, drop (with purge), rename,
//! register.
//!
//! The commit: read the current version (one indexed lookup, metadata from the cache), check
//! the requirements, apply the updates with the iceberg crate's `TableMetadataBuilder`, write
//! the new metadata file, then compare-and-set the row on the location read first. A lost race
//! is retried here; a requirement that no longer holds is a `CommitFailed`.

use std::collections::HashMap;
use std::sync::Arc;

use iceberg::spec::{FormatVersion, TableMetadata, TableMetadataBuilder};
use iceberg::{NamespaceIdent, TableCreation, TableIdent, TableRequirement, TableUpdate};
use iceberg_catalog_rest::{CommitTableRequest, CreateTableRequest, RegisterTableRequest};

use super::authz::{Privilege, Target};
use super::cache::TableVersion;
use super::ident::{
    display_namespace, validate_namespace, validate_table_ident, validate_table_name,
};
use super::locations::{
    check_path_properties, check_property_count, check_table_metadata, check_table_updates, claim,
    metadata_file, namespace_dir, new_object_dir, object_location,
};
pub(super) use super::metadata_json::to_json;
use super::metadata_json::{
    NextDocument, SnapshotSpans, SummaryOrder, to_json_next, to_json_ordered,
};
use super::page::{PageRequest, Paged};
use super::{Caller, Catalog, CatalogError, CatalogResult, Warehouse};
use super::{fresh_ids, validate};
use crate::metrics::CommitOutcome;
use crate::storage::Location;
use crate::store::{
    Change, ClaimedLocation, NewTable, ObjectKind, PageQuery, SnapshotChanges, StoreError,
    StoredSnapshot, TableHead, TableSwap,
};

use iceberg::spec::TableProperties;

const PROPERTY_DELETE_AFTER_COMMIT: &str = "write.metadata.delete-after-commit.enabled";
pub(super) const NAMESPACE_PROPERTY_LOCATION: &str = "location";

/// The result of creating a table: committed (with a metadata location) or staged.
#[derive(Debug, Clone)]
pub struct CreatedTable {
    pub metadata_location: Option<String>,
    pub metadata_json: String,
    /// What the creator gets to write the table's files.
    pub access: super::TableAccess,
}

/// What to do with a table's files when it is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropTable {
    KeepFiles,
    Purge,
}

/// Whether files written for a change must stay after the store failed: the database may
/// have committed the change, and then its row points at them.
pub(super) fn keeps_files(err: &StoreError) -> bool {
    matches!(err, StoreError::OutcomeUnknown(_))
}

fn no_such_table(ident: &TableIdent) -> CatalogError {
    CatalogError::NoSuchTable(format!("table '{}' does not exist", display_ident(ident)))
}

pub(super) fn no_such_namespace(namespace: &[String]) -> CatalogError {
    CatalogError::NoSuchNamespace(format!(
        "namespace '{}' does not exist",
        display_namespace(namespace)
    ))
}

pub(super) fn display_ident(ident: &TableIdent) -> String {
    format!("{}.{}", display_namespace(ident.namespace()), ident.name())
}

pub(super) fn invalid(context: &str, err: iceberg::Error) -> CatalogError {
    CatalogError::BadRequest(format!("{context}: {err}"))
}

/// Refuses metadata larger than the cap.
pub(super) fn check_metadata_size(json: &str, limit: u64) -> CatalogResult<()> {
    if json.len() as u64 > limit {
        return Err(CatalogError::BadRequest(format!(
            "the metadata would be {} bytes; this server writes at most {limit} (--max-metadata-bytes)",
            json.len()
        )));
    }
    Ok(())
}

/// The next metadata file of a table (see [`metadata_file`]), gzip-compressed when the table
/// asks for it.
fn next_metadata_location(
    current: Option<&str>,
    metadata: &TableMetadata,
) -> CatalogResult<Location> {
    let gzip = metadata
        .properties()
        .get(TableProperties::PROPERTY_METADATA_COMPRESSION_CODEC)
        .is_some_and(|c| c.eq_ignore_ascii_case("gzip"));
    let location = Location::parse(metadata.location()).map_err(|e| {
        CatalogError::BadRequest(format!("the table location cannot be written: {e}"))
    })?;
    Ok(metadata_file(&location, current, gzip))
}

/// Takes `format-version` out of the properties (it is not a table property in the metadata).
fn take_format_version(properties: &mut HashMap<String, String>) -> CatalogResult<FormatVersion> {
    match properties
        .remove(TableProperties::PROPERTY_FORMAT_VERSION)
        .as_deref()
    {
        None => Ok(FormatVersion::V2),
        Some("1") => Ok(FormatVersion::V1),
        Some("2") => Ok(FormatVersion::V2),
        Some("3") => Ok(FormatVersion::V3),
        Some(other) => Err(CatalogError::BadRequest(format!(
            "format-version '{other}' is not supported; use 1, 2 or 3"
        ))),
    }
}

/// Properties every new table gets unless the client sets them.
const NEW_TABLE_DEFAULTS: [(&str, &str); 1] = [("write.parquet.compression-codec", "zstd")];

/// What a new table is made of.
pub(super) struct NewTableDefinition<'a> {
    pub name: String,
    pub location: &'a Location,
    pub schema: iceberg::spec::Schema,
    pub spec: Option<iceberg::spec::UnboundPartitionSpec>,
    pub order: Option<iceberg::spec::SortOrder>,
    pub properties: HashMap<String, String>,
    pub format_version: FormatVersion,
}

/// The metadata builder of a new table, its definitions checked first (so that a refusal
/// names the field). Pure: no I/O.
pub(super) fn new_table_builder(
    mut def: NewTableDefinition<'_>,
) -> CatalogResult<TableMetadataBuilder> {
    validate::creation(&def.schema, def.spec.as_ref(), def.order.as_ref())?;
    // The defaults the Java reference writes into every new table (since Iceberg 1.4), so a
    // table made through Serac behaves in Spark like one made by a Java catalog.
    for (key, value) in NEW_TABLE_DEFAULTS {
        def.properties
            .entry(key.to_owned())
            .or_insert_with(|| value.to_owned());
    }
    let creation = TableCreation::builder()
        .name(def.name)
        .location(def.location.to_string())
        .schema(def.schema)
        .partition_spec_opt(def.spec)
        .sort_order_opt(def.order)
        .properties(def.properties)
        .format_version(def.format_version)
        .build();
    TableMetadataBuilder::from_table_creation(creation)
        .map_err(|e| invalid("invalid table definition", e))
}

/// The metadata of a `createTable` request at `location`: definitions checked, built by the
/// crate, field ids renumbered like Java's. Pure: no I/O.
pub(super) fn create_request_metadata(
    request: CreateTableRequest,
    location: &Location,
) -> CatalogResult<TableMetadata> {
    let mut properties = request.properties;
    let format_version = take_format_version(&mut properties)?;
    let metadata = new_table_builder(NewTableDefinition {
        name: request.name,
        location,
        schema: request.schema,
        spec: request.partition_spec,
        order: request.write_order,
        properties,
        format_version,
    })?
    .build()
    .map_err(|e| invalid("invalid table definition", e))?
    .metadata;
    validate::new_definitions(&metadata, None)?;
    fresh_ids::renumber(metadata)
}

/// Applies updates to a builder and checks the result: definitions it added, the property
/// count. `before` is the metadata the builder started from (`None`: a new table).
fn apply_updates(
    mut builder: TableMetadataBuilder,
    updates: &[TableUpdate],
    before: Option<&TableMetadata>,
    limits: &super::Limits,
) -> CatalogResult<iceberg::spec::TableMetadataBuildResult> {
    if let Some(before) = before {
        validate::updates(updates, before)?;
    }
    for update in updates.iter().cloned() {
        builder = update
            .apply(builder)
            .map_err(|e| invalid("invalid table update", e))?;
    }
    let built = builder
        .build()
        .map_err(|e| invalid("the updates do not produce valid table metadata", e))?;
    validate::new_definitions(&built.metadata, before)?;
    check_property_count(limits, built.metadata.properties().len(), "the table")?;
    Ok(built)
}

/// A commit's updates applied to the current metadata: every location they name confined to
/// the warehouse, the definitions they add checked, the caps kept. Pure: no I/O.
pub(super) fn apply_commit(
    warehouse: &Warehouse,
    limits: &super::Limits,
    current: &TableMetadata,
    current_location: &str,
    updates: &[TableUpdate],
) -> CatalogResult<iceberg::spec::TableMetadataBuildResult> {
    check_table_updates(warehouse, limits, updates)?;
    let builder = current
        .clone()
        .into_builder(Some(current_location.to_owned()));
    apply_updates(builder, updates, Some(current), limits)
}

impl Catalog {
    pub async fn list_tables(
        &self,
        caller: &Caller,
        warehouse: &Warehouse,
        namespace: &NamespaceIdent,
        page: &PageRequest,
    ) -> CatalogResult<Paged<TableIdent>> {
        self.list_objects(caller, Some(ObjectKind::Table), warehouse, namespace, page)
            .await
    }

    /// Tables, views (`Some(kind)`) or functions (`None`) of a namespace, one page: all of
    /// them for a caller that may read the namespace, else the tables and views it holds
    /// `read` on (functions cannot be granted one by one: they need the namespace).
    pub(super) async fn list_objects(
        &self,
        caller: &Caller,
        kind: Option<ObjectKind>,
        warehouse: &Warehouse,
        namespace: &NamespaceIdent,
        page: &PageRequest,
    ) -> CatalogResult<Paged<TableIdent>> {
        let target = Target::Namespace(warehouse, namespace);
        let visible_to = match kind {
            Some(_) => self.list_filter(caller, target).await?,
            None => {
                self.authorize(caller, Privilege::Read, target).await?;
                None
            }
        };
        validate_namespace(namespace)?;
        let page = page.parse()?;
        let after = page.after.clone();
        let query = PageQuery {
            after: after.as_deref(),
            limit: page.fetch_limit(),
        };
        let names = match kind {
            Some(kind) => {
                self.store
                    .list_tables(kind, &warehouse.id, namespace, query, visible_to)
                    .await?
            }
            None => {
                self.store
                    .list_functions(&warehouse.id, namespace, query)
                    .await?
            }
        };
        let Some(names) = names else {
            // A caller that may not read the namespace is shown nothing either way, so the
            // answer does not tell whether the namespace exists.
            if visible_to.is_some() {
                return Ok(Paged::empty());
            }
            return Err(no_such_namespace(namespace));
        };
        let idents = names
            .into_iter()
            .map(|name| TableIdent::new(namespace.clone(), name))
            .collect();
        Ok(page.finish(idents, |t| t.name().to_owned()))
    }

    /// The current version of a table. Object storage is never read: the metadata comes from
    /// the cache when the database confirms it is current, else from the database.
    pub async fn load_table(
        &self,
        caller: &Caller,
        warehouse: &Warehouse,
        ident: &TableIdent,
    ) -> CatalogResult<Arc<TableVersion>> {
        let head = self.authorized_head(caller, warehouse, ident).await?;
        self.table_version(&head).await
    }

    /// The table's id and current metadata location: enough to answer "is it still the same?".
    pub async fn table_head(
        &self,
        caller: &Caller,
        warehouse: &Warehouse,
        ident: &TableIdent,
    ) -> CatalogResult<TableHead> {
        self.authorized_head(caller, warehouse, ident).await
    }

    /// The head of a table the caller may read. The lookup goes first because its query also
    /// reads the access epoch, which then serves the decision without a round trip of its
    /// own; the decision is taken before anything is answered, so a refusal says nothing of
    /// whether the table exists.
    async fn authorized_head(
        &self,
        caller: &Caller,
        warehouse: &Warehouse,
        ident: &TableIdent,
    ) -> CatalogResult<TableHead> {
        let head = self.lookup_head(warehouse, ident).await;
        self.authorize(caller, Privilege::Read, Target::Table(warehouse, ident))
            .await?;
        head
    }

    /// [`Self::table_head`] for operations that authorized their caller already.
    pub(super) async fn lookup_head(
        &self,
        warehouse: &Warehouse,
        ident: &TableIdent,
    ) -> CatalogResult<TableHead> {
        validate_table_ident(ident)?;
        self.heads
            .read((warehouse.id.clone(), ident.clone()), || {
                self.store.table_head(
                    ObjectKind::Table,
                    &warehouse.id,
                    ident.namespace(),
                    ident.name(),
                )
            })
            .await?
            .ok_or_else(|| no_such_table(ident))
    }

    /// The version a head names: from the cache, else from the database (a newer version
    /// when a commit landed since the head was read).
    pub async fn table_version(&self, head: &TableHead) -> CatalogResult<Arc<TableVersion>> {
        if let Some(version) = self.tables.get(&head.id, &head.metadata_location) {
            self.metrics.table_cache(true);
            return Ok(version);
        }
        self.metrics.table_cache(false);
        let row = self.store.table_by_id(&head.id).await?.ok_or_else(|| {
            CatalogError::NoSuchTable("the table was dropped while it was being read".into())
        })?;
        let version = Arc::new(TableVersion::from_stored(
            row.id,
            row.metadata_location,
            row.metadata,
            row.snapshots,
        )?);
        self.tables.insert(version.clone());
        Ok(version)
    }

    /// The location of a new table, view or function: the one the client asked for (within
    /// the warehouse), else the default one.
    pub(super) async fn new_object_location(
        &self,
        warehouse: &Warehouse,
        ident: &TableIdent,
        requested: Option<&str>,
    ) -> CatalogResult<Location> {
        match requested {
            Some(location) => object_location(warehouse, location, "location"),
            None => {
                self.default_table_location(warehouse, ident.namespace(), ident.name())
                    .await
            }
        }
    }

    /// The default location of a new table: under its namespace's `location` property when
    /// set, else under the warehouse (one escaped directory per namespace level), in a
    /// directory unique to this table.
    async fn default_table_location(
        &self,
        warehouse: &Warehouse,
        namespace: &NamespaceIdent,
        name: &str,
    ) -> CatalogResult<Location> {
        let ns = self
            .store
            .namespace(&warehouse.id, namespace)
            .await?
            .ok_or_else(|| no_such_namespace(namespace))?;
        let base = match ns.properties.get(NAMESPACE_PROPERTY_LOCATION) {
            Some(location) => {
                super::locations::confine(warehouse, location, "the namespace property 'location'")?
            }
            None => namespace_dir(warehouse, namespace),
        };
        Ok(new_object_dir(&base, name))
    }

    pub async fn create_table(
        &self,
        caller: &Caller,
        warehouse: &Warehouse,
        namespace: &NamespaceIdent,
        request: CreateTableRequest,
    ) -> CatalogResult<CreatedTable> {
        self.authorize(
            caller,
            Privilege::Create,
            Target::Namespace(warehouse, namespace),
        )
        .await?;
        let ident = TableIdent::new(namespace.clone(), request.name.clone());
        validate_table_ident(&ident)?;
        let limits = &self.settings.limits;
        check_property_count(limits, request.properties.len(), "the table")?;
        check_path_properties(warehouse, &request.properties)?;
        let location = self
            .new_object_location(warehouse, &ident, request.location.as_deref())
            .await?;
        let staged = request.stage_create == Some(true);
        let location_requested = request.location.is_some();
        let metadata = create_request_metadata(request, &location)?;

        if staged {
            // Nothing is stored: the client commits the staged table with `assert-create`.
            // (Without a requested location, the default one proved the namespace exists.)
            if location_requested
                && self
                    .store
                    .namespace(&warehouse.id, namespace)
                    .await?
                    .is_none()
            {
                return Err(no_such_namespace(namespace));
            }
            if self
                .store
                .table_head(ObjectKind::Table, &warehouse.id, namespace, ident.name())
                .await?
                .is_some()
            {
                return Err(CatalogError::AlreadyExists(format!(
                    "table '{}' already exists",
                    display_ident(&ident)
                )));
            }
            self.io(caller.arrived, warehouse)
                .await?
                .prepare_table_location(&location)
                .await?;
            return Ok(CreatedTable {
                metadata_location: None,
                metadata_json: to_json(&metadata)?,
                access: self
                    .creator_access(caller, warehouse, &ident, &location)
                    .await?,
            });
        }

        let version = self
            .insert_new_table(
                caller,
                warehouse,
                &ident,
                metadata,
                &location,
                &SummaryOrder::default(),
            )
            .await
            .map_err(|e| match e {
                InsertError::Exists => CatalogError::AlreadyExists(format!(
                    "table '{}' already exists",
                    display_ident(&ident)
                )),
                InsertError::Catalog(e) => e,
            })?;
        Ok(CreatedTable {
            metadata_location: Some(version.metadata_location.clone()),
            metadata_json: version.metadata_json.clone(),
            access: self
                .creator_access(caller, warehouse, &ident, &location)
                .await?,
        })
    }

    /// Writes the first metadata file of a table and inserts its row.
    async fn insert_new_table(
        &self,
        caller: &Caller,
        warehouse: &Warehouse,
        ident: &TableIdent,
        metadata: TableMetadata,
        location: &Location,
        order: &SummaryOrder,
    ) -> Result<Arc<TableVersion>, InsertError> {
        let metadata_location = next_metadata_location(None, &metadata)?;
        self.insert_table_at(
            caller,
            warehouse,
            ident,
            (metadata, order),
            (location, &metadata_location),
            true,
        )
        .await
    }

    /// Inserts a table whose table location and metadata file are `at`.
    async fn insert_table_at(
        &self,
        caller: &Caller,
        warehouse: &Warehouse,
        ident: &TableIdent,
        (metadata, order): (TableMetadata, &SummaryOrder),
        at: (&Location, &Location),
        write_file: bool,
    ) -> Result<Arc<TableVersion>, InsertError> {
        let (location, metadata_file) = at;
        let metadata_location = metadata_file.to_string();
        let json = to_json_ordered(&metadata, order)?;
        check_metadata_size(&json, self.settings.limits.max_metadata_bytes)?;
        let event = self.event(
            caller,
            "table.created",
            warehouse,
            ident.namespace(),
            Some(ident.name()),
            serde_json::json!({
                "table-uuid": metadata.uuid(),
                "metadata-location": metadata_location,
                "registered": !write_file,
            }),
        );
        let id = self
            .insert_object(
                Insert {
                    kind: Some(ObjectKind::Table),
                    warehouse,
                    ident,
                    metadata_file,
                    json: &json,
                    write_file,
                    claim: Some(&claim(location)),
                    arrived: caller.arrived,
                },
                Change::new(caller.idempotency(), vec![event]).owned_by(caller.owner()),
            )
            .await?;
        let version = Arc::new(TableVersion::with_parsed(
            id,
            metadata_location,
            json,
            Arc::new(metadata),
        ));
        self.tables.insert(version.clone());
        Ok(version)
    }

    /// Writes the first metadata file of a table, view (`kind`) or function (`None`) unless
    /// it exists already, and inserts the row with the change; when the row cannot be
    /// inserted the new file is deleted again. Returns the new row's id.
    pub(super) async fn insert_object(
        &self,
        insert: Insert<'_>,
        change: Change<'_>,
    ) -> Result<String, InsertError> {
        let Insert {
            kind,
            warehouse,
            ident,
            metadata_file,
            json,
            write_file,
            claim,
            arrived,
        } = insert;
        if write_file {
            self.io(arrived, warehouse)
                .await?
                .write_metadata(metadata_file, json.as_bytes())
                .await
                .map_err(CatalogError::from)?;
        }
        let id = uuid::Uuid::now_v7().to_string();
        let metadata_location = metadata_file.to_string();
        let row = NewTable {
            kind: kind.unwrap_or(ObjectKind::Table),
            id: &id,
            name: ident.name(),
            metadata_location: &metadata_location,
            metadata: json,
            location: claim,
        };
        let inserted = match kind {
            Some(_) => {
                self.store
                    .create_table(&warehouse.id, ident.namespace(), &row, &change)
                    .await
            }
            None => {
                self.store
                    .create_function(&warehouse.id, ident.namespace(), &row, &change)
                    .await
            }
        };
        match inserted {
            Ok(()) => Ok(id),
            Err(err) => {
                if write_file && !keeps_files(&err) {
                    self.delete_quietly(warehouse, metadata_file).await;
                }
                Err(match err {
                    StoreError::AlreadyExists => InsertError::Exists,
                    StoreError::LocationTaken => CatalogError::AlreadyExists(format!(
                        "cannot create '{}': its location lies at, above or below the location of another table or view",
                        display_ident(ident)
                    ))
                    .into(),
                    StoreError::MissingReference => no_such_namespace(ident.namespace()).into(),
                    other => CatalogError::from(other).into(),
                })
            }
        }
    }

    pub(super) async fn delete_quietly(&self, warehouse: &Warehouse, location: &Location) {
        let deleted = match self.io(std::time::Instant::now(), warehouse).await {
            Ok(io) => io.delete(location).await.map_err(CatalogError::from),
            Err(e) => Err(e),
        };
        if let Err(e) = deleted {
            tracing::warn!(%location, error = %e, "could not delete an unused metadata file");
        }
    }

    /// Applies a commit: requirements checked, updates applied, new metadata file written,
    /// row swapped by compare-and-set. Retries lost races up to the configured bound.
    pub async fn commit_table(
        &self,
        caller: &Caller,
        warehouse: &Warehouse,
        ident: &TableIdent,
        request: CommitTableRequest,
        order: &SummaryOrder,
    ) -> CatalogResult<Arc<TableVersion>> {
        self.authorize(caller, Privilege::Write, Target::Table(warehouse, ident))
            .await?;
        self.measured_commit(self.commit_table_once(caller, warehouse, ident, request, order))
            .await
    }

    /// Runs a commit (of one table or a transaction) under the commit metrics.
    async fn measured_commit<T>(
        &self,
        commit: impl std::future::Future<Output = CatalogResult<T>>,
    ) -> CatalogResult<T> {
        let timer = self.metrics.commit_duration.start_timer();
        let result = commit.await;
        timer.observe_duration();
        self.metrics.commit(match &result {
            Ok(_) => CommitOutcome::Committed,
            Err(CatalogError::CommitFailed(_)) => CommitOutcome::Conflict,
            Err(_) => CommitOutcome::Failed,
        });
        result
    }

    async fn commit_table_once(
        &self,
        caller: &Caller,
        warehouse: &Warehouse,
        ident: &TableIdent,
        request: CommitTableRequest,
        order: &SummaryOrder,
    ) -> CatalogResult<Arc<TableVersion>> {
        validate_table_ident(ident)?;
        if let Some(body_ident) = &request.identifier
            && body_ident != ident
        {
            return Err(CatalogError::BadRequest(format!(
                "the identifier in the body ('{}') does not match the table in the path ('{}')",
                display_ident(body_ident),
                display_ident(ident)
            )));
        }
        let creates = request
            .requirements
            .iter()
            .any(|r| matches!(r, TableRequirement::NotExist));
        // Commits to one table take turns inside this process: a writer whose requirement
        // no longer holds then fails at once instead of writing a file and losing the swap.
        // Across replicas the compare-and-set still decides.
        let _turn = self.commit_locks.lock(&warehouse.id, ident).await;
        let attempts = self.settings.commit_retries + 1;
        for _ in 0..attempts {
            let prepared = match self
                .prepare_commit(warehouse, ident, &request, order)
                .await?
            {
                Prepared::Missing if creates => {
                    return self
                        .create_table_from_commit(caller, warehouse, ident, &request, order)
                        .await;
                }
                Prepared::Missing => return Err(no_such_table(ident)),
                Prepared::Unchanged(current) => return Ok(current),
                Prepared::Changed(change) => *change,
            };
            if let Some(version) = self.swap(caller, warehouse, vec![prepared]).await?.pop() {
                return Ok(version);
            }
            self.metrics.commit(CommitOutcome::Retried);
            tracing::debug!(table = %display_ident(ident), "commit lost a race; retrying");
        }
        Err(CatalogError::CommitFailed(format!(
            "commit to table '{}' failed: the table changed under {attempts} concurrent commits in a row; retry the commit",
            display_ident(ident)
        )))
    }

    /// Commits changes to several tables atomically: every table's requirements are checked
    /// and its new metadata file written, then all rows swap in one database transaction, or
    /// none do.
    pub async fn commit_transaction(
        &self,
        caller: &Caller,
        warehouse: &Warehouse,
        changes: Vec<CommitTableRequest>,
        order: &SummaryOrder,
    ) -> CatalogResult<()> {
        for ident in changes.iter().filter_map(|c| c.identifier.as_ref()) {
            self.authorize(caller, Privilege::Write, Target::Table(warehouse, ident))
                .await?;
        }
        self.measured_commit(self.commit_transaction_once(caller, warehouse, changes, order))
            .await
    }

    async fn commit_transaction_once(
        &self,
        caller: &Caller,
        warehouse: &Warehouse,
        changes: Vec<CommitTableRequest>,
        order: &SummaryOrder,
    ) -> CatalogResult<()> {
        if changes.is_empty() {
            return Err(CatalogError::BadRequest(
                "a transaction needs at least one table change".into(),
            ));
        }
        let limit = self.settings.limits.max_transaction_changes;
        if changes.len() > limit {
            return Err(CatalogError::BadRequest(format!(
                "the transaction changes {} tables; this server accepts at most {limit} (--max-transaction-changes)",
                changes.len()
            )));
        }
        let mut idents: Vec<TableIdent> = Vec::with_capacity(changes.len());
        let mut seen = std::collections::HashSet::with_capacity(changes.len());
        for change in &changes {
            let ident = change.identifier.clone().ok_or_else(|| {
                CatalogError::BadRequest(
                    "every table change of a transaction needs its identifier".into(),
                )
            })?;
            validate_table_ident(&ident)?;
            if !seen.insert(ident.clone()) {
                return Err(CatalogError::BadRequest(format!(
                    "table '{}' appears twice in the transaction; merge its changes into one",
                    display_ident(&ident)
                )));
            }
            if change
                .requirements
                .iter()
                .any(|r| matches!(r, TableRequirement::NotExist))
            {
                return Err(CatalogError::BadRequest(format!(
                    "table '{}': a multi-table transaction cannot create tables (assert-create)",
                    display_ident(&ident)
                )));
            }
            idents.push(ident);
        }
        let _turns = self.commit_locks.lock_all(&warehouse.id, &idents).await;
        let attempts = self.settings.commit_retries + 1;
        for _ in 0..attempts {
            let mut prepared = Vec::with_capacity(changes.len());
            for (ident, change) in idents.iter().zip(&changes) {
                match self.prepare_commit(warehouse, ident, change, order).await {
                    Ok(Prepared::Changed(p)) => prepared.push(*p),
                    Ok(Prepared::Unchanged(_)) => {}
                    Ok(Prepared::Missing) => {
                        self.discard(warehouse, &prepared).await;
                        return Err(no_such_table(ident));
                    }
                    Err(e) => {
                        self.discard(warehouse, &prepared).await;
                        return Err(e);
                    }
                }
            }
            if prepared.is_empty() {
                return Ok(());
            }
            if !self.swap(caller, warehouse, prepared).await?.is_empty() {
                return Ok(());
            }
            self.metrics.commit(CommitOutcome::Retried);
            tracing::debug!("transaction lost a race; retrying");
        }
        Err(CatalogError::CommitFailed(format!(
            "transaction failed: its tables changed under {attempts} concurrent commits in a row; retry"
        )))
    }

    /// Reads a table's current version, checks the requirements and applies the updates, and
    /// writes the new metadata file; the row is not touched.
    async fn prepare_commit(
        &self,
        warehouse: &Warehouse,
        ident: &TableIdent,
        request: &CommitTableRequest,
        order: &SummaryOrder,
    ) -> CatalogResult<Prepared> {
        // The head's query also reads the epochs, which then serve the storage's check.
        let since = std::time::Instant::now();
        let Some(head) = self
            .store
            .table_head(
                ObjectKind::Table,
                &warehouse.id,
                ident.namespace(),
                ident.name(),
            )
            .await?
        else {
            return Ok(Prepared::Missing);
        };
        let current = self.table_version(&head).await?;
        let metadata = current.metadata()?;
        let current_metadata = metadata.clone();
        for requirement in &request.requirements {
            requirement.check(Some(&metadata)).map_err(|_| {
                CatalogError::CommitFailed(format!(
                    "commit to table '{}' failed: {}",
                    display_ident(ident),
                    requirement_failure(requirement, &metadata, &current.metadata_json)
                ))
            })?;
        }
        if request.updates.is_empty() {
            return Ok(Prepared::Unchanged(current));
        }
        let built = apply_commit(
            warehouse,
            &self.settings.limits,
            &current_metadata,
            &head.metadata_location,
            &request.updates,
        )?;
        let metadata = built.metadata;
        // A commit that moves the table claims its new directory.
        let moved = (metadata.location() != current_metadata.location())
            .then(|| object_location(warehouse, metadata.location(), "set-location"))
            .transpose()?
            .map(|l| claim(&l));
        let actions = request.updates.iter().map(action_name).collect();
        let location = next_metadata_location(Some(&head.metadata_location), &metadata)?;
        let previous = current.snapshot_spans()?;
        let NextDocument { json, rest, spans } =
            to_json_next(&metadata, order, &current.metadata_json, previous)?;
        // The row keeps the snapshots apart: the commit writes those it adds and removes.
        let first = !current.snapshots_apart();
        let added = spans.ids().filter(|id| first || !previous.contains(*id));
        let removed = previous.ids().filter(|id| !first && !spans.contains(*id));
        let (added, removed) = (added.collect(), removed.collect());
        check_metadata_size(&json, self.settings.limits.max_metadata_bytes)?;
        let write = self.metrics.metadata_write_duration.start_timer();
        self.io(since, warehouse)
            .await?
            .write_metadata(&location, json.as_bytes())
            .await?;
        write.observe_duration();
        let expired_files = if metadata
            .properties()
            .get(PROPERTY_DELETE_AFTER_COMMIT)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            built
                .expired_metadata_logs
                .into_iter()
                .filter_map(|log| {
                    // Only files within the table's own directory are deleted.
                    let file = Location::parse(&log.metadata_file).ok()?;
                    let table = Location::parse(metadata.location()).ok()?;
                    file.is_within(&table).then_some(file)
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(Prepared::Changed(Box::new(PreparedCommit {
            ident: ident.clone(),
            actions,
            head,
            location,
            json,
            rest,
            spans,
            first,
            added,
            removed,
            metadata: Arc::new(metadata),
            expired_files,
            moved,
        })))
    }

    /// Swaps the rows of prepared commits in one database transaction. Empty: a row had
    /// changed meanwhile (the new files are deleted again); else the new versions.
    async fn swap(
        &self,
        caller: &Caller,
        warehouse: &Warehouse,
        prepared: Vec<PreparedCommit>,
    ) -> CatalogResult<Vec<Arc<TableVersion>>> {
        #[cfg(feature = "failpoints")]
        if self
            .fail_next_swap
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            // Like a crash between writing the files and swapping the rows: the files stay.
            return Err(CatalogError::Internal(
                "injected failure between metadata file write and row swap".into(),
            ));
        }
        let new_locations: Vec<String> = prepared.iter().map(|p| p.location.to_string()).collect();
        let swaps: Vec<TableSwap<'_>> = prepared
            .iter()
            .zip(&new_locations)
            .map(|(p, new_location)| {
                Ok(TableSwap {
                    table_id: &p.head.id,
                    expected_location: &p.head.metadata_location,
                    new_location,
                    new_metadata: &p.rest,
                    snapshots: Some(p.snapshot_changes()?),
                    new_object_location: p.moved.as_ref(),
                })
            })
            .collect::<CatalogResult<_>>()?;
        let events = prepared
            .iter()
            .map(|p| {
                self.event(
                    caller,
                    "table.updated",
                    warehouse,
                    p.ident.namespace(),
                    Some(p.ident.name()),
                    serde_json::json!({
                        "table-uuid": p.metadata.uuid(),
                        "metadata-location": p.location.to_string(),
                        "previous-metadata-location": p.head.metadata_location,
                        "actions": p.actions,
                    }),
                )
            })
            .collect();
        let swapped = self
            .store
            .swap_tables_metadata(&swaps, &Change::new(caller.idempotency(), events))
            .await;
        drop(swaps);
        match swapped {
            Ok(true) => {}
            Ok(false) => {
                self.discard(warehouse, &prepared).await;
                return Ok(Vec::new());
            }
            Err(e) => {
                if !keeps_files(&e) {
                    self.discard(warehouse, &prepared).await;
                }
                if matches!(e, StoreError::LocationTaken) {
                    return Err(CatalogError::CommitFailed(
                        "commit failed: set-location names a location at, above or below the location of another table or view".into(),
                    ));
                }
                return Err(e.into());
            }
        }
        let mut versions = Vec::with_capacity(prepared.len());
        for p in prepared {
            for file in &p.expired_files {
                self.delete_quietly(warehouse, file).await;
            }
            let version = Arc::new(
                TableVersion::with_parsed(p.head.id, p.location.to_string(), p.json, p.metadata)
                    .with_snapshot_spans(p.spans)
                    .kept_apart(),
            );
            self.tables.insert(version.clone());
            versions.push(version);
        }
        Ok(versions)
    }

    /// Deletes the metadata files of commits that will not be swapped in.
    async fn discard(&self, warehouse: &Warehouse, prepared: &[PreparedCommit]) {
        for p in prepared {
            self.delete_quietly(warehouse, &p.location).await;
        }
    }

    /// Removes a table from the catalog and keeps every file; returns its last version.
    pub async fn unregister_table(
        &self,
        caller: &Caller,
        warehouse: &Warehouse,
        ident: &TableIdent,
    ) -> CatalogResult<Arc<TableVersion>> {
        self.authorize(caller, Privilege::Drop, Target::Table(warehouse, ident))
            .await?;
        // Taking the table's turn orders the unregister after commits in flight here.
        let _turn = self.commit_locks.lock(&warehouse.id, ident).await;
        self.drop_table(caller, warehouse, ident, DropTable::KeepFiles)
            .await
    }

    /// Commits a staged create: the updates carry the whole table definition.
    async fn create_table_from_commit(
        &self,
        caller: &Caller,
        warehouse: &Warehouse,
        ident: &TableIdent,
        request: &CommitTableRequest,
        summary_order: &SummaryOrder,
    ) -> CatalogResult<Arc<TableVersion>> {
        self.authorize(
            caller,
            Privilege::Create,
            Target::Namespace(warehouse, ident.namespace()),
        )
        .await?;
        for requirement in &request.requirements {
            if !matches!(requirement, TableRequirement::NotExist) {
                return Err(CatalogError::CommitFailed(format!(
                    "commit to table '{}' failed: the table does not exist, so requirement {requirement:?} cannot hold",
                    display_ident(ident)
                )));
            }
        }
        let mut schema = None;
        let mut spec = None;
        let mut order = None;
        let mut location = None;
        let mut properties = HashMap::new();
        let mut format_version = FormatVersion::V2;
        for update in &request.updates {
            match update {
                TableUpdate::AddSchema { schema: s } if schema.is_none() => {
                    schema = Some(s.clone())
                }
                TableUpdate::AddSpec { spec: s } if spec.is_none() => spec = Some(s.clone()),
                TableUpdate::AddSortOrder { sort_order } if order.is_none() => {
                    order = Some(sort_order.clone())
                }
                TableUpdate::SetLocation { location: l } => location = Some(l.clone()),
                TableUpdate::SetProperties { updates } => properties.extend(updates.clone()),
                TableUpdate::UpgradeFormatVersion { format_version: v } => format_version = *v,
                _ => {}
            }
        }
        let schema = schema.ok_or_else(|| {
            CatalogError::BadRequest(
                "a commit that creates a table must add a schema (add-schema update)".into(),
            )
        })?;
        check_table_updates(warehouse, &self.settings.limits, &request.updates)?;
        let location = self
            .new_object_location(warehouse, ident, location.as_deref())
            .await?;
        let builder = new_table_builder(NewTableDefinition {
            name: ident.name().to_owned(),
            location: &location,
            schema,
            spec,
            order,
            properties,
            format_version,
        })?;
        let metadata =
            apply_updates(builder, &request.updates, None, &self.settings.limits)?.metadata;
        let metadata = if metadata.schemas_iter().len() == 1 {
            fresh_ids::renumber(metadata)?
        } else {
            metadata
        };
        // The updates may have moved it (set-location after the creation's own).
        let location = object_location(warehouse, metadata.location(), "set-location")?;
        self.insert_new_table(
            caller,
            warehouse,
            ident,
            metadata,
            &location,
            summary_order,
        )
        .await
            .map_err(|e| match e {
                InsertError::Exists => CatalogError::CommitFailed(format!(
                    "commit to table '{}' failed: requirement assert-create does not hold, the table exists",
                    display_ident(ident)
                )),
                InsertError::Catalog(e) => e,
            })
    }

    /// Drops a table. With [`DropTable::Purge`], a purge task for its files is recorded in
    /// the same transaction and carried out in the background (see `purge.rs`): the drop
    /// answers at once, and no crash or restart loses the purge.
    pub async fn drop_table(
        &self,
        caller: &Caller,
        warehouse: &Warehouse,
        ident: &TableIdent,
        mode: DropTable,
    ) -> CatalogResult<Arc<TableVersion>> {
        self.authorize(caller, Privilege::Drop, Target::Table(warehouse, ident))
            .await?;
        validate_table_ident(ident)?;
        let purge = mode == DropTable::Purge;
        let row = self
            .store
            .drop_table(
                ObjectKind::Table,
                &warehouse.id,
                ident.namespace(),
                ident.name(),
                purge,
                &Change::new(
                    caller.idempotency(),
                    vec![self.event(
                        caller,
                        "table.dropped",
                        warehouse,
                        ident.namespace(),
                        Some(ident.name()),
                        serde_json::json!({ "purge": purge }),
                    )],
                ),
            )
            .await?
            .ok_or_else(|| no_such_table(ident))?;
        self.tables.remove(&row.id);
        if purge {
            self.purge_requested();
        }
        Ok(Arc::new(TableVersion::from_stored(
            row.id,
            row.metadata_location,
            row.metadata,
            row.snapshots,
        )?))
    }

    pub async fn rename_table(
        &self,
        caller: &Caller,
        warehouse: &Warehouse,
        source: &TableIdent,
        destination: &TableIdent,
    ) -> CatalogResult<()> {
        self.rename_object(caller, ObjectKind::Table, warehouse, source, destination)
            .await
    }

    /// Moves a table or view; the destination name may be taken by neither. Needs `drop` on
    /// the source and `create` in the destination namespace.
    pub(super) async fn rename_object(
        &self,
        caller: &Caller,
        kind: ObjectKind,
        warehouse: &Warehouse,
        source: &TableIdent,
        destination: &TableIdent,
    ) -> CatalogResult<()> {
        let source_target = match kind {
            ObjectKind::Table => Target::Table(warehouse, source),
            ObjectKind::View => Target::View(warehouse, source),
        };
        self.authorize(caller, Privilege::Drop, source_target)
            .await?;
        self.authorize(
            caller,
            Privilege::Create,
            Target::Namespace(warehouse, destination.namespace()),
        )
        .await?;
        validate_table_ident(source)?;
        validate_table_ident(destination)?;
        let event = self.event(
            caller,
            match kind {
                ObjectKind::Table => "table.renamed",
                ObjectKind::View => "view.renamed",
            },
            warehouse,
            source.namespace(),
            Some(source.name()),
            serde_json::json!({
                "destination": {
                    "namespace": destination.namespace().as_ref(),
                    "name": destination.name(),
                }
            }),
        );
        match self
            .store
            .rename_table(
                kind,
                &warehouse.id,
                (source.namespace(), source.name()),
                (destination.namespace(), destination.name()),
                &Change::new(caller.idempotency(), vec![event]),
            )
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) if kind == ObjectKind::View => Err(super::views::no_such_view(source)),
            Ok(false) => Err(no_such_table(source)),
            Err(StoreError::MissingReference) => Err(no_such_namespace(destination.namespace())),
            Err(StoreError::AlreadyExists) => Err(CatalogError::AlreadyExists(format!(
                "cannot rename '{}': a table or view named '{}' already exists",
                display_ident(source),
                display_ident(destination)
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Adds a table whose metadata file exists already. With `overwrite`, an existing table of
    /// that name is pointed at the file instead.
    pub async fn register_table(
        &self,
        caller: &Caller,
        warehouse: &Warehouse,
        namespace: &NamespaceIdent,
        request: RegisterTableRequest,
    ) -> CatalogResult<Arc<TableVersion>> {
        self.authorize(
            caller,
            Privilege::Create,
            Target::Namespace(warehouse, namespace),
        )
        .await?;
        validate_namespace(namespace)?;
        validate_table_name(&request.name)?;
        let ident = TableIdent::new(namespace.clone(), request.name.clone());
        let metadata_file =
            super::locations::confine(warehouse, &request.metadata_location, "metadata-location")?;
        let bytes = self
            .io(caller.arrived, warehouse)
            .await?
            .read_json_file(&metadata_file)
            .await?;
        let metadata = super::metadata_json::parse(&bytes).map_err(|e| {
            CatalogError::BadRequest(format!(
                "'{metadata_file}' is not a valid table metadata file: {e}"
            ))
        })?;
        let location = check_table_metadata(warehouse, &metadata)?;
        check_property_count(
            &self.settings.limits,
            metadata.properties().len(),
            "the table",
        )?;
        let metadata_location = metadata_file.to_string();
        let order = SummaryOrder::of_metadata(&bytes);
        if request.overwrite == Some(true)
            && let Some(head) = self
                .store
                .table_head(ObjectKind::Table, &warehouse.id, namespace, &request.name)
                .await?
        {
            let json = to_json_ordered(&metadata, &order)?;
            let event = self.event(
                caller,
                "table.updated",
                warehouse,
                namespace,
                Some(&request.name),
                serde_json::json!({
                    "table-uuid": metadata.uuid(),
                    "metadata-location": metadata_location,
                    "previous-metadata-location": head.metadata_location,
                    "registered": true,
                }),
            );
            let claimed = claim(&location);
            let swap = TableSwap {
                table_id: &head.id,
                expected_location: &head.metadata_location,
                new_location: &metadata_location,
                new_metadata: &json,
                snapshots: None,
                new_object_location: Some(&claimed),
            };
            let swapped = self
                .store
                .swap_tables_metadata(&[swap], &Change::new(caller.idempotency(), vec![event]))
                .await
                .map_err(|e| match e {
                    StoreError::LocationTaken => CatalogError::AlreadyExists(format!(
                        "cannot register '{}': its location lies at, above or below the location of another table or view",
                        display_ident(&ident)
                    )),
                    other => other.into(),
                })?;
            if !swapped {
                return Err(CatalogError::CommitFailed(format!(
                    "table '{}' changed while it was being registered; retry",
                    display_ident(&ident)
                )));
            }
            let version = Arc::new(TableVersion::with_parsed(
                head.id,
                metadata_location,
                json,
                Arc::new(metadata),
            ));
            self.tables.insert(version.clone());
            return Ok(version);
        }
        self.insert_table_at(
            caller,
            warehouse,
            &ident,
            (metadata, &order),
            (&location, &metadata_file),
            false,
        )
        .await
        .map_err(|e| match e {
            InsertError::Exists => CatalogError::AlreadyExists(format!(
                "table '{}' already exists",
                display_ident(&ident)
            )),
            InsertError::Catalog(e) => e,
        })
    }
}

/// Whether a ref is a `branch` or a `tag` (the crate's metadata does not say). `main` is
/// always a branch; other refs are looked up in the document with a skim that builds nothing
/// but the refs (this runs under the table's commit turn, on every conflicting commit).
fn ref_kind(name: &str, metadata_json: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Ref {
        #[serde(rename = "type")]
        kind: String,
    }
    #[derive(serde::Deserialize)]
    struct Refs {
        #[serde(default)]
        refs: HashMap<String, Ref>,
    }
    if name == "main" {
        return "branch".into();
    }
    serde_json::from_str::<Refs>(metadata_json)
        .ok()
        .and_then(|mut doc| doc.refs.remove(name))
        .map_or_else(|| "branch".into(), |r| r.kind)
}

/// Why a requirement does not hold, in the Java reference's words (clients match on them).
fn requirement_failure(
    requirement: &TableRequirement,
    metadata: &TableMetadata,
    metadata_json: &str,
) -> String {
    let changed = |what: &str, expected: &dyn std::fmt::Display, actual: &dyn std::fmt::Display| {
        format!("Requirement failed: {what} changed: expected id {expected} != {actual}")
    };
    match requirement {
        TableRequirement::NotExist => "Requirement failed: table already exists".into(),
        TableRequirement::UuidMatch { uuid } => format!(
            "Requirement failed: UUID does not match: expected {uuid} != {}",
            metadata.uuid()
        ),
        TableRequirement::RefSnapshotIdMatch { r#ref, snapshot_id } => {
            let current = metadata.snapshot_for_ref(r#ref).map(|s| s.snapshot_id());
            let kind = ref_kind(r#ref, metadata_json);
            match (snapshot_id, current) {
                (None, Some(_)) => {
                    format!("Requirement failed: {kind} {ref} was created concurrently", ref = r#ref)
                }
                (Some(expected), Some(actual)) => format!(
                    "Requirement failed: {kind} {ref} has changed: expected id {expected} != {actual}",
                    ref = r#ref
                ),
                (Some(expected), None) => format!(
                    "Requirement failed: branch or tag {ref} is missing, expected {expected}",
                    ref = r#ref
                ),
                (None, None) => {
                    format!("Requirement failed: ref {ref} does not match", ref = r#ref)
                }
            }
        }
        TableRequirement::LastAssignedFieldIdMatch {
            last_assigned_field_id,
        } => changed(
            "last assigned field id",
            last_assigned_field_id,
            &metadata.last_column_id(),
        ),
        TableRequirement::CurrentSchemaIdMatch { current_schema_id } => changed(
            "current schema",
            current_schema_id,
            &metadata.current_schema_id(),
        ),
        TableRequirement::LastAssignedPartitionIdMatch {
            last_assigned_partition_id,
        } => changed(
            "last assigned partition id",
            last_assigned_partition_id,
            &metadata.last_partition_id(),
        ),
        TableRequirement::DefaultSpecIdMatch { default_spec_id } => changed(
            "default partition spec",
            default_spec_id,
            &metadata.default_partition_spec_id(),
        ),
        TableRequirement::DefaultSortOrderIdMatch {
            default_sort_order_id,
        } => changed(
            "default sort order",
            default_sort_order_id,
            &metadata.default_sort_order_id(),
        ),
    }
}

/// The spec's name of an update (its `action`), for change events.
fn action_name(update: &TableUpdate) -> &'static str {
    match update {
        TableUpdate::UpgradeFormatVersion { .. } => "upgrade-format-version",
        TableUpdate::AssignUuid { .. } => "assign-uuid",
        TableUpdate::AddSchema { .. } => "add-schema",
        TableUpdate::SetCurrentSchema { .. } => "set-current-schema",
        TableUpdate::AddSpec { .. } => "add-spec",
        TableUpdate::SetDefaultSpec { .. } => "set-default-spec",
        TableUpdate::AddSortOrder { .. } => "add-sort-order",
        TableUpdate::SetDefaultSortOrder { .. } => "set-default-sort-order",
        TableUpdate::AddSnapshot { .. } => "add-snapshot",
        TableUpdate::SetSnapshotRef { .. } => "set-snapshot-ref",
        TableUpdate::RemoveSnapshots { .. } => "remove-snapshots",
        TableUpdate::RemoveSnapshotRef { .. } => "remove-snapshot-ref",
        TableUpdate::SetLocation { .. } => "set-location",
        TableUpdate::SetProperties { .. } => "set-properties",
        TableUpdate::RemoveProperties { .. } => "remove-properties",
        TableUpdate::RemovePartitionSpecs { .. } => "remove-partition-specs",
        TableUpdate::SetStatistics { .. } => "set-statistics",
        TableUpdate::RemoveStatistics { .. } => "remove-statistics",
        TableUpdate::SetPartitionStatistics { .. } => "set-partition-statistics",
        TableUpdate::RemovePartitionStatistics { .. } => "remove-partition-statistics",
        TableUpdate::RemoveSchemas { .. } => "remove-schemas",
        TableUpdate::AddEncryptionKey { .. } => "add-encryption-key",
        TableUpdate::RemoveEncryptionKey { .. } => "remove-encryption-key",
    }
}

/// A commit whose new metadata file is written and whose row is not yet swapped.
struct PreparedCommit {
    ident: TableIdent,
    /// The update actions applied (for the change event).
    actions: Vec<&'static str>,
    head: TableHead,
    /// The new metadata file.
    location: Location,
    json: String,
    /// `json` without its snapshots, as the row keeps it.
    rest: String,
    /// Where the snapshots sit in `json`.
    spans: SnapshotSpans,
    /// The row kept the snapshots in its document so far (all are added).
    first: bool,
    /// The ids of the snapshots the commit adds to and removes from the row's.
    added: Vec<i64>,
    removed: Vec<i64>,
    metadata: Arc<TableMetadata>,
    /// Old metadata files to delete once the swap succeeded.
    expired_files: Vec<Location>,
    /// The new table location, when the commit moves the table.
    moved: Option<ClaimedLocation>,
}

impl PreparedCommit {
    /// The snapshot rows the swap writes. Every added snapshot is in the new metadata and
    /// its document; one that is not would be lost from the row, so the commit fails instead.
    fn snapshot_changes(&self) -> CatalogResult<SnapshotChanges<'_>> {
        let added = self
            .added
            .iter()
            .map(|id| {
                let snapshot = self.metadata.snapshot_by_id(*id);
                let body = self.spans.text(&self.json, *id);
                let (Some(snapshot), Some(body)) = (snapshot, body) else {
                    return Err(CatalogError::Internal(format!(
                        "snapshot {id} of table '{}' is missing from its new metadata document",
                        display_ident(&self.ident)
                    )));
                };
                Ok(StoredSnapshot {
                    id: *id,
                    sequence_number: snapshot.sequence_number(),
                    timestamp_ms: snapshot.timestamp_ms(),
                    body,
                })
            })
            .collect::<CatalogResult<_>>()?;
        Ok(SnapshotChanges {
            first: self.first,
            added,
            removed: self.removed.clone(),
        })
    }
}

enum Prepared {
    /// The table does not exist.
    Missing,
    /// The requirements hold and there is nothing to change.
    Unchanged(Arc<TableVersion>),
    Changed(Box<PreparedCommit>),
}

/// What [`Catalog::insert_object`] inserts.
pub(super) struct Insert<'a> {
    /// A table or view; `None`: a function.
    pub kind: Option<ObjectKind>,
    pub warehouse: &'a Warehouse,
    pub ident: &'a TableIdent,
    pub metadata_file: &'a Location,
    pub json: &'a str,
    /// Write the metadata file (false: it exists already, a registration).
    pub write_file: bool,
    /// The location a table or view claims (`None`: a function).
    pub claim: Option<&'a ClaimedLocation>,
    /// When the request arrived (see [`Catalog::io`]).
    pub arrived: std::time::Instant,
}

pub(super) enum InsertError {
    /// The name is taken.
    Exists,
    Catalog(CatalogError),
}

impl From<CatalogError> for InsertError {
    fn from(err: CatalogError) -> Self {
        Self::Catalog(err)
    }
}

#[cfg(test)]
mod tests {
    use iceberg::TableUpdate;

    #[test]
    fn action_names_are_the_spec_names() {
        let updates = [
            TableUpdate::SetProperties {
                updates: Default::default(),
            },
            TableUpdate::RemoveProperties {
                removals: Vec::new(),
            },
            TableUpdate::SetLocation {
                location: "file:///t".into(),
            },
            TableUpdate::AssignUuid {
                uuid: uuid::Uuid::nil(),
            },
            TableUpdate::RemoveSnapshots {
                snapshot_ids: Vec::new(),
            },
            TableUpdate::SetDefaultSpec { spec_id: 0 },
        ];
        for update in &updates {
            let json = serde_json::to_value(update).unwrap();
            assert_eq!(json["action"], super::action_name(update), "{json}");
        }
    }
}
