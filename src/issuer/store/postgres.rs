//! The shared store: PostgreSQL, for several gateway processes. One connection per process,
//! made on first use and remade after it breaks (tokio-postgres pipelines concurrent queries
//! on it); every call is bounded by `CALL_TIMEOUT`, and any failure is `Unavailable`, so the
//! endpoints answer 503 rather than guess.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row};

use super::sql;
use super::{
    Bucket, Denial, Failures, Family, FamilyRecord, NewFamily, Retention, RotateRequest, Rotation,
    Store, StoreError, StoreFuture, StoreResult, judge_stale,
};

/// Longest a store call (connecting included) may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// Serialises migrations of concurrent processes (an arbitrary constant key).
const MIGRATION_LOCK: i64 = 0x706f_7274_6375;

#[derive(Debug)]
pub struct PostgresStore {
    config: tokio_postgres::Config,
    client: Mutex<Option<Arc<Client>>>,
}

/// `url` with its password replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "postgres://***".into();
    };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((user, host)) => {
            let user = user.split_once(':').map_or(user, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        None => url.to_string(),
    }
}

fn failed(e: tokio_postgres::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl PostgresStore {
    /// A store for `url`; connects on first use.
    pub fn new(url: &str) -> StoreResult<PostgresStore> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", redact(url))))?;
        config.connect_timeout(CALL_TIMEOUT);
        config.application_name("portcullis");
        Ok(PostgresStore {
            config,
            client: Mutex::new(None),
        })
    }

    /// The open connection, or a new one (migrated) when there is none or it broke.
    async fn client(&self) -> StoreResult<Arc<Client>> {
        let mut held = self.client.lock().await;
        if let Some(client) = held.as_ref().filter(|c| !c.is_closed()) {
            return Ok(client.clone());
        }
        let (client, connection) = self.config.connect(NoTls).await.map_err(failed)?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "issuer store: PostgreSQL connection ended");
            }
        });
        let client = Arc::new(client);
        migrate(&client).await?;
        *held = Some(client.clone());
        Ok(client)
    }

    /// Runs `f` on the connection within `CALL_TIMEOUT`.
    fn call<'a, T, F>(&'a self, f: impl FnOnce(Arc<Client>) -> F + Send + 'a) -> StoreFuture<'a, T>
    where
        F: Future<Output = StoreResult<T>> + Send + 'a,
        T: Send + 'a,
    {
        Box::pin(async move {
            let work = async {
                let client = self.client().await?;
                f(client).await
            };
            tokio::time::timeout(CALL_TIMEOUT, work)
                .await
                .map_err(|_| StoreError::TimedOut(CALL_TIMEOUT))?
        })
    }
}

async fn migrate(client: &Client) -> StoreResult<()> {
    for (version, statements) in sql::MIGRATIONS {
        client.batch_execute("BEGIN").await.map_err(failed)?;
        let step = async {
            client
                .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .await
                .map_err(failed)?;
            // The migrations table is made under the lock too: two processes creating it at
            // once could otherwise both fail the catalog's unique index.
            client
                .batch_execute(sql::CREATE_MIGRATIONS_TABLE)
                .await
                .map_err(failed)?;
            let applied: i64 = client
                .query_one(sql::SCHEMA_VERSION, &[])
                .await
                .map_err(failed)?
                .get(0);
            if applied < *version {
                client
                    .batch_execute(statements)
                    .await
                    .map_err(|e| StoreError::Schema(format!("migration {version}: {e}")))?;
                let now = now_ms();
                client
                    .execute(sql::RECORD_MIGRATION, &[version, &now])
                    .await
                    .map_err(failed)?;
            }
            Ok::<_, StoreError>(())
        };
        match step.await {
            Ok(()) => client.batch_execute("COMMIT").await.map_err(failed)?,
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                return Err(e);
            }
        }
    }
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

async fn query_opt(
    client: &Client,
    statement: &str,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<Option<Row>> {
    client.query_opt(statement, params).await.map_err(failed)
}

async fn execute(
    client: &Client,
    statement: &str,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<u64> {
    client.execute(statement, params).await.map_err(failed)
}

fn family_record(row: &Row) -> FamilyRecord {
    FamilyRecord {
        sub: row.get(0),
        generation: row.get(1),
        expires_at: row.get(2),
        last_used: row.get(3),
        rotated_at: row.get(4),
        revoked_at: row.get(5),
    }
}

fn failures(row: &Row) -> Failures {
    Failures {
        count: row.get(0),
        last_at: row.get(1),
    }
}

impl Store for PostgresStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn migrate(&self) -> StoreFuture<'_, ()> {
        self.call(|client| async move { migrate(&client).await })
    }

    fn schema_version(&self) -> StoreFuture<'_, i64> {
        self.call(|client| async move {
            Ok(client
                .query_one(sql::SCHEMA_VERSION, &[])
                .await
                .map_err(failed)?
                .get(0))
        })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        self.call(|client| async move { client.batch_execute("SELECT 1").await.map_err(failed) })
    }

    fn create_family<'a>(&'a self, f: &'a NewFamily) -> StoreFuture<'a, ()> {
        self.call(move |client| async move {
            execute(
                &client,
                sql::CREATE_FAMILY,
                &[&f.id, &f.sub, &f.now, &f.expires_at],
            )
            .await
            .map(|_| ())
        })
    }

    fn rotate<'a>(&'a self, request: RotateRequest<'a>) -> StoreFuture<'a, Rotation> {
        self.call(move |client| async move {
            let r = &request;
            if let Some(row) = query_opt(
                &client,
                sql::ROTATE,
                &[&r.id, &r.generation, &r.now, &r.idle_ms],
            )
            .await?
            {
                return Ok(Rotation::Rotated(Family {
                    sub: row.get(0),
                    generation: row.get(1),
                    expires_at: row.get(2),
                }));
            }
            let record = query_opt(&client, sql::READ_FAMILY, &[&r.id])
                .await?
                .map(|row| family_record(&row));
            let (rotation, revoke) = judge_stale(record.as_ref(), r);
            if revoke {
                execute(
                    &client,
                    sql::REVOKE_FAMILY,
                    &[&r.id, &r.now, &"reuse_detected"],
                )
                .await?;
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
        self.call(move |client| async move {
            Ok(execute(&client, sql::REVOKE_FAMILY, &[&id, &now, &reason]).await? > 0)
        })
    }

    fn family_subject<'a>(&'a self, id: &'a str, now: i64) -> StoreFuture<'a, Option<String>> {
        self.call(move |client| async move {
            Ok(query_opt(&client, sql::FAMILY_SUBJECT, &[&id, &now])
                .await?
                .map(|row| row.get(0)))
        })
    }

    fn revoke_subject<'a>(
        &'a self,
        sub: &'a str,
        now: i64,
        reason: &'a str,
    ) -> StoreFuture<'a, u64> {
        self.call(move |client| async move {
            execute(&client, sql::REVOKE_SUBJECT, &[&sub, &now, &reason]).await
        })
    }

    fn failures<'a>(
        &'a self,
        username: &'a str,
        now: i64,
        window_ms: i64,
    ) -> StoreFuture<'a, Failures> {
        self.call(move |client| async move {
            Ok(
                query_opt(&client, sql::READ_FAILURES, &[&username, &now, &window_ms])
                    .await?
                    .map(|row| failures(&row))
                    .unwrap_or_default(),
            )
        })
    }

    fn record_failure<'a>(
        &'a self,
        username: &'a str,
        now: i64,
        window_ms: i64,
    ) -> StoreFuture<'a, Failures> {
        self.call(move |client| async move {
            let row = client
                .query_one(sql::RECORD_FAILURE, &[&username, &now, &window_ms])
                .await
                .map_err(failed)?;
            Ok(failures(&row))
        })
    }

    fn clear_failures<'a>(&'a self, username: &'a str) -> StoreFuture<'a, ()> {
        self.call(move |client| async move {
            execute(&client, sql::CLEAR_FAILURES, &[&username])
                .await
                .map(|_| ())
        })
    }

    fn take_token<'a>(&'a self, key: &'a str, now: i64, bucket: Bucket) -> StoreFuture<'a, bool> {
        self.call(move |client| async move {
            let row = client
                .query_one(
                    sql::TAKE_TOKEN,
                    &[&key, &now, &bucket.per_minute, &bucket.burst],
                )
                .await
                .map_err(failed)?;
            Ok(row.get::<_, i64>(0) == 1)
        })
    }

    fn deny<'a>(
        &'a self,
        iss: &'a str,
        jti: &'a str,
        expires_at: i64,
        now: i64,
    ) -> StoreFuture<'a, ()> {
        self.call(move |client| async move {
            execute(&client, sql::DENY, &[&iss, &jti, &expires_at, &now])
                .await
                .map(|_| ())
        })
    }

    fn denials(&self, since: i64, now: i64) -> StoreFuture<'_, Vec<Denial>> {
        self.call(move |client| async move {
            let rows = client
                .query(sql::DENIALS, &[&since, &now])
                .await
                .map_err(failed)?;
            Ok(rows
                .iter()
                .map(|row| Denial {
                    iss: row.get(0),
                    jti: row.get(1),
                    expires_at: row.get(2),
                })
                .collect())
        })
    }

    fn key_first_seen<'a>(&'a self, kid: &'a str, now: i64) -> StoreFuture<'a, i64> {
        self.call(move |client| async move {
            execute(&client, sql::NOTE_KEY, &[&kid, &now]).await?;
            let row = client
                .query_one(sql::KEY_FIRST_SEEN, &[&kid])
                .await
                .map_err(failed)?;
            Ok(row.get(0))
        })
    }

    fn collect_garbage(&self, now: i64, keep: Retention) -> StoreFuture<'_, u64> {
        self.call(move |client| async move {
            let mut removed = 0;
            for (statement, cut) in [
                (sql::GC_FAMILIES, now - keep.families_ms),
                (sql::GC_FAILURES, now - keep.counters_ms),
                (sql::GC_BUCKETS, now - keep.counters_ms),
                (sql::GC_DENIED, now),
            ] {
                removed += execute(&client, statement, &[&cut]).await?;
            }
            Ok(removed)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_leave_the_url() {
        let rows = [
            (
                "postgres://u:secret@db:5432/p",
                "postgres://u:***@db:5432/p",
            ),
            ("postgres://u@db/p", "postgres://u:***@db/p"),
            ("postgres://db/p", "postgres://db/p"),
            (
                "postgresql://u:s%40x@h/d?sslmode=disable",
                "postgresql://u:***@h/d?sslmode=disable",
            ),
            ("nonsense", "postgres://***"),
        ];
        for (url, shown) in rows {
            assert_eq!(redact(url), shown, "{url}");
        }
    }
}
