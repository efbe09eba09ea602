//! The verified-token cache: the outcome of a full verification (claims, shared by `Arc`),
//! keyed by a 128-bit keyed hash of the exact token bytes (SipHash-2-4 under a random key drawn
//! when the cache is made). 16 bytes a key instead of the whole token keep an entry small; the
//! secret key means nobody can compute a key outside the process, so a forged token can only
//! land on a cached one by chance (about `entries / 2^128` a try). SipHash was chosen over
//! SHA-256 for speed where it matters: about 1.5 cycles a byte on any x86-64, while SHA-256 is
//! that cheap only on CPUs with SHA extensions and costs 5–10× more on those without (many
//! Intel servers before Ice Lake). An entry names the provider and the key-set generation it
//! was verified with, is never used past the token's `exp` + leeway, and lives in one config
//! snapshot (a config applied by `RunningGateway::apply` starts with an empty one). Claim
//! rules are not cached: they run on every request.
//! Failures are never cached.

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::policy::{EvictionPolicy, Expiry};
use moka::sync::Cache;
use siphasher::sip128::SipHasher24;

use super::Claims;
use super::claims::Verified;
use crate::metrics::Counter;

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

impl Expiry<TokenKey, Arc<CachedToken>> for EntryExpiry {
    fn expire_after_create(
        &self,
        _: &TokenKey,
        value: &Arc<CachedToken>,
        _: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// The cache key of a token: its keyed 128-bit hash under this cache's secret key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenKey(u128);

impl Hash for TokenKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Already a uniform keyed hash: its low half is the map's hash as it is.
        state.write_u64(self.0 as u64);
    }
}

/// The map's hasher: passes a [`TokenKey`]'s low half through instead of hashing it again.
#[derive(Clone, Default)]
struct PassThrough;

impl BuildHasher for PassThrough {
    type Hasher = PassThroughHasher;
    fn build_hasher(&self) -> PassThroughHasher {
        PassThroughHasher(0)
    }
}

struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `TokenKey` is hashed here, through `write_u64`; stay a hash for anything else.
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
}

/// Bounded cache of verified tokens (LRU: recency is what repeated tokens have).
#[derive(Clone)]
pub struct TokenCache {
    entries: Cache<TokenKey, Arc<CachedToken>, PassThrough>,
    /// Keyed with 128 random bits drawn when the cache is made.
    hasher: SipHasher24,
    max_ttl: Duration,
    min_weight: u32,
    /// Lookups that found a usable entry, and those that did not.
    pub hits: Arc<Counter>,
    pub misses: Arc<Counter>,
    /// Entries pushed out to stay within the size bounds.
    pub evictions: Arc<Counter>,
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
            let mut secret = [0u8; 16];
            // Invariant, not input: runs once per config load, and without the OS random
            // source neither this key nor TLS can be made safely, so stopping is right.
            #[allow(clippy::expect_used)]
            aws_lc_rs::rand::fill(&mut secret)
                .expect("the system's random number generator is broken");
            let min_weight =
                (settings.max_memory / settings.max_entries).clamp(1, u64::from(u32::MAX)) as u32;
            let evictions = Arc::new(Counter::default());
            let evicted = evictions.clone();
            TokenCache {
                entries: Cache::builder()
                    .max_capacity(settings.max_memory)
                    // Pushed out by the size bound (expired entries are not evictions).
                    .eviction_listener(move |_, _, cause| {
                        if cause == moka::notification::RemovalCause::Size {
                            evicted.inc();
                        }
                    })
                    .weigher(|_, v: &Arc<CachedToken>| v.weight)
                    .eviction_policy(EvictionPolicy::lru())
                    .expire_after(EntryExpiry)
                    .build_with_hasher(PassThrough),
                hasher: SipHasher24::new_with_key(&secret),
                max_ttl: settings.max_ttl,
                min_weight,
                hits: Arc::default(),
                misses: Arc::default(),
                evictions,
            }
        })
    }

    /// The cache key of a token.
    pub fn key(&self, token: &str) -> TokenKey {
        TokenKey(self.hasher.hash(token.as_bytes()).as_u128())
    }

    /// The cached outcome, if there is one still before `refuse_from` at `now` (unix seconds).
    pub fn get(&self, key: &TokenKey, now: f64) -> Option<Arc<CachedToken>> {
        let found = self.entries.get(key).filter(|hit| now < hit.refuse_from);
        match found {
            Some(_) => self.hits.inc(),
            None => self.misses.inc(),
        }
        found
    }

    /// Stores a verified token of `token_len` bytes under its key until its `refuse_from`
    /// (unix seconds; infinite for a token without `exp`), at most `max_ttl`.
    pub fn insert(&self, key: TokenKey, token_len: usize, verified: &Verified, now: f64) {
        let refuse_from = verified.refuse_from;
        let left = refuse_from - now;
        if left.is_nan() || left <= 0.0 {
            return;
        }
        // `exp` is the token's to choose (1e20 is a valid NumericDate): anything past what a
        // Duration holds is simply "longer than max_ttl".
        let ttl = Duration::try_from_secs_f64(left).map_or(self.max_ttl, |d| d.min(self.max_ttl));
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
        self.entries.insert(key, Arc::new(entry));
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
        cache.insert(cache.key(token), token.len(), &verified, now);
    }

    #[test]
    fn entries_are_refused_from_their_deadline() {
        let cache = TokenCache::new(TokenCacheSettings::default()).unwrap();
        insert(&cache, "a.b.c", 1000.0, 990.0);
        let k = cache.key("a.b.c");
        assert!(cache.get(&k, 999.9).is_some());
        assert!(cache.get(&k, 1000.0).is_none());
        assert!(cache.get(&cache.key("a.b.d"), 990.0).is_none());
        insert(&cache, "x", 900.0, 990.0);
        let expired = cache.get(&cache.key("x"), 800.0);
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
    fn keys_are_secret_per_cache() {
        let a = TokenCache::new(TokenCacheSettings::default()).unwrap();
        let b = TokenCache::new(TokenCacheSettings::default()).unwrap();
        assert_eq!(a.key("a.b.c"), a.key("a.b.c"));
        assert_ne!(a.key("a.b.c"), a.key("a.b.d"));
        assert_ne!(
            a.key("a.b.c"),
            b.key("a.b.c"),
            "each cache draws its own key"
        );
        insert(&a, "a.b.c", 2000.0, 1000.0);
        assert!(b.get(&b.key("a.b.c"), 1000.0).is_none());
        assert!(a.get(&a.key("a.b.c"), 1000.0).is_some());
    }

    #[test]
    fn a_far_exp_does_not_panic() {
        let cache = TokenCache::new(TokenCacheSettings::default()).unwrap();
        // 1e20 seconds is a valid NumericDate and more than a Duration holds.
        for refuse_from in [1e20, f64::MAX, f64::INFINITY, 1e300] {
            insert(&cache, "far", refuse_from, 1000.0);
            assert!(
                cache.get(&cache.key("far"), 1000.0).is_some(),
                "{refuse_from}"
            );
        }
        insert(&cache, "nan", f64::NAN, 1000.0);
        assert!(cache.get(&cache.key("nan"), 1000.0).is_none());
    }

    proptest::proptest! {
        /// Whatever `exp` + leeway a token brings, storing it never panics, and it is never
        /// served at or after that moment.
        #[test]
        fn any_deadline_is_stored_safely(refuse_from in proptest::num::f64::ANY, now in 0.0f64..4e9) {
            let cache = TokenCache::new(TokenCacheSettings::default()).unwrap();
            insert(&cache, "t", refuse_from, now);
            if let Some(hit) = cache.get(&cache.key("t"), now) {
                proptest::prop_assert!(now < hit.refuse_from);
            }
        }
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
