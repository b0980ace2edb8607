//! OpenID Connect: bearer JWTs issued by an external identity provider (Keycloak, Entra ID,
//! Okta, ...), verified against the provider's published signing keys, a JWK set read from a
//! URL (`--oidc-jwks-url`), a file (`--oidc-jwks-file`) or the `jwks_uri` of the issuer's
//! discovery document (`{issuer}/.well-known/openid-configuration`).
//!
//! Invariants:
//! - Only asymmetric algorithms (RS*, PS*, ES256/ES384, EdDSA) are accepted, and only with a
//!   key of their family (and of the algorithm the key declares, if it declares one): a token
//!   signed with HS256 by the bytes of a public key (algorithm confusion) or with `alg: none`
//!   never verifies. Symmetric keys of the set are never loaded.
//! - A token must name its key (`kid`), unless the set holds exactly one key.
//! - Issuer, audience and expiry are checked (`exp` is required), with [`LEEWAY_SECS`] of
//!   clock skew.
//! - A `kid` not in the set makes the replica read the set again (GET of the URL, or a new
//!   read of the file) at most once per [`REFRESH_INTERVAL`], so forged kids cannot turn into
//!   a flood of requests to the provider. A fetch has a timeout ([`FETCH_TIMEOUT`]) and a size
//!   limit ([`MAX_DOCUMENT_BYTES`]).
//! - The claim `--oidc-principal-claim` (default `sub`) names the principal. An identity seen
//!   for the first time gets an external principal (no secret, no admin); a principal of that
//!   name that signs in with a client secret is never taken over.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

use super::AuthError;
use super::principals::{PrincipalError, Principals, validate_name};
use crate::catalog::Principal;
use crate::store::Store;

/// An unknown `kid` reads the key set again at most this often (per replica).
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(5);
/// Clock skew allowed between the provider and this server, for `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 30;
/// How long a fetch of the discovery document or the key set may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest discovery document or key set accepted.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// The algorithms external tokens may be signed with.
const ASYMMETRIC: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Where the provider's signing keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// A URL serving the JWK set (`--oidc-jwks-url`).
    Url(String),
    /// A file holding the JWK set (`--oidc-jwks-file`), read again on an unknown `kid`.
    File(PathBuf),
    /// The `jwks_uri` of `{issuer}/.well-known/openid-configuration`.
    Discovery,
}

/// The identity provider, from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcSettings {
    /// The `iss` of the provider's tokens.
    pub issuer: String,
    /// The `aud` the provider's tokens must name (this server).
    pub audience: String,
    pub jwks: JwksSource,
    /// The claim whose value is the principal's name.
    pub principal_claim: String,
}

/// A signing key of the provider.
struct Key {
    kid: Option<String>,
    /// The algorithms this key may verify: its family's, or the one it declares.
    accepts: Vec<Algorithm>,
    decoding: DecodingKey,
}

#[derive(Default)]
struct RefreshState {
    /// When this replica last read the key set because of an unknown `kid`.
    last: Option<Instant>,
    /// The key set's URL, once discovered.
    discovered: Option<String>,
}

/// Verifies the provider's tokens.
pub struct Oidc {
    settings: OidcSettings,
    /// `None` for a key set from a file.
    http: Option<reqwest::Client>,
    keys: RwLock<Arc<Vec<Key>>>,
    /// Held while the key set is read again: requests with the same new `kid` wait for one
    /// read instead of each starting their own.
    refresh: tokio::sync::Mutex<RefreshState>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// What the provider's token says: who, and until when.
#[derive(Debug, Clone)]
pub struct Verified {
    pub name: String,
    /// `exp`, seconds since the epoch.
    pub expires_at: i64,
}

impl Oidc {
    /// Reads the key set. A file that cannot be read or holds no usable key stops the start;
    /// a provider that does not answer does not (its tokens are refused with 503 until it
    /// does, while Serac's own tokens and API keys keep working).
    pub async fn start(settings: OidcSettings) -> Result<Self, String> {
        let http = match settings.jwks {
            JwksSource::File(_) => None,
            _ => Some(
                reqwest::Client::builder()
                    .timeout(FETCH_TIMEOUT)
                    .connect_timeout(FETCH_TIMEOUT / 2)
                    .redirect(reqwest::redirect::Policy::limited(3))
                    .user_agent(concat!("serac/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|e| format!("OpenID Connect: cannot make an HTTP client: {e}"))?,
            ),
        };
        let oidc = Self {
            settings,
            http,
            keys: RwLock::new(Arc::new(Vec::new())),
            refresh: tokio::sync::Mutex::new(RefreshState::default()),
        };
        let mut state = oidc.refresh.lock().await;
        match oidc.load(&mut state).await {
            Ok(keys) => {
                tracing::info!(
                    issuer = %oidc.settings.issuer,
                    keys = keys.len(),
                    "OpenID Connect: read the provider's signing keys"
                );
                *oidc.keys.write().expect("keys lock") = Arc::new(keys);
            }
            Err(e) if matches!(oidc.settings.jwks, JwksSource::File(_)) => {
                return Err(format!("SERAC_OIDC_JWKS_FILE: {e}"));
            }
            Err(e) => tracing::warn!(
                issuer = %oidc.settings.issuer,
                error = %e,
                "OpenID Connect: cannot read the provider's signing keys yet; its tokens are \
                 refused until it answers"
            ),
        }
        drop(state);
        Ok(oidc)
    }

    pub fn issuer(&self) -> &str {
        &self.settings.issuer
    }

    /// Whether a bearer token is for this provider rather than one of Serac's own: its `iss`
    /// is the provider's, or it is signed with an asymmetric algorithm (Serac signs with
    /// HS256 only), so that a token of another issuer is refused for its issuer. Nothing is
    /// verified here.
    pub fn claims(&self, token: &str) -> bool {
        if jsonwebtoken::decode_header(token).is_ok_and(|h| ASYMMETRIC.contains(&h.alg)) {
            return true;
        }
        #[derive(Deserialize)]
        struct Issuer {
            iss: Option<String>,
        }
        token
            .split('.')
            .nth(1)
            .and_then(|payload| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(payload)
                    .ok()
            })
            .and_then(|json| serde_json::from_slice::<Issuer>(&json).ok())
            .and_then(|claims| claims.iss)
            .is_some_and(|iss| iss == self.settings.issuer)
    }

    /// Verifies a token of the provider and finds (or makes) the principal it names.
    pub async fn principal(
        &self,
        store: &dyn Store,
        token: &str,
    ) -> Result<(Arc<Principal>, i64), AuthError> {
        let verified = self.verify(token).await?;
        let principal = external_principal(store, &self.settings, &verified.name).await?;
        Ok((principal, verified.expires_at))
    }

    /// Checks a token's signature and claims; what it names is not looked up.
    pub async fn verify(&self, token: &str) -> Result<Verified, AuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| AuthError::Invalid(format!("not a JWT ({e})")))?;
        if !ASYMMETRIC.contains(&header.alg) {
            return Err(AuthError::Invalid(format!(
                "algorithm {:?} is not accepted for tokens of '{}': they must be signed with \
                 RS256/384/512, PS256/384/512, ES256, ES384 or EdDSA",
                header.alg, self.settings.issuer
            )));
        }
        let key = self.key(header.kid.as_deref(), header.alg).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        let claims =
            jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &key, &validation)
                .map_err(|e| self.describe(&e))?
                .claims;
        let claim = &self.settings.principal_claim;
        let name = claims
            .get(claim)
            .and_then(Value::as_str)
            .ok_or_else(|| {
                AuthError::Invalid(format!(
                    "the token has no string claim '{claim}' to name its principal"
                ))
            })?
            .to_owned();
        let expires_at = claims
            .get("exp")
            .and_then(|exp| exp.as_i64().or_else(|| exp.as_f64().map(|f| f as i64)))
            .ok_or_else(|| AuthError::Invalid("the token's 'exp' is not a number".into()))?;
        Ok(Verified { name, expires_at })
    }

    /// A failed check in words that say what is wrong, never quoting the token.
    fn describe(&self, err: &jsonwebtoken::errors::Error) -> AuthError {
        use jsonwebtoken::errors::ErrorKind as K;
        let msg = match err.kind() {
            K::ExpiredSignature => return AuthError::Expired,
            K::InvalidIssuer => format!(
                "wrong issuer: only tokens of '{}' are accepted",
                self.settings.issuer
            ),
            K::InvalidAudience => format!(
                "wrong audience: the token must name '{}' in 'aud'",
                self.settings.audience
            ),
            K::InvalidSignature => "bad signature".to_owned(),
            K::ImmatureSignature => "the token is not valid yet (nbf)".to_owned(),
            K::InvalidAlgorithm => "the algorithm does not match the signing key".to_owned(),
            K::MissingRequiredClaim(claim) => format!("the token has no '{claim}' claim"),
            _ => format!("cannot be verified ({err})"),
        };
        AuthError::Invalid(msg)
    }

    /// The key that verifies a token with this `kid` and algorithm; the set is read again
    /// (at most once per [`REFRESH_INTERVAL`]) when it has no such key.
    async fn key(&self, kid: Option<&str>, alg: Algorithm) -> Result<DecodingKey, AuthError> {
        if let Some(found) = self.find(kid, alg) {
            return found;
        }
        let mut state = self.refresh.lock().await;
        // Another request may have read the set while this one waited.
        if let Some(found) = self.find(kid, alg) {
            return found;
        }
        let now = Instant::now();
        if state
            .last
            .is_none_or(|at| now.duration_since(at) >= REFRESH_INTERVAL)
        {
            state.last = Some(now);
            let keys = self.load(&mut state).await.map_err(|e| {
                tracing::warn!(issuer = %self.settings.issuer, error = %e, "OpenID Connect: cannot read the provider's signing keys");
                AuthError::Unavailable(format!(
                    "the signing keys of '{}' cannot be read: {e}",
                    self.settings.issuer
                ))
            })?;
            *self.keys.write().expect("keys lock") = Arc::new(keys);
            if let Some(found) = self.find(kid, alg) {
                return found;
            }
        }
        Err(AuthError::Invalid(match kid {
            Some(kid) => format!(
                "unknown signing key '{}' of '{}'",
                kid.chars().take(64).collect::<String>().escape_debug(),
                self.settings.issuer
            ),
            None => format!(
                "the token names no key (kid) and '{}' has no signing key",
                self.settings.issuer
            ),
        }))
    }

    /// `None`: the set has no key for `kid` (or, without a kid, no key at all).
    fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<Result<DecodingKey, AuthError>> {
        let keys = self.keys.read().expect("keys lock").clone();
        let key = match kid {
            Some(kid) => keys.iter().find(|k| k.kid.as_deref() == Some(kid))?,
            None => match keys.as_slice() {
                [] => return None,
                [only] => only,
                more => {
                    return Some(Err(AuthError::Invalid(format!(
                        "the token names no key (kid), and '{}' has {} signing keys",
                        self.settings.issuer,
                        more.len()
                    ))));
                }
            },
        };
        Some(if key.accepts.contains(&alg) {
            Ok(key.decoding.clone())
        } else {
            Err(AuthError::Invalid(format!(
                "algorithm {alg:?} is not accepted for this signing key (it takes {:?})",
                key.accepts
            )))
        })
    }

    /// Reads the key set from its source.
    async fn load(&self, state: &mut RefreshState) -> Result<Vec<Key>, String> {
        let document = match &self.settings.jwks {
            JwksSource::File(path) => read_file(path).await?,
            JwksSource::Url(url) => self.fetch(url).await?,
            JwksSource::Discovery => {
                let url = match &state.discovered {
                    Some(url) => url.clone(),
                    None => self.discover().await?,
                };
                match self.fetch(&url).await {
                    Ok(document) => {
                        state.discovered = Some(url);
                        document
                    }
                    Err(e) => {
                        // The provider may have moved its keys: discover again next time.
                        state.discovered = None;
                        return Err(e);
                    }
                }
            }
        };
        parse_key_set(&document)
    }

    /// The `jwks_uri` of the issuer's discovery document, which must name the same issuer.
    async fn discover(&self) -> Result<String, String> {
        #[derive(Deserialize)]
        struct Discovery {
            issuer: String,
            jwks_uri: String,
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.settings.issuer.trim_end_matches('/')
        );
        let document: Discovery = serde_json::from_slice(&self.fetch(&url).await?)
            .map_err(|e| format!("{url}: not an OpenID Connect discovery document: {e}"))?;
        if document.issuer != self.settings.issuer {
            return Err(format!(
                "{url} names issuer '{}', not '{}'",
                document.issuer, self.settings.issuer
            ));
        }
        Ok(document.jwks_uri)
    }

    /// GET of a JSON document, bounded in time and size.
    async fn fetch(&self, url: &str) -> Result<Vec<u8>, String> {
        let http = self.http.as_ref().ok_or("no HTTP client")?;
        let too_large = || format!("{url}: the answer is larger than {MAX_DOCUMENT_BYTES} bytes");
        let mut response = http
            .get(url)
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("GET {url}: {}", response.status()));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?
        {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

async fn read_file(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let metadata = tokio::fs::metadata(path)
        .await
        .map_err(|e| format!("cannot read '{shown}': {e}"))?;
    if metadata.len() > MAX_DOCUMENT_BYTES as u64 {
        return Err(format!(
            "'{shown}' is larger than {MAX_DOCUMENT_BYTES} bytes"
        ));
    }
    tokio::fs::read(path)
        .await
        .map_err(|e| format!("cannot read '{shown}': {e}"))
}

/// The signing keys of a JWK set. Keys for encryption, symmetric keys and keys of kinds
/// this server cannot verify with are left out (with a warning); a set with no usable key
/// is an error.
fn parse_key_set(document: &[u8]) -> Result<Vec<Key>, String> {
    #[derive(Deserialize)]
    struct RawSet {
        keys: Vec<Value>,
    }
    let raw: RawSet = serde_json::from_slice(document)
        .map_err(|e| format!("not a JWK set ({{\"keys\": [...]}}): {e}"))?;
    let mut keys = Vec::new();
    for (i, raw) in raw.keys.into_iter().enumerate() {
        match key_of(raw) {
            Ok(Some(key)) => keys.push(key),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(key = i, error = %e, "OpenID Connect: a key of the set is left out")
            }
        }
    }
    if keys.is_empty() {
        return Err(
            "the JWK set holds no usable signing key (RSA, EC P-256/P-384 or Ed25519)".into(),
        );
    }
    Ok(keys)
}

/// A signing key from a JWK; `None` for a key that is not for signatures.
fn key_of(raw: Value) -> Result<Option<Key>, String> {
    let jwk: Jwk = serde_json::from_value(raw).map_err(|e| format!("not a JWK: {e}"))?;
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return Ok(None);
    }
    let family: &[Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => &ASYMMETRIC[..6],
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
            &[Algorithm::ES256]
        }
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P384 => {
            &[Algorithm::ES384]
        }
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            &[Algorithm::EdDSA]
        }
        AlgorithmParameters::OctetKey(_) => {
            return Err("a symmetric key (kty oct) is never accepted for external tokens".into());
        }
        _ => return Err("an unsupported key type or curve".into()),
    };
    let accepts = match jwk.common.key_algorithm {
        None => family.to_vec(),
        Some(declared) => match Algorithm::try_from(declared) {
            Ok(alg) if family.contains(&alg) => vec![alg],
            _ if matches!(
                declared,
                KeyAlgorithm::RSA1_5 | KeyAlgorithm::RSA_OAEP | KeyAlgorithm::RSA_OAEP_256
            ) =>
            {
                return Ok(None);
            }
            _ => return Err(format!("'alg' {declared} does not fit the key")),
        },
    };
    let decoding = DecodingKey::from_jwk(&jwk).map_err(|e| format!("not a usable key: {e}"))?;
    Ok(Some(Key {
        kid: jwk.common.key_id,
        accepts,
        decoding,
    }))
}

/// The external principal named `name`: found, or made at its first request. A principal
/// of that name that signs in with a client secret is refused, never taken over.
async fn external_principal(
    store: &dyn Store,
    settings: &OidcSettings,
    name: &str,
) -> Result<Arc<Principal>, AuthError> {
    validate_name(name).map_err(|e| {
        AuthError::Invalid(format!(
            "the claim '{}' does not name a valid principal: {e}",
            settings.principal_claim
        ))
    })?;
    let unavailable = |e: String| AuthError::Unavailable(format!("principals: {e}"));
    // Twice at most: a concurrent first request may make the principal between our read and
    // our insert.
    for _ in 0..2 {
        let row = match store
            .principal_by_name(name)
            .await
            .map_err(|e| unavailable(e.to_string()))?
        {
            Some(row) => row,
            None => match Principals::new(store).create_external(name, false).await {
                Ok(row) => {
                    tracing::info!(principal = %name, issuer = %settings.issuer, "made the principal of an external identity at its first request");
                    row
                }
                Err(PrincipalError::AlreadyExists(_)) => continue,
                Err(e) => return Err(unavailable(e.to_string())),
            },
        };
        if !row.external {
            return Err(AuthError::Invalid(format!(
                "principal '{name}' signs in with a client secret, so tokens of '{}' cannot act for it",
                settings.issuer
            )));
        }
        return Ok(Arc::new(Principal {
            id: Some(row.id),
            name: row.name,
            // Admin or not is read from the database at each decision (see catalog::authz).
            unrestricted: false,
        }));
    }
    Err(unavailable(format!(
        "principal '{name}' could not be read or made"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_asymmetric_signing_keys_are_loaded() {
        let rsa = json!({"kty": "RSA", "kid": "r", "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw", "e": "AQAB"});
        let keys = parse_key_set(
            json!({"keys": [
                rsa,
                {"kty": "oct", "kid": "s", "k": "c2VjcmV0"},
                {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
                {"kty": "something", "kid": "x"},
            ]})
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid.as_deref(), Some("r"));
        assert!(!keys[0].accepts.contains(&Algorithm::HS256));
        assert!(keys[0].accepts.contains(&Algorithm::PS256));
        let err = parse_key_set(br#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#)
            .err()
            .unwrap();
        assert!(err.contains("no usable signing key"), "{err}");
        assert!(parse_key_set(b"[]").is_err());
    }
}
