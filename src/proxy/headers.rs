//! Step 9: the header rewrite. Hop-by-hop headers and client copies of every header the gateway
//! sets are removed first, then claim and `X-Forwarded-*` headers are added, so nothing a
//! client sends (including a `Connection` list) can remove or forge what the gateway adds.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use super::forwarded::{
    self, Hop, X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO, X_REQUEST_ID,
};

use crate::routes::Route;
use crate::token::Claims;

/// Hop-by-hop headers (RFC 9110 §7.6.1), never forwarded in either direction.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Headers a route may not fill from a claim: hop-by-hop, framing, and the ones the gateway
/// manages itself.
pub fn is_reserved_for_injection(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name)
        || [
            header::UPGRADE,
            header::HOST,
            header::CONTENT_LENGTH,
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            header::COOKIE,
            header::FORWARDED,
            X_FORWARDED_FOR,
            X_FORWARDED_PROTO,
            X_FORWARDED_HOST,
            X_REQUEST_ID,
        ]
        .contains(name)
}

/// What the header rewrite needs to know about the connection and the request.
#[derive(Debug, Clone)]
pub struct ForwardContext {
    pub hop: Hop,
    /// This request's id, sent as `X-Request-Id`.
    pub request_id: HeaderValue,
}

/// Rewrites request headers in place for the upstream.
/// `identity` lists every header any route of the config fills from claims: client copies of
/// them are removed on every route, public ones included.
pub fn rewrite_request(
    headers: &mut HeaderMap,
    route: &Route,
    identity: &[HeaderName],
    claims: Option<&Claims>,
    ctx: ForwardContext,
) {
    remove_hop_by_hop(headers);
    // Client copies of injected headers go, whatever their case or `_`/`-` spelling, also when
    // the request is anonymous or the route public: a backend must be able to trust them.
    if !identity.is_empty() {
        let spoofed: Vec<HeaderName> = headers
            .keys()
            .filter(|name| {
                identity
                    .iter()
                    .any(|h| same_header_name(name.as_str(), h.as_str()))
            })
            .cloned()
            .collect();
        for name in spoofed {
            headers.remove(name);
        }
    }
    if route.strip_authorization {
        headers.remove(header::AUTHORIZATION);
    }
    if let Some(claims) = claims {
        for injected in &route.claim_headers {
            if let Some(value) = injected.claim.lookup(claims).and_then(claim_header_value) {
                headers.insert(injected.name.clone(), value);
            }
        }
    }
    forwarded::set_forwarding(headers, &ctx.hop);
    headers.insert(X_REQUEST_ID, ctx.request_id);
}

/// Removes hop-by-hop headers from an upstream response.
pub fn rewrite_response(headers: &mut HeaderMap) {
    remove_hop_by_hop(headers);
}

/// Puts back the two hop-by-hop headers an upgrade needs (`Upgrade: <protocol>`,
/// `Connection: upgrade`) after the rewrite removed them.
pub fn restore_upgrade(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(header::UPGRADE, protocol);
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
}

/// Removes the hop-by-hop headers and those the `Connection` header names, except `Host`.
/// One pass over the names finds what to remove, so a message without any (most requests;
/// responses with just `Connection: keep-alive`) costs no hashed lookups beyond that.
fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let is_hop = |name: &HeaderName| *name == header::UPGRADE || HOP_BY_HOP.contains(name);
    if !headers.keys().any(is_hop) {
        return;
    }
    let listed: Vec<&str> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .collect();
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            is_hop(name)
                || (**name != header::HOST
                    && listed.iter().any(|t| t.eq_ignore_ascii_case(name.as_str())))
        })
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
}

/// Header names equal ignoring ASCII case and `_` versus `-`.
fn same_header_name(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes().zip(b.bytes()).all(|(x, y)| {
            let fold = |c: u8| {
                if c == b'_' {
                    b'-'
                } else {
                    c.to_ascii_lowercase()
                }
            };
            fold(x) == fold(y)
        })
}

/// The one encoding of a claim in a header: a string as it is; an array of strings joined with
/// `,` (as compact JSON if an element itself contains a comma); anything else compact JSON.
/// `None` for null, or when the result would hold a control character.
pub fn claim_header_value(value: &Value) -> Option<HeaderValue> {
    let text = match value {
        Value::Null => return None,
        Value::String(s) => s.clone(),
        Value::Array(items)
            if items
                .iter()
                .all(|i| i.as_str().is_some_and(|s| !s.contains(','))) =>
        {
            items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",")
        }
        other => serde_json::to_string(other).ok()?,
    };
    if text.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return None;
    }
    HeaderValue::from_bytes(text.as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claim_header_value_table() {
        let cases: &[(Value, Option<&str>)] = &[
            (json!("alice"), Some("alice")),
            (json!("café"), Some("café")),
            (json!(["admin", "reader"]), Some("admin,reader")),
            (json!([]), Some("")),
            (json!(["a,b", "c"]), Some(r#"["a,b","c"]"#)),
            (json!([1, "x"]), Some(r#"[1,"x"]"#)),
            (json!(42), Some("42")),
            (json!(true), Some("true")),
            (json!({"a": 1}), Some(r#"{"a":1}"#)),
            (json!(null), None),
            (json!("evil\r\nX-Admin: 1"), None),
            (json!("tab\there"), None),
            (json!(["ok", "bad\n"]), None),
        ];
        for (value, want) in cases {
            let got = claim_header_value(value);
            assert_eq!(
                got.as_ref().map(|v| v.as_bytes()),
                want.map(str::as_bytes),
                "{value}"
            );
        }
    }

    #[test]
    fn header_name_folding() {
        assert!(same_header_name("x-user-id", "x-user-id"));
        assert!(same_header_name("x_user_id", "x-user-id"));
        assert!(same_header_name("X-User_Id", "x-user-id"));
        assert!(!same_header_name("x-user-ids", "x-user-id"));
        assert!(!same_header_name("x-user-ix", "x-user-id"));
    }

    #[test]
    fn hop_by_hop_removal_table() {
        type Fields = &'static [(&'static str, &'static str)];
        // (headers sent, headers left), names in order.
        let cases: &[(Fields, &[&str])] = &[
            (&[("host", "a"), ("accept", "*/*")], &["host", "accept"]),
            (
                &[("host", "a"), ("connection", "close, host, X-Secret")],
                &["host"],
            ),
            (
                &[
                    ("connection", "keep-alive"),
                    ("keep-alive", "timeout=5"),
                    ("x-keep", "1"),
                ],
                &["x-keep"],
            ),
            (
                &[
                    ("te", "trailers"),
                    ("trailer", "x"),
                    ("transfer-encoding", "chunked"),
                ],
                &[],
            ),
            (&[("upgrade", "websocket"), ("x-keep", "1")], &["x-keep"]),
            (
                &[
                    ("proxy-authorization", "Basic x"),
                    ("proxy-connection", "keep-alive"),
                ],
                &[],
            ),
            (
                &[
                    ("connection", " , x-a ,,x-b"),
                    ("x-a", "1"),
                    ("x-b", "1"),
                    ("x-c", "1"),
                ],
                &["x-c"],
            ),
            // A name listed in `Connection` only matters when `Connection` is there.
            (&[("x-secret", "1")], &["x-secret"]),
        ];
        for (sent, left) in cases {
            let mut h = HeaderMap::new();
            for (name, value) in *sent {
                h.append(
                    HeaderName::from_static(name),
                    HeaderValue::from_static(value),
                );
            }
            remove_hop_by_hop(&mut h);
            let got: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
            assert_eq!(&got, left, "{sent:?}");
        }
    }
}
