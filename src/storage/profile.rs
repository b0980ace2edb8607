//! Storage profiles: how Serac reaches a warehouse's object store and what it hands clients.
//!
//! A warehouse on `s3://` has a profile, given when the warehouse is created:
//!
//! ```json
//! {"type": "s3", "endpoint": "http://127.0.0.1:8333", "region": "us-east-1",
//!  "path-style-access": true, "access-key-id": "...", "secret-access-key": "...",
//!  "credential-mode": "vended",
//!  "sts": {"role-arn": "arn:aws:iam::123456789012:role/lake", "endpoint": null,
//!          "session-duration": "1h", "partition": "aws"},
//!  "kms-key-arn": null}
//! ```
//!
//! The secret access key is a [`Secret`]: its `Debug` form is redacted, and the only way to
//! serialize a profile with it is [`StorageProfile::to_stored_json`] (for the database row),
//! which seals it with the server's secrets key when there is one ([`super::secrets`]).
//! What responses and events show is [`StorageProfile::redacted`], which holds no credential.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::secrets::{SecretKeys, StoredSecret};

/// Shortest and longest STS session an AssumeRole may ask for (AWS's bounds).
pub const MIN_SESSION: Duration = Duration::from_secs(900);
pub const MAX_SESSION: Duration = Duration::from_secs(43_200);

/// A secret string: never printed, compared in full.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that needs it (signing, handing out).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"** redacted **\"")
    }
}

/// What clients get to reach a table's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CredentialMode {
    /// Temporary credentials from STS AssumeRole, narrowed to the table by a session policy.
    Vended,
    /// The profile's own keys (trusted setups only: they reach the whole bucket).
    Static,
    /// Clients send each request to Serac, which signs it when it stays in the table.
    RemoteSigning,
    /// None: clients bring their own.
    None,
}

impl CredentialMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Vended => "vended",
            Self::Static => "static",
            Self::RemoteSigning => "remote-signing",
            Self::None => "none",
        }
    }
}

/// The AWS partition of ARNs in session policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Partition {
    #[default]
    #[serde(rename = "aws")]
    Aws,
    #[serde(rename = "aws-cn")]
    AwsCn,
    #[serde(rename = "aws-us-gov")]
    AwsUsGov,
}

impl Partition {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Aws => "aws",
            Self::AwsCn => "aws-cn",
            Self::AwsUsGov => "aws-us-gov",
        }
    }
}

/// STS settings of a `vended` profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct StsSettings {
    /// The role assumed for every table (its policy intersects the session policy).
    pub role_arn: String,
    /// The STS endpoint; defaults to the profile's S3 endpoint (S3-compatible stores serve
    /// STS there), else AWS's regional endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// How long vended credentials live (`15m` to `12h`; default `1h`).
    #[serde(
        default = "default_session",
        with = "humantime_serde_compat",
        skip_serializing_if = "is_default_session"
    )]
    pub session_duration: Duration,
    #[serde(default)]
    pub partition: Partition,
    /// An external id the role's trust policy asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

fn default_session() -> Duration {
    Duration::from_secs(3600)
}

fn is_default_session(d: &Duration) -> bool {
    *d == default_session()
}

mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let raw = String::deserialize(d)?;
        humantime::parse_duration(&raw).map_err(|e| {
            serde::de::Error::custom(format!("session-duration '{raw}' is not a duration: {e}"))
        })
    }
}

/// An S3 (or S3-compatible) store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct S3Profile {
    /// The S3 endpoint; `None`: AWS's endpoint for the region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    pub region: String,
    /// Path-style requests (`endpoint/bucket/key`), as most S3-compatible stores need.
    #[serde(default)]
    pub path_style_access: bool,
    /// The keys Serac itself uses (and hands out in `static` mode).
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub credential_mode: CredentialMode,
    /// Required in `vended` mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sts: Option<StsSettings>,
    /// Objects Serac writes are encrypted with this KMS key; vended credentials may use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_arn: Option<String>,
}

/// A warehouse's storage profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum StorageProfile {
    S3(S3Profile),
}

impl StorageProfile {
    /// Parses a profile as a client sent it and checks what can be checked without a
    /// request; the error names the field.
    pub fn parse(value: serde_json::Value) -> Result<Self, String> {
        let profile: Self = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            // serde's messages never quote field values, so no secret can show here.
            if path == "." {
                format!("invalid storage profile: {inner}")
            } else {
                format!("invalid storage profile at '{path}': {inner}")
            }
        })?;
        profile.check()?;
        Ok(profile)
    }

    /// A profile as stored in the database row of warehouse `warehouse_id`, its secret
    /// opened with `keys`. A secret that cannot be opened (a key this server lacks) is no
    /// error here: the profile comes back with an empty secret and the reason, so that what
    /// needs no secret (listing, replacing the profile, deleting the warehouse) still works.
    pub fn from_stored_json(
        raw: &str,
        keys: &SecretKeys,
        warehouse_id: &str,
    ) -> Result<(Self, StoredSecrets), String> {
        let unreadable =
            |e: serde_json::Error| format!("stored storage profile is unreadable: {e}");
        let mut value: serde_json::Value = serde_json::from_str(raw).map_err(unreadable)?;
        let stored: StoredSecret = value
            .get("secret-access-key")
            .map(|v| serde_json::from_value(v.clone()))
            .transpose()
            .map_err(unreadable)?
            .ok_or("stored storage profile has no 'secret-access-key'")?;
        let (plain, state) = match keys.open(&stored, &secret_place(warehouse_id)) {
            Ok(plain) => (
                plain,
                match &stored {
                    StoredSecret::Plain(_) => StoredSecrets::Plain,
                    StoredSecret::Sealed(sealed) => StoredSecrets::Sealed {
                        key_id: sealed.key_id.clone(),
                        current: keys.is_current(&stored),
                    },
                },
            ),
            Err(e) => (
                String::new(),
                StoredSecrets::Unreadable(format!("its secret access key cannot be read: {e}")),
            ),
        };
        value["secret-access-key"] = serde_json::Value::String(plain);
        let profile = serde_json::from_value(value).map_err(unreadable)?;
        Ok((profile, state))
    }

    /// The profile with its secret (sealed with `keys`' current key, if any), for the
    /// database row of warehouse `warehouse_id` only.
    pub fn to_stored_json(&self, keys: &SecretKeys, warehouse_id: &str) -> String {
        let mut value = serde_json::to_value(self).expect("profiles serialize");
        let sealed = keys.seal(
            self.s3().secret_access_key.expose(),
            &secret_place(warehouse_id),
        );
        value["secret-access-key"] = serde_json::to_value(sealed).expect("secrets serialize");
        value.to_string()
    }

    /// The names of the fields that differ from `old`, for change events (never values).
    pub fn changed_fields(&self, old: &Self) -> Vec<String> {
        let (new, old) = (
            serde_json::to_value(self).expect("profiles serialize"),
            serde_json::to_value(old).expect("profiles serialize"),
        );
        let (Some(new), Some(old)) = (new.as_object(), old.as_object()) else {
            return Vec::new();
        };
        let mut fields: Vec<String> = new
            .keys()
            .chain(old.keys())
            .filter(|k| new.get(*k) != old.get(*k))
            .cloned()
            .collect();
        fields.sort();
        fields.dedup();
        fields
    }

    /// The profile without credentials, for responses, events and logs.
    pub fn redacted(&self) -> serde_json::Value {
        let Self::S3(s3) = self;
        let mut value = serde_json::to_value(self).expect("profiles serialize");
        if let Some(map) = value.as_object_mut() {
            map.remove("secret-access-key");
            map.remove("access-key-id");
            if let Some(sts) = map.get_mut("sts").and_then(|s| s.as_object_mut()) {
                sts.remove("external-id");
            }
        }
        let secret = s3.secret_access_key.expose();
        debug_assert!(secret.is_empty() || !value.to_string().contains(secret));
        value
    }

    pub fn s3(&self) -> &S3Profile {
        let Self::S3(s3) = self;
        s3
    }

    fn check(&self) -> Result<(), String> {
        let s3 = self.s3();
        if let Some(endpoint) = &s3.endpoint {
            check_endpoint(endpoint, "endpoint")?;
        }
        if s3.region.trim().is_empty() {
            return Err("invalid storage profile: 'region' must not be empty".into());
        }
        if s3.access_key_id.is_empty() || s3.secret_access_key.expose().is_empty() {
            return Err(
                "invalid storage profile: 'access-key-id' and 'secret-access-key' must not be empty"
                    .into(),
            );
        }
        match (s3.credential_mode, &s3.sts) {
            (CredentialMode::Vended, None) => {
                return Err(
                    "invalid storage profile: credential-mode 'vended' needs 'sts' with a 'role-arn'"
                        .into(),
                );
            }
            (CredentialMode::Vended, Some(sts)) => {
                if sts.role_arn.trim().is_empty() {
                    return Err("invalid storage profile: 'sts.role-arn' must not be empty".into());
                }
                if let Some(endpoint) = &sts.endpoint {
                    check_endpoint(endpoint, "sts.endpoint")?;
                }
                if !(MIN_SESSION..=MAX_SESSION).contains(&sts.session_duration) {
                    return Err(format!(
                        "invalid storage profile: 'sts.session-duration' must be between 15m and 12h, not {}",
                        humantime::format_duration(sts.session_duration)
                    ));
                }
            }
            (_, Some(_)) => {
                return Err(format!(
                    "invalid storage profile: 'sts' is only used with credential-mode 'vended', not '{}'",
                    s3.credential_mode.as_str()
                ));
            }
            _ => {}
        }
        Ok(())
    }
}

/// How the secret of a stored profile is kept, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredSecrets {
    /// In plain text.
    Plain,
    /// Sealed with a secrets key; `current`: with the key that seals now.
    Sealed { key_id: String, current: bool },
    /// It cannot be opened, for this reason (the profile is held with an empty secret).
    Unreadable(String),
}

/// The associated data of a warehouse's sealed secret: where it belongs.
fn secret_place(warehouse_id: &str) -> String {
    format!("warehouse {warehouse_id} storage secret-access-key")
}

fn check_endpoint(raw: &str, field: &str) -> Result<(), String> {
    match url::Url::parse(raw) {
        Ok(url)
            if matches!(url.scheme(), "http" | "https")
                && url.host().is_some()
                && url.username().is_empty()
                && url.password().is_none()
                && url.query().is_none() =>
        {
            Ok(())
        }
        _ => Err(format!(
            "invalid storage profile: '{field}' must be an http or https URL without credentials, not '{}'",
            raw.escape_debug()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile() -> serde_json::Value {
        serde_json::json!({
            "type": "s3", "endpoint": "http://127.0.0.1:8333", "region": "us-east-1",
            "path-style-access": true, "access-key-id": "AKIDEXAMPLE",
            "secret-access-key": "very-secret-value", "credential-mode": "vended",
            "sts": {"role-arn": "arn:aws:iam::role/TableAccessRole", "session-duration": "1h",
                    "partition": "aws-cn"},
            "kms-key-arn": null
        })
    }

    #[test]
    fn profiles_parse_and_round_trip_through_the_stored_form() {
        let parsed = StorageProfile::parse(profile()).unwrap();
        let s3 = parsed.s3();
        assert_eq!(s3.credential_mode, CredentialMode::Vended);
        assert_eq!(s3.sts.as_ref().unwrap().partition, Partition::AwsCn);
        assert_eq!(
            s3.sts.as_ref().unwrap().session_duration,
            Duration::from_secs(3600)
        );
        let stored = parsed.to_stored_json(&SecretKeys::none(), "w1");
        assert_eq!(
            StorageProfile::from_stored_json(&stored, &SecretKeys::none(), "w1").unwrap(),
            (parsed.clone(), StoredSecrets::Plain)
        );
        // Sealed: the stored form holds no secret; it opens for its warehouse with the key.
        let keys = SecretKeys::from_material(b"0123456789abcdef0123456789abcdef", &[]);
        let sealed = parsed.to_stored_json(&keys, "w1");
        assert!(!sealed.contains("very-secret-value"), "{sealed}");
        let (back, state) = StorageProfile::from_stored_json(&sealed, &keys, "w1").unwrap();
        assert_eq!(back, parsed);
        assert!(matches!(state, StoredSecrets::Sealed { current: true, .. }));
        // Without the key: the profile without its secret, and why.
        let (back, state) =
            StorageProfile::from_stored_json(&sealed, &SecretKeys::none(), "w1").unwrap();
        assert_eq!(back.s3().secret_access_key.expose(), "");
        assert_eq!(back.redacted(), parsed.redacted());
        let StoredSecrets::Unreadable(why) = state else {
            panic!("unreadable: {state:?}")
        };
        assert!(why.contains(keys.current_id().unwrap()), "{why}");
    }

    #[test]
    fn changed_fields_name_fields_only() {
        let old = StorageProfile::parse(profile()).unwrap();
        let mut value = profile();
        value["secret-access-key"] = serde_json::json!("rotated-secret");
        value["region"] = serde_json::json!("eu-west-1");
        let new = StorageProfile::parse(value).unwrap();
        assert_eq!(
            new.changed_fields(&old),
            vec!["region".to_owned(), "secret-access-key".to_owned()]
        );
    }

    #[test]
    fn secrets_stay_out_of_debug_and_redacted_forms() {
        let parsed = StorageProfile::parse(profile()).unwrap();
        assert!(!format!("{parsed:?}").contains("very-secret-value"));
        let shown = parsed.redacted().to_string();
        assert!(!shown.contains("very-secret-value"), "{shown}");
        assert!(!shown.contains("AKIDEXAMPLE"), "{shown}");
        assert!(shown.contains("\"credential-mode\":\"vended\""), "{shown}");
    }

    #[test]
    fn invalid_profiles_name_the_field() {
        let cases: [(&str, serde_json::Value); 6] = [
            ("gcs", serde_json::json!({"type": "gcs"})),
            ("'region'", serde_json::json!({"region": " "})),
            ("sts", serde_json::json!({"sts": null})),
            (
                "session-duration",
                serde_json::json!({"sts": {"role-arn": "r", "session-duration": "5m"}}),
            ),
            ("endpoint", serde_json::json!({"endpoint": "ftp://x"})),
            ("bogus", serde_json::json!({"bogus": 1})),
        ];
        for (needle, patch) in cases {
            let mut value = profile();
            for (k, v) in patch.as_object().unwrap() {
                value[k] = v.clone();
            }
            let err = StorageProfile::parse(value).unwrap_err();
            assert!(err.contains(needle), "{needle}: {err}");
            assert!(!err.contains("very-secret-value"), "{err}");
        }
    }
}
