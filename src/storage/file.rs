//! Local files, confined to one root directory, for Serac's own I/O and for the iceberg
//! crate's readers (scan planning, purge).
//!
//! Differences from the iceberg crate's local file system storage, which trusts its paths:
//! - every path is parsed as a [`Location`] and must lie within the root, so a location taken
//!   from client metadata (a manifest list, a statistics file) cannot reach other files;
//! - reads open the file without blocking and without following a final symlink, then refuse
//!   anything but a regular file (a FIFO, a device such as `/dev/zero`, a directory) and whole
//!   reads larger than the configured cap;
//! - all file system calls run on tokio's blocking pool, never on the async workers;
//! - error messages name the location, never the server's own path or a system detail
//!   beyond the kind of failure.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::ops::Range;
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use iceberg::io::{
    FileMetadata, FileRead, FileWrite, InputFile, OutputFile, Storage as IcebergStorage,
    StorageConfig, StorageFactory,
};
use iceberg::{Error, ErrorKind};
use serde::{Deserialize, Serialize};

use super::location::Location;

/// What went wrong with a confined file operation.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("location '{0}' lies outside the warehouse")]
    Outside(String),
    #[error("'{0}' does not exist")]
    NotFound(String),
    #[error("'{0}' is not a regular file")]
    NotRegular(String),
    #[error("'{location}' is larger than {limit} bytes (the server's --max-metadata-bytes)")]
    TooLarge { location: String, limit: u64 },
    #[error("{0}")]
    Invalid(String),
    /// An object store refused or failed a request (the message names the location and the
    /// store's error code).
    #[error("{0}")]
    Remote(String),
    #[error("{action} '{location}' failed: {kind}")]
    Io {
        action: &'static str,
        location: String,
        kind: std::io::ErrorKind,
    },
}

impl From<FileError> for Error {
    fn from(err: FileError) -> Self {
        let kind = match err {
            FileError::Outside(_) | FileError::NotRegular(_) | FileError::TooLarge { .. } => {
                ErrorKind::PreconditionFailed
            }
            FileError::NotFound(_) | FileError::Invalid(_) => ErrorKind::DataInvalid,
            FileError::Io { .. } | FileError::Remote(_) => ErrorKind::Unexpected,
        };
        Error::new(kind, err.to_string())
    }
}

/// Local files below `root`, reads capped at `max_read_bytes`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfinedFs {
    /// The root as a location string (`file:///...`).
    root: String,
    max_read_bytes: u64,
    #[serde(skip)]
    parsed_root: Option<Location>,
}

impl ConfinedFs {
    pub fn new(root: &Location, max_read_bytes: u64) -> Self {
        Self {
            root: root.to_string(),
            max_read_bytes,
            parsed_root: Some(root.clone()),
        }
    }

    fn root(&self) -> Result<Location, FileError> {
        match &self.parsed_root {
            Some(root) => Ok(root.clone()),
            None => Location::parse(&self.root).map_err(|e| FileError::Invalid(e.to_string())),
        }
    }

    /// The local path of `raw` when it lies within the root.
    pub fn path_of(&self, raw: &str) -> Result<PathBuf, FileError> {
        let location = Location::parse(raw).map_err(|e| FileError::Invalid(e.to_string()))?;
        self.confined(&location)
    }

    /// The local path of a location within the root.
    pub fn confined(&self, location: &Location) -> Result<PathBuf, FileError> {
        if !location.is_within(&self.root()?) {
            return Err(FileError::Outside(location.to_string()));
        }
        location
            .local_path()
            .ok_or_else(|| FileError::Outside(location.to_string()))
    }

    /// Reads a whole regular file of at most the cap.
    pub async fn read(&self, location: &Location) -> Result<Bytes, FileError> {
        let path = self.confined(location)?;
        let limit = self.max_read_bytes;
        let name = location.to_string();
        blocking(move || {
            let file = open_regular(&path, &name)?;
            let size = file
                .metadata()
                .map_err(|e| io_error("reading", &name, &e))?
                .len();
            if size > limit {
                return Err(FileError::TooLarge {
                    location: name,
                    limit,
                });
            }
            let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            // The file may grow after the size was read: never take more than the cap.
            file.take(limit + 1)
                .read_to_end(&mut buf)
                .map_err(|e| io_error("reading", &name, &e))?;
            if buf.len() as u64 > limit {
                return Err(FileError::TooLarge {
                    location: name,
                    limit,
                });
            }
            Ok(Bytes::from(buf))
        })
        .await
    }

    /// Writes a file (creating its directories), replacing an existing one.
    pub async fn write(&self, location: &Location, bytes: Bytes) -> Result<(), FileError> {
        let path = self.confined(location)?;
        let name = location.to_string();
        blocking(move || {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| io_error("creating the directory of", &name, &e))?;
            }
            std::fs::write(&path, &bytes).map_err(|e| io_error("writing", &name, &e))
        })
        .await
    }

    /// Creates a directory and its parents.
    pub async fn create_dir(&self, location: &Location) -> Result<(), FileError> {
        let path = self.confined(location)?;
        let name = location.to_string();
        blocking(move || {
            std::fs::create_dir_all(&path)
                .map_err(|e| io_error("creating the directory", &name, &e))
        })
        .await
    }

    /// Deletes one file, and the `.<name>.crc` checksum beside it that Hadoop's local file
    /// system (Spark's) writes with every file; a missing file is not an error, a directory
    /// is.
    pub async fn delete(&self, location: &Location) -> Result<(), FileError> {
        let path = self.confined(location)?;
        let name = location.to_string();
        blocking(move || {
            remove_regular(&path, &name)?;
            if let (Some(dir), Some(file)) = (path.parent(), path.file_name()) {
                let checksum = dir.join(format!(".{}.crc", file.to_string_lossy()));
                remove_regular(&checksum, &name)?;
            }
            Ok(())
        })
        .await
    }

    /// Removes the empty directories at and below `location` (deepest first); directories
    /// that still hold a file stay. Symbolic links are not followed.
    pub async fn remove_empty_dirs(&self, location: &Location) -> Result<(), FileError> {
        let path = self.confined(location)?;
        blocking(move || {
            remove_empty_dirs(&path);
            Ok(())
        })
        .await
    }

    pub async fn exists(&self, location: &Location) -> Result<bool, FileError> {
        let path = self.confined(location)?;
        let name = location.to_string();
        blocking(move || match std::fs::symlink_metadata(&path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_error("looking up", &name, &e)),
        })
        .await
    }
}

/// Removes a file that is not a directory; a missing one is not an error.
fn remove_regular(path: &std::path::Path, name: &str) -> Result<(), FileError> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error("deleting", name, &e)),
        Ok(meta) if meta.is_dir() => Err(FileError::NotRegular(name.to_owned())),
        Ok(_) => match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io_error("deleting", name, &e))
            }
            _ => Ok(()),
        },
    }
}

fn remove_empty_dirs(dir: &std::path::Path) {
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_empty_dirs(&entry.path());
            }
        }
    }
    // Fails (and is left alone) when the directory still holds something.
    let _ = std::fs::remove_dir(dir);
}

/// Opens a file for reading without blocking on a FIFO and without following a final
/// symlink, and refuses anything but a regular file.
fn open_regular(path: &std::path::Path, name: &str) -> Result<File, FileError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => FileError::NotFound(name.to_owned()),
            // O_NOFOLLOW on a symlink.
            _ if e.raw_os_error() == Some(libc::ELOOP) => FileError::NotRegular(name.to_owned()),
            _ => io_error("opening", name, &e),
        })?;
    let meta = file.metadata().map_err(|e| io_error("opening", name, &e))?;
    if !meta.is_file() {
        return Err(FileError::NotRegular(name.to_owned()));
    }
    Ok(file)
}

fn io_error(action: &'static str, location: &str, err: &std::io::Error) -> FileError {
    FileError::Io {
        action,
        location: location.to_owned(),
        kind: err.kind(),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, FileError> + Send + 'static,
) -> Result<T, FileError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(FileError::Invalid(format!("file operation failed: {e}"))))
}

fn parse(raw: &str) -> iceberg::Result<Location> {
    Location::parse(raw).map_err(|e| Error::new(ErrorKind::DataInvalid, e.to_string()))
}

#[async_trait]
#[typetag::serde(name = "serac-confined-fs")]
impl IcebergStorage for ConfinedFs {
    async fn exists(&self, path: &str) -> iceberg::Result<bool> {
        Ok(ConfinedFs::exists(self, &parse(path)?).await?)
    }

    async fn metadata(&self, path: &str) -> iceberg::Result<FileMetadata> {
        let location = parse(path)?;
        let local = self.confined(&location)?;
        let name = location.to_string();
        let size = blocking(move || {
            let file = open_regular(&local, &name)?;
            Ok(file
                .metadata()
                .map_err(|e| io_error("reading", &name, &e))?
                .len())
        })
        .await?;
        Ok(FileMetadata { size })
    }

    async fn read(&self, path: &str) -> iceberg::Result<Bytes> {
        Ok(ConfinedFs::read(self, &parse(path)?).await?)
    }

    async fn reader(&self, path: &str) -> iceberg::Result<Box<dyn FileRead>> {
        let location = parse(path)?;
        let local = self.confined(&location)?;
        let name = location.to_string();
        let file = blocking(move || open_regular(&local, &name)).await?;
        Ok(Box::new(ConfinedRead {
            file: Arc::new(file),
            name: location.to_string(),
        }))
    }

    async fn write(&self, path: &str, bs: Bytes) -> iceberg::Result<()> {
        Ok(ConfinedFs::write(self, &parse(path)?, bs).await?)
    }

    async fn writer(&self, path: &str) -> iceberg::Result<Box<dyn FileWrite>> {
        let location = parse(path)?;
        let local = self.confined(&location)?;
        let name = location.to_string();
        let file = blocking(move || {
            if let Some(dir) = local.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| io_error("creating the directory of", &name, &e))?;
            }
            File::create(&local).map_err(|e| io_error("creating", &name, &e))
        })
        .await?;
        Ok(Box::new(ConfinedWrite {
            file: Some(file),
            name: location.to_string(),
        }))
    }

    async fn delete(&self, path: &str) -> iceberg::Result<()> {
        Ok(ConfinedFs::delete(self, &parse(path)?).await?)
    }

    async fn delete_prefix(&self, path: &str) -> iceberg::Result<()> {
        // Serac never deletes a directory tree; only named files and empty directories.
        Err(no_prefix_delete(path))
    }

    async fn delete_stream(&self, mut paths: BoxStream<'static, String>) -> iceberg::Result<()> {
        while let Some(path) = paths.next().await {
            ConfinedFs::delete(self, &parse(&path)?).await?;
        }
        Ok(())
    }

    fn new_input(&self, path: &str) -> iceberg::Result<InputFile> {
        Ok(input_file(self, path))
    }

    fn new_output(&self, path: &str) -> iceberg::Result<OutputFile> {
        Ok(output_file(self, path))
    }
}

/// The refusal of a recursive delete (Serac deletes named files only).
pub(super) fn no_prefix_delete(path: &str) -> Error {
    Error::new(
        ErrorKind::FeatureUnsupported,
        format!("deleting everything under '{path}' is not allowed"),
    )
}

/// An input file of a confined storage.
pub(super) fn input_file<S: IcebergStorage + Clone + 'static>(
    storage: &S,
    path: &str,
) -> InputFile {
    InputFile::new(Arc::new(storage.clone()), path.to_string())
}

/// An output file of a confined storage.
pub(super) fn output_file<S: IcebergStorage + Clone + 'static>(
    storage: &S,
    path: &str,
) -> OutputFile {
    OutputFile::new(Arc::new(storage.clone()), path.to_string())
}

/// Builds the [`ConfinedFs`] it holds (the iceberg crate's `FileIO` takes a factory).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfinedFsFactory(pub ConfinedFs);

#[typetag::serde(name = "serac-confined-fs-factory")]
impl StorageFactory for ConfinedFsFactory {
    fn build(&self, _config: &StorageConfig) -> iceberg::Result<Arc<dyn IcebergStorage>> {
        Ok(Arc::new(self.0.clone()))
    }
}

#[derive(Debug)]
struct ConfinedRead {
    file: Arc<File>,
    name: String,
}

#[async_trait]
impl FileRead for ConfinedRead {
    async fn read(&self, range: Range<u64>) -> iceberg::Result<Bytes> {
        let file = self.file.clone();
        let name = self.name.clone();
        let len = usize::try_from(range.end.saturating_sub(range.start))
            .map_err(|_| Error::new(ErrorKind::DataInvalid, "read range too large"))?;
        Ok(blocking(move || {
            let mut buf = vec![0u8; len];
            file.read_exact_at(&mut buf, range.start)
                .map_err(|e| io_error("reading", &name, &e))?;
            Ok(Bytes::from(buf))
        })
        .await?)
    }
}

#[derive(Debug)]
struct ConfinedWrite {
    file: Option<File>,
    name: String,
}

#[async_trait]
impl FileWrite for ConfinedWrite {
    async fn write(&mut self, bs: Bytes) -> iceberg::Result<()> {
        let mut file = self
            .file
            .take()
            .ok_or_else(|| Error::new(ErrorKind::DataInvalid, "the file is closed"))?;
        let name = self.name.clone();
        let file = blocking(move || {
            file.write_all(&bs)
                .map_err(|e| io_error("writing", &name, &e))?;
            Ok(file)
        })
        .await?;
        self.file = Some(file);
        Ok(())
    }

    async fn close(&mut self) -> iceberg::Result<()> {
        let file = self
            .file
            .take()
            .ok_or_else(|| Error::new(ErrorKind::DataInvalid, "the file is closed"))?;
        let name = self.name.clone();
        Ok(blocking(move || file.sync_all().map_err(|e| io_error("writing", &name, &e))).await?)
    }
}
