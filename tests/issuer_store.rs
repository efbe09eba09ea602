//! One conformance suite for every issuer store backend: SQLite in a temp dir, and a real
//! PostgreSQL server this test starts itself.

#[path = "support/postgres.rs"]
mod postgres;

use std::sync::Arc;

use portcullis::issuer::store::{
    self, Bucket, Denial, NewFamily, Retention, RotateRequest, Rotation, Store, StoreSpec,
};

const IDLE: i64 = 3_600_000;
const GRACE: i64 = 10_000;

fn family(id: &str, sub: &str, now: i64) -> NewFamily {
    NewFamily {
        id: id.into(),
        sub: sub.into(),
        now,
        expires_at: now + 8 * IDLE,
    }
}

fn rotate(id: &str, generation: i64, now: i64) -> RotateRequest<'_> {
    RotateRequest {
        id,
        generation,
        now,
        idle_ms: IDLE,
        grace_ms: GRACE,
    }
}

/// What every backend must do.
async fn conformance(store: Arc<dyn Store>) {
    let t0 = 1_800_000_000_000;
    // Migrations are versioned and idempotent.
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(store.schema_version().await.unwrap(), 2);
    store.ping().await.unwrap();

    // Rotation: the current generation moves once; the previous one within the grace window
    // gets the same successor; outside it (or an older one) revokes the family.
    store
        .create_family(&family("f1", "alice", t0))
        .await
        .unwrap();
    let rotated = store.rotate(rotate("f1", 1, t0 + 1000)).await.unwrap();
    let Rotation::Rotated(f) = rotated else {
        panic!("{rotated:?}")
    };
    assert_eq!((f.sub.as_str(), f.generation), ("alice", 2));
    assert_eq!(
        f.expires_at,
        t0 + 8 * IDLE,
        "rotation never moves the absolute expiry"
    );
    let again = store.rotate(rotate("f1", 1, t0 + 2000)).await.unwrap();
    assert!(
        matches!(&again, Rotation::Grace(f) if f.generation == 2),
        "{again:?}"
    );
    let late = store
        .rotate(rotate("f1", 1, t0 + 1000 + GRACE))
        .await
        .unwrap();
    assert_eq!(late, Rotation::ReuseDetected);
    // The whole family is dead, its newest token included.
    assert_eq!(
        store.rotate(rotate("f1", 2, t0 + 20_000)).await.unwrap(),
        Rotation::Revoked
    );

    // Exactly one of many concurrent rotations of one generation wins.
    store.create_family(&family("f2", "bob", t0)).await.unwrap();
    let mut racers = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let store = store.clone();
        racers.spawn(async move { store.rotate(rotate("f2", 1, t0 + 5000)).await.unwrap() });
    }
    let (mut won, mut grace) = (0, 0);
    while let Some(r) = racers.join_next().await {
        match r.unwrap() {
            Rotation::Rotated(f) if f.generation == 2 => won += 1,
            Rotation::Grace(f) if f.generation == 2 => grace += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((won, grace), (1, 31));

    // Logout and rotation share one compare-and-set domain: once revoked, nothing revives it.
    assert!(
        store
            .revoke_family("f2", t0 + 6000, "logout")
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke_family("f2", t0 + 6001, "logout")
            .await
            .unwrap()
    );
    assert!(!store.revoke_family("nope", t0, "logout").await.unwrap());
    assert_eq!(
        store.rotate(rotate("f2", 2, t0 + 7000)).await.unwrap(),
        Rotation::Revoked
    );
    assert_eq!(
        store.rotate(rotate("nope", 1, t0)).await.unwrap(),
        Rotation::Unknown
    );

    // Lifetimes: idle and absolute.
    store
        .create_family(&family("f3", "carol", t0))
        .await
        .unwrap();
    assert_eq!(
        store.rotate(rotate("f3", 1, t0 + IDLE)).await.unwrap(),
        Rotation::Expired
    );
    store
        .create_family(&family("f4", "carol", t0))
        .await
        .unwrap();
    let mut now = t0;
    let mut generation = 1;
    while now + IDLE / 2 < t0 + 8 * IDLE {
        now += IDLE / 2;
        let r = store.rotate(rotate("f4", generation, now)).await.unwrap();
        assert!(matches!(r, Rotation::Rotated(_)), "{r:?} at {now}");
        generation += 1;
    }
    let r = store
        .rotate(rotate("f4", generation, t0 + 8 * IDLE))
        .await
        .unwrap();
    assert_eq!(
        r,
        Rotation::Expired,
        "used often, it still ends at its absolute expiry"
    );

    // Log out everywhere: every live family of one subject.
    for id in ["g1", "g2", "g3"] {
        store.create_family(&family(id, "dave", t0)).await.unwrap();
    }
    store
        .create_family(&family("g4", "erin", t0))
        .await
        .unwrap();
    assert_eq!(
        store
            .revoke_subject("dave", t0 + 1, "everywhere")
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        store.rotate(rotate("g2", 1, t0 + 2)).await.unwrap(),
        Rotation::Revoked
    );
    assert!(matches!(
        store.rotate(rotate("g4", 1, t0 + 2)).await.unwrap(),
        Rotation::Rotated(_)
    ));

    // Failure counters: counted inside the window, restarted after it, cleared on success.
    for i in 1..=3 {
        let f = store
            .record_failure("alice", t0 + i, 900_000)
            .await
            .unwrap();
        assert_eq!(f.count, i);
    }
    assert_eq!(
        store
            .failures("alice", t0 + 10, 900_000)
            .await
            .unwrap()
            .count,
        3
    );
    assert_eq!(
        store
            .failures("alice", t0 + 3 + 900_000, 900_000)
            .await
            .unwrap()
            .count,
        0
    );
    let f = store
        .record_failure("alice", t0 + 3 + 900_000, 900_000)
        .await
        .unwrap();
    assert_eq!(f.count, 1);
    store.clear_failures("alice").await.unwrap();
    assert_eq!(
        store
            .failures("alice", t0 + 900_010, 900_000)
            .await
            .unwrap()
            .count,
        0
    );

    // Token bucket: the burst, then one token per refill interval (20/min: one per 3 s).
    let bucket = Bucket {
        per_minute: 20,
        burst: 10,
    };
    let mut taken = 0;
    for _ in 0..15 {
        taken += usize::from(store.take_token("ip:192.0.2.1", t0, bucket).await.unwrap());
    }
    assert_eq!(taken, 10);
    assert!(
        !store
            .take_token("ip:192.0.2.1", t0 + 2999, bucket)
            .await
            .unwrap()
    );
    assert!(
        store
            .take_token("ip:192.0.2.1", t0 + 3000, bucket)
            .await
            .unwrap()
    );
    assert!(
        !store
            .take_token("ip:192.0.2.1", t0 + 3001, bucket)
            .await
            .unwrap()
    );
    assert!(
        store.take_token("ip:192.0.2.2", t0, bucket).await.unwrap(),
        "per key"
    );
    // A long pause refills to the burst, not beyond.
    let later = t0 + 3_600_000;
    let mut taken = 0;
    for _ in 0..15 {
        taken += usize::from(
            store
                .take_token("ip:192.0.2.1", later, bucket)
                .await
                .unwrap(),
        );
    }
    assert_eq!(taken, 10);

    // The denylist: until the token's expiry; read back by when it was written.
    store
        .deny("https://iss", "j1", t0 + 600_000, t0)
        .await
        .unwrap();
    store
        .deny("https://other", "j2", t0 + 60_000, t0 + 10)
        .await
        .unwrap();
    let denial = |iss: &str, jti: &str, expires_at| Denial {
        iss: iss.into(),
        jti: jti.into(),
        expires_at,
    };
    let mut all = store.denials(0, t0).await.unwrap();
    all.sort_by(|a, b| a.jti.cmp(&b.jti));
    assert_eq!(
        all,
        [
            denial("https://iss", "j1", t0 + 600_000),
            denial("https://other", "j2", t0 + 60_000)
        ]
    );
    assert_eq!(
        store.denials(t0 + 5, t0).await.unwrap(),
        [denial("https://other", "j2", t0 + 60_000)],
        "only what was written since"
    );
    assert_eq!(
        store.denials(0, t0 + 60_000).await.unwrap(),
        [denial("https://iss", "j1", t0 + 600_000)],
        "an expired denial is not read"
    );
    assert!(store.denials(0, t0 + 600_000).await.unwrap().is_empty());
    // Denying again (another replica, later) moves the write time, so it is read as new.
    store
        .deny("https://iss", "j1", t0 + 600_000, t0 + 20)
        .await
        .unwrap();
    assert_eq!(
        store.denials(t0 + 15, t0).await.unwrap(),
        [denial("https://iss", "j1", t0 + 600_000)]
    );

    // Signing keys: the first sighting wins, on every replica.
    assert_eq!(store.key_first_seen("k1", t0).await.unwrap(), t0);
    assert_eq!(store.key_first_seen("k1", t0 + 99).await.unwrap(), t0);

    // Garbage collection: ended families (after retention), stale counters, expired denials.
    let keep = Retention {
        families_ms: 60_000,
        counters_ms: 900_000,
    };
    store.record_failure("zed", t0, 900_000).await.unwrap();
    let removed = store.collect_garbage(t0 + 9 * IDLE, keep).await.unwrap();
    assert!(removed >= 8, "removed {removed}");
    assert_eq!(
        store.rotate(rotate("f1", 2, t0 + 9 * IDLE)).await.unwrap(),
        Rotation::Unknown
    );
    assert_eq!(
        store.failures("zed", t0 + 1, 900_000).await.unwrap().count,
        0
    );
    assert_eq!(store.collect_garbage(t0 + 9 * IDLE, keep).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let store = store::open(&StoreSpec::Sqlite(dir.path().join("issuer.sqlite"))).unwrap();
    assert_eq!(store.kind(), "sqlite");
    conformance(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_conforms() {
    let Some(server) = postgres::Postgres::start() else {
        return;
    };
    let url = server.database("conformance").await;
    // Two stores (two processes' worth of connections) on one database: migrations race.
    let a = store::open(&StoreSpec::Postgres(url.clone())).unwrap();
    let b = store::open(&StoreSpec::Postgres(url)).unwrap();
    let (ma, mb) = tokio::join!(a.migrate(), b.migrate());
    ma.unwrap();
    mb.unwrap();
    assert_eq!(a.kind(), "postgres");
    conformance(a).await;
}

#[tokio::test]
async fn an_unreachable_postgres_is_unavailable_not_a_hang() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let store = store::open(&StoreSpec::Postgres(format!(
        "postgres://u:secret@127.0.0.1:{port}/x"
    )))
    .unwrap();
    let started = std::time::Instant::now();
    let err = store.ping().await.unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(!err.to_string().contains("secret"), "{err}");
}
