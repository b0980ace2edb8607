//! Verified bearer JWTs (Serac's own and an identity provider's), remembered until they
//! expire: a client sends the same token with every request, so after the first one a request
//! costs a hash lookup instead of a signature check (and, for an external identity, a
//! database lookup of its principal).
//!
//! An entry lives until its token's `exp` and at most [`MAX_TTL`], so that a change of an
//! external principal (deleted, or made admin) reaches its next request within minutes even
//! with long-lived tokens. Only tokens that verified are kept; memory is bounded by
//! [`MAX_BYTES`] of tokens.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::catalog::Principal;
use crate::store::now_ms;

/// The longest an entry is kept, whatever its token's expiry.
pub const MAX_TTL: Duration = Duration::from_secs(300);

/// The memory of the cached tokens, counted as their length plus a fixed overhead per
/// entry: about 60,000 tokens of a typical 1 KiB.
pub const MAX_BYTES: u64 = 64 * 1024 * 1024;

/// What an entry costs besides its token: the principal, the map's bookkeeping.
const ENTRY_OVERHEAD: usize = 128;

#[derive(Clone)]
struct Verified {
    principal: Arc<Principal>,
    /// The token's `exp`, in milliseconds since the epoch.
    expires_at_ms: i64,
}

struct UntilExpiry;

impl moka::Expiry<String, Verified> for UntilExpiry {
    fn expire_after_create(&self, _: &String, value: &Verified, _: Instant) -> Option<Duration> {
        let left = u64::try_from(value.expires_at_ms.saturating_sub(now_ms())).unwrap_or(0);
        Some(Duration::from_millis(left).min(MAX_TTL))
    }
}

/// Verified tokens to the principal they stand for.
pub struct TokenCache {
    entries: moka::sync::Cache<String, Verified>,
}

impl TokenCache {
    pub fn new() -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(MAX_BYTES)
                .weigher(|token: &String, _: &Verified| {
                    u32::try_from(token.len() + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
                })
                .expire_after(UntilExpiry)
                .build(),
        }
    }

    /// The principal of a token verified before and not expired since.
    pub fn get(&self, token: &str) -> Option<Arc<Principal>> {
        let hit = self.entries.get(token)?;
        (hit.expires_at_ms > now_ms()).then_some(hit.principal)
    }

    /// Remembers a verified token whose `exp` is `expires_at` (seconds since the epoch).
    pub fn insert(&self, token: &str, principal: Arc<Principal>, expires_at: i64) {
        let expires_at_ms = expires_at.saturating_mul(1000);
        if expires_at_ms > now_ms() {
            self.entries.insert(
                token.to_owned(),
                Verified {
                    principal,
                    expires_at_ms,
                },
            );
        }
    }
}

impl Default for TokenCache {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(name: &str) -> Arc<Principal> {
        Arc::new(Principal {
            id: Some(name.to_owned()),
            name: name.to_owned(),
            unrestricted: false,
        })
    }

    #[test]
    fn entries_last_until_their_token_expires() {
        let cache = TokenCache::new();
        let now = now_ms() / 1000;
        cache.insert("fresh", principal("a"), now + 60);
        cache.insert("stale", principal("b"), now - 1);
        assert_eq!(cache.get("fresh").map(|p| p.name.clone()), Some("a".into()));
        assert!(cache.get("stale").is_none());
        assert!(cache.get("unknown").is_none());
        // An entry whose token runs out is not returned, even before moka evicts it.
        cache.insert("short", principal("c"), now + 1);
        std::thread::sleep(Duration::from_millis(2100));
        assert!(cache.get("short").is_none());
    }
}
