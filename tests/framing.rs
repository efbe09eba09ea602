//! Hostile framing over raw TCP: every ambiguous message is refused with 400 before anything
//! reaches the upstream, and no second (smuggled) request ever does. Also the URI and body
//! limits (414, 413 without buffering).

mod common;

use std::time::Duration;

use common::*;

async fn gateway() -> (TestGateway, TestUpstream) {
    let work = Workdir::new();
    let upstream = TestUpstream::start().await;
    let gw = GatewayYaml::new()
        .server("max_uri_bytes: 512")
        .upstream("app", &upstream.url())
        .public_route("open", "/", "app")
        .routes("- name: small\n  prefix: /small\n  upstream: app\n  policy: public\n  max_body_bytes: 1000\n")
        .start_in(work)
        .await;
    (gw, upstream)
}

async fn send(gw: &TestGateway, raw: &[u8]) -> String {
    raw_exchange(gw.addr(0), raw, Duration::from_secs(5)).await
}

#[tokio::test]
async fn ambiguous_framing_is_refused_and_nothing_is_smuggled() {
    let (gw, upstream) = gateway().await;
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    let cases: Vec<(&str, String)> = vec![
        (
            "two different Content-Length",
            format!(
                "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nabc{smuggled}"
            ),
        ),
        (
            "Content-Length list",
            format!("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 40\r\n\r\nabc{smuggled}"),
        ),
        (
            "non-chunked coding",
            format!("POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n{smuggled}"),
        ),
        (
            "obfuscated coding",
            format!(
                "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n{smuggled}"
            ),
        ),
        (
            "chunked not last",
            format!(
                "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n{smuggled}"
            ),
        ),
        (
            "two TE headers, chunked first",
            format!(
                "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n0\r\n\r\n{smuggled}"
            ),
        ),
        (
            "bad chunk size",
            format!(
                "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{smuggled}"
            ),
        ),
        (
            "bare CR inside a header value",
            format!("GET /a HTTP/1.1\r\nHost: x\r\nX-A: 1\rX-B: 2\r\n\r\n{smuggled}"),
        ),
        (
            "NUL in a header value",
            format!("GET /a HTTP/1.1\r\nHost: x\r\nX-A: 1\0\r\n\r\n{smuggled}"),
        ),
        (
            "space before the colon",
            format!("GET /a HTTP/1.1\r\nHost: x\r\nContent-Length : 40\r\n\r\n{smuggled}"),
        ),
        (
            "three-part request line",
            format!("GET /a HTTP/1.1 extra\r\nHost: x\r\n\r\n{smuggled}"),
        ),
        (
            "bad method",
            format!("G@T /a HTTP/1.1\r\nHost: x\r\n\r\n{smuggled}"),
        ),
        (
            "bad version",
            format!("GET /a HTTP/9.9\r\nHost: x\r\n\r\n{smuggled}"),
        ),
    ];
    for (what, request) in &cases {
        let before = upstream.count();
        let response = send(&gw, request.as_bytes()).await;
        assert!(response.starts_with("HTTP/1.1 400"), "{what}: {response}");
        assert_eq!(
            response.matches("HTTP/1.1").count(),
            1,
            "{what}: a second response means the rest was parsed as a request: {response}"
        );
        assert_eq!(upstream.count(), before, "{what}: reached the upstream");
    }
    assert!(
        upstream
            .requests()
            .iter()
            .all(|r| !r.target.contains("smuggled"))
    );
}

/// A bare LF ends a header line (RFC 9112 §2.2 lets a recipient accept it); the upstream gets
/// the headers re-serialised with CRLF, so it cannot read them any other way.
#[tokio::test]
async fn a_bare_lf_is_a_line_end_and_is_forwarded_as_crlf() {
    let (gw, upstream) = gateway().await;
    let response = send(
        &gw,
        b"GET /a HTTP/1.1\r\nHost: x\r\nX-A: 1\nX-B: 2\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let got = upstream.requests().pop().unwrap();
    assert_eq!(got.headers["x-a"], "1");
    assert_eq!(got.headers["x-b"], "2");
}

/// Both `Transfer-Encoding: chunked` and `Content-Length` (in either order): RFC 9112 §6.3 —
/// the chunked coding frames the message, `Content-Length` is dropped before forwarding, and the
/// connection closes after the response, so what follows is never read as a request.
#[tokio::test]
async fn chunked_wins_over_content_length_and_the_connection_closes() {
    let (gw, upstream) = gateway().await;
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    for head in [
        "Content-Length: 4\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: chunked\r\nContent-Length: 40",
    ] {
        let before = upstream.count();
        let request =
            format!("POST /a HTTP/1.1\r\nHost: x\r\n{head}\r\n\r\n3\r\nabc\r\n0\r\n\r\n{smuggled}");
        let response = send(&gw, request.as_bytes()).await;
        assert!(response.starts_with("HTTP/1.1 200"), "{head}: {response}");
        assert!(
            response.to_ascii_lowercase().contains("connection: close"),
            "{head}: {response}"
        );
        assert_eq!(response.matches("HTTP/1.1").count(), 1, "{response}");
        assert_eq!(
            upstream.count(),
            before + 1,
            "{head}: exactly one request upstream"
        );
        let got = upstream.requests().pop().unwrap();
        assert_eq!(got.target, "/a");
        assert_eq!(got.body, "abc".as_bytes());
        assert!(
            got.headers.get("content-length").is_none_or(|v| v == "3"),
            "{head}"
        );
    }
}

#[tokio::test]
async fn a_request_inside_a_body_stays_body() {
    let (gw, upstream) = gateway().await;
    let inner = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    let request = format!(
        "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{inner}\r\n0\r\n\r\n",
        inner.len()
    );
    let response = send(&gw, request.as_bytes()).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let got = upstream.requests();
    assert_eq!(got.len(), 1, "exactly one request upstream");
    assert_eq!(got[0].target, "/a");
    assert_eq!(got[0].body, inner.as_bytes());
}

#[tokio::test]
async fn long_targets_get_414() {
    let (gw, upstream) = gateway().await;
    let long = format!("/{}", "a".repeat(600));
    let r = send(
        &gw,
        format!("GET {long} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 414"), "{r}");
    assert!(r.contains("uri_too_long"), "{r}");
    let ok = format!("/{}", "a".repeat(400));
    let r = send(
        &gw,
        format!("GET {ok} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn route_body_limit_is_413_without_buffering() {
    let (gw, upstream) = gateway().await;
    // Declared too large: refused before anything is forwarded.
    let r = send(
        &gw,
        b"POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    assert!(r.contains("body_too_large"), "{r}");
    assert_eq!(upstream.count(), 0);

    // Streamed (chunked, no length): counted on the way and cut at the limit.
    let mut chunked = String::from(
        "POST /small/upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    for _ in 0..6 {
        chunked.push_str(&format!("1f4\r\n{}\r\n", "x".repeat(500)));
    }
    chunked.push_str("0\r\n\r\n");
    let r = send(&gw, chunked.as_bytes()).await;
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    assert!(upstream.requests().iter().all(|r| r.body.len() <= 1000));

    // Within the limit, and on routes without one, bodies pass whole.
    let response = client()
        .post(gw.url(0, "/small/upload"))
        .body(vec![b'y'; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = client()
        .post(gw.url(0, "/other"))
        .body(vec![b'z'; 5000])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(upstream.requests().last().unwrap().body.len(), 5000);
}

/// A body the client sends in two parts, the limit falling between them: the declared length
/// is read before the header rewrite (so `Connection: content-length` cannot hide it), and a
/// chunked body cut at the limit is never forwarded as a complete one.
#[tokio::test]
async fn an_over_limit_body_is_never_forwarded_cut_short() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (gw, upstream) = gateway().await;
    let heads = [
        "POST /small HTTP/1.1\r\nHost: x\r\nConnection: content-length\r\nContent-Length: 1200\r\n\r\n",
        "POST /small HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
    ];
    for (i, head) in heads.iter().enumerate() {
        let chunked = i == 1;
        let part = |n: usize| {
            if chunked {
                format!("{n:x}\r\n{}\r\n", "p".repeat(n))
            } else {
                "p".repeat(n)
            }
        };
        let mut stream = tokio::net::TcpStream::connect(gw.addr(0)).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        // Exactly the limit first: a body cut here looks complete to an upstream told its length.
        stream.write_all(part(1000).as_bytes()).await.unwrap();
        // The rest goes as a separate write once the gateway has answered (a declared length
        // over the limit is refused at once), or at the latest after a short deadline (a
        // chunked body is answered only when it passes the limit).
        let mut out = vec![0u8; 4096];
        let early =
            match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut out)).await {
                Ok(Ok(n)) => n,
                _ => 0,
            };
        out.truncate(early);
        let mut rest = part(200);
        if chunked {
            rest.push_str("0\r\n\r\n");
        }
        let _ = stream.write_all(rest.as_bytes()).await;
        let mut tail = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut tail)).await;
        out.extend_from_slice(&tail);
        let response = String::from_utf8_lossy(&out);
        assert!(response.starts_with("HTTP/1.1 413"), "{head}: {response}");
        let cut = upstream
            .requests()
            .into_iter()
            .filter(|r| r.body_complete && !r.body.is_empty() && r.body.len() < 1200)
            .count();
        assert_eq!(cut, 0, "{head}: a cut body was forwarded as complete");
    }
}
