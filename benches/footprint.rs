//! Memory footprint of the real binary: resident memory after 10,000 distinct tokens went
//! through the verified-token cache, with 1,000 client connections held open, and with 100
//! HTTP/2 connections × 100 streams uploading to an upstream that never reads (the defaults
//! of `max_requests`, the HTTP/2 windows and the connection caps bound it).
//! `cargo bench --bench footprint` prints the figures (the README's Performance table); it
//! measures, it does not pass or fail.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKENS: usize = 10_000;
const CONNECTIONS: usize = 1_000;
const H2_CONNECTIONS: usize = 100;
const H2_STREAMS: usize = 100;
/// Body each stream tries to upload (more than the stream window).
const UPLOAD: usize = 512 * 1024;

/// An upstream that accepts connections and never reads from them.
async fn stalled_upstream() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    addr
}

fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("footprint: bench");
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(measure());
}

async fn measure() {
    let upstream = TestUpstream::start().await;
    let stalled = stalled_upstream().await;
    let work = Workdir::new();
    let key = TestKey::ec256("k1");
    work.jwks("jwks.json", &[&key]);
    let config = work.write(
        "footprint.yaml",
        &format!(
            "listeners:\n  - address: 127.0.0.1:0\nserver:\n  access_log: false\n  token_cache:\n    max_entries: {TOKENS}\nupstreams:\n  app:\n    url: {}\n  stalled:\n    url: http://{stalled}\nproviders:\n  - name: idp\n    issuer: {ISSUER}\n    audiences: [{AUDIENCE}]\n    algorithms: [ES256]\n    jwks_file: jwks.json\nroutes:\n  - name: api\n    prefix: /api\n    upstream: app\n  - name: stall\n    prefix: /stall\n    upstream: stalled\n    policy: public\n",
            upstream.url()
        ),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["run", "--config", config.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("gateway exited").unwrap();
        if let Some(at) = line.find("address=") {
            break line[at + 8..]
                .split_whitespace()
                .next()
                .unwrap()
                .to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let (idle, _) = rss_kib(pid);

    // Fill the cache with distinct tokens, 32 requests at a time.
    let http = client();
    let url = format!("http://{addr}/api/x");
    let claims: Vec<_> = (0..TOKENS)
        .map(|i| claims_with(json!({"jti": i, "roles": ["reader"], "scope": "api:read"})))
        .collect();
    let tokens: Vec<String> = claims.iter().map(|c| mint(&key, "ES256", c)).collect();
    for chunk in tokens.chunks(32) {
        let mut set = tokio::task::JoinSet::new();
        for token in chunk {
            let (http, url, token) = (http.clone(), url.clone(), token.clone());
            set.spawn(async move {
                http.get(url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap()
                    .status()
            });
        }
        while let Some(status) = set.join_next().await {
            assert_eq!(status.unwrap(), 200);
        }
    }
    let (cached, _) = rss_kib(pid);

    // Hold connections open, each having served one request.
    let mut held = Vec::with_capacity(CONNECTIONS);
    for i in 0..CONNECTIONS {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let request = format!(
            "GET /api/x HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {}\r\n\r\n",
            tokens[i % TOKENS]
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut buf = [0u8; 1024];
        let n = stream.read(&mut buf).await.unwrap();
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
        held.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (loaded, _) = rss_kib(pid);
    drop(held);

    // HTTP/2 uploads to an upstream that never reads.
    let mut drivers = Vec::new();
    let mut refused = 0usize;
    let chunk = bytes::Bytes::from(vec![b'u'; UPLOAD]);
    let mut bodies = Vec::new();
    for _ in 0..H2_CONNECTIONS {
        let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let (sender, connection) = h2::client::handshake(tcp).await.unwrap();
        drivers.push(tokio::spawn(connection));
        let mut responses = Vec::new();
        for i in 0..H2_STREAMS {
            let Ok(mut ready) = sender.clone().ready().await else {
                break;
            };
            let request = http::Request::builder()
                .method("POST")
                .uri(format!("http://{addr}/stall/{i}"))
                .body(())
                .unwrap();
            let Ok((response, mut body)) = ready.send_request(request, false) else {
                break;
            };
            let _ = body.send_data(chunk.clone(), false);
            bodies.push(body);
            responses.push(response);
        }
        for response in responses {
            if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_millis(20), response).await
                && r.status() == 503
            {
                refused += 1;
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (stalled_rss, peak) = rss_kib(pid);
    println!(
        "footprint (RSS, MiB): idle {:.1}; after {TOKENS} cached tokens {:.1}; with {CONNECTIONS} open connections too {:.1}; {H2_CONNECTIONS} HTTP/2 connections x {H2_STREAMS} streams uploading {} KiB each to a stalled upstream {:.1} ({refused} streams refused 503); peak {:.1}",
        idle as f64 / 1024.0,
        cached as f64 / 1024.0,
        loaded as f64 / 1024.0,
        UPLOAD / 1024,
        stalled_rss as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    drop(bodies);
    for driver in drivers {
        driver.abort();
    }
    let _ = child.kill();
    let _ = child.wait();
}
