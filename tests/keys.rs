//! Remote key sets against a real JWKS server under test control: rotation, unknown-kid floods,
//! outages, garbage, removed keys, discovery, start-up without keys; and the verified-token
//! cache.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

struct Setup {
    gw: TestGateway,
    jwks: TestJwks,
    upstream: TestUpstream,
}

/// A gateway whose provider takes its keys from `jwks` (plain HTTP, allowed explicitly);
/// `remote_keys` and `server_extra` are keys added to those sections.
async fn gateway(jwks: TestJwks, remote_keys: &str, server_extra: &str) -> Setup {
    let upstream = TestUpstream::start().await;
    let gw = GatewayYaml::new()
        .server("access_log: false")
        .server(server_extra)
        .upstream("app", &upstream.url())
        .providers(&format!(
            "
- name: idp
  issuer: {ISSUER}
  audiences: [{AUDIENCE}]
  algorithms: [RS256, ES256]
  jwks_uri: {uri}
  remote_keys:
    allow_http: true
    fetch_timeout: 1s
{remote_keys}",
            uri = jwks.jwks_uri(),
            remote_keys = indent(remote_keys, "    ")
        ))
        .routes("- name: api\n  prefix: /api\n  upstream: app\n")
        .start()
        .await;
    Setup { gw, jwks, upstream }
}

async fn status(s: &Setup, token: &str) -> (u16, String) {
    let r = client()
        .get(s.gw.url(0, "/api/x"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let (status, reason, _) = reason(r).await;
    (status, reason)
}

#[tokio::test]
async fn rotation_is_picked_up_on_first_use_of_the_new_kid() {
    let (k1, k2) = (TestKey::ec256("k1"), TestKey::ec256("k2"));
    let s = gateway(TestJwks::start(&[&k1]).await, "", "").await;
    assert_eq!(s.jwks.fetches(), 1, "one fetch at start-up");
    assert_eq!(status(&s, &mint(&k1, "ES256", &claims())).await.0, 200);
    s.jwks.set_keys(&[&k1, &k2]);
    assert_eq!(
        status(&s, &mint(&k2, "ES256", &claims())).await.0,
        200,
        "new kid accepted at once"
    );
    assert_eq!(s.jwks.fetches(), 2);
    assert_eq!(status(&s, &mint(&k1, "ES256", &claims())).await.0, 200);
    assert_eq!(s.jwks.fetches(), 2);
}

#[tokio::test]
async fn unknown_kid_flood_stays_within_the_refetch_budget() {
    let k1 = TestKey::ec256("k1");
    // 250 clients share the test's runtime with the gateway: on a loaded machine some write
    // their request more than the default 10 s after connecting, which is not what this test
    // is about.
    let s = gateway(
        TestJwks::start(&[&k1]).await,
        "",
        "header_read_timeout: 60s",
    )
    .await;
    let valid = mint(&k1, "ES256", &claims());
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..250 {
        let token = mint_with(
            &k1,
            "ES256",
            json!({"kid": format!("random-{i}")}),
            &claims_with(json!({"jti": i})),
        );
        let url = s.gw.url(0, "/api/x");
        requests.spawn(async move {
            reason(client().get(url).bearer_auth(token).send().await.unwrap()).await
        });
    }
    // Known-kid traffic keeps flowing during the flood.
    assert_eq!(status(&s, &valid).await.0, 200);
    while let Some(done) = requests.join_next().await {
        let (status, reason, _) = done.unwrap();
        assert_eq!((status, reason.as_str()), (401, "unknown_key"));
    }
    // One at start-up, then at most the burst (3) plus one per refill (10 s) elapsed.
    assert!(
        s.jwks.fetches() <= 1 + 3 + 1,
        "{} fetches for a random-kid flood",
        s.jwks.fetches()
    );
    assert_eq!(s.upstream.count(), 1);
}

/// 10,000 distinct random kids cause at most `burst + elapsed / refill` fetches, and the
/// valid traffic in between is served.
#[tokio::test]
async fn ten_thousand_random_kids_cost_at_most_the_budget() {
    let k1 = TestKey::ec256("k1");
    let s = gateway(
        TestJwks::start(&[&k1]).await,
        "unknown_kid_burst: 3\nunknown_kid_refill: 1s",
        "",
    )
    .await;
    let started = std::time::Instant::now();
    let claims = claims();
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..20 {
        let url = s.gw.url(0, "/api/x");
        let tokens: Vec<String> = (0..500)
            .map(|i| {
                mint_with(
                    &k1,
                    "ES256",
                    json!({"kid": format!("stray-{w}-{i}")}),
                    &claims,
                )
            })
            .collect();
        workers.spawn(async move {
            let http = client();
            for token in tokens {
                let r = http.get(&url).bearer_auth(token).send().await.unwrap();
                assert_eq!(r.status(), 401);
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done.unwrap();
    }
    let elapsed = started.elapsed().as_secs();
    let fetches = s.jwks.fetches() - 1;
    eprintln!("10,000 random kids in {elapsed} s: {fetches} fetch(es)");
    assert!(
        fetches as u64 <= 3 + elapsed + 1,
        "{fetches} fetches for 10,000 random kids in {elapsed} s"
    );
    assert_eq!(status(&s, &mint(&k1, "ES256", &claims)).await.0, 200);
}

/// A stray kid that keeps coming (an old client, a staging token) is fetched for once; a kid
/// the IdP publishes afterwards is still picked up at its first use.
#[tokio::test]
async fn stray_kids_do_not_hold_back_a_rotation() {
    let (k1, k2) = (TestKey::ec256("k1"), TestKey::ec256("k2"));
    let s = gateway(TestJwks::start(&[&k1]).await, "", "").await;
    let stray = mint_with(&k1, "ES256", json!({"kid": "staging-1"}), &claims());
    for _ in 0..5 {
        assert_eq!(status(&s, &stray).await, (401, "unknown_key".to_string()));
    }
    assert_eq!(
        s.jwks.fetches(),
        2,
        "a repeated stray kid is fetched for once"
    );
    s.jwks.set_keys(&[&k1, &k2]);
    let started = std::time::Instant::now();
    assert_eq!(status(&s, &mint(&k2, "ES256", &claims())).await.0, 200);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(s.jwks.fetches(), 3);
    // The stray kid stays refused without another fetch.
    assert_eq!(status(&s, &stray).await.0, 401);
    assert_eq!(s.jwks.fetches(), 3);
}

#[tokio::test]
async fn outage_and_garbage_keep_the_last_good_keys() {
    let k1 = TestKey::ec256("k1");
    let jwks = TestJwks::start(&[&k1]).await;
    jwks.set_max_age(Some(1));
    let s = gateway(
        jwks,
        "min_refresh: 1s\nmax_refresh: 2s",
        "token_cache:\n  max_entries: 0",
    )
    .await;
    for (mode, name) in [
        (JwksMode::Down, "503"),
        (JwksMode::Garbage, "garbage"),
        (
            JwksMode::Stall(Duration::from_secs(3)),
            "stall past the fetch timeout",
        ),
    ] {
        s.jwks.set_mode(mode);
        let before = s.jwks.fetches();
        let jwks = s.jwks.clone();
        assert_eventually(
            Duration::from_secs(15),
            "a background refresh was attempted",
            || {
                let jwks = jwks.clone();
                async move { jwks.fetches() > before + 1 }
            },
        )
        .await;
        assert_eq!(
            status(&s, &mint(&k1, "ES256", &claims())).await.0,
            200,
            "{name}: last good keys dropped"
        );
    }
}

#[tokio::test]
async fn removed_key_is_refused_after_the_refresh_even_when_cached() {
    let (k1, k2) = (TestKey::ec256("k1"), TestKey::ec256("k2"));
    let jwks = TestJwks::start(&[&k1, &k2]).await;
    jwks.set_max_age(Some(1));
    let s = gateway(jwks, "min_refresh: 1s", "").await;
    let token = mint(&k2, "ES256", &claims());
    assert_eq!(status(&s, &token).await.0, 200);
    assert_eq!(status(&s, &token).await.0, 200, "served from the cache");
    s.jwks.set_keys(&[&k1]);
    let before = s.jwks.fetches();
    let jwks = s.jwks.clone();
    assert_eventually(Duration::from_secs(10), "the key set was refreshed", || {
        let jwks = jwks.clone();
        async move { jwks.fetches() > before }
    })
    .await;
    // The refresh lands just after the fetch is counted.
    let gw = &s;
    let token = &token;
    assert_eventually(
        Duration::from_secs(5),
        "the removed key is refused",
        || async move { status(gw, token).await == (401, "unknown_key".to_string()) },
    )
    .await;
    assert_eq!(status(&s, &mint(&k1, "ES256", &claims())).await.0, 200);
}

#[tokio::test]
async fn startup_without_keys_answers_keys_unavailable_then_recovers() {
    let k1 = TestKey::ec256("k1");
    let jwks = TestJwks::start(&[&k1]).await;
    jwks.set_mode(JwksMode::Down);
    let s = gateway(jwks, "unknown_kid_cooldown: 1s", "").await;
    let token = mint(&k1, "ES256", &claims());
    assert_eq!(
        status(&s, &token).await,
        (401, "keys_unavailable".to_string())
    );
    assert_eq!(s.upstream.count(), 0);
    s.jwks.set_mode(JwksMode::Serve);
    let gw = &s;
    let token = &token;
    assert_eventually(
        Duration::from_secs(15),
        "keys picked up without restart",
        || async move { status(gw, token).await.0 == 200 },
    )
    .await;
}

#[tokio::test]
async fn fail_fast_refuses_to_start_without_keys() {
    let k1 = TestKey::ec256("k1");
    let jwks = TestJwks::start(&[&k1]).await;
    jwks.set_mode(JwksMode::Down);
    let yaml = GatewayYaml::new()
        .upstream("app", "http://127.0.0.1:9")
        .providers(&format!(
            "
- name: idp
  issuer: {ISSUER}
  audiences: [a]
  algorithms: [ES256]
  jwks_uri: {}
  remote_keys:
    allow_http: true
    fail_fast: true
",
            jwks.jwks_uri()
        ))
        .routes("- name: api\n  prefix: /\n  upstream: app\n")
        .yaml();
    let work = Workdir::new();
    let config = portcullis::config::load(&work.write("g.yaml", &yaml)).unwrap();
    let err = portcullis::server::start(config)
        .await
        .expect_err("started without keys");
    assert!(err.to_string().contains("provider idp"), "{err}");
    assert!(err.to_string().contains("503"), "{err}");
}

#[tokio::test]
async fn discovery_over_https_and_issuer_mismatch() {
    let work = Workdir::new();
    let pki = pki(&work);
    let ca = work.write("ca.pem", &pki.ca_pem);
    let k1 = TestKey::rsa("k1");
    let idp = TestJwks::start_tls(&[&k1], &pki).await;
    let issuer = idp.base.clone();
    let upstream = TestUpstream::start().await;
    let yaml = |fail_fast: bool| {
        GatewayYaml::new()
            .upstream("app", &upstream.url())
            .providers(&format!(
                "
- name: idp
  issuer: {issuer}
  audiences: [{AUDIENCE}]
  algorithms: [RS256]
  discovery: true
  remote_keys:
    ca_file: {}
    fail_fast: {fail_fast}
",
                ca.display()
            ))
            .routes("- name: api\n  prefix: /api\n  upstream: app\n")
            .yaml()
    };
    let gw = TestGateway::start(Workdir::new(), &yaml(false)).await;
    let token = mint(&k1, "RS256", &claims_with(json!({"iss": issuer})));
    let r = client()
        .get(gw.url(0, "/api/x"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // A discovery document that names another issuer is refused.
    idp.set_discovery_issuer("https://impostor.example");
    let config = portcullis::config::load(&work.write("g.yaml", &yaml(true))).unwrap();
    let err = portcullis::server::start(config)
        .await
        .expect_err("accepted a mismatching issuer");
    assert!(err.to_string().contains("impostor"), "{err}");
}

#[tokio::test]
async fn plain_http_key_source_needs_an_explicit_opt_in() {
    let work = Workdir::new();
    let path = work.write(
        "g.yaml",
        &GatewayYaml::new()
            .upstream("app", "http://127.0.0.1:9")
            .providers(
                "- name: idp\n  issuer: https://i\n  audiences: [a]\n  algorithms: [RS256]\n  jwks_uri: http://127.0.0.1:9/jwks.json\n",
            )
            .routes("- name: api\n  prefix: /\n  upstream: app\n")
            .yaml(),
    );
    let err = portcullis::config::load(&path)
        .expect_err("plain http accepted")
        .to_string();
    assert!(
        err.contains("providers[0].jwks_uri") && err.contains("allow_http"),
        "{err}"
    );
}

/// A gateway whose provider has `key` in a local JWKS file; `server` and `provider_extra` are
/// YAML lines added to those sections.
async fn local_key_gateway(key: &TestKey, server: &str, provider_extra: &str) -> TestGateway {
    let work = Workdir::new();
    work.jwks("jwks.json", &[key]);
    let upstream = TestUpstream::start().await;
    GatewayYaml::new()
        .server(server)
        .upstream("app", &upstream.url())
        .providers(&format!(
            "
- name: idp
  issuer: {ISSUER}
  audiences: [{AUDIENCE}]
  algorithms: [ES256]
  jwks_file: jwks.json
{}",
            indent(provider_extra, "  ")
        ))
        .routes("- name: api\n  prefix: /api\n  upstream: app\n")
        .start_in(work)
        .await
}

#[tokio::test]
async fn cached_token_is_refused_the_moment_it_expires() {
    let k1 = TestKey::ec256("k1");
    let gw = local_key_gateway(&k1, "", "leeway: 0s").await;
    let exp = now() + 2;
    let token = mint(&k1, "ES256", &claims_with(json!({"exp": exp})));
    let get = || client().get(gw.url(0, "/api/x")).bearer_auth(&token).send();
    assert_eq!(get().await.unwrap().status(), 200);
    assert_eq!(get().await.unwrap().status(), 200);
    let cache = gw
        .gateway
        .state
        .snapshot
        .load()
        .token_cache
        .clone()
        .unwrap();
    assert_eq!(cache.entry_count(), 1);
    // Keep asking across `exp`: accepted while the whole exchange was before it, refused with
    // token_expired as soon as it started at or after it.
    let get = &get;
    assert_eventually(
        Duration::from_secs(6),
        "the cached token is refused after exp",
        || async move {
            let started = now();
            let (status, code, _) = reason(get().await.unwrap()).await;
            if now() < exp {
                assert_eq!(status, 200, "refused before exp");
            }
            if started >= exp {
                assert_eq!(
                    (status, code.as_str()),
                    (401, "token_expired"),
                    "served from the cache after exp"
                );
            }
            started >= exp
        },
    )
    .await;
}

#[tokio::test]
async fn cache_stays_bounded_under_many_distinct_tokens() {
    let k1 = TestKey::ec256("k1");
    let server = "access_log: false\ntoken_cache:\n  max_entries: 50";
    let gw = local_key_gateway(&k1, server, "").await;
    let http = client();
    for i in 0..300 {
        let token = mint(&k1, "ES256", &claims_with(json!({"jti": i})));
        assert_eq!(
            http.get(gw.url(0, "/api/x"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    let cache = gw
        .gateway
        .state
        .snapshot
        .load()
        .token_cache
        .clone()
        .unwrap();
    // Bounded, and still caching: a cache that stored nothing would pass the upper bound.
    let entries = cache.entry_count();
    assert!((1..=50).contains(&entries), "{entries} entries");
    let evictions = cache.evictions.get();
    assert!(
        evictions >= 200,
        "{evictions} evictions of 300 tokens in 50 places"
    );
    let token = mint(&k1, "ES256", &claims_with(json!({"jti": "again"})));
    for _ in 0..2 {
        let r = http
            .get(gw.url(0, "/api/x"))
            .bearer_auth(&token)
            .send()
            .await;
        assert_eq!(r.unwrap().status(), 200);
    }
    let key = cache.key(&token);
    assert!(
        cache
            .get(&key, portcullis::token::verify::unix_now())
            .is_some(),
        "a token used twice is served from the cache"
    );
}

#[tokio::test]
async fn concurrent_requests_with_a_new_kid_share_one_fetch() {
    let (k1, k2) = (TestKey::ec256("k1"), TestKey::ec256("k2"));
    let s = gateway(TestJwks::start(&[&k1]).await, "", "").await;
    s.jwks.set_keys(&[&k1, &k2]);
    // A slow endpoint keeps the fetch in flight while the other requests arrive.
    s.jwks.set_mode(JwksMode::Stall(Duration::from_millis(400)));
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..20 {
        let token = mint(&k2, "ES256", &claims_with(json!({"jti": i})));
        let url = s.gw.url(0, "/api/x");
        requests.spawn(async move {
            client()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        });
    }
    while let Some(status) = requests.join_next().await {
        assert_eq!(
            status.unwrap(),
            200,
            "a request that arrived during the fetch was refused"
        );
    }
    assert_eq!(
        s.jwks.fetches(),
        2,
        "one fetch at start-up, one for the new kid"
    );
}
