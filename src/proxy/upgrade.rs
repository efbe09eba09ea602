//! HTTP/1.1 `Upgrade` (WebSocket and other protocols a route lists in `upgrades`): once the
//! request is authorized and the upstream answers `101 Switching Protocols`, the two
//! connections are joined and bytes flow both ways until either side closes. HTTP/2 extended
//! CONNECT (RFC 8441) is not offered: the gateway does not advertise it, so clients use HTTP/1.1.

use http::header::{CONNECTION, SEC_WEBSOCKET_ACCEPT, UPGRADE};
use http::{HeaderMap, HeaderValue, Response, Version};
use hyper::upgrade::OnUpgrade;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::sync::OwnedSemaphorePermit;
use tracing::debug;

use crate::conn::{Activity, Tracked};

/// The protocol a request asks to switch to, if the route allows it: HTTP/1.1, `Connection`
/// lists `upgrade`, and the first protocol of `Upgrade` is in `allowed` (lower-case). Only that
/// protocol is forwarded (`websocket, h2c` becomes `websocket`).
pub fn requested(version: Version, headers: &HeaderMap, allowed: &[String]) -> Option<HeaderValue> {
    if allowed.is_empty() || version != Version::HTTP_11 {
        return None;
    }
    if !lists_upgrade(headers) {
        return None;
    }
    let value = headers.get(UPGRADE)?;
    let first = value.to_str().ok()?.split(',').next()?.trim();
    let name = first.split('/').next()?;
    if !allowed.iter().any(|a| a.eq_ignore_ascii_case(name)) {
        return None;
    }
    HeaderValue::from_str(first).ok()
}

/// Whether a `101` answers the upgrade that was asked for: its `Upgrade` names the same
/// protocol and, for WebSocket, `Sec-WebSocket-Accept` is the hash of the request's key
/// (RFC 6455 §4.2.2); a `101` without it may come from a server that never read the handshake.
pub fn accepts(response: &HeaderMap, protocol: &HeaderValue, key: Option<&HeaderValue>) -> bool {
    let asked = protocol.to_str().unwrap_or("");
    let asked_name = asked.split('/').next().unwrap_or("");
    let same = response
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim().eq_ignore_ascii_case(asked) || v.trim().eq_ignore_ascii_case(asked_name)
        });
    if !same {
        return false;
    }
    if !asked_name.eq_ignore_ascii_case("websocket") {
        return true;
    }
    let (Some(key), Some(accept)) = (key, response.get(SEC_WEBSOCKET_ACCEPT)) else {
        return false;
    };
    accept.as_bytes() == websocket_accept(key.as_bytes()).as_bytes()
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`: base64 of SHA-1 over the key and the
/// RFC 6455 GUID.
pub fn websocket_accept(key: &[u8]) -> String {
    use base64::Engine;
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY);
    context.update(key);
    context.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(context.finish().as_ref())
}

fn lists_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Joins the client's and the upstream's connections after the upstream switched protocols
/// (101), in a task of their own. The tunnel holds the client connection's slot (so it counts
/// against `max_connections` and shutdown waits for it) and is closed after `idle_timeout`
/// without a byte in either direction, or once `lifetime` has passed (the route's
/// `close_at_token_expiry`).
pub fn join<B>(
    client: OnUpgrade,
    upstream: &mut Response<B>,
    slot: Option<OwnedSemaphorePermit>,
    idle_timeout: Duration,
    lifetime: Option<Duration>,
) {
    let upstream = hyper::upgrade::on(upstream);
    tokio::spawn(async move {
        // The client connection's slot, held until the tunnel ends.
        let _slot = slot;
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(both) => both,
            Err(e) => {
                debug!(error = %e, "upgrade failed");
                return;
            }
        };
        let activity = Activity::new();
        let mut client = Tracked::new(TokioIo::new(client), activity.clone());
        let mut upstream = TokioIo::new(upstream);
        let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
        tokio::pin!(copy);
        let mut check = tokio::time::interval((idle_timeout / 4).max(Duration::from_millis(50)));
        let expiry = tokio::time::sleep(lifetime.unwrap_or(Duration::from_secs(86_400)));
        tokio::pin!(expiry);
        loop {
            tokio::select! {
                _ = &mut expiry, if lifetime.is_some() => {
                    debug!("closing upgraded connection: its token expired");
                    return;
                }
                result = &mut copy => {
                    if let Err(e) = result {
                        debug!(error = %e, "upgraded connection ended with an error");
                    }
                    return;
                }
                _ = check.tick() => {
                    if activity.idle_for() >= idle_timeout {
                        debug!("closing idle upgraded connection");
                        return;
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn websocket_accept_matches_rfc_6455_example() {
        // RFC 6455 §1.3.
        assert_eq!(
            websocket_accept(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn requested_table() {
        let ws = vec!["websocket".to_string()];
        let up = |pairs: &[(&'static str, &'static str)]| {
            requested(Version::HTTP_11, &headers(pairs), &ws)
                .map(|v| v.to_str().unwrap().to_string())
        };
        assert_eq!(
            up(&[("connection", "Upgrade"), ("upgrade", "websocket")]).as_deref(),
            Some("websocket")
        );
        // Only the validated protocol is forwarded.
        assert_eq!(
            up(&[("connection", "upgrade"), ("upgrade", "WebSocket, h2c")]).as_deref(),
            Some("WebSocket")
        );
        assert_eq!(
            up(&[("connection", "upgrade"), ("upgrade", "h2c, websocket")]),
            None
        );
        assert_eq!(up(&[("upgrade", "websocket")]), None);
        assert_eq!(
            requested(
                Version::HTTP_2,
                &headers(&[("connection", "upgrade"), ("upgrade", "websocket")]),
                &ws
            ),
            None
        );
    }

    #[test]
    fn accepts_table() {
        let key = HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ==");
        let ws = HeaderValue::from_static("websocket");
        let good = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
        let cases: &[(&[(&'static str, &'static str)], bool)] = &[
            (
                &[("upgrade", "websocket"), ("sec-websocket-accept", good)],
                true,
            ),
            (
                &[("upgrade", "WebSocket"), ("sec-websocket-accept", good)],
                true,
            ),
            (&[("upgrade", "websocket")], false),
            (
                &[("upgrade", "websocket"), ("sec-websocket-accept", "AAAA")],
                false,
            ),
            (&[("upgrade", "h2c"), ("sec-websocket-accept", good)], false),
            (&[("sec-websocket-accept", good)], false),
        ];
        for (pairs, want) in cases {
            assert_eq!(
                accepts(&headers(pairs), &ws, Some(&key)),
                *want,
                "{pairs:?}"
            );
        }
        // Other protocols need the same protocol back only.
        let other = HeaderValue::from_static("tls/1.0");
        assert!(accepts(&headers(&[("upgrade", "TLS/1.0")]), &other, None));
        assert!(!accepts(
            &headers(&[("upgrade", "websocket")]),
            &other,
            None
        ));
    }
}
