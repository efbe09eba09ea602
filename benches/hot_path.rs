//! Criterion benches of the hot-path steps in isolation. `.ci/run` only compiles them
//! (`cargo bench --no-run`); run `cargo bench` to time them.

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use aws_lc_rs::signature::{self, ParsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Method};
use jsonwebtoken::{Algorithm, DecodingKey};
use portcullis::error::TokenError;
use portcullis::keys::{VerifyKey, store::ProviderKeys};
use portcullis::proxy::forwarded::Hop;
use portcullis::proxy::headers::{
    ForwardContext, HeaderRules, LOOKALIKE_HEADERS, credentials_plan, inject, sanitize_request,
};
use portcullis::routes::matcher::{HostPattern, HostSet, MethodSet, PathMatcher};
use portcullis::routes::path::{PathOptions, normalize};
use portcullis::routes::policy::{ClaimTest, Condition, Operand, Policy, RequestFacts};
use portcullis::routes::{ClaimHeader, Route, RouteTable, RuleOrigin};
use portcullis::token::Verified;
use portcullis::token::cache::{TokenCache, TokenCacheSettings};
use portcullis::token::extract::TokenSources;
use portcullis::token::extract::{Presented, Source};
use portcullis::token::verify::{Provider, Providers, verify, verify_once};
use portcullis::token::{ClaimPath, extract, screen};
use serde_json::json;

fn claims_for_bench() -> serde_json::Value {
    claims_with(json!({
        "roles": ["admin", "reader"],
        "scope": "api:read api:write",
        "jti": "2b0b7d1e-5d2f-4a5b-9f4e-0c1d2e3f4a5b",
        "exp": now() + 86_400
    }))
}

fn provider(keys: Vec<VerifyKey>, algorithms: Vec<Algorithm>) -> Providers {
    Providers::new(vec![Provider {
        name: "bench".into(),
        issuer: ISSUER.into(),
        audiences: Some(vec![AUDIENCE.into()]),
        algorithms,
        keys: Arc::new(ProviderKeys::local(keys)),
        leeway: 30,
        require_exp: true,
        types: None,
        clients: None,
    }])
}

/// A verification key for `key`, the way a JWKS file would give it.
fn verify_key(key: &TestKey) -> VerifyKey {
    let doc = json!({"keys": [key.jwk()]}).to_string();
    let all = [
        Algorithm::RS256,
        Algorithm::PS256,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
        Algorithm::HS256,
    ];
    let mut parsed = portcullis::keys::jwks::parse(doc.as_bytes(), &all, true).unwrap();
    parsed.keys.remove(0)
}

fn bench_screen(c: &mut Criterion) {
    let key = TestKey::rsa("rsa-1");
    let token = mint(&key, "RS256", &claims_for_bench());
    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    let sources = TokenSources::default();
    c.bench_function("extract_and_screen", |b| {
        b.iter(|| {
            let found = extract::extract(black_box(&headers), None, &sources)
                .unwrap()
                .token()
                .unwrap();
            black_box(screen::screen(found, 8192).unwrap())
        })
    });
}

fn bench_verify(c: &mut Criterion) {
    let mut group = c.benchmark_group("verify");
    let cases: Vec<(&str, TestKey)> = vec![
        ("RS256", TestKey::rsa("k")),
        ("PS256", TestKey::rsa("k")),
        ("ES256", TestKey::ec256("k")),
        ("ES384", TestKey::ec384("k")),
        ("EdDSA", TestKey::ed25519("k")),
        (
            "HS256",
            TestKey::hmac("k", b"0123456789abcdef0123456789abcdef"),
        ),
    ];
    for (alg, key) in &cases {
        let algorithm: Algorithm = alg.parse().unwrap();
        let providers = provider(vec![verify_key(key)], vec![algorithm]);
        let token = mint(key, alg, &claims_for_bench());
        verify_once(&token, &providers, None, 8192, now() as f64).unwrap();
        group.bench_with_input(BenchmarkId::from_parameter(alg), &token, |b, token| {
            b.iter(|| verify_once(black_box(token), &providers, None, 8192, now() as f64).unwrap())
        });
    }
    group.finish();
}

/// The signature check alone: jsonwebtoken's `crypto::verify` (parses the key on every call)
/// against an aws-lc key parsed once.
fn bench_signature(c: &mut Criterion) {
    let mut group = c.benchmark_group("signature");
    let rsa = TestKey::rsa("k");
    let ec = TestKey::ec256("k");
    for (alg, key, prebuilt_alg) in [
        (
            "RS256",
            &rsa,
            &signature::RSA_PKCS1_2048_8192_SHA256 as &'static dyn signature::VerificationAlgorithm,
        ),
        ("ES256", &ec, &signature::ECDSA_P256_SHA256_FIXED),
    ] {
        let token = mint(key, alg, &claims_for_bench());
        let (input, sig_b64) = token.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig_b64).unwrap();
        let jwk = key.jwk();
        let (decoding, spki) = match alg {
            "RS256" => {
                let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
                let e = URL_SAFE_NO_PAD.decode(jwk["e"].as_str().unwrap()).unwrap();
                let der =
                    aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(
                        &aws_lc_rs::rsa::PublicKeyComponents {
                            n: &n[..],
                            e: &e[..],
                        },
                    )
                    .unwrap()
                    .as_ref()
                    .to_vec();
                (DecodingKey::from_rsa_raw_components(&n, &e), der)
            }
            _ => {
                let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
                let y = URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap();
                let point = [&[4u8][..], &x, &y].concat();
                (DecodingKey::from_ec_der(&point), point)
            }
        };
        let algorithm: Algorithm = alg.parse().unwrap();
        assert!(
            jsonwebtoken::crypto::verify(sig_b64, input.as_bytes(), &decoding, algorithm).unwrap()
        );
        group.bench_function(BenchmarkId::new("jsonwebtoken", alg), |b| {
            b.iter(|| {
                jsonwebtoken::crypto::verify(
                    black_box(sig_b64),
                    input.as_bytes(),
                    &decoding,
                    algorithm,
                )
                .unwrap()
            })
        });
        let parsed = ParsedPublicKey::new(prebuilt_alg, &spki).unwrap();
        parsed.verify_sig(input.as_bytes(), &sig).unwrap();
        group.bench_function(BenchmarkId::new("aws-lc-prebuilt", alg), |b| {
            b.iter(|| {
                parsed
                    .verify_sig(black_box(input.as_bytes()), &sig)
                    .unwrap()
            })
        });
    }
    group.finish();
}

fn bench_cache_hit(c: &mut Criterion) {
    let key = TestKey::rsa("rsa-1");
    let token = mint(&key, "RS256", &claims_for_bench());
    let verifying = Verifying::new(&key);
    verifying.verify(&token).unwrap();
    c.bench_function("cache_hit", |b| {
        b.iter(|| verifying.verify(black_box(&token)).unwrap())
    });
}

/// Step 7½ with revocation on: the in-memory denylist asked about a token it does not hold
/// (the usual case) and one it does, with none, 10 000 and 100 000 revoked tokens held.
fn bench_denylist(c: &mut Criterion) {
    use portcullis::issuer::denylist::Denylist;
    use portcullis::issuer::store::Denial;
    let now = 1_800_000_000_000;
    let jti = |i: usize| format!("{i:022}");
    let mut group = c.benchmark_group("denylist_verdict");
    for n in [0usize, 10_000, 100_000] {
        let denials: Vec<Denial> = (0..n)
            .map(|i| Denial {
                iss: ISSUER.into(),
                jti: jti(i),
                expires_at: now + 600_000,
            })
            .collect();
        let list = Denylist::from_denials(&denials, now);
        let absent = "Zq8d2mX0v7pL4rT9sK1wBc";
        group.bench_with_input(BenchmarkId::new("absent", n), &n, |b, _| {
            b.iter(|| list.verdict(black_box(ISSUER), black_box(absent), now))
        });
        if n > 0 {
            let present = jti(n / 2);
            group.bench_with_input(BenchmarkId::new("revoked", n), &n, |b, _| {
                b.iter(|| list.verdict(black_box(ISSUER), black_box(&present), now))
            });
        }
    }
    group.finish();
}

/// A token whose `kid` no key set has (the unknown-kid flood), refused by `verify`.
fn bench_unknown_kid(c: &mut Criterion) {
    let verifying = Verifying::new(&TestKey::rsa("rsa-1"));
    let token = mint(&TestKey::rsa("made-up"), "RS256", &claims_for_bench());
    c.bench_function("unknown_kid_refusal", |b| {
        b.iter(|| verifying.verify(black_box(&token)).unwrap_err())
    });
}

/// `verify` as a request runs it: one RS256 provider, the default cache, a current-thread
/// runtime.
struct Verifying {
    providers: Providers,
    cache: TokenCache,
    runtime: tokio::runtime::Runtime,
}

impl Verifying {
    fn new(key: &TestKey) -> Verifying {
        Verifying {
            providers: provider(vec![verify_key(key)], vec![Algorithm::RS256]),
            cache: TokenCache::new(TokenCacheSettings::default()).unwrap(),
            runtime: tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap(),
        }
    }

    fn verify(&self, token: &str) -> Result<Verified, TokenError> {
        self.runtime.block_on(verify(
            token,
            &self.providers,
            Some(&self.cache),
            None,
            8192,
        ))
    }
}

fn route(i: usize) -> Route {
    route_with(i, PathMatcher::prefix(&format!("/service-{i}/api")))
}

fn route_with(i: usize, path: PathMatcher) -> Route {
    Route {
        name: format!("route-{i}").into(),
        hosts: HostSet::default(),
        path,
        case_sensitive: true,
        methods: MethodSet(Some(vec![Method::GET, Method::POST])),
        upstream: Some(0),
        policy: Policy::Authenticated(None),
        providers: None,
        claim_headers: Vec::new(),
        bound_headers: Vec::new(),
        strip_authorization: false,
        token_sources: TokenSources::default(),
        max_body_bytes: None,
        upgrades: Vec::new(),
        close_at_token_expiry: false,
        local: None,
        strip_prefix: None,
        add_prefix: None,
        stats: portcullis::metrics::RouteStats::new(),
        origin: RuleOrigin {
            file: Arc::from(std::path::Path::new("bench.yaml")),
            line: 0,
            column: 0,
            index: i,
        },
    }
}

fn bench_route_match(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_match");
    for n in [1usize, 100, 1000] {
        let table = RouteTable::new((0..n).map(route).collect());
        let path = format!("/service-{}/api/orders/42", n - 1);
        group.bench_with_input(BenchmarkId::from_parameter(n), &path, |b, path| {
            b.iter(|| table.find(&Method::GET, None, black_box(path)).unwrap())
        });
    }
    group.finish();
    // Segment templates (`/service-N/users/{id}`) behind one host.
    let mut group = c.benchmark_group("route_match_templates");
    for n in [1usize, 100, 1000] {
        let table = RouteTable::new(
            (0..n)
                .map(|i| {
                    let mut r = route_with(
                        i,
                        PathMatcher::path(&format!("/service-{i}/users/{{id}}")).unwrap(),
                    );
                    r.hosts = HostSet(vec![HostPattern::parse("api.example.com").unwrap()]);
                    r
                })
                .collect(),
        );
        let path = format!("/service-{}/users/42", n - 1);
        group.bench_with_input(BenchmarkId::from_parameter(n), &path, |b, path| {
            b.iter(|| {
                table
                    .find(&Method::GET, Some("api.example.com"), black_box(path))
                    .unwrap()
            })
        });
    }
    group.finish();
}

fn bench_normalize(c: &mut Criterion) {
    let options = PathOptions::default();
    let mut group = c.benchmark_group("path_normalize");
    for (name, path) in [
        ("plain", "/service-7/api/orders/42"),
        ("escaped_and_dots", "/service-7/api/%6Frders/./x/../42%20a"),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| normalize(black_box(path), &options).unwrap().len())
        });
    }
    group.finish();
}

fn bench_policy(c: &mut Criterion) {
    let claim = |path: &str, test| Condition::Claim {
        path: ClaimPath::parse(path).unwrap(),
        test,
    };
    let condition = Condition::All(vec![
        claim("roles", ClaimTest::Contains(Operand::Value(json!("admin")))),
        claim("scope", ClaimTest::Scope(vec!["api:read".into()])),
        Condition::Any(vec![
            claim("sub", ClaimTest::Equals(Operand::Value(json!("bob")))),
            claim("sub", ClaimTest::Equals(Operand::Value(json!("alice")))),
        ]),
    ]);
    let claims = claims_for_bench();
    let claims = claims.as_object().unwrap();
    let matcher = PathMatcher::prefix("/api");
    let headers = HeaderMap::new();
    let facts = RequestFacts {
        path: "/api/orders",
        matcher: &matcher,
        headers: &headers,
    };
    c.bench_function("claim_policy", |b| {
        b.iter(|| condition.evaluate(black_box(claims), &facts).unwrap())
    });
}

fn bench_header_rewrite(c: &mut Criterion) {
    let mut r = route(0);
    r.claim_headers = vec![
        ClaimHeader {
            name: "x-user-id".parse().unwrap(),
            claim: ClaimPath::parse("sub").unwrap(),
        },
        ClaimHeader {
            name: "x-user-roles".parse().unwrap(),
            claim: ClaimPath::parse("roles").unwrap(),
        },
    ];
    let rules = HeaderRules::new(
        r.claim_headers.iter().map(|h| h.name.clone()).collect(),
        LOOKALIKE_HEADERS
            .iter()
            .map(|h| http::HeaderName::from_static(h))
            .collect(),
    );
    let token = "abc.def.ghi";
    let claims = claims_for_bench();
    let claims = claims.as_object().unwrap().clone();
    let mut headers = HeaderMap::new();
    for (k, v) in [
        ("host", "api.example.com"),
        ("user-agent", "wrk/4.1"),
        ("accept", "*/*"),
        ("authorization", "Bearer abc.def.ghi"),
        ("connection", "keep-alive"),
    ] {
        headers.insert(k, HeaderValue::from_static(v));
    }
    let ctx = ForwardContext {
        hop: Hop {
            peer: IpAddr::V4(Ipv4Addr::LOCALHOST),
            trusted: false,
            tls: false,
            host: Some(HeaderValue::from_static("api.example.com")),
        },
        request_id: HeaderValue::from_static("0123456789abcdef0123456789abcdef"),
    };
    c.bench_function("header_rewrite", |b| {
        b.iter_batched_ref(
            || headers.clone(),
            |h| {
                let plan = credentials_plan(h, &r, Presented::Token(token, Source::Header));
                sanitize_request(h, &r, &rules, false).unwrap();
                plan.apply(h);
                inject(h, &r, Some(&claims), ctx.clone())
            },
            criterion::BatchSize::SmallInput,
        )
    });
}

criterion_group!(
    benches,
    bench_screen,
    bench_verify,
    bench_unknown_kid,
    bench_signature,
    bench_cache_hit,
    bench_denylist,
    bench_route_match,
    bench_normalize,
    bench_policy,
    bench_header_rewrite
);
criterion_main!(benches);
