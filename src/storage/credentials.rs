//! Credentials for clients: STS AssumeRole with a session policy narrowed to one table, from
//! one template ([`session_policy`]), cached per table and access until shortly before they
//! expire.
//!
//! The session policy intersects the role's own policy: whatever the role may do, the
//! credentials reach only the table's prefix (objects below `table/`, listing with an
//! `s3:prefix` condition on it), and only read actions when the caller may only read.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_sts::config::{BehaviorVersion, Credentials as StsKeys, Region};
use aws_sdk_sts::error::ProvideErrorMetadata;
use serde_json::json;

use super::StorageError;
use super::location::Location;
use super::profile::{Partition, S3Profile, Secret};

/// Credentials are handed out again only while they live at least this much longer (or a
/// quarter of their lifetime, when that is shorter).
const REUSE_MARGIN: Duration = Duration::from_secs(300);

/// What a client may do with a table's objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    Read,
    ReadWrite,
}

/// Temporary (or static) keys for one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCredentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    /// `None` for a profile's static keys.
    pub session_token: Option<Secret>,
    /// When temporary keys expire (ms since the epoch).
    pub expires_at_ms: Option<i64>,
}

/// The session policy for a table: objects below `table_prefix/`, listing with `s3:prefix`
/// on it, KMS use when the profile has a key; read-only actions for [`Access::Read`].
///
/// `table_prefix` is the table location's key within the bucket, without slashes at either
/// end. It may not hold policy wildcards or variables (`*`, `?`, `$`): they would widen it.
pub fn session_policy(
    partition: Partition,
    bucket: &str,
    table_prefix: &str,
    access: Access,
    kms_key_arn: Option<&str>,
) -> Result<String, StorageError> {
    if table_prefix.is_empty()
        || table_prefix.contains(['*', '?', '$'])
        || bucket.contains(['*', '?', '$'])
    {
        return Err(StorageError::Unsupported(format!(
            "credentials cannot be scoped to 's3://{bucket}/{table_prefix}': the location holds a character that IAM policies treat as a pattern (*, ? or $)"
        )));
    }
    let arn = partition.as_str();
    let object_actions: &[&str] = match access {
        Access::Read => &["s3:GetObject", "s3:GetObjectVersion"],
        // CreateMultipartUpload, UploadPart and CompleteMultipartUpload are s3:PutObject.
        Access::ReadWrite => &[
            "s3:GetObject",
            "s3:GetObjectVersion",
            "s3:PutObject",
            "s3:DeleteObject",
            "s3:AbortMultipartUpload",
            "s3:ListMultipartUploadParts",
        ],
    };
    let mut statements = vec![
        json!({
            "Sid": "TableObjects",
            "Effect": "Allow",
            "Action": object_actions,
            "Resource": [format!("arn:{arn}:s3:::{bucket}/{table_prefix}/*")],
        }),
        json!({
            "Sid": "TableListing",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [format!("arn:{arn}:s3:::{bucket}")],
            "Condition": {"StringLike": {"s3:prefix": [
                table_prefix, format!("{table_prefix}/*")
            ]}},
        }),
        json!({
            "Sid": "BucketLocation",
            "Effect": "Allow",
            "Action": ["s3:GetBucketLocation"],
            "Resource": [format!("arn:{arn}:s3:::{bucket}")],
        }),
    ];
    if access == Access::ReadWrite {
        statements.push(json!({
            "Sid": "TableUploads",
            "Effect": "Allow",
            "Action": ["s3:ListBucketMultipartUploads"],
            "Resource": [format!("arn:{arn}:s3:::{bucket}")],
        }));
    }
    if let Some(key) = kms_key_arn {
        let kms_actions: &[&str] = match access {
            Access::Read => &["kms:Decrypt", "kms:DescribeKey"],
            Access::ReadWrite => &[
                "kms:Decrypt",
                "kms:DescribeKey",
                "kms:Encrypt",
                "kms:GenerateDataKey",
                "kms:ReEncrypt*",
            ],
        };
        statements.push(json!({
            "Sid": "TableKey",
            "Effect": "Allow",
            "Action": kms_actions,
            "Resource": [key],
        }));
    }
    Ok(json!({"Version": "2012-10-17", "Statement": statements}).to_string())
}

/// Hands out table credentials for one warehouse's profile.
pub struct Vendor {
    sts: Option<aws_sdk_sts::Client>,
    cache: moka::sync::Cache<(String, Access), TableCredentials>,
}

impl std::fmt::Debug for Vendor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vendor").finish_non_exhaustive()
    }
}

impl Vendor {
    pub fn new(profile: &S3Profile) -> Self {
        let sts = profile.sts.as_ref().map(|sts| {
            let keys = StsKeys::new(
                profile.access_key_id.clone(),
                profile.secret_access_key.expose().to_owned(),
                None,
                None,
                "serac-storage-profile",
            );
            let mut config = aws_sdk_sts::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new(profile.region.clone()))
                .credentials_provider(keys)
                .http_client(super::s3::http_client());
            if let Some(endpoint) = sts.endpoint.as_ref().or(profile.endpoint.as_ref()) {
                config = config.endpoint_url(endpoint.trim_end_matches('/'));
            }
            aws_sdk_sts::Client::from_conf(config.build())
        });
        Self {
            sts,
            cache: moka::sync::Cache::builder().max_capacity(100_000).build(),
        }
    }

    /// Credentials for the table at `table` (within `root`), from the cache while they live
    /// long enough, else from one AssumeRole.
    pub async fn vend(
        &self,
        profile: &S3Profile,
        table: &Location,
        access: Access,
    ) -> Result<TableCredentials, StorageError> {
        let (Some(client), Some(sts)) = (&self.sts, &profile.sts) else {
            return Err(StorageError::Unsupported(
                "the storage profile has no STS settings".into(),
            ));
        };
        let key = (table.to_string(), access);
        let now = now_ms();
        if let Some(cached) = self.cache.get(&key)
            && let Some(expires) = cached.expires_at_ms
        {
            let lifetime_ms = i64::try_from(sts.session_duration.as_millis()).unwrap_or(i64::MAX);
            let margin = i64::try_from(REUSE_MARGIN.as_millis())
                .unwrap_or(0)
                .min(lifetime_ms / 4);
            if expires - now > margin {
                return Ok(cached);
            }
        }
        let policy = session_policy(
            sts.partition,
            table.bucket(),
            table.path(),
            access,
            profile.kms_key_arn.as_deref(),
        )?;
        let mut request = client
            .assume_role()
            .role_arn(&sts.role_arn)
            .role_session_name(format!(
                "serac-{}",
                &uuid::Uuid::new_v4().simple().to_string()[..16]
            ))
            .policy(policy)
            .duration_seconds(i32::try_from(sts.session_duration.as_secs()).unwrap_or(3600));
        if let Some(external) = &sts.external_id {
            request = request.external_id(external);
        }
        let output = request.send().await.map_err(|e| {
            let detail = match e.as_service_error() {
                Some(s) => format!(
                    "{}{}",
                    s.code().unwrap_or("error"),
                    s.message().map(|m| format!(": {m}")).unwrap_or_default()
                ),
                None => aws_sdk_sts::error::DisplayErrorContext(&e).to_string(),
            };
            StorageError::Io(format!(
                "STS AssumeRole of '{}' failed: {detail}",
                sts.role_arn
            ))
        })?;
        let keys = output.credentials().ok_or_else(|| {
            StorageError::Io("STS AssumeRole answered without credentials".into())
        })?;
        let expiration = keys.expiration();
        let credentials = TableCredentials {
            access_key_id: keys.access_key_id().to_owned(),
            secret_access_key: Secret::new(keys.secret_access_key()),
            session_token: Some(Secret::new(keys.session_token())),
            expires_at_ms: Some(
                expiration.secs() * 1000 + i64::from(expiration.subsec_nanos() / 1_000_000),
            ),
        };
        if credentials.access_key_id.is_empty() || credentials.secret_access_key.expose().is_empty()
        {
            return Err(StorageError::Io(
                "STS AssumeRole answered with empty credentials".into(),
            ));
        }
        self.cache.insert(key, credentials.clone());
        Ok(credentials)
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(access: Access, kms: Option<&str>) -> serde_json::Value {
        serde_json::from_str(
            &session_policy(Partition::AwsUsGov, "lake", "wh/ns/t1", access, kms).unwrap(),
        )
        .unwrap()
    }

    fn statement<'a>(policy: &'a serde_json::Value, sid: &str) -> &'a serde_json::Value {
        policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Sid"] == sid)
            .unwrap_or_else(|| panic!("no statement {sid} in {policy}"))
    }

    #[test]
    fn writers_get_object_and_multipart_actions_on_the_table_prefix_only() {
        let p = policy(Access::ReadWrite, None);
        let objects = statement(&p, "TableObjects");
        assert_eq!(
            objects["Resource"],
            json!(["arn:aws-us-gov:s3:::lake/wh/ns/t1/*"])
        );
        for action in [
            "s3:GetObject",
            "s3:PutObject",
            "s3:DeleteObject",
            "s3:AbortMultipartUpload",
            "s3:ListMultipartUploadParts",
        ] {
            assert!(
                objects["Action"]
                    .as_array()
                    .unwrap()
                    .contains(&json!(action)),
                "{action}"
            );
        }
        let listing = statement(&p, "TableListing");
        assert_eq!(listing["Resource"], json!(["arn:aws-us-gov:s3:::lake"]));
        assert_eq!(
            listing["Condition"]["StringLike"]["s3:prefix"],
            json!(["wh/ns/t1", "wh/ns/t1/*"])
        );
        assert!(!p.to_string().contains("kms:"));
    }

    #[test]
    fn readers_get_read_actions_only() {
        let p = policy(
            Access::Read,
            Some("arn:aws-us-gov:kms:us-gov-west-1:1:key/k"),
        );
        let text = p.to_string();
        for action in [
            "s3:PutObject",
            "s3:DeleteObject",
            "s3:AbortMultipartUpload",
            "kms:GenerateDataKey",
            "kms:Encrypt",
        ] {
            assert!(!text.contains(action), "{action} in {text}");
        }
        assert_eq!(
            statement(&p, "TableObjects")["Action"],
            json!(["s3:GetObject", "s3:GetObjectVersion"])
        );
        assert_eq!(
            statement(&p, "TableKey")["Resource"],
            json!(["arn:aws-us-gov:kms:us-gov-west-1:1:key/k"])
        );
    }

    #[test]
    fn writers_may_use_the_kms_key() {
        let p = policy(Access::ReadWrite, Some("arn:aws:kms:r:1:key/k"));
        let actions = &statement(&p, "TableKey")["Action"];
        for action in ["kms:Decrypt", "kms:GenerateDataKey", "kms:Encrypt"] {
            assert!(
                actions.as_array().unwrap().contains(&json!(action)),
                "{action}"
            );
        }
    }

    #[test]
    fn patterns_in_a_location_are_refused() {
        for prefix in ["wh/*", "wh/t?", "wh/${aws:username}", ""] {
            assert!(
                session_policy(Partition::Aws, "lake", prefix, Access::Read, None).is_err(),
                "{prefix}"
            );
        }
    }
}
