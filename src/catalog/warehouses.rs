//! Warehouses: created with a storage profile, given a new profile (key rotation, a new STS
//! role, a new endpoint), deleted when empty; looked up by name and kept in memory.
//!
//! Every replica keeps the warehouses it served, and the storage built from each profile
//! (clients, the vended-credential cache), stamped with the warehouse epoch: a counter in the
//! database that every change of a warehouse row moves in its own transaction (migration 15),
//! read in the same row as the access epoch. Before a warehouse's profile is used for I/O or
//! for credentials, [`Catalog::io`] compares the stamp with the epoch as read after the
//! request arrived: a read the request makes anyway serves it (a load's table head reads both
//! epochs in its one statement, an authorization decision reads them too), so loads cost no
//! extra query, and a replica uses a new profile from the first request that arrives after
//! the change committed, whichever replica or command made it. Name lookups use the newest
//! epoch this replica has read, without a query of their own.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::{Caller, Catalog, CatalogError, CatalogResult, Privilege, authz, ident};
use crate::storage::{Location, SecretKeys, StorageProfile, StoredSecrets, WarehouseStorage};
use crate::store::{Change, WarehouseContents, WarehouseDeletion, WarehouseRow, now_ms};

/// A warehouse: a named root location with its own namespaces and tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warehouse {
    pub id: String,
    pub name: String,
    /// The root as stored.
    pub location: String,
    /// The root, parsed: every location of the warehouse lies within it.
    pub root: Location,
    /// How the warehouse's object store is reached (`None`: local files), as it was when the
    /// warehouse was looked up. The profile may have changed since: I/O and credentials go
    /// through [`Catalog::io`], which uses the current one.
    pub storage: Option<StorageProfile>,
    /// How the profile's secret is stored (`None`: no profile). When it cannot be read (a
    /// secrets key this server lacks), `storage` holds the profile with an empty secret.
    pub stored_secrets: Option<StoredSecrets>,
}

impl Warehouse {
    /// A warehouse from its row, the profile's secret opened with `keys`.
    pub(super) fn from_row(row: WarehouseRow, keys: &SecretKeys) -> CatalogResult<Self> {
        let root = Location::parse(&row.location).map_err(|e| {
            CatalogError::Internal(format!(
                "warehouse '{}' has an unusable root location: {e}",
                row.name
            ))
        })?;
        let (storage, stored_secrets) = match row.storage.as_deref() {
            None => (None, None),
            Some(raw) => {
                let (profile, secrets) = StorageProfile::from_stored_json(raw, keys, &row.id)
                    .map_err(|e| {
                        CatalogError::Internal(format!("warehouse '{}': {e}", row.name))
                    })?;
                (Some(profile), Some(secrets))
            }
        };
        Ok(Self {
            id: row.id,
            name: row.name,
            location: row.location,
            root,
            storage,
            stored_secrets,
        })
    }

    /// Refuses a warehouse whose profile's secret this server cannot read: a 503, since a
    /// replica configured with the key (in the middle of a rolling key change) can serve it.
    fn check_secrets(&self) -> CatalogResult<()> {
        match &self.stored_secrets {
            Some(StoredSecrets::Unreadable(why)) => Err(CatalogError::Unavailable(format!(
                "the storage profile of warehouse '{}' cannot be used by this server: {why}",
                self.name
            ))),
            _ => Ok(()),
        }
    }
}

/// What `serac secrets rotate` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SecretRotation {
    /// Warehouses whose secret was stored again as this server stores it now: sealed with
    /// the current key (or in plain text, without a key).
    pub rewritten: Vec<String>,
    /// Warehouses whose secret was stored that way already.
    pub current: Vec<String>,
    /// Warehouses left as they were, with why.
    pub skipped: Vec<(String, String)>,
}

fn no_such_warehouse(name: &str) -> CatalogError {
    CatalogError::NoSuchWarehouse(format!(
        "warehouse '{}' does not exist",
        name.escape_debug()
    ))
}

/// Why a warehouse cannot be deleted: what it still holds.
fn not_empty(name: &str, contents: &WarehouseContents) -> CatalogError {
    if contents.is_empty() {
        return CatalogError::Conflict(format!(
            "warehouse '{name}' cannot be deleted: something was created in it while it was \
             being deleted"
        ));
    }
    let held: Vec<String> = [
        (contents.namespaces, "namespace"),
        (contents.tables, "table"),
        (contents.views, "view"),
        (contents.functions, "function"),
        (contents.purge_tasks, "pending purge task"),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}{}", if n == 1 { "" } else { "s" }))
    .collect();
    CatalogError::Conflict(format!(
        "warehouse '{name}' cannot be deleted: it still holds {}; drop them first (purges of \
         dropped tables finish on their own)",
        held.join(", ")
    ))
}

impl Catalog {
    /// Creates the default warehouse on first start; later starts leave it as it is.
    pub async fn ensure_default_warehouse(&self, location: &str) -> CatalogResult<Arc<Warehouse>> {
        match self.warehouse(None).await {
            Err(CatalogError::NoSuchWarehouse(_)) => {}
            found => return found,
        }
        let name = self.settings.default_warehouse.clone();
        match self
            .create_warehouse(&Caller::server(), &name, location, None)
            .await
        {
            // Another replica created it meanwhile.
            Err(CatalogError::AlreadyExists(_)) => self.warehouse(None).await,
            created => created,
        }
    }

    /// Checks a profile against the store before it is recorded: a probe object written,
    /// read, listed and deleted below `root`, and one AssumeRole in `vended` mode. A failure
    /// is a bad request naming the step.
    async fn probe(&self, root: &Location, profile: &StorageProfile) -> CatalogResult<()> {
        self.storage
            .build(root, Some(profile))?
            .probe()
            .await
            .map_err(|e| CatalogError::BadRequest(e.to_string()))
    }

    /// Creates a warehouse; one on object storage needs a storage profile, which is checked
    /// against the store (see [`Self::probe`]) before anything is recorded.
    pub async fn create_warehouse(
        &self,
        caller: &Caller,
        name: &str,
        location: &str,
        storage: Option<StorageProfile>,
    ) -> CatalogResult<Arc<Warehouse>> {
        self.authorize(caller, Privilege::Admin, authz::Target::Server)
            .await?;
        ident::validate_warehouse_name(name)?;
        let root = self
            .storage
            .warehouse_root(location, storage.as_ref())
            .map_err(|e| CatalogError::BadRequest(e.to_string()))?;
        let location = root.to_string();
        // Tables are confined to their warehouse: no warehouse may lie inside another.
        if let Some(other) = self.store.list_warehouses().await?.into_iter().find(|w| {
            w.name != name
                && Location::parse(&w.location)
                    .map_or(w.location == location, |o| o.overlaps(&root))
        }) {
            return Err(CatalogError::BadRequest(format!(
                "location '{location}' overlaps the location '{}' of warehouse '{}'",
                other.location, other.name
            )));
        }
        if let Some(profile) = &storage {
            self.probe(&root, profile).await?;
        }
        let id = uuid::Uuid::now_v7().to_string();
        let keys = self.storage.secret_keys();
        let row = WarehouseRow {
            storage: storage.as_ref().map(|p| p.to_stored_json(keys, &id)),
            id,
            name: name.to_owned(),
            location,
            properties: HashMap::new(),
            created_at_ms: now_ms(),
            epoch: 0,
        };
        let warehouse = Warehouse::from_row(row.clone(), keys)?;
        let mut data = serde_json::json!({ "location": warehouse.location });
        if let Some(profile) = &warehouse.storage {
            // Without credentials: events are read by subscribers.
            data["storage"] = profile.redacted();
        }
        let event = self.event(caller, "warehouse.created", &warehouse, &[], None, data);
        match self
            .store
            .create_warehouse(&row, &Change::new(caller.idempotency(), vec![event]))
            .await
        {
            Ok(()) => {}
            Err(crate::store::StoreError::AlreadyExists) => {
                return Err(CatalogError::AlreadyExists(format!(
                    "warehouse '{name}' already exists"
                )));
            }
            Err(e) => return Err(e.into()),
        }
        warn_if_plain(&warehouse);
        // Not kept: the next lookup reads it with the epoch it is valid at.
        Ok(Arc::new(warehouse))
    }

    /// Gives a warehouse a new storage profile (`profile` as a client sent it): checked like
    /// a new warehouse's (see [`Self::probe`]) before it replaces the old one, with the
    /// warehouse's location unchanged (its tables live there). Every replica uses the new
    /// profile from its next request on; credentials vended with the old one are not handed
    /// out again. The `warehouse.updated` event names the fields that changed, never values.
    pub async fn update_warehouse_storage(
        &self,
        caller: &Caller,
        name: &str,
        profile: serde_json::Value,
    ) -> CatalogResult<Arc<Warehouse>> {
        self.authorize(caller, Privilege::Admin, authz::Target::Server)
            .await?;
        let profile = StorageProfile::parse(profile).map_err(CatalogError::BadRequest)?;
        let row = self
            .store
            .warehouse_by_name(name)
            .await?
            .ok_or_else(|| no_such_warehouse(name))?;
        let root = self
            .storage
            .warehouse_root(&row.location, Some(&profile))
            .map_err(|e| CatalogError::BadRequest(e.to_string()))?;
        self.probe(&root, &profile).await?;
        let keys = self.storage.secret_keys();
        let old = Warehouse::from_row(row.clone(), keys)?;
        let mut changed = old
            .storage
            .as_ref()
            .map(|old| profile.changed_fields(old))
            .unwrap_or_default();
        if matches!(old.stored_secrets, Some(StoredSecrets::Unreadable(_)))
            && !changed.iter().any(|f| f == "secret-access-key")
        {
            // The old secret could not be compared: say it was replaced.
            changed.push("secret-access-key".into());
            changed.sort();
        }
        let stored = profile.to_stored_json(keys, &row.id);
        let warehouse = Warehouse::from_row(
            WarehouseRow {
                storage: Some(stored.clone()),
                ..row
            },
            keys,
        )?;
        let data = serde_json::json!({
            "location": warehouse.location,
            "storage": profile.redacted(),
            "changed": changed,
        });
        let event = self.event(caller, "warehouse.updated", &warehouse, &[], None, data);
        let change = Change::new(caller.idempotency(), vec![event]);
        if !self
            .store
            .set_warehouse_storage(&warehouse.id, None, &stored, &change)
            .await?
        {
            return Err(CatalogError::NoSuchWarehouse(format!(
                "warehouse '{name}' was deleted while its storage profile was being replaced"
            )));
        }
        self.forget_warehouse(&warehouse);
        tracing::info!(warehouse = %warehouse.name, changed = ?changed, "storage profile replaced");
        warn_if_plain(&warehouse);
        Ok(Arc::new(warehouse))
    }

    /// Deletes a warehouse that holds nothing: no namespace (so no table, view or function)
    /// and no pending purge task. Its grants go with it. This server's default warehouse is
    /// refused: it is served without a prefix, and `serac serve` would make it again.
    pub async fn delete_warehouse(&self, caller: &Caller, name: &str) -> CatalogResult<()> {
        self.authorize(caller, Privilege::Admin, authz::Target::Server)
            .await?;
        if name == self.settings.default_warehouse {
            return Err(CatalogError::Conflict(format!(
                "warehouse '{name}' is the default warehouse (--default-warehouse, \
                 SERAC_DEFAULT_WAREHOUSE): it is served without a prefix and made again at \
                 start; make another warehouse the default first"
            )));
        }
        let row = self
            .store
            .warehouse_by_name(name)
            .await?
            .ok_or_else(|| no_such_warehouse(name))?;
        let warehouse = Warehouse::from_row(row, self.storage.secret_keys())?;
        let data = serde_json::json!({ "location": warehouse.location });
        let event = self.event(caller, "warehouse.deleted", &warehouse, &[], None, data);
        let change = Change::new(caller.idempotency(), vec![event]);
        match self.store.delete_warehouse(&warehouse.id, &change).await? {
            WarehouseDeletion::Deleted => {
                self.forget_warehouse(&warehouse);
                Ok(())
            }
            WarehouseDeletion::NotFound => Err(no_such_warehouse(name)),
            WarehouseDeletion::NotEmpty(contents) => Err(not_empty(name, &contents)),
        }
    }

    /// Stores every warehouse's secret as this server stores it now: sealed with the current
    /// secrets key (opened with the current or a previous one), or in plain text without a
    /// key. A secret that cannot be opened, or a profile changed meanwhile, is left as it is
    /// and reported.
    pub async fn rotate_secrets(&self, caller: &Caller) -> CatalogResult<SecretRotation> {
        self.authorize(caller, Privilege::Admin, authz::Target::Server)
            .await?;
        let keys = self.storage.secret_keys();
        let mut report = SecretRotation::default();
        for row in self.store.list_warehouses().await? {
            let Some(raw) = &row.storage else { continue };
            let (profile, state) = StorageProfile::from_stored_json(raw, keys, &row.id)
                .map_err(|e| CatalogError::Internal(format!("warehouse '{}': {e}", row.name)))?;
            let current = match state {
                StoredSecrets::Unreadable(why) => {
                    report.skipped.push((row.name, why));
                    continue;
                }
                StoredSecrets::Plain => keys.current_id().is_none(),
                StoredSecrets::Sealed { current, .. } => current,
            };
            if current {
                report.current.push(row.name);
                continue;
            }
            let stored = profile.to_stored_json(keys, &row.id);
            if self
                .store
                .set_warehouse_storage(&row.id, Some(raw), &stored, &Change::default())
                .await?
            {
                report.rewritten.push(row.name);
            } else {
                report.skipped.push((
                    row.name,
                    "its profile changed (or it was deleted) meanwhile; run again".into(),
                ));
            }
        }
        Ok(report)
    }

    /// Says at start what operators must know about stored secrets: profiles kept in plain
    /// text, sealed with a previous key, or sealed with a key this server lacks.
    pub async fn check_stored_secrets(&self) -> CatalogResult<()> {
        let keys = self.storage.secret_keys();
        let (mut plain, mut previous) = (Vec::new(), Vec::new());
        for row in self.store.list_warehouses().await? {
            let warehouse = Warehouse::from_row(row, keys)?;
            match &warehouse.stored_secrets {
                Some(StoredSecrets::Plain) => plain.push(warehouse.name),
                Some(StoredSecrets::Sealed { current: false, .. }) => previous.push(warehouse.name),
                Some(StoredSecrets::Unreadable(why)) => tracing::error!(
                    warehouse = %warehouse.name,
                    "the storage profile of this warehouse cannot be used: {why}"
                ),
                _ => {}
            }
        }
        if !plain.is_empty() {
            let advice = match keys.current_id() {
                None => {
                    "give the server a secrets key (--secrets-key-file, SERAC_SECRETS_KEY_FILE) \
                     and run `serac secrets rotate` with it to encrypt them"
                }
                Some(_) => "run `serac secrets rotate` to encrypt them with the secrets key",
            };
            tracing::warn!(
                warehouses = ?plain,
                "storage profile secrets are stored in PLAIN TEXT in the catalog database: {advice}"
            );
        }
        if !previous.is_empty() {
            tracing::warn!(
                warehouses = ?previous,
                "storage profile secrets are encrypted with a previous secrets key: run \
                 `serac secrets rotate` before that key is dropped"
            );
        }
        Ok(())
    }

    /// The warehouse a client's `warehouse` setting names: by name, else by its location.
    pub async fn warehouse_named_or_at(&self, requested: &str) -> CatalogResult<Arc<Warehouse>> {
        match self.warehouse(Some(requested)).await {
            Err(CatalogError::NoSuchWarehouse(msg)) => {
                let location = requested.trim_end_matches('/');
                let by_location = self
                    .store
                    .list_warehouses()
                    .await?
                    .into_iter()
                    .find(|w| {
                        w.location == location
                            || Location::parse(&w.location).is_ok_and(|l| l.to_string() == location)
                    })
                    .ok_or(CatalogError::NoSuchWarehouse(msg))?;
                self.warehouse(Some(&by_location.name)).await
            }
            found => found,
        }
    }

    pub async fn list_warehouses(&self, caller: &Caller) -> CatalogResult<Vec<Warehouse>> {
        self.authorize(caller, Privilege::Admin, authz::Target::Server)
            .await?;
        let keys = self.storage.secret_keys();
        self.store
            .list_warehouses()
            .await?
            .into_iter()
            .map(|row| Warehouse::from_row(row, keys))
            .collect()
    }

    /// The warehouse of a prefix (`None`: the default one): from memory while this replica
    /// knows of no change to warehouses since it was read, else from the database.
    pub async fn warehouse(&self, name: Option<&str>) -> CatalogResult<Arc<Warehouse>> {
        let name = name.unwrap_or(&self.settings.default_warehouse);
        let seen = self.store.seen_epochs().map(|e| e.warehouses);
        if let Some((w, at)) = self
            .warehouses
            .read()
            .expect("warehouse map poisoned")
            .get(name)
            && seen.is_none_or(|seen| seen <= *at)
        {
            return Ok(w.clone());
        }
        if ident::validate_warehouse_name(name).is_err() {
            // No warehouse can have this name; the database is not asked.
            return Err(no_such_warehouse(name));
        }
        let Some(row) = self.store.warehouse_by_name(name).await? else {
            self.warehouses
                .write()
                .expect("warehouse map poisoned")
                .remove(name);
            return Err(no_such_warehouse(name));
        };
        self.remember_warehouse(row)
    }

    /// The storage of a warehouse, with its profile as it stands for a request that arrived
    /// at `since` (see the module documentation): built once per profile, then shared.
    pub(crate) async fn io(
        &self,
        since: Instant,
        warehouse: &Warehouse,
    ) -> CatalogResult<Arc<WarehouseStorage>> {
        // A local warehouse has no profile, and its root never changes (a deleted one holds
        // no tables to reach): nothing to check.
        let current = match warehouse.storage {
            None => None,
            Some(_) => Some(self.current_warehouse(since, warehouse).await?),
        };
        let warehouse = current.as_deref().unwrap_or(warehouse);
        warehouse.check_secrets()?;
        Ok(self.storage.for_warehouse(
            &warehouse.id,
            &warehouse.root,
            warehouse.storage.as_ref(),
        )?)
    }

    /// `warehouse` as it stands for a request that arrived at `since`.
    async fn current_warehouse(
        &self,
        since: Instant,
        warehouse: &Warehouse,
    ) -> CatalogResult<Arc<Warehouse>> {
        let epoch = self.store.epochs(since).await?.warehouses;
        if let Some((w, at)) = self
            .warehouses
            .read()
            .expect("warehouse map poisoned")
            .get(&warehouse.name)
            && w.id == warehouse.id
            && *at >= epoch
        {
            return Ok(w.clone());
        }
        let row = self
            .store
            .warehouse_by_id(&warehouse.id)
            .await?
            .ok_or_else(|| {
                CatalogError::NoSuchWarehouse(format!("warehouse '{}' was deleted", warehouse.name))
            })?;
        self.remember_warehouse(row)
    }

    /// Keeps a warehouse read from the database, stamped with the epoch read with it.
    fn remember_warehouse(&self, row: WarehouseRow) -> CatalogResult<Arc<Warehouse>> {
        let epoch = row.epoch;
        let warehouse = Arc::new(Warehouse::from_row(row, self.storage.secret_keys())?);
        let mut warehouses = self.warehouses.write().expect("warehouse map poisoned");
        match warehouses.get(&warehouse.name) {
            // A newer read won the race: keep it.
            Some((kept, at)) if *at > epoch && kept.id == warehouse.id => Ok(kept.clone()),
            _ => {
                warehouses.insert(warehouse.name.clone(), (warehouse.clone(), epoch));
                Ok(warehouse)
            }
        }
    }

    /// Drops what this replica keeps of a warehouse that changed or went.
    fn forget_warehouse(&self, warehouse: &Warehouse) {
        self.warehouses
            .write()
            .expect("warehouse map poisoned")
            .remove(&warehouse.name);
        self.storage.forget(&warehouse.id);
    }
}

/// A profile whose secret is stored in plain text: said at every write.
fn warn_if_plain(warehouse: &Warehouse) {
    if warehouse.stored_secrets == Some(StoredSecrets::Plain) {
        tracing::warn!(
            warehouse = %warehouse.name,
            "the storage profile's secret is stored in PLAIN TEXT: the server has no secrets \
             key (--secrets-key-file, SERAC_SECRETS_KEY_FILE)"
        );
    }
}
