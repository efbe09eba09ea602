//! The issuer end to end over TLS: login → protected route → refresh → reuse detection →
//! logout, cookie attributes, CSRF, throttling, published keys, expiry with a moved clock.

mod common;

use std::time::{Duration, Instant};

use common::issuer::{COOKIE_NAME, base64_url, refresh_cookie, setup, token_of};
use reqwest::header::{COOKIE, SET_COOKIE};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_flow_over_tls() {
    let s = setup("").await;
    // Login: an access token and the refresh cookie with every attribute.
    let response = s.login("alice", "alice-password").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let (_, line) = refresh_cookie(&response);
    let attributes: Vec<&str> = line.split("; ").skip(1).collect();
    assert_eq!(attributes[0], "Max-Age=28800", "{line}");
    for a in ["Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(attributes.contains(&a), "{a} missing: {line}");
    }
    assert!(!line.to_ascii_lowercase().contains("domain"), "{line}");
    let (token, cookie, expires_in) = token_of(response).await;
    assert_eq!(expires_in, 600);

    // The token: RFC 9068 shape, verified by the gateway's own provider.
    let header: Value =
        serde_json::from_slice(&base64_url(token.split('.').next().unwrap())).unwrap();
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    let claims: Value =
        serde_json::from_slice(&base64_url(token.split('.').nth(1).unwrap())).unwrap();
    for name in ["iss", "aud", "sub", "iat", "nbf", "exp", "jti", "client_id"] {
        assert!(claims.get(name).is_some(), "{name} missing: {claims}");
    }
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["roles"], json!(["admin"]));
    assert_eq!(s.get("/api/admin/x", &token).await, 200);
    assert_eq!(s.get("/api/things", "not-a-token").await, 401);

    // The cookie never reaches the upstream, and the upstream cannot set it.
    let sent = s
        .client
        .get(s.url("/public/x"))
        .header(COOKIE, format!("theme=dark; {COOKIE_NAME}={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200);
    let seen = s.upstream.requests().last().unwrap().headers.clone();
    assert_eq!(seen.get("cookie").unwrap(), "theme=dark");

    // Refresh: a new access token and a rotated cookie.
    let (token2, cookie2, _) =
        token_of(s.post("/auth/refresh", Some(&cookie), json!({})).await).await;
    assert_ne!(cookie2, cookie);
    assert_ne!(token2, token);
    assert_eq!(s.get("/api/things", &token2).await, 200);
    // Within the grace window the old cookie gets the same successor.
    let (_, again, _) = token_of(s.post("/auth/refresh", Some(&cookie), json!({})).await).await;
    assert_eq!(again, cookie2);
    // After it, reusing the old cookie revokes the whole family.
    s.issuer().clock.advance(Duration::from_secs(11));
    let reused = s.post("/auth/refresh", Some(&cookie), json!({})).await;
    assert_eq!(reused.status(), 401);
    let (_, cleared) = refresh_cookie(&reused);
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let body: Value = reused.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(
        s.post("/auth/refresh", Some(&cookie2), json!({}))
            .await
            .status(),
        401
    );
    assert_eq!(
        s.issuer().count(portcullis::issuer::Event::ReuseDetected),
        1
    );

    // A new login, then logout: the cookie is cleared, refresh is refused, logout again is 200.
    let (_, cookie3, _) = token_of(s.login("alice", "alice-password").await).await;
    let out = s.post("/auth/logout", Some(&cookie3), json!({})).await;
    assert_eq!(out.status(), 200);
    let (value, line) = refresh_cookie(&out);
    assert_eq!(value, "");
    assert_eq!(
        line,
        format!("{COOKIE_NAME}=; Max-Age=0; Path=/; Secure; HttpOnly; SameSite=Strict")
    );
    assert_eq!(
        s.post("/auth/refresh", Some(&cookie3), json!({}))
            .await
            .status(),
        401
    );
    assert_eq!(
        s.post("/auth/logout", Some(&cookie3), json!({}))
            .await
            .status(),
        200
    );
    assert_eq!(s.post("/auth/logout", None, json!({})).await.status(), 200);
    assert_eq!(
        s.post("/auth/logout", Some("garbage"), json!({}))
            .await
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_families_expire_idle_and_absolute() {
    let s = setup("  refresh_idle_ttl: 1h\n  refresh_absolute_ttl: 3h\n").await;
    let (_, cookie, _) = token_of(s.login("bob", "bob-password").await).await;
    s.issuer().clock.advance(Duration::from_secs(3601));
    assert_eq!(
        s.post("/auth/refresh", Some(&cookie), json!({}))
            .await
            .status(),
        401,
        "idle"
    );

    let (_, mut cookie, _) = token_of(s.login("bob", "bob-password").await).await;
    for _ in 0..5 {
        s.issuer().clock.advance(Duration::from_secs(1800));
        let response = s.post("/auth/refresh", Some(&cookie), json!({})).await;
        let (_, line) = refresh_cookie(&response);
        let max_age: u64 = line
            .split("Max-Age=")
            .nth(1)
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            max_age <= 3 * 3600 - 1800,
            "Max-Age is what is left of the absolute lifetime: {line}"
        );
        cookie = token_of(response).await.1;
    }
    s.issuer().clock.advance(Duration::from_secs(1800));
    assert_eq!(
        s.post("/auth/refresh", Some(&cookie), json!({}))
            .await
            .status(),
        401,
        "in use, it still ends at the absolute expiry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csrf_is_refused_on_every_post_endpoint_without_touching_cookies() {
    let s = setup("").await;
    let (_, cookie, _) = token_of(s.login("alice", "alice-password").await).await;
    let cases: [(&str, &[(&str, &str)]); 4] = [
        (
            "cross-site fetch metadata",
            &[("sec-fetch-site", "cross-site"), ("x-portcullis-csrf", "1")],
        ),
        (
            "foreign origin",
            &[
                ("origin", "https://evil.example"),
                ("x-portcullis-csrf", "1"),
            ],
        ),
        ("missing header", &[]),
        (
            "same-site, not allowed",
            &[
                ("sec-fetch-site", "same-site"),
                ("origin", "https://other.localhost"),
                ("x-portcullis-csrf", "1"),
            ],
        ),
    ];
    for path in ["/auth/login", "/auth/refresh", "/auth/logout"] {
        for (what, headers) in cases {
            let mut request = s
                .client
                .post(s.url(path))
                .header(COOKIE, format!("{COOKIE_NAME}={cookie}"))
                .json(&json!({"username": "alice", "password": "alice-password"}));
            for (n, v) in headers {
                request = request.header(*n, *v);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 403, "{path}: {what}");
            assert!(
                response.headers().get(SET_COOKIE).is_none(),
                "{path}: {what}"
            );
            let vary = response.headers()["vary"].to_str().unwrap();
            assert!(vary.contains("Origin") && vary.contains("Sec-Fetch-Site"));
        }
    }
    // An allowed origin passes; the family survived every refused call.
    let response = s
        .client
        .post(s.url("/auth/refresh"))
        .header(COOKIE, format!("{COOKIE_NAME}={cookie}"))
        .header("sec-fetch-site", "cross-site")
        .header("origin", "https://app.example")
        .header("x-portcullis-csrf", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_look_alike_and_are_throttled() {
    let s = setup("  client_rate: {per_minute: 600, burst: 100}\n").await;
    let unknown = s.login("nobody", "x").await;
    let wrong = s.login("alice", "wrong").await;
    assert_eq!(
        (unknown.status().as_u16(), wrong.status().as_u16()),
        (401, 401)
    );
    let (a, b) = (unknown.text().await.unwrap(), wrong.text().await.unwrap());
    assert_eq!(a, b, "one generic answer");
    for _ in 0..4 {
        assert_eq!(s.login("alice", "wrong").await.status(), 401);
    }
    // Five failures: held for a second, with the same answer even for the right password.
    let held = s.login("alice", "alice-password").await;
    assert_eq!(held.status(), 401);
    assert_eq!(held.text().await.unwrap(), a);
    assert_eq!(
        s.issuer().count(portcullis::issuer::Event::LoginThrottled),
        1
    );
    s.issuer().clock.advance(Duration::from_secs(2));
    assert_eq!(
        s.login("alice", "alice-password").await.status(),
        200,
        "never a permanent lock"
    );
    // Success reset the count: one more failure is not held.
    assert_eq!(s.login("alice", "wrong").await.status(), 401);
    assert_eq!(s.login("alice", "alice-password").await.status(), 200);
    // Bad bodies are a 400, not a failure.
    let bad = s
        .post("/auth/login", None, json!({"username": "alice"}))
        .await;
    assert_eq!(bad.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_users_take_as_long_as_wrong_passwords() {
    let s = setup(
        "  client_rate: {per_minute: 6000, burst: 1000}\n  login_throttle: {failures: 1000}\n",
    )
    .await;
    let mut unknown = Vec::new();
    let mut wrong = Vec::new();
    for i in 0..50 {
        let started = Instant::now();
        assert_eq!(s.login(&format!("ghost{i}"), "guess").await.status(), 401);
        unknown.push(started.elapsed());
        let started = Instant::now();
        assert_eq!(s.login("bob", "guess").await.status(), 401);
        wrong.push(started.elapsed());
    }
    unknown.sort();
    wrong.sort();
    let (u, w) = (unknown[25].as_secs_f64(), wrong[25].as_secs_f64());
    assert!(
        (u - w).abs() / w < 0.10,
        "medians {u:.4}s (unknown) vs {w:.4}s (wrong password)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_rate_limit_answers_429() {
    let s = setup("  client_rate: {per_minute: 1, burst: 2}\n").await;
    assert_eq!(s.login("alice", "wrong").await.status(), 401);
    assert_eq!(s.login("alice", "wrong").await.status(), 401);
    let limited = s.login("alice", "alice-password").await;
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().get("retry-after").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_metadata_are_published() {
    let s = setup("").await;
    let jwks = s
        .client
        .get(s.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(jwks.status(), 200);
    assert_eq!(jwks.headers()["cache-control"], "public, max-age=300");
    let jwks: Value = jwks.json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    for key in keys {
        assert_eq!(key["use"], "sig");
        assert_eq!(key["alg"], "ES256");
        assert!(key["kid"].as_str().is_some_and(|k| !k.is_empty()));
        assert!(key.get("d").is_none() && key["kty"] != "oct");
    }
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let doc: Value = s
            .client
            .get(s.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(doc["issuer"], "https://localhost");
        assert_eq!(doc["jwks_uri"], "https://localhost/.well-known/jwks.json");
        assert_eq!(doc["token_endpoint"], "https://localhost/auth/login");
    }
    let page = s.client.get(s.url("/auth/login")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'sha256-"),
        "{csp}"
    );
    // GET on the POST endpoints: the route table says 405.
    let get = s.client.get(s.url("/auth/refresh")).send().await.unwrap();
    assert_eq!(get.status(), 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_refreshes_of_one_cookie_have_one_successor() {
    let s = setup("").await;
    let (_, cookie, _) = token_of(s.login("alice", "alice-password").await).await;
    let s = std::sync::Arc::new(s);
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let (s, cookie) = (s.clone(), cookie.clone());
        calls.spawn(async move {
            let r = s.post("/auth/refresh", Some(&cookie), json!({})).await;
            let status = r.status().as_u16();
            let successor = (status == 200).then(|| refresh_cookie(&r).0);
            (status, successor)
        });
    }
    let mut successors = std::collections::HashSet::new();
    let mut ok = 0;
    while let Some(joined) = calls.join_next().await {
        let (status, successor) = joined.unwrap();
        assert!(status == 200 || status == 401, "status {status}");
        if let Some(c) = successor {
            ok += 1;
            successors.insert(c);
        }
    }
    assert_eq!(successors.len(), 1, "exactly one successor");
    assert!(ok >= 1);
    assert!(!successors.contains(&cookie));
    let refreshed = s.issuer().count(portcullis::issuer::Event::Refreshed);
    assert_eq!(refreshed, 1, "one compare-and-set won");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_revokes_the_access_token_it_is_shown_when_revocation_is_on() {
    let s = setup("  revocation: {enabled: true}\n").await;
    let (token, cookie, _) = token_of(s.login("alice", "alice-password").await).await;
    let (other, _, _) = token_of(s.login("alice", "alice-password").await).await;
    assert_eq!(s.get("/api/things", &token).await, 200);

    // A token that does not verify is not acted on (anyone could name a jti).
    let (header, rest) = token.split_once('.').unwrap();
    let (payload, _) = rest.split_once('.').unwrap();
    let forged = format!("{header}.{payload}.AAAA");
    let answer = s.logout_showing(None, &forged).await;
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["access_token_revoked"], false);
    assert_eq!(s.get("/api/things", &token).await, 200);

    // Logout with the token: the family ends and the token is refused from now on.
    let answer = s.logout_showing(Some(&cookie), &token).await;
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["access_token_revoked"], true);
    assert_eq!(body["sessions_revoked"], 1);
    let refused = s
        .client
        .get(s.url("/api/things"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let (status, reason, challenge) = common::reason(refused).await;
    assert_eq!((status, reason.as_str()), (401, "token_revoked"));
    assert!(challenge.unwrap().contains("invalid_token"));
    // Another token of the same user is not touched.
    assert_eq!(s.get("/api/things", &other).await, 200);
    assert_eq!(
        s.issuer()
            .count(portcullis::issuer::Event::AccessTokenRevoked),
        1
    );

    // A reload keeps the denylist (it lives with the store, not the config).
    let config = portcullis::config::load(&s.gw.work.path().join("gateway.yaml")).unwrap();
    s.gw.gateway.apply(config).await.unwrap();
    assert_eq!(s.get("/api/things", &token).await, 401);
    assert_eq!(s.get("/api/things", &other).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_revocation_logout_leaves_access_tokens_to_expire() {
    let s = setup("").await;
    let (token, cookie, _) = token_of(s.login("alice", "alice-password").await).await;
    let answer = s.logout_showing(Some(&cookie), &token).await;
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["access_token_revoked"], false);
    assert_eq!(s.get("/api/things", &token).await, 200);
}
