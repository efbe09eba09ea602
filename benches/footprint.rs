//! Memory footprint of the real binary: resident memory after 10,000 distinct tokens went
//! through the verified-token cache and with 1,000 client connections held open.
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
    let work = Workdir::new();
    let key = TestKey::ec256("k1");
    work.jwks("jwks.json", &[&key]);
    let config = work.write(
        "footprint.yaml",
        &format!(
            "listeners:\n  - address: 127.0.0.1:0\nserver:\n  access_log: false\n  token_cache:\n    max_entries: {TOKENS}\nupstreams:\n  app:\n    url: {}\nproviders:\n  - name: idp\n    issuer: {ISSUER}\n    audiences: [{AUDIENCE}]\n    algorithms: [ES256]\n    jwks_file: jwks.json\nroutes:\n  - name: api\n    prefix: /api\n    upstream: app\n",
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
    let (loaded, peak) = rss_kib(pid);
    println!(
        "footprint (RSS, MiB): idle {:.1}; after {TOKENS} cached tokens {:.1}; with {CONNECTIONS} open connections too {:.1}; peak {:.1}",
        idle as f64 / 1024.0,
        cached as f64 / 1024.0,
        loaded as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    drop(held);
    let _ = child.kill();
    let _ = child.wait();
}
