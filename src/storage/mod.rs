//! Object storage: metadata files, reads of client-written files, purges and the credentials
//! clients get, all confined to the warehouse they belong to.
//!
//! [`Storage::for_warehouse`] hands out one [`WarehouseStorage`] per warehouse, built once:
//! its root, its backend and the iceberg crate's file IO over that backend. Every operation
//! takes [`Location`]s, parsed and normalised once ([`location`]), that must lie within the
//! root. `file` warehouses are served by [`file::ConfinedFs`], `s3` warehouses by
//! [`s3::S3Objects`] (aws-sdk-s3, with the warehouse's [`StorageProfile`]); the iceberg
//! crate's readers (scan planning, purge) go through the same confined backends, so a
//! location taken from client metadata cannot reach a file or object outside its warehouse
//! either. Clients of `s3` warehouses get settings and credentials from
//! [`WarehouseStorage::client_access`] ([`credentials`]: STS session policies, cached).
//! A warehouse whose profile changes gets a new [`WarehouseStorage`] (new clients, an empty
//! credential cache) the first time it is asked for with the new profile; profiles' secrets
//! are sealed at rest with the operator's key ([`secrets`]).

pub mod credentials;
pub mod file;
pub mod location;
pub mod profile;
pub mod s3;
pub mod secrets;
pub mod signer;

use std::collections::{HashMap, HashSet};
use std::io::{Read as _, Write as _};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use iceberg::io::{FileIO, FileIOBuilder};
use iceberg::spec::TableMetadata;
use iceberg::table::Table;
use iceberg::{NamespaceIdent, TableIdent};

use credentials::Vendor;
pub use credentials::{Access, TableCredentials};
use file::{ConfinedFs, ConfinedFsFactory, FileError};
pub use location::{Location, LocationError, Scheme, encode_segment, object_dir_segment};
pub use profile::{CredentialMode, StorageProfile, StoredSecrets};
use s3::{ConfinedS3, ConfinedS3Factory, S3Objects};
pub use secrets::SecretKeys;

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
            FileError::Io { .. } | FileError::Remote(_) => Self::Io(err.to_string()),
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

/// Hands out each warehouse's confined storage, built once per warehouse and profile.
#[derive(Debug)]
pub struct Storage {
    max_read_bytes: u64,
    warehouses: Mutex<HashMap<String, Arc<WarehouseStorage>>>,
    /// Seal and open the secrets of stored profiles.
    secret_keys: SecretKeys,
}

impl Default for Storage {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_METADATA_BYTES)
    }
}

/// The backend of one warehouse.
#[derive(Debug, Clone)]
enum Backend {
    File(ConfinedFs),
    S3(Arc<S3Objects>),
}

impl Backend {
    async fn read(&self, location: &Location) -> Result<Bytes, FileError> {
        match self {
            Self::File(fs) => fs.read(location).await,
            Self::S3(s3) => s3.read(location).await,
        }
    }

    async fn write(&self, location: &Location, bytes: Bytes) -> Result<(), FileError> {
        match self {
            Self::File(fs) => fs.write(location, bytes).await,
            Self::S3(s3) => s3.write(location, bytes).await,
        }
    }

    async fn delete(&self, location: &Location) -> Result<(), FileError> {
        match self {
            Self::File(fs) => fs.delete(location).await,
            Self::S3(s3) => s3.delete(location).await,
        }
    }

    async fn exists(&self, location: &Location) -> Result<bool, FileError> {
        match self {
            Self::File(fs) => fs.exists(location).await,
            Self::S3(s3) => s3.exists(location).await,
        }
    }
}

/// One warehouse's storage: its root, its backend (local files or an S3 bucket and prefix),
/// the iceberg crate's file IO over that backend, and for S3 the credential vendor.
#[derive(Debug)]
pub struct WarehouseStorage {
    root: Location,
    max_read_bytes: u64,
    backend: Backend,
    io: FileIO,
    profile: Option<StorageProfile>,
    vendor: Option<Vendor>,
}

impl Storage {
    /// Storage that reads files of at most `max_read_bytes` whole.
    pub fn new(max_read_bytes: u64) -> Self {
        Self {
            max_read_bytes,
            warehouses: Mutex::new(HashMap::new()),
            secret_keys: SecretKeys::none(),
        }
    }

    /// The same storage, sealing and opening profiles' secrets with `keys`.
    pub fn with_secret_keys(self, keys: SecretKeys) -> Self {
        Self {
            secret_keys: keys,
            ..self
        }
    }

    /// The keys that seal and open stored profiles' secrets.
    pub fn secret_keys(&self) -> &SecretKeys {
        &self.secret_keys
    }

    /// Checks a warehouse root: a location this server can serve with the given profile
    /// (`s3` needs one, `file` takes none), not a file system or bucket root and not a
    /// system directory.
    pub fn warehouse_root(
        &self,
        raw: &str,
        profile: Option<&StorageProfile>,
    ) -> StorageResult<Location> {
        let root = Location::parse(raw)?;
        match (root.scheme(), profile) {
            (Scheme::File, None) | (Scheme::S3(_), Some(StorageProfile::S3(_))) => {}
            (Scheme::File, Some(_)) => {
                return Err(StorageError::Unsupported(format!(
                    "location '{root}' is on the local file system, which takes no storage profile"
                )));
            }
            (Scheme::S3(scheme), None) => {
                return Err(StorageError::Unsupported(format!(
                    "location '{root}' is on {scheme}: give a storage profile ('storage' with type s3) for it"
                )));
            }
        }
        if root.is_root() {
            return Err(StorageError::Unsupported(format!(
                "location '{root}' is a file system or bucket root; give a directory for the warehouse"
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

    /// A warehouse's storage, built on first use and kept while the warehouse's root and
    /// profile stay the same. A new profile (other keys, role or endpoint) gets new storage:
    /// new clients, and a credential cache that holds nothing the old profile vended.
    pub fn for_warehouse(
        &self,
        id: &str,
        root: &Location,
        profile: Option<&StorageProfile>,
    ) -> StorageResult<Arc<WarehouseStorage>> {
        let same = |s: &WarehouseStorage| &s.root == root && s.profile.as_ref() == profile;
        if let Some(found) = self
            .warehouses
            .lock()
            .expect("storage map poisoned")
            .get(id)
            .filter(|s| same(s))
        {
            return Ok(found.clone());
        }
        let built = Arc::new(self.build(root, profile)?);
        let mut warehouses = self.warehouses.lock().expect("storage map poisoned");
        match warehouses.get(id) {
            // Another request built it meanwhile.
            Some(found) if same(found) => Ok(found.clone()),
            _ => {
                warehouses.insert(id.to_owned(), built.clone());
                Ok(built)
            }
        }
    }

    /// Drops a warehouse's storage (the warehouse was deleted).
    pub fn forget(&self, id: &str) {
        self.warehouses
            .lock()
            .expect("storage map poisoned")
            .remove(id);
    }

    /// A warehouse's storage, not kept (to check a profile before the warehouse exists).
    pub fn build(
        &self,
        root: &Location,
        profile: Option<&StorageProfile>,
    ) -> StorageResult<WarehouseStorage> {
        let (backend, io, vendor) = match (root.scheme(), profile) {
            (Scheme::File, None) => {
                let fs = ConfinedFs::new(root, self.max_read_bytes);
                let io = FileIOBuilder::new(Arc::new(ConfinedFsFactory(fs.clone()))).build();
                (Backend::File(fs), io, None)
            }
            (Scheme::S3(_), Some(StorageProfile::S3(s3))) => {
                let objects = Arc::new(S3Objects::new(root, s3, self.max_read_bytes));
                let io = FileIOBuilder::new(Arc::new(ConfinedS3Factory(ConfinedS3::new(
                    objects.clone(),
                ))))
                .build();
                let vendor =
                    (s3.credential_mode == CredentialMode::Vended).then(|| Vendor::new(s3));
                (Backend::S3(objects), io, vendor)
            }
            (scheme, _) => {
                return Err(StorageError::Unsupported(format!(
                    "storage scheme '{}' of '{root}' does not match the warehouse's storage profile",
                    scheme.as_str()
                )));
            }
        };
        Ok(WarehouseStorage {
            root: root.clone(),
            max_read_bytes: self.max_read_bytes,
            backend,
            io,
            profile: profile.cloned(),
            vendor,
        })
    }
}

/// What a client gets to reach a table's files: settings for its `config` and, when the
/// profile hands out keys, credentials scoped to the table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientAccess {
    /// Settings without secrets (endpoint, region, addressing).
    pub settings: Vec<(&'static str, String)>,
    /// Keys, with the location they are valid for.
    pub credentials: Option<(Location, TableCredentials)>,
}

impl WarehouseStorage {
    pub fn root(&self) -> &Location {
        &self.root
    }

    /// Whether clients get per-table settings or credentials (S3 warehouses).
    pub fn hands_out_access(&self) -> bool {
        self.profile.is_some()
    }

    /// The profile this storage was built with.
    pub fn profile(&self) -> Option<&StorageProfile> {
        self.profile.as_ref()
    }

    /// The iceberg crate's file IO for this warehouse: every path it touches must lie
    /// within the root.
    pub fn file_io(&self) -> FileIO {
        self.io.clone()
    }

    /// Refuses a location outside the root.
    fn check_within(&self, location: &Location) -> StorageResult<()> {
        if location.is_within(&self.root) {
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
    pub async fn prepare_table_location(&self, location: &Location) -> StorageResult<()> {
        self.check_within(location)?;
        if let Backend::File(fs) = &self.backend {
            fs.create_dir(&location.join("metadata")).await?;
        }
        Ok(())
    }

    /// Writes a metadata file; the JSON is gzip-compressed when the file name asks for it.
    pub async fn write_metadata(&self, location: &Location, json: &[u8]) -> StorageResult<()> {
        self.check_within(location)?;
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
        Ok(self.backend.write(location, bytes).await?)
    }

    /// Reads a whole file within the root (at most the size cap), decompressed when it is
    /// gzip-compressed (again at most the cap).
    pub async fn read_json_file(&self, location: &Location) -> StorageResult<Bytes> {
        self.check_within(location)?;
        let bytes = self.backend.read(location).await?;
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

    /// Deletes one file within the root; a missing file is not an error.
    pub async fn delete(&self, location: &Location) -> StorageResult<()> {
        self.check_within(location)?;
        Ok(self.backend.delete(location).await?)
    }

    /// Checks that the store takes this warehouse's profile: writes, reads, lists and
    /// deletes a probe object below the root, and in `vended` mode assumes the role once.
    /// The error names the step that failed.
    pub async fn probe(&self) -> StorageResult<()> {
        let Backend::S3(s3) = &self.backend else {
            return Ok(());
        };
        let dir = self
            .root
            .join(&format!(".serac-probe-{}", uuid::Uuid::new_v4().simple()));
        let object = dir.join("probe");
        let content = Bytes::from_static(b"serac storage profile probe");
        let step = |what: &str, e: FileError| {
            StorageError::Invalid(format!("storage profile check failed while {what}: {e}"))
        };
        s3.write(&object, content.clone())
            .await
            .map_err(|e| step("writing a probe object", e))?;
        let read = s3
            .read(&object)
            .await
            .map_err(|e| step("reading the probe object back", e))?;
        if read != content {
            return Err(StorageError::Invalid(format!(
                "storage profile check failed: the probe object '{object}' read back differs from what was written"
            )));
        }
        let listed = s3
            .list(&dir)
            .await
            .map_err(|e| step("listing the probe object", e))?;
        if !listed.contains(&object) {
            return Err(StorageError::Invalid(format!(
                "storage profile check failed: listing '{dir}' did not show the probe object"
            )));
        }
        s3.delete(&object)
            .await
            .map_err(|e| step("deleting the probe object", e))?;
        if let (Some(vendor), Some(StorageProfile::S3(profile))) = (&self.vendor, &self.profile) {
            vendor
                .vend(profile, &dir, Access::ReadWrite)
                .await
                .map_err(|e| {
                    StorageError::Invalid(format!(
                        "storage profile check failed while assuming the role: {e}"
                    ))
                })?;
        }
        Ok(())
    }

    /// What a client gets for the table at `table`: settings always, keys as the profile's
    /// credential mode says (temporary ones scoped to the table in `vended` mode, the
    /// profile's own in `static` mode, none in `none` mode). Local warehouses: nothing.
    pub async fn client_access(
        &self,
        table: &Location,
        access: Access,
    ) -> StorageResult<ClientAccess> {
        let Some(StorageProfile::S3(profile)) = &self.profile else {
            return Ok(ClientAccess::default());
        };
        self.check_within(table)?;
        let mut settings = Vec::new();
        if let Some(endpoint) = &profile.endpoint {
            settings.push(("s3.endpoint", endpoint.clone()));
        }
        settings.push(("s3.region", profile.region.clone()));
        settings.push(("client.region", profile.region.clone()));
        settings.push((
            "s3.path-style-access",
            profile.path_style_access.to_string(),
        ));
        settings.push((
            "s3.force-virtual-addressing",
            (!profile.path_style_access).to_string(),
        ));
        let credentials = match profile.credential_mode {
            CredentialMode::None => None,
            CredentialMode::RemoteSigning => {
                // The endpoint that signs is the catalog's (the layer above adds it).
                settings.push(("s3.remote-signing-enabled", "true".into()));
                settings.push(("s3.signer", "S3V4RestSigner".into()));
                settings.push(("py-io-impl", "pyiceberg.io.fsspec.FsspecFileIO".into()));
                None
            }
            CredentialMode::Static => Some(TableCredentials {
                access_key_id: profile.access_key_id.clone(),
                secret_access_key: profile.secret_access_key.clone(),
                session_token: None,
                expires_at_ms: None,
            }),
            CredentialMode::Vended => {
                let vendor = self.vendor.as_ref().ok_or_else(|| {
                    StorageError::Unsupported("the warehouse vends no credentials".into())
                })?;
                Some(vendor.vend(profile, table, access).await?)
            }
        };
        Ok(ClientAccess {
            settings,
            credentials: credentials.map(|c| (table.clone(), c)),
        })
    }

    /// Signs a client's S3 request for the table at `table` when it stays inside it and
    /// `access` allows it (remote-signing warehouses only).
    pub fn sign(
        &self,
        table: &Location,
        access: Access,
        request: &signer::SignRequest,
    ) -> Result<signer::SignedRequest, signer::SignError> {
        let Some(StorageProfile::S3(profile)) = &self.profile else {
            return Err(signer::SignError::Invalid(
                "this warehouse's requests are not signed by the catalog".into(),
            ));
        };
        if profile.credential_mode != CredentialMode::RemoteSigning {
            return Err(signer::SignError::Invalid(
                "this warehouse's credential mode is not remote-signing".into(),
            ));
        }
        let uri = signer::check_scope(profile, table, access, request)?;
        signer::sign_request(profile, &uri, request)
    }

    /// Deletes the files a dropped table's metadata names (metadata files, manifest lists,
    /// manifests, data and delete files unless `gc.enabled` is false, statistics) that lie
    /// within the table's location; files named elsewhere are left alone. Then, on a file
    /// system, removes the directories under the table location that are left empty; on
    /// object storage, deletes the objects left below the table location.
    pub async fn purge_table(
        &self,
        metadata: Arc<TableMetadata>,
        metadata_location: &str,
        deleted: &std::sync::atomic::AtomicU64,
    ) -> StorageResult<PurgeReport> {
        let table_location = Location::parse(metadata.location())?;
        self.check_within(&table_location)?;
        let io = self.file_io();
        let fs = &self.backend;
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
            if !exists(fs, list_location).await {
                continue;
            }
            match table.manifest_list_reader(snapshot).load().await {
                Ok(list) => {
                    for manifest in list.entries() {
                        if manifests.insert(manifest.manifest_path.clone()) {
                            if gc
                                && within(&manifest.manifest_path, &table_location)
                                && exists(fs, &manifest.manifest_path).await
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
        match &self.backend {
            Backend::File(fs) => fs.remove_empty_dirs(&table_location).await?,
            // Objects below the table that no metadata names (files of failed or abandoned
            // writes) go too, unless the table keeps its data (`gc.enabled=false`). Table
            // locations never overlap, so nothing below belongs to another table.
            Backend::S3(s3) if gc && report.failures.is_empty() => {
                match s3.list(&table_location).await {
                    Ok(left) => {
                        for location in left {
                            match s3.delete(&location).await {
                                Ok(()) => report.deleted += 1,
                                Err(e) => report.failures.push(e.to_string()),
                            }
                        }
                    }
                    Err(e) => report.failures.push(e.to_string()),
                }
            }
            Backend::S3(_) => {}
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

async fn exists(fs: &Backend, raw: &str) -> bool {
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
