//! Objects in one S3 warehouse, confined to its bucket and prefix, for Serac's own I/O and
//! for the iceberg crate's readers (scan planning, purge).
//!
//! Like [`super::file::ConfinedFs`]: every key is a [`Location`] that must lie within the
//! warehouse root (same scheme, same bucket, below the prefix), checked before any request;
//! whole reads are capped at the configured size; messages name the location and the
//! store's error code, never a credential.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use iceberg::io::{
    FileMetadata, FileRead, FileWrite, InputFile, OutputFile, Storage as IcebergStorage,
    StorageConfig, StorageFactory,
};
use iceberg::{Error, ErrorKind};
use serde::{Deserialize, Serialize};

use super::file::{FileError, input_file, no_prefix_delete, output_file};
use super::location::Location;
use super::profile::S3Profile;

/// An HTTP(S) client for the AWS SDK clients: rustls with ring.
pub fn http_client() -> aws_sdk_s3::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// The objects below one warehouse root.
#[derive(Clone)]
pub struct S3Objects {
    client: Client,
    root: Location,
    kms_key_arn: Option<String>,
    max_read_bytes: u64,
}

impl std::fmt::Debug for S3Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Objects")
            .field("root", &self.root.to_string())
            .finish_non_exhaustive()
    }
}

impl S3Objects {
    pub fn new(root: &Location, profile: &S3Profile, max_read_bytes: u64) -> Self {
        let credentials = Credentials::new(
            profile.access_key_id.clone(),
            profile.secret_access_key.expose().to_owned(),
            None,
            None,
            "serac-storage-profile",
        );
        let mut config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(profile.region.clone()))
            .credentials_provider(credentials)
            .force_path_style(profile.path_style_access)
            .http_client(http_client());
        if let Some(endpoint) = &profile.endpoint {
            config = config.endpoint_url(endpoint.trim_end_matches('/'));
        }
        Self {
            client: Client::from_conf(config.build()),
            root: root.clone(),
            kms_key_arn: profile.kms_key_arn.clone(),
            max_read_bytes,
        }
    }

    pub fn root(&self) -> &Location {
        &self.root
    }

    /// The key of a location within the root.
    fn key(&self, location: &Location) -> Result<String, FileError> {
        if !location.is_within(&self.root) || location.path().is_empty() {
            return Err(FileError::Outside(location.to_string()));
        }
        Ok(location.path().to_owned())
    }

    fn bucket(&self) -> &str {
        self.root.bucket()
    }

    /// Reads a whole object of at most the cap.
    pub async fn read(&self, location: &Location) -> Result<Bytes, FileError> {
        self.read_range(location, None, true).await
    }

    async fn read_range(
        &self,
        location: &Location,
        range: Option<Range<u64>>,
        capped: bool,
    ) -> Result<Bytes, FileError> {
        let key = self.key(location)?;
        let mut request = self.client.get_object().bucket(self.bucket()).key(&key);
        if let Some(range) = &range {
            if range.end <= range.start {
                return Ok(Bytes::new());
            }
            request = request.range(format!("bytes={}-{}", range.start, range.end - 1));
        }
        let output = request.send().await.map_err(|e| {
            if e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
                FileError::NotFound(location.to_string())
            } else {
                s3_error("reading", location, &e)
            }
        })?;
        let limit = self.max_read_bytes;
        let too_large = || FileError::TooLarge {
            location: location.to_string(),
            limit,
        };
        if capped && output.content_length().is_some_and(|l| l as u64 > limit) {
            return Err(too_large());
        }
        let mut body = output.body;
        let mut buf = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk
                .map_err(|e| FileError::Remote(format!("reading '{location}' failed: {e}")))?;
            buf.extend_from_slice(&chunk);
            if capped && buf.len() as u64 > limit {
                return Err(too_large());
            }
        }
        Ok(Bytes::from(buf))
    }

    /// Writes an object, replacing an existing one (encrypted with the profile's KMS key).
    pub async fn write(&self, location: &Location, bytes: Bytes) -> Result<(), FileError> {
        let key = self.key(location)?;
        let mut request = self
            .client
            .put_object()
            .bucket(self.bucket())
            .key(&key)
            .body(ByteStream::from(bytes));
        if let Some(kms) = &self.kms_key_arn {
            request = request
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(kms);
        }
        request
            .send()
            .await
            .map_err(|e| s3_error("writing", location, &e))?;
        Ok(())
    }

    /// Deletes an object; a missing one is not an error.
    pub async fn delete(&self, location: &Location) -> Result<(), FileError> {
        let key = self.key(location)?;
        self.client
            .delete_object()
            .bucket(self.bucket())
            .key(&key)
            .send()
            .await
            .map_err(|e| s3_error("deleting", location, &e))?;
        Ok(())
    }

    /// The size of an object, `None` when there is none.
    pub async fn size(&self, location: &Location) -> Result<Option<u64>, FileError> {
        let key = self.key(location)?;
        match self
            .client
            .head_object()
            .bucket(self.bucket())
            .key(&key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(out.content_length().unwrap_or(0).max(0) as u64)),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(s3_error("looking up", location, &e)),
        }
    }

    pub async fn exists(&self, location: &Location) -> Result<bool, FileError> {
        Ok(self.size(location).await?.is_some())
    }

    /// The locations of every object below `prefix` (a directory: `prefix/...`).
    pub async fn list(&self, prefix: &Location) -> Result<Vec<Location>, FileError> {
        let key = self.key(prefix)?;
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(self.bucket())
                .prefix(format!("{key}/"))
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| s3_error("listing", prefix, &e))?;
            for object in page.contents() {
                if let Some(name) = object.key()
                    && let Ok(location) = Location::parse(&format!(
                        "{}://{}/{name}",
                        self.root.scheme().as_str(),
                        self.bucket()
                    ))
                    && location.is_within(prefix)
                {
                    out.push(location);
                }
            }
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_owned()),
                _ => break,
            }
        }
        Ok(out)
    }
}

fn s3_error<E, R>(
    action: &'static str,
    location: &Location,
    err: &aws_sdk_s3::error::SdkError<E, R>,
) -> FileError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let detail = match err.as_service_error() {
        Some(service) => format!(
            "{}{}",
            service.code().unwrap_or("error"),
            service
                .message()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ),
        None => DisplayErrorContext(err).to_string(),
    };
    FileError::Remote(format!("{action} '{location}' failed: {detail}"))
}

fn parse(raw: &str) -> iceberg::Result<Location> {
    Location::parse(raw).map_err(|e| Error::new(ErrorKind::DataInvalid, e.to_string()))
}

/// The iceberg crate's view of [`S3Objects`] (its `FileIO` takes a serializable storage; a
/// deserialized copy has no client and refuses every operation).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfinedS3 {
    root: String,
    #[serde(skip)]
    objects: Option<Arc<S3Objects>>,
}

impl ConfinedS3 {
    pub fn new(objects: Arc<S3Objects>) -> Self {
        Self {
            root: objects.root().to_string(),
            objects: Some(objects),
        }
    }

    fn objects(&self) -> iceberg::Result<&S3Objects> {
        self.objects.as_deref().ok_or_else(|| {
            Error::new(
                ErrorKind::Unexpected,
                format!("no S3 client for '{}'", self.root),
            )
        })
    }
}

#[async_trait]
#[typetag::serde(name = "serac-confined-s3")]
impl IcebergStorage for ConfinedS3 {
    async fn exists(&self, path: &str) -> iceberg::Result<bool> {
        Ok(self.objects()?.exists(&parse(path)?).await?)
    }

    async fn metadata(&self, path: &str) -> iceberg::Result<FileMetadata> {
        let location = parse(path)?;
        match self.objects()?.size(&location).await? {
            Some(size) => Ok(FileMetadata { size }),
            None => Err(FileError::NotFound(location.to_string()).into()),
        }
    }

    async fn read(&self, path: &str) -> iceberg::Result<Bytes> {
        // Manifests and manifest lists: whole reads, not capped by the metadata-file cap.
        Ok(self
            .objects()?
            .read_range(&parse(path)?, None, false)
            .await?)
    }

    async fn reader(&self, path: &str) -> iceberg::Result<Box<dyn FileRead>> {
        let location = parse(path)?;
        let objects = self.objects()?;
        objects.key(&location)?;
        Ok(Box::new(S3Read {
            objects: Arc::new(objects.clone()),
            location,
        }))
    }

    async fn write(&self, path: &str, bs: Bytes) -> iceberg::Result<()> {
        Ok(self.objects()?.write(&parse(path)?, bs).await?)
    }

    async fn writer(&self, path: &str) -> iceberg::Result<Box<dyn FileWrite>> {
        let location = parse(path)?;
        let objects = self.objects()?;
        objects.key(&location)?;
        Ok(Box::new(S3Write {
            objects: Arc::new(objects.clone()),
            location,
            buf: Vec::new(),
        }))
    }

    async fn delete(&self, path: &str) -> iceberg::Result<()> {
        Ok(self.objects()?.delete(&parse(path)?).await?)
    }

    async fn delete_prefix(&self, path: &str) -> iceberg::Result<()> {
        Err(no_prefix_delete(path))
    }

    async fn delete_stream(&self, mut paths: BoxStream<'static, String>) -> iceberg::Result<()> {
        let objects = self.objects()?;
        while let Some(path) = paths.next().await {
            objects.delete(&parse(&path)?).await?;
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

/// Builds the [`ConfinedS3`] it holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfinedS3Factory(pub ConfinedS3);

#[typetag::serde(name = "serac-confined-s3-factory")]
impl StorageFactory for ConfinedS3Factory {
    fn build(&self, _config: &StorageConfig) -> iceberg::Result<Arc<dyn IcebergStorage>> {
        Ok(Arc::new(self.0.clone()))
    }
}

#[derive(Debug)]
struct S3Read {
    objects: Arc<S3Objects>,
    location: Location,
}

#[async_trait]
impl FileRead for S3Read {
    async fn read(&self, range: Range<u64>) -> iceberg::Result<Bytes> {
        Ok(self
            .objects
            .read_range(&self.location, Some(range), false)
            .await?)
    }
}

#[derive(Debug)]
struct S3Write {
    objects: Arc<S3Objects>,
    location: Location,
    buf: Vec<u8>,
}

#[async_trait]
impl FileWrite for S3Write {
    async fn write(&mut self, bs: Bytes) -> iceberg::Result<()> {
        self.buf.extend_from_slice(&bs);
        Ok(())
    }

    async fn close(&mut self) -> iceberg::Result<()> {
        let bytes = Bytes::from(std::mem::take(&mut self.buf));
        Ok(self.objects.write(&self.location, bytes).await?)
    }
}
