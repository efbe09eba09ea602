//! Step 3: limits on the request itself, checked before routing — URI length and message
//! framing — and the per-route body limit, enforced while the body streams (never buffered).

use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, Uri, Version};
use http_body_util::Limited;
use hyper::body::{Body, Incoming};

use crate::error::RequestError;
use crate::proxy::body::RequestBody;

/// Refuses a request target longer than `max_uri_bytes` (414).
///
/// Framing is settled by the HTTP/1 parser before this point: conflicting `Content-Length`s, a
/// `Transfer-Encoding` other than a final `chunked`, bare CR/LF or NUL in a header and malformed
/// request lines are refused with 400; a message with both `Transfer-Encoding: chunked` and
/// `Content-Length` is framed by the chunked coding alone, its `Content-Length` removed, and the
/// connection closed after the response (RFC 9112 §6.3), so the upstream receives exactly the
/// chunked body and nothing after it is read as another request.
pub fn check_head(uri: &Uri, max_uri_bytes: usize) -> Result<(), RequestError> {
    let uri_len = uri.path_and_query().map_or(1, |pq| pq.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.scheme_str().map_or(0, str::len);
    if uri_len > max_uri_bytes {
        return Err(RequestError::UriTooLong);
    }
    Ok(())
}

/// Step 3, first, for what came over HTTP/1: what hyper lets through but RFC 9112 says a
/// server must refuse — `Transfer-Encoding` on HTTP/1.0 (§6.1), any `Transfer-Encoding` but one
/// `chunked` (a coding applied twice, §6.1), and an HTTP/1.1 request without `Host` (§3.2).
/// Not part of `authorize`: `explain` has no framing.
pub fn check_framing(version: Version, headers: &HeaderMap) -> Result<(), RequestError> {
    if version >= Version::HTTP_2 {
        // HTTP/2 frames its own messages; its `:authority` stands for `Host`.
        return Ok(());
    }
    let mut codings = headers.get_all(TRANSFER_ENCODING).iter().peekable();
    if codings.peek().is_some() {
        if version < Version::HTTP_11 {
            return Err(RequestError::BadFraming(
                "Transfer-Encoding on an HTTP/1.0 request",
            ));
        }
        let mut count = 0;
        for value in codings {
            for coding in value.as_bytes().split(|b| *b == b',') {
                count += 1;
                if !coding.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                    return Err(RequestError::BadFraming(
                        "a Transfer-Encoding other than chunked",
                    ));
                }
            }
        }
        if count > 1 {
            return Err(RequestError::BadFraming("chunked applied more than once"));
        }
    }
    if version == Version::HTTP_11 && !headers.contains_key(HOST) {
        return Err(RequestError::BadHost("an HTTP/1.1 request without Host"));
    }
    Ok(())
}

/// The `Content-Length` the client declared (hyper has refused conflicting or malformed ones).
/// Read before the header rewrite, so nothing a client sends can hide it from the body limit.
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Applies a route's body limit: a declared length above it is refused at once (413);
/// otherwise the body is counted as it streams and the upstream request is aborted when it
/// passes the limit, so a cut body is never sent as a complete one. A body known to be empty
/// becomes `Empty`.
pub fn limit_body(
    declared: Option<u64>,
    body: Incoming,
    max_body_bytes: Option<u64>,
) -> Result<RequestBody, RequestError> {
    if body.is_end_stream() {
        return Ok(RequestBody::Empty);
    }
    let Some(max) = max_body_bytes else {
        return Ok(RequestBody::Streamed(body));
    };
    if declared.is_some_and(|len| len > max) {
        return Err(RequestError::BodyTooLarge);
    }
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    Ok(RequestBody::Limited(Limited::new(body, max)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_length_table() {
        let long: Uri = format!("/{}", "a".repeat(100)).parse().unwrap();
        let short: Uri = "/a?b=c".parse().unwrap();
        let absolute: Uri = format!("http://{}/a", "h".repeat(95)).parse().unwrap();
        assert!(check_head(&short, 100).is_ok());
        assert!(matches!(
            check_head(&long, 100),
            Err(RequestError::UriTooLong)
        ));
        assert!(matches!(
            check_head(&absolute, 100),
            Err(RequestError::UriTooLong)
        ));
    }

    #[test]
    fn framing_table() {
        use Version as V;
        type Headers = &'static [(&'static str, &'static str)];
        let cases: &[(V, Headers, Option<&str>)] = &[
            (V::HTTP_11, &[("host", "a")], None),
            (
                V::HTTP_11,
                &[("host", "a"), ("transfer-encoding", "chunked")],
                None,
            ),
            (
                V::HTTP_11,
                &[("host", "a"), ("transfer-encoding", "Chunked ")],
                None,
            ),
            (V::HTTP_11, &[], Some("bad_host")),
            (V::HTTP_10, &[], None),
            (
                V::HTTP_10,
                &[("transfer-encoding", "chunked")],
                Some("bad_framing"),
            ),
            (
                V::HTTP_11,
                &[("host", "a"), ("transfer-encoding", "chunked, chunked")],
                Some("bad_framing"),
            ),
            (
                V::HTTP_11,
                &[
                    ("host", "a"),
                    ("transfer-encoding", "chunked"),
                    ("transfer-encoding", "chunked"),
                ],
                Some("bad_framing"),
            ),
            (
                V::HTTP_11,
                &[("host", "a"), ("transfer-encoding", "gzip, chunked")],
                Some("bad_framing"),
            ),
            (V::HTTP_2, &[], None),
        ];
        for (version, headers, want) in cases {
            let mut map = HeaderMap::new();
            for (name, value) in *headers {
                map.append(
                    http::HeaderName::from_static(name),
                    http::HeaderValue::from_static(value),
                );
            }
            let got = match check_framing(*version, &map) {
                Ok(()) => None,
                Err(RequestError::BadHost(_)) => Some("bad_host"),
                Err(RequestError::BadFraming(_)) => Some("bad_framing"),
                Err(e) => panic!("{e}"),
            };
            assert_eq!(got, *want, "{version:?} {headers:?}");
        }
    }
}
