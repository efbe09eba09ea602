//! A provider's current keys, swapped whole by refreshes. Requests read them without a lock;
//! refreshes (scheduled, or forced by an unknown `kid`) take one lock per provider, so at most
//! one fetch per provider is ever in flight and concurrent requests wait on that one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::{Mutex, watch};
use tokio::time::Instant;
use tracing::{info, warn};

use super::remote::{FetchError, Fetcher, RemoteSettings, freshness};
use super::{KeySet, VerifyKey};

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
}

#[derive(Debug)]
struct Remote {
    fetcher: Fetcher,
    settings: RemoteSettings,
    state: Mutex<RefreshState>,
    provider: Arc<str>,
    /// When the last unknown-kid fetch started, in ms since `epoch`, and whether one is in
    /// flight: read without the lock, so a flood of unknown kids inside the cooldown never
    /// queues on it, while requests that arrive during a fetch still wait for its result.
    last_forced_ms: AtomicU64,
    in_flight: AtomicBool,
    epoch: Instant,
}

impl Remote {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    fn within_cooldown(&self) -> bool {
        let last = self.last_forced_ms.load(Ordering::Acquire);
        last != u64::MAX
            && self.now_ms().saturating_sub(last)
                < self.settings.unknown_kid_cooldown.as_millis() as u64
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
    /// Keys from local files only.
    pub fn local(keys: Vec<VerifyKey>) -> ProviderKeys {
        ProviderKeys {
            current: ArcSwap::from_pointee(KeySnapshot {
                set: KeySet::new(keys.clone()),
                generation: 0,
            }),
            local: keys,
            remote: None,
        }
    }

    /// Local keys plus keys fetched by `fetcher`; until the first fetch, only the local ones.
    pub fn with_remote(
        provider: &str,
        local: Vec<VerifyKey>,
        fetcher: Fetcher,
        settings: RemoteSettings,
    ) -> ProviderKeys {
        ProviderKeys {
            current: ArcSwap::from_pointee(KeySnapshot {
                set: KeySet::new(local.clone()),
                generation: 0,
            }),
            local,
            remote: Some(Remote {
                fetcher,
                settings,
                state: Mutex::new(RefreshState::default()),
                provider: provider.into(),
                last_forced_ms: AtomicU64::new(u64::MAX),
                in_flight: AtomicBool::new(false),
                epoch: Instant::now(),
            }),
        }
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

    /// Whether a token with an unknown `kid` could make these keys be fetched again now (remote
    /// keys, outside the cooldown or with a fetch in flight); read without any lock.
    pub fn may_refetch_for_unknown_kid(&self) -> bool {
        self.remote.as_ref().is_some_and(|remote| {
            remote.in_flight.load(Ordering::Acquire) || !remote.within_cooldown()
        })
    }

    pub fn remote_settings(&self) -> Option<&RemoteSettings> {
        self.remote.as_ref().map(|r| &r.settings)
    }

    /// A description of the sources for `check`.
    pub fn describe(&self) -> String {
        use super::remote::{RemoteSource, discovery_url};
        let local = format!("{} local key(s)", self.local.len());
        match self.remote.as_ref().map(|r| &r.fetcher.source) {
            None => local,
            Some(RemoteSource::JwksUri(uri)) => format!("{local} + JWKS from {uri}"),
            Some(RemoteSource::Discovery { issuer }) => {
                format!("{local} + discovery via {}", discovery_url(issuer))
            }
        }
    }

    /// First fetch at start-up.
    pub async fn initial_load(&self) -> Result<(), FetchError> {
        let Some(remote) = &self.remote else {
            return Ok(());
        };
        let mut state = remote.state.lock().await;
        self.refresh(remote, &mut state).await.map(|_| ())
    }

    /// Called when a token names a `kid` the current keys lack (or no keys are loaded): fetches
    /// again unless one fetch already ran within the cooldown. Returns whether the keys changed
    /// since `seen_generation`, in which case the token is worth verifying again.
    pub async fn refresh_for_unknown_kid(&self, seen_generation: u64) -> bool {
        let Some(remote) = &self.remote else {
            return false;
        };
        // Fast path: no fetch in flight and one ran within the cooldown. The keys are swapped
        // before `in_flight` clears, so the generation read here is current.
        if !remote.in_flight.load(Ordering::Acquire) && remote.within_cooldown() {
            return self.generation() != seen_generation;
        }
        let mut state = remote.state.lock().await;
        // Someone else refreshed while this request waited for the lock.
        if self.generation() != seen_generation {
            return true;
        }
        if remote.within_cooldown() {
            return false;
        }
        remote
            .last_forced_ms
            .store(remote.now_ms(), Ordering::Release);
        remote.in_flight.store(true, Ordering::Release);
        let _guard = InFlight(&remote.in_flight);
        let _ = self.refresh(remote, &mut state).await;
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
