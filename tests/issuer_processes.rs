//! Two `portcullis run` processes (the real binary, not two gateways in one test process) on
//! one PostgreSQL store that the test starts itself: 100 concurrent refreshes of one cookie
//! split across them have one successor; a refresh on one and reuse on the other is detected;
//! failed logins on one hold the username on the other.

mod common;
#[path = "support/postgres.rs"]
mod postgres;

use std::time::Duration;

use common::issuer::{COOKIE_NAME, cookie_of, users_file};
use common::process::GatewayProcess;
use common::{GatewayYaml, TestUpstream, Workdir};
use reqwest::header::COOKIE;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

/// Starts `portcullis run --config config`.
async fn start(config: &std::path::Path) -> GatewayProcess {
    GatewayProcess::start(std::path::Path::new(BIN), config)
        .await
        .unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn post(
    http: &reqwest::Client,
    gateway: &GatewayProcess,
    path: &str,
    cookie: Option<&str>,
    body: Value,
) -> reqwest::Response {
    let mut request = http
        .post(format!("{}{path}", gateway.url))
        .header("x-portcullis-csrf", "1")
        .json(&body);
    if let Some(c) = cookie {
        request = request.header(COOKIE, format!("{COOKIE_NAME}={c}"));
    }
    request.send().await.unwrap()
}

async fn login(
    http: &reqwest::Client,
    gateway: &GatewayProcess,
    password: &str,
) -> reqwest::Response {
    post(
        http,
        gateway,
        "/auth/login",
        None,
        json!({"username": "alice", "password": password}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateway_processes_share_one_store() {
    let Some(server) = postgres::Postgres::start() else {
        return;
    };
    let url = server.database("processes").await;
    let upstream = TestUpstream::start().await;
    let work = Workdir::new();
    users_file(&work);
    work.write(
        "signing.pem",
        &portcullis::issuer::signing::generate_es256_pem().unwrap(),
    );
    work.write(
        "refresh.key",
        "0123456789abcdef0123456789abcdef-shared-refresh-key",
    );
    let issuer = format!(
        "issuer:\n  issuer: http://localhost\n  audiences: [api]\n  users_file: users.yaml\n  store: {url}\n  signing_keys:\n    - file: signing.pem\n  refresh_key_file: refresh.key\n"
    );
    let config = work.write(
        "gateway.yaml",
        &GatewayYaml::new()
            .upstream("app", &upstream.url())
            .routes("- name: api\n  prefix: /api\n  upstream: app\n  providers: [self]\n  policy: authenticated\n")
            .top(&issuer)
            .yaml(),
    );
    let a = start(&config).await;
    let b = start(&config).await;
    let http = client();

    // 100 concurrent refreshes of one cookie, alternating between the processes: every answer
    // is 200 with the one successor or 401, never a 5xx.
    let answer = login(&http, &a, "alice-password").await;
    assert_eq!(answer.status(), 200);
    let cookie = cookie_of(&answer).unwrap();
    let mut calls = Vec::new();
    for i in 0..100 {
        let (http, cookie) = (http.clone(), cookie.clone());
        let url = if i % 2 == 0 { &a.url } else { &b.url }.clone();
        calls.push(tokio::spawn(async move {
            let r = http
                .post(format!("{url}/auth/refresh"))
                .header("x-portcullis-csrf", "1")
                .header(COOKIE, format!("{COOKIE_NAME}={cookie}"))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), cookie_of(&r))
        }));
    }
    let mut successors = std::collections::BTreeSet::new();
    let mut ok = 0;
    for call in calls {
        match call.await.unwrap() {
            (200, Some(successor)) => {
                ok += 1;
                successors.insert(successor);
            }
            (401, _) => {}
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert!(ok >= 1, "at least one refresh succeeded");
    assert_eq!(successors.len(), 1, "one successor: {successors:?}");

    // Refresh twice on A, then show the first cookie on B: reuse, the session dies on both.
    let answer = login(&http, &a, "alice-password").await;
    let first = cookie_of(&answer).unwrap();
    let second = cookie_of(&post(&http, &a, "/auth/refresh", Some(&first), json!({})).await)
        .expect("rotated");
    let third = cookie_of(&post(&http, &a, "/auth/refresh", Some(&second), json!({})).await)
        .expect("rotated again");
    let reused = post(&http, &b, "/auth/refresh", Some(&first), json!({})).await;
    assert_eq!(reused.status(), 401);
    let body: Value = reused.json().await.unwrap();
    assert_eq!(
        body["error_description"],
        "refresh token reused: session revoked"
    );
    assert_eq!(
        post(&http, &a, "/auth/refresh", Some(&third), json!({}))
            .await
            .status(),
        401,
        "the newest cookie died with the family"
    );

    // Failures counted by A hold the username on B, even for the right password.
    for _ in 0..5 {
        assert_eq!(login(&http, &a, "wrong-password").await.status(), 401);
    }
    assert_eq!(login(&http, &b, "alice-password").await.status(), 401);
}
