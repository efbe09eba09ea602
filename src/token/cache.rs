//! The verified-token cache: the outcome of a full verification (claims, shared by `Arc`),
//! keyed by a SHA-256 of the exact token bytes. An entry names the provider and the key-set
//! generation it was verified with, is never used past the token's `exp` + leeway, and lives
//! in one config snapshot (a reload starts empty). Claim rules are not cached: they run on
//! every request. Failures are never cached.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::policy::{EvictionPolicy, Expiry};
use moka::sync::Cache;

use super::Claims;

/// Size and lifetime limits, with defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenCacheSettings {
    /// Most entries (default 10000; 0 turns the cache off). Each holds the claims of one token,
    /// at most `max_token_bytes` of JSON.
    pub max_entries: u64,
    /// Longest an entry lives, whatever the token's `exp` (default 5 min).
    pub max_ttl: Duration,
}

impl Default for TokenCacheSettings {
    fn default() -> Self {
        TokenCacheSettings {
            max_entries: 10_000,
            max_ttl: Duration::from_secs(300),
        }
    }
}

/// What a cache hit brings back.
#[derive(Debug)]
pub struct CachedToken {
    pub provider: usize,
    pub generation: u64,
    pub claims: Arc<Claims>,
    /// Unix seconds from which the token is refused (`exp` + leeway).
    pub refuse_from: f64,
    ttl: Duration,
}

/// SHA-256 of the token.
pub type TokenDigest = [u8; 32];

struct EntryExpiry;

impl Expiry<TokenDigest, Arc<CachedToken>> for EntryExpiry {
    fn expire_after_create(
        &self,
        _: &TokenDigest,
        value: &Arc<CachedToken>,
        _: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Bounded cache of verified tokens (LRU: recency is what repeated tokens have).
#[derive(Clone)]
pub struct TokenCache {
    entries: Cache<TokenDigest, Arc<CachedToken>>,
    max_ttl: Duration,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("entries", &self.entries.entry_count())
            .finish()
    }
}

impl TokenCache {
    /// `None` when the settings turn the cache off.
    pub fn new(settings: TokenCacheSettings) -> Option<TokenCache> {
        (settings.max_entries > 0 && !settings.max_ttl.is_zero()).then(|| TokenCache {
            entries: Cache::builder()
                .max_capacity(settings.max_entries)
                .eviction_policy(EvictionPolicy::lru())
                .expire_after(EntryExpiry)
                .build(),
            max_ttl: settings.max_ttl,
        })
    }

    pub fn digest(token: &str) -> TokenDigest {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        out
    }

    /// The cached outcome, if there is one still before `refuse_from` at `now` (unix seconds).
    pub fn get(&self, digest: &TokenDigest, now: f64) -> Option<Arc<CachedToken>> {
        self.entries.get(digest).filter(|hit| now < hit.refuse_from)
    }

    /// Stores a verified token until `refuse_from` (unix seconds), at most `max_ttl`.
    pub fn insert(
        &self,
        digest: TokenDigest,
        provider: usize,
        generation: u64,
        claims: Arc<Claims>,
        refuse_from: f64,
        now: f64,
    ) {
        let left = refuse_from - now;
        if left <= 0.0 || !left.is_finite() {
            return;
        }
        let ttl = Duration::from_secs_f64(left).min(self.max_ttl);
        self.entries.insert(
            digest,
            Arc::new(CachedToken {
                provider,
                generation,
                claims,
                refuse_from,
                ttl,
            }),
        );
    }

    pub fn entry_count(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_refused_from_their_deadline() {
        let cache = TokenCache::new(TokenCacheSettings::default()).unwrap();
        let d = TokenCache::digest("a.b.c");
        cache.insert(d, 0, 1, Arc::new(Claims::new()), 1000.0, 990.0);
        assert!(cache.get(&d, 999.9).is_some());
        assert!(cache.get(&d, 1000.0).is_none());
        assert!(cache.get(&TokenCache::digest("a.b.d"), 990.0).is_none());
        cache.insert(
            TokenCache::digest("x"),
            0,
            1,
            Arc::new(Claims::new()),
            900.0,
            990.0,
        );
        assert!(
            cache.get(&TokenCache::digest("x"), 800.0).is_none(),
            "an already-expired token is not stored"
        );
    }

    #[test]
    fn bounded_in_entries() {
        let cache = TokenCache::new(TokenCacheSettings {
            max_entries: 100,
            max_ttl: Duration::from_secs(60),
        })
        .unwrap();
        for i in 0..1000 {
            cache.insert(
                TokenCache::digest(&i.to_string()),
                0,
                1,
                Arc::new(Claims::new()),
                2000.0,
                1000.0,
            );
        }
        assert!(cache.entry_count() <= 100, "{}", cache.entry_count());
    }

    #[test]
    fn off_when_configured_so() {
        assert!(
            TokenCache::new(TokenCacheSettings {
                max_entries: 0,
                max_ttl: Duration::from_secs(1)
            })
            .is_none()
        );
    }
}
