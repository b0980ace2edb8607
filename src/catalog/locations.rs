//! Where tables, views and their files may be: every location a client names is parsed once
//! and must lie within its warehouse; each table and view claims its own directory, which no
//! other object may be at, above or below (the store checks that claim in the transaction
//! that inserts or moves the object).

use iceberg::TableUpdate;
use iceberg::spec::TableMetadata;

use super::{CatalogError, CatalogResult, Limits, Warehouse};
use crate::storage::{Location, encode_segment, object_dir_segment};
use crate::store::ClaimedLocation;

/// Table properties that name where engines write; each must lie within the warehouse.
pub(super) const PATH_PROPERTIES: [&str; 4] = [
    "write.metadata.path",
    "write.data.path",
    "write.object-storage.path",
    "write.folder-storage.path",
];

/// Parses a location a client gave (`what` names it in errors) and refuses it outside the
/// warehouse.
pub(super) fn confine(warehouse: &Warehouse, raw: &str, what: &str) -> CatalogResult<Location> {
    let location =
        Location::parse(raw).map_err(|e| CatalogError::BadRequest(format!("{what}: {e}")))?;
    if !location.is_within(&warehouse.root) {
        return Err(CatalogError::BadRequest(format!(
            "{what}: location '{location}' lies outside warehouse '{}'",
            warehouse.name
        )));
    }
    Ok(location)
}

/// The location of a table or view: within the warehouse and not its root.
pub(super) fn object_location(
    warehouse: &Warehouse,
    raw: &str,
    what: &str,
) -> CatalogResult<Location> {
    let location = confine(warehouse, raw, what)?;
    if location == warehouse.root {
        return Err(CatalogError::BadRequest(format!(
            "{what}: a table or view cannot be the root of warehouse '{}'",
            warehouse.name
        )));
    }
    Ok(location)
}

/// The directory Serac picks for a new object below `base`.
pub(super) fn new_object_dir(base: &Location, name: &str) -> Location {
    let unique = uuid::Uuid::now_v7().simple().to_string();
    base.join(&object_dir_segment(name, &unique))
}

/// The directory of a namespace below the warehouse root: one escaped segment per level.
pub(super) fn namespace_dir(warehouse: &Warehouse, levels: &[String]) -> Location {
    levels.iter().fold(warehouse.root.clone(), |dir, level| {
        dir.join(&encode_segment(level, 200))
    })
}

/// The claim of an object on its location.
pub(super) fn claim(location: &Location) -> ClaimedLocation {
    ClaimedLocation {
        location: location.to_string(),
        self_and_ancestors: location
            .self_and_ancestors()
            .iter()
            .map(ToString::to_string)
            .collect(),
    }
}

/// `<location>/metadata/<version:05>-<uuid>[.gz].metadata.json`, the version one above the
/// current file's (0 for a new table or view), like the Java catalogs.
pub(super) fn metadata_file(location: &Location, current: Option<&str>, gzip: bool) -> Location {
    let version = current
        .and_then(|c| c.rsplit('/').next())
        .and_then(|file| file.split('-').next())
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(0, |v| v + 1);
    location.join(&format!(
        "metadata/{version:05}-{}{}.metadata.json",
        uuid::Uuid::new_v4(),
        if gzip { ".gz" } else { "" }
    ))
}

/// Refuses a property map larger than the cap (`what` names the entity).
pub(super) fn check_property_count(limits: &Limits, count: usize, what: &str) -> CatalogResult<()> {
    if count > limits.max_properties {
        return Err(CatalogError::BadRequest(format!(
            "{what} would have {count} properties; this server allows at most {} (--max-properties)",
            limits.max_properties
        )));
    }
    Ok(())
}

/// Checks the path properties among `properties` (name, value).
pub(super) fn check_path_properties<'a>(
    warehouse: &Warehouse,
    properties: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> CatalogResult<()> {
    for (key, value) in properties {
        if PATH_PROPERTIES.contains(&key.as_str()) {
            confine(warehouse, value, &format!("property '{key}'"))?;
        }
    }
    Ok(())
}

/// Refuses a table or view commit with more updates than the cap.
pub(super) fn check_update_count(limits: &Limits, count: usize) -> CatalogResult<()> {
    if count > limits.max_commit_updates {
        return Err(CatalogError::BadRequest(format!(
            "the commit has {count} updates; this server accepts at most {} (--max-commit-updates)",
            limits.max_commit_updates
        )));
    }
    Ok(())
}

/// Checks every location a table commit names before anything is applied: a new table
/// location, path properties, statistics files and new snapshots' manifest lists.
pub(super) fn check_table_updates(
    warehouse: &Warehouse,
    limits: &Limits,
    updates: &[TableUpdate],
) -> CatalogResult<()> {
    check_update_count(limits, updates.len())?;
    for update in updates {
        match update {
            TableUpdate::SetLocation { location } => {
                object_location(warehouse, location, "set-location")?;
            }
            TableUpdate::SetProperties { updates } => {
                check_path_properties(warehouse, updates)?;
            }
            TableUpdate::SetStatistics { statistics } => {
                confine(
                    warehouse,
                    &statistics.statistics_path,
                    "set-statistics statistics-path",
                )?;
            }
            TableUpdate::SetPartitionStatistics {
                partition_statistics,
            } => {
                confine(
                    warehouse,
                    &partition_statistics.statistics_path,
                    "set-partition-statistics statistics-path",
                )?;
            }
            TableUpdate::AddSnapshot { snapshot } => {
                confine(
                    warehouse,
                    snapshot.manifest_list(),
                    "add-snapshot manifest-list",
                )?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks every location of a whole metadata document (a registration) and returns the
/// table location.
pub(super) fn check_table_metadata(
    warehouse: &Warehouse,
    metadata: &TableMetadata,
) -> CatalogResult<Location> {
    let location = object_location(warehouse, metadata.location(), "the table location")?;
    check_path_properties(warehouse, metadata.properties())?;
    for s in metadata.statistics_iter() {
        confine(warehouse, &s.statistics_path, "a statistics file")?;
    }
    for s in metadata.partition_statistics_iter() {
        confine(warehouse, &s.statistics_path, "a partition statistics file")?;
    }
    for snapshot in metadata.snapshots() {
        confine(warehouse, snapshot.manifest_list(), "a manifest list")?;
    }
    Ok(location)
}
