//! Rules through the real gateway: path-confusion shapes over raw sockets (each either refused
//! with 400 / not forwarded, or forwarded with exactly the approved path), hosts, templates,
//! bindings to path parameters and headers, case-insensitive routes, and rule files.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

struct Setup {
    gw: TestGateway,
    upstream: TestUpstream,
    key: TestKey,
}

const RULES: &str = r#"
routes:
  - name: public
    prefix: /public
    upstream: app
    policy: public
  - name: admin
    prefix: /admin
    case_sensitive: false
    upstream: app
    require:
      claim: roles
      contains: admin
  - name: reports
    path: /Reports
    upstream: app
    policy: public
  - name: own-profile
    path: /users/{id}
    methods: [GET, PUT]
    upstream: app
    require:
      claim: sub
      equals: {param: id}
  - name: org-files
    path: /orgs/{org}/files/{*rest}
    upstream: app
    require:
      all:
        - claim: orgs
          contains: {param: org}
        - not:
            claim: suspended
            equals: true
  - name: tenant-data
    prefix: /data
    upstream: app
    require:
      claim: tenant
      equals: {header: X-Tenant}
"#;

const HOST_RULES: &str = r#"
routes:
  - name: admin-site
    host: admin.example.com
    prefix: /
    upstream: app
    require:
      claim: roles
      contains: admin
  - name: wildcard-site
    host: "*.example.com"
    prefix: /
    upstream: app
    policy: public
  - name: level
    prefix: /level
    upstream: app
    require:
      any:
        - claim: level
          gte: 3
        - claim: email
          regex: '[a-z]+@staff\.example\.com'
"#;

async fn setup() -> Setup {
    let work = Workdir::new();
    let key = TestKey::rsa("rsa-1");
    work.jwks("jwks.json", &[&key]);
    let upstream = TestUpstream::start().await;
    work.write("rules.d/10-paths.yaml", RULES);
    work.write("rules.d/20-hosts.yml", HOST_RULES);
    work.write("rules.d/ignored.txt", "not: yaml: at all");
    let gw = GatewayYaml::new()
        .upstream("app", &upstream.url())
        .file_provider("main", ISSUER, "RS256", "jwks.json")
        .top(
            r#"
rule_files: [rules.d]
"#,
        )
        .start_in(work)
        .await;
    Setup { gw, upstream, key }
}

async fn raw(s: &Setup, request: &str) -> String {
    raw_exchange(s.gw.addr(0), request.as_bytes(), Duration::from_secs(5)).await
}

/// Each shape is refused (400), or not forwarded (401/404), or forwarded with exactly the path
/// given; never anything else.
#[tokio::test]
async fn path_confusion_shapes_never_reach_the_backend_unapproved() {
    let s = setup().await;
    // (request target, Some(path the upstream must get) | None: must not be forwarded)
    let cases: &[(&str, Option<&str>)] = &[
        ("/%70ublic/%7Ea%20b?q=%2F", Some("/public/~a%20b?q=%2F")),
        ("/public/x/../y", Some("/public/y")),
        ("/public/./x", Some("/public/x")),
        ("/public/../admin/x", None),
        ("/public/x/../../admin", None),
        ("/public/%2e%2e/admin", None),
        ("/public/%2E%2e/admin", None),
        ("/public/.%2E/admin", None),
        ("/public/%2e/x", None),
        ("/public%2fadmin", None),
        ("/public%2F..%2Fadmin", None),
        ("/public\\..\\admin", None),
        ("/public%5c..%5cadmin", None),
        ("/public%5C..%5Cadmin", None),
        ("//public/x", None),
        ("/public//../admin", None),
        ("/public/..;/admin", None),
        ("/public;x=1/../admin", None),
        ("/admin;jsessionid=1", None),
        ("/public/%00x", None),
        ("/public/%252e%252e/admin", None),
        ("/../public/x", None),
        ("/ADMIN/x", None),
        ("/AdMiN", None),
        ("/reports", None),
        ("/Reports", Some("/Reports")),
        ("/Reports/", None),
        ("/public", Some("/public")),
        ("/public/", Some("/public/")),
        ("/publicx", None),
    ];
    for (target, want) in cases {
        let before = s.upstream.count();
        let r = raw(
            &s,
            &format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        )
        .await;
        match want {
            Some(path) => {
                assert!(r.starts_with("HTTP/1.1 200"), "{target}: {r}");
                assert_eq!(
                    s.upstream.requests().pop().unwrap().target,
                    *path,
                    "{target}"
                );
            }
            None => {
                assert!(
                    ["HTTP/1.1 400", "HTTP/1.1 401", "HTTP/1.1 404"]
                        .iter()
                        .any(|p| r.starts_with(p)),
                    "{target}: {r}"
                );
                assert_eq!(s.upstream.count(), before, "{target} reached the upstream");
            }
        }
    }
    // Encoded dot segments and the like are 400 ambiguous_path, not just "not forwarded".
    for target in [
        "/public/%2e%2e/admin",
        "/public%2fadmin",
        "/public\\x",
        "//x",
    ] {
        let r = raw(
            &s,
            &format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 400"), "{target}: {r}");
        assert!(r.contains("ambiguous_path"), "{target}: {r}");
    }
}

#[tokio::test]
async fn absolute_form_targets_route_and_forward_like_origin_form() {
    let s = setup().await;
    let r = raw(
        &s,
        "GET http://x/public/a/../b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let got = s.upstream.requests().pop().unwrap();
    assert_eq!(got.target, "/public/b");
    assert_eq!(got.headers["host"], "x");

    let before = s.upstream.count();
    let r = raw(
        &s,
        "GET http://x/public/../admin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 401"), "{r}");
    // The host routed on must be the host forwarded: a Host header naming another host than the
    // absolute-form target is refused, as are two Host headers.
    let r = raw(
        &s,
        "GET http://www.example.com/x HTTP/1.1\r\nHost: admin.example.com\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        r.starts_with("HTTP/1.1 400") && r.contains("bad_host"),
        "{r}"
    );
    let r = raw(
        &s,
        "GET /x HTTP/1.1\r\nHost: www.example.com\r\nHost: admin.example.com\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    assert_eq!(s.upstream.count(), before);
}

#[tokio::test]
async fn hosts_route_to_their_rules() {
    let s = setup().await;
    let reader = mint(&s.key, "RS256", &claims_with(json!({"roles": ["reader"]})));
    let admin = mint(&s.key, "RS256", &claims_with(json!({"roles": ["admin"]})));
    let get = |host: &str, token: &str| {
        format!(
            "GET /anything HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        )
    };
    let r = raw(&s, &get("www.example.com:8080", "x.y.z")).await;
    assert!(r.starts_with("HTTP/1.1 200"), "public wildcard site: {r}");
    let r = raw(&s, &get("ADMIN.example.com", &reader)).await;
    assert!(r.starts_with("HTTP/1.1 403"), "admin site as reader: {r}");
    let r = raw(&s, &get("admin.example.com.", &admin)).await;
    assert!(r.starts_with("HTTP/1.1 200"), "admin site as admin: {r}");
    let r = raw(&s, &get("example.com", &admin)).await;
    assert!(
        r.starts_with("HTTP/1.1 404"),
        "bare domain has no route: {r}"
    );
}

#[tokio::test]
async fn bindings_limit_users_to_their_own_resources() {
    let s = setup().await;
    let alice = mint(
        &s.key,
        "RS256",
        &claims_with(json!({"sub": "alice@example.com", "orgs": ["acme"], "tenant": "acme"})),
    );
    type Case<'a> = (&'a str, &'a str, Option<(&'a str, &'a str)>, u16, &'a str);
    let cases: &[Case] = &[
        ("GET", "/users/alice%40example.com", None, 200, "allowed"),
        ("PUT", "/users/alice@example.com", None, 200, "allowed"),
        ("GET", "/users/bob@example.com", None, 403, "claim_mismatch"),
        (
            "DELETE",
            "/users/alice@example.com",
            None,
            405,
            "method_not_allowed",
        ),
        ("GET", "/orgs/acme/files/a/b.txt", None, 200, "allowed"),
        ("GET", "/orgs/globex/files/a", None, 403, "claim_mismatch"),
        ("GET", "/data/x", Some(("x-tenant", "acme")), 200, "allowed"),
        (
            "GET",
            "/data/x",
            Some(("x-tenant", "globex")),
            403,
            "claim_mismatch",
        ),
        ("GET", "/data/x", None, 403, "claim_mismatch"),
    ];
    for (method, path, extra, status, code) in cases {
        let before = s.upstream.count();
        let mut request = client()
            .request(method.parse().unwrap(), s.gw.url(0, path))
            .bearer_auth(&alice);
        if let Some((name, value)) = extra {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let (got, got_code, _) = reason(response).await;
        assert_eq!(got, *status, "{method} {path} {extra:?}");
        if *status == 200 {
            assert_eq!(s.upstream.count(), before + 1);
        } else {
            assert_eq!(got_code, *code, "{method} {path}");
            assert_eq!(s.upstream.count(), before, "{method} {path} was forwarded");
        }
    }
    let suspended = mint(
        &s.key,
        "RS256",
        &claims_with(json!({"orgs": ["acme"], "suspended": true})),
    );
    let response = client()
        .get(s.gw.url(0, "/orgs/acme/files/x"))
        .bearer_auth(&suspended)
        .send()
        .await
        .unwrap();
    assert_eq!(reason(response).await.0, 403, "not: suspended");
}

#[tokio::test]
async fn numeric_and_regex_rules() {
    let s = setup().await;
    // `any` answers with the reason of its first part (`level`) when none passes.
    let cases = [
        (json!({"level": 3}), 200, "allowed"),
        (json!({"level": 2}), 403, "claim_mismatch"),
        (json!({"level": "5"}), 403, "claim_mismatch"),
        (json!({"email": "bob@staff.example.com"}), 200, "allowed"),
        (
            json!({"email": "bob@staff.example.com.evil"}),
            403,
            "missing_claim",
        ),
    ];
    for (patch, status, code) in cases {
        let before = s.upstream.count();
        let token = mint(&s.key, "RS256", &claims_with(patch.clone()));
        let response = client()
            .get(s.gw.url(0, "/level"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let (got, got_code, challenge) = reason(response).await;
        assert_eq!(got, status, "{patch}");
        if status == 200 {
            assert_eq!(s.upstream.count(), before + 1, "{patch} was not forwarded");
        } else {
            assert_eq!(got_code, code, "{patch}");
            assert!(
                challenge.is_some_and(|c| c.contains("insufficient_scope")),
                "{patch}"
            );
            assert_eq!(s.upstream.count(), before, "{patch} was forwarded");
        }
    }
}

#[tokio::test]
async fn path_switches_change_normalisation_and_forward_what_was_matched() {
    let work = Workdir::new();
    let upstream = TestUpstream::start().await;
    let gw = GatewayYaml::new()
        .upstream("app", &upstream.url())
        .top(
            r#"
paths:
  empty_segments: merge
  encoded_slash: keep
  path_parameters: strip
  dot_segments: reject
"#,
        )
        .routes(
            r#"
- name: repos
  path: /repos/{repo}/{*rest}
  upstream: app
  policy: public
"#,
        )
        .start_in(work)
        .await;
    let cases: &[(&str, Option<&str>)] = &[
        (
            "/repos//group%2fproject/tree",
            Some("/repos/group%2Fproject/tree"),
        ),
        ("/repos/a;jsessionid=1/b", Some("/repos/a/b")),
        ("/repos/a/./b", None),
        ("/repos/a%2F..%2Fb", None),
    ];
    for (target, want) in cases {
        let before = upstream.count();
        let r = raw_exchange(
            gw.addr(0),
            format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            Duration::from_secs(5),
        )
        .await;
        match want {
            Some(path) => {
                assert!(r.starts_with("HTTP/1.1 200"), "{target}: {r}");
                assert_eq!(upstream.requests().pop().unwrap().target, *path);
            }
            None => {
                assert!(r.starts_with("HTTP/1.1 400"), "{target}: {r}");
                assert_eq!(upstream.count(), before);
            }
        }
    }
}
