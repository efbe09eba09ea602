//! Route policies and claim requirements through the real gateway, and default deny: a denied
//! request never reaches the upstream.

mod common;

use common::*;
use serde_json::{Value, json};

struct Setup {
    gw: TestGateway,
    upstream: TestUpstream,
    key: TestKey,
    other: TestKey,
}

async fn setup() -> Setup {
    let upstream = TestUpstream::start().await;
    let work = Workdir::new();
    let key = TestKey::ec256("main-1");
    let other = TestKey::ec256("other-1");
    work.jwks("main.json", &[&key]);
    work.jwks("other.json", &[&other]);
    let gw = GatewayYaml::new()
        .upstream("app", &upstream.url())
        .file_provider("main", ISSUER, "ES256", "main.json")
        .file_provider("partner", "https://partner.test", "ES256", "other.json")
        .routes(
            r#"
- name: public
  prefix: /public
  methods: [GET]
  upstream: app
  policy: public
- name: optional
  prefix: /optional
  upstream: app
  policy: optional
  claim_headers:
    X-User-Id: sub
- name: authenticated
  prefix: /auth
  upstream: app
- name: partner-only
  prefix: /partner
  upstream: app
  providers: [partner]
- name: admin
  prefix: /admin
  methods: [GET, POST]
  upstream: app
  require:
    claim: roles
    contains: admin
- name: orders
  prefix: /orders
  upstream: app
  require:
    claim: scope
    scope: orders:read
- name: combined
  path: /combined
  upstream: app
  require:
    all:
      - claim: https://example.com/tenant
        equals: acme
      - any:
          - claim: realm_access.roles
            contains_any: [ops, sre]
          - claim: level
            one_of: [5, 6]
      - claim: email_verified
        equals: true
      - claim: banned
        exists: false
- name: all-roles
  path: /all-roles
  upstream: app
  require:
    claim: roles
    contains_all: [reader, writer]
- name: query-token
  prefix: /download
  upstream: app
  token_query_param: access_token
- name: cookie-token
  prefix: /web
  upstream: app
  token_cookie: session
"#,
        )
        .start_in(work)
        .await;
    Setup {
        gw,
        upstream,
        key,
        other,
    }
}

impl Setup {
    fn token(&self, patch: Value) -> String {
        mint(&self.key, "ES256", &claims_with(patch))
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        let mut request = client().get(self.gw.url(0, path));
        if let Some(t) = token {
            request = request.header("authorization", format!("Bearer {t}"));
        }
        let (status, reason, _) = reason(request.send().await.unwrap()).await;
        (status, reason)
    }
}

#[tokio::test]
async fn each_policy() {
    let s = setup().await;
    let valid = s.token(json!({}));
    let expired = s.token(json!({"exp": now() - 3600}));
    let cases: Vec<(&str, Option<&str>, u16, &str)> = vec![
        ("/public/x", None, 200, ""),
        ("/public/x", Some("garbage"), 200, ""),
        ("/optional/x", None, 200, ""),
        ("/optional/x", Some(&valid), 200, ""),
        // A presented token must be valid even where anonymous requests pass (CVE-2021-21378 class).
        ("/optional/x", Some(&expired), 401, "token_expired"),
        ("/optional/x", Some("garbage"), 401, "malformed_token"),
        ("/auth/x", None, 401, "missing_token"),
        ("/auth/x", Some(&valid), 200, ""),
        ("/auth/x", Some(&expired), 401, "token_expired"),
        ("/partner/x", Some(&valid), 401, "issuer_mismatch"),
    ];
    let mut forwarded = 0;
    for (path, token, status, reason) in cases {
        let before = s.upstream.count();
        assert_eq!(
            s.get(path, token).await,
            (status, reason.to_string()),
            "{path} {token:?}"
        );
        let reached = s.upstream.count() - before;
        assert_eq!(
            reached,
            usize::from(status == 200),
            "{path}: upstream reached {reached} times"
        );
        forwarded += reached;
    }
    let partner = mint(
        &s.other,
        "ES256",
        &claims_with(json!({"iss": "https://partner.test"})),
    );
    assert_eq!(s.get("/partner/x", Some(&partner)).await.0, 200);
    assert_eq!(s.upstream.count(), forwarded + 1);
}

#[tokio::test]
async fn optional_route_anonymous_gets_no_identity() {
    let s = setup().await;
    let response = client()
        .get(s.gw.url(0, "/optional/x"))
        .header("x-user-id", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let got = s.upstream.requests().pop().unwrap();
    assert!(
        got.headers.get("x-user-id").is_none(),
        "a client-sent identity header was forwarded"
    );
}

#[tokio::test]
async fn claim_requirements() {
    let s = setup().await;
    let good_combined = json!({
        "https://example.com/tenant": "acme",
        "realm_access": {"roles": ["sre"]},
        "email_verified": true
    });
    let mut via_level = good_combined.clone();
    via_level["realm_access"] = json!({"roles": []});
    via_level["level"] = json!(5);
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        ("/admin/x", json!({"roles": ["admin"]}), 200, ""),
        ("/admin/x", json!({"roles": "admin"}), 200, ""),
        (
            "/admin/x",
            json!({"roles": ["reader"]}),
            403,
            "claim_mismatch",
        ),
        ("/admin/x", json!({}), 403, "missing_claim"),
        (
            "/admin/x",
            json!({"roles": {"admin": true}}),
            403,
            "claim_mismatch",
        ),
        (
            "/orders/1",
            json!({"scope": "profile orders:read"}),
            200,
            "",
        ),
        (
            "/orders/1",
            json!({"scope": "orders:readwrite"}),
            403,
            "missing_scope",
        ),
        ("/orders/1", json!({}), 403, "missing_scope"),
        ("/combined", good_combined.clone(), 200, ""),
        ("/combined", via_level, 200, ""),
        (
            "/combined",
            json!({"https://example.com/tenant": "other", "realm_access": {"roles": ["sre"]}, "email_verified": true}),
            403,
            "claim_mismatch",
        ),
        (
            "/combined",
            json!({"https://example.com/tenant": "acme", "realm_access": {"roles": ["dev"]}, "email_verified": true}),
            403,
            "claim_mismatch",
        ),
        (
            "/combined",
            json!({"https://example.com/tenant": "acme", "realm_access": {"roles": ["sre"]}, "email_verified": "true"}),
            403,
            "claim_mismatch",
        ),
        (
            "/combined",
            json!({"https://example.com/tenant": "acme", "realm_access": {"roles": ["sre"]}, "email_verified": true, "banned": true}),
            403,
            "claim_mismatch",
        ),
        (
            "/all-roles",
            json!({"roles": ["writer", "reader"]}),
            200,
            "",
        ),
        (
            "/all-roles",
            json!({"roles": ["writer"]}),
            403,
            "claim_mismatch",
        ),
    ];
    for (path, patch, status, want) in cases {
        let before = s.upstream.count();
        let token = s.token(patch.clone());
        let response = client()
            .get(s.gw.url(0, path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let (got_status, got_reason, challenge) = reason(response).await;
        assert_eq!(
            (got_status, got_reason.as_str()),
            (status, want),
            "{path} {patch}"
        );
        if status == 403 {
            assert!(
                challenge.unwrap().contains("error=\"insufficient_scope\""),
                "{path}"
            );
            assert_eq!(
                s.upstream.count(),
                before,
                "{path}: a denied request reached the upstream"
            );
        }
    }
}

#[tokio::test]
async fn default_deny() {
    let s = setup().await;
    let token = s.token(json!({"roles": ["admin"]}));
    let cases: Vec<(reqwest::Method, &str, u16, &str)> = vec![
        (reqwest::Method::GET, "/", 404, "no_route"),
        (reqwest::Method::GET, "/nothing/here", 404, "no_route"),
        (reqwest::Method::GET, "/publicity", 404, "no_route"),
        (reqwest::Method::GET, "/combined/x", 404, "no_route"),
        (
            reqwest::Method::POST,
            "/public/x",
            405,
            "method_not_allowed",
        ),
        (
            reqwest::Method::DELETE,
            "/admin/x",
            405,
            "method_not_allowed",
        ),
    ];
    for (method, path, status, reason_code) in cases {
        let r = client()
            .request(method.clone(), s.gw.url(0, path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(reason(r).await.0, status, "{method} {path}");
        let r = client()
            .request(method.clone(), s.gw.url(0, path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(reason(r).await.1, reason_code, "{method} {path}");
    }
    assert_eq!(
        s.upstream.count(),
        0,
        "a request that matched no route was forwarded"
    );
}

#[tokio::test]
async fn token_from_query_or_cookie_only_where_enabled() {
    let s = setup().await;
    let token = s.token(json!({}));
    let r = client()
        .get(s.gw.url(0, &format!("/download/f?access_token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client()
        .get(s.gw.url(0, &format!("/auth/f?access_token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(reason(r).await.1, "missing_token");
    let r = client()
        .get(s.gw.url(0, &format!("/download/f?access_token={token}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(reason(r).await.1, "invalid_request", "two methods at once");
    let r = client()
        .get(s.gw.url(0, "/web/page"))
        .header("cookie", format!("theme=dark; session={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client()
        .get(s.gw.url(0, "/auth/page"))
        .header("cookie", format!("session={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(reason(r).await.1, "missing_token");
    assert_eq!(s.upstream.count(), 2);
}
