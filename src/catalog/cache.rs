//! The table cache: per table, the metadata of its current version, so that loading a table
//! never touches object storage and rarely parses JSON. An entry is served only after one
//! indexed lookup confirmed its metadata location is still the current one.

use std::sync::{Arc, OnceLock};

use iceberg::spec::TableMetadata;

use super::metadata_json::SnapshotSpans;
use super::{CatalogError, CatalogResult};

/// One version of a table's metadata.
#[derive(Debug)]
pub struct TableVersion {
    pub table_id: String,
    pub metadata_location: String,
    /// The metadata document as stored and written to the metadata file.
    pub metadata_json: String,
    parsed: OnceLock<Arc<TableMetadata>>,
    snapshot_spans: OnceLock<SnapshotSpans>,
    /// The table's row keeps the snapshots apart from the rest of the document.
    snapshots_apart: bool,
    refs_only_json: OnceLock<String>,
    /// Responses rendered from this version by the layer above, kept for the next load.
    rendered: [OnceLock<bytes::Bytes>; RENDERED_SLOTS],
}

/// How many renderings of one version may be kept: per snapshot mode, the whole response
/// (local warehouses) and the part before the caller's credentials (object storage).
pub const RENDERED_SLOTS: usize = 4;

impl TableVersion {
    pub fn new(table_id: String, metadata_location: String, metadata_json: String) -> Self {
        Self {
            table_id,
            metadata_location,
            metadata_json,
            parsed: OnceLock::new(),
            snapshot_spans: OnceLock::new(),
            snapshots_apart: false,
            refs_only_json: OnceLock::new(),
            rendered: Default::default(),
        }
    }

    /// A version whose parsed metadata is known already (right after a commit).
    pub fn with_parsed(
        table_id: String,
        metadata_location: String,
        metadata_json: String,
        parsed: Arc<TableMetadata>,
    ) -> Self {
        let version = Self::new(table_id, metadata_location, metadata_json);
        let _ = version.parsed.set(parsed);
        version
    }

    /// The version a table row holds: its document, made whole again when the row keeps the
    /// snapshots apart (`snapshots`, a JSON array of them).
    pub fn from_stored(
        table_id: String,
        metadata_location: String,
        metadata: String,
        snapshots: Option<String>,
    ) -> CatalogResult<Self> {
        let Some(snapshots) = snapshots else {
            return Ok(Self::new(table_id, metadata_location, metadata));
        };
        let (json, spans) = super::metadata_json::assemble(&metadata, &snapshots).map_err(|e| {
            CatalogError::Internal(format!(
                "stored metadata of table {table_id} is not valid table metadata: {e}"
            ))
        })?;
        Ok(Self::new(table_id, metadata_location, json)
            .with_snapshot_spans(spans)
            .kept_apart())
    }

    /// A version whose row keeps the snapshots apart from the rest of the document.
    pub fn kept_apart(mut self) -> Self {
        self.snapshots_apart = true;
        self
    }

    /// Whether the version's row keeps the snapshots apart (a commit then writes only the
    /// snapshots it adds and removes).
    pub fn snapshots_apart(&self) -> bool {
        self.snapshots_apart
    }

    /// A version written by a commit, which knows where its snapshots sit in the document.
    pub fn with_snapshot_spans(self, spans: SnapshotSpans) -> Self {
        let _ = self.snapshot_spans.set(spans);
        self
    }

    /// Where each snapshot sits in the document, which the next commit copies them from.
    pub fn snapshot_spans(&self) -> CatalogResult<&SnapshotSpans> {
        if let Some(spans) = self.snapshot_spans.get() {
            return Ok(spans);
        }
        let spans = SnapshotSpans::of_document(&self.metadata_json).map_err(|e| {
            CatalogError::Internal(format!(
                "stored metadata of table {} lists snapshots that cannot be read: {e}",
                self.table_id
            ))
        })?;
        Ok(self.snapshot_spans.get_or_init(|| spans))
    }

    pub fn metadata(&self) -> CatalogResult<Arc<TableMetadata>> {
        if let Some(parsed) = self.parsed.get() {
            return Ok(parsed.clone());
        }
        let parsed = super::metadata_json::parse(self.metadata_json.as_bytes()).map_err(|e| {
            CatalogError::Internal(format!(
                "stored metadata of table {} is not valid table metadata: {e}",
                self.table_id
            ))
        })?;
        Ok(self.parsed.get_or_init(|| Arc::new(parsed)).clone())
    }

    /// The metadata with only the snapshots that branches and tags point at (the spec's
    /// `snapshots=refs` mode): its size does not grow with the table's history.
    pub fn refs_only_json(&self) -> CatalogResult<&str> {
        if let Some(json) = self.refs_only_json.get() {
            return Ok(json);
        }
        let json = super::metadata_json::refs_only(&self.metadata_json).map_err(|e| {
            CatalogError::Internal(format!(
                "stored metadata of table {} could not be reduced to referenced snapshots: {e}",
                self.table_id
            ))
        })?;
        Ok(self.refs_only_json.get_or_init(|| json))
    }

    /// A response rendered from this version, made once per slot and shared afterwards.
    pub fn rendered(&self, slot: usize, render: impl FnOnce() -> bytes::Bytes) -> bytes::Bytes {
        self.rendered[slot].get_or_init(render).clone()
    }

    fn weight(&self) -> u32 {
        // The document, a parsed copy, and up to two rendered responses (a table's warehouse
        // fills either the whole-response slots or the head slots, never both), and the
        // snapshots' places when known at insertion (after a commit).
        let spans = self.snapshot_spans.get().map_or(0, SnapshotSpans::weight);
        let bytes = self.metadata_json.len() * 5 + spans + self.metadata_location.len() + 256;
        u32::try_from(bytes).unwrap_or(u32::MAX)
    }
}

/// Current table versions by table id, bounded by an approximate byte size.
#[derive(Debug, Clone)]
pub struct TableCache {
    entries: moka::sync::Cache<String, Arc<TableVersion>>,
}

impl TableCache {
    pub fn new(max_bytes: u64) -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_: &String, v: &Arc<TableVersion>| v.weight())
                .build(),
        }
    }

    /// The cached version of a table, if it is the one at `metadata_location`.
    pub fn get(&self, table_id: &str, metadata_location: &str) -> Option<Arc<TableVersion>> {
        self.entries
            .get(table_id)
            .filter(|v| v.metadata_location == metadata_location)
    }

    pub fn insert(&self, version: Arc<TableVersion>) {
        self.entries.insert(version.table_id.clone(), version);
        // The cache lets go of a replaced version only when it runs its pending work, which
        // it otherwise does after dozens of writes: a table committed to in a loop would
        // keep as many of its (large) past versions alive. A commit is rare next to loads.
        self.entries.run_pending_tasks();
    }

    pub fn remove(&self, table_id: &str) {
        self.entries.invalidate(table_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table committed to in a loop replaces its cached version each time: the replaced
    /// versions (whole metadata documents) must be let go of at once, not pile up.
    #[test]
    fn replaced_versions_are_released() {
        let cache = TableCache::new(1 << 30);
        let mut replaced = Vec::new();
        for i in 0..20 {
            let version = Arc::new(TableVersion::new(
                "t".into(),
                format!("file:///wh/t/metadata/{i:05}.metadata.json"),
                "x".repeat(100_000),
            ));
            replaced.push(Arc::downgrade(&version));
            cache.insert(version);
        }
        let alive = replaced.iter().filter(|v| v.upgrade().is_some()).count();
        assert_eq!(alive, 1, "only the current version stays");
    }
}
