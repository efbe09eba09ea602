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
    let yaml = format!(
        r#"
listeners:
  - address: 127.0.0.1:0
upstreams:
  echo:
    url: http://{echo}
providers:
  - name: main
    issuer: {ISSUER}
    audiences: [{AUDIENCE}]
    algorithms: [RS256]
    jwks_file: jwks.json
routes:
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
"#
    );
    let gw = TestGateway::start(work, &yaml).await;
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
    let yaml = format!(
        "listeners:\n  - address: 127.0.0.1:0\nserver:\n  max_connections: 1\n  idle_timeout: 600ms\nupstreams:\n  echo:\n    url: http://{echo}\nroutes:\n  - name: live\n    prefix: /\n    upstream: echo\n    upgrades: [websocket]\n    policy: public\n"
    );
    let gw = TestGateway::start(Workdir::new(), &yaml).await;
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
