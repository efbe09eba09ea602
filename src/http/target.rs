//! Step 3½: what the request is for — its host and normalised path — read once, the same way
//! for routing, forwarding and `explain`.

use std::borrow::Cow;

use http::header::HOST;
use http::{HeaderMap, HeaderValue, Uri};

use crate::error::RequestError;
use crate::routes::path::{self, PathOptions};

/// The host and path a request is routed on.
#[derive(Debug, Clone)]
pub struct Target<'u, 'a> {
    /// Host name without port or trailing dot, as sent (compared case-insensitively); `None`
    /// when the request names none. Borrowed from the URI or the headers.
    pub host: Option<&'a str>,
    /// The `Host` value to forward: the `Host` header, else the request target's authority.
    pub host_header: Option<HeaderValue>,
    /// The normalised path: matched, and forwarded. Borrowed from the URI only, so the headers
    /// can be rewritten while it is in use.
    pub path: Cow<'u, str>,
}

/// Reads the target of a request. The host comes from the request target's authority
/// (absolute-form or HTTP/2 `:authority`), else from `Host`; more than one `Host`, or a `Host`
/// that names another host than the authority, is refused, so the host routed on is the host
/// the backend sees. An authority with userinfo (`user@host`) is refused too (RFC 9110 §4.2.4,
/// RFC 9113 §8.3.1).
pub fn read<'u: 'a, 'h: 'a, 'a>(
    uri: &'u Uri,
    headers: &'h HeaderMap,
    options: &PathOptions,
) -> Result<Target<'u, 'a>, RequestError> {
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(RequestError::BadHost(
            "the request target carries userinfo (user@host)",
        ));
    }
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

/// The host of a `Host` value (`host[:port]`, `[v6][:port]`), borrowed from it: parsed in
/// place on every request rather than copied into an `Authority`. A name is letters, digits
/// and `-._~`; an IPv6 literal is hex digits, `:` and `.` in brackets; a port is 1–5 digits.
fn host_of(value: &[u8]) -> Result<&str, RequestError> {
    let invalid = || RequestError::BadHost("invalid Host header");
    let (host, port) = if value.first() == Some(&b'[') {
        let end = value.iter().position(|&b| b == b']').ok_or_else(invalid)?;
        let literal = &value[1..end];
        let valid = !literal.is_empty()
            && literal
                .iter()
                .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'));
        if !valid {
            return Err(invalid());
        }
        let rest = &value[end + 1..];
        match rest.split_first() {
            None => (&value[..=end], None),
            Some((b':', port)) => (&value[..=end], Some(port)),
            Some(_) => return Err(invalid()),
        }
    } else {
        let (host, port) = match value.iter().position(|&b| b == b':') {
            Some(colon) => (&value[..colon], Some(&value[colon + 1..])),
            None => (value, None),
        };
        let valid = !host.is_empty()
            && host
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        if !valid {
            return Err(invalid());
        }
        (host, port)
    };
    if port.is_some_and(|p| p.is_empty() || p.len() > 5 || !p.iter().all(u8::is_ascii_digit)) {
        return Err(invalid());
    }
    // Only ASCII passed the checks above.
    let host = std::str::from_utf8(host).map_err(|_| invalid())?;
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
            ("/x", &["api.example.com:"], Err(())),
            ("/x", &["api.example.com:80x"], Err(())),
            ("/x", &["[::1"], Err(())),
            ("/x", &["[::1]x"], Err(())),
            ("/x", &["[zz]:80"], Err(())),
            ("/x", &[""], Err(())),
            ("/x", &["[2001:db8::1]"], Ok(Some("[2001:db8::1]"))),
            ("http://api.example.com/x", &[], Ok(Some("api.example.com"))),
            (
                "http://api.example.com:80/x",
                &["api.example.com"],
                Ok(Some("api.example.com")),
            ),
            ("http://api.example.com/x", &["admin.example.com"], Err(())),
            ("http://evil@api.example.com/x", &[], Err(())),
            (
                "http://evil@api.example.com/x",
                &["api.example.com"],
                Err(()),
            ),
            ("http://u:p@api.example.com/x", &[], Err(())),
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
