//! Step 9: the header rewrite, in three parts. 9a `sanitize_request` cleans what the client
//! sent (hop-by-hop headers, client copies of identity and forwarding headers, look-alikes, `_`
//! spellings) before any rule reads a header; 9b `credentials_plan` keeps only the verified
//! token; 9c `inject` adds claim and `X-Forwarded-*` headers. So nothing a client sends
//! (including a `Connection` list) can remove or forge what the gateway checked or adds.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use super::forwarded::{
    self, Hop, X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO, X_REQUEST_ID,
};

use crate::error::RequestError;
use crate::routes::Route;
use crate::token::Claims;
use crate::token::extract::{self, Presented, Source};

/// Hop-by-hop headers (RFC 9110 §7.6.1, RFC 9113 §8.2.2), never forwarded in either direction.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    HeaderName::from_static("http2-settings"),
];

/// Headers that a `Connection` list can never remove: framing and the host the request was
/// routed on (a header a rule reads is kept too, see `sanitize_request`).
const NOT_REMOVABLE_BY_CONNECTION: [HeaderName; 3] = [
    header::HOST,
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
];

/// The forwarding headers the gateway sets itself; client spellings of them with `_` are
/// always removed (a backend such as Django or Rails reads `X_Forwarded_For` as the same).
const SET_BY_GATEWAY: [HeaderName; 5] = [
    X_FORWARDED_FOR,
    X_FORWARDED_PROTO,
    X_FORWARDED_HOST,
    header::FORWARDED,
    X_REQUEST_ID,
];

/// Look-alikes of forwarding headers that frameworks and servers believe (client address,
/// original URL, method override, scheme): removed from requests of peers outside
/// `trusted_proxies`, in any `_`/`-` spelling. `server.spoofable_headers` adds to it.
pub const LOOKALIKE_HEADERS: [&str; 15] = [
    "x-real-ip",
    "true-client-ip",
    "x-client-ip",
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-scheme",
    "x-forwarded-ssl",
    "x-forwarded-server",
    "front-end-https",
    "x-forwarded-protocol",
];

/// Headers a route may not fill from a claim: hop-by-hop, framing, and the ones the gateway
/// manages itself.
pub fn is_reserved_for_injection(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name)
        || SET_BY_GATEWAY.contains(name)
        || [
            header::UPGRADE,
            header::HOST,
            header::CONTENT_LENGTH,
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            header::COOKIE,
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

/// Names the rewrite removes or protects, compiled once per config.
#[derive(Debug, Clone, Default)]
pub struct HeaderRules {
    /// Every header some route fills from claims: client copies go on every route.
    identity: Vec<HeaderName>,
    /// Look-alike forwarding headers removed from untrusted peers (built-in list + config).
    spoofable: Vec<HeaderName>,
    /// `shape` of the two lists, and of the gateway's own forwarding headers.
    identity_shape: Shape,
    spoofable_shape: Shape,
    gateway_shape: Shape,
}

/// The lengths and first letters of a set of names: a header whose length or first letter
/// none of them has cannot be any of them (nor a `_` spelling of one), and is passed over
/// without comparing. Two bit sets: bit `n` for length `n` (64 and more in bit 63), bit
/// `c - 'a'` for a first letter `c` (anything else in bit 63).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Shape {
    lengths: u64,
    firsts: u64,
}

impl Shape {
    fn of(names: &[HeaderName]) -> Shape {
        names.iter().fold(Shape::default(), |shape, name| {
            let (length, first) = Shape::bits(name.as_str());
            Shape {
                lengths: shape.lengths | length,
                firsts: shape.firsts | first,
            }
        })
    }

    fn bits(name: &str) -> (u64, u64) {
        let first = match name.as_bytes().first() {
            Some(c @ b'a'..=b'z') => u64::from(c - b'a'),
            _ => 63,
        };
        (1 << name.len().min(63), 1 << first)
    }

    fn union(self, other: Shape) -> Shape {
        Shape {
            lengths: self.lengths | other.lengths,
            firsts: self.firsts | other.firsts,
        }
    }

    fn may_hold(self, name: &str) -> bool {
        let (length, first) = Shape::bits(name);
        self.lengths & length != 0 && self.firsts & first != 0
    }
}

impl HeaderRules {
    pub fn new(identity: Vec<HeaderName>, spoofable: Vec<HeaderName>) -> Self {
        HeaderRules {
            identity_shape: Shape::of(&identity),
            spoofable_shape: Shape::of(&spoofable),
            gateway_shape: Shape::of(&SET_BY_GATEWAY),
            identity,
            spoofable,
        }
    }
}

/// Step 9a, before the claim policy reads any header: removes hop-by-hop headers (a
/// `Connection` list cannot remove framing, `Host` or a header `route` binds), client copies of
/// identity headers, look-alike forwarding headers from untrusted peers and the `_` spellings of
/// every protected name; joins HTTP/2 `cookie` crumbs (RFC 9113 §8.2.3). A header the route
/// binds that is present twice, in any spelling, is refused: the policy reads what is forwarded.
pub fn sanitize_request(
    headers: &mut HeaderMap,
    route: &Route,
    rules: &HeaderRules,
    trusted_peer: bool,
) -> Result<(), RequestError> {
    remove_hop_by_hop(headers, &route.bound_headers);
    join_cookie_crumbs(headers);
    let mut doomed: Vec<HeaderName> = Vec::new();
    // A `_` spelling has the length and first letter of the name it imitates, so one test
    // passes over most headers (Host, Accept, Authorization, User-Agent, …) without comparing.
    let mut watched = rules
        .identity_shape
        .union(rules.gateway_shape)
        .union(Shape::of(&route.bound_headers));
    if !trusted_peer {
        watched = watched.union(rules.spoofable_shape);
    }
    for name in headers.keys() {
        let text = name.as_str();
        if !watched.may_hold(text) {
            continue;
        }
        let folded = text.contains('_');
        let is = |h: &HeaderName| {
            if folded {
                same_header_name(text, h.as_str())
            } else {
                h == name
            }
        };
        if route.bound_headers.iter().any(|h| h == name) {
            if headers.get_all(name).iter().nth(1).is_some() {
                return Err(RequestError::AmbiguousHeader(
                    "a header the route reads is present more than once",
                ));
            }
            continue;
        }
        if folded && let Some(bound) = route.bound_headers.iter().find(|h| is(h)) {
            if headers.contains_key(bound) {
                return Err(RequestError::AmbiguousHeader(
                    "a header the route reads is also sent with _ in its name",
                ));
            }
            doomed.push(name.clone());
            continue;
        }
        let remove = rules.identity.iter().any(is)
            || (folded && SET_BY_GATEWAY.iter().any(is))
            || (!trusted_peer && rules.spoofable.iter().any(is));
        if remove {
            doomed.push(name.clone());
        }
    }
    for name in doomed {
        headers.remove(name);
    }
    Ok(())
}

/// Step 9b, on routes that read tokens: the only credential forwarded is the token that was
/// verified, as `Authorization: Bearer <token>` when it came in that header and the route keeps
/// it. Any other `Authorization` (Basic, or one left over while the token came from a cookie or
/// query) is removed, and so is the route's token cookie unless it carried the verified token;
/// `strip_authorization` removes the token wherever it came from. Decided while the token is
/// borrowed from the headers, applied once they may change.
pub fn credentials_plan<'r>(
    headers: &HeaderMap,
    route: &'r Route,
    presented: Presented<'_>,
) -> CredentialsPlan<'r> {
    let strip = route.strip_authorization;
    let authorization = match presented {
        Presented::Token(token, Source::Header) if !strip => {
            let canonical = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
                .is_some_and(|rest| rest == token.as_bytes());
            if canonical {
                AuthorizationPlan::Keep
            } else {
                // Same token, one spelling: `Bearer` and a single space.
                HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_or(AuthorizationPlan::Remove, AuthorizationPlan::Replace)
            }
        }
        _ => AuthorizationPlan::Remove,
    };
    let cookie = route
        .token_sources
        .cookie
        .as_deref()
        .filter(|_| strip || presented.source() != Some(Source::Cookie));
    CredentialsPlan {
        authorization,
        cookie,
    }
}

/// What step 9b does to `Authorization` and the token cookie.
#[derive(Debug)]
pub struct CredentialsPlan<'r> {
    authorization: AuthorizationPlan,
    /// The token cookie to remove.
    cookie: Option<&'r str>,
}

#[derive(Debug)]
enum AuthorizationPlan {
    Keep,
    Replace(HeaderValue),
    Remove,
}

impl CredentialsPlan<'_> {
    pub fn apply(self, headers: &mut HeaderMap) {
        match self.authorization {
            AuthorizationPlan::Keep => {}
            AuthorizationPlan::Replace(value) => {
                headers.insert(header::AUTHORIZATION, value);
            }
            AuthorizationPlan::Remove => {
                headers.remove(header::AUTHORIZATION);
            }
        }
        if let Some(name) = self.cookie {
            remove_cookie(headers, name);
        }
    }
}

/// Step 9c: claim headers, `X-Forwarded-*`/`Forwarded` for this hop and `X-Request-Id`.
pub fn inject(
    headers: &mut HeaderMap,
    route: &Route,
    claims: Option<&Claims>,
    ctx: ForwardContext,
) {
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
    remove_hop_by_hop(headers, &[]);
}

/// Puts back the two hop-by-hop headers an upgrade needs (`Upgrade: <protocol>`,
/// `Connection: upgrade`) after the rewrite removed them.
pub fn restore_upgrade(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(header::UPGRADE, protocol);
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
}

/// Removes the hop-by-hop headers and those the `Connection` header names, except framing,
/// `Host` and `keep`. One pass over the names finds what to remove, so a message without any
/// (most requests; responses with just `Connection: keep-alive`) costs no hashed lookups
/// beyond that.
fn remove_hop_by_hop(headers: &mut HeaderMap, keep: &[HeaderName]) {
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
                || (!NOT_REMOVABLE_BY_CONNECTION.contains(name)
                    && !keep.contains(name)
                    && listed.iter().any(|t| t.eq_ignore_ascii_case(name.as_str())))
        })
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
}

/// HTTP/2 may split `cookie` into several fields; an HTTP/1.1 backend must get one, joined
/// with `; ` (RFC 9113 §8.2.3).
fn join_cookie_crumbs(headers: &mut HeaderMap) {
    let mut values = headers.get_all(header::COOKIE).iter();
    if values.nth(1).is_none() {
        return;
    }
    let mut joined: Vec<u8> = Vec::new();
    for value in headers.get_all(header::COOKIE) {
        if !joined.is_empty() {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(value.as_bytes());
    }
    if let Ok(value) = HeaderValue::from_bytes(&joined) {
        headers.insert(header::COOKIE, value);
    }
}

/// Removes every cookie named `name` (compared as `extract` compares names) from `Cookie`.
fn remove_cookie(headers: &mut HeaderMap, name: &str) {
    let Some(value) = headers.get(header::COOKIE) else {
        return;
    };
    let Ok(text) = std::str::from_utf8(value.as_bytes()) else {
        // A route that reads cookies refused non-UTF-8 ones already; elsewhere, drop them all.
        headers.remove(header::COOKIE);
        return;
    };
    if !text
        .split(';')
        .any(|pair| extract::is_cookie_named(pair, name))
    {
        return;
    }
    let kept: Vec<&str> = text
        .split(';')
        .filter(|pair| !extract::is_cookie_named(pair, name))
        .map(|pair| pair.trim_matches([' ', '\t']))
        .filter(|pair| !pair.is_empty())
        .collect();
    match HeaderValue::from_str(&kept.join("; ")) {
        Ok(value) if !kept.is_empty() => {
            headers.insert(header::COOKIE, value);
        }
        _ => {
            headers.remove(header::COOKIE);
        }
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
    fn remove_cookie_table() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("at=1; b=2", "at", Some("b=2")),
            ("a=1; at=tok; b=2", "at", Some("a=1; b=2")),
            ("at =forged; at=tok", "at", None),
            ("a%74=forged; b=2", "at", Some("b=2")),
            ("att=1; b=2", "at", Some("att=1; b=2")),
            ("at=1", "at", None),
        ];
        for (cookie, name, want) in cases {
            let mut h = HeaderMap::new();
            h.insert(header::COOKIE, HeaderValue::from_static(cookie));
            remove_cookie(&mut h, name);
            let got = h.get(header::COOKIE).map(|v| v.to_str().unwrap());
            assert_eq!(got, *want, "{cookie}");
        }
    }

    #[test]
    fn cookie_crumbs_are_joined() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1"));
        h.append(header::COOKIE, HeaderValue::from_static("b=2; c=3"));
        join_cookie_crumbs(&mut h);
        let all: Vec<_> = h.get_all(header::COOKIE).iter().collect();
        assert_eq!(all, ["a=1; b=2; c=3"]);
    }

    #[test]
    fn shape_prefilter_never_skips_a_watched_name() {
        let names: Vec<HeaderName> = LOOKALIKE_HEADERS
            .iter()
            .map(|h| HeaderName::from_static(h))
            .chain(SET_BY_GATEWAY)
            .collect();
        let shape = Shape::of(&names);
        for name in &names {
            assert!(shape.may_hold(name.as_str()), "{name}");
            assert!(shape.may_hold(&name.as_str().replace('-', "_")), "{name}");
        }
        for common in [
            "host",
            "accept",
            "authorization",
            "user-agent",
            "content-type",
        ] {
            assert!(!shape.may_hold(common), "{common} is compared for nothing");
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
            remove_hop_by_hop(&mut h, &[]);
            let got: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
            assert_eq!(&got, left, "{sent:?}");
        }
    }
}
