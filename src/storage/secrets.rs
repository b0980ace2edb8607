//! Secrets at rest: the secret values of storage profiles are sealed with AES-256-GCM (ring,
//! the crypto the server already uses for TLS) under a key the operator supplies
//! (`--secrets-key-file`), before they reach the database.
//!
//! A key file holds at least 32 bytes (for instance `openssl rand -base64 48`); the AES key
//! is derived from its content with HKDF-SHA256, and its id (16 hex digits) from a SHA-256 of
//! the content, so a key is named without being shown. A sealed value is stored as
//!
//! ```json
//! {"sealed": 1, "key-id": "3f1c…", "nonce": "<base64>", "ciphertext": "<base64, with the tag>"}
//! ```
//!
//! with a random 96-bit nonce, and the place the secret belongs to (warehouse id and field)
//! as associated data: a sealed value copied into another warehouse's row does not open.
//! Keys rotate: values are sealed with the current key, and opened with the current key or
//! any previous one (`--secrets-previous-key-files`); `serac secrets rotate` seals every
//! stored value with the current key. Without a key, values are stored as plain strings
//! (and the server says so loudly at start).

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use serde::{Deserialize, Serialize};

/// The version of the sealed form this build writes (and the only one it reads).
const SEALED_VERSION: u32 = 1;
/// The shortest key file accepted.
const MIN_KEY_BYTES: usize = 32;
const HKDF_SALT: &[u8] = b"serac secrets at rest v1";
const KEY_ID_LABEL: &[u8] = b"serac secrets key id v1\0";

/// One key: its id and the AEAD key derived from the file.
struct SecretKey {
    id: String,
    key: LessSafeKey,
}

impl SecretKey {
    fn from_material(material: &[u8]) -> Self {
        let prk = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, HKDF_SALT).extract(material);
        let okm = prk
            .expand(&[b"aes-256-gcm"], &AES_256_GCM)
            .expect("HKDF-SHA256 yields 32 bytes");
        let key = LessSafeKey::new(UnboundKey::from(okm));
        let mut labelled = KEY_ID_LABEL.to_vec();
        labelled.extend_from_slice(material);
        let digest = ring::digest::digest(&ring::digest::SHA256, &labelled);
        let id = digest.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Self { id, key }
    }

    fn read(path: &Path, flag: &str) -> Result<Self, String> {
        let content = std::fs::read(path)
            .map_err(|e| format!("{flag}: cannot read '{}': {e}", path.display()))?;
        let material = content.trim_ascii_end();
        if material.len() < MIN_KEY_BYTES {
            return Err(format!(
                "{flag}: '{}' holds {} bytes; a secrets key needs at least {MIN_KEY_BYTES} \
                 (e.g. `openssl rand -base64 48 > key`)",
                path.display(),
                material.len()
            ));
        }
        Ok(Self::from_material(material))
    }
}

/// The keys that seal and open stored secrets: the current one (sealing and opening) and
/// previous ones (opening only). Debug shows the key ids only.
#[derive(Default)]
pub struct SecretKeys {
    current: Option<SecretKey>,
    previous: Vec<SecretKey>,
}

impl fmt::Debug for SecretKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKeys")
            .field("current", &self.current_id())
            .field(
                "previous",
                &self.previous.iter().map(|k| &k.id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// How a stored secret is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StoredSecret {
    /// In plain text (no key was configured when it was written).
    Plain(String),
    Sealed(Sealed),
}

/// A sealed secret, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Sealed {
    /// The version of this form.
    pub sealed: u32,
    pub key_id: String,
    pub nonce: String,
    pub ciphertext: String,
}

/// Why a stored secret cannot be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error(
        "it is encrypted with the secrets key '{key_id}', which this server does not have ({held}); \
         give that key with --secrets-key-file or --secrets-previous-key-files (SERAC_SECRETS_KEY_FILE, \
         SERAC_SECRETS_PREVIOUS_KEY_FILES)"
    )]
    UnknownKey { key_id: String, held: String },
    #[error(
        "it does not decrypt with the secrets key '{key_id}': the stored value was altered or \
         copied from another warehouse"
    )]
    Corrupt { key_id: String },
    #[error("it is stored in a sealed form of version {0}, which this server does not know")]
    UnknownVersion(u32),
}

impl SecretKeys {
    /// No key: secrets are stored in plain text.
    pub fn none() -> Self {
        Self::default()
    }

    /// The keys of `--secrets-key-file` and `--secrets-previous-key-files`.
    pub fn from_files(current: Option<&Path>, previous: &[PathBuf]) -> Result<Self, String> {
        if current.is_none() && !previous.is_empty() {
            return Err(
                "SERAC_SECRETS_PREVIOUS_KEY_FILES is set but SERAC_SECRETS_KEY_FILE \
                 (--secrets-key-file) is not: previous keys only open what the current key \
                 replaces"
                    .into(),
            );
        }
        Ok(Self {
            current: current
                .map(|p| SecretKey::read(p, "--secrets-key-file"))
                .transpose()?,
            previous: previous
                .iter()
                .map(|p| SecretKey::read(p, "--secrets-previous-key-files"))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Keys from their material, for tests.
    pub fn from_material(current: &[u8], previous: &[&[u8]]) -> Self {
        Self {
            current: Some(SecretKey::from_material(current)),
            previous: previous
                .iter()
                .map(|m| SecretKey::from_material(m))
                .collect(),
        }
    }

    /// The id of the key that seals, if there is one.
    pub fn current_id(&self) -> Option<&str> {
        self.current.as_ref().map(|k| k.id.as_str())
    }

    /// Seals `plain` for `place` (where it is stored, e.g. a warehouse id and field) with the
    /// current key; without one, keeps it in plain text.
    pub fn seal(&self, plain: &str, place: &str) -> StoredSecret {
        let Some(current) = &self.current else {
            return StoredSecret::Plain(plain.to_owned());
        };
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).expect("the operating system's random source works");
        let mut data = plain.as_bytes().to_vec();
        current
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(place.as_bytes()),
                &mut data,
            )
            .expect("AES-GCM seals any secret of a profile");
        StoredSecret::Sealed(Sealed {
            sealed: SEALED_VERSION,
            key_id: current.id.clone(),
            nonce: BASE64.encode(nonce),
            ciphertext: BASE64.encode(data),
        })
    }

    /// The plain value of a stored secret of `place`.
    pub fn open(&self, stored: &StoredSecret, place: &str) -> Result<String, OpenError> {
        let sealed = match stored {
            StoredSecret::Plain(plain) => return Ok(plain.clone()),
            StoredSecret::Sealed(sealed) => sealed,
        };
        if sealed.sealed != SEALED_VERSION {
            return Err(OpenError::UnknownVersion(sealed.sealed));
        }
        let key = self
            .current
            .iter()
            .chain(&self.previous)
            .find(|k| k.id == sealed.key_id)
            .ok_or_else(|| OpenError::UnknownKey {
                key_id: sealed.key_id.clone(),
                held: self.held(),
            })?;
        let corrupt = || OpenError::Corrupt {
            key_id: sealed.key_id.clone(),
        };
        let nonce: [u8; NONCE_LEN] = BASE64
            .decode(&sealed.nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or_else(corrupt)?;
        let mut data = BASE64.decode(&sealed.ciphertext).map_err(|_| corrupt())?;
        let plain = key
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(place.as_bytes()),
                &mut data,
            )
            .map_err(|_| corrupt())?;
        String::from_utf8(plain.to_vec()).map_err(|_| corrupt())
    }

    /// Whether `stored` is kept as this server would write it now (sealed with the current
    /// key, or plain without a key).
    pub fn is_current(&self, stored: &StoredSecret) -> bool {
        match (stored, &self.current) {
            (StoredSecret::Plain(_), None) => true,
            (StoredSecret::Sealed(sealed), Some(current)) => sealed.key_id == current.id,
            _ => false,
        }
    }

    /// The key ids held, for messages.
    fn held(&self) -> String {
        let ids: Vec<String> = self
            .current
            .iter()
            .chain(&self.previous)
            .map(|k| format!("'{}'", k.id))
            .collect();
        if ids.is_empty() {
            "it has no secrets key".into()
        } else {
            format!("it has {}", ids.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &[u8] = b"key material A, at least thirty-two bytes long";
    const B: &[u8] = b"key material B, at least thirty-two bytes long";

    #[test]
    fn sealed_secrets_open_with_the_key_and_place_they_were_sealed_for() {
        let keys = SecretKeys::from_material(A, &[]);
        let stored = keys.seal("the-secret", "warehouse w1 secret-access-key");
        let text = serde_json::to_string(&stored).unwrap();
        assert!(!text.contains("the-secret"), "{text}");
        let back: StoredSecret = serde_json::from_str(&text).unwrap();
        assert_eq!(
            keys.open(&back, "warehouse w1 secret-access-key").unwrap(),
            "the-secret"
        );
        // Two seals of one value differ (random nonces).
        assert_ne!(
            stored,
            keys.seal("the-secret", "warehouse w1 secret-access-key")
        );
        // Another place: does not open.
        assert!(matches!(
            keys.open(&back, "warehouse w2 secret-access-key"),
            Err(OpenError::Corrupt { .. })
        ));
        // An altered ciphertext does not open.
        let StoredSecret::Sealed(mut sealed) = back.clone() else {
            panic!("sealed")
        };
        let mut bytes = BASE64.decode(&sealed.ciphertext).unwrap();
        bytes[0] ^= 1;
        sealed.ciphertext = BASE64.encode(bytes);
        assert!(matches!(
            keys.open(
                &StoredSecret::Sealed(sealed),
                "warehouse w1 secret-access-key"
            ),
            Err(OpenError::Corrupt { .. })
        ));
    }

    #[test]
    fn rotation_opens_with_previous_keys_and_names_missing_ones() {
        let old = SecretKeys::from_material(A, &[]);
        let stored = old.seal("s", "p");
        let rotated = SecretKeys::from_material(B, &[A]);
        assert_eq!(rotated.open(&stored, "p").unwrap(), "s");
        assert!(!rotated.is_current(&stored));
        assert!(rotated.is_current(&rotated.seal("s", "p")));
        let other = SecretKeys::from_material(B, &[]);
        let err = other.open(&stored, "p").unwrap_err().to_string();
        assert!(err.contains(old.current_id().unwrap()), "{err}");
        assert!(err.contains("--secrets-key-file"), "{err}");
        let err = SecretKeys::none()
            .open(&stored, "p")
            .unwrap_err()
            .to_string();
        assert!(err.contains("has no secrets key"), "{err}");
        // Plain values open with any keys, and are current only without a key.
        let plain = SecretKeys::none().seal("s", "p");
        assert_eq!(plain, StoredSecret::Plain("s".into()));
        assert_eq!(rotated.open(&plain, "p").unwrap(), "s");
        assert!(!rotated.is_current(&plain));
    }

    #[test]
    fn key_files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short");
        std::fs::write(&short, "too short\n").unwrap();
        let err = SecretKeys::from_files(Some(&short), &[]).unwrap_err();
        assert!(err.contains("at least 32"), "{err}");
        let good = dir.path().join("good");
        std::fs::write(&good, [A, b"\n"].concat()).unwrap();
        let keys = SecretKeys::from_files(Some(&good), &[]).unwrap();
        // The trailing newline is not part of the key.
        assert_eq!(
            keys.current_id(),
            SecretKeys::from_material(A, &[]).current_id()
        );
        let err = SecretKeys::from_files(None, &[good]).unwrap_err();
        assert!(err.contains("SERAC_SECRETS_KEY_FILE"), "{err}");
    }
}
