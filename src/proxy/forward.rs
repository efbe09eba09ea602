//! Step 10: send the request upstream on the pooled client and wait, bounded, for its head.

use http::uri::PathAndQuery;
use http::{Request, Response, Uri, Version};
use hyper::body::Incoming;

use super::client::Upstream;
use crate::error::UpstreamError;

/// Forwards `request` to `upstream` at `path_and_query`; bodies stream in both directions.
pub async fn forward(
    upstream: &Upstream,
    mut request: Request<Incoming>,
    path_and_query: PathAndQuery,
) -> Result<Response<Incoming>, UpstreamError> {
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
        Err(_) => Err(UpstreamError::Timeout),
        Ok(Err(e)) if e.is_connect() => Err(UpstreamError::Connect),
        Ok(Err(_)) => Err(UpstreamError::Protocol),
        Ok(Ok(response)) => Ok(response),
    }
}
