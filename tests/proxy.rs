//! Forwarding through the real gateway: header stripping and injection, the forwarded path,
//! streamed bodies, upstream failures, HTTP/2 over TLS, and request limits.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

struct Setup {
    gw: TestGateway,
    upstream: TestUpstream,
    key: TestKey,
    ca_pem: String,
}

async fn setup_with(upstream: TestUpstream, upstream_extra: &str) -> Setup {
    let work = Workdir::new();
    let pki = pki(&work);
    let key = TestKey::rsa("rsa-1");
    work.jwks("jwks.json", &[&key]);
    let gw = GatewayYaml::new()
        .and_https(&pki.cert, &pki.key)
        .server("max_header_bytes: 16384")
        .upstream_with("app", &format!("url: {}\n{upstream_extra}", upstream.url()))
        .upstream_with("dead", "url: http://127.0.0.1:1\nconnect_timeout: 2s")
        .providers(&format!(
            "- name: main\n  issuer: {ISSUER}\n  audiences: [{AUDIENCE}]\n  algorithms: [RS256]\n  jwks_file: jwks.json\n"
        ))
        .routes(
            r#"
- name: api
  prefix: /api
  upstream: app
  claim_headers:
    X-User-Id: sub
    X-User-Roles: roles
    X-User-Org: org
- name: stripped
  prefix: /stripped
  upstream: app
  strip_authorization: true
- name: public
  prefix: /public
  upstream: app
  policy: public
- name: down
  prefix: /down
  upstream: dead
  policy: public
"#,
        )
        .start_in(work)
        .await;
    Setup {
        gw,
        upstream,
        key,
        ca_pem: pki.ca_pem,
    }
}

async fn setup() -> Setup {
    setup_with(TestUpstream::start().await, "").await
}

#[tokio::test]
async fn identity_headers_are_stripped_then_injected() {
    let s = setup().await;
    let token = mint(
        &s.key,
        "RS256",
        &claims_with(json!({"roles": ["admin", "reader"], "org": {"id": 7}})),
    );
    let response = client()
        .get(s.gw.url(0, "/api/me?x=1"))
        .bearer_auth(&token)
        .header("x-user-id", "mallory")
        .header("x_user_id", "mallory")
        .header("X-USER-ROLES", "superuser")
        .header("x-user-org", "evil")
        .header(
            "connection",
            "x-user-id, x-forwarded-for, x-forwarded-proto",
        )
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.example")
        .header("keep-alive", "timeout=5")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers().get("x-upstream").unwrap(), "test");
    assert!(
        response.headers().get("x-upstream-private").is_none(),
        "a header named in the upstream's Connection leaked"
    );
    let got = s.upstream.requests().pop().unwrap();
    let h = &got.headers;
    assert_eq!(got.target, "/api/me?x=1");
    assert_eq!(h.get_all("x-user-id").iter().collect::<Vec<_>>(), ["alice"]);
    assert!(h.get("x_user_id").is_none());
    assert_eq!(
        h.get_all("x-user-roles").iter().collect::<Vec<_>>(),
        ["admin,reader"]
    );
    assert_eq!(h.get("x-user-org").unwrap(), r#"{"id":7}"#);
    // The client's copy was named in Connection, so it went as hop-by-hop; the gateway's own
    // value is added after that and cannot be removed by the client.
    assert_eq!(h.get("x-forwarded-for").unwrap(), "127.0.0.1");
    assert_eq!(h.get("x-forwarded-proto").unwrap(), "http");
    assert_eq!(
        h.get("x-forwarded-host").unwrap(),
        &format!("{}", s.gw.addr(0))
    );
    assert_eq!(h.get("host").unwrap(), &format!("{}", s.gw.addr(0)));
    assert!(h.get("keep-alive").is_none());
    assert!(
        h.get("authorization").is_some(),
        "Authorization is kept by default"
    );

    // Without a Connection list, an incoming X-Forwarded-For from a peer that is not a trusted
    // proxy is replaced, not appended to.
    let response = client()
        .get(s.gw.url(0, "/api/me"))
        .bearer_auth(&token)
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let got = s.upstream.requests().pop().unwrap();
    assert_eq!(got.headers.get("x-forwarded-for").unwrap(), "127.0.0.1");
}

#[tokio::test]
async fn authorization_stripped_where_configured_and_bad_claim_values_dropped() {
    let s = setup().await;
    let token = mint(&s.key, "RS256", &claims());
    assert_eq!(
        client()
            .get(s.gw.url(0, "/stripped/x"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(
        s.upstream
            .requests()
            .pop()
            .unwrap()
            .headers
            .get("authorization")
            .is_none()
    );

    let evil = mint(
        &s.key,
        "RS256",
        &claims_with(json!({"sub": "alice\r\nX-Admin: yes", "roles": ["a\nb"]})),
    );
    let response = client()
        .get(s.gw.url(0, "/api/x"))
        .bearer_auth(&evil)
        .header("x-user-id", "spoof")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let got = s.upstream.requests().pop().unwrap();
    assert!(
        got.headers.get("x-user-id").is_none(),
        "a claim with control characters reached a header"
    );
    assert!(got.headers.get("x-user-roles").is_none());
    assert!(got.headers.get("x-admin").is_none());
}

#[tokio::test]
async fn identity_headers_are_stripped_on_public_routes_too() {
    let s = setup().await;
    let response = client()
        .get(s.gw.url(0, "/public/x"))
        .header("x-user-id", "admin")
        .header("X_User_Roles", "superuser")
        .header("x-other", "kept")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let got = s.upstream.requests().pop().unwrap();
    assert!(
        got.headers.get("x-user-id").is_none(),
        "a spoofed identity header reached the backend"
    );
    assert!(got.headers.get("x_user_roles").is_none());
    assert_eq!(got.headers.get("x-other").unwrap(), "kept");
}

#[tokio::test]
async fn request_body_is_streamed_upstream() {
    let s = setup().await;
    let token = mint(&s.key, "RS256", &claims());
    let body = vec![b'z'; 3 * 1024 * 1024];
    let response = client()
        .post(s.gw.url(0, "/api/upload"))
        .bearer_auth(&token)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        format!("upstream-ok {} bytes", body.len())
    );
    let got = s.upstream.requests().pop().unwrap();
    assert_eq!(got.method, "POST");
    assert_eq!(got.body.len(), body.len());
}

#[tokio::test]
async fn upstream_down_is_502() {
    let s = setup().await;
    let (status, code, _) =
        reason(client().get(s.gw.url(0, "/down/x")).send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (502, "upstream_unavailable"));
    // The gateway keeps serving.
    assert_eq!(
        client()
            .get(s.gw.url(0, "/public/x"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn slow_upstream_is_504_in_bounded_time() {
    let upstream = TestUpstream::start_with_delay(Duration::from_secs(10)).await;
    let s = setup_with(upstream, "response_timeout: 300ms").await;
    let started = std::time::Instant::now();
    let (status, code, _) =
        reason(client().get(s.gw.url(0, "/public/x")).send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (504, "upstream_timeout"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn https_with_http2_and_http1() {
    let s = setup().await;
    let token = mint(&s.key, "RS256", &claims());
    let url = format!("https://localhost:{}/api/tls", s.gw.addr(1).port());
    for h2 in [true, false] {
        let client = tls_client(&s.ca_pem, h2);
        let response = client.get(&url).bearer_auth(&token).send().await.unwrap();
        let want = if h2 {
            reqwest::Version::HTTP_2
        } else {
            reqwest::Version::HTTP_11
        };
        assert_eq!(response.version(), want);
        assert_eq!(response.status(), 200);
        let got = s.upstream.requests().pop().unwrap();
        assert_eq!(got.headers.get("x-forwarded-proto").unwrap(), "https");
        assert_eq!(got.headers.get("x-user-id").unwrap(), "alice");
        assert_eq!(
            got.headers.get("host").unwrap(),
            &format!("localhost:{}", s.gw.addr(1).port())
        );
        let (status, code, _) = reason(client.get(&url).send().await.unwrap()).await;
        assert_eq!((status, code.as_str()), (401, "missing_token"), "h2={h2}");
    }
}

#[tokio::test]
async fn oversized_request_head_is_refused_and_gateway_keeps_serving() {
    let s = setup().await;
    let big = "a".repeat(20_000);
    let response = client()
        .get(s.gw.url(0, "/public/x"))
        .header("x-big", big)
        .send()
        .await;
    match response {
        Ok(r) => assert_eq!(r.status(), 431),
        Err(e) => assert!(e.is_request() || e.is_connect(), "{e}"),
    }
    assert_eq!(s.upstream.count(), 0);
    assert_eq!(
        client()
            .get(s.gw.url(0, "/public/x"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn forwarding_headers_trust_only_trusted_proxies_and_request_ids_travel() {
    // Untrusted peer (the default): every client-sent forwarding header is replaced.
    let s = setup().await;
    let response = client()
        .get(s.gw.url(0, "/public/x"))
        .header("forwarded", "for=6.6.6.6;proto=https")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-request-id", "trace-42.a")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "trace-42.a");
    let got = s.upstream.requests().pop().unwrap();
    let addr = s.gw.addr(0);
    assert_eq!(got.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(
        got.headers["forwarded"],
        format!("for=127.0.0.1;proto=http;host=\"{addr}\"").as_str()
    );
    assert_eq!(got.headers["x-request-id"], "trace-42.a");

    // An invalid id is replaced by a generated one, the same upstream and in the response,
    // rejections included.
    let response = client()
        .get(s.gw.url(0, "/public/x"))
        .header("x-request-id", "not valid!")
        .send()
        .await
        .unwrap();
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(id.len(), 32);
    assert_eq!(
        s.upstream.requests().pop().unwrap().headers["x-request-id"],
        id.as_str()
    );
    let response = client().get(s.gw.url(0, "/api/x")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["x-request-id"].len(), 32);

    // A trusted proxy's headers are extended, and its proto/host kept.
    let work = Workdir::new();
    let upstream = TestUpstream::start().await;
    let gw = GatewayYaml::new()
        .server("trusted_proxies: [127.0.0.0/8, \"::1\"]")
        .upstream("app", &upstream.url())
        .public_route("open", "/", "app")
        .start_in(work)
        .await;
    client()
        .get(gw.url(0, "/x"))
        .header("forwarded", "for=198.51.100.7;proto=https")
        .header("x-forwarded-for", "198.51.100.7")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "api.example.com")
        .send()
        .await
        .unwrap();
    let got = upstream.requests().pop().unwrap();
    assert_eq!(got.headers["x-forwarded-for"], "198.51.100.7, 127.0.0.1");
    assert_eq!(got.headers["x-forwarded-proto"], "https");
    assert_eq!(got.headers["x-forwarded-host"], "api.example.com");
    let forwarded = got.headers["forwarded"].to_str().unwrap();
    assert!(
        forwarded.starts_with("for=198.51.100.7;proto=https, for=127.0.0.1;proto=http"),
        "{forwarded}"
    );
}
