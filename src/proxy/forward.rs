//! Step 10: send the request upstream on the pooled client and wait, bounded, for its head.

use http::uri::PathAndQuery;
use http::{Request, Response, Uri, Version};
use hyper::body::Incoming;

use super::client::Upstream;
use crate::error::{RequestError, UpstreamError};
use crate::http::limits::{BodyFault, RequestBody, body_fault};

/// Forwards `request` to `upstream` at `path_and_query`; bodies stream in both directions.
/// A body that passes the route's limit while streaming aborts the request (413); one that
/// cannot be read from the client does too (400).
pub async fn forward(
    upstream: &Upstream,
    mut request: Request<RequestBody>,
    path_and_query: PathAndQuery,
) -> Result<Response<Incoming>, RequestError> {
    let uri = Uri::builder()
        .scheme(upstream.scheme.clone())
        .authority(upstream.authority.clone())
        .path_and_query(path_and_query)
        .build()
        .map_err(|_| UpstreamError::Protocol)?;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    match tokio::time::timeout(
        upstream.settings.response_timeout,
        upstream.client.request(request),
    )
    .await
    {
        Err(_) => Err(UpstreamError::Timeout.into()),
        Ok(Err(e)) if e.is_connect() => Err(UpstreamError::Connect.into()),
        Ok(Err(e)) => match body_fault(&e) {
            Some(BodyFault::TooLarge) => Err(RequestError::BodyTooLarge),
            Some(BodyFault::Broken) => Err(RequestError::BadBody),
            None => Err(UpstreamError::Protocol.into()),
        },
        Ok(Ok(response)) => Ok(response),
    }
}
