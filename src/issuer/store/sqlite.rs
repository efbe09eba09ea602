//! The embedded store: one SQLite file (WAL), for a single gateway process. Statements run on
//! the blocking pool under the connection's lock (SQLite writes one at a time anyway); the
//! request path never takes this lock, only the issuer's endpoints do.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use super::sql;
use super::{
    Bucket, Denial, Failures, FamilyRecord, NewFamily, Retention, RotateRequest, Rotation, Store,
    StoreError, StoreFuture, StoreResult, judge_stale,
};

/// How long a statement waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct SqliteStore {
    connection: Arc<Mutex<Connection>>,
}

/// `$n` → `?n`: the same numbered parameters in SQLite's spelling.
fn local(statement: &str) -> String {
    statement.replace('$', "?")
}

fn failed(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl SqliteStore {
    /// Opens (creating) the database file, in WAL mode, and applies the migrations.
    pub fn open(path: &Path) -> StoreResult<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let connection = Connection::open(path).map_err(failed)?;
        connection.busy_timeout(BUSY_TIMEOUT).map_err(failed)?;
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(failed)?;
        connection
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(failed)?;
        let store = SqliteStore {
            connection: Arc::new(Mutex::new(connection)),
        };
        store.blocking(migrate)?;
        Ok(store)
    }

    /// Runs `f` with the connection, here (for `open`).
    fn blocking<T>(&self, f: impl FnOnce(&mut Connection) -> StoreResult<T>) -> StoreResult<T> {
        let mut connection = self
            .connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut connection)
    }

    /// Runs `f` with the connection on the blocking pool.
    fn run<'a, T: Send + 'static>(
        &'a self,
        f: impl FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreFuture<'a, T> {
        let connection = self.connection.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let mut connection = connection
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                f(&mut connection)
            })
            .await
            .map_err(|e| StoreError::Unavailable(format!("store task failed: {e}")))?
        })
    }
}

fn migrate(connection: &mut Connection) -> StoreResult<()> {
    connection
        .execute_batch(sql::CREATE_MIGRATIONS_TABLE)
        .map_err(failed)?;
    for (version, statements) in sql::MIGRATIONS {
        let tx = connection
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(failed)?;
        let applied: i64 = tx
            .query_row(sql::SCHEMA_VERSION, [], |row| row.get(0))
            .map_err(failed)?;
        if applied >= *version {
            continue;
        }
        tx.execute_batch(statements)
            .map_err(|e| StoreError::Schema(format!("migration {version}: {e}")))?;
        tx.execute(&local(sql::RECORD_MIGRATION), params![version, now_ms()])
            .map_err(failed)?;
        tx.commit().map_err(failed)?;
    }
    Ok(())
}

/// Runs a failure-counter statement ($1 username, $2 now, $3 window) and reads its row (none:
/// no failures counted).
fn failures(
    c: &mut Connection,
    statement: &str,
    username: &str,
    now: i64,
    window_ms: i64,
) -> StoreResult<Failures> {
    c.prepare_cached(&local(statement))
        .and_then(|mut s| {
            s.query_row(params![username, now, window_ms], |row| {
                Ok(Failures {
                    count: row.get(0)?,
                    last_at: row.get(1)?,
                })
            })
            .optional()
        })
        .map(Option::unwrap_or_default)
        .map_err(failed)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Store for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn migrate(&self) -> StoreFuture<'_, ()> {
        self.run(migrate)
    }

    fn schema_version(&self) -> StoreFuture<'_, i64> {
        self.run(|c| {
            c.query_row(sql::SCHEMA_VERSION, [], |row| row.get(0))
                .map_err(failed)
        })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        self.run(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(failed))
    }

    fn create_family<'a>(&'a self, family: &'a NewFamily) -> StoreFuture<'a, ()> {
        let f = family.clone();
        self.run(move |c| {
            c.prepare_cached(&local(sql::CREATE_FAMILY))
                .and_then(|mut s| s.execute(params![f.id, f.sub, f.now, f.expires_at]))
                .map(|_| ())
                .map_err(failed)
        })
    }

    fn rotate<'a>(&'a self, request: RotateRequest<'a>) -> StoreFuture<'a, Rotation> {
        let id = request.id.to_string();
        let (generation, now, idle, grace) = (
            request.generation,
            request.now,
            request.idle_ms,
            request.grace_ms,
        );
        self.run(move |c| {
            let rotated = c
                .prepare_cached(&local(sql::ROTATE))
                .and_then(|mut s| {
                    s.query_row(params![id, generation, now, idle], |row| {
                        Ok(super::Family {
                            sub: row.get(0)?,
                            generation: row.get(1)?,
                            expires_at: row.get(2)?,
                        })
                    })
                    .optional()
                })
                .map_err(failed)?;
            if let Some(family) = rotated {
                return Ok(Rotation::Rotated(family));
            }
            let record = c
                .prepare_cached(&local(sql::READ_FAMILY))
                .and_then(|mut s| {
                    s.query_row(params![id], |row| {
                        Ok(FamilyRecord {
                            sub: row.get(0)?,
                            generation: row.get(1)?,
                            expires_at: row.get(2)?,
                            last_used: row.get(3)?,
                            rotated_at: row.get(4)?,
                            revoked_at: row.get(5)?,
                        })
                    })
                    .optional()
                })
                .map_err(failed)?;
            let request = RotateRequest {
                id: &id,
                generation,
                now,
                idle_ms: idle,
                grace_ms: grace,
            };
            let (rotation, revoke) = judge_stale(record.as_ref(), &request);
            if revoke {
                c.prepare_cached(&local(sql::REVOKE_FAMILY))
                    .and_then(|mut s| s.execute(params![id, now, "reuse_detected"]))
                    .map_err(failed)?;
            }
            Ok(rotation)
        })
    }

    fn revoke_family<'a>(
        &'a self,
        id: &'a str,
        now: i64,
        reason: &'a str,
    ) -> StoreFuture<'a, bool> {
        let (id, reason) = (id.to_string(), reason.to_string());
        self.run(move |c| {
            c.prepare_cached(&local(sql::REVOKE_FAMILY))
                .and_then(|mut s| s.execute(params![id, now, reason]))
                .map(|n| n > 0)
                .map_err(failed)
        })
    }

    fn family_subject<'a>(&'a self, id: &'a str, now: i64) -> StoreFuture<'a, Option<String>> {
        let id = id.to_string();
        self.run(move |c| {
            c.prepare_cached(&local(sql::FAMILY_SUBJECT))
                .and_then(|mut s| s.query_row(params![id, now], |row| row.get(0)).optional())
                .map_err(failed)
        })
    }

    fn revoke_subject<'a>(
        &'a self,
        sub: &'a str,
        now: i64,
        reason: &'a str,
    ) -> StoreFuture<'a, u64> {
        let (sub, reason) = (sub.to_string(), reason.to_string());
        self.run(move |c| {
            c.prepare_cached(&local(sql::REVOKE_SUBJECT))
                .and_then(|mut s| s.execute(params![sub, now, reason]))
                .map(|n| n as u64)
                .map_err(failed)
        })
    }

    fn failures<'a>(
        &'a self,
        username: &'a str,
        now: i64,
        window_ms: i64,
    ) -> StoreFuture<'a, Failures> {
        let username = username.to_string();
        self.run(move |c| failures(c, sql::READ_FAILURES, &username, now, window_ms))
    }

    fn record_failure<'a>(
        &'a self,
        username: &'a str,
        now: i64,
        window_ms: i64,
    ) -> StoreFuture<'a, Failures> {
        let username = username.to_string();
        self.run(move |c| failures(c, sql::RECORD_FAILURE, &username, now, window_ms))
    }

    fn clear_failures<'a>(&'a self, username: &'a str) -> StoreFuture<'a, ()> {
        let username = username.to_string();
        self.run(move |c| {
            c.prepare_cached(&local(sql::CLEAR_FAILURES))
                .and_then(|mut s| s.execute(params![username]))
                .map(|_| ())
                .map_err(failed)
        })
    }

    fn take_token<'a>(&'a self, key: &'a str, now: i64, bucket: Bucket) -> StoreFuture<'a, bool> {
        let key = key.to_string();
        self.run(move |c| {
            c.prepare_cached(&local(sql::TAKE_TOKEN))
                .and_then(|mut s| {
                    s.query_row(params![key, now, bucket.per_minute, bucket.burst], |row| {
                        row.get::<_, i64>(0)
                    })
                })
                .map(|took| took == 1)
                .map_err(failed)
        })
    }

    fn deny<'a>(
        &'a self,
        iss: &'a str,
        jti: &'a str,
        expires_at: i64,
        now: i64,
    ) -> StoreFuture<'a, ()> {
        let (iss, jti) = (iss.to_string(), jti.to_string());
        self.run(move |c| {
            c.prepare_cached(&local(sql::DENY))
                .and_then(|mut s| s.execute(params![iss, jti, expires_at, now]))
                .map(|_| ())
                .map_err(failed)
        })
    }

    fn denials(&self, since: i64, now: i64) -> StoreFuture<'_, Vec<Denial>> {
        self.run(move |c| {
            c.prepare_cached(&local(sql::DENIALS))
                .and_then(|mut s| {
                    s.query_map(params![since, now], |row| {
                        Ok(Denial {
                            iss: row.get(0)?,
                            jti: row.get(1)?,
                            expires_at: row.get(2)?,
                        })
                    })?
                    .collect()
                })
                .map_err(failed)
        })
    }

    fn key_first_seen<'a>(&'a self, kid: &'a str, now: i64) -> StoreFuture<'a, i64> {
        let kid = kid.to_string();
        self.run(move |c| {
            c.prepare_cached(&local(sql::NOTE_KEY))
                .and_then(|mut s| s.execute(params![kid, now]))
                .map_err(failed)?;
            c.prepare_cached(&local(sql::KEY_FIRST_SEEN))
                .and_then(|mut s| s.query_row(params![kid], |row| row.get(0)))
                .map_err(failed)
        })
    }

    fn collect_garbage(&self, now: i64, keep: Retention) -> StoreFuture<'_, u64> {
        self.run(move |c| {
            let mut removed = 0u64;
            for (statement, cut) in [
                (sql::GC_FAMILIES, now - keep.families_ms),
                (sql::GC_FAILURES, now - keep.counters_ms),
                (sql::GC_BUCKETS, now - keep.counters_ms),
                (sql::GC_DENIED, now),
            ] {
                removed += c
                    .prepare_cached(&local(statement))
                    .and_then(|mut s| s.execute(params![cut]))
                    .map_err(failed)? as u64;
            }
            Ok(removed)
        })
    }
}
