//! Client-side limits on real sockets: slow clients time out without holding others up, idle
//! connections are closed (after their in-flight request), and the connection cap delays but
//! never drops clients.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn gateway(upstream: &TestUpstream, server: &str) -> TestGateway {
    GatewayYaml::new()
        .server(server)
        .upstream("app", &upstream.url())
        .public_route("open", "/", "app")
        .start()
        .await
}

/// Reads until the peer closes; returns what was read and how long it took.
async fn read_to_close(stream: &mut TcpStream, within: Duration) -> (String, Option<Duration>) {
    let started = Instant::now();
    let mut out = Vec::new();
    let closed = tokio::time::timeout(within, stream.read_to_end(&mut out)).await;
    (
        String::from_utf8_lossy(&out).into_owned(),
        closed.ok().map(|_| started.elapsed()),
    )
}

#[tokio::test]
async fn slow_clients_time_out_and_do_not_hold_others_up() {
    let upstream = TestUpstream::start().await;
    let gw = gateway(&upstream, "header_read_timeout: 1s\n").await;
    let mut slow = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(gw.addr(0)).await.unwrap();
        s.write_all(b"GET /slow HTTP/1.1\r\nHo").await.unwrap();
        slow.push(s);
    }
    // Others are served at once while the slow ones dangle.
    for _ in 0..5 {
        let r = client().get(gw.url(0, "/fast")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    for mut s in slow {
        let (_, closed) = read_to_close(&mut s, Duration::from_secs(5)).await;
        assert!(closed.is_some(), "a slow client was not cut off");
    }
    assert!(upstream.requests().iter().all(|r| r.target != "/slow"));
}

#[tokio::test]
async fn idle_connections_close_after_their_request_finishes() {
    let upstream = TestUpstream::start_with_delay(Duration::from_millis(1200)).await;
    let gw = gateway(&upstream, "idle_timeout: 400ms\n").await;
    let mut s = TcpStream::connect(gw.addr(0)).await.unwrap();
    // The request waits 1.2 s on the upstream — longer than the idle timeout — and still
    // gets its whole response; then the idle connection is closed.
    s.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (response, closed) = read_to_close(&mut s, Duration::from_secs(5)).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("upstream-ok 0 bytes"), "{response}");
    assert!(closed.is_some(), "the idle connection stayed open");

    // A connection that never sends anything is closed too.
    let mut s = TcpStream::connect(gw.addr(0)).await.unwrap();
    let (_, closed) = read_to_close(&mut s, Duration::from_secs(5)).await;
    assert!(closed.is_some());
}

#[tokio::test]
async fn the_connection_cap_delays_but_does_not_drop() {
    let upstream = TestUpstream::start().await;
    // One worker: with several, each has its own accept queue, and which waiting connection
    // gets a freed slot first is not the order they connected in.
    let gw = gateway(
        &upstream,
        "workers: 1\nmax_connections: 2\nheader_read_timeout: 1s\n",
    )
    .await;
    let hold: Vec<TcpStream> = vec![
        TcpStream::connect(gw.addr(0)).await.unwrap(),
        TcpStream::connect(gw.addr(0)).await.unwrap(),
    ];
    // Both slots are taken by silent clients; the next one waits in the accept queue until
    // the header timeout frees a slot, then is served.
    let started = Instant::now();
    let r = client().get(gw.url(0, "/after")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "the cap was not applied"
    );
    drop(hold);
}

/// Opens `streams` HTTP/2 streams and resets each at once, as a rapid-reset attacker does;
/// returns whether the server closed the connection within `wait`.
async fn rapid_reset(gw: &TestGateway, streams: usize, wait: Duration) -> bool {
    let tcp = TcpStream::connect(gw.addr(0)).await.unwrap();
    let (mut sender, connection) = h2::client::handshake(tcp).await.unwrap();
    let driver = tokio::spawn(connection);
    for i in 0..streams {
        sender = match sender.ready().await {
            Ok(s) => s,
            Err(_) => return true,
        };
        let request = http::Request::builder()
            .uri(format!("http://x/flood/{i}"))
            .body(())
            .unwrap();
        match sender.send_request(request, false) {
            // Dropping both halves of an open stream resets it (RST_STREAM CANCEL).
            Ok((response, stream)) => drop((response, stream)),
            Err(_) => return true,
        }
    }
    matches!(tokio::time::timeout(wait, driver).await, Ok(Ok(Err(_))))
}

/// HTTP/2 rapid reset (CVE-2023-44487): with the default limits a client that opens and resets
/// streams as fast as it can is disconnected (here it is `h2_max_error_resets` that trips: the
/// gateway accepts streams at once, so few are still pending when reset); with both limits
/// raised the same client is not, so the limits are what close it; others are served.
#[tokio::test]
async fn http2_rapid_reset_flood_is_disconnected() {
    let upstream = TestUpstream::start_with_delay(Duration::from_millis(200)).await;
    // The defaults protect: no h2_* setting here.
    let gw = gateway(&upstream, "access_log: false\n").await;
    assert!(
        rapid_reset(&gw, 20_000, Duration::from_secs(5)).await,
        "the flooding connection was not closed"
    );
    let r = client().get(gw.url(0, "/after")).send().await.unwrap();
    assert_eq!(r.status(), 200);

    let tolerant = gateway(
        &upstream,
        "h2_max_pending_resets: 1000000\nh2_max_error_resets: 1000000\n",
    )
    .await;
    assert!(
        !rapid_reset(&tolerant, 2_000, Duration::from_millis(500)).await,
        "control: with the limits raised the connection stays open"
    );
}

/// Over TLS the handshake's bytes do not count as a request: a client that completes the
/// handshake and then says nothing is dropped after `header_read_timeout`, not `idle_timeout`.
#[tokio::test]
async fn silent_tls_clients_are_dropped_after_the_header_timeout() {
    portcullis::tls::install_crypto_provider();
    let upstream = TestUpstream::start().await;
    let work = Workdir::new();
    let pki = pki(&work);
    let gw = GatewayYaml::new()
        .https_only(&pki.cert, &pki.key)
        .server("header_read_timeout: 1s\nidle_timeout: 1h")
        .upstream("app", &upstream.url())
        .public_route("open", "/", "app")
        .start_in(work)
        .await;
    let mut roots = rustls::RootCertStore::empty();
    let ca = rustls_pki_types::pem::PemObject::from_pem_slice(pki.ca_pem.as_bytes()).unwrap();
    roots.add(ca).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = TcpStream::connect(gw.addr(0)).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "a silent TLS client kept its connection");
    assert!(started.elapsed() < Duration::from_secs(5));
}
