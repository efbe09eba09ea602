//! The registry of live things that outlive a snapshot: upstreams (connection pools, health
//! checks, idle sweeps) and providers' key stores (fetched keys, refresher).
//!
//! Each is kept under its name with the spec it was built from. Building a snapshot from a
//! plan reuses every resource whose spec is unchanged, creates the others (a new remote key
//! store fetches once first), and only then installs them: new ones start their tasks, and
//! those the plan no longer names leave the registry, which stops their tasks (each task
//! watches a stop channel the registry entry owns). A build that fails changes nothing.
//!
//! The registry's lock is taken while a snapshot is built, never by a request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use thiserror::Error;
use tokio::sync::watch;

use crate::keys::store::{KeysSpec, ProviderKeys};
use crate::proxy::client::{Upstream, UpstreamSpec};
use crate::state::{Plan, Snapshot};

/// Why a plan could not be made live.
#[derive(Debug, Error)]
pub enum ResourceError {
    #[error("upstream {name}: {reason}")]
    Upstream { name: String, reason: String },
    #[error("provider {provider}: {reason} (fail_fast is set)")]
    Keys { provider: String, reason: String },
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
}

/// One live resource, the spec it was built from, and the stop signal of its tasks (sent by
/// dropping the sender, when the entry leaves the registry).
#[derive(Debug)]
struct Entry<S, T> {
    spec: S,
    live: Arc<T>,
    _stop: Option<watch::Sender<bool>>,
}

/// What a build made that the registry does not hold yet.
struct Fresh {
    upstreams: Vec<(UpstreamSpec, Arc<Upstream>)>,
    keys: Vec<(Arc<str>, KeysSpec, Arc<ProviderKeys>)>,
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

    /// The snapshot of `plan`, with the live upstreams and key stores of its specs. New remote
    /// key stores fetch once first, concurrently (each bounded by its fetch timeout): when that
    /// fails for a `fail_fast` provider the build fails and the registry is left as it was.
    pub async fn snapshot(&self, plan: Plan) -> Result<Snapshot, ResourceError> {
        let mut fresh = Fresh {
            upstreams: Vec::new(),
            keys: Vec::new(),
        };
        let snapshot = {
            let held = self.lock();
            plan.attach(
                |spec| match held.upstreams.get(&spec.name) {
                    Some(entry) if entry.spec == spec => Ok(entry.live.clone()),
                    _ => {
                        let live = Arc::new(Upstream::new(spec.clone()).map_err(|reason| {
                            ResourceError::Upstream {
                                name: spec.name.to_string(),
                                reason,
                            }
                        })?);
                        fresh.upstreams.push((spec, live.clone()));
                        Ok(live)
                    }
                },
                |name, spec| match held.keys.get(name) {
                    Some(entry) if entry.spec == spec => Ok(entry.live.clone()),
                    _ => {
                        let live = Arc::new(ProviderKeys::new(name, &spec));
                        fresh.keys.push((name.into(), spec, live.clone()));
                        Ok(live)
                    }
                },
            )?
        };
        if self.mode == Mode::Running {
            first_fetch(&fresh.keys).await?;
        }
        self.install(fresh, &snapshot);
        Ok(snapshot)
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

    /// Puts the fresh resources in, starting their tasks, and drops what `snapshot` does not
    /// name.
    fn install(&self, fresh: Fresh, snapshot: &Snapshot) {
        let mut held = self.lock();
        for (spec, live) in fresh.upstreams {
            let stop = (self.mode == Mode::Running).then(|| {
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
        for (name, spec, live) in fresh.keys {
            let stop = (self.mode == Mode::Running && live.is_remote()).then(|| {
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
        held.upstreams
            .retain(|name, _| snapshot.upstreams.iter().any(|u| u.spec.name == *name));
        held.keys
            .retain(|name, _| snapshot.providers.index_of(name).is_some());
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
