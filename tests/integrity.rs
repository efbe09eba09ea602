//! Request integrity: the backend receives exactly what the gateway checked. One table of
//! request shapes (method, target, headers, token, body) → expected status, reason code and
//! what the upstream saw, replayed over raw sockets against the real gateway; adding a shape is
//! adding a row.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

const RULES: &str = r#"
routes:
  - name: public
    prefix: /public
    upstream: app
    policy: public
  - name: public-internal
    prefix: /public/internal
    policy: deny
  - name: public-hidden
    prefix: /public/hidden
    policy: deny
    deny_status: 404
  - name: optional
    prefix: /optional
    upstream: app
    policy: optional
    claim_headers:
      X-User-Id: sub
  - name: authenticated
    prefix: /auth
    upstream: app
  - name: cookie-token
    prefix: /cookie
    upstream: app
    token_cookie: at
  - name: query-token
    prefix: /query
    upstream: app
    token_query_param: access_token
  - name: strip
    prefix: /strip
    upstream: app
    token_cookie: at
    token_query_param: access_token
    strip_authorization: true
  - name: tenant
    prefix: /tenant
    upstream: app
    require:
      claim: tenant
      equals: {header: X-Tenant}
  - name: items-delete
    prefix: /items
    methods: [DELETE]
    upstream: app
    require:
      claim: roles
      contains: admin
  - name: items
    prefix: /items
    upstream: app
  - name: reports
    path: /reports
    methods: [GET]
    upstream: app
    require:
      claim: roles
      contains: reader
  - name: site
    prefix: /
    upstream: app
    policy: public
  - name: uids
    path: /uids/{id}
    upstream: app
    require:
      claim: uid
      equals: {param: id}
  - name: strict
    prefix: /strict
    upstream: app
    providers: [strict]
  - name: upload
    prefix: /upload
    upstream: app
    policy: public
    max_body_bytes: 16
"#;

struct Setup {
    gw: TestGateway,
    upstream: TestUpstream,
    /// Placeholder → token.
    tokens: Vec<(&'static str, String)>,
}

async fn setup() -> Setup {
    let work = Workdir::new();
    let key = TestKey::rsa("rsa-1");
    let stranger = TestKey::rsa("rsa-1");
    let second = TestKey::rsa("rsa-2");
    let strict_key = TestKey::ec256("ec-1");
    work.jwks("jwks.json", &[&key, &second]);
    work.jwks("strict.json", &[&strict_key]);
    let upstream = TestUpstream::start().await;
    work.write("rules.yaml", RULES);
    let gw = GatewayYaml::new()
        .server("spoofable_headers: [X-Original-Host]")
        .upstream("app", &upstream.url())
        .file_provider("main", ISSUER, "RS256", "jwks.json")
        .providers(&format!(
            r#"
- name: strict
  issuer: https://strict.test
  audiences: [{AUDIENCE}]
  algorithms: [ES256]
  jwks_file: strict.json
  types: [at+jwt]
  clients: [web]
"#
        ))
        .top("rule_files: [rules.yaml]")
        .start_in(work)
        .await;
    let alice = mint(
        &key,
        "RS256",
        &claims_with(json!({"tenant": "acme", "roles": ["reader"], "uid": 42})),
    );
    let admin = mint(
        &key,
        "RS256",
        &claims_with(json!({"sub": "root", "roles": ["admin"]})),
    );
    let expired = mint(
        &key,
        "RS256",
        &claims_with(json!({"exp": now() - 3600, "nbf": now() - 7200, "iat": now() - 7200})),
    );
    let forged = mint(
        &stranger,
        "RS256",
        &claims_with(json!({"roles": ["admin"]})),
    );
    let mut tokens = vec![
        ("{alice}", alice),
        ("{admin}", admin),
        ("{expired}", expired),
        ("{forged}", forged),
    ];
    // 13. Smaller token items.
    let strict_claims =
        |client: &str| claims_with(json!({"iss": "https://strict.test", "client_id": client}));
    let at_jwt = json!({"typ": "at+jwt"});
    tokens.extend([
        (
            "{no_kid}",
            mint_with(&second, "RS256", json!({"kid": null}), &claims()),
        ),
        (
            "{crit_null}",
            mint_header(
                &key,
                "RS256",
                &json!({"alg": "RS256", "kid": "rsa-1", "crit": null}),
                &claims(),
            ),
        ),
        (
            "{jwk_null}",
            mint_header(
                &key,
                "RS256",
                &json!({"alg": "RS256", "kid": "rsa-1", "jwk": null}),
                &claims(),
            ),
        ),
        (
            "{at_web}",
            mint_with(&strict_key, "ES256", at_jwt.clone(), &strict_claims("web")),
        ),
        (
            "{at_app_typ}",
            mint_with(
                &strict_key,
                "ES256",
                json!({"typ": "application/AT+JWT"}),
                &strict_claims("web"),
            ),
        ),
        (
            "{jwt_web}",
            mint_with(&strict_key, "ES256", json!({}), &strict_claims("web")),
        ),
        (
            "{at_mobile}",
            mint_with(&strict_key, "ES256", at_jwt, &strict_claims("mobile")),
        ),
    ]);
    Setup {
        gw,
        upstream,
        tokens,
    }
}

/// What the upstream must have seen of one row.
#[derive(Debug, Clone, Copy)]
enum Seen {
    /// Nothing reached it.
    Nothing,
    /// Exactly one request, and each of these holds.
    One(&'static [Expect]),
    /// If anything reached it, not the whole body that was sent.
    NotWhole,
}

#[derive(Debug, Clone, Copy)]
enum Expect {
    Method(&'static str),
    Target(&'static str),
    /// The header is present once with this value (placeholders replaced).
    Header(&'static str, &'static str),
    NoHeader(&'static str),
}

/// One request shape. `{alice}`, `{admin}`, `{expired}`, `{forged}` in the head become tokens,
/// `{host}` the gateway's address; `\n` become CRLF.
struct Row {
    name: &'static str,
    head: &'static str,
    body: &'static [u8],
    status: u16,
    reason: &'static str,
    seen: Seen,
}

const fn row(
    name: &'static str,
    head: &'static str,
    status: u16,
    reason: &'static str,
    seen: Seen,
) -> Row {
    Row {
        name,
        head,
        body: b"",
        status,
        reason,
        seen,
    }
}

use Expect::*;
use Seen::*;

const ROWS: &[Row] = &[
    // 1. Unverified Authorization never reaches the upstream.
    row(
        "bearer with a tab is refused, not anonymous",
        "GET /optional/x HTTP/1.1\nAuthorization: Bearer\t{expired}",
        400,
        "invalid_request",
        Nothing,
    ),
    row(
        "bearer with a colon is refused",
        "GET /optional/x HTTP/1.1\nAuthorization: bearer:{forged}",
        400,
        "invalid_request",
        Nothing,
    ),
    row(
        "bearer with a comma is refused",
        "GET /optional/x HTTP/1.1\nAuthorization: Bearer,{forged}",
        400,
        "invalid_request",
        Nothing,
    ),
    row(
        "another scheme on an optional route counts as a presented token",
        "GET /optional/x HTTP/1.1\nAuthorization: Token {forged}",
        401,
        "unsupported_scheme",
        Nothing,
    ),
    row(
        "JWT scheme on an optional route",
        "GET /optional/x HTTP/1.1\nAuthorization: JWT {expired}",
        401,
        "unsupported_scheme",
        Nothing,
    ),
    row(
        "another scheme while a cookie carries the token",
        "GET /cookie/x HTTP/1.1\nAuthorization: Token {forged}\nCookie: at={alice}",
        401,
        "unsupported_scheme",
        Nothing,
    ),
    row(
        "Basic on an optional route is anonymous and is not forwarded",
        "GET /optional/x HTTP/1.1\nAuthorization: Basic dXNlcjpwYXNz",
        200,
        "",
        One(&[NoHeader("authorization"), NoHeader("x-user-id")]),
    ),
    row(
        "Basic next to a cookie token is not forwarded",
        "GET /cookie/x HTTP/1.1\nAuthorization: Basic dXNlcjpwYXNz\nCookie: at={alice}",
        200,
        "",
        One(&[NoHeader("authorization"), Header("cookie", "at={alice}")]),
    ),
    row(
        "the header token wins and the unchecked cookie token is removed",
        "GET /cookie/x HTTP/1.1\nAuthorization: Bearer {alice}\nCookie: at={forged}; theme=dark",
        200,
        "",
        One(&[
            Header("authorization", "Bearer {alice}"),
            Header("cookie", "theme=dark"),
        ]),
    ),
    row(
        "the verified token is forwarded in one spelling",
        "GET /auth/x HTTP/1.1\nAuthorization: bearer    {alice}",
        200,
        "",
        One(&[Header("authorization", "Bearer {alice}")]),
    ),
    row(
        "strip_authorization removes the query token",
        "GET /strip/x?a=1&access_token={alice}&b=2 HTTP/1.1",
        200,
        "",
        One(&[Target("/strip/x?a=1&b=2"), NoHeader("authorization")]),
    ),
    row(
        "strip_authorization removes the cookie token",
        "GET /strip/x HTTP/1.1\nCookie: a=1; at={alice}; b=2",
        200,
        "",
        One(&[Header("cookie", "a=1; b=2")]),
    ),
    row(
        "strip_authorization removes a header token and the unchecked cookie",
        "GET /strip/x HTTP/1.1\nAuthorization: Bearer {alice}\nCookie: at={forged}",
        200,
        "",
        One(&[NoHeader("authorization"), NoHeader("cookie")]),
    ),
    // 2. Header bindings are checked on what is forwarded.
    row(
        "Connection cannot remove a bound header, its _ twin is refused",
        "GET /tenant/x HTTP/1.1\nAuthorization: Bearer {alice}\nX-Tenant: acme\nConnection: X-Tenant\nX_Tenant: other",
        400,
        "ambiguous_header",
        Nothing,
    ),
    row(
        "Connection cannot remove a bound header",
        "GET /tenant/x HTTP/1.1\nAuthorization: Bearer {alice}\nX-Tenant: acme\nConnection: X-Tenant",
        200,
        "",
        One(&[Header("x-tenant", "acme")]),
    ),
    row(
        "an _ spelling of a bound header is removed, not read",
        "GET /tenant/x HTTP/1.1\nAuthorization: Bearer {alice}\nX_Tenant: acme",
        403,
        "claim_mismatch",
        Nothing,
    ),
    row(
        "a bound header twice is refused",
        "GET /tenant/x HTTP/1.1\nAuthorization: Bearer {alice}\nX-Tenant: acme\nx-tenant: other",
        400,
        "ambiguous_header",
        Nothing,
    ),
    Row {
        name: "Connection cannot remove Host or Content-Length",
        head: "POST /public/x HTTP/1.1\nConnection: Host, Content-Length\nContent-Length: 5",
        body: b"hello",
        status: 200,
        reason: "",
        seen: One(&[Header("content-length", "5"), Header("host", "{host}")]),
    },
    // 3. Methods.
    row(
        "a lower-case method is refused, not matched by a broader route",
        "delete /items/1 HTTP/1.1\nAuthorization: Bearer {alice}",
        400,
        "bad_method",
        Nothing,
    ),
    row(
        "DELETE takes the strict rule",
        "DELETE /items/1 HTTP/1.1\nAuthorization: Bearer {alice}",
        403,
        "claim_mismatch",
        Nothing,
    ),
    row(
        "DELETE by an admin",
        "DELETE /items/1 HTTP/1.1\nAuthorization: Bearer {admin}",
        200,
        "",
        One(&[Method("DELETE")]),
    ),
    // (A HEAD answer has no body, so no reason code to read.)
    row(
        "HEAD is judged by the GET rule",
        "HEAD /reports HTTP/1.1",
        401,
        "",
        Nothing,
    ),
    row(
        "HEAD by a reader",
        "HEAD /reports HTTP/1.1\nAuthorization: Bearer {alice}",
        200,
        "",
        One(&[Method("HEAD"), Target("/reports")]),
    ),
    // 4. Explicit deny.
    row(
        "deny route answers 403",
        "GET /public/internal/metrics HTTP/1.1",
        403,
        "denied_by_rule",
        Nothing,
    ),
    row(
        "deny route with deny_status 404",
        "GET /public/hidden HTTP/1.1",
        404,
        "no_route",
        Nothing,
    ),
    // 5. Look-alike forwarding headers from an untrusted peer.
    row(
        "look-alike forwarding headers are removed",
        "GET /public/x HTTP/1.1\nX-Real-IP: 10.0.0.1\nTrue-Client-IP: 10.0.0.1\nX-Client-IP: 10.0.0.1\nX-Original-URL: /admin\nX-Rewrite-URL: /admin\nX-HTTP-Method-Override: DELETE\nX-HTTP-Method: DELETE\nX-Forwarded-Port: 443\nX-Forwarded-Prefix: /admin\nX-Forwarded-Scheme: https\nX-Forwarded-Ssl: on\nX-Forwarded-Server: x\nFront-End-Https: on\nX_Forwarded_For: 10.0.0.1\nX_Real_IP: 10.0.0.1\nX-Original-Host: evil\nX-Keep: 1",
        200,
        "",
        One(&[
            NoHeader("x-real-ip"),
            NoHeader("true-client-ip"),
            NoHeader("x-client-ip"),
            NoHeader("x-original-url"),
            NoHeader("x-rewrite-url"),
            NoHeader("x-http-method-override"),
            NoHeader("x-http-method"),
            NoHeader("x-forwarded-port"),
            NoHeader("x-forwarded-prefix"),
            NoHeader("x-forwarded-scheme"),
            NoHeader("x-forwarded-ssl"),
            NoHeader("x-forwarded-server"),
            NoHeader("front-end-https"),
            NoHeader("x_forwarded_for"),
            NoHeader("x_real_ip"),
            NoHeader("x-original-host"),
            Header("x-forwarded-for", "127.0.0.1"),
            Header("x-keep", "1"),
        ]),
    ),
    // 6. Cookie and query tokens parse like backends do.
    row(
        "a cookie name with a space before = is the same cookie",
        "GET /cookie/x HTTP/1.1\nCookie: at =forged; at={alice}",
        400,
        "invalid_request",
        Nothing,
    ),
    row(
        "a percent-encoded query name is the same parameter",
        "GET /query/x?access%5Ftoken=forged&access_token={alice} HTTP/1.1",
        400,
        "invalid_request",
        Nothing,
    ),
    row(
        "one query token is read",
        "GET /query/x?access_token={alice} HTTP/1.1",
        200,
        "",
        One(&[Target("/query/x?access_token={alice}")]),
    ),
    // 7. Body limits cannot become truncation.
    Row {
        name: "Connection: content-length does not hide an over-limit body",
        head: "POST /upload HTTP/1.1\nConnection: content-length\nContent-Length: 32",
        body: b"0123456789abcdef0123456789abcdef",
        status: 413,
        reason: "body_too_large",
        seen: Nothing,
    },
    Row {
        name: "a chunked over-limit body is never forwarded whole",
        head: "POST /upload HTTP/1.1\nTransfer-Encoding: chunked",
        body: b"20\r\n0123456789abcdef0123456789abcdef\r\n0\r\n\r\n",
        status: 413,
        reason: "body_too_large",
        seen: NotWhole,
    },
    // 8. Authority hygiene.
    row(
        "userinfo in an absolute-form target",
        "GET http://evil@{host}/public/x HTTP/1.1",
        400,
        "bad_host",
        Nothing,
    ),
    // 10. Canonical bindings.
    row(
        "integer claim, canonical spelling",
        "GET /uids/42 HTTP/1.1\nAuthorization: Bearer {alice}",
        200,
        "",
        One(&[Target("/uids/42")]),
    ),
    row(
        "integer claim, leading zero",
        "GET /uids/042 HTTP/1.1\nAuthorization: Bearer {alice}",
        403,
        "claim_mismatch",
        Nothing,
    ),
    row(
        "integer claim, plus sign",
        "GET /uids/+42 HTTP/1.1\nAuthorization: Bearer {alice}",
        403,
        "claim_mismatch",
        Nothing,
    ),
    // 13. Smaller token items.
    row(
        "a token without kid is not tried against keys that have one",
        "GET /auth/x HTTP/1.1\nAuthorization: Bearer {no_kid}",
        401,
        "unknown_key",
        Nothing,
    ),
    row(
        "crit: null is refused like crit",
        "GET /auth/x HTTP/1.1\nAuthorization: Bearer {crit_null}",
        401,
        "unsupported_crit",
        Nothing,
    ),
    row(
        "jwk: null is refused like jwk",
        "GET /auth/x HTTP/1.1\nAuthorization: Bearer {jwk_null}",
        401,
        "embedded_key",
        Nothing,
    ),
    row(
        "typ at+jwt from an accepted client",
        "GET /strict/x HTTP/1.1\nAuthorization: Bearer {at_web}",
        200,
        "",
        One(&[Target("/strict/x")]),
    ),
    row(
        "typ application/at+jwt in any case",
        "GET /strict/x HTTP/1.1\nAuthorization: Bearer {at_app_typ}",
        200,
        "",
        One(&[Target("/strict/x")]),
    ),
    row(
        "typ JWT where at+jwt is required",
        "GET /strict/x HTTP/1.1\nAuthorization: Bearer {jwt_web}",
        401,
        "type_not_allowed",
        Nothing,
    ),
    row(
        "a client the provider does not accept",
        "GET /strict/x HTTP/1.1\nAuthorization: Bearer {at_mobile}",
        401,
        "client_mismatch",
        Nothing,
    ),
    // 12. Windows segments.
    row(
        "a segment ending in a dot",
        "GET /reports. HTTP/1.1",
        400,
        "ambiguous_path",
        Nothing,
    ),
    row(
        "a segment ending in an encoded space",
        "GET /public/admin%20/x HTTP/1.1",
        400,
        "ambiguous_path",
        Nothing,
    ),
];

impl Setup {
    fn fill(&self, text: &str) -> String {
        let mut out = text.replace("{host}", &self.gw.addr(0).to_string());
        for (name, token) in &self.tokens {
            out = out.replace(name, token);
        }
        out
    }
}

/// Status line code and the problem body's `reason` (empty for upstream answers).
fn status_and_reason(response: &str) -> (u16, String) {
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let reason = response
        .split("\"reason\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or("")
        .to_string();
    (status, reason)
}

/// Method, target and headers of a request head as `explain` takes them.
fn parse_head(head: &str) -> (http::Method, http::Uri, http::HeaderMap) {
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = http::Method::from_bytes(first.next().unwrap_or("").as_bytes()).unwrap();
    let uri: http::Uri = first.next().unwrap_or("/").parse().unwrap();
    let mut headers = http::HeaderMap::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').unwrap();
        headers.append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            http::HeaderValue::from_bytes(value.trim().as_bytes()).unwrap(),
        );
    }
    (method, uri, headers)
}

#[tokio::test]
async fn request_shapes_table() {
    let s = setup().await;
    // `explain` must reach the gateway's decision for every row (body streaming aside).
    let config = portcullis::config::load(&s.gw.work.path().join("gateway.yaml")).unwrap();
    let snapshot = config
        .plan
        .go_live(&portcullis::resources::Resources::detached())
        .await
        .unwrap();
    let mut failures = Vec::new();
    for row in ROWS {
        let before = s.upstream.count();
        let head = s.fill(row.head).replace('\n', "\r\n");
        let has_host = head.to_ascii_lowercase().contains("\r\nhost:");
        let mut request = head.into_bytes();
        if !has_host {
            request.extend_from_slice(format!("\r\nHost: {}", s.gw.addr(0)).as_bytes());
        }
        request.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
        request.extend_from_slice(row.body);
        let response = raw_exchange(s.gw.addr(0), &request, Duration::from_secs(2)).await;
        let (status, reason) = status_and_reason(&response);
        let mut problems = Vec::new();
        if !matches!(row.seen, NotWhole) {
            let head = String::from_utf8_lossy(&request);
            let head = head.split("\r\n\r\n").next().unwrap_or("");
            let (method, uri, headers) = parse_head(head);
            let explained = portcullis::explain::explain(
                &snapshot,
                method,
                uri,
                headers,
                portcullis::explain::Credential::FromRequest,
            )
            .await;
            let same = explained.status == row.status
                && (row.reason.is_empty() || explained.reason == row.reason)
                && (row.status != 200 || explained.reason == "allowed");
            if !same {
                problems.push(format!(
                    "explain says {} {}",
                    explained.status, explained.reason
                ));
            }
        }
        if (status, reason.as_str()) != (row.status, row.reason) {
            problems.push(format!(
                "got {status} {reason:?}, want {} {:?}",
                row.status, row.reason
            ));
        }
        let got = &s.upstream.requests()[before..];
        match row.seen {
            Nothing if !got.is_empty() => problems.push(format!(
                "the upstream got {} request(s): {:?}",
                got.len(),
                got[0].target
            )),
            Nothing => {}
            NotWhole => {
                if got.iter().any(|r| r.body.as_ref() == row.body) {
                    problems.push("the upstream got the whole body".to_string());
                }
            }
            One(expects) => {
                if got.len() != 1 {
                    problems.push(format!("the upstream got {} requests", got.len()));
                } else {
                    let r = &got[0];
                    for expect in expects {
                        let ok = match *expect {
                            Method(m) => r.method == m,
                            Target(t) => r.target == s.fill(t),
                            Header(name, value) => {
                                let values: Vec<_> = r.headers.get_all(name).iter().collect();
                                values.len() == 1
                                    && values[0].as_bytes() == s.fill(value).as_bytes()
                            }
                            NoHeader(name) => !r.headers.contains_key(name),
                        };
                        if !ok {
                            problems.push(format!("{expect:?} does not hold: {:?}", r.headers));
                        }
                    }
                }
            }
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {}", row.name, problems.join("; ")));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// Sends one HTTP/2 request (prior knowledge, plain TCP) and returns its status.
async fn h2_request(s: &Setup, request: http::Request<()>) -> u16 {
    let tcp = tokio::net::TcpStream::connect(s.gw.addr(0)).await.unwrap();
    let (sender, connection) = h2::client::handshake(tcp).await.unwrap();
    let driver = tokio::spawn(connection);
    let mut sender = sender.ready().await.unwrap();
    let (response, _) = sender.send_request(request, true).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(5), response)
        .await
        .expect("an answer in time")
        .map_or(0, |r| r.status().as_u16());
    driver.abort();
    status
}

/// 8 and 9: HTTP/2 gets the same bounds and hygiene as HTTP/1.1 — `max_headers` counts its
/// fields, `cookie` crumbs reach an HTTP/1.1 upstream as one field, and an `:authority` with
/// userinfo is refused.
#[tokio::test]
async fn http2_parity() {
    let s = setup().await;
    let authority = s.gw.addr(0).to_string();
    let uri = |path: &str| format!("http://{authority}{path}");

    // 150 fields (the default max_headers is 100): refused, nothing forwarded.
    let mut many = http::Request::builder().uri(uri("/public/many"));
    for i in 0..150 {
        many = many.header(format!("x-field-{i}"), "1");
    }
    assert_eq!(h2_request(&s, many.body(()).unwrap()).await, 431);
    assert_eq!(s.upstream.count(), 0, "too many fields were forwarded");

    // Cookie crumbs are joined with "; " for the HTTP/1.1 upstream.
    let crumbs = http::Request::builder()
        .uri(uri("/public/cookies"))
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .body(())
        .unwrap();
    assert_eq!(h2_request(&s, crumbs).await, 200);
    let got = s.upstream.requests().pop().unwrap();
    let cookies: Vec<_> = got.headers.get_all("cookie").iter().collect();
    assert_eq!(cookies, ["a=1; b=2"], "{:?}", got.headers);

    // The token cookie is found among crumbs as it is in one field.
    let token = s.fill("{alice}");
    let crumbs = http::Request::builder()
        .uri(uri("/cookie/x"))
        .header("cookie", "theme=dark")
        .header("cookie", format!("at={token}"))
        .body(())
        .unwrap();
    assert_eq!(h2_request(&s, crumbs).await, 200);

    // Userinfo in :authority.
    let before = s.upstream.count();
    let userinfo = http::Request::builder()
        .uri(format!("http://evil@{authority}/public/x"))
        .body(())
        .unwrap();
    assert_eq!(h2_request(&s, userinfo).await, 400);
    assert_eq!(s.upstream.count(), before, "userinfo was forwarded");
}
