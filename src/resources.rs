//! The registry of live things that outlive a snapshot: upstreams (connection pools, health
//! checks, idle sweeps), providers' key stores (fetched keys, refresher), and the issuer's
//! store with its denylist and its password-hashing threads.
//!
//! Each is kept under its name with the spec it was built from. A build (`stage`, as
//! `state::Plan::go_live` does) reuses every resource whose spec is unchanged, creates the
//! others (a new remote key store fetches once first), and only then installs them: new ones
//! start their tasks, and those no longer named leave the registry, which stops their tasks
//! (each task watches a stop channel the registry entry owns). A build that fails changes
//! nothing. The registry knows specs and live things, not snapshots.
//!
//! The registry's lock is taken while a snapshot is built, never by a request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use thiserror::Error;
use tokio::sync::watch;

use crate::issuer::denylist::Denylist;
use crate::issuer::password::Hasher;
use crate::issuer::store::{self as issuer_store, Retention, Store, StoreSpec};
use crate::keys::store::{KeysSpec, ProviderKeys};
use crate::metrics::RouteStats;
use crate::proxy::client::{Upstream, UpstreamSpec};

/// Why a plan could not be made live.
#[derive(Debug, Error)]
pub enum ResourceError {
    #[error("upstream {name}: {reason}")]
    Upstream { name: String, reason: String },
    #[error("provider {provider}: {reason} (fail_fast is set)")]
    Keys { provider: String, reason: String },
    #[error("issuer store {location}: {reason}")]
    Store { location: String, reason: String },
    #[error("issuer password hashing: {0}")]
    Hashing(String),
}

/// Whether resources run their tasks: a gateway's do; `explain`'s do not (it makes no
/// connection and fetches keys only when asked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Running,
    Detached,
}

/// Live upstreams and key stores, by name.
#[derive(Debug)]
pub struct Resources {
    mode: Mode,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    upstreams: HashMap<Arc<str>, Entry<UpstreamSpec, Upstream>>,
    keys: HashMap<Arc<str>, Entry<KeysSpec, ProviderKeys>>,
    /// Request counts by route name: a route that keeps its name keeps its counts.
    routes: HashMap<Arc<str>, Arc<RouteStats>>,
    /// The issuer's store (its garbage collection runs while it is held) and the copy of its
    /// denylist (kept with it across reloads, so a reload never forgets a revocation).
    store: Option<(Entry<StoreSpec, dyn Store>, Arc<Denylist>)>,
    /// The issuer's password-hashing threads, by (threads, queue): kept across reloads, so a
    /// reload neither starts new threads (with new working buffers) nor runs two pools.
    hasher: Option<(HashingSpec, Arc<Hasher>)>,
}

/// What a hashing pool is built from: its threads and its queue.
pub type HashingSpec = (usize, usize);

/// One live resource, the spec it was built from, and the stop signal of its tasks (sent by
/// dropping the sender, when the entry leaves the registry).
#[derive(Debug)]
struct Entry<S, T: ?Sized> {
    spec: S,
    live: Arc<T>,
    _stop: Option<watch::Sender<bool>>,
}

/// One build in progress: what it reuses and what it made that the registry does not hold
/// yet. Dropped without `install`, it changes nothing (and what it made is dropped unused).
#[derive(Debug)]
pub struct Staging<'r> {
    resources: &'r Resources,
    upstreams: Vec<(UpstreamSpec, Arc<Upstream>)>,
    keys: Vec<(Arc<str>, KeysSpec, Arc<ProviderKeys>)>,
    routes: Vec<(Arc<str>, Arc<RouteStats>)>,
    /// The store the plan uses.
    store: Option<StagedStore>,
    /// The hashing pool the plan uses.
    hasher: Option<(HashingSpec, Arc<Hasher>)>,
}

/// The issuer's store a build uses, its denylist, and whether they are new.
#[derive(Debug)]
struct StagedStore {
    spec: StoreSpec,
    live: Arc<dyn Store>,
    denylist: Arc<Denylist>,
    new: bool,
}

impl Default for Resources {
    fn default() -> Self {
        Resources::new()
    }
}

impl Resources {
    /// A registry whose resources run their tasks (on the runtime that builds the snapshot).
    pub fn new() -> Self {
        Resources {
            mode: Mode::Running,
            held: Mutex::default(),
        }
    }

    /// A registry whose resources run nothing: no health check, no sweep, no key refresh.
    pub fn detached() -> Self {
        Resources {
            mode: Mode::Detached,
            held: Mutex::default(),
        }
    }

    /// Starts a build: look resources up by spec, then `install`.
    pub fn stage(&self) -> Staging<'_> {
        Staging {
            resources: self,
            upstreams: Vec::new(),
            keys: Vec::new(),
            routes: Vec::new(),
            store: None,
            hasher: None,
        }
    }

    /// Stops every task and forgets every resource (at shutdown).
    pub fn clear(&self) {
        *self.lock() = Held::default();
    }

    /// Names of the upstreams and providers held now, sorted.
    pub fn names(&self) -> (Vec<String>, Vec<String>) {
        let held = self.lock();
        let sorted = |names: Vec<String>| {
            let mut names = names;
            names.sort_unstable();
            names
        };
        (
            sorted(held.upstreams.keys().map(|n| n.to_string()).collect()),
            sorted(held.keys.keys().map(|n| n.to_string()).collect()),
        )
    }

    fn lock(&self) -> MutexGuard<'_, Held> {
        // A panic while the lock was held cannot leave `Held` half-changed (each step is one
        // insert or retain), so a poisoned lock is still usable.
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The first fetch of each new remote key store, concurrently. Only a `fail_fast` provider's
/// failure is an error; the others answer `keys_unavailable` until their refresher succeeds.
async fn first_fetch(
    fresh: &[(Arc<str>, KeysSpec, Arc<ProviderKeys>)],
) -> Result<(), ResourceError> {
    let mut fetches = tokio::task::JoinSet::new();
    for (name, _, keys) in fresh.iter().filter(|(_, _, keys)| keys.is_remote()) {
        let keys = keys.clone();
        let name = name.to_string();
        let fail_fast = keys.remote_settings().is_some_and(|s| s.fail_fast);
        fetches.spawn(async move { (name, fail_fast, keys.initial_load().await) });
    }
    let mut failure = None;
    while let Some(joined) = fetches.join_next().await {
        if let Ok((provider, true, Err(e))) = joined {
            failure.get_or_insert(ResourceError::Keys {
                provider,
                reason: e.to_string(),
            });
        }
    }
    failure.map_or(Ok(()), Err)
}

impl Staging<'_> {
    /// The live upstream of `spec`: the held one when its spec is the same, else a new one.
    pub fn upstream(&mut self, spec: UpstreamSpec) -> Result<Arc<Upstream>, ResourceError> {
        if let Some(entry) = self.resources.lock().upstreams.get(&spec.name)
            && entry.spec == spec
        {
            return Ok(entry.live.clone());
        }
        let live =
            Arc::new(
                Upstream::new(spec.clone()).map_err(|reason| ResourceError::Upstream {
                    name: spec.name.to_string(),
                    reason,
                })?,
            );
        self.upstreams.push((spec, live.clone()));
        Ok(live)
    }

    /// The live key store of provider `name`: the held one when its spec is the same, else a
    /// new one.
    pub fn keys(&mut self, name: &str, spec: KeysSpec) -> Arc<ProviderKeys> {
        if let Some(entry) = self.resources.lock().keys.get(name)
            && entry.spec == spec
        {
            return entry.live.clone();
        }
        let live = Arc::new(ProviderKeys::new(name, &spec));
        self.keys.push((name.into(), spec, live.clone()));
        live
    }

    /// The stats of route `name`: the held ones, else `fresh`.
    pub fn route_stats(&mut self, name: &str, fresh: &Arc<RouteStats>) -> Arc<RouteStats> {
        if let Some(held) = self.resources.lock().routes.get(name) {
            return held.clone();
        }
        self.routes.push((name.into(), fresh.clone()));
        fresh.clone()
    }

    /// The issuer's store at `spec` and its denylist: the held ones when the spec is the
    /// same, else opened now (a SQLite file is created and migrated; PostgreSQL connects on
    /// first use) with an empty denylist.
    pub fn store(
        &mut self,
        spec: &StoreSpec,
    ) -> Result<(Arc<dyn Store>, Arc<Denylist>), ResourceError> {
        if let Some((entry, denylist)) = &self.resources.lock().store
            && entry.spec == *spec
        {
            self.store = Some(StagedStore {
                spec: spec.clone(),
                live: entry.live.clone(),
                denylist: denylist.clone(),
                new: false,
            });
            return Ok((entry.live.clone(), denylist.clone()));
        }
        let live = issuer_store::open(spec).map_err(|e| ResourceError::Store {
            location: spec.redacted(),
            reason: e.to_string(),
        })?;
        let denylist = Arc::new(Denylist::default());
        self.store = Some(StagedStore {
            spec: spec.clone(),
            live: live.clone(),
            denylist: denylist.clone(),
            new: true,
        });
        Ok((live, denylist))
    }

    /// The issuer's hashing pool of `spec`: the held one when it is the same, else new.
    pub fn hasher(&mut self, spec: HashingSpec) -> Result<Arc<Hasher>, ResourceError> {
        let held = self
            .resources
            .lock()
            .hasher
            .as_ref()
            .filter(|(held, _)| *held == spec)
            .map(|(_, live)| live.clone());
        let live = match held {
            Some(live) => live,
            None => Arc::new(
                Hasher::new(spec.0, spec.1).map_err(|e| ResourceError::Hashing(e.to_string()))?,
            ),
        };
        self.hasher = Some((spec, live.clone()));
        Ok(live)
    }

    /// The first fetch of each new remote key store (not for a detached registry).
    pub async fn load(&self) -> Result<(), ResourceError> {
        if self.resources.mode == Mode::Detached {
            return Ok(());
        }
        first_fetch(&self.keys).await
    }

    /// Puts the new resources in, starting their tasks, and drops every held one whose name
    /// is not in `upstreams`, `providers` or `routes` (which stops its tasks).
    pub fn install(self, upstreams: &[&str], providers: &[&str], routes: &[&str]) {
        let running = self.resources.mode == Mode::Running;
        let mut held = self.resources.lock();
        for (spec, live) in self.upstreams {
            let stop = running.then(|| {
                let (stop, stopped) = watch::channel(false);
                if live.spec.settings.health_check.is_some() {
                    tokio::spawn(live.clone().run_health_checks(stopped.clone()));
                }
                tokio::spawn(live.clone().close_idle_connections(stopped));
                stop
            });
            let entry = Entry {
                spec,
                live,
                _stop: stop,
            };
            held.upstreams.insert(entry.spec.name.clone(), entry);
        }
        for (name, spec, live) in self.keys {
            let stop = (running && live.is_remote()).then(|| {
                let (stop, stopped) = watch::channel(false);
                tokio::spawn(live.clone().run_refresher(stopped));
                stop
            });
            held.keys.insert(
                name,
                Entry {
                    spec,
                    live,
                    _stop: stop,
                },
            );
        }
        match self.store {
            Some(StagedStore {
                spec,
                live,
                denylist,
                new: true,
            }) => {
                let stop = running.then(|| {
                    let (stop, stopped) = watch::channel(false);
                    tokio::spawn(collect_garbage(live.clone(), stopped.clone()));
                    tokio::spawn(denylist.clone().run(live.clone(), unix_ms, stopped));
                    stop
                });
                let entry = Entry {
                    spec,
                    live,
                    _stop: stop,
                };
                held.store = Some((entry, denylist));
            }
            Some(StagedStore { new: false, .. }) => {}
            None => held.store = None,
        }
        held.hasher = self.hasher;
        held.routes.extend(self.routes);
        held.routes.retain(|name, _| routes.contains(&&**name));
        held.upstreams
            .retain(|name, _| upstreams.contains(&&**name));
        held.keys.retain(|name, _| providers.contains(&&**name));
    }
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// How often the issuer's store is swept, and what is kept.
const GC_INTERVAL: std::time::Duration = std::time::Duration::from_secs(600);
const GC_RETENTION: Retention = Retention {
    families_ms: 24 * 3_600_000,
    counters_ms: 24 * 3_600_000,
};

/// Sweeps ended refresh families, stale counters and expired denials until `stop` changes.
async fn collect_garbage(store: Arc<dyn Store>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(GC_INTERVAL);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        match store.collect_garbage(unix_ms(), GC_RETENTION).await {
            Ok(removed) => tracing::debug!(removed, "issuer store: garbage collected"),
            Err(e) => tracing::warn!(error = %e, "issuer store: garbage collection failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hashing_pool_is_kept_while_its_spec_is_unchanged() {
        let resources = Resources::detached();
        let build = |spec: Option<HashingSpec>| {
            let mut staging = resources.stage();
            let pool = spec.map(|s| staging.hasher(s).unwrap());
            staging.install(&[], &[], &[]);
            pool
        };
        let first = build(Some((2, 8))).unwrap();
        // A reload with the same settings: the same threads (and their working buffers).
        let again = build(Some((2, 8))).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        // Other settings: a new pool, and the registry holds that one.
        let other = build(Some((3, 8))).unwrap();
        assert!(!Arc::ptr_eq(&first, &other));
        assert!(Arc::ptr_eq(&other, &build(Some((3, 8))).unwrap()));
        // A plan without the issuer lets it go (its threads end when the last user drops it).
        assert!(build(None).is_none());
        assert!(resources.lock().hasher.is_none());
        // A build that is not installed changes nothing.
        let mut staging = resources.stage();
        let unused = staging.hasher((2, 8)).unwrap();
        drop(staging);
        assert!(resources.lock().hasher.is_none());
        drop(unused);
    }
}
