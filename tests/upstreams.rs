//! Upstream pools through the real gateway: a dead target is ejected and traffic continues on
//! the others without failures, active health checks, HTTPS upstreams with a private CA, SNI
//! and a client certificate, HTTP/2 to the upstream, Host rewriting, path prefix rewriting.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A gateway whose one public route goes to upstream `app`, configured by `app` (its keys).
async fn gateway_with_app(app: &str) -> TestGateway {
    gateway_with_workers(None, app).await
}

/// The same with a number of workers (default: one per CPU).
async fn gateway_with_workers(workers: Option<usize>, app: &str) -> TestGateway {
    let workers = workers.map_or(String::new(), |n| format!("workers: {n}"));
    GatewayYaml::new()
        .server(&workers)
        .upstream_with("app", app)
        .public_route("open", "/", "app")
        .start()
        .await
}

#[tokio::test]
async fn a_dead_target_is_ejected_and_traffic_continues_on_the_others() {
    let a = TestUpstream::start().await;
    let b = TestUpstream::start().await;
    let gw = gateway_with_app(&format!(
        "targets: [{a}, http://127.0.0.1:1, {b}]\nconnect_timeout: 1s\neject_after: 2\neject_for: 1m\n",
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
        "targets: [{a}, http://127.0.0.1:1]\nretries: 0\neject_after: 1\neject_for: 1m\n",
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
        "targets: [{a}, http://127.0.0.1:1]\nretries: 0\neject_after: 0\nhealth_check:\n  path: /healthz\n  interval: 100ms\n  timeout: 1s\n",
        a = a.url()
    ))
    .await;
    // Passive ejection is off, so only the check can keep requests away from the dead target.
    // A round probes every target in order; a second probe of `a` means the first round,
    // the dead target's probe included, is over.
    let a_ref = &a;
    assert_eventually(
        Duration::from_secs(10),
        "a whole round of health checks ran",
        || async move {
            let probes = a_ref
                .requests()
                .iter()
                .filter(|r| r.target == "/healthz")
                .count();
            probes >= 2
        },
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
            "url: https://localhost:{port}\nhttp2: {http2}\nhost: target\ntls:\n  ca_file: {ca}\n  client_certificate: {cc}\n  client_key: {ck}\n",
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
    let gw = gateway_with_app(&format!("url: https://localhost:{port}\n")).await;
    let r = client().get(gw.url(0, "/secure")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(upstream.count(), before);
}

#[tokio::test]
async fn http2_to_a_plain_upstream_and_host_and_prefix_rewrites() {
    let upstream = TestUpstream::start().await;
    let u = upstream.url();
    let gw = GatewayYaml::new()
        .upstream_with(
            "app",
            &format!(
                r#"
url: {u}
http2: true
host: internal.example:8080
"#
            ),
        )
        .routes(
            r#"
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
        )
        .start()
        .await;
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

/// `GET path` through the gateway on a new client connection.
async fn get(gw: &TestGateway, path: &str) -> reqwest::Response {
    client().get(gw.url(0, path)).send().await.unwrap()
}

/// A raw HTTP/1.1 upstream that counts its connections. It answers every request `200 ok`
/// (keep-alive) and, when `close_after_answer`, closes the connection right after answering
/// without saying so, as upstreams with short keep-alive timeouts do.
struct CountingUpstream {
    url: String,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
    open: Arc<std::sync::atomic::AtomicUsize>,
}

impl CountingUpstream {
    async fn start(close_after_answer: bool) -> CountingUpstream {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let (a, o) = (accepted.clone(), open.clone());
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                o.fetch_add(1, Ordering::SeqCst);
                let o = o.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    'conn: loop {
                        // One request: head, then Content-Length bytes of body.
                        let head_end = loop {
                            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                break i + 4;
                            }
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => break 'conn,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        };
                        let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
                        let length: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse().unwrap());
                        while buf.len() < head_end + length {
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => break 'conn,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        buf.drain(..head_end + length);
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if stream.write_all(answer).await.is_err() || close_after_answer {
                            break;
                        }
                    }
                    o.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        CountingUpstream {
            url,
            accepted,
            open,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn open(&self) -> usize {
        self.open.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[tokio::test]
async fn upstream_connections_are_pooled_and_closed_when_idle_too_long() {
    let up = CountingUpstream::start(false).await;
    // One worker, so that one pool serves every request (each worker keeps its own).
    let gw = gateway_with_workers(
        Some(1),
        &format!("url: {}\npool_idle_timeout: 300ms\n", up.url),
    )
    .await;
    for i in 0..20 {
        let r = get(&gw, &format!("/seq/{i}")).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "ok");
    }
    assert_eq!(up.accepted(), 1, "one upstream connection serves them all");
    // Concurrent requests each need a connection; afterwards they are all reused.
    let burst = |tag: &'static str| {
        let urls: Vec<String> = (0..6).map(|i| gw.url(0, &format!("/{tag}/{i}"))).collect();
        async move {
            let all = urls
                .into_iter()
                .map(|u| async move { client().get(u).send().await.unwrap().status() });
            futures_util::future::join_all(all).await
        }
    };
    assert!(burst("a").await.iter().all(|s| *s == 200));
    let after_first = up.accepted();
    assert!((2..=7).contains(&after_first), "{after_first}");
    for i in 0..10 {
        let r = get(&gw, &format!("/again/{i}")).await;
        assert_eq!(r.status(), 200);
    }
    assert_eq!(up.accepted(), after_first, "pooled connections are reused");
    // Idle past pool_idle_timeout: the gateway closes them all.
    assert_eventually(
        Duration::from_secs(5),
        "idle connections closed",
        || async { up.open() == 0 },
    )
    .await;
    let r = get(&gw, "/later").await;
    assert_eq!(r.status(), 200);
    assert_eq!(up.accepted(), after_first + 1);
}

#[tokio::test]
async fn an_upstream_closing_each_connection_after_answering_loses_no_request() {
    let up = CountingUpstream::start(true).await;
    let gw = gateway_with_app(&format!("url: {}\n", up.url)).await;
    for i in 0..30 {
        let r = if i % 2 == 0 {
            client().get(gw.url(0, &format!("/get/{i}"))).send().await
        } else {
            client()
                .post(gw.url(0, &format!("/post/{i}")))
                .body("payload")
                .send()
                .await
        }
        .unwrap();
        assert_eq!(r.status(), 200, "request {i}");
    }
    assert_eq!(up.accepted(), 30, "a closed connection is never reused");
}

#[tokio::test]
async fn a_pool_without_idle_connections_opens_one_per_request() {
    let up = CountingUpstream::start(false).await;
    let gw = gateway_with_app(&format!("url: {}\npool_max_idle_per_host: 0\n", up.url)).await;
    for i in 0..5 {
        let r = get(&gw, &format!("/{i}")).await;
        assert_eq!(r.status(), 200);
    }
    assert_eq!(up.accepted(), 5);
    assert_eventually(
        Duration::from_secs(5),
        "unpooled connections closed",
        || async { up.open() == 0 },
    )
    .await;
}

#[tokio::test]
async fn each_worker_keeps_its_own_upstream_connections() {
    let up = CountingUpstream::start(false).await;
    let gw = gateway_with_workers(Some(3), &format!("url: {}\n", up.url)).await;
    // A new client connection per request: the kernel spreads them over the three workers.
    for i in 0..60 {
        let r = get(&gw, &format!("/{i}")).await;
        assert_eq!(r.status(), 200);
    }
    let opened = up.accepted();
    assert!(
        (2..=3).contains(&opened),
        "requests spread over the workers, each with one upstream connection: {opened}"
    );
}

#[tokio::test]
async fn a_swapped_snapshot_keeps_unchanged_resources_and_stops_removed_ones() {
    let up = CountingUpstream::start(false).await;
    let k1 = TestKey::rsa("k1");
    let k2 = TestKey::rsa("k2");
    let kept = TestJwks::start(&[&k1]).await;
    let removed = TestJwks::start(&[&k2]).await;
    let provider = |name: &str, issuer: &str, jwks: &TestJwks| {
        format!(
            "- name: {name}\n  issuer: {issuer}\n  audiences: [{AUDIENCE}]\n  algorithms: [RS256]\n  jwks_uri: {}\n  remote_keys:\n    allow_http: true\n",
            jwks.jwks_uri()
        )
    };
    let yaml = |second_provider: bool, prefix: &str| {
        let config = GatewayYaml::new()
            .server("workers: 1")
            .upstream("app", &up.url)
            .providers(&provider("idp", ISSUER, &kept))
            .routes(&format!(
                "- name: api\n  prefix: {prefix}\n  upstream: app\n"
            ));
        match second_provider {
            true => config.providers(&provider("other", "https://other.example", &removed)),
            false => config,
        }
        .yaml()
    };
    let gw = TestGateway::start(Workdir::new(), &yaml(true, "/api")).await;
    let token = mint(&k1, "RS256", &claims());
    let get = |path: &'static str| client().get(gw.url(0, path)).bearer_auth(&token).send();
    assert_eq!(get("/api/x").await.unwrap().status(), 200);
    assert_eq!(
        (up.accepted(), kept.fetches(), removed.fetches()),
        (1, 1, 1)
    );
    let removed_keys = {
        let snapshot = gw.gateway.state.snapshot.load();
        let other = snapshot.providers.index_of("other").unwrap();
        Arc::downgrade(&snapshot.providers.list()[other].keys)
    };

    // The same upstream and provider, `other` gone, the route moved.
    let next = portcullis::config::load(&gw.work.write("next.yaml", &yaml(false, "/v2"))).unwrap();
    gw.gateway.apply(next).await.unwrap();
    let (status, code, _) = reason(get("/api/x").await.unwrap()).await;
    assert_eq!((status, code.as_str()), (404, "no_route"), "old rules gone");
    assert_eq!(get("/v2/x").await.unwrap().status(), 200, "new rules live");
    assert_eq!(up.accepted(), 1, "the pooled connection is reused");
    assert_eq!(
        kept.fetches(),
        1,
        "the kept provider's keys are kept, not fetched again"
    );
    assert_eq!(
        gw.gateway.state.resources.names(),
        (vec!["app".to_string()], vec!["idp".to_string()])
    );
    // Nothing is left holding the removed provider's store: its refresher has stopped.
    assert_eventually(
        Duration::from_secs(5),
        "the removed provider's task stops",
        || {
            let gone = removed_keys.upgrade().is_none();
            async move { gone }
        },
    )
    .await;
}
