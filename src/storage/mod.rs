//! Object storage behind the iceberg crate's `FileIO`: metadata files, purges.
//!
//! Every location is a URL; the scheme picks the storage. `file://` is served by the iceberg
//! crate's local file system storage. Other schemes are refused with a clear error until their
//! storage exists.

use std::io::Write as _;
use std::sync::Arc;

use bytes::Bytes;
use iceberg::io::FileIO;
use iceberg::spec::TableMetadata;
use iceberg::table::Table;
use iceberg::{NamespaceIdent, TableIdent};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The location cannot be served (unknown scheme, not a URL).
    #[error("{0}")]
    Unsupported(String),
    /// Reading, writing or deleting failed.
    #[error("storage operation failed: {0}")]
    Io(String),
    /// A file was read but is not what it should be.
    #[error("{0}")]
    Invalid(String),
}

pub type StorageResult<T> = Result<T, StorageError>;

/// Hands out a `FileIO` for a location.
#[derive(Debug, Clone)]
pub struct Storage {
    local: FileIO,
}

impl Default for Storage {
    fn default() -> Self {
        Self::new()
    }
}

impl Storage {
    pub fn new() -> Self {
        Self {
            local: FileIO::new_with_fs(),
        }
    }

    /// Checks that a warehouse or table location can be served, and returns it normalized
    /// (no trailing slash).
    pub fn validate_location(&self, location: &str) -> StorageResult<String> {
        let url = url::Url::parse(location).map_err(|e| {
            StorageError::Unsupported(format!(
                "location '{location}' is not a URL ({e}); use for example file:///var/lib/warehouse"
            ))
        })?;
        match url.scheme() {
            "file" => {
                if url.host_str().is_some_and(|h| !h.is_empty()) {
                    return Err(StorageError::Unsupported(format!(
                        "location '{location}' names a host; a file location is file:///absolute/path"
                    )));
                }
                Ok(location.trim_end_matches('/').to_owned())
            }
            other => Err(StorageError::Unsupported(format!(
                "storage scheme '{other}' of location '{location}' is not supported by this server (supported: file)"
            ))),
        }
    }

    pub fn file_io(&self, location: &str) -> StorageResult<&FileIO> {
        self.validate_location(location)?;
        Ok(&self.local)
    }

    /// Makes a new table location ready for clients that write into it before its first
    /// commit (DuckDB writes manifests of a staged table there): on a file system, creates
    /// the `metadata` directory. Object stores need nothing.
    pub async fn prepare_table_location(&self, location: &str) -> StorageResult<()> {
        let location = self.validate_location(location)?;
        let url = url::Url::parse(&location)
            .map_err(|e| StorageError::Unsupported(format!("location '{location}': {e}")))?;
        if url.scheme() == "file" {
            let path = url.to_file_path().map_err(|()| {
                StorageError::Unsupported(format!("location '{location}' is not a local path"))
            })?;
            let dir = path.join("metadata");
            tokio::fs::create_dir_all(&dir)
                .await
                .map_err(|e| StorageError::Io(format!("creating {}: {e}", dir.display())))?;
        }
        Ok(())
    }

    /// Writes a metadata file; the JSON is gzip-compressed when the file name asks for it.
    pub async fn write_metadata(&self, location: &str, json: &[u8]) -> StorageResult<()> {
        let bytes = if location.ends_with(".gz.metadata.json") {
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
        let output = self
            .file_io(location)?
            .new_output(location)
            .map_err(io_err)?;
        output.write(bytes).await.map_err(io_err)
    }

    /// Reads and parses a metadata file (plain or gzip-compressed).
    pub async fn read_metadata(&self, location: &str) -> StorageResult<TableMetadata> {
        let io = self.existing(location, "metadata file").await?;
        TableMetadata::read_from(io, location).await.map_err(|e| {
            StorageError::Invalid(format!(
                "'{location}' is not a valid table metadata file: {e}"
            ))
        })
    }

    /// Reads a whole file that must exist.
    pub async fn read_file(&self, location: &str) -> StorageResult<Bytes> {
        let io = self.existing(location, "file").await?;
        io.new_input(location)
            .map_err(io_err)?
            .read()
            .await
            .map_err(io_err)
    }

    /// The file IO for a file that must exist; `what` names it in the error.
    async fn existing(&self, location: &str, what: &str) -> StorageResult<&FileIO> {
        let io = self.file_io(location)?;
        if !io.exists(location).await.map_err(io_err)? {
            return Err(StorageError::Invalid(format!(
                "{what} '{location}' does not exist"
            )));
        }
        Ok(io)
    }

    /// Deletes one file; a missing file is not an error.
    pub async fn delete(&self, location: &str) -> StorageResult<()> {
        let io = self.file_io(location)?;
        if io.exists(location).await.map_err(io_err)? {
            io.delete(location).await.map_err(io_err)?;
        }
        Ok(())
    }

    /// Deletes every file a table references (data, manifests, manifest lists, metadata
    /// files, statistics), then the table's own directory when `own_directory` is true.
    pub async fn purge_table(
        &self,
        metadata: Arc<TableMetadata>,
        metadata_location: &str,
        own_directory: bool,
    ) -> StorageResult<()> {
        let location = metadata.location().to_owned();
        let io = self.file_io(&location)?.clone();
        let ident = TableIdent::new(NamespaceIdent::new("purge".into()), "purge".into());
        let table = Table::builder()
            .metadata(metadata)
            .metadata_location(metadata_location)
            .identifier(ident)
            .file_io(io.clone())
            .runtime(iceberg::Runtime::try_current().map_err(io_err)?)
            .build()
            .map_err(io_err)?;
        iceberg::drop_table_data(&table).await.map_err(io_err)?;
        if own_directory {
            io.delete_prefix(&location).await.map_err(io_err)?;
        }
        Ok(())
    }
}

fn io_err(e: iceberg::Error) -> StorageError {
    StorageError::Io(e.to_string())
}
