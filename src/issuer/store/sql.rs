//! The statements every backend runs, written once with `$n` parameters (PostgreSQL's; the
//! SQLite backend reads them as `?n`, the same numbered parameters). Times are Unix
//! milliseconds in `BIGINT` columns; text is `TEXT`.

/// The migrations, in order; each runs in one transaction and records its version.
pub const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE refresh_families (
        id TEXT PRIMARY KEY,
        sub TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        last_used BIGINT NOT NULL,
        rotated_at BIGINT NOT NULL,
        generation BIGINT NOT NULL,
        revoked_at BIGINT,
        revoke_reason TEXT
    );
    CREATE INDEX refresh_families_sub ON refresh_families (sub);
    CREATE TABLE login_failures (
        username TEXT PRIMARY KEY,
        count BIGINT NOT NULL,
        last_at BIGINT NOT NULL
    );
    CREATE TABLE rate_buckets (
        key TEXT PRIMARY KEY,
        milli_tokens BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        took BIGINT NOT NULL
    );
    CREATE TABLE denied_tokens (
        iss TEXT NOT NULL,
        jti TEXT NOT NULL,
        expires_at BIGINT NOT NULL,
        PRIMARY KEY (iss, jti)
    );
    CREATE TABLE signing_keys (
        kid TEXT PRIMARY KEY,
        first_seen BIGINT NOT NULL
    )",
    ),
    (
        2,
        // When each denial was written, so replicas read only what is new.
        "ALTER TABLE denied_tokens ADD COLUMN created_at BIGINT NOT NULL DEFAULT 0;
    CREATE INDEX denied_tokens_created ON denied_tokens (created_at)",
    ),
];

pub const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS portcullis_migrations (
    version BIGINT PRIMARY KEY,
    applied_at BIGINT NOT NULL
)";
pub const SCHEMA_VERSION: &str = "SELECT COALESCE(MAX(version), 0) FROM portcullis_migrations";
pub const RECORD_MIGRATION: &str =
    "INSERT INTO portcullis_migrations (version, applied_at) VALUES ($1, $2)";

pub const CREATE_FAMILY: &str = "INSERT INTO refresh_families
    (id, sub, created_at, expires_at, last_used, rotated_at, generation)
    VALUES ($1, $2, $3, $4, $3, $3, 1)";

/// The compare-and-set: only the holder of the current generation of a live family moves it.
/// $1 id, $2 presented generation, $3 now, $4 idle lifetime.
pub const ROTATE: &str = "UPDATE refresh_families
    SET generation = generation + 1, last_used = $3, rotated_at = $3
    WHERE id = $1 AND generation = $2 AND revoked_at IS NULL
      AND expires_at > $3 AND last_used + $4 > $3
    RETURNING sub, generation, expires_at";

pub const READ_FAMILY: &str =
    "SELECT sub, generation, expires_at, last_used, rotated_at, revoked_at
    FROM refresh_families WHERE id = $1";

/// $1 id, $2 now.
pub const FAMILY_SUBJECT: &str = "SELECT sub FROM refresh_families
    WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2";

/// $1 id, $2 now, $3 reason.
pub const REVOKE_FAMILY: &str = "UPDATE refresh_families SET revoked_at = $2, revoke_reason = $3
    WHERE id = $1 AND revoked_at IS NULL";

/// $1 sub, $2 now, $3 reason.
pub const REVOKE_SUBJECT: &str = "UPDATE refresh_families SET revoked_at = $2, revoke_reason = $3
    WHERE sub = $1 AND revoked_at IS NULL AND expires_at > $2";

/// $1 username, $2 now, $3 window: the count, restarted when the last failure is older.
pub const RECORD_FAILURE: &str = "INSERT INTO login_failures (username, count, last_at)
    VALUES ($1, 1, $2)
    ON CONFLICT (username) DO UPDATE SET
        count = CASE WHEN login_failures.last_at + $3 <= $2 THEN 1
                     ELSE login_failures.count + 1 END,
        last_at = $2
    RETURNING count, last_at";

/// $1 username, $2 now, $3 window.
pub const READ_FAILURES: &str = "SELECT count, last_at FROM login_failures
    WHERE username = $1 AND last_at + $3 > $2";

pub const CLEAR_FAILURES: &str = "DELETE FROM login_failures WHERE username = $1";

/// A token bucket in thousandths of a token, refilled by the time elapsed ($3 tokens a
/// minute, at most $4 saved), then one token taken if there is one. $1 key, $2 now. Returns
/// whether this call took one (every SET expression reads the row as it was). A refused
/// take changes nothing, so the refill is never lost to rounding.
pub const TAKE_TOKEN: &str = "INSERT INTO rate_buckets (key, milli_tokens, updated_at, took)
    VALUES ($1, CAST($4 AS BIGINT) * 1000 - 1000, $2, 1)
    ON CONFLICT (key) DO UPDATE SET
        took = CASE
            WHEN rate_buckets.milli_tokens + ($2 - rate_buckets.updated_at) * $3 / 60 >= 1000
            THEN 1 ELSE 0 END,
        milli_tokens = CASE
            WHEN rate_buckets.milli_tokens + ($2 - rate_buckets.updated_at) * $3 / 60 >= CAST($4 AS BIGINT) * 1000
                THEN CAST($4 AS BIGINT) * 1000 - 1000
            WHEN rate_buckets.milli_tokens + ($2 - rate_buckets.updated_at) * $3 / 60 >= 1000
                THEN rate_buckets.milli_tokens + ($2 - rate_buckets.updated_at) * $3 / 60 - 1000
            ELSE rate_buckets.milli_tokens
        END,
        updated_at = CASE
            WHEN rate_buckets.milli_tokens + ($2 - rate_buckets.updated_at) * $3 / 60 >= 1000
            THEN $2 ELSE rate_buckets.updated_at END
    RETURNING took";

pub const DENY: &str = "INSERT INTO denied_tokens (iss, jti, expires_at, created_at)
    VALUES ($1, $2, $3, $4)
    ON CONFLICT (iss, jti) DO UPDATE SET expires_at = excluded.expires_at,
        created_at = excluded.created_at";
/// Live denials written at or after $1.
pub const DENIALS: &str = "SELECT iss, jti, expires_at FROM denied_tokens
    WHERE created_at >= $1 AND expires_at > $2";

pub const NOTE_KEY: &str = "INSERT INTO signing_keys (kid, first_seen) VALUES ($1, $2)
    ON CONFLICT (kid) DO NOTHING";
pub const KEY_FIRST_SEEN: &str = "SELECT first_seen FROM signing_keys WHERE kid = $1";

/// Garbage collection, one statement per table. $1: the cut-off.
pub const GC_FAMILIES: &str = "DELETE FROM refresh_families
    WHERE expires_at < $1 OR (revoked_at IS NOT NULL AND revoked_at < $1)";
pub const GC_FAILURES: &str = "DELETE FROM login_failures WHERE last_at < $1";
pub const GC_BUCKETS: &str = "DELETE FROM rate_buckets WHERE updated_at < $1";
pub const GC_DENIED: &str = "DELETE FROM denied_tokens WHERE expires_at < $1";
