//! The issuer's state behind one trait: refresh-token families (rotate-or-detect as one
//! compare-and-set on the family's generation), login-failure counters, client-rate buckets,
//! an access-token denylist, first-seen times of signing keys, and garbage collection.
//!
//! Two backends run the same statements (`sql.rs`): embedded SQLite (single node) and
//! PostgreSQL (several replicas). Every method takes the time from the caller, in Unix
//! milliseconds, so the store has no clock of its own and tests control time.

pub mod postgres;
pub mod sql;
pub mod sqlite;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use thiserror::Error;

/// Why the store could not answer. Every one of these makes `/login` and `/refresh` answer
/// 503: the issuer never fails open.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("store unreachable: {0}")]
    Unavailable(String),
    #[error("store timed out after {0:?}")]
    TimedOut(std::time::Duration),
    #[error("store schema: {0}")]
    Schema(String),
}

pub type StoreResult<T> = Result<T, StoreError>;
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = StoreResult<T>> + Send + 'a>>;

/// A new refresh-token family (one login).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFamily {
    /// 32 lower-case hex characters (128 random bits).
    pub id: String,
    pub sub: String,
    pub now: i64,
    /// When the family dies whatever happens (absolute lifetime; rotation never moves it).
    pub expires_at: i64,
}

/// What a family's record says, as far as a refresh needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    pub sub: String,
    pub generation: i64,
    pub expires_at: i64,
}

/// What presenting generation `g` of a family did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// `g` was current: the family moved to `g + 1` (this caller won the compare-and-set).
    Rotated(Family),
    /// `g` is the immediately previous generation, presented again within the grace window:
    /// the same successor (`g + 1`) is handed out again; nothing changed.
    Grace(Family),
    /// `g` is older (or previous, after the grace window): the family is revoked now.
    ReuseDetected,
    /// Revoked earlier (logout, reuse, "everywhere").
    Revoked,
    /// Past its absolute or idle lifetime.
    Expired,
    /// No such family (never existed, or collected).
    Unknown,
}

/// How one rotation is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotateRequest<'a> {
    pub id: &'a str,
    pub generation: i64,
    pub now: i64,
    /// A family unused for this long is expired.
    pub idle_ms: i64,
    /// How long the previous generation still gets the current successor.
    pub grace_ms: i64,
}

/// Per-username login failures inside the counting window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Failures {
    pub count: i64,
    pub last_at: i64,
}

/// A token bucket: `per_minute` tokens a minute, at most `burst` saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub per_minute: i64,
    pub burst: i64,
}

/// One refused access token: its issuer, its `jti`, and when the token expires anyway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub iss: String,
    pub jti: String,
    pub expires_at: i64,
}

/// How long to keep what garbage collection would otherwise remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Revoked and expired families are kept this long after they ended (reuse of a token of
    /// a collected family is `Unknown`, still a 401).
    pub families_ms: i64,
    /// Failure counters and buckets unused for this long are dropped.
    pub counters_ms: i64,
}

/// The issuer's store. Implementations run `sql.rs`'s statements; the conformance suite in
/// `tests/issuer_store.rs` runs against each.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Which backend, for `/readyz` and logs (`sqlite`, `postgres`).
    fn kind(&self) -> &'static str;
    /// Applies the migrations not applied yet (each in one transaction, versions recorded).
    fn migrate(&self) -> StoreFuture<'_, ()>;
    /// The highest migration applied.
    fn schema_version(&self) -> StoreFuture<'_, i64>;
    /// Answers when the store is reachable.
    fn ping(&self) -> StoreFuture<'_, ()>;

    fn create_family<'a>(&'a self, family: &'a NewFamily) -> StoreFuture<'a, ()>;
    /// Rotate-or-detect: one `UPDATE … WHERE id = $1 AND generation = $2 … RETURNING`; only
    /// when it changes nothing is the record read, to tell grace, reuse and the rest apart.
    fn rotate<'a>(&'a self, request: RotateRequest<'a>) -> StoreFuture<'a, Rotation>;
    /// Revokes one family (a no-op on a revoked or unknown one); true when this call did.
    fn revoke_family<'a>(&'a self, id: &'a str, now: i64, reason: &'a str)
    -> StoreFuture<'a, bool>;
    /// The subject of a live (not revoked, not expired) family.
    fn family_subject<'a>(&'a self, id: &'a str, now: i64) -> StoreFuture<'a, Option<String>>;
    /// Revokes every live family of `sub`; how many.
    fn revoke_subject<'a>(
        &'a self,
        sub: &'a str,
        now: i64,
        reason: &'a str,
    ) -> StoreFuture<'a, u64>;

    /// The failures of `username` counted now (older than `window_ms` since the last: none).
    fn failures<'a>(
        &'a self,
        username: &'a str,
        now: i64,
        window_ms: i64,
    ) -> StoreFuture<'a, Failures>;
    /// Counts one failure (restarting the count after `window_ms` without one).
    fn record_failure<'a>(
        &'a self,
        username: &'a str,
        now: i64,
        window_ms: i64,
    ) -> StoreFuture<'a, Failures>;
    fn clear_failures<'a>(&'a self, username: &'a str) -> StoreFuture<'a, ()>;
    /// Takes one token from bucket `key`; false when it is empty.
    fn take_token<'a>(&'a self, key: &'a str, now: i64, bucket: Bucket) -> StoreFuture<'a, bool>;

    /// Refuses access token `(iss, jti)` until `expires_at` (written at `now`).
    fn deny<'a>(
        &'a self,
        iss: &'a str,
        jti: &'a str,
        expires_at: i64,
        now: i64,
    ) -> StoreFuture<'a, ()>;
    /// The denials written at or after `since` that have not expired at `now`.
    fn denials(&self, since: i64, now: i64) -> StoreFuture<'_, Vec<Denial>>;

    /// When signing key `kid` was first seen by any replica (recorded now if never).
    fn key_first_seen<'a>(&'a self, kid: &'a str, now: i64) -> StoreFuture<'a, i64>;

    /// Deletes ended families, stale counters and expired denylist rows; how many rows.
    fn collect_garbage(&self, now: i64, keep: Retention) -> StoreFuture<'_, u64>;
}

/// Where the store lives, as the config says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// `issuer.data_dir`/`issuer.sqlite`.
    Sqlite(std::path::PathBuf),
    /// A `postgres://` URL (the password, if any, is never logged: see `redacted`).
    Postgres(String),
}

impl StoreSpec {
    /// The location with any password hidden.
    pub fn redacted(&self) -> String {
        match self {
            StoreSpec::Sqlite(path) => format!("sqlite:{}", path.display()),
            StoreSpec::Postgres(url) => postgres::redact(url),
        }
    }

    /// Whether several gateway processes may share it.
    pub fn is_shared(&self) -> bool {
        matches!(self, StoreSpec::Postgres(_))
    }
}

/// Opens the store `spec` names. SQLite opens (and migrates) now; PostgreSQL connects on first
/// use, so a gateway starts while its database is down (the issuer answers 503 until it is up).
pub fn open(spec: &StoreSpec) -> StoreResult<Arc<dyn Store>> {
    match spec {
        StoreSpec::Sqlite(path) => Ok(Arc::new(sqlite::SqliteStore::open(path)?)),
        StoreSpec::Postgres(url) => Ok(Arc::new(postgres::PostgresStore::new(url)?)),
    }
}

/// The decision `rotate` takes when its compare-and-set changed nothing, from the family's
/// record: pure, shared by every backend.
pub fn judge_stale(record: Option<&FamilyRecord>, request: &RotateRequest<'_>) -> (Rotation, bool) {
    let Some(r) = record else {
        return (Rotation::Unknown, false);
    };
    if r.revoked_at.is_some() {
        return (Rotation::Revoked, false);
    }
    if request.now >= r.expires_at || request.now >= r.last_used + request.idle_ms {
        return (Rotation::Expired, false);
    }
    let family = Family {
        sub: r.sub.clone(),
        generation: r.generation,
        expires_at: r.expires_at,
    };
    if r.generation == request.generation + 1 && request.now < r.rotated_at + request.grace_ms {
        return (Rotation::Grace(family), false);
    }
    // Any other generation: an old token came back (or one that was never handed out, which
    // a valid MAC makes impossible): the family is compromised.
    (Rotation::ReuseDetected, true)
}

/// A family's row, as `judge_stale` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyRecord {
    pub sub: String,
    pub generation: i64,
    pub expires_at: i64,
    pub last_used: i64,
    pub rotated_at: i64,
    pub revoked_at: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(generation: i64, rotated_at: i64, revoked: Option<i64>) -> FamilyRecord {
        FamilyRecord {
            sub: "alice".into(),
            generation,
            expires_at: 100_000,
            last_used: rotated_at,
            rotated_at,
            revoked_at: revoked,
        }
    }

    #[test]
    fn stale_presentations_are_judged_from_the_record() {
        let family = Family {
            sub: "alice".into(),
            generation: 3,
            expires_at: 100_000,
        };
        // (record, presented generation, now, expected, revoke)
        let rows: Vec<(Option<FamilyRecord>, i64, i64, Rotation, bool)> = vec![
            (None, 1, 10, Rotation::Unknown, false),
            (
                Some(record(3, 1000, Some(1500))),
                2,
                1600,
                Rotation::Revoked,
                false,
            ),
            (
                Some(record(3, 1000, None)),
                2,
                100_000,
                Rotation::Expired,
                false,
            ),
            // idle: unused for idle_ms (5000)
            (
                Some(record(3, 1000, None)),
                2,
                6000,
                Rotation::Expired,
                false,
            ),
            (
                Some(record(3, 1000, None)),
                2,
                1999,
                Rotation::Grace(family.clone()),
                false,
            ),
            // the grace window is open at its start and closed at its end
            (
                Some(record(3, 1000, None)),
                2,
                1000,
                Rotation::Grace(family),
                false,
            ),
            (
                Some(record(3, 1000, None)),
                2,
                2000,
                Rotation::ReuseDetected,
                true,
            ),
            (
                Some(record(3, 1000, None)),
                1,
                1100,
                Rotation::ReuseDetected,
                true,
            ),
            (
                Some(record(3, 1000, None)),
                7,
                1100,
                Rotation::ReuseDetected,
                true,
            ),
        ];
        for (i, (rec, generation, now, expected, revoke)) in rows.into_iter().enumerate() {
            let request = RotateRequest {
                id: "f",
                generation,
                now,
                idle_ms: 5000,
                grace_ms: 1000,
            };
            assert_eq!(
                judge_stale(rec.as_ref(), &request),
                (expected, revoke),
                "row {i}"
            );
        }
    }
}
