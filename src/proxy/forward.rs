//! Step 10: send the request to one of the upstream's targets over its connection pool and
//! wait, bounded, for its head. A connect failure of an idempotent request without a body is tried
//! again on another target; nothing else is retried.

use http::header::HOST;
use http::uri::PathAndQuery;
use http::{HeaderMap, Method, Request, Response, Uri, Version};
use hyper::body::{Body, Incoming};

use super::body::{BodyFault, RequestBody, body_fault};
use super::client::{HostRewrite, Upstream};
use super::pool::SendError;
use crate::error::{RequestError, UpstreamError};

/// Forwards `request` to `upstream` at `path_and_query`; bodies stream in both directions.
/// A body that passes the route's limit while streaming aborts the request (413); one that
/// cannot be read from the client does too (400).
pub async fn forward(
    upstream: &Upstream,
    request: Request<RequestBody>,
    path_and_query: PathAndQuery,
) -> Result<Response<Incoming>, RequestError> {
    let retryable = request.body().is_end_stream() && is_idempotent(request.method());
    let attempts = if retryable {
        1 + upstream
            .spec
            .settings
            .retries
            .min(upstream.targets.len() as u32 - 1)
    } else {
        1
    };
    let http2 = upstream.spec.settings.http2;
    let mut outgoing = request;
    *outgoing.version_mut() = if http2 {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    };
    let client_sent_host = outgoing.headers().contains_key(HOST);
    let mut avoid = None;
    for attempt in 1..=attempts {
        let i = upstream.pick(avoid);
        let target = &upstream.targets[i];
        // HTTP/1.1 gets origin-form (`/path?query`), HTTP/2 the absolute URI it takes
        // `:scheme` and `:authority` from.
        *outgoing.uri_mut() = if http2 {
            Uri::builder()
                .scheme(upstream.spec.scheme.clone())
                .authority(target.authority.clone())
                .path_and_query(path_and_query.clone())
                .build()
                .map_err(|_| UpstreamError::Protocol)?
        } else {
            Uri::from(path_and_query.clone())
        };
        set_host(
            outgoing.headers_mut(),
            &upstream.spec.settings.host,
            &target.host,
            http2,
            client_sent_host,
        );
        let _in_flight = upstream.begin(i);
        let result = tokio::time::timeout(
            upstream.spec.settings.response_timeout,
            upstream.send(i, outgoing),
        )
        .await;
        match result {
            Err(_) => return Err(UpstreamError::Timeout.into()),
            Ok(Ok(response)) => {
                upstream.succeeded(i);
                return Ok(response);
            }
            Ok(Err(SendError::Connect(unsent))) => {
                upstream.failed(i);
                if attempt == attempts {
                    return Err(UpstreamError::Connect.into());
                }
                // Nothing was sent: the same request goes to the next target.
                outgoing = *unsent;
                avoid = Some(i);
            }
            Ok(Err(SendError::Overloaded)) => return Err(UpstreamError::Overloaded.into()),
            Ok(Err(SendError::Request(e))) => {
                return match body_fault(&e) {
                    Some(BodyFault::TooLarge) => Err(RequestError::BodyTooLarge),
                    Some(BodyFault::Broken) => Err(RequestError::BadBody),
                    None => Err(UpstreamError::Protocol.into()),
                };
            }
        }
    }
    Err(UpstreamError::Connect.into())
}

/// RFC 9110 §9.2.2 idempotent methods.
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// Sets `Host` for `target` as the upstream's `host` setting says. An HTTP/1.1 request must
/// have one: when the client sent none (HTTP/2 clients send `:authority`), the target's is
/// used.
fn set_host(
    headers: &mut HeaderMap,
    rewrite: &HostRewrite,
    target: &http::HeaderValue,
    http2: bool,
    client_sent_host: bool,
) {
    match rewrite {
        HostRewrite::Preserve => {
            if !http2 && !client_sent_host {
                headers.insert(HOST, target.clone());
            }
        }
        HostRewrite::Target => {
            headers.insert(HOST, target.clone());
        }
        HostRewrite::Fixed(value) => {
            headers.insert(HOST, value.clone());
        }
    }
}
