//! The verified-token cache: the outcome of a full verification (claims, shared by `Arc`),
//! keyed by the SHA-256 of the exact token bytes (32 bytes a key instead of the whole token:
//! a tenth of the memory of an entry; with the CPU's SHA extensions it costs about 0.3 µs). An entry names the provider and the key-set
//! generation it was verified with, is never used past the token's `exp` + leeway, and lives
//! in one config snapshot (a reload starts empty). Claim rules are not cached: they run on
//! every request. Failures are never cached.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::policy::{EvictionPolicy, Expiry};
use moka::sync::Cache;

use super::Claims;
use super::verify::Verified;

/// Size and lifetime limits, with defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenCacheSettings {
    /// Most entries (default 10000; 0 turns the cache off).
    pub max_entries: u64,
    /// Most memory the entries may hold, estimated from each token's size (default 64 MiB).
    pub max_memory: u64,
    /// Longest an entry lives, whatever the token's `exp` (default 5 min).
    pub max_ttl: Duration,
}

impl Default for TokenCacheSettings {
    fn default() -> Self {
        TokenCacheSettings {
            max_entries: 10_000,
            max_memory: 64 * 1024 * 1024,
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
    /// Estimated memory of the entry, at least `max_memory / max_entries`, so that the one
    /// weight bound of the cache bounds both memory and the number of entries.
    weight: u32,
}

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

/// SHA-256 of a token.
pub type TokenDigest = [u8; 32];

/// Bounded cache of verified tokens (LRU: recency is what repeated tokens have).
#[derive(Clone)]
pub struct TokenCache {
    entries: Cache<TokenDigest, Arc<CachedToken>>,
    max_ttl: Duration,
    min_weight: u32,
}

/// Fixed cost of one entry besides the claims: key, value, moka's bookkeeping.
const ENTRY_OVERHEAD: usize = 256;

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
        let usable =
            settings.max_entries > 0 && settings.max_memory > 0 && !settings.max_ttl.is_zero();
        usable.then(|| {
            let min_weight =
                (settings.max_memory / settings.max_entries).clamp(1, u64::from(u32::MAX)) as u32;
            TokenCache {
                entries: Cache::builder()
                    .max_capacity(settings.max_memory)
                    .weigher(|_, v: &Arc<CachedToken>| v.weight)
                    .eviction_policy(EvictionPolicy::lru())
                    .expire_after(EntryExpiry)
                    .build(),
                max_ttl: settings.max_ttl,
                min_weight,
            }
        })
    }

    /// The cache key of a token.
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

    /// Stores a verified token of `token_len` bytes under its digest until its `refuse_from`
    /// (unix seconds; infinite for a token without `exp`), at most `max_ttl`.
    pub fn insert(&self, digest: TokenDigest, token_len: usize, verified: &Verified, now: f64) {
        let refuse_from = verified.refuse_from;
        let left = refuse_from - now;
        if left.is_nan() || left <= 0.0 {
            return;
        }
        let ttl = if left.is_finite() {
            Duration::from_secs_f64(left).min(self.max_ttl)
        } else {
            self.max_ttl
        };
        // Parsed claims take about twice their JSON size; the payload is smaller than the token.
        let estimate =
            u32::try_from(token_len.saturating_mul(2) + ENTRY_OVERHEAD).unwrap_or(u32::MAX);
        let weight = estimate.max(self.min_weight);
        let entry = CachedToken {
            provider: verified.provider,
            generation: verified.generation,
            claims: verified.claims.clone(),
            refuse_from,
            ttl,
            weight,
        };
        self.entries.insert(digest, Arc::new(entry));
    }

    pub fn entry_count(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insert(cache: &TokenCache, token: &str, refuse_from: f64, now: f64) {
        let verified = Verified {
            provider: 0,
            claims: Arc::new(Claims::new()),
            generation: 1,
            refuse_from,
        };
        cache.insert(TokenCache::digest(token), token.len(), &verified, now);
    }

    #[test]
    fn entries_are_refused_from_their_deadline() {
        let cache = TokenCache::new(TokenCacheSettings::default()).unwrap();
        insert(&cache, "a.b.c", 1000.0, 990.0);
        let d = TokenCache::digest("a.b.c");
        assert!(cache.get(&d, 999.9).is_some());
        assert!(cache.get(&d, 1000.0).is_none());
        assert!(cache.get(&TokenCache::digest("a.b.d"), 990.0).is_none());
        insert(&cache, "x", 900.0, 990.0);
        let expired = cache.get(&TokenCache::digest("x"), 800.0);
        assert!(expired.is_none(), "an already-expired token is not stored");
    }

    #[test]
    fn bounded_in_entries_and_memory() {
        let settings = TokenCacheSettings {
            max_entries: 100,
            max_memory: 1024 * 1024,
            max_ttl: Duration::from_secs(60),
        };
        let cache = TokenCache::new(settings).unwrap();
        for i in 0..1000 {
            insert(&cache, &format!("{i:0>800}"), 2000.0, 1000.0);
        }
        assert!(cache.entry_count() <= 100, "{}", cache.entry_count());
        // Large tokens: the memory bound comes first (1 MiB / ~16 KiB each).
        let cache = TokenCache::new(settings).unwrap();
        for i in 0..1000 {
            insert(&cache, &format!("{i:0>8000}"), 2000.0, 1000.0);
        }
        assert!(cache.entry_count() <= 66, "{}", cache.entry_count());
        assert!(cache.entry_count() >= 30, "{}", cache.entry_count());
    }

    #[test]
    fn off_when_configured_so() {
        let off = TokenCacheSettings {
            max_entries: 0,
            ..TokenCacheSettings::default()
        };
        assert!(TokenCache::new(off).is_none());
    }
}
