//! The access-token denylist as the request path reads it: an in-memory copy of the store's
//! `(iss, jti)` denials, replaced whole (never locked) when a sync or a local logout adds to
//! it. Requests only read it; the store is asked by the sync task, every `sync_every`, for
//! the denials written since its last read (less a margin for replicas' clock skew), so a
//! token revoked on one replica is refused by every replica within one interval.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::watch;

use super::store::{Denial, Store, StoreError};

/// How far back each incremental read reaches before the previous one started: covers
/// replicas whose clocks differ by up to this much, and writes committed late.
pub const SKEW_MARGIN_MS: i64 = 5 * 60_000;

/// How often an unwanted denylist's task looks whether it is wanted.
const IDLE_CHECK: Duration = Duration::from_secs(5);

/// Denied `jti`s by issuer, each with the token's expiry (Unix ms).
pub type Entries = HashMap<String, HashMap<Box<str>, i64>>;

/// The live denylist.
#[derive(Debug, Default)]
pub struct Denylist {
    entries: ArcSwap<Entries>,
    /// When the last successful read from the store started (Unix ms); 0: never.
    synced_from: AtomicI64,
    /// Whether any issuer wants it kept (`issuer.revocation.enabled`).
    wanted: AtomicBool,
    interval_ms: AtomicU64,
}

/// Whether a token may pass the denylist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Denied,
    /// The store has not been read once yet: nothing can be said (refused, never allowed).
    NotLoaded,
}

/// `entries` with `denials` added and what expired by `now` dropped.
pub fn merge(entries: &Entries, denials: &[Denial], now: i64) -> Entries {
    let mut merged: Entries = entries
        .iter()
        .map(|(iss, jtis)| {
            let live = jtis
                .iter()
                .filter(|(_, expires)| **expires > now)
                .map(|(jti, expires)| (jti.clone(), *expires))
                .collect::<HashMap<_, _>>();
            (iss.clone(), live)
        })
        .filter(|(_, jtis)| !jtis.is_empty())
        .collect();
    for d in denials.iter().filter(|d| d.expires_at > now) {
        let expires = merged
            .entry(d.iss.clone())
            .or_default()
            .entry(d.jti.as_str().into())
            .or_insert(d.expires_at);
        *expires = (*expires).max(d.expires_at);
    }
    merged
}

impl Denylist {
    /// A denylist already read once, holding `denials` (benches, tests).
    pub fn from_denials(denials: &[Denial], now: i64) -> Denylist {
        let list = Denylist::default();
        list.add(denials, now);
        list.synced_from.store(now.max(1), Ordering::Release);
        list
    }

    /// Marks the denylist as wanted, read from the store every `every`.
    pub fn want(&self, every: Duration) {
        self.interval_ms
            .store(every.as_millis().max(1) as u64, Ordering::Relaxed);
        self.wanted.store(true, Ordering::Relaxed);
    }

    pub fn is_loaded(&self) -> bool {
        self.synced_from.load(Ordering::Acquire) > 0
    }

    /// The request path's question: is `(iss, jti)` refused at `now` (Unix ms)?
    pub fn verdict(&self, iss: &str, jti: &str, now: i64) -> Verdict {
        if !self.is_loaded() {
            return Verdict::NotLoaded;
        }
        let entries = self.entries.load();
        match entries.get(iss).and_then(|jtis| jtis.get(jti)) {
            Some(expires) if *expires > now => Verdict::Denied,
            _ => Verdict::Allowed,
        }
    }

    /// How many denials are held.
    pub fn len(&self) -> usize {
        self.entries.load().values().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds denials now (this replica's logout; others read them at their next sync).
    pub fn add(&self, denials: &[Denial], now: i64) {
        self.entries
            .rcu(|entries| Arc::new(merge(entries, denials, now)));
    }

    /// Reads what the store holds that is new since the last read, and adds it.
    pub async fn sync(&self, store: &dyn Store, now: i64) -> Result<usize, StoreError> {
        let last = self.synced_from.load(Ordering::Acquire);
        let since = if last > 0 { last - SKEW_MARGIN_MS } else { 0 };
        let denials = store.denials(since, now).await?;
        self.add(&denials, now);
        // Never backwards: a slow read that started earlier does not move it back.
        self.synced_from.fetch_max(now.max(1), Ordering::AcqRel);
        Ok(denials.len())
    }

    /// Syncs every interval while wanted, until `stop` changes.
    pub async fn run(
        self: Arc<Self>,
        store: Arc<dyn Store>,
        now: impl Fn() -> i64 + Send,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut failing = false;
        loop {
            // Not wanted yet (no issuer with revocation on): look again now and then.
            let every = match self.interval_ms.load(Ordering::Relaxed) {
                0 => IDLE_CHECK,
                ms => Duration::from_millis(ms),
            };
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
            if !self.wanted.load(Ordering::Relaxed) {
                continue;
            }
            match self.sync(&*store, now()).await {
                Ok(_) if failing => {
                    failing = false;
                    tracing::info!("issuer store: denylist read again");
                }
                Ok(_) => {}
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "issuer store: denylist not read; the last copy stays in force");
                }
                Err(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denial(iss: &str, jti: &str, expires_at: i64) -> Denial {
        Denial {
            iss: iss.into(),
            jti: jti.into(),
            expires_at,
        }
    }

    #[test]
    fn merging_adds_denials_and_drops_what_expired() {
        let start = merge(
            &Entries::new(),
            &[
                denial("a", "1", 100),
                denial("a", "2", 50),
                denial("b", "1", 80),
            ],
            10,
        );
        type Held = &'static [(&'static str, &'static str, i64)];
        let cases: &[(&str, &[Denial], i64, Held)] = &[
            (
                "nothing new",
                &[],
                10,
                &[("a", "1", 100), ("a", "2", 50), ("b", "1", 80)],
            ),
            (
                "expired dropped",
                &[],
                60,
                &[("a", "1", 100), ("b", "1", 80)],
            ),
            ("issuer emptied", &[], 90, &[("a", "1", 100)]),
            (
                "new one",
                &[denial("c", "9", 70)],
                10,
                &[
                    ("a", "1", 100),
                    ("a", "2", 50),
                    ("b", "1", 80),
                    ("c", "9", 70),
                ],
            ),
            (
                "an expired denial is not added",
                &[denial("c", "9", 5)],
                10,
                &[("a", "1", 100), ("a", "2", 50), ("b", "1", 80)],
            ),
            (
                "the later expiry wins",
                &[denial("a", "2", 40), denial("b", "1", 95)],
                10,
                &[("a", "1", 100), ("a", "2", 50), ("b", "1", 95)],
            ),
        ];
        for (name, denials, now, want) in cases {
            let merged = merge(&start, denials, *now);
            let mut got: Vec<(&str, &str, i64)> = merged
                .iter()
                .flat_map(|(iss, jtis)| jtis.iter().map(move |(j, e)| (iss.as_str(), &**j, *e)))
                .collect();
            got.sort_unstable();
            assert_eq!(&got, want, "{name}");
        }
    }

    #[test]
    fn the_verdict_refuses_until_loaded_then_reads_the_copy() {
        let list = Denylist::default();
        assert_eq!(list.verdict("a", "1", 10), Verdict::NotLoaded);
        list.synced_from.store(5, Ordering::Release);
        assert_eq!(list.verdict("a", "1", 10), Verdict::Allowed);
        list.add(&[denial("a", "1", 100)], 10);
        assert_eq!(list.verdict("a", "1", 10), Verdict::Denied);
        assert_eq!(list.verdict("b", "1", 10), Verdict::Allowed);
        assert_eq!(list.verdict("a", "2", 10), Verdict::Allowed);
        assert_eq!(
            list.verdict("a", "1", 100),
            Verdict::Allowed,
            "expired anyway"
        );
        assert_eq!(list.len(), 1);
    }
}
