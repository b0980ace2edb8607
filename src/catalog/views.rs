//! Views: create, load, replace (a commit of view requirements and updates, applied with the
//! iceberg crate's `ViewMetadataBuilder`, swapped by compare-and-set like tables), drop,
//! rename, register. Views and tables share one name space per namespace.
//!
//! The iceberg crate has the view metadata model but no request types and no way to apply a
//! `ViewUpdate`; the few spec structures it lacks are defined here.

use std::collections::HashMap;

use iceberg::spec::{Schema, ViewMetadata, ViewMetadataBuilder, ViewVersion};
use iceberg::{NamespaceIdent, TableIdent, ViewCreation, ViewUpdate};
use serde::Deserialize;

use super::authz::{Privilege, Target};
use super::ident::{validate_namespace, validate_table_ident, validate_table_name};
use super::locations::{check_property_count, claim, confine, metadata_file, object_location};
use super::page::{PageRequest, Paged};
use super::tables::{
    Insert, InsertError, check_metadata_size, display_ident, invalid, keeps_files,
};
use super::{Caller, Catalog, CatalogError, CatalogResult, Warehouse};
use crate::storage::Location;
use crate::store::{Change, ObjectKind, StoreError, TableRow, TableSwap};

/// `POST .../views`: a new view.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CreateViewRequest {
    pub name: String,
    #[serde(default)]
    pub location: Option<String>,
    pub schema: Schema,
    pub view_version: ViewVersion,
    #[serde(default)]
    pub properties: HashMap<String, String>,
}

/// A requirement of a view commit.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type")]
pub enum ViewRequirement {
    #[serde(rename = "assert-view-uuid")]
    AssertViewUuid { uuid: uuid::Uuid },
}

/// `POST .../views/{view}`: replace a view.
#[derive(Debug, Clone, Deserialize)]
pub struct CommitViewRequest {
    #[serde(default)]
    pub identifier: Option<TableIdent>,
    #[serde(default)]
    pub requirements: Vec<ViewRequirement>,
    pub updates: Vec<ViewUpdate>,
}

/// `POST .../register-view`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RegisterViewRequest {
    pub name: String,
    pub metadata_location: String,
}

/// One version of a view, as stored.
#[derive(Debug, Clone)]
pub struct LoadedView {
    pub metadata_location: String,
    pub metadata_json: String,
}

pub(super) fn no_such_view(ident: &TableIdent) -> CatalogError {
    CatalogError::NoSuchView(format!("view '{}' does not exist", display_ident(ident)))
}

fn to_json(metadata: &ViewMetadata) -> CatalogResult<String> {
    serde_json::to_string(metadata)
        .map_err(|e| CatalogError::Internal(format!("view metadata failed to serialize: {e}")))
}

fn parse(json: &str) -> CatalogResult<ViewMetadata> {
    serde_json::from_str(json)
        .map_err(|e| CatalogError::Internal(format!("stored view metadata is not valid: {e}")))
}

/// Applies one update to the view builder.
fn apply(update: ViewUpdate, builder: ViewMetadataBuilder) -> iceberg::Result<ViewMetadataBuilder> {
    Ok(match update {
        ViewUpdate::AssignUuid { uuid } => builder.assign_uuid(uuid),
        ViewUpdate::UpgradeFormatVersion { format_version } => {
            builder.upgrade_format_version(format_version)?
        }
        ViewUpdate::AddSchema { schema, .. } => builder.add_schema(schema),
        ViewUpdate::SetLocation { location } => builder.set_location(location),
        ViewUpdate::SetProperties { updates } => builder.set_properties(updates)?,
        ViewUpdate::RemoveProperties { removals } => builder.remove_properties(&removals),
        ViewUpdate::AddViewVersion { view_version } => builder.add_version(view_version)?,
        ViewUpdate::SetCurrentViewVersion { view_version_id } => {
            builder.set_current_version_id(view_version_id)?
        }
    })
}

/// Every schema of a view is checked like a table's, and its properties counted.
fn check_view_metadata(limits: &super::Limits, metadata: &ViewMetadata) -> CatalogResult<()> {
    for schema in metadata.schemas_iter() {
        super::validate::check_schema(schema)?;
    }
    check_property_count(limits, metadata.properties().len(), "the view")
}

/// The locations and size of a view commit, checked before anything is applied.
fn check_view_updates(
    warehouse: &Warehouse,
    limits: &super::Limits,
    updates: &[ViewUpdate],
) -> CatalogResult<()> {
    super::locations::check_update_count(limits, updates.len())?;
    for update in updates {
        if let ViewUpdate::SetLocation { location } = update {
            object_location(warehouse, location, "set-location")?;
        }
    }
    Ok(())
}

impl Catalog {
    pub async fn list_views(
        &self,
        caller: &Caller,
        warehouse: &Warehouse,
        namespace: &NamespaceIdent,
        page: &PageRequest,
    ) -> CatalogResult<Paged<TableIdent>> {
        self.list_objects(caller, Some(ObjectKind::View), warehouse, namespace, page)
            .await
    }

    pub async fn create_view(
        &self,
        caller: &Caller,
        warehouse: &Warehouse,
        namespace: &NamespaceIdent,
        request: CreateViewRequest,
    ) -> CatalogResult<LoadedView> {
        self.authorize(
            caller,
            Privilege::Create,
            Target::Namespace(warehouse, namespace),
        )
        .await?;
        let ident = TableIdent::new(namespace.clone(), request.name.clone());
        validate_table_ident(&ident)?;
        check_property_count(&self.settings.limits, request.properties.len(), "the view")?;
        let location = self
            .new_object_location(warehouse, &ident, request.location.as_deref())
            .await?;
        let version = &request.view_version;
        let creation = ViewCreation::builder()
            .name(request.name.clone())
            .location(location.to_string())
            .representations(version.representations().clone())
            .schema(request.schema)
            .properties(request.properties)
            .default_namespace(version.default_namespace().clone())
            .default_catalog(version.default_catalog().cloned())
            .summary(version.summary().clone())
            .build();
        let metadata = ViewMetadataBuilder::from_view_creation(creation)
            .and_then(|b| b.build())
            .map_err(|e| invalid("invalid view definition", e))?
            .metadata;
        check_view_metadata(&self.settings.limits, &metadata)?;
        self.insert_view(caller, warehouse, &ident, &metadata, &location, None)
            .await
    }

    /// Writes (unless registering an existing file) and inserts a view.
    async fn insert_view(
        &self,
        caller: &Caller,
        warehouse: &Warehouse,
        ident: &TableIdent,
        metadata: &ViewMetadata,
        location: &Location,
        existing_file: Option<Location>,
    ) -> CatalogResult<LoadedView> {
        let json = to_json(metadata)?;
        check_metadata_size(&json, self.settings.limits.max_metadata_bytes)?;
        let metadata_file = existing_file
            .clone()
            .unwrap_or_else(|| super::locations::metadata_file(location, None, false));
        let metadata_location = metadata_file.to_string();
        let event = self.event(
            caller,
            "view.created",
            warehouse,
            ident.namespace(),
            Some(ident.name()),
            serde_json::json!({
                "view-uuid": metadata.uuid(),
                "metadata-location": metadata_location,
                "registered": existing_file.is_some(),
            }),
        );
        self.insert_object(
            Insert {
                kind: Some(ObjectKind::View),
                warehouse,
                ident,
                metadata_file: &metadata_file,
                json: &json,
                write_file: existing_file.is_none(),
                claim: Some(&claim(location)),
                arrived: caller.arrived,
            },
            Change::new(caller.idempotency(), vec![event]).owned_by(caller.owner()),
        )
        .await
        .map_err(|e| match e {
            InsertError::Exists => CatalogError::AlreadyExists(format!(
                "a table or view named '{}' already exists",
                display_ident(ident)
            )),
            InsertError::Catalog(e) => e,
        })?;
        Ok(LoadedView {
            metadata_location,
            metadata_json: json,
        })
    }

    pub async fn load_view(
        &self,
        caller: &Caller,
        warehouse: &Warehouse,
        ident: &TableIdent,
    ) -> CatalogResult<LoadedView> {
        self.authorize(caller, Privilege::Read, Target::View(warehouse, ident))
            .await?;
        validate_table_ident(ident)?;
        let row = self.view_row(warehouse, ident).await?;
        Ok(LoadedView {
            metadata_location: row.metadata_location,
            metadata_json: row.metadata,
        })
    }

    /// Whether a view exists (without reading its metadata).
    pub async fn view_exists(
        &self,
        caller: &Caller,
        warehouse: &Warehouse,
        ident: &TableIdent,
    ) -> CatalogResult<()> {
        self.authorize(caller, Privilege::Read, Target::View(warehouse, ident))
            .await?;
        validate_table_ident(ident)?;
        self.store
            .table_head(
                ObjectKind::View,
                &warehouse.id,
                ident.namespace(),
                ident.name(),
            )
            .await?
            .map(|_| ())
            .ok_or_else(|| no_such_view(ident))
    }

    async fn view_row(&self, warehouse: &Warehouse, ident: &TableIdent) -> CatalogResult<TableRow> {
        self.store
            .object(
                ObjectKind::View,
                &warehouse.id,
                ident.namespace(),
                ident.name(),
            )
            .await?
            .ok_or_else(|| no_such_view(ident))
    }

    /// Replaces a view: requirements checked, updates applied, new metadata file written, row
    /// swapped by compare-and-set, lost races retried.
    pub async fn replace_view(
        &self,
        caller: &Caller,
        warehouse: &Warehouse,
        ident: &TableIdent,
        request: CommitViewRequest,
    ) -> CatalogResult<LoadedView> {
        self.authorize(caller, Privilege::Write, Target::View(warehouse, ident))
            .await?;
        validate_table_ident(ident)?;
        if let Some(body_ident) = &request.identifier
            && body_ident != ident
        {
            return Err(CatalogError::BadRequest(format!(
                "the identifier in the body ('{}') does not match the view in the path ('{}')",
                display_ident(body_ident),
                display_ident(ident)
            )));
        }
        let _turn = self.commit_locks.lock(&warehouse.id, ident).await;
        let attempts = self.settings.commit_retries + 1;
        for _ in 0..attempts {
            let row = self.view_row(warehouse, ident).await?;
            let current = parse(&row.metadata)?;
            for requirement in &request.requirements {
                match requirement {
                    ViewRequirement::AssertViewUuid { uuid } if *uuid != current.uuid() => {
                        return Err(CatalogError::CommitFailed(format!(
                            "commit to view '{}' failed: its uuid is {}, not {uuid}",
                            display_ident(ident),
                            current.uuid()
                        )));
                    }
                    ViewRequirement::AssertViewUuid { .. } => {}
                }
            }
            check_view_updates(warehouse, &self.settings.limits, &request.updates)?;
            let previous_location = current.location().to_owned();
            let mut builder = ViewMetadataBuilder::new_from_metadata(current);
            for update in request.updates.iter().cloned() {
                builder = apply(update, builder).map_err(|e| invalid("invalid view update", e))?;
            }
            let metadata = builder
                .build()
                .map_err(|e| invalid("the updates do not produce valid view metadata", e))?
                .metadata;
            check_view_metadata(&self.settings.limits, &metadata)?;
            let view_location =
                object_location(warehouse, metadata.location(), "the view location")?;
            let moved = (metadata.location() != previous_location).then(|| claim(&view_location));
            let json = to_json(&metadata)?;
            check_metadata_size(&json, self.settings.limits.max_metadata_bytes)?;
            let file = metadata_file(&view_location, Some(&row.metadata_location), false);
            let location = file.to_string();
            self.io(caller.arrived, warehouse)
                .await?
                .write_metadata(&file, json.as_bytes())
                .await?;
            let swap = TableSwap {
                table_id: &row.id,
                expected_location: &row.metadata_location,
                new_location: &location,
                new_metadata: &json,
                snapshots: None,
                new_object_location: moved.as_ref(),
            };
            let event = self.event(
                caller,
                "view.updated",
                warehouse,
                ident.namespace(),
                Some(ident.name()),
                serde_json::json!({
                    "view-uuid": metadata.uuid(),
                    "metadata-location": location,
                    "previous-metadata-location": row.metadata_location,
                }),
            );
            match self
                .store
                .swap_tables_metadata(&[swap], &Change::new(caller.idempotency(), vec![event]))
                .await
            {
                Ok(true) => {
                    return Ok(LoadedView {
                        metadata_location: location,
                        metadata_json: json,
                    });
                }
                Ok(false) => self.delete_quietly(warehouse, &file).await,
                Err(e) => {
                    if !keeps_files(&e) {
                        self.delete_quietly(warehouse, &file).await;
                    }
                    if matches!(e, StoreError::LocationTaken) {
                        return Err(CatalogError::CommitFailed(format!(
                            "commit to view '{}' failed: set-location names a location at, above or below the location of another table or view",
                            display_ident(ident)
                        )));
                    }
                    return Err(e.into());
                }
            }
        }
        Err(CatalogError::CommitFailed(format!(
            "commit to view '{}' failed: it changed under {attempts} concurrent commits in a row; retry",
            display_ident(ident)
        )))
    }

    pub async fn drop_view(
        &self,
        caller: &Caller,
        warehouse: &Warehouse,
        ident: &TableIdent,
    ) -> CatalogResult<()> {
        self.authorize(caller, Privilege::Drop, Target::View(warehouse, ident))
            .await?;
        validate_table_ident(ident)?;
        self.store
            .drop_table(
                ObjectKind::View,
                &warehouse.id,
                ident.namespace(),
                ident.name(),
                false,
                &Change::new(
                    caller.idempotency(),
                    vec![self.event(
                        caller,
                        "view.dropped",
                        warehouse,
                        ident.namespace(),
                        Some(ident.name()),
                        serde_json::json!({}),
                    )],
                ),
            )
            .await?
            .map(|_| ())
            .ok_or_else(|| no_such_view(ident))
    }

    pub async fn rename_view(
        &self,
        caller: &Caller,
        warehouse: &Warehouse,
        source: &TableIdent,
        destination: &TableIdent,
    ) -> CatalogResult<()> {
        self.rename_object(caller, ObjectKind::View, warehouse, source, destination)
            .await
    }

    pub async fn register_view(
        &self,
        caller: &Caller,
        warehouse: &Warehouse,
        namespace: &NamespaceIdent,
        request: RegisterViewRequest,
    ) -> CatalogResult<LoadedView> {
        self.authorize(
            caller,
            Privilege::Create,
            Target::Namespace(warehouse, namespace),
        )
        .await?;
        validate_namespace(namespace)?;
        validate_table_name(&request.name)?;
        let ident = TableIdent::new(namespace.clone(), request.name.clone());
        let file = confine(warehouse, &request.metadata_location, "metadata-location")?;
        let bytes = self
            .io(caller.arrived, warehouse)
            .await?
            .read_json_file(&file)
            .await?;
        let metadata: ViewMetadata = serde_json::from_slice(&bytes).map_err(|e| {
            CatalogError::BadRequest(format!("'{file}' is not a valid view metadata file: {e}"))
        })?;
        let location = object_location(warehouse, metadata.location(), "the view location")?;
        check_view_metadata(&self.settings.limits, &metadata)?;
        self.insert_view(caller, warehouse, &ident, &metadata, &location, Some(file))
            .await
    }
}
