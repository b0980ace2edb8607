//! Authentication: turns a request's bearer token into the [`Principal`] it acts for, and
//! issues tokens by the OAuth2 client credentials flow (`POST /v1/oauth/tokens`).
//!
//! Tokens are JWTs signed with HS256 by a key every replica shares: from a file
//! (`--token-signing-key-file`) or made at first start and stored in the database. A token
//! names its key (`kid`), so keys can be added while older tokens stay valid; an unknown
//! `kid` makes the verifier reload the stored keys once. Verifying a token costs a few
//! microseconds and no database round trip; the principal's name and admin flag travel in
//! the token. Client secrets are stored only as argon2id hashes ([`secrets`]).
//!
//! With `--oidc-issuer`, bearer JWTs of an external identity provider are accepted too
//! ([`oidc`]). Every verified JWT is remembered until it expires ([`token_cache`]), so a
//! client's repeated requests with one token cost a hash lookup.

pub mod oidc;
pub mod secrets;
pub mod token_cache;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::catalog::Principal;
use crate::store::{PrincipalRow, SigningKeyRow, Store, StoreError, now_ms};

/// `--auth`: whether requests must carry a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// No authentication: every request acts as `anonymous`, allowed everything.
    None,
    /// Bearer tokens issued by `POST /v1/oauth/tokens` (client credentials).
    Oauth2,
}

/// The issuer and audience of Serac's own tokens.
const ISSUER: &str = "serac";

/// Settings of authentication, from the configuration.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub mode: AuthMode,
    pub token_lifetime: Duration,
    pub signing_key_file: Option<PathBuf>,
    /// `SERAC_BOOTSTRAP_CLIENT_ID` and `SERAC_BOOTSTRAP_CLIENT_SECRET`.
    pub bootstrap: Option<(String, String)>,
    /// An external identity provider whose tokens are accepted too (`--oidc-issuer`).
    pub oidc: Option<oidc::OidcSettings>,
}

/// Why a request's credentials were not accepted (a 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("this request needs a bearer token (Authorization: Bearer <token>)")]
    Missing,
    #[error("the bearer token is not valid: {0}")]
    Invalid(String),
    #[error("the bearer token has expired; obtain a new one")]
    Expired,
    #[error("{0}")]
    Unavailable(String),
}

/// Why a token request failed, in OAuth2's words (RFC 6749, section 5.2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("the client id or secret is wrong")]
    InvalidClient,
    #[error("grant type '{0}' is not supported; use client_credentials")]
    UnsupportedGrantType(String),
    #[error("{0}")]
    Unavailable(String),
}

/// A token just issued.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub access_token: String,
    pub expires_in: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// The principal's id.
    sub: String,
    /// The principal's name.
    name: String,
    #[serde(default)]
    admin: bool,
    iss: String,
    aud: String,
    iat: i64,
    exp: i64,
}

struct Keys {
    /// The key new tokens are signed with.
    signing: (String, EncodingKey),
    by_kid: HashMap<String, DecodingKey>,
}

/// Issues and verifies tokens.
pub struct Authenticator {
    mode: AuthMode,
    store: Arc<dyn Store>,
    token_lifetime: Duration,
    keys: RwLock<Keys>,
    /// A key from a file is the only key: nothing is reloaded from the database.
    from_file: bool,
    /// API keys verified lately: (key id, presented secret) to the stored hash it matched.
    /// The key's row is still read on every request (revocation and expiry hold at once);
    /// only the argon2 verification is skipped while the stored hash is the same.
    verified_keys: moka::sync::Cache<(String, String), String>,
    /// Keys whose last-used time was written in the last minute.
    touched_keys: moka::sync::Cache<String, ()>,
    /// When an unknown `kid` last made this replica read the stored keys: forged tokens
    /// with made-up kids cost at most one query per [`KEY_RELOAD_INTERVAL`].
    last_key_reload: std::sync::Mutex<Option<std::time::Instant>>,
    /// The external identity provider, with `--oidc-issuer`.
    oidc: Option<oidc::Oidc>,
    /// JWTs verified lately (Serac's and the provider's), until they expire.
    verified_tokens: token_cache::TokenCache,
}

/// See `Authenticator::last_key_reload`.
const KEY_RELOAD_INTERVAL: Duration = Duration::from_secs(5);

/// The prefix of API keys: `serac_<id>_<secret>`.
pub const API_KEY_PREFIX: &str = "serac_";

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Prepares authentication: the signing key (read, or made and stored at first start)
    /// and the bootstrap principal.
    pub async fn start(store: Arc<dyn Store>, settings: &AuthSettings) -> Result<Self, String> {
        let (keys, from_file) = match &settings.signing_key_file {
            Some(path) => {
                let secret = std::fs::read(path).map_err(|e| {
                    format!(
                        "--token-signing-key-file: cannot read '{}': {e}",
                        path.display()
                    )
                })?;
                let secret = trim_ascii_end(&secret);
                if secret.len() < 32 {
                    return Err(format!(
                        "--token-signing-key-file: '{}' holds {} bytes; a signing key needs at least 32",
                        path.display(),
                        secret.len()
                    ));
                }
                (keys_of(&[("file".to_owned(), secret.to_vec())])?, true)
            }
            None if settings.mode == AuthMode::Oauth2 => {
                (stored_keys(store.as_ref()).await?, false)
            }
            // Without authentication no token is ever issued; an unusable key stands in.
            None => (
                keys_of(&[("none".to_owned(), secrets::random_bytes::<32>()?.to_vec())])?,
                true,
            ),
        };
        let oidc = match &settings.oidc {
            Some(oidc) if settings.mode == AuthMode::Oauth2 => {
                Some(oidc::Oidc::start(oidc.clone()).await?)
            }
            _ => None,
        };
        let auth = Self {
            mode: settings.mode,
            store,
            token_lifetime: settings.token_lifetime,
            keys: RwLock::new(keys),
            from_file,
            verified_keys: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(600))
                .build(),
            touched_keys: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
            last_key_reload: std::sync::Mutex::new(None),
            oidc,
            verified_tokens: token_cache::TokenCache::new(),
        };
        if settings.mode == AuthMode::Oauth2
            && let Some((client_id, secret)) = &settings.bootstrap
        {
            auth.bootstrap(client_id, secret).await?;
        }
        Ok(auth)
    }

    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// Creates the first principal, an admin, unless some principal exists.
    async fn bootstrap(&self, client_id: &str, secret: &str) -> Result<(), String> {
        principals::validate_name(client_id)
            .map_err(|e| format!("SERAC_BOOTSTRAP_CLIENT_ID: {e}"))?;
        if secret.len() < 16 {
            return Err("SERAC_BOOTSTRAP_CLIENT_SECRET must be at least 16 characters".into());
        }
        let row = PrincipalRow {
            id: uuid::Uuid::now_v7().to_string(),
            name: client_id.to_owned(),
            client_id: client_id.to_owned(),
            secret_hash: hash_blocking(secret.to_owned()).await?,
            admin: true,
            external: false,
            created_at_ms: now_ms(),
        };
        match self.store.create_principal(&row, true).await {
            Ok(true) => {
                tracing::info!(principal = %row.name, "bootstrap: created the admin principal");
                Ok(())
            }
            Ok(false) | Err(StoreError::AlreadyExists) => Ok(()),
            Err(e) => Err(format!("bootstrap principal: {e}")),
        }
    }

    /// The client credentials flow: a token for the principal whose client id and secret
    /// these are.
    pub async fn issue(&self, client_id: &str, secret: &str) -> Result<IssuedToken, TokenError> {
        let found = self
            .store
            .principal_by_client_id(client_id)
            .await
            .map_err(|e| TokenError::Unavailable(e.to_string()))?
            // External principals sign in through their identity provider only.
            .filter(|p| !p.external);
        let hash = found.as_ref().map_or_else(
            || secrets::decoy_hash().to_owned(),
            |p| p.secret_hash.clone(),
        );
        let matches = secrets::verify_bounded(secret.to_owned(), hash).await;
        let principal = match found {
            Some(p) if matches => p,
            _ => return Err(TokenError::InvalidClient),
        };
        let now = now_ms() / 1000;
        let lifetime = self.token_lifetime.as_secs().max(1);
        let claims = Claims {
            sub: principal.id,
            name: principal.name,
            admin: principal.admin,
            iss: ISSUER.into(),
            aud: ISSUER.into(),
            iat: now,
            exp: now + i64::try_from(lifetime).unwrap_or(i64::MAX / 2),
        };
        let keys = self.keys.read().expect("keys lock");
        let (kid, key) = &keys.signing;
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.clone());
        let access_token = jsonwebtoken::encode(&header, &claims, key)
            .map_err(|e| TokenError::Unavailable(format!("cannot sign a token: {e}")))?;
        Ok(IssuedToken {
            access_token,
            expires_in: lifetime,
        })
    }

    /// Whether an unknown `kid` may make this replica read the stored keys now.
    fn may_reload_keys(&self) -> bool {
        let mut last = self.last_key_reload.lock().expect("key reload lock");
        let now = std::time::Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < KEY_RELOAD_INTERVAL) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// The principal a bearer token (a JWT Serac issued, an API key, or a JWT of the
    /// OpenID Connect provider) stands for, for a request that arrived at `arrived`.
    pub async fn verify(
        &self,
        token: &str,
        arrived: std::time::Instant,
    ) -> Result<Arc<Principal>, AuthError> {
        if let Some(key) = token.strip_prefix(API_KEY_PREFIX) {
            return self.verify_api_key(key, arrived).await;
        }
        if let Some(principal) = self.verified_tokens.get(token) {
            return Ok(principal);
        }
        let (principal, expires_at) = match &self.oidc {
            Some(oidc) if oidc.claims(token) => oidc.principal(self.store.as_ref(), token).await?,
            _ => self.verify_jwt(token).await?,
        };
        self.verified_tokens
            .insert(token, principal.clone(), expires_at);
        Ok(principal)
    }

    /// A JWT Serac issued: the principal and the token's `exp`.
    async fn verify_jwt(&self, token: &str) -> Result<(Arc<Principal>, i64), AuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| AuthError::Invalid(format!("not a JWT ({e})")))?;
        if header.alg != Algorithm::HS256 {
            return Err(AuthError::Invalid(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| AuthError::Invalid("the token names no key (kid)".into()))?;
        let known = self
            .keys
            .read()
            .expect("keys lock")
            .by_kid
            .contains_key(&kid);
        if !known && !self.from_file && self.may_reload_keys() {
            // A key another replica made since this one loaded its keys.
            let reloaded = stored_keys(self.store.as_ref())
                .await
                .map_err(AuthError::Unavailable)?;
            let mut keys = self.keys.write().expect("keys lock");
            keys.by_kid = reloaded.by_kid;
        }
        let keys = self.keys.read().expect("keys lock");
        let key = keys
            .by_kid
            .get(&kid)
            .ok_or_else(|| AuthError::Invalid(format!("unknown signing key '{kid}'")))?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<Claims>(token, key, &validation).map_err(|e| match e
            .kind()
        {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
            _ => AuthError::Invalid(e.to_string()),
        })?;
        let principal = Arc::new(Principal {
            id: Some(data.claims.sub),
            name: data.claims.name,
            // Admin or not is read from the database at each decision (see catalog::authz).
            unrestricted: false,
        });
        Ok((principal, data.claims.exp))
    }
}

impl Authenticator {
    /// Principals and API keys in the store this authenticator reads.
    pub fn principals(&self) -> principals::Principals<'_> {
        principals::Principals::new(self.store.as_ref())
    }
}

impl Authenticator {
    /// `<id>_<secret>` of an API key: one lookup by id, and one argon2 verification the first
    /// time (then remembered while the stored hash stays the same).
    async fn verify_api_key(
        &self,
        key: &str,
        arrived: std::time::Instant,
    ) -> Result<Arc<Principal>, AuthError> {
        let (id, secret) = key
            .split_once('_')
            .filter(|(id, secret)| !id.is_empty() && !secret.is_empty())
            .ok_or_else(|| AuthError::Invalid("a malformed API key".into()))?;
        let row = self
            .store
            .api_key(id, arrived)
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?
            .ok_or_else(|| AuthError::Invalid("unknown or revoked API key".into()))?;
        let now = now_ms();
        if row.expires_at_ms.is_some_and(|at| at <= now) {
            return Err(AuthError::Expired);
        }
        let cache_key = (id.to_owned(), secret.to_owned());
        if self.verified_keys.get(&cache_key).as_deref() != Some(row.secret_hash.as_str()) {
            let matches = secrets::verify_bounded(secret.to_owned(), row.secret_hash.clone()).await;
            if !matches {
                return Err(AuthError::Invalid("unknown or revoked API key".into()));
            }
            self.verified_keys
                .insert(cache_key, row.secret_hash.clone());
        }
        if !self.touched_keys.contains_key(id) {
            self.touched_keys.insert(id.to_owned(), ());
            let (store, id) = (self.store.clone(), id.to_owned());
            tokio::spawn(async move {
                if let Err(e) = store.touch_api_key(&id, now).await {
                    tracing::warn!(key = %id, error = %e, "could not record an API key's last use");
                }
            });
        }
        Ok(Arc::new(Principal {
            id: Some(row.principal_id),
            name: row.principal_name,
            unrestricted: false,
        }))
    }
}

/// Principals, for the command line (`serac principal ...`) and the management API.
pub mod principals {
    use super::*;

    pub use crate::store::PrincipalRow;

    /// Why a principal or API key could not be made or changed.
    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    pub enum PrincipalError {
        #[error("{0}")]
        Invalid(String),
        #[error("{0}")]
        NotFound(String),
        #[error("{0}")]
        AlreadyExists(String),
        #[error("{0}")]
        Failed(String),
    }

    impl From<StoreError> for PrincipalError {
        fn from(e: StoreError) -> Self {
            Self::Failed(e.to_string())
        }
    }

    fn no_such_principal(name: &str) -> PrincipalError {
        PrincipalError::NotFound(format!("principal '{name}' does not exist"))
    }

    /// A principal just created or given a new secret: the secret is shown once.
    #[derive(Debug, Clone)]
    pub struct Credentials {
        pub name: String,
        pub client_id: String,
        pub client_secret: String,
    }

    /// Principals and API keys, for the command line and the management API.
    #[derive(Clone, Copy)]
    pub struct Principals<'a> {
        store: &'a dyn Store,
    }

    impl<'a> Principals<'a> {
        pub fn new(store: &'a dyn Store) -> Self {
            Self { store }
        }

        pub async fn create(&self, name: &str, admin: bool) -> Result<Credentials, PrincipalError> {
            validate_name(name).map_err(PrincipalError::Invalid)?;
            let client_id = uuid::Uuid::new_v4().simple().to_string();
            let client_secret = secrets::new_secret().map_err(PrincipalError::Failed)?;
            let row = PrincipalRow {
                id: uuid::Uuid::now_v7().to_string(),
                name: name.to_owned(),
                client_id: client_id.clone(),
                secret_hash: hash_blocking(client_secret.clone())
                    .await
                    .map_err(PrincipalError::Failed)?,
                admin,
                external: false,
                created_at_ms: now_ms(),
            };
            match self.store.create_principal(&row, false).await {
                Ok(_) => Ok(Credentials {
                    name: name.to_owned(),
                    client_id,
                    client_secret,
                }),
                Err(StoreError::AlreadyExists) => Err(PrincipalError::AlreadyExists(format!(
                    "principal '{name}' already exists"
                ))),
                Err(e) => Err(e.into()),
            }
        }

        /// A principal of the OpenID Connect provider (signs in with the provider's tokens,
        /// has no secret): made by an admin ahead of its first sign-in, so that it can be
        /// given roles, or at its first request.
        pub async fn create_external(
            &self,
            name: &str,
            admin: bool,
        ) -> Result<PrincipalRow, PrincipalError> {
            validate_name(name).map_err(PrincipalError::Invalid)?;
            let row = PrincipalRow {
                id: uuid::Uuid::now_v7().to_string(),
                name: name.to_owned(),
                // Never shown, and the token endpoint refuses external principals anyway.
                client_id: uuid::Uuid::new_v4().simple().to_string(),
                secret_hash: EXTERNAL_SECRET_HASH.to_owned(),
                admin,
                external: true,
                created_at_ms: now_ms(),
            };
            match self.store.create_principal(&row, false).await {
                Ok(_) => Ok(row),
                Err(StoreError::AlreadyExists) => Err(PrincipalError::AlreadyExists(format!(
                    "principal '{name}' already exists"
                ))),
                Err(e) => Err(e.into()),
            }
        }

        pub async fn list(&self) -> Result<Vec<PrincipalRow>, PrincipalError> {
            Ok(self.store.list_principals().await?)
        }

        pub async fn delete(&self, name: &str) -> Result<(), PrincipalError> {
            if self.store.delete_principal(name).await? {
                Ok(())
            } else {
                Err(no_such_principal(name))
            }
        }

        pub async fn list_api_keys(
            &self,
            principal: Option<&str>,
        ) -> Result<Vec<crate::store::ApiKeyRow>, PrincipalError> {
            Ok(self.store.list_api_keys(principal).await?)
        }

        /// Revokes a key: refused at once on every replica.
        pub async fn revoke_api_key(&self, id: &str) -> Result<(), PrincipalError> {
            if self.store.delete_api_key(id).await? {
                Ok(())
            } else {
                Err(PrincipalError::NotFound(format!(
                    "API key '{id}' does not exist"
                )))
            }
        }
    }

    /// The stored "hash" of an external principal's secret: not a PHC string, so no secret
    /// ever verifies against it.
    pub const EXTERNAL_SECRET_HASH: &str = "!external: signs in through the identity provider";

    /// 1 to 64 characters of A-Z, a-z, 0-9, '-', '_', '.' and '@' (a name shows in logs
    /// and events, and may be a client id).
    pub fn validate_name(name: &str) -> Result<(), String> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
        if ok {
            Ok(())
        } else {
            Err(format!(
                "principal name '{}' must be 1 to 64 characters of A-Z, a-z, 0-9, '-', '_', '.' and '@'",
                name.escape_debug()
            ))
        }
    }

    /// A new API key of a principal: its id and the whole key (shown once).
    #[derive(Debug, Clone)]
    pub struct NewApiKey {
        pub id: String,
        pub key: String,
        pub expires_at_ms: Option<i64>,
    }

    impl Principals<'_> {
        pub async fn create_api_key(
            &self,
            principal: &str,
            expires_in: Option<Duration>,
        ) -> Result<NewApiKey, PrincipalError> {
            let id: String = secrets::random_bytes::<8>()
                .map_err(PrincipalError::Failed)?
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let secret = secrets::new_secret().map_err(PrincipalError::Failed)?;
            let secret_hash = hash_blocking(secret.clone())
                .await
                .map_err(PrincipalError::Failed)?;
            // The lifetime counts from when the key is stored, after the (slow) hashing.
            let now = now_ms();
            let expires_at_ms = expires_in
                .map(|d| now.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)));
            let row = crate::store::ApiKeyRow {
                id: id.clone(),
                principal_id: String::new(),
                principal_name: principal.to_owned(),
                principal_admin: false,
                secret_hash,
                created_at_ms: now,
                expires_at_ms,
                last_used_at_ms: None,
            };
            match self.store.create_api_key(principal, &row).await {
                Ok(()) => Ok(NewApiKey {
                    key: format!("{API_KEY_PREFIX}{id}_{secret}"),
                    id,
                    expires_at_ms,
                }),
                Err(StoreError::MissingReference) => Err(no_such_principal(principal)),
                Err(e) => Err(e.into()),
            }
        }

        pub async fn rotate_secret(&self, name: &str) -> Result<Credentials, PrincipalError> {
            if self
                .store
                .principal_by_name(name)
                .await?
                .is_some_and(|p| p.external)
            {
                return Err(PrincipalError::Invalid(format!(
                    "principal '{name}' is external: it signs in through the identity provider and has no secret"
                )));
            }
            let client_secret = secrets::new_secret().map_err(PrincipalError::Failed)?;
            let hash = hash_blocking(client_secret.clone())
                .await
                .map_err(PrincipalError::Failed)?;
            let client_id = self
                .store
                .set_principal_secret(name, &hash)
                .await?
                .ok_or_else(|| no_such_principal(name))?;
            Ok(Credentials {
                name: name.to_owned(),
                client_id,
                client_secret,
            })
        }
    }
}

async fn hash_blocking(secret: String) -> Result<String, String> {
    secrets::hash_bounded(secret).await
}

/// The stored signing keys; the first start stores a new one.
async fn stored_keys(store: &dyn Store) -> Result<Keys, String> {
    let mut rows = store
        .signing_keys()
        .await
        .map_err(|e| format!("signing keys: {e}"))?;
    if rows.is_empty() {
        let row = SigningKeyRow {
            kid: uuid::Uuid::now_v7().to_string(),
            secret: base64::engine::general_purpose::STANDARD
                .encode(secrets::random_bytes::<32>()?),
            created_at_ms: now_ms(),
        };
        store
            .add_signing_key(&row)
            .await
            .map_err(|e| format!("cannot store a new signing key: {e}"))?;
        rows = store
            .signing_keys()
            .await
            .map_err(|e| format!("signing keys: {e}"))?;
    }
    let decoded = rows
        .into_iter()
        .map(|row| {
            base64::engine::general_purpose::STANDARD
                .decode(&row.secret)
                .map(|secret| (row.kid.clone(), secret))
                .map_err(|e| format!("stored signing key '{}' is not base64: {e}", row.kid))
        })
        .collect::<Result<Vec<_>, _>>()?;
    keys_of(&decoded)
}

/// Keys from (kid, secret) pairs, newest first: the first signs.
fn keys_of(secrets: &[(String, Vec<u8>)]) -> Result<Keys, String> {
    let (kid, secret) = secrets.first().ok_or("no signing key")?;
    let signing = EncodingKey::from_secret(secret).map_err(|e| format!("signing key: {e}"))?;
    let by_kid = secrets
        .iter()
        .map(|(kid, secret)| {
            DecodingKey::from_secret(secret)
                .map(|key| (kid.clone(), key))
                .map_err(|e| format!("signing key '{kid}': {e}"))
        })
        .collect::<Result<_, _>>()?;
    Ok(Keys {
        signing: (kid.clone(), signing),
        by_kid,
    })
}

fn trim_ascii_end(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    &bytes[..end]
}
