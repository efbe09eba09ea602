//! Bounded under abuse, on real sockets with small limits: a stalled upstream gets no more
//! than `max_requests` (the rest 503 `upstream_overloaded` at once), a target no more than
//! `max_connections_per_target` connections with a bounded wait, HTTP/2 connections that only
//! PING are closed when idle, and one address cannot take every connection slot. Another
//! client keeps being served throughout.

mod common;

use std::time::Duration;

use common::*;

async fn gateway(
    slow: &TestUpstream,
    fast: &TestUpstream,
    server: &str,
    slow_extra: &str,
) -> TestGateway {
    GatewayYaml::new()
        .server("access_log: false")
        .server(server)
        .upstream_with("slow", &format!("url: {}\n{slow_extra}", slow.url()))
        .upstream("fast", &fast.url())
        .public_route("slow", "/slow", "slow")
        .public_route("fast", "/fast", "fast")
        .start()
        .await
}

/// One HTTP/2 connection opening 64 streams against a stalled upstream with `max_requests: 8`:
/// eight reach it, the rest are refused at once with `Retry-After`, and another client is
/// served meanwhile.
#[tokio::test]
async fn max_requests_bounds_what_reaches_a_stalled_upstream() {
    let slow = TestUpstream::start_with_delay(Duration::from_secs(2)).await;
    let fast = TestUpstream::start().await;
    let gw = gateway(&slow, &fast, "", "max_requests: 8\n").await;
    let tcp = tokio::net::TcpStream::connect(gw.addr(0)).await.unwrap();
    let (sender, connection) = h2::client::handshake(tcp).await.unwrap();
    let driver = tokio::spawn(connection);
    let mut pending = Vec::new();
    for i in 0..64 {
        let mut sender = sender.clone().ready().await.unwrap();
        let request = http::Request::builder()
            .uri(format!("http://{}/slow/{i}", gw.addr(0)))
            .body(())
            .unwrap();
        let (response, _) = sender.send_request(request, true).unwrap();
        pending.push(response);
    }
    // Refusals come back at once, long before the upstream answers anything.
    let mut refused = 0;
    let mut served = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
    for response in pending {
        match tokio::time::timeout_at(deadline, response).await {
            Ok(Ok(r)) if r.status() == 503 => {
                assert_eq!(r.headers()["retry-after"], "1");
                refused += 1;
            }
            Ok(Ok(r)) => panic!("status {} before the upstream answered", r.status()),
            Ok(Err(e)) => panic!("stream failed: {e}"),
            Err(_) => served.push(()),
        }
    }
    assert_eq!(
        slow.count(),
        8,
        "requests that reached the stalled upstream"
    );
    assert_eq!((refused, served.len()), (56, 8));
    // Another client, another upstream: served while the slow one is full.
    let r = client().get(gw.url(0, "/fast/x")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    driver.abort();
}

/// `max_connections_per_target: 2` with `max_pending: 2`: two requests hold the two
/// connections, two wait for one to come back and are then served on it, the others are
/// refused at once.
#[tokio::test]
async fn connections_per_target_are_capped_with_a_bounded_wait() {
    let slow = TestUpstream::start_with_delay(Duration::from_millis(800)).await;
    let fast = TestUpstream::start().await;
    let gw = gateway(
        &slow,
        &fast,
        "",
        "max_connections_per_target: 2\nmax_pending: 2\n",
    )
    .await;
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..10 {
        let url = gw.url(0, &format!("/slow/{i}"));
        requests.spawn(async move {
            let started = std::time::Instant::now();
            let r = client().get(url).send().await.unwrap();
            (r.status().as_u16(), started.elapsed())
        });
    }
    let mut statuses = Vec::new();
    while let Some(done) = requests.join_next().await {
        let (status, took) = done.unwrap();
        if status == 503 {
            assert!(
                took < Duration::from_millis(700),
                "a refusal waited {took:?}"
            );
        }
        statuses.push(status);
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 200, 200, 503, 503, 503, 503, 503, 503]);
    assert_eq!(slow.count(), 4);
}

/// Four HTTP/2 connections that send nothing but PINGs hold all four connection slots until
/// `idle_timeout`; then they are closed and a fifth client gets in.
#[tokio::test]
async fn ping_only_http2_connections_are_closed_when_idle() {
    let upstream = TestUpstream::start().await;
    let gw = gateway(
        &upstream,
        &upstream,
        "max_connections: 4\nidle_timeout: 1s\n",
        "",
    )
    .await;
    let mut drivers = Vec::new();
    for _ in 0..4 {
        let tcp = tokio::net::TcpStream::connect(gw.addr(0)).await.unwrap();
        let (_sender, mut connection) = h2::client::handshake(tcp).await.unwrap();
        let mut ping_pong = connection.ping_pong().unwrap();
        drivers.push(tokio::spawn(async move {
            // The client's pace (five PINGs a second), not a wait for anything.
            let mut every = tokio::time::interval(Duration::from_millis(200));
            let pinging = async {
                loop {
                    every.tick().await;
                    if ping_pong.ping(h2::Ping::opaque()).await.is_err() {
                        return;
                    }
                }
            };
            tokio::select! {
                _ = connection => {}
                _ = pinging => {}
            }
        }));
    }
    for driver in drivers {
        tokio::time::timeout(Duration::from_secs(6), driver)
            .await
            .expect("a PING-only connection outlived idle_timeout")
            .unwrap();
    }
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        client().get(gw.url(0, "/fast/x")).send(),
    )
    .await
    .expect("a fifth client was kept out")
    .unwrap();
    assert_eq!(r.status(), 200);
}

/// `max_connections_per_ip: 2`: a third connection from the same address is closed at once;
/// once one of the two goes, the next one is served.
#[tokio::test]
async fn one_address_cannot_take_every_slot() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = TestUpstream::start().await;
    let gw = gateway(&upstream, &upstream, "max_connections_per_ip: 2\n", "").await;
    // Two keep-alive connections, each known to be accepted (it answered).
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut stream = tokio::net::TcpStream::connect(gw.addr(0)).await.unwrap();
        stream
            .write_all(b"GET /fast/x HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"HTTP/1.1 200");
        open.push(stream);
    }
    let mut third = tokio::net::TcpStream::connect(gw.addr(0)).await.unwrap();
    let _ = third
        .write_all(b"GET /fast/x HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut out = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(3), third.read_to_end(&mut out)).await;
    assert!(closed.is_ok(), "the third connection was not closed");
    assert!(out.is_empty(), "the third connection was served");
    drop(open.pop());
    let gw = &gw;
    assert_eventually(
        Duration::from_secs(5),
        "a new connection is served",
        || async move {
            let r = raw_exchange(
                gw.addr(0),
                b"GET /fast/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                Duration::from_secs(2),
            )
            .await;
            r.starts_with("HTTP/1.1 200")
        },
    )
    .await;
}
