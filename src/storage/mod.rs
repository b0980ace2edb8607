//! Object storage: metadata files, reads of client-written files, purges, all confined to
//! the warehouse they belong to.
//!
//! Every operation takes [`Location`]s, parsed and normalised once ([`location`]), and the
//! root it must stay within. `file` locations are served by [`file::ConfinedFs`], which the
//! iceberg crate's readers (scan planning, purge) also go through, so a location taken from
//! client metadata cannot reach a file outside its warehouse either.

pub mod file;
pub mod location;

use std::collections::{HashMap, HashSet};
use std::io::{Read as _, Write as _};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use iceberg::io::{FileIO, FileIOBuilder};
use iceberg::spec::TableMetadata;
use iceberg::table::Table;
use iceberg::{NamespaceIdent, TableIdent};

use file::{ConfinedFs, ConfinedFsFactory, FileError};
pub use location::{Location, LocationError, Scheme, encode_segment, object_dir_segment};

/// The default cap on metadata files Serac reads (256 MiB).
pub const DEFAULT_MAX_METADATA_BYTES: u64 = 256 * 1024 * 1024;

/// Directories no warehouse may be or lie in: the operating system's own.
const SYSTEM_DIRS: [&str; 12] = [
    "bin", "boot", "dev", "etc", "lib", "lib32", "lib64", "proc", "run", "sbin", "sys", "usr",
];

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The location cannot be served (unknown scheme, not a URL, a system directory).
    #[error("{0}")]
    Unsupported(String),
    /// The location lies outside the root it must stay within.
    #[error("{0}")]
    Outside(String),
    /// A file is larger than the server reads.
    #[error("{0}")]
    TooLarge(String),
    /// Reading, writing or deleting failed.
    #[error("storage operation failed: {0}")]
    Io(String),
    /// A file was read but is not what it should be, or does not exist.
    #[error("{0}")]
    Invalid(String),
}

impl From<FileError> for StorageError {
    fn from(err: FileError) -> Self {
        match err {
            FileError::Outside(_) => Self::Outside(err.to_string()),
            FileError::TooLarge { .. } => Self::TooLarge(err.to_string()),
            FileError::NotFound(_) | FileError::NotRegular(_) | FileError::Invalid(_) => {
                Self::Invalid(err.to_string())
            }
            FileError::Io { .. } => Self::Io(err.to_string()),
        }
    }
}

impl From<LocationError> for StorageError {
    fn from(err: LocationError) -> Self {
        Self::Unsupported(err.to_string())
    }
}

pub type StorageResult<T> = Result<T, StorageError>;

/// What a purge did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PurgeReport {
    /// Files deleted (or already gone).
    pub deleted: usize,
    /// Files the metadata names outside the table's location: left alone.
    pub kept_outside: usize,
    /// What could not be read or deleted.
    pub failures: Vec<String>,
}

/// Hands out confined file access per warehouse root.
#[derive(Debug)]
pub struct Storage {
    max_read_bytes: u64,
    ios: Mutex<HashMap<Location, FileIO>>,
}

impl Default for Storage {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_METADATA_BYTES)
    }
}

impl Storage {
    /// Storage that reads files of at most `max_read_bytes` whole.
    pub fn new(max_read_bytes: u64) -> Self {
        Self {
            max_read_bytes,
            ios: Mutex::new(HashMap::new()),
        }
    }

    /// Checks a warehouse root: a location this server can serve, not a file system or
    /// bucket root and not a system directory.
    pub fn warehouse_root(&self, raw: &str) -> StorageResult<Location> {
        let root = Location::parse(raw)?;
        match root.scheme() {
            Scheme::File => {}
            Scheme::S3(scheme) => {
                return Err(StorageError::Unsupported(format!(
                    "storage scheme '{scheme}' of location '{root}' is not supported by this server yet (supported: file)"
                )));
            }
        }
        if root.is_root() {
            return Err(StorageError::Unsupported(format!(
                "location '{root}' is a file system root; give a directory for the warehouse"
            )));
        }
        let first = root.path().split('/').next().unwrap_or_default();
        if root.scheme() == Scheme::File && SYSTEM_DIRS.contains(&first) {
            return Err(StorageError::Unsupported(format!(
                "location '{root}' lies in the system directory /{first}; give a directory of its own for the warehouse"
            )));
        }
        Ok(root)
    }

    fn fs(&self, root: &Location) -> StorageResult<ConfinedFs> {
        match root.scheme() {
            Scheme::File => Ok(ConfinedFs::new(root, self.max_read_bytes)),
            Scheme::S3(scheme) => Err(StorageError::Unsupported(format!(
                "storage scheme '{scheme}' is not supported by this server yet"
            ))),
        }
    }

    /// The iceberg crate's file IO for one warehouse: every path it touches must lie within
    /// `root`.
    pub fn file_io(&self, root: &Location) -> StorageResult<FileIO> {
        let mut ios = self.ios.lock().expect("file IO map poisoned");
        if let Some(io) = ios.get(root) {
            return Ok(io.clone());
        }
        let io = FileIOBuilder::new(Arc::new(ConfinedFsFactory(self.fs(root)?))).build();
        ios.insert(root.clone(), io.clone());
        Ok(io)
    }

    /// Refuses a location outside `root`.
    fn check_within(root: &Location, location: &Location) -> StorageResult<()> {
        if location.is_within(root) {
            Ok(())
        } else {
            Err(StorageError::Outside(format!(
                "location '{location}' lies outside the warehouse"
            )))
        }
    }

    /// Makes a new table location ready for clients that write into it before its first
    /// commit (DuckDB writes manifests of a staged table there): on a file system, creates
    /// the `metadata` directory. Object stores need nothing.
    pub async fn prepare_table_location(
        &self,
        root: &Location,
        location: &Location,
    ) -> StorageResult<()> {
        Self::check_within(root, location)?;
        if location.scheme() == Scheme::File {
            self.fs(root)?
                .create_dir(&location.join("metadata"))
                .await?;
        }
        Ok(())
    }

    /// Writes a metadata file; the JSON is gzip-compressed when the file name asks for it.
    pub async fn write_metadata(
        &self,
        root: &Location,
        location: &Location,
        json: &[u8],
    ) -> StorageResult<()> {
        let bytes = if location.path().ends_with(".gz.metadata.json") {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder
                .write_all(json)
                .and_then(|_| encoder.finish())
                .map(Bytes::from)
                .map_err(|e| StorageError::Io(format!("compressing {location}: {e}")))?
        } else {
            Bytes::copy_from_slice(json)
        };
        Ok(self.fs(root)?.write(location, bytes).await?)
    }

    /// Reads a whole file within `root` (at most the size cap), decompressed when it is
    /// gzip-compressed (again at most the cap).
    pub async fn read_json_file(
        &self,
        root: &Location,
        location: &Location,
    ) -> StorageResult<Bytes> {
        Self::check_within(root, location)?;
        let bytes = self.fs(root)?.read(location).await?;
        if bytes.len() > 2 && bytes[0] == 0x1F && bytes[1] == 0x8B {
            let limit = self.max_read_bytes;
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&bytes[..])
                .take(limit + 1)
                .read_to_end(&mut out)
                .map_err(|e| {
                    StorageError::Invalid(format!("'{location}' is not valid gzip: {e}"))
                })?;
            if out.len() as u64 > limit {
                return Err(StorageError::TooLarge(format!(
                    "'{location}' decompresses to more than {limit} bytes (the server's --max-metadata-bytes)"
                )));
            }
            return Ok(Bytes::from(out));
        }
        Ok(bytes)
    }

    /// Deletes one file within `root`; a missing file is not an error.
    pub async fn delete(&self, root: &Location, location: &Location) -> StorageResult<()> {
        Ok(self.fs(root)?.delete(location).await?)
    }

    /// Deletes the files a dropped table's metadata names (metadata files, manifest lists,
    /// manifests, data and delete files unless `gc.enabled` is false, statistics) that lie
    /// within the table's location; files named elsewhere are left alone. Then removes the
    /// directories under the table location that are left empty.
    pub async fn purge_table(
        &self,
        root: &Location,
        metadata: Arc<TableMetadata>,
        metadata_location: &str,
        deleted: &std::sync::atomic::AtomicU64,
    ) -> StorageResult<PurgeReport> {
        let table_location = Location::parse(metadata.location())?;
        Self::check_within(root, &table_location)?;
        let io = self.file_io(root)?;
        let fs = self.fs(root)?;
        let mut report = PurgeReport::default();
        let mut files: Vec<String> = Vec::new();
        let gc = metadata
            .table_properties()
            .map(|p| p.gc_enabled)
            .unwrap_or(true);
        let ident = TableIdent::new(NamespaceIdent::new("purge".into()), "purge".into());
        let table = Table::builder()
            .metadata(metadata.clone())
            .metadata_location(metadata_location)
            .identifier(ident)
            .file_io(io.clone())
            .runtime(iceberg::Runtime::try_current().map_err(io_err)?)
            .readonly(true)
            .build()
            .map_err(io_err)?;
        let mut manifests = HashSet::new();
        for snapshot in metadata.snapshots() {
            let list_location = snapshot.manifest_list();
            if !within(list_location, &table_location) {
                // Not this table's file: neither read nor deleted.
                report.kept_outside += 1;
                continue;
            }
            // A manifest list that is gone already (expired, a failed write) has nothing left
            // to delete through it.
            if !exists(&fs, list_location).await {
                continue;
            }
            match table.manifest_list_reader(snapshot).load().await {
                Ok(list) => {
                    for manifest in list.entries() {
                        if manifests.insert(manifest.manifest_path.clone()) {
                            if gc
                                && within(&manifest.manifest_path, &table_location)
                                && exists(&fs, &manifest.manifest_path).await
                            {
                                match manifest.load_manifest(&io).await {
                                    Ok(m) => files.extend(
                                        m.entries()
                                            .iter()
                                            .map(|e| e.data_file().file_path().to_owned()),
                                    ),
                                    Err(e) => report.failures.push(format!(
                                        "reading manifest '{}': {e}",
                                        manifest.manifest_path
                                    )),
                                }
                            }
                            files.push(manifest.manifest_path.clone());
                        }
                    }
                }
                Err(e) => report
                    .failures
                    .push(format!("reading manifest list '{list_location}': {e}")),
            }
            files.push(list_location.to_owned());
        }
        files.extend(
            metadata
                .statistics_iter()
                .map(|s| s.statistics_path.clone()),
        );
        files.extend(
            metadata
                .partition_statistics_iter()
                .map(|s| s.statistics_path.clone()),
        );
        files.extend(
            metadata
                .metadata_log()
                .iter()
                .map(|m| m.metadata_file.clone()),
        );
        files.push(metadata_location.to_owned());
        let mut seen = HashSet::new();
        for file in files {
            if !seen.insert(file.clone()) {
                continue;
            }
            let location = match Location::parse(&file) {
                Ok(l) if l.is_within(&table_location) => l,
                _ => {
                    report.kept_outside += 1;
                    continue;
                }
            };
            match fs.delete(&location).await {
                Ok(()) => {
                    report.deleted += 1;
                    let so_far = deleted.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    #[cfg(feature = "failpoints")]
                    stall_after_failpoint(so_far).await;
                    #[cfg(not(feature = "failpoints"))]
                    let _ = so_far;
                }
                Err(e) => report.failures.push(e.to_string()),
            }
        }
        if table_location.scheme() == Scheme::File {
            fs.remove_empty_dirs(&table_location).await?;
        }
        Ok(report)
    }
}

/// Test builds: with `SERAC_FAILPOINT_PURGE_STALL_AFTER=N` set, a purge stops for good once
/// N files are deleted (a test then kills the process: a crash in the middle of a purge).
#[cfg(feature = "failpoints")]
async fn stall_after_failpoint(deleted: u64) {
    let stall = std::env::var("SERAC_FAILPOINT_PURGE_STALL_AFTER")
        .ok()
        .and_then(|n| n.parse::<u64>().ok());
    if stall.is_some_and(|n| deleted >= n) {
        tracing::warn!(deleted, "failpoint: the purge stalls here");
        std::future::pending::<()>().await;
    }
}

async fn exists(fs: &ConfinedFs, raw: &str) -> bool {
    match Location::parse(raw) {
        Ok(location) => fs.exists(&location).await.unwrap_or(true),
        Err(_) => false,
    }
}

fn within(raw: &str, root: &Location) -> bool {
    Location::parse(raw).is_ok_and(|l| l.is_within(root))
}

fn io_err(e: iceberg::Error) -> StorageError {
    StorageError::Io(e.to_string())
}
