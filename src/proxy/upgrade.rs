//! HTTP/1.1 `Upgrade` (WebSocket and other protocols a route lists in `upgrades`): once the
//! request is authorized and the upstream answers `101 Switching Protocols`, the two
//! connections are joined and bytes flow both ways until either side closes. HTTP/2 extended
//! CONNECT (RFC 8441) is not offered: the gateway does not advertise it, so clients use HTTP/1.1.

use http::header::{CONNECTION, UPGRADE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Version};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tracing::debug;

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

/// When the upstream switched protocols, joins the client's and the upstream's connections in
/// a task of their own.
pub fn join_if_switched<B>(client: OnUpgrade, upstream: &mut Response<B>) {
    if upstream.status() != StatusCode::SWITCHING_PROTOCOLS {
        return;
    }
    let upstream = hyper::upgrade::on(upstream);
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(both) => both,
            Err(e) => {
                debug!(error = %e, "upgrade failed");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            debug!(error = %e, "upgraded connection ended with an error");
        }
    });
}
