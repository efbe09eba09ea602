//! Step 3½: what the request is for — its host and normalised path — read once, the same way
//! for routing, forwarding and `explain`.

use std::borrow::Cow;

use http::header::HOST;
use http::uri::Authority;
use http::{HeaderMap, HeaderValue, Uri};

use crate::error::RequestError;
use crate::routes::path::{self, PathOptions};

/// The host and path a request is routed on.
#[derive(Debug, Clone)]
pub struct Target<'r> {
    /// Host name without port or trailing dot, as sent (compared case-insensitively); `None`
    /// when the request names none.
    pub host: Option<&'r str>,
    /// The `Host` value to forward: the `Host` header, else the request target's authority.
    pub host_header: Option<HeaderValue>,
    /// The normalised path: matched, and forwarded.
    pub path: Cow<'r, str>,
}

/// Reads the target of a request. The host comes from the request target's authority
/// (absolute-form or HTTP/2 `:authority`), else from `Host`; more than one `Host`, or a `Host`
/// that names another host than the authority, is refused, so the host routed on is the host
/// the backend sees.
pub fn read<'r>(
    uri: &'r Uri,
    headers: &'r HeaderMap,
    options: &PathOptions,
) -> Result<Target<'r>, RequestError> {
    let mut hosts = headers.get_all(HOST).iter();
    let header = hosts.next();
    if hosts.next().is_some() {
        return Err(RequestError::BadHost("more than one Host header"));
    }
    let header_host = match header {
        None => None,
        Some(value) => Some(host_of(value.as_bytes())?),
    };
    let (host, host_header) = match (uri.authority(), header_host) {
        (Some(authority), Some(from_header)) => {
            let from_target = trim_dot(authority.host());
            if !from_target.eq_ignore_ascii_case(from_header) {
                return Err(RequestError::BadHost(
                    "the Host header names another host than the request target",
                ));
            }
            (Some(from_header), header.cloned())
        }
        (Some(authority), None) => (
            Some(trim_dot(authority.host())),
            HeaderValue::from_str(authority.as_str()).ok(),
        ),
        (None, from_header) => (from_header, header.cloned()),
    };
    let path = path::normalize(uri.path(), options).map_err(RequestError::AmbiguousPath)?;
    Ok(Target {
        host,
        host_header,
        path,
    })
}

fn host_of(value: &[u8]) -> Result<&str, RequestError> {
    let authority =
        Authority::try_from(value).map_err(|_| RequestError::BadHost("invalid Host header"))?;
    if authority.as_str().contains('@') {
        return Err(RequestError::BadHost("invalid Host header"));
    }
    // Without userinfo the host is the head of the text; borrow it instead of copying.
    let text =
        std::str::from_utf8(value).map_err(|_| RequestError::BadHost("invalid Host header"))?;
    let host = text
        .get(..authority.host().len())
        .ok_or(RequestError::BadHost("invalid Host header"))?;
    Ok(trim_dot(host))
}

fn trim_dot(host: &str) -> &str {
    host.strip_suffix('.').unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_host(uri: &str, host_headers: &[&str]) -> Result<Option<String>, &'static str> {
        let uri: Uri = uri.parse().unwrap();
        let mut headers = HeaderMap::new();
        for h in host_headers {
            headers.append(HOST, h.parse().unwrap());
        }
        match read(&uri, &headers, &PathOptions::default()) {
            Ok(t) => Ok(t.host.map(str::to_string)),
            Err(RequestError::BadHost(why)) => Err(why),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn host_table() {
        type Case<'a> = (&'a str, &'a [&'a str], Result<Option<&'a str>, ()>);
        let cases: &[Case] = &[
            ("/x", &[], Ok(None)),
            ("/x", &["api.example.com"], Ok(Some("api.example.com"))),
            ("/x", &["API.example.com:8443"], Ok(Some("API.example.com"))),
            ("/x", &["api.example.com."], Ok(Some("api.example.com"))),
            ("/x", &["[::1]:8080"], Ok(Some("[::1]"))),
            ("/x", &["a.example.com", "b.example.com"], Err(())),
            ("/x", &["user@api.example.com"], Err(())),
            ("/x", &["bad host"], Err(())),
            ("http://api.example.com/x", &[], Ok(Some("api.example.com"))),
            (
                "http://api.example.com:80/x",
                &["api.example.com"],
                Ok(Some("api.example.com")),
            ),
            ("http://api.example.com/x", &["admin.example.com"], Err(())),
        ];
        for (uri, headers, want) in cases {
            let got = read_host(uri, headers).map_err(|_| ());
            assert_eq!(
                got,
                want.map(|h| h.map(str::to_string)),
                "{uri} {headers:?}"
            );
        }
    }
}
