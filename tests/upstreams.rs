//! Upstream pools through the real gateway: a dead target is ejected and traffic continues on
//! the others without failures, active health checks, HTTPS upstreams with a private CA, SNI
//! and a client certificate, HTTP/2 to the upstream, Host rewriting, path prefix rewriting.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A gateway whose one public route goes to upstream `app`, configured by `app` (YAML lines
/// indented four spaces).
async fn gateway_with_app(app: &str) -> TestGateway {
    let yaml = format!(
        "listeners:\n  - address: 127.0.0.1:0\nupstreams:\n  app:\n{app}routes:\n  - name: open\n    prefix: /\n    upstream: app\n    policy: public\n"
    );
    TestGateway::start(Workdir::new(), &yaml).await
}

#[tokio::test]
async fn a_dead_target_is_ejected_and_traffic_continues_on_the_others() {
    let a = TestUpstream::start().await;
    let b = TestUpstream::start().await;
    let gw = gateway_with_app(&format!(
        "    targets: [{a}, http://127.0.0.1:1, {b}]\n    connect_timeout: 1s\n    eject_after: 2\n    eject_for: 1m\n",
        a = a.url(),
        b = b.url()
    ))
    .await;
    // GETs without a body are retried on another target after a connect failure: none fails,
    // also before the dead target is ejected.
    for i in 0..12 {
        let r = client()
            .get(gw.url(0, &format!("/get/{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "GET {i}");
    }
    // By now the dead target has failed twice and is out: POSTs with bodies (never retried)
    // all succeed and are spread over the live targets.
    let before = (a.count(), b.count());
    for i in 0..20 {
        let r = client()
            .post(gw.url(0, &format!("/post/{i}")))
            .body("payload")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "POST {i} after ejection");
    }
    let (da, db) = (a.count() - before.0, b.count() - before.1);
    assert_eq!(da + db, 20);
    assert!(
        da >= 5 && db >= 5,
        "round robin over the live targets: {da} / {db}"
    );
}

#[tokio::test]
async fn without_retries_a_dead_target_fails_until_ejected() {
    let a = TestUpstream::start().await;
    let gw = gateway_with_app(&format!(
        "    targets: [{a}, http://127.0.0.1:1]\n    retries: 0\n    eject_after: 1\n    eject_for: 1m\n",
        a = a.url()
    ))
    .await;
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(
            client()
                .get(gw.url(0, "/x"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    // Exactly one request met the dead target (502), then it was ejected.
    assert_eq!(
        statuses.iter().filter(|s| **s == 502).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        9,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn active_health_checks_keep_requests_off_a_failing_target() {
    let a = TestUpstream::start().await;
    let gw = gateway_with_app(&format!(
        "    targets: [{a}, http://127.0.0.1:1]\n    retries: 0\n    eject_after: 0\n    health_check:\n      path: /healthz\n      interval: 100ms\n      timeout: 1s\n",
        a = a.url()
    ))
    .await;
    // The first check runs at start; passive ejection is off, so only the check can keep
    // requests away from the dead target.
    let a_ref = &a;
    assert_eventually(
        Duration::from_secs(10),
        "the health check ran",
        || async move { a_ref.requests().iter().any(|r| r.target == "/healthz") },
    )
    .await;
    for i in 0..10 {
        let r = client()
            .post(gw.url(0, "/work"))
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "request {i}");
    }
}

#[tokio::test]
async fn https_upstream_with_private_ca_sni_and_client_certificate() {
    portcullis::tls::install_crypto_provider();
    let work = Workdir::new();
    let pki = pki(&work);
    // The upstream demands a client certificate from the test CA.
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&pki.ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let chain: Vec<_> = CertificateDer::pem_file_iter(&pki.cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(&pki.key).unwrap();
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .unwrap();
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let upstream = TestUpstream::start_tls(Arc::new(server)).await;
    let port = upstream.addr.port();
    for (http2, version) in [
        (false, http::Version::HTTP_11),
        (true, http::Version::HTTP_2),
    ] {
        let gw = gateway_with_app(&format!(
            "    url: https://localhost:{port}\n    http2: {http2}\n    host: target\n    tls:\n      ca_file: {ca}\n      client_certificate: {cc}\n      client_key: {ck}\n",
            ca = pki.ca.display(),
            cc = pki.client_cert.display(),
            ck = pki.client_key.display()
        ))
        .await;
        let r = client().get(gw.url(0, "/secure")).send().await.unwrap();
        assert_eq!(r.status(), 200, "http2: {http2}");
        let got = upstream.requests().pop().unwrap();
        assert_eq!(got.sni.as_deref(), Some("localhost"));
        assert!(
            got.client_cert,
            "the gateway presented its client certificate"
        );
        assert_eq!(got.version, version);
        assert_eq!(got.target, "/secure");
        let host = got
            .headers
            .get("host")
            .map(|h| h.to_str().unwrap().to_string())
            .unwrap_or_default();
        assert!(
            http2 || host == format!("localhost:{port}"),
            "host: target sends the target's host: {host}"
        );
    }
    // Without the private CA the upstream's certificate is not trusted: 502, nothing served.
    let before = upstream.count();
    let gw = gateway_with_app(&format!("    url: https://localhost:{port}\n")).await;
    let r = client().get(gw.url(0, "/secure")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(upstream.count(), before);
}

#[tokio::test]
async fn http2_to_a_plain_upstream_and_host_and_prefix_rewrites() {
    let upstream = TestUpstream::start().await;
    let yaml = format!(
        r#"
listeners:
  - address: 127.0.0.1:0
upstreams:
  app:
    url: {u}
    http2: true
    host: internal.example:8080
routes:
  - name: api
    prefix: /api/v1
    strip_prefix: /api/v1
    add_prefix: /v2
    upstream: app
    policy: public
  - name: plain
    prefix: /
    upstream: app
    policy: public
"#,
        u = upstream.url()
    );
    let gw = TestGateway::start(Workdir::new(), &yaml).await;
    for (path, want) in [
        ("/api/v1/users?x=1", "/v2/users?x=1"),
        ("/api/v1", "/v2/"),
        ("/api/v1/", "/v2/"),
        ("/other", "/other"),
    ] {
        let r = client().get(gw.url(0, path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let got = upstream.requests().pop().unwrap();
        assert_eq!(got.target, want, "{path}");
        assert_eq!(got.version, http::Version::HTTP_2);
        let authority = got
            .headers
            .get("host")
            .map(|h| h.to_str().unwrap().to_string());
        assert_eq!(
            authority.as_deref(),
            Some("internal.example:8080"),
            "{path}"
        );
    }
}
