//! WebSocket through the gateway: the upgrade is authorized like any request, then the two
//! connections are joined; without a token (or on a route without `upgrades`) nothing is
//! upgraded.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A real WebSocket echo server (tungstenite does the handshake).
async fn echo_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(message)) = ws.next().await {
                    if message.is_text() || message.is_binary() {
                        let _ = ws.send(message).await;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn websocket_echo_after_auth_and_refused_without_token() {
    let echo = echo_server().await;
    let work = Workdir::new();
    let key = TestKey::rsa("rsa-1");
    work.jwks("jwks.json", &[&key]);
    let gw = GatewayYaml::new()
        .upstream("echo", &format!("http://{echo}"))
        .file_provider("main", ISSUER, "RS256", "jwks.json")
        .routes(
            r#"
- name: live
  prefix: /live
  upstream: echo
  upgrades: [websocket]
  require:
    claim: roles
    contains: viewer
- name: no-upgrades
  prefix: /plain
  upstream: echo
"#,
        )
        .start_in(work)
        .await;
    let viewer = mint(&key, "RS256", &claims_with(json!({"roles": ["viewer"]})));
    let other = mint(&key, "RS256", &claims_with(json!({"roles": ["guest"]})));
    let connect = |path: &str, token: Option<&str>| {
        let mut request = format!("ws://{}{path}", gw.addr(0))
            .into_client_request()
            .unwrap();
        if let Some(token) = token {
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        let addr = gw.addr(0);
        async move {
            let stream = TcpStream::connect(addr).await.unwrap();
            tokio_tungstenite::client_async(request, stream).await
        }
    };

    let (mut ws, response) = connect("/live/feed", Some(&viewer)).await.unwrap();
    assert_eq!(response.status(), 101);
    for text in ["hello", "through the gateway"] {
        ws.send(Message::text(text)).await.unwrap();
        let back = ws.next().await.unwrap().unwrap();
        assert_eq!(back.into_text().unwrap().as_str(), text);
    }
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap().into_data().as_ref(),
        &[0u8, 1, 2, 255]
    );
    ws.close(None).await.unwrap();

    for (path, token, status) in [
        ("/live/feed", None, 401),
        ("/live/feed", Some(other.as_str()), 403),
        ("/plain/feed", Some(viewer.as_str()), 502),
    ] {
        match connect(path, token).await {
            Ok(_) => panic!("{path} upgraded"),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                // Without `upgrades` the request goes out as a plain GET, without Upgrade; the
                // echo server drops such a handshake, which the gateway reports as 502.
                assert_eq!(response.status(), status, "{path}");
            }
            Err(e) => panic!("{path}: {e}"),
        }
    }
}

/// An upgraded connection holds a connection slot and is closed after `idle_timeout`.
#[tokio::test]
async fn idle_tunnels_close_and_count_against_the_connection_cap() {
    let echo = echo_server().await;
    let gw = GatewayYaml::new()
        .server("max_connections: 1\nidle_timeout: 600ms")
        .upstream("echo", &format!("http://{echo}"))
        .routes("- name: live\n  prefix: /\n  upstream: echo\n  upgrades: [websocket]\n  policy: public\n")
        .start()
        .await;
    let request = format!("ws://{}/live", gw.addr(0))
        .into_client_request()
        .unwrap();
    let stream = TcpStream::connect(gw.addr(0)).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap();
    ws.send(Message::text("ping")).await.unwrap();
    assert_eq!(
        ws.next()
            .await
            .unwrap()
            .unwrap()
            .into_text()
            .unwrap()
            .as_str(),
        "ping"
    );

    // The tunnel holds the only slot: another client waits until the idle tunnel is closed.
    let started = std::time::Instant::now();
    let other = tokio::spawn(async move {
        let stream = TcpStream::connect(gw.addr(0)).await.unwrap();
        let request = format!("ws://{}/live", gw.addr(0))
            .into_client_request()
            .unwrap();
        let result = tokio_tungstenite::client_async(request, stream)
            .await
            .is_ok();
        (result, gw)
    });
    let ended = tokio::time::timeout(std::time::Duration::from_secs(5), ws.next()).await;
    assert!(
        matches!(ended, Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_))))),
        "the idle tunnel was not closed: {ended:?}"
    );
    let (ok, _gw) = other.await.unwrap();
    assert!(ok, "the waiting client was served once the slot was free");
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(400),
        "the second client did not wait for the tunnel's slot"
    );
}

/// How the raw upstream answers an upgrade.
#[derive(Clone, Copy)]
enum Answer {
    /// `101` with the right `Sec-WebSocket-Accept`, then echo.
    Right,
    /// `101` with an accept key for another handshake.
    WrongAccept,
    /// `101` switching to a protocol nobody asked for.
    OtherProtocol,
}

/// An upstream that records the request head it got and answers it as `answer` says.
async fn raw_upgrade_upstream(
    answer: Answer,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let key = head
                    .lines()
                    .find_map(|l| l.strip_prefix("sec-websocket-key: "))
                    .unwrap_or("")
                    .to_string();
                log.lock().unwrap().push(head);
                let accept = match answer {
                    Answer::WrongAccept => "AAAAAAAAAAAAAAAAAAAAAAAAAAA=".to_string(),
                    _ => portcullis::proxy::upgrade::websocket_accept(key.as_bytes()),
                };
                let protocol = match answer {
                    Answer::OtherProtocol => "h2c",
                    _ => "websocket",
                };
                let response = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: {protocol}\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                );
                if stream.write_all(response.as_bytes()).await.is_err() {
                    return;
                }
                let mut buf = [0u8; 1024];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 || stream.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, heads)
}

async fn upgrade_gateway(upstream: std::net::SocketAddr, key: &TestKey) -> TestGateway {
    let work = Workdir::new();
    work.jwks("jwks.json", &[key]);
    GatewayYaml::new()
        .upstream("raw", &format!("http://{upstream}"))
        .providers(&format!(
            r#"
- name: main
  issuer: {ISSUER}
  audiences: [{AUDIENCE}]
  algorithms: [RS256]
  jwks_file: jwks.json
  leeway: 0s
"#
        ))
        .routes(
            r#"
- name: live
  prefix: /live
  upstream: raw
  upgrades: [websocket]
- name: expiring
  prefix: /expiring
  upstream: raw
  upgrades: [websocket]
  close_at_token_expiry: true
"#,
        )
        .start_in(work)
        .await
}

fn upgrade_request(gw: &TestGateway, path: &str, token: &str, upgrade: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: {upgrade}\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        gw.addr(0)
    )
}

/// Only the validated protocol goes upstream (not `websocket, h2c`, no `HTTP2-Settings`), and
/// a `101` is relayed only when it switches to that protocol with the right accept key.
#[tokio::test]
async fn only_the_asked_upgrade_is_forwarded_and_joined() {
    let key = TestKey::rsa("rsa-1");
    let token = mint(&key, "RS256", &claims());
    for (answer, want) in [
        (Answer::Right, "HTTP/1.1 101"),
        (Answer::WrongAccept, "HTTP/1.1 502"),
        (Answer::OtherProtocol, "HTTP/1.1 502"),
    ] {
        let (upstream, heads) = raw_upgrade_upstream(answer).await;
        let gw = upgrade_gateway(upstream, &key).await;
        let request = upgrade_request(&gw, "/live", &token, "websocket, h2c");
        let response = raw_exchange(
            gw.addr(0),
            request.as_bytes(),
            std::time::Duration::from_millis(500),
        )
        .await;
        assert!(response.starts_with(want), "{response}");
        if want.ends_with("502") {
            assert!(response.contains("upstream_bad_upgrade"), "{response}");
        }
        let head = heads
            .lock()
            .unwrap()
            .pop()
            .expect("the upstream got the request");
        let lower = head.to_ascii_lowercase();
        assert!(lower.contains("\r\nupgrade: websocket\r\n"), "{head}");
        assert!(
            !lower.contains("h2c") && !lower.contains("http2-settings"),
            "{head}"
        );
    }
}

/// With `close_at_token_expiry` a tunnel ends when its token does; without it, it stays open.
#[tokio::test]
async fn tunnel_closes_at_token_expiry() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let key = TestKey::rsa("rsa-1");
    let (upstream, _) = raw_upgrade_upstream(Answer::Right).await;
    let gw = upgrade_gateway(upstream, &key).await;
    let token = mint(&key, "RS256", &claims_with(json!({"exp": now() + 2})));
    let mut open = Vec::new();
    for path in ["/expiring", "/live"] {
        let mut stream = TcpStream::connect(gw.addr(0)).await.unwrap();
        let request = upgrade_request(&gw, path, &token, "websocket");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut head = vec![0u8; 1024];
        let n = stream.read(&mut head).await.unwrap();
        assert!(head[..n].starts_with(b"HTTP/1.1 101"), "{path}");
        stream.write_all(b"ping").await.unwrap();
        let mut echo = [0u8; 4];
        stream.read_exact(&mut echo).await.unwrap();
        assert_eq!(&echo, b"ping");
        open.push(stream);
    }
    // The expiring tunnel is closed within a few seconds of exp; the other one still echoes.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(
        std::time::Duration::from_secs(8),
        open[0].read_to_end(&mut rest),
    )
    .await;
    assert!(closed.is_ok(), "the tunnel outlived its token");
    open[1].write_all(b"pong").await.unwrap();
    let mut echo = [0u8; 4];
    open[1].read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo, b"pong");
}
