//! Test harness: the real gateway on ephemeral loopback ports, a recording upstream, a per-run
//! CA and TLS certificate, fresh signing keys, and a token minter that can forge any header.
#![allow(dead_code)]

mod config;
pub mod issuer;
pub mod process;
#[allow(unused_imports)]
pub use config::{GatewayYaml, indent};

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use portcullis::server::{self, RunningGateway};
use serde_json::{Value, json};
use tokio::net::TcpListener;

pub const ISSUER: &str = "https://issuer.test";
pub const AUDIENCE: &str = "test-api";

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A signing key of one kind, with its kid.
pub struct TestKey {
    pub kid: String,
    signer: Signer,
}

enum Signer {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair, &'static str),
    Ed(Ed25519KeyPair),
    Hmac(Vec<u8>),
}

impl TestKey {
    pub fn rsa(kid: &str) -> TestKey {
        let pair = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        TestKey {
            kid: kid.into(),
            signer: Signer::Rsa(pair),
        }
    }

    pub fn ec256(kid: &str) -> TestKey {
        TestKey::ec(kid, &signature::ECDSA_P256_SHA256_FIXED_SIGNING, "P-256")
    }

    pub fn ec384(kid: &str) -> TestKey {
        TestKey::ec(kid, &signature::ECDSA_P384_SHA384_FIXED_SIGNING, "P-384")
    }

    fn ec(kid: &str, alg: &'static signature::EcdsaSigningAlgorithm, crv: &'static str) -> TestKey {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &SystemRandom::new()).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref()).unwrap();
        TestKey {
            kid: kid.into(),
            signer: Signer::Ec(pair, crv),
        }
    }

    pub fn ed25519(kid: &str) -> TestKey {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        TestKey {
            kid: kid.into(),
            signer: Signer::Ed(pair),
        }
    }

    pub fn hmac(kid: &str, secret: &[u8]) -> TestKey {
        TestKey {
            kid: kid.into(),
            signer: Signer::Hmac(secret.to_vec()),
        }
    }

    /// The public JWK (for HMAC, the `oct` key).
    pub fn jwk(&self) -> Value {
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        match &self.signer {
            Signer::Rsa(pair) => {
                let c = signature::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public_key());
                json!({"kty": "RSA", "kid": self.kid, "use": "sig", "n": b64(&c.n), "e": b64(&c.e)})
            }
            Signer::Ec(pair, crv) => {
                let point = pair.public_key().as_ref();
                let half = (point.len() - 1) / 2;
                json!({"kty": "EC", "kid": self.kid, "crv": crv, "x": b64(&point[1..1 + half]), "y": b64(&point[1 + half..])})
            }
            Signer::Ed(pair) => {
                json!({"kty": "OKP", "kid": self.kid, "crv": "Ed25519", "x": b64(pair.public_key().as_ref())})
            }
            Signer::Hmac(secret) => json!({"kty": "oct", "kid": self.kid, "k": b64(secret)}),
        }
    }

    /// The public key as a `BEGIN PUBLIC KEY` PEM.
    pub fn spki_pem(&self) -> String {
        let der: Vec<u8> = match &self.signer {
            Signer::Rsa(pair) => {
                AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(pair.public_key())
                    .unwrap()
                    .as_ref()
                    .to_vec()
            }
            Signer::Ec(pair, _) => {
                AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(pair.public_key())
                    .unwrap()
                    .as_ref()
                    .to_vec()
            }
            Signer::Ed(pair) => {
                AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(pair.public_key())
                    .unwrap()
                    .as_ref()
                    .to_vec()
            }
            Signer::Hmac(_) => panic!("an HMAC key has no public key"),
        };
        pem("PUBLIC KEY", &der)
    }

    /// Signs `message` as `alg` would. Signing with a mismatched alg is allowed on purpose.
    pub fn sign(&self, alg: &str, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.signer {
            Signer::Rsa(pair) => {
                let padding: &'static dyn signature::RsaEncoding = match alg {
                    "RS256" => &signature::RSA_PKCS1_SHA256,
                    "RS384" => &signature::RSA_PKCS1_SHA384,
                    "RS512" => &signature::RSA_PKCS1_SHA512,
                    "PS256" => &signature::RSA_PSS_SHA256,
                    "PS384" => &signature::RSA_PSS_SHA384,
                    "PS512" => &signature::RSA_PSS_SHA512,
                    other => panic!("RSA cannot sign {other}"),
                };
                let mut sig = vec![0; pair.public_modulus_len()];
                pair.sign(padding, &rng, message, &mut sig).unwrap();
                sig
            }
            Signer::Ec(pair, _) => pair.sign(&rng, message).unwrap().as_ref().to_vec(),
            Signer::Ed(pair) => pair.sign(message).as_ref().to_vec(),
            Signer::Hmac(secret) => hmac(alg, secret, message),
        }
    }
}

/// HMAC with any secret, for forging algorithm-confusion tokens too.
pub fn hmac(alg: &str, secret: &[u8], message: &[u8]) -> Vec<u8> {
    let algorithm = match alg {
        "HS256" => aws_lc_rs::hmac::HMAC_SHA256,
        "HS384" => aws_lc_rs::hmac::HMAC_SHA384,
        "HS512" => aws_lc_rs::hmac::HMAC_SHA512,
        other => panic!("not an HMAC alg: {other}"),
    };
    aws_lc_rs::hmac::sign(&aws_lc_rs::hmac::Key::new(algorithm, secret), message)
        .as_ref()
        .to_vec()
}

pub fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

pub fn b64(value: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(value)
}

/// Claims of a valid token: iss, aud, sub, iat, nbf, exp five minutes ahead.
pub fn claims() -> Value {
    let now = now();
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "nbf": now, "exp": now + 300})
}

/// `claims()` with `patch` applied (a null removes a claim).
pub fn claims_with(patch: Value) -> Value {
    let mut c = claims();
    let map = c.as_object_mut().unwrap();
    for (k, v) in patch.as_object().unwrap() {
        if v.is_null() {
            map.remove(k);
        } else {
            map.insert(k.clone(), v.clone());
        }
    }
    c
}

/// Builds the header `{"alg", "kid", "typ": "JWT"}` with `patch` applied, and signs.
pub fn mint_with(key: &TestKey, alg: &str, header_patch: Value, claims: &Value) -> String {
    let mut header = json!({"alg": alg, "typ": "JWT", "kid": key.kid});
    for (k, v) in header_patch.as_object().unwrap() {
        if v.is_null() {
            header.as_object_mut().unwrap().remove(k);
        } else {
            header[k] = v.clone();
        }
    }
    mint_header(key, alg, &header, claims)
}

/// Signs `claims` under exactly this JOSE `header` (nulls kept).
pub fn mint_header(key: &TestKey, alg: &str, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = key.sign(alg, input.as_bytes());
    format!("{input}.{}", b64(&sig))
}

/// A valid token of `key` signed as `alg`.
pub fn mint(key: &TestKey, alg: &str, claims: &Value) -> String {
    mint_with(key, alg, json!({}), claims)
}

/// A folder for one test's files.
pub struct Workdir {
    pub dir: tempfile::TempDir,
}

impl Workdir {
    pub fn new() -> Workdir {
        Workdir {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, content).unwrap();
        path
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn jwks(&self, name: &str, keys: &[&TestKey]) -> PathBuf {
        let doc = json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()});
        self.write(name, &doc.to_string())
    }
}

/// A CA made for this run, a server certificate for localhost / 127.0.0.1 and a client
/// certificate, both signed by it.
pub struct Pki {
    pub ca_pem: String,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

pub fn pki(work: &Workdir) -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "portcullis test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf_params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &ca).unwrap();
    let client_key = rcgen::KeyPair::generate().unwrap();
    let mut client_params =
        rcgen::CertificateParams::new(vec!["portcullis-gateway".to_string()]).unwrap();
    client_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client = client_params.signed_by(&client_key, &ca).unwrap();
    Pki {
        ca_pem: ca.pem(),
        ca: work.write("ca.pem", &ca.pem()),
        cert: work.write("server.pem", &leaf.pem()),
        key: work.write("server-key.pem", &leaf_key.serialize_pem()),
        client_cert: work.write("client.pem", &client.pem()),
        client_key: work.write("client-key.pem", &client_key.serialize_pem()),
    }
}

/// A connection, plain or TLS.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// What the upstream received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub target: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Whether the body arrived to its end (a body cut off mid-way is recorded as empty).
    pub body_complete: bool,
    pub version: http::Version,
    /// Over TLS: the SNI the client sent and whether it presented a certificate.
    pub sni: Option<String>,
    pub client_cert: bool,
}

/// A real HTTP/1.1 upstream that records every request and answers `200 upstream-ok`.
#[derive(Clone)]
pub struct TestUpstream {
    pub addr: SocketAddr,
    recorded: Arc<Mutex<Vec<Recorded>>>,
}

impl TestUpstream {
    pub async fn start() -> TestUpstream {
        TestUpstream::start_with_delay(Duration::ZERO).await
    }

    /// An upstream that waits `delay` before answering.
    pub async fn start_with_delay(delay: Duration) -> TestUpstream {
        TestUpstream::start_with(delay, None).await
    }

    /// An HTTPS upstream with this TLS server config.
    pub async fn start_tls(tls: Arc<rustls::ServerConfig>) -> TestUpstream {
        TestUpstream::start_with(Duration::ZERO, Some(tokio_rustls::TlsAcceptor::from(tls))).await
    }

    async fn start_with(delay: Duration, tls: Option<tokio_rustls::TlsAcceptor>) -> TestUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let log = recorded.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let log = log.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let (stream, sni, client_cert) = match tls {
                        None => (Box::new(stream) as Box<dyn Io>, None, false),
                        Some(acceptor) => {
                            let Ok(tls) = acceptor.accept(stream).await else {
                                return;
                            };
                            let (_, conn) = tls.get_ref();
                            let sni = conn.server_name().map(str::to_string);
                            let client_cert = conn.peer_certificates().is_some();
                            (Box::new(tls) as Box<dyn Io>, sni, client_cert)
                        }
                    };
                    let service = service_fn(move |req: Request<Incoming>| {
                        let log = log.clone();
                        let sni = sni.clone();
                        async move {
                            let version = req.version();
                            let (parts, body) = req.into_parts();
                            let collected = body.collect().await.map(|b| b.to_bytes());
                            let body_complete = collected.is_ok();
                            let body = collected.unwrap_or_default();
                            log.lock().unwrap().push(Recorded {
                                method: parts.method.to_string(),
                                target: parts
                                    .uri
                                    .path_and_query()
                                    .map_or_else(|| parts.uri.to_string(), |pq| pq.to_string()),
                                headers: parts.headers,
                                body: body.clone(),
                                body_complete,
                                version,
                                sni,
                                client_cert,
                            });
                            if !delay.is_zero() {
                                tokio::time::sleep(delay).await;
                            }
                            let mut response = Response::new(Full::new(Bytes::from(format!(
                                "upstream-ok {} bytes",
                                body.len()
                            ))));
                            response
                                .headers_mut()
                                .insert("x-upstream", "test".parse().unwrap());
                            response
                                .headers_mut()
                                .insert("connection", "x-upstream-private".parse().unwrap());
                            response
                                .headers_mut()
                                .insert("x-upstream-private", "1".parse().unwrap());
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        TestUpstream { addr, recorded }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.recorded.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.recorded.lock().unwrap().len()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// The gateway, started in-process from a YAML config on ephemeral ports.
pub struct TestGateway {
    pub gateway: RunningGateway,
    pub work: Workdir,
}

impl TestGateway {
    /// Writes `yaml` to a temp folder (relative paths resolve there) and starts the gateway.
    pub async fn start(work: Workdir, yaml: &str) -> TestGateway {
        let path = work.write("gateway.yaml", yaml);
        let config = portcullis::config::load(&path).unwrap_or_else(|e| panic!("config:\n{e}"));
        let gateway = server::start(config).await.unwrap();
        TestGateway { gateway, work }
    }

    /// `http://ADDR` of listener `index`.
    pub fn url(&self, index: usize, path: &str) -> String {
        format!("http://{}{path}", self.gateway.addresses()[index])
    }

    pub fn addr(&self, index: usize) -> SocketAddr {
        self.gateway.addresses()[index]
    }
}

/// A plain HTTP/1.1 client that ignores proxy settings.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .build()
        .unwrap()
}

/// A client that trusts only `ca_pem`; with `h2` it offers h2 and http/1.1 by ALPN, otherwise
/// HTTP/1.1 only.
pub fn tls_client(ca_pem: &str, h2: bool) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap();
    let builder = reqwest::Client::builder().no_proxy().tls_certs_only([ca]);
    let builder = if h2 { builder } else { builder.http1_only() };
    builder.build().unwrap()
}

/// The `reason` of a problem+json body.
pub async fn reason(response: reqwest::Response) -> (u16, String, Option<String>) {
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    let body: Value =
        serde_json::from_slice(&response.bytes().await.unwrap_or_default()).unwrap_or(Value::Null);
    (
        status,
        body["reason"].as_str().unwrap_or("").to_string(),
        challenge,
    )
}

/// Sends raw bytes on a new connection and returns everything read until the peer closes or
/// `wait` passes.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8], wait: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// How the test JWKS endpoint behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwksMode {
    Serve,
    Down,
    Garbage,
    Stall(Duration),
}

struct JwksState {
    doc: String,
    mode: JwksMode,
    max_age: Option<u64>,
    issuer: Option<String>,
}

/// A real JWKS (and OpenID discovery) server under test control: rotate, go down, serve
/// garbage, stall, and count fetches.
#[derive(Clone)]
pub struct TestJwks {
    pub addr: SocketAddr,
    pub base: String,
    state: Arc<Mutex<JwksState>>,
    fetches: Arc<std::sync::atomic::AtomicUsize>,
}

impl TestJwks {
    /// Plain HTTP on 127.0.0.1.
    pub async fn start(keys: &[&TestKey]) -> TestJwks {
        TestJwks::start_inner(keys, None).await
    }

    /// HTTPS with the certificate of `pki` (for `localhost`).
    pub async fn start_tls(keys: &[&TestKey], pki: &Pki) -> TestJwks {
        TestJwks::start_inner(keys, Some(pki)).await
    }

    async fn start_inner(keys: &[&TestKey], pki: Option<&Pki>) -> TestJwks {
        portcullis::tls::install_crypto_provider();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let base = match pki {
            Some(_) => format!("https://localhost:{}", addr.port()),
            None => format!("http://{addr}"),
        };
        let acceptor = pki.map(|p| {
            tokio_rustls::TlsAcceptor::from(
                portcullis::tls::ServerMaterial::read(&p.cert, &p.key)
                    .unwrap()
                    .server_config()
                    .unwrap(),
            )
        });
        let state = Arc::new(Mutex::new(JwksState {
            doc: jwks_doc(keys),
            mode: JwksMode::Serve,
            max_age: None,
            issuer: None,
        }));
        let fetches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (st, count, own_base) = (state.clone(), fetches.clone(), base.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (st, count, own_base, acceptor) = (
                    st.clone(),
                    count.clone(),
                    own_base.clone(),
                    acceptor.clone(),
                );
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let (st, count, own_base) = (st.clone(), count.clone(), own_base.clone());
                        async move {
                            Ok::<_, Infallible>(jwks_answer(&req, &st, &count, &own_base).await)
                        }
                    });
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    match acceptor {
                        None => {
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                        Some(acceptor) => {
                            if let Ok(tls) = acceptor.accept(stream).await {
                                let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                            }
                        }
                    }
                });
            }
        });
        TestJwks {
            addr,
            base,
            state,
            fetches,
        }
    }

    pub fn jwks_uri(&self) -> String {
        format!("{}/jwks.json", self.base)
    }

    pub fn set_keys(&self, keys: &[&TestKey]) {
        self.state.lock().unwrap().doc = jwks_doc(keys);
    }

    pub fn set_mode(&self, mode: JwksMode) {
        self.state.lock().unwrap().mode = mode;
    }

    /// `Cache-Control: max-age` sent with the JWKS.
    pub fn set_max_age(&self, secs: Option<u64>) {
        self.state.lock().unwrap().max_age = secs;
    }

    /// The `issuer` the discovery document names (default: this server's base URL).
    pub fn set_discovery_issuer(&self, issuer: &str) {
        self.state.lock().unwrap().issuer = Some(issuer.to_string());
    }

    /// JWKS requests received so far (discovery requests not counted).
    pub fn fetches(&self) -> usize {
        self.fetches.load(std::sync::atomic::Ordering::SeqCst)
    }
}

fn jwks_doc(keys: &[&TestKey]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()}).to_string()
}

async fn jwks_answer(
    req: &Request<Incoming>,
    state: &Mutex<JwksState>,
    fetches: &std::sync::atomic::AtomicUsize,
    base: &str,
) -> Response<Full<Bytes>> {
    let (mode, doc, max_age, issuer) = {
        let s = state.lock().unwrap();
        (s.mode, s.doc.clone(), s.max_age, s.issuer.clone())
    };
    let body = match req.uri().path() {
        "/.well-known/openid-configuration" => {
            json!({"issuer": issuer.unwrap_or_else(|| base.to_string()), "jwks_uri": format!("{base}/jwks.json")}).to_string()
        }
        "/jwks.json" => {
            fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            match mode {
                JwksMode::Serve => doc,
                JwksMode::Garbage => "<html>oops</html>".to_string(),
                JwksMode::Stall(d) => {
                    tokio::time::sleep(d).await;
                    doc
                }
                JwksMode::Down => {
                    let mut r = Response::new(Full::new(Bytes::from_static(b"down")));
                    *r.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                    return r;
                }
            }
        }
        _ => {
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = http::StatusCode::NOT_FOUND;
            return r;
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    if let Some(age) = max_age {
        response
            .headers_mut()
            .insert("cache-control", format!("max-age={age}").parse().unwrap());
    }
    response
}

/// Polls `check` every 50 ms until it holds or `within` passes (then panics with `what`).
pub async fn assert_eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {within:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
