//! A provider's current keys, swapped whole by refreshes. Requests read them without a lock;
//! refreshes (scheduled, or forced by an unknown `kid`) take one lock per provider, so at most
//! one fetch per provider is ever in flight and concurrent requests wait on that one.
//!
//! Unknown kids: a kid that a fresh fetch did not find is remembered (a bounded negative
//! cache, for `unknown_kid_cooldown`) and refused without fetching; a kid never seen may cause
//! a fetch while the refetch budget allows (a token bucket: `unknown_kid_burst` at once, one
//! more each `unknown_kid_refill`). So a trickle of stray tokens does not hold back a
//! rotation: the kid an IdP has just published is fetched at its first use, while a flood of
//! random kids causes at most `burst + elapsed / refill` fetches.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::{Mutex, watch};
use tokio::time::Instant;
use tracing::{info, warn};

use super::remote::{FetchError, Fetcher, RemoteSettings, RemoteSpec, freshness};
use super::{KeySet, VerifyKey};
use crate::metrics::{Counter, Histogram};

/// What the config says of a provider's keys: the local keys, already parsed, and what to
/// fetch. Two specs are the same when the digest of the local sources and the remote spec
/// are; an unchanged spec keeps its live store on reload (fetched keys and refresher too).
#[derive(Clone)]
pub struct KeysSpec {
    pub local: Vec<VerifyKey>,
    /// SHA-256 over the local key sources (file contents, kids, algorithms).
    pub fingerprint: [u8; 32],
    pub remote: Option<RemoteSpec>,
}

impl PartialEq for KeysSpec {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint && self.remote == other.remote
    }
}

impl KeysSpec {
    /// A description of the sources for `check`.
    pub fn describe(&self) -> String {
        use super::remote::{RemoteSource, discovery_url};
        let local = format!("{} local key(s)", self.local.len());
        match self.remote.as_ref().map(|r| &r.source) {
            None => local,
            Some(RemoteSource::JwksUri(uri)) => format!("{local} + JWKS from {uri}"),
            Some(RemoteSource::Discovery { issuer }) => {
                format!("{local} + discovery via {}", discovery_url(issuer))
            }
        }
    }
}

impl std::fmt::Debug for KeysSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeysSpec")
            .field("local", &self.local.len())
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

/// The keys usable now.
#[derive(Debug)]
pub struct KeySnapshot {
    pub set: KeySet,
    /// Changes whenever the set changes; verified-token cache entries of an older generation
    /// are not used.
    pub generation: u64,
}

/// Where a provider's keys come from and what it holds now.
#[derive(Debug)]
pub struct ProviderKeys {
    current: ArcSwap<KeySnapshot>,
    /// Keys from local files, part of every snapshot.
    local: Vec<VerifyKey>,
    remote: Option<Remote>,
    /// Tokens of this provider verified (signature and claims), and how long that took, for
    /// the metrics.
    pub verified: Counter,
    pub verify_duration: Histogram,
}

#[derive(Debug)]
struct Remote {
    fetcher: Fetcher,
    settings: RemoteSettings,
    state: Mutex<RefreshState>,
    provider: Arc<str>,
    /// The refetch budget for never-seen kids, read and taken without the lock.
    budget: RefetchBudget,
    /// Kids a fresh fetch did not find, refused without a fetch until they expire.
    absent: moka::sync::Cache<Box<str>, ()>,
    /// Whether an unknown-kid fetch is in flight: read without the lock, so a flood of unknown
    /// kids never queues on it, while requests that arrive during a fetch wait for its result.
    in_flight: AtomicBool,
    stats: FetchStats,
}

/// What a remote key source's fetches came to, for the metrics.
#[derive(Debug, Default)]
pub struct FetchStats {
    pub succeeded: Counter,
    pub failed: Counter,
    /// Unix seconds of the last good fetch; 0: none yet.
    pub last_success: AtomicU64,
}

/// Most kids remembered as absent per provider.
const MAX_ABSENT_KIDS: u64 = 1024;

/// A token bucket kept as one atomic "theoretical arrival time" (GCRA): a fetch may start when
/// the bucket's next free slot is at most `burst` intervals ahead of now.
#[derive(Debug)]
pub struct RefetchBudget {
    /// When the budget is next back to full, in ms since `epoch`.
    full_at_ms: AtomicU64,
    interval_ms: u64,
    burst: u64,
    epoch: Instant,
}

impl RefetchBudget {
    pub fn new(burst: u32, interval: Duration) -> Self {
        RefetchBudget {
            full_at_ms: AtomicU64::new(0),
            interval_ms: u64::try_from(interval.as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
            burst: u64::from(burst),
            epoch: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        // Starts at one burst past the epoch, so a fresh budget is full.
        let elapsed = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX / 2);
        elapsed.saturating_add(self.burst.saturating_mul(self.interval_ms))
    }

    /// The slot a take at `now` would move the budget to, if it is within the burst.
    fn next(&self, current: u64, now: u64) -> Option<u64> {
        let next = current.max(now).saturating_add(self.interval_ms);
        (next - now <= self.burst.saturating_mul(self.interval_ms)).then_some(next)
    }

    /// Whether a fetch could start now (nothing is taken).
    pub fn available(&self) -> bool {
        self.next(self.full_at_ms.load(Ordering::Acquire), self.now_ms())
            .is_some()
    }

    /// Takes one fetch from the budget, if there is one.
    pub fn take(&self) -> bool {
        let now = self.now_ms();
        let mut current = self.full_at_ms.load(Ordering::Acquire);
        loop {
            let Some(next) = self.next(current, now) else {
                return false;
            };
            match self.full_at_ms.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(seen) => current = seen,
            }
        }
    }
}

/// Clears `in_flight` when the fetch ends, also when the waiting request goes away.
struct InFlight<'a>(&'a AtomicBool);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

#[derive(Debug, Default)]
struct RefreshState {
    /// Remembered from discovery; forgotten when a fetch fails, so discovery runs again.
    jwks_uri: Option<String>,
    digest: Option<[u8; 32]>,
    last_good: Option<Instant>,
    next_refresh: Option<Instant>,
    failures: u32,
}

impl ProviderKeys {
    /// The live store of `spec`: its local keys now, the remote ones after the first fetch.
    /// Starts no task and makes no client: `run_refresher` and the first fetch do.
    pub fn new(provider: &str, spec: &KeysSpec) -> ProviderKeys {
        let local = spec.local.clone();
        ProviderKeys {
            current: ArcSwap::from_pointee(KeySnapshot {
                set: KeySet::new(local.clone()),
                generation: 0,
            }),
            local,
            remote: spec.remote.as_ref().map(|remote| Remote {
                fetcher: Fetcher::new(remote),
                settings: remote.settings,
                state: Mutex::new(RefreshState::default()),
                provider: provider.into(),
                budget: RefetchBudget::new(
                    remote.settings.unknown_kid_burst,
                    remote.settings.unknown_kid_refill,
                ),
                absent: moka::sync::Cache::builder()
                    .max_capacity(MAX_ABSENT_KIDS)
                    .time_to_live(
                        remote
                            .settings
                            .unknown_kid_cooldown
                            .max(Duration::from_millis(1)),
                    )
                    .build(),
                in_flight: AtomicBool::new(false),
                stats: FetchStats::default(),
            }),
            verified: Counter::default(),
            verify_duration: Histogram::default(),
        }
    }

    /// Keys from local files only.
    pub fn local(keys: Vec<VerifyKey>) -> ProviderKeys {
        ProviderKeys::new(
            "",
            &KeysSpec {
                fingerprint: [0; 32],
                local: keys,
                remote: None,
            },
        )
    }

    /// The keys to verify with now.
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<KeySnapshot>> {
        self.current.load()
    }

    pub fn generation(&self) -> u64 {
        self.current.load().generation
    }

    pub fn is_remote(&self) -> bool {
        self.remote.is_some()
    }

    /// Whether a token with this unknown `kid` could make these keys be fetched again now
    /// (remote keys, a fetch in flight, or a kid not known to be absent and budget left); read
    /// without any lock.
    pub fn may_refetch_for_unknown_kid(&self, kid: &str) -> bool {
        self.remote.as_ref().is_some_and(|remote| {
            remote.in_flight.load(Ordering::Acquire)
                || (!remote.absent.contains_key(kid) && remote.budget.available())
        })
    }

    /// The remote source's fetch counts, if it has one.
    pub fn fetch_stats(&self) -> Option<&FetchStats> {
        self.remote.as_ref().map(|r| &r.stats)
    }

    pub fn remote_settings(&self) -> Option<&RemoteSettings> {
        self.remote.as_ref().map(|r| &r.settings)
    }

    /// First fetch at start-up.
    pub async fn initial_load(&self) -> Result<(), FetchError> {
        let Some(remote) = &self.remote else {
            return Ok(());
        };
        let mut state = remote.state.lock().await;
        self.refresh(remote, &mut state).await.map(|_| ())
    }

    /// Called when a token names a `kid` the current keys lack (`kid` is `None` for a token
    /// without one, or when no keys are loaded): waits for a fetch in flight, else fetches
    /// again when the kid is not known to be absent and the refetch budget allows. Returns
    /// whether the keys changed since `seen_generation`, in which case the token is worth
    /// verifying again.
    pub async fn refresh_for_unknown_kid(&self, kid: Option<&str>, seen_generation: u64) -> bool {
        let Some(remote) = &self.remote else {
            return false;
        };
        let in_flight = remote.in_flight.load(Ordering::Acquire);
        if !in_flight {
            // The keys are swapped before `in_flight` clears, so the generation read here is
            // current.
            if self.generation() != seen_generation {
                return true;
            }
            if kid.is_some_and(|k| remote.absent.contains_key(k)) || !remote.budget.take() {
                return false;
            }
        }
        let mut state = remote.state.lock().await;
        // Someone else refreshed while this request waited for the lock.
        if self.generation() != seen_generation {
            return true;
        }
        if in_flight {
            // That fetch ended without a change: its answer is this request's answer too.
            return false;
        }
        remote.in_flight.store(true, Ordering::Release);
        let _guard = InFlight(&remote.in_flight);
        let fetched = self.refresh(remote, &mut state).await.is_ok();
        if fetched
            && let Some(kid) = kid
            && !self.snapshot().set.knows_kid(kid)
        {
            remote.absent.insert(kid.into(), ());
        }
        self.generation() != seen_generation
    }

    /// Keeps the keys fresh until `stop` turns true: refreshes before they go stale, retries
    /// with backoff when the endpoint fails, never blocks a request.
    pub async fn run_refresher(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let Some(remote) = &self.remote else { return };
        loop {
            let due = remote
                .state
                .lock()
                .await
                .next_refresh
                .unwrap_or_else(Instant::now);
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let mut state = remote.state.lock().await;
            if state.next_refresh.is_none_or(|t| t <= Instant::now()) {
                let _ = self.refresh(remote, &mut state).await;
            }
        }
    }

    /// One fetch; swaps the keys in when the document changed. On failure the last good keys
    /// stay (up to `max_stale`) and the next try is scheduled with backoff.
    async fn refresh(&self, remote: &Remote, state: &mut RefreshState) -> Result<bool, FetchError> {
        let settings = &remote.settings;
        let result = match remote.fetcher.jwks_uri(state.jwks_uri.as_deref()).await {
            Ok(uri) => remote.fetcher.fetch(&uri).await,
            Err(e) => Err(e),
        };
        let now = Instant::now();
        match result {
            Ok(fetched) => {
                remote.stats.succeeded.inc();
                let unix = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                remote.stats.last_success.store(unix, Ordering::Relaxed);
                state.failures = 0;
                state.last_good = Some(now);
                let fresh = freshness(fetched.max_age, settings);
                // Refresh a little before the keys go stale, so no request waits for it.
                state.next_refresh = Some(now + fresh.mul_f64(0.9).max(Duration::from_millis(500)));
                state.jwks_uri = Some(fetched.jwks_uri.clone());
                for why in &fetched.skipped {
                    warn!(provider = %remote.provider, "JWKS key skipped: {why}");
                }
                if state.digest == Some(fetched.digest) {
                    return Ok(false);
                }
                state.digest = Some(fetched.digest);
                let mut keys = self.local.clone();
                keys.extend(fetched.keys);
                let count = keys.len();
                self.swap(keys);
                info!(provider = %remote.provider, keys = count, uri = %fetched.jwks_uri, "key set loaded");
                Ok(true)
            }
            Err(e) => {
                remote.stats.failed.inc();
                state.failures = state.failures.saturating_add(1);
                state.jwks_uri = None;
                let backoff = Duration::from_secs(1 << state.failures.min(16))
                    .min(settings.min_refresh.max(Duration::from_secs(1)));
                state.next_refresh = Some(now + backoff);
                let stale_for = state.last_good.map(|t| now.duration_since(t));
                match stale_for {
                    Some(age) if age > settings.max_stale => {
                        if state.digest.take().is_some() {
                            self.swap(self.local.clone());
                            warn!(provider = %remote.provider, error = %e, "keys older than max_stale dropped; tokens are refused until a fetch succeeds");
                        }
                    }
                    Some(age) => {
                        warn!(provider = %remote.provider, error = %e, stale_secs = age.as_secs(), retry_in_ms = backoff.as_millis() as u64, "key refresh failed; serving the last good keys");
                    }
                    None => {
                        warn!(provider = %remote.provider, error = %e, retry_in_ms = backoff.as_millis() as u64, "keys not loaded yet");
                    }
                }
                Err(e)
            }
        }
    }

    fn swap(&self, keys: Vec<VerifyKey>) {
        let generation = self.generation() + 1;
        self.current.store(Arc::new(KeySnapshot {
            set: KeySet::new(keys),
            generation,
        }));
    }
}
