//! HTTP/1.1 `Upgrade` (WebSocket and other protocols a route lists in `upgrades`): once the
//! request is authorized and the upstream answers `101 Switching Protocols`, the two
//! connections are joined and bytes flow both ways until either side closes. HTTP/2 extended
//! CONNECT (RFC 8441) is not offered: the gateway does not advertise it, so clients use HTTP/1.1.

use http::header::{CONNECTION, UPGRADE};
use http::{HeaderMap, HeaderValue, Request, Response, Version};
use hyper::upgrade::OnUpgrade;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::sync::OwnedSemaphorePermit;
use tracing::debug;

use crate::server::idle::{Activity, Tracked};

/// The protocol a request asks to switch to, if the route allows it: HTTP/1.1, `Connection`
/// lists `upgrade`, and the first protocol of `Upgrade` is in `allowed` (lower-case).
pub fn requested<B>(request: &Request<B>, allowed: &[String]) -> Option<HeaderValue> {
    if allowed.is_empty() || request.version() != Version::HTTP_11 {
        return None;
    }
    let headers = request.headers();
    if !lists_upgrade(headers) {
        return None;
    }
    let value = headers.get(UPGRADE)?;
    let first = value.to_str().ok()?.split(',').next()?.trim();
    let name = first.split('/').next()?;
    allowed
        .iter()
        .any(|a| a.eq_ignore_ascii_case(name))
        .then(|| value.clone())
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
/// without a byte in either direction.
pub fn join<B>(
    client: OnUpgrade,
    upstream: &mut Response<B>,
    slot: Option<OwnedSemaphorePermit>,
    idle_timeout: Duration,
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
        loop {
            tokio::select! {
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
