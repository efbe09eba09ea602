//! Token verification through the real gateway: every algorithm family, and every rejection
//! reason, each asserting the status, the reason code, the challenge, and that the upstream
//! received nothing.

mod common;

use common::*;
use serde_json::json;

struct Setup {
    gw: TestGateway,
    upstream: TestUpstream,
    rsa: TestKey,
    ec256: TestKey,
    ec384: TestKey,
    ed: TestKey,
    hs: TestKey,
    pem_rsa: TestKey,
    pem_ec: TestKey,
    /// Configured without a kid.
    no_kid: TestKey,
}

const HMAC_SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test-secret";

async fn setup() -> Setup {
    let upstream = TestUpstream::start().await;
    let work = Workdir::new();
    let (rsa, ec256, ec384, ed) = (
        TestKey::rsa("rsa-1"),
        TestKey::ec256("ec-1"),
        TestKey::ec384("ec384-1"),
        TestKey::ed25519("ed-1"),
    );
    let hs = TestKey::hmac("hs-1", HMAC_SECRET);
    let pem_rsa = TestKey::rsa("pem-rsa");
    let pem_ec = TestKey::ec256("pem-ec");
    let no_kid = TestKey::ec384("none");
    work.write("no-kid.pem", &no_kid.spki_pem());
    work.jwks("jwks.json", &[&rsa, &ec256, &ec384, &ed]);
    work.write("rsa.pem", &pem_rsa.spki_pem());
    work.write("ec.pem", &pem_ec.spki_pem());
    work.write("hmac.secret", std::str::from_utf8(HMAC_SECRET).unwrap());
    work.write("rsa-only.json", &json!({"keys": [rsa.jwk()]}).to_string());
    let gw = GatewayYaml::new()
        .upstream("app", &upstream.url())
        .providers(&format!(
            r#"
- name: main
  issuer: {ISSUER}
  audiences: [{AUDIENCE}, second-api]
  algorithms: [RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA, HS256, HS384, HS512]
  jwks_file: jwks.json
  public_keys:
    - file: rsa.pem
      kid: pem-rsa
    - file: ec.pem
      kid: pem-ec
      algorithm: ES256
    - file: no-kid.pem
      algorithm: ES384
  hmac_secret:
    file: hmac.secret
    kid: hs-1
- name: rs-only
  issuer: https://rs-only.test
  audiences: [{AUDIENCE}]
  algorithms: [RS256]
  jwks_file: rsa-only.json
"#
        ))
        .routes("- name: api\n  prefix: /api\n  upstream: app\n")
        .start_in(work)
        .await;
    Setup {
        gw,
        upstream,
        rsa,
        ec256,
        ec384,
        ed,
        hs,
        pem_rsa,
        pem_ec,
        no_kid,
    }
}

async fn send(s: &Setup, token: &str) -> (u16, String, Option<String>) {
    let response = client()
        .get(s.gw.url(0, "/api/resource"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    reason(response).await
}

#[tokio::test]
async fn every_algorithm_family_is_accepted() {
    let s = setup().await;
    let c = claims();
    let cases: Vec<(&TestKey, &str)> = vec![
        (&s.rsa, "RS256"),
        (&s.rsa, "RS384"),
        (&s.rsa, "RS512"),
        (&s.rsa, "PS256"),
        (&s.rsa, "PS384"),
        (&s.rsa, "PS512"),
        (&s.ec256, "ES256"),
        (&s.ec384, "ES384"),
        (&s.ed, "EdDSA"),
        (&s.hs, "HS256"),
        (&s.hs, "HS384"),
        (&s.hs, "HS512"),
        (&s.pem_rsa, "RS256"),
        (&s.pem_rsa, "PS512"),
        (&s.pem_ec, "ES256"),
    ];
    for (i, (key, alg)) in cases.iter().enumerate() {
        let (status, reason, _) = send(&s, &mint(key, alg, &c)).await;
        assert_eq!(
            (status, reason.as_str()),
            (200, ""),
            "{alg} with {}",
            key.kid
        );
        assert_eq!(s.upstream.count(), i + 1, "{alg} reached the upstream");
    }
    // A token without kid is tried only against keys without one, never every key that fits.
    let no_kid = mint_with(&s.no_kid, "ES384", json!({"kid": null}), &c);
    assert_eq!(send(&s, &no_kid).await.0, 200);
    let kid_key_without_kid = mint_with(&s.ec384, "ES384", json!({"kid": null}), &c);
    // (Tried against the kid-less ES384 key only, so its signature does not verify.)
    let (status, reason, _) = send(&s, &kid_key_without_kid).await;
    assert_eq!((status, reason.as_str()), (401, "bad_signature"));
    // Audience given as an array with one accepted value.
    let aud_list = mint(
        &s.rsa,
        "RS256",
        &claims_with(json!({"aud": ["other", "second-api"]})),
    );
    assert_eq!(send(&s, &aud_list).await.0, 200);
}

#[tokio::test]
async fn every_rejection_reason() {
    let s = setup().await;
    let now = now();
    let valid = mint(&s.rsa, "RS256", &claims());
    let other = mint(&s.rsa, "RS256", &claims_with(json!({"sub": "mallory"})));
    let spliced = format!(
        "{}.{}",
        &other[..other.rfind('.').unwrap()],
        &valid[valid.rfind('.').unwrap() + 1..]
    );
    let rsa_pem = s.rsa.spki_pem();
    let confusion = |kid: &str, iss: &str| {
        let header = json!({"alg": "HS256", "typ": "JWT", "kid": kid});
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims_with(json!({"iss": iss})).to_string().as_bytes())
        );
        format!(
            "{input}.{}",
            b64(&hmac("HS256", rsa_pem.as_bytes(), input.as_bytes()))
        )
    };
    let unsigned = |sig: &str| {
        format!(
            "{}.{}.{sig}",
            b64(br#"{"alg":"none","typ":"JWT"}"#),
            b64(claims().to_string().as_bytes())
        )
    };
    let huge = mint(
        &s.rsa,
        "RS256",
        &claims_with(json!({"pad": "x".repeat(9000)})),
    );
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            mint(&s.rsa, "RS256", &claims_with(json!({"exp": now - 3600}))),
            "token_expired",
        ),
        (
            "not yet valid",
            mint(&s.rsa, "RS256", &claims_with(json!({"nbf": now + 3600}))),
            "token_not_yet_valid",
        ),
        (
            "issued in the future",
            mint(&s.rsa, "RS256", &claims_with(json!({"iat": now + 3600}))),
            "token_issued_in_future",
        ),
        (
            "wrong iss",
            mint(
                &s.rsa,
                "RS256",
                &claims_with(json!({"iss": "https://evil.test"})),
            ),
            "issuer_mismatch",
        ),
        (
            "no iss",
            mint(&s.rsa, "RS256", &claims_with(json!({"iss": null}))),
            "missing_issuer",
        ),
        (
            "wrong aud",
            mint(&s.rsa, "RS256", &claims_with(json!({"aud": "other-api"}))),
            "audience_mismatch",
        ),
        (
            "no aud",
            mint(&s.rsa, "RS256", &claims_with(json!({"aud": null}))),
            "missing_audience",
        ),
        (
            "no exp",
            mint(&s.rsa, "RS256", &claims_with(json!({"exp": null}))),
            "missing_expiry",
        ),
        (
            "string exp",
            mint(
                &s.rsa,
                "RS256",
                &claims_with(json!({"exp": (now + 300).to_string()})),
            ),
            "invalid_time_claim",
        ),
        (
            "string nbf",
            mint(&s.rsa, "RS256", &claims_with(json!({"nbf": "0"}))),
            "invalid_time_claim",
        ),
        ("bad signature", spliced, "bad_signature"),
        (
            "signed by another key",
            mint(&TestKey::rsa("rsa-1"), "RS256", &claims()),
            "bad_signature",
        ),
        ("alg none", unsigned("AAAA"), "alg_none"),
        ("alg none, empty signature", unsigned(""), "malformed_token"),
        (
            "HS256 with the RSA public key as secret",
            confusion("rsa-1", ISSUER),
            "key_algorithm_mismatch",
        ),
        (
            "HS256 against an RS256-only issuer",
            confusion("rsa-1", "https://rs-only.test"),
            "algorithm_not_allowed",
        ),
        (
            "ES256 header on a P-384 key",
            mint_with(&s.ec384, "ES256", json!({}), &claims()),
            "key_algorithm_mismatch",
        ),
        (
            "unknown kid",
            mint_with(&s.rsa, "RS256", json!({"kid": "rotated-away"}), &claims()),
            "unknown_key",
        ),
        (
            "crit",
            mint_with(
                &s.rsa,
                "RS256",
                json!({"crit": ["exp"], "exp": 1}),
                &claims(),
            ),
            "unsupported_crit",
        ),
        (
            "embedded jwk",
            mint_with(&s.rsa, "RS256", json!({"jwk": s.rsa.jwk()}), &claims()),
            "embedded_key",
        ),
        (
            "jku",
            mint_with(
                &s.rsa,
                "RS256",
                json!({"jku": "https://evil.test/jwks"}),
                &claims(),
            ),
            "embedded_key",
        ),
        (
            "x5u",
            mint_with(
                &s.rsa,
                "RS256",
                json!({"x5u": "https://evil.test/cert"}),
                &claims(),
            ),
            "embedded_key",
        ),
        ("oversize", huge, "token_too_large"),
        ("three dots", format!("{valid}.extra"), "malformed_token"),
        ("one dot", "abc.def".to_string(), "malformed_token"),
        ("garbage", "not-a-token".to_string(), "malformed_token"),
        (
            "header not JSON",
            format!("{}.{}.c2ln", b64(b"{nope"), b64(b"{}")),
            "malformed_header",
        ),
        (
            "unknown alg",
            mint_with(&s.rsa, "RS256", json!({"alg": "XS999"}), &claims()),
            "unsupported_algorithm",
        ),
    ];
    for (name, token, want) in cases {
        let (status, reason, challenge) = send(&s, &token).await;
        assert_eq!((status, reason.as_str()), (401, want), "{name}");
        let challenge = challenge.unwrap_or_default();
        assert!(
            challenge.starts_with("Bearer realm=\"portcullis\""),
            "{name}: {challenge}"
        );
        assert!(
            challenge.contains("error=\"invalid_token\""),
            "{name}: {challenge}"
        );
        assert!(!challenge.contains(token.as_str()), "{name}: token echoed");
    }
    assert_eq!(
        s.upstream.count(),
        0,
        "a rejected request reached the upstream"
    );
}

#[tokio::test]
async fn credentials_shape() {
    let s = setup().await;
    let token = mint(&s.rsa, "RS256", &claims());
    let url = s.gw.url(0, "/api/resource");
    // No credentials: plain challenge, no error attribute (RFC 6750 §3.1).
    let (status, code, challenge) = reason(client().get(&url).send().await.unwrap()).await;
    assert_eq!(
        (status, code.as_str(), challenge.as_deref()),
        (401, "missing_token", Some("Bearer realm=\"portcullis\""))
    );
    // The scheme is case-insensitive.
    for scheme in ["bearer", "BEARER", "BeArEr"] {
        let r = client()
            .get(&url)
            .header("authorization", format!("{scheme} {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{scheme}");
    }
    // Another scheme is no bearer token.
    let r = client()
        .get(&url)
        .header("authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .unwrap();
    assert_eq!(reason(r).await.1, "missing_token");
    // Two Authorization headers: 400 invalid_request.
    let r = client()
        .get(&url)
        .header("authorization", format!("Bearer {token}"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    let (status, reason_code, challenge) = reason(r).await;
    assert_eq!((status, reason_code.as_str()), (400, "invalid_request"));
    assert!(challenge.unwrap().contains("error=\"invalid_request\""));
    // "Bearer" without a token.
    let r = client()
        .get(&url)
        .header("authorization", "Bearer ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // A token in the query string is ignored where the route did not enable it.
    let r = client()
        .get(format!("{url}?access_token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(reason(r).await.1, "missing_token");
    assert_eq!(s.upstream.count(), 3);
}
