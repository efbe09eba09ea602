//! `server:` and `listeners:`: limits, timeouts, trusted proxies, spoofable headers, path
//! normalisation and the listening sockets.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;

use http::HeaderName;
use ipnet::IpNet;

use super::source_file;
use crate::config::diagnostic::Collector;
use std::time::Duration;

use crate::config::raw::{RawAdmin, RawConfig, RawPaths, RawReload};
use crate::config::{AdminSettings, ListenerSpec, ReloadSettings, Role, ServerSettings};
use crate::proxy::forwarded::TrustedProxies;
use crate::proxy::headers::{LOOKALIKE_HEADERS, is_reserved_for_injection};
use crate::routes::path::PathOptions;
use crate::tls::ServerMaterial;
use crate::token::cache::TokenCacheSettings;

/// Default longest request target, in bytes.
pub const DEFAULT_MAX_URI_BYTES: usize = 8192;
/// Default largest token, in bytes.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8192;

/// The built-in look-alike forwarding headers and `server.spoofable_headers`.
pub(super) fn compile_spoofable_headers(raw: &[String], c: &mut Collector) -> Vec<HeaderName> {
    let mut out: Vec<HeaderName> = LOOKALIKE_HEADERS
        .iter()
        .map(|h| HeaderName::from_static(h))
        .collect();
    for (i, text) in raw.iter().enumerate() {
        match HeaderName::from_bytes(text.as_bytes()) {
            Ok(name) if is_reserved_for_injection(&name) || name == http::header::AUTHORIZATION => {
                c.error(
                    None,
                    format!("server.spoofable_headers[{i}]"),
                    format!(
                        "{text:?} is a header the gateway manages itself; it cannot be listed here"
                    ),
                )
            }
            Ok(name) => {
                if !out.contains(&name) {
                    out.push(name);
                }
            }
            Err(_) => c.error(
                None,
                format!("server.spoofable_headers[{i}]"),
                format!("expected a header name such as X-Original-Host, found {text:?}"),
            ),
        }
    }
    out
}

/// `10.0.0.0/8`, `2001:db8::/32`, or a bare address (one host).
pub(super) fn compile_trusted_proxies(raw: &[String], c: &mut Collector) -> TrustedProxies {
    let mut out = Vec::new();
    for (i, text) in raw.iter().enumerate() {
        let parsed = text.parse::<IpNet>().or_else(|_| {
            text.parse::<std::net::IpAddr>()
                .map(IpNet::from)
                .map_err(|_| ())
        });
        match parsed {
            Ok(net) => out.push(net.trunc()),
            Err(()) => c.error(
                None,
                format!("server.trusted_proxies[{i}]"),
                format!("expected an address or CIDR such as 10.0.0.0/8 or ::1, found {text:?}"),
            ),
        }
    }
    TrustedProxies(out)
}

pub(super) fn compile_paths(raw: &RawPaths) -> PathOptions {
    PathOptions {
        dot_segments: raw.dot_segments.unwrap_or_default(),
        empty_segments: raw.empty_segments.unwrap_or_default(),
        encoded_slash: raw.encoded_slash.unwrap_or_default(),
        path_parameters: raw.path_parameters.unwrap_or_default(),
        windows_segments: raw.windows_segments.unwrap_or_default(),
    }
}

pub(super) fn token_cache_settings(server: &crate::config::raw::RawServer) -> TokenCacheSettings {
    let d = TokenCacheSettings::default();
    let raw = server.token_cache.as_ref();
    TokenCacheSettings {
        max_entries: raw.and_then(|r| r.max_entries).unwrap_or(d.max_entries),
        max_memory: raw
            .and_then(|r| r.max_memory_mib)
            .map_or(d.max_memory, |m| m.saturating_mul(1024 * 1024)),
        max_ttl: raw.and_then(|r| r.max_ttl).map_or(d.max_ttl, |v| v.0),
    }
}

pub(super) fn compile_server(
    raw: &RawConfig,
    c: &mut Collector,
) -> (ServerSettings, String, usize, bool) {
    let s = &raw.server;
    let d = ServerSettings::default();
    let positive = |c: &mut Collector, key: &str, v: Option<usize>, default: usize| match v {
        Some(0) => {
            c.error(
                None,
                format!("server.{key}"),
                "expected a number greater than 0",
            );
            default
        }
        Some(v) => v,
        None => default,
    };
    let settings = ServerSettings {
        workers: s.workers.map(|w| positive(c, "workers", Some(w), 1)),
        max_header_bytes: positive(
            c,
            "max_header_bytes",
            s.max_header_bytes,
            d.max_header_bytes,
        ),
        max_headers: positive(c, "max_headers", s.max_headers, d.max_headers),
        max_connections: positive(c, "max_connections", s.max_connections, d.max_connections),
        header_read_timeout: s.header_read_timeout.map_or(d.header_read_timeout, |v| v.0),
        tls_handshake_timeout: s
            .tls_handshake_timeout
            .map_or(d.tls_handshake_timeout, |v| v.0),
        idle_timeout: s.idle_timeout.map_or(d.idle_timeout, |v| v.0),
        h2_max_concurrent_streams: s
            .h2_max_concurrent_streams
            .unwrap_or(d.h2_max_concurrent_streams),
        h2_max_pending_resets: positive(
            c,
            "h2_max_pending_resets",
            s.h2_max_pending_resets,
            d.h2_max_pending_resets,
        ),
        h2_max_error_resets: positive(
            c,
            "h2_max_error_resets",
            s.h2_max_error_resets,
            d.h2_max_error_resets,
        ),
        shutdown_timeout: s.shutdown_timeout.map_or(d.shutdown_timeout, |v| v.0),
        h2_stream_window: s.h2_stream_window.unwrap_or(d.h2_stream_window),
        h2_connection_window: s.h2_connection_window.unwrap_or(d.h2_connection_window),
        max_connections_per_ip: s.max_connections_per_ip,
    };
    // RFC 9113 §6.9.2: the initial window is at least 65535 and below 2^31.
    for (field, value) in [
        ("h2_stream_window", settings.h2_stream_window),
        ("h2_connection_window", settings.h2_connection_window),
    ] {
        if !(65_535..=(1 << 31) - 1).contains(&value) {
            c.error(
                None,
                format!("server.{field}"),
                "expected 65535 to 2147483647 bytes",
            );
        }
    }
    if settings.max_connections_per_ip == Some(0) {
        c.error(
            None,
            "server.max_connections_per_ip",
            "expected a number greater than 0 (omit for no limit)",
        );
    }
    if settings.idle_timeout.is_zero() {
        c.error(
            None,
            "server.idle_timeout",
            "expected a duration greater than 0",
        );
    }
    if settings.h2_max_concurrent_streams == 0 {
        c.error(
            None,
            "server.h2_max_concurrent_streams",
            "expected a number greater than 0",
        );
    }
    if settings.max_header_bytes < 8192 {
        c.error(
            None,
            "server.max_header_bytes",
            "expected at least 8192 bytes",
        );
    }
    if s.max_uri_bytes.is_some_and(|v| v < 256) {
        c.error(None, "server.max_uri_bytes", "expected at least 256 bytes");
    }
    if s.max_body_bytes == Some(0) {
        c.error(
            None,
            "server.max_body_bytes",
            "expected a number greater than 0",
        );
    }
    let max_token_bytes = positive(
        c,
        "max_token_bytes",
        s.max_token_bytes,
        DEFAULT_MAX_TOKEN_BYTES,
    );
    let realm = s.realm.clone().unwrap_or_else(|| "portcullis".to_string());
    if realm.is_empty()
        || !realm
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        c.error(
            None,
            "server.realm",
            "expected printable ASCII without quotes or backslashes",
        );
    }
    (
        settings,
        realm,
        max_token_bytes,
        s.access_log.unwrap_or(true),
    )
}

pub(super) fn compile_listeners(
    raw: &RawConfig,
    base: &Path,
    c: &mut Collector,
) -> Vec<ListenerSpec> {
    if raw.listeners.is_empty() {
        c.error(None, "listeners", "expected at least one listener");
    }
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (i, spanned) in raw.listeners.iter().enumerate() {
        let at = Some(&spanned.referenced);
        let l = &spanned.value;
        let address = match SocketAddr::from_str(l.address.as_str()) {
            Ok(a) => a,
            Err(_) => {
                c.error(
                    at,
                    format!("listeners[{i}].address"),
                    format!(
                        "expected IP:PORT such as 0.0.0.0:8443 or [::1]:8080, found {:?}",
                        l.address.as_str()
                    ),
                );
                continue;
            }
        };
        if address.port() != 0 && !seen.insert(address) {
            c.error(
                at,
                format!("listeners[{i}].address"),
                format!("{address} is listed twice"),
            );
        }
        let tls = match &l.tls {
            None => None,
            Some(t) => match ServerMaterial::read(
                &source_file(base, t.certificate.as_str(), c),
                &source_file(base, t.private_key.as_str(), c),
            ) {
                Ok(material) => Some(material),
                Err(e) => {
                    c.error(at, format!("listeners[{i}].tls"), e);
                    None
                }
            },
        };
        out.push(ListenerSpec {
            address,
            tls,
            role: Role::Proxy,
        });
    }
    out
}

/// Where the admin listener binds by default.
pub const DEFAULT_ADMIN_ADDRESS: &str = "127.0.0.1:9901";

/// `admin:`: the admin listener (on unless `enabled: false`), never on a proxy listener's port,
/// and its optional bearer token.
pub(super) fn compile_admin(
    raw: Option<&RawAdmin>,
    proxies: &[ListenerSpec],
    base: &Path,
    c: &mut Collector,
) -> (Option<ListenerSpec>, AdminSettings) {
    let mut settings = AdminSettings::default();
    if raw.and_then(|a| a.enabled) == Some(false) {
        return (None, settings);
    }
    let text = raw
        .and_then(|a| a.address.as_ref())
        .map_or(DEFAULT_ADMIN_ADDRESS, |t| t.as_str());
    let Ok(address) = SocketAddr::from_str(text) else {
        c.error(
            None,
            "admin.address",
            format!("expected IP:PORT such as 127.0.0.1:9901, found {text:?}"),
        );
        return (None, settings);
    };
    let clash = proxies.iter().find(|l| {
        address.port() != 0
            && l.address.port() == address.port()
            && (l.address.ip() == address.ip()
                || l.address.ip().is_unspecified()
                || address.ip().is_unspecified())
    });
    if let Some(proxy) = clash {
        c.error(
            None,
            "admin.address",
            format!(
                "{address} is where proxy listener {} serves; the admin listener needs a port of its own",
                proxy.address
            ),
        );
    }
    if let Some(file) = raw.and_then(|a| a.token_file.as_ref()) {
        let path = source_file(base, file.as_str(), c);
        match std::fs::read_to_string(&path) {
            Ok(token) if !token.trim().is_empty() => {
                settings.token = Some(token.trim().to_string())
            }
            Ok(_) => c.error(
                None,
                "admin.token_file",
                format!("{} is empty", path.display()),
            ),
            Err(e) => c.error(
                None,
                "admin.token_file",
                format!("cannot read {}: {e}", path.display()),
            ),
        }
    }
    let listener = ListenerSpec {
        address,
        tls: None,
        role: Role::Admin,
    };
    (Some(listener), settings)
}

/// `reload:`.
pub(super) fn compile_reload(raw: &RawReload, c: &mut Collector) -> ReloadSettings {
    let d = ReloadSettings::default();
    let settings = ReloadSettings {
        watch: raw.watch.unwrap_or(d.watch),
        debounce: raw.debounce.map_or(d.debounce, |v| v.0),
    };
    if settings.debounce < Duration::from_millis(50) || settings.debounce > Duration::from_secs(60)
    {
        c.error(None, "reload.debounce", "expected 50ms to 60s");
    }
    settings
}
