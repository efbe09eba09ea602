//! What the fuzz targets share: the compiled fuzz config (`config/gateway.yaml`), a runtime to
//! drive `authorize`, the claims and token an allowed request carries, and the checks every
//! forwarded request must pass.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use portcullis::error::{Denial, RequestError};
use portcullis::http::pipeline::{self, Authorized, Observer, Peer, TokenCheck};
use portcullis::routes::policy::{Condition, Trace};
use portcullis::state::Snapshot;
use portcullis::token::Claims;
use serde_json::{Value, json};

pub mod seeds;

/// The repository root (the fuzz crate sits in `fuzz/`).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime")
    })
}

/// Runs a future to completion on the shared runtime.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    runtime().block_on(future)
}

/// The live snapshot of `fuzz/config/gateway.yaml` (no connection is ever made).
pub fn snapshot() -> &'static Snapshot {
    static SNAPSHOT: OnceLock<Snapshot> = OnceLock::new();
    SNAPSHOT.get_or_init(|| {
        portcullis::tls::install_crypto_provider();
        let path = repo().join("fuzz/config/gateway.yaml");
        let config = portcullis::config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let resources = portcullis::resources::Resources::detached();
        block_on(async {
            let snapshot = config.plan.go_live(&resources).await.expect("go live");
            for provider in snapshot.providers.list() {
                provider
                    .keys
                    .initial_load()
                    .await
                    .expect("the local JWKS loads");
            }
            snapshot
        })
    })
}

/// The fuzz config's provider.
pub const ISSUER: &str = "https://idp.example.com/realms/main";
pub const AUDIENCE: &str = "orders-api";
/// The kid of `certs/demo-jwks.json`'s key.
pub const KID: &str = "demo-rsa-1";

/// Claims that every example route allows with the right path (`sub` alice, admin, tenant t1).
pub fn allowed_claims() -> Claims {
    let Value::Object(map) = json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "exp": 4_102_444_800u64,
        "iat": 1_700_000_000u64,
        "roles": ["admin", "staff"],
        "scope": "invoices:read reports:read",
        "acr": "mfa",
        "tenants": ["t1", "t2"],
        "tenant": "t1",
        "loa": 3,
        "email": "alice@staff.example.com",
    }) else {
        unreachable!()
    };
    map
}

/// An RS256 token over `claims`, signed with `certs/demo-signing-key.pem`.
pub fn sign(claims: &Claims) -> String {
    use rustls_pki_types::{PrivatePkcs1KeyDer, pem::PemObject};
    let der = PrivatePkcs1KeyDer::from_pem_file(repo().join("certs/demo-signing-key.pem"))
        .expect("the demo key, PKCS#1 PEM");
    let key = jsonwebtoken::EncodingKey::from_rsa_der(der.secret_pkcs1_der());
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(KID.to_string());
    jsonwebtoken::encode(&header, claims, &key).expect("signs")
}

/// What `authorize` showed of the request target.
#[derive(Debug, Default)]
pub struct Seen {
    pub host: Option<String>,
    pub path: Option<String>,
}

impl Trace for Seen {
    fn begin(&mut self, _depth: usize, _condition: &Condition) -> usize {
        0
    }
    fn end(&mut self, _: usize, _: Result<(), Denial>, _: Option<&Value>, _: Option<&str>) {}
}

impl Observer<'_> for Seen {
    fn target(&mut self, host: Option<&str>, path: &str) {
        self.host = host.map(str::to_string);
        self.path = Some(path.to_string());
    }
}

/// A peer outside `trusted_proxies` (the fuzz config trusts none).
pub const PEER: Peer = Peer {
    ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
    tls: true,
};

/// Steps 3–9 for one request, as the gateway runs them.
pub fn authorize(
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    check: TokenCheck<'_>,
) -> (Result<Authorized<'static>, RequestError>, Seen) {
    let snapshot = snapshot();
    let mut request = http::Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    let (parts, ()) = request.into_parts();
    let mut seen = Seen::default();
    let request_id = HeaderValue::from_static("fuzz");
    let result = block_on(pipeline::authorize(
        snapshot, parts, PEER, request_id, check, &mut seen,
    ));
    (result, seen)
}

/// Claims given as verified (the token step is skipped; everything after it runs).
pub fn assume(claims: Claims) -> TokenCheck<'static> {
    TokenCheck::Assume(Arc::new(claims))
}

/// Headers no client may set: every claim header of the config, the forwarding headers the
/// gateway writes, and the look-alikes removed from untrusted peers. Lower case, `-` spelled.
pub fn protected_headers() -> Vec<String> {
    let mut names: Vec<String> = snapshot()
        .routes
        .identity_headers()
        .iter()
        .map(|h| h.as_str().to_string())
        .collect();
    names.extend(
        [
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-forwarded-host",
            "forwarded",
            "x-original-host",
        ]
        .map(String::from),
    );
    names.extend(portcullis::proxy::headers::LOOKALIKE_HEADERS.map(String::from));
    names
}

/// A header name as a backend that folds `_` into `-` and ignores case reads it.
pub fn folded(name: &HeaderName) -> String {
    name.as_str().replace('_', "-").to_ascii_lowercase()
}

/// What every forwarded request must satisfy, whatever the input: no CR, LF or NUL in any
/// header value or in the path, and the path an origin-form path.
pub fn assert_well_formed(authorized: &Authorized<'_>) {
    for (name, value) in &authorized.parts.headers {
        assert!(
            !value
                .as_bytes()
                .iter()
                .any(|b| matches!(b, b'\r' | b'\n' | 0)),
            "{name} carries CR, LF or NUL"
        );
    }
    let path = authorized.path_and_query.path();
    assert!(path.starts_with('/'), "forwarded path {path:?}");
    assert!(
        !path.bytes().any(|b| b.is_ascii_control() || b == b' '),
        "forwarded path {path:?} carries a control byte or space"
    );
}

/// Header values from fuzz bytes: printable, marked so a forwarded copy is recognisable.
pub fn spoof_value(bytes: &[u8]) -> HeaderValue {
    let text: String = bytes.iter().map(|b| char::from(b' ' + (b % 95))).collect();
    HeaderValue::from_str(&format!("spoof-{text}")).unwrap_or(HeaderValue::from_static("spoof-"))
}
