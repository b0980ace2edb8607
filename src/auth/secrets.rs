//! Client secrets: made from the operating system's random source, stored only as argon2id
//! hashes (PHC strings), verified on the blocking pool (a verification takes tens of
//! milliseconds of CPU by design).

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use base64::Engine;

/// A new secret: 32 random bytes, base64url without padding (43 characters).
pub fn new_secret() -> Result<String, String> {
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>()?))
}

/// `N` bytes of the operating system's random source.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], String> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| format!("no random source: {e}"))?;
    Ok(bytes)
}

/// The argon2id hash of a secret, with a random salt.
pub fn hash(secret: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(secret.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash a secret: {e}"))
}

/// Whether `secret` matches `hash` (a malformed hash matches nothing).
pub fn verify(secret: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(secret.as_bytes(), &parsed)
            .is_ok()
    })
}

/// At most this many argon2 computations run at once: each takes about 19 MiB and tens of
/// milliseconds of one core, and token requests need no authentication, so without a bound
/// a burst of them would take the server's memory and every core.
fn argon2_permits() -> &'static tokio::sync::Semaphore {
    static PERMITS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    PERMITS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        tokio::sync::Semaphore::new(cores)
    })
}

/// [`verify`] on the blocking pool, bounded as [`argon2_permits`] says.
pub async fn verify_bounded(secret: String, hash: String) -> bool {
    let Ok(_permit) = argon2_permits().acquire().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || verify(&secret, &hash))
        .await
        .unwrap_or(false)
}

/// [`hash`] on the blocking pool, bounded as [`argon2_permits`] says.
pub async fn hash_bounded(secret: String) -> Result<String, String> {
    let _permit = argon2_permits()
        .acquire()
        .await
        .map_err(|e| format!("cannot hash a secret: {e}"))?;
    tokio::task::spawn_blocking(move || hash(&secret))
        .await
        .map_err(|e| format!("cannot hash a secret: {e}"))?
}

/// A hash no secret matches in practice, verified when a client id is unknown so that an
/// unknown client takes as long to refuse as a wrong secret.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash("serac-decoy-secret").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    #[test]
    fn hashes_verify_only_their_secret() {
        let secret = super::new_secret().unwrap();
        assert_eq!(secret.len(), 43);
        let hash = super::hash(&secret).unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains(&secret));
        assert!(super::verify(&secret, &hash));
        assert!(!super::verify("wrong", &hash));
        assert!(!super::verify(&secret, "not a hash"));
        assert_ne!(super::new_secret().unwrap(), secret);
    }
}
