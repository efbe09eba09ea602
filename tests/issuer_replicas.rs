//! Two gateways on one PostgreSQL store (a server this test starts itself): rotation, reuse
//! detection and login throttling are shared, because they live in the store.

mod common;
#[path = "support/postgres.rs"]
mod postgres;

use std::sync::Arc;

use common::issuer::{Setup, refresh_cookie, setup_with, token_of};
use serde_json::json;

async fn replicas(
    server: &postgres::Postgres,
    name: &str,
    extra: &str,
) -> (Arc<Setup>, Arc<Setup>) {
    let url = server.database(name).await;
    let key = portcullis::issuer::signing::generate_es256_pem().unwrap();
    let secret = "0123456789abcdef0123456789abcdef-shared-refresh-key";
    let files = [("signing.pem", key.as_str()), ("refresh.key", secret)];
    let config = format!(
        "  store: {url}\n  signing_keys:\n    - file: signing.pem\n  refresh_key_file: refresh.key\n{extra}"
    );
    let a = setup_with(&config, &files).await;
    let b = setup_with(&config, &files).await;
    (Arc::new(a), Arc::new(b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_rotation_reuse_detection_and_throttling() {
    let Some(server) = postgres::Postgres::start() else {
        return;
    };
    let (a, b) = replicas(&server, "replicas", "  grace: 0s\n").await;

    // A token from one replica is accepted by the other (same keys, same issuer).
    let (token, cookie1, _) = token_of(a.login("alice", "alice-password").await).await;
    assert_eq!(b.get("/api/things", &token).await, 200);
    // Refresh on A; reuse of the old cookie on B is detected and kills the family on A too.
    let (_, cookie2, _) = token_of(a.post("/auth/refresh", Some(&cookie1), json!({})).await).await;
    assert_eq!(
        b.post("/auth/refresh", Some(&cookie1), json!({}))
            .await
            .status(),
        401
    );
    assert_eq!(
        b.issuer().count(portcullis::issuer::Event::ReuseDetected),
        1
    );
    assert_eq!(
        a.post("/auth/refresh", Some(&cookie2), json!({}))
            .await
            .status(),
        401
    );

    // Failures counted on A hold the username on B.
    for _ in 0..5 {
        assert_eq!(a.login("bob", "wrong").await.status(), 401);
    }
    assert_eq!(b.login("bob", "bob-password").await.status(), 401);
    assert_eq!(
        b.issuer().count(portcullis::issuer::Event::LoginThrottled),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refreshes_split_across_replicas_have_one_successor() {
    let Some(server) = postgres::Postgres::start() else {
        return;
    };
    let (a, b) = replicas(&server, "split", "").await;
    let (_, cookie, _) = token_of(a.login("alice", "alice-password").await).await;
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..100 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        let cookie = cookie.clone();
        calls.spawn(async move {
            let r = s.post("/auth/refresh", Some(&cookie), json!({})).await;
            let status = r.status().as_u16();
            (status, (status == 200).then(|| refresh_cookie(&r).0))
        });
    }
    let mut successors = std::collections::HashSet::new();
    while let Some(joined) = calls.join_next().await {
        let (status, successor) = joined.unwrap();
        assert!(status == 200 || status == 401, "status {status}");
        successors.extend(successor);
    }
    assert_eq!(
        successors.len(),
        1,
        "exactly one successor across both replicas"
    );
    let won = a.issuer().count(portcullis::issuer::Event::Refreshed)
        + b.issuer().count(portcullis::issuer::Event::Refreshed);
    assert_eq!(won, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_store_answers_503_and_readyz_says_so() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let key = portcullis::issuer::signing::generate_es256_pem().unwrap();
    let files = [
        ("signing.pem", key.as_str()),
        ("refresh.key", "0123456789abcdef0123456789abcdef"),
    ];
    let config = format!(
        "  store: postgres://portcullis:secret@127.0.0.1:{port}/none\n  signing_keys:\n    - file: signing.pem\n  refresh_key_file: refresh.key\n"
    );
    let s = setup_with(&config, &files).await;
    let login = s.login("alice", "alice-password").await;
    assert_eq!(login.status(), 503, "never fails open");
    assert!(login.headers().get("retry-after").is_some());
    assert_eq!(
        s.post("/auth/refresh", Some("x"), json!({})).await.status(),
        401,
        "no valid cookie: refused before the store"
    );
    let admin = s.gw.gateway.admin_address().unwrap();
    let ready = common::client()
        .get(format!("http://{admin}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let text = ready.text().await.unwrap();
    assert!(
        text.contains("issuer store") && !text.contains("secret"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_access_token_revoked_on_one_replica_is_refused_by_the_other() {
    let Some(server) = postgres::Postgres::start() else {
        return;
    };
    let (a, b) = replicas(
        &server,
        "revocation",
        "  revocation: {enabled: true, sync_every: 1s}\n",
    )
    .await;
    let (token, cookie, _) = token_of(a.login("alice", "alice-password").await).await;
    assert_eq!(b.get("/api/things", &token).await, 200);
    let answer = a.logout_showing(Some(&cookie), &token).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(
        a.get("/api/things", &token).await,
        401,
        "at once where it was revoked"
    );
    let b2 = b.clone();
    let token2 = token.clone();
    common::assert_eventually(
        std::time::Duration::from_secs(10),
        "the other replica refuses the revoked token after its next sync",
        move || {
            let (b, token) = (b2.clone(), token2.clone());
            async move { b.get("/api/things", &token).await == 401 }
        },
    )
    .await;
}
