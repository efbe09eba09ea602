//! Who the request came from, as told to the upstream: `X-Forwarded-For`, `-Proto`, `-Host`,
//! RFC 7239 `Forwarded`, and `X-Request-Id`. What a client sends in these headers is believed
//! only when the connection comes from a trusted proxy (`server.trusted_proxies`).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Peers whose forwarding headers are kept and extended instead of replaced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(pub Vec<IpNet>);

impl TrustedProxies {
    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client as far as trusted proxies vouch for it: the peer, or — when the peer is
    /// trusted — the right-most `X-Forwarded-For` address that is not itself a trusted proxy.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.contains(peer) {
            return peer;
        }
        let mut client = peer;
        let listed = headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .rev();
        for hop in listed {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) if self.contains(ip) => client = ip,
                Ok(ip) => return ip,
                Err(_) => return client,
            }
        }
        client
    }
}

/// What the forwarding headers say about this hop.
#[derive(Debug, Clone)]
pub struct Hop {
    pub peer: IpAddr,
    /// The peer is a trusted proxy: its forwarding headers are kept and extended.
    pub trusted: bool,
    pub tls: bool,
    /// The host the client asked for.
    pub host: Option<HeaderValue>,
}

/// Sets `X-Forwarded-For/-Proto/-Host` and `Forwarded` for this hop. From an untrusted peer,
/// incoming values are discarded; from a trusted one, the lists are extended and its
/// `-Proto`/`-Host` kept when present.
pub fn set_forwarding(headers: &mut HeaderMap, hop: &Hop) {
    let peer = hop.peer.to_canonical();
    let proto = if hop.tls { "https" } else { "http" };

    let mut xff = String::with_capacity(48);
    let mut forwarded = String::with_capacity(64);
    if hop.trusted {
        join_all(headers, &X_FORWARDED_FOR, &mut xff);
        join_all(headers, &header::FORWARDED, &mut forwarded);
    } else {
        headers.remove(X_FORWARDED_PROTO);
        headers.remove(X_FORWARDED_HOST);
    }
    push_ip(&mut xff, peer);
    set_text(headers, X_FORWARDED_FOR, xff);

    match peer {
        IpAddr::V4(_) => {
            forwarded.push_str("for=");
            push_ip(&mut forwarded, peer);
        }
        IpAddr::V6(_) => {
            forwarded.push_str("for=\"[");
            push_ip(&mut forwarded, peer);
            forwarded.push_str("]\"");
        }
    }
    forwarded.push_str(";proto=");
    forwarded.push_str(proto);
    if let Some(host) = hop.host.as_ref().and_then(|h| h.to_str().ok()) {
        forwarded.push_str(";host=");
        push_token_or_quoted(&mut forwarded, host);
    }
    set_text(headers, header::FORWARDED, forwarded);

    if !(hop.trusted && headers.contains_key(X_FORWARDED_PROTO)) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    }
    if !(hop.trusted && headers.contains_key(X_FORWARDED_HOST))
        && let Some(host) = &hop.host
    {
        headers.insert(X_FORWARDED_HOST, host.clone());
    }
    if let Some(host) = &hop.host
        && !headers.contains_key(header::HOST)
    {
        headers.insert(header::HOST, host.clone());
    }
}

/// Appends every value of `name` to `out`, comma-separated, with a trailing `, `.
fn join_all(headers: &HeaderMap, name: &HeaderName, out: &mut String) {
    for previous in headers.get_all(name).iter().filter_map(|v| v.to_str().ok()) {
        out.push_str(previous);
        out.push_str(", ");
    }
}

fn set_text(headers: &mut HeaderMap, name: HeaderName, text: String) {
    match HeaderValue::from_maybe_shared(bytes::Bytes::from(text)) {
        Ok(value) => {
            headers.insert(name, value);
        }
        Err(_) => {
            headers.remove(name);
        }
    }
}

/// RFC 7239 values are tokens or quoted strings.
fn push_token_or_quoted(out: &mut String, value: &str) {
    let token = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if token {
        out.push_str(value);
    } else {
        out.push('"');
        for c in value.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
}

/// The request id: the client's `X-Request-Id` when it is 1–128 characters of letters, digits
/// and `-_.:`, else a new random one (32 hex digits).
pub fn request_id(headers: &HeaderMap) -> HeaderValue {
    let mut values = headers.get_all(&X_REQUEST_ID).iter();
    if let (Some(value), None) = (values.next(), values.next()) {
        let bytes = value.as_bytes();
        let valid = (1..=128).contains(&bytes.len())
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b));
        if valid {
            return value.clone();
        }
    }
    new_request_id()
}

/// A new id: 64 random bits drawn once per process, then a per-process counter — unique
/// without drawing randomness per request (ids are for correlation, not secrets).
fn new_request_id() -> HeaderValue {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| {
        let mut random = [0u8; 8];
        // The system RNG only fails when the OS has none; the counter still keeps ids unique.
        let _ = aws_lc_rs::rand::fill(&mut random);
        u64::from_le_bytes(random)
    });
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut text = [0u8; 32];
    hex_u64(prefix, &mut text[..16]);
    hex_u64(count, &mut text[16..]);
    HeaderValue::from_bytes(&text).unwrap_or(HeaderValue::from_static("0"))
}

fn hex_u64(value: u64, out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = DIGITS[((value >> (60 - 4 * i)) & 0xf) as usize];
    }
}

/// Appends an address the way `Display` does, without the formatting machinery for IPv4 (the
/// common case, once or twice per request).
fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                if octet >= 100 {
                    out.push((b'0' + octet / 100) as char);
                }
                if octet >= 10 {
                    out.push((b'0' + octet / 10 % 10) as char);
                }
                out.push((b'0' + octet % 10) as char);
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted() -> TrustedProxies {
        TrustedProxies(vec![
            "10.0.0.0/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ])
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn forwarding_table() {
        let spoof = [
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil"),
            ("forwarded", "for=6.6.6.6"),
        ];
        // Untrusted peer: everything replaced.
        let mut h = headers(&spoof);
        let hop = Hop {
            peer: "203.0.113.9".parse().unwrap(),
            trusted: false,
            tls: false,
            host: Some("api.example.com".parse().unwrap()),
        };
        set_forwarding(&mut h, &hop);
        assert_eq!(h["x-forwarded-for"], "203.0.113.9");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "api.example.com");
        assert_eq!(
            h["forwarded"],
            "for=203.0.113.9;proto=http;host=api.example.com"
        );
        assert_eq!(h["host"], "api.example.com");
        // Trusted peer: lists extended, its proto/host kept.
        let mut h = headers(&spoof);
        let hop = Hop {
            peer: "10.1.2.3".parse().unwrap(),
            trusted: true,
            tls: true,
            host: Some("api.example.com:8443".parse().unwrap()),
        };
        set_forwarding(&mut h, &hop);
        assert_eq!(h["x-forwarded-for"], "6.6.6.6, 10.1.2.3");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "evil");
        assert_eq!(
            h["forwarded"],
            "for=6.6.6.6, for=10.1.2.3;proto=https;host=\"api.example.com:8443\""
        );
        // IPv6 peers are quoted and bracketed; v4-mapped addresses are shown as v4.
        let mut h = HeaderMap::new();
        let hop = Hop {
            peer: "2001:db8::1".parse().unwrap(),
            trusted: false,
            tls: false,
            host: None,
        };
        set_forwarding(&mut h, &hop);
        assert_eq!(h["forwarded"], "for=\"[2001:db8::1]\";proto=http");
        let mut h = HeaderMap::new();
        let hop = Hop {
            peer: "::ffff:192.0.2.1".parse().unwrap(),
            trusted: false,
            tls: false,
            host: None,
        };
        set_forwarding(&mut h, &hop);
        assert_eq!(h["x-forwarded-for"], "192.0.2.1");
    }

    #[test]
    fn client_table() {
        let t = trusted();
        let h = headers(&[("x-forwarded-for", "198.51.100.7, 10.0.0.5")]);
        let cases: &[(&str, &HeaderMap, &str)] = &[
            ("203.0.113.9", &h, "203.0.113.9"),
            ("10.0.0.1", &h, "198.51.100.7"),
            ("10.0.0.1", &HeaderMap::new(), "10.0.0.1"),
        ];
        for (peer, headers, want) in cases {
            let got = t.client(peer.parse().unwrap(), headers);
            assert_eq!(got.to_string(), *want, "{peer}");
        }
        let garbage = headers(&[("x-forwarded-for", "nonsense, 10.0.0.5")]);
        assert_eq!(
            t.client("10.0.0.1".parse().unwrap(), &garbage).to_string(),
            "10.0.0.5"
        );
    }

    #[test]
    fn ip_text_matches_display() {
        for ip in [
            "0.0.0.0",
            "1.2.3.4",
            "10.20.30.40",
            "255.255.255.255",
            "100.9.99.109",
            "::1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut out = String::new();
            push_ip(&mut out, ip);
            assert_eq!(out, ip.to_string());
        }
    }

    #[test]
    fn request_id_table() {
        let kept = headers(&[("x-request-id", "abc-123_x.y:z")]);
        assert_eq!(request_id(&kept), "abc-123_x.y:z");
        for bad in ["", "has space", "quote\"", &"a".repeat(129)] {
            let mut h = HeaderMap::new();
            if !bad.is_empty() {
                h.insert(X_REQUEST_ID, bad.parse().unwrap());
            }
            let id = request_id(&h);
            assert_eq!(id.len(), 32, "{bad:?}");
            assert!(id.as_bytes().iter().all(u8::is_ascii_hexdigit));
        }
        let two = headers(&[("x-request-id", "a"), ("x-request-id", "b")]);
        assert_eq!(request_id(&two).len(), 32);
        assert_ne!(request_id(&HeaderMap::new()), request_id(&HeaderMap::new()));
    }
}
