//! Raw config → typed runtime values. Every check names the key path; all problems are
//! collected before anything is returned, so a config is applied whole or not at all.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use http::uri::{PathAndQuery, Scheme};
use http::{HeaderName, HeaderValue, Method, Uri};
use ipnet::IpNet;
use jsonwebtoken::Algorithm;
use serde_json::Value;
use serde_saphyr::{Location, Spanned};

use super::diagnostic::Collector;
use super::raw::{
    RawAudiences, RawCondition, RawConfig, RawPaths, RawPolicy, RawProvider, RawRoute, RawUpstream,
    StringOrList,
};
use super::rule_files::RuleFile;
use super::{Config, ConfigErrors, ListenerSpec, ServerSettings};
use crate::keys::remote::{Fetcher, RemoteSettings, RemoteSource};
use crate::keys::store::ProviderKeys;
use crate::keys::{VerifyKey, jwks, source};
use crate::proxy::client::{HealthCheck, HostRewrite, Upstream, UpstreamSettings};
use crate::proxy::forwarded::TrustedProxies;
use crate::proxy::headers::{HeaderRules, LOOKALIKE_HEADERS, is_reserved_for_injection};
use crate::routes::matcher::{HostPattern, HostSet, MethodSet, PathMatcher};
use crate::routes::path::PathOptions;
use crate::routes::policy::{ClaimTest, Comparison, Condition, DenyAs, Operand, Pattern, Policy};
use crate::routes::{ClaimHeader, Route, RouteTable, RuleOrigin, TokenSources};
use crate::state::Snapshot;
use crate::tls;
use crate::token::ClaimPath;
use crate::token::cache::{TokenCache, TokenCacheSettings};
use crate::token::verify::{Provider, Providers};

/// Default longest request target, in bytes.
pub const DEFAULT_MAX_URI_BYTES: usize = 8192;
/// Default largest token, in bytes.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8192;
/// Default clock-skew leeway, in seconds.
pub const DEFAULT_LEEWAY_SECS: u64 = 30;
/// Largest leeway accepted, in seconds.
const MAX_LEEWAY_SECS: u64 = 600;

/// Compiles a parsed file; `base` is the folder relative paths are resolved against.
pub fn compile(
    file: &Path,
    base: &Path,
    raw: RawConfig,
    rule_files: Vec<RuleFile>,
) -> Result<Config, ConfigErrors> {
    let mut c = Collector::new(file);

    let server = compile_server(&raw, &mut c);
    let listeners = compile_listeners(&raw, base, &mut c);
    let (upstreams, upstream_index) = compile_upstreams(&raw.upstreams, base, &mut c);
    let providers = compile_providers(&raw.providers, base, &mut c);
    let paths = compile_paths(&raw.paths);
    let trusted_proxies = compile_trusted_proxies(&raw.server.trusted_proxies, &mut c);
    let spoofable = compile_spoofable_headers(&raw.server.spoofable_headers, &mut c);
    let mut routes = RouteCompiler {
        upstreams: &upstream_index,
        upstream_list: &upstreams,
        providers: &providers,
        default_case_sensitive: raw.paths.case_sensitive.unwrap_or(true),
        default_max_body_bytes: raw.server.max_body_bytes,
        paths,
        names: HashMap::new(),
        out: Vec::new(),
    };
    routes.compile_file(file, &raw.routes, &mut c);
    for rule_file in &rule_files {
        c.file = rule_file.path.clone();
        routes.compile_file(&rule_file.path, &rule_file.raw.routes, &mut c);
    }
    c.file = file.to_path_buf();
    if routes.out.is_empty() && c.found.is_empty() {
        c.error(
            None,
            "routes",
            "expected at least one route, here or in rule_files (anything no route matches is denied)",
        );
    }
    let routes = routes.out;

    if !c.found.is_empty() {
        return Err(ConfigErrors(c.found));
    }
    let routes = RouteTable::new(routes);
    super::lint::lint(&routes, &upstreams, &raw, &mut c);
    // Warnings in reading order: by file (the main file first), then line.
    let order = |d: &super::Diagnostic| {
        let file_rank = if d.file == file { 0 } else { 1 };
        (file_rank, d.file.clone(), d.position)
    };
    c.warnings.sort_by_key(order);
    let (settings, realm, max_token_bytes, access_log) = server;
    let max_headers = settings.max_headers;
    let header_rules = HeaderRules::new(routes.identity_headers().to_vec(), spoofable);
    Ok(Config {
        file: file.to_path_buf(),
        listeners,
        server: settings,
        snapshot: Snapshot {
            paths,
            providers: Providers::new(providers),
            upstreams,
            realm: realm.into(),
            max_token_bytes,
            max_uri_bytes: raw.server.max_uri_bytes.unwrap_or(DEFAULT_MAX_URI_BYTES),
            max_headers,
            header_rules,
            routes,
            trusted_proxies,
            access_log,
            token_cache: TokenCache::new(token_cache_settings(&raw.server)),
        },
        warnings: c.warnings,
    })
}

/// The built-in look-alike forwarding headers and `server.spoofable_headers`.
fn compile_spoofable_headers(raw: &[String], c: &mut Collector) -> Vec<HeaderName> {
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
fn compile_trusted_proxies(raw: &[String], c: &mut Collector) -> TrustedProxies {
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

fn compile_paths(raw: &RawPaths) -> PathOptions {
    PathOptions {
        dot_segments: raw.dot_segments.unwrap_or_default(),
        empty_segments: raw.empty_segments.unwrap_or_default(),
        encoded_slash: raw.encoded_slash.unwrap_or_default(),
        path_parameters: raw.path_parameters.unwrap_or_default(),
        windows_segments: raw.windows_segments.unwrap_or_default(),
    }
}

fn resolve(base: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

fn token_cache_settings(server: &super::raw::RawServer) -> TokenCacheSettings {
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

fn compile_server(raw: &RawConfig, c: &mut Collector) -> (ServerSettings, String, usize, bool) {
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

fn compile_listeners(raw: &RawConfig, base: &Path, c: &mut Collector) -> Vec<ListenerSpec> {
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
            Some(t) => match tls::server_config(
                &resolve(base, t.certificate.as_str()),
                &resolve(base, t.private_key.as_str()),
            ) {
                Ok(cfg) => Some(cfg),
                Err(e) => {
                    c.error(at, format!("listeners[{i}].tls"), e);
                    None
                }
            },
        };
        out.push(ListenerSpec { address, tls });
    }
    out
}

fn compile_upstreams(
    raw: &BTreeMap<String, Spanned<RawUpstream>>,
    base: &Path,
    c: &mut Collector,
) -> (Vec<Arc<Upstream>>, HashMap<String, usize>) {
    let mut out = Vec::new();
    let mut index = HashMap::new();
    if raw.is_empty() {
        c.error(None, "upstreams", "expected at least one upstream");
    }
    for (name, spanned) in raw {
        let at = Some(&spanned.referenced);
        let u = &spanned.value;
        let key = format!("upstreams.{name}");
        let built = compile_upstream(name, u, &key, at, base, c);
        // A broken upstream stays known by name, so routes naming it get no second, misleading
        // error; the config is refused anyway.
        index.insert(
            name.clone(),
            if built.is_some() {
                out.len()
            } else {
                usize::MAX
            },
        );
        out.extend(built.map(Arc::new));
    }
    (out, index)
}

fn compile_upstream(
    name: &str,
    u: &RawUpstream,
    key: &str,
    at: Option<&Location>,
    base: &Path,
    c: &mut Collector,
) -> Option<Upstream> {
    let errors_before = c.found.len();
    let d = UpstreamSettings::default();
    let urls: Vec<(String, &str)> = match (&u.url, &u.targets) {
        (Some(url), None) => vec![(format!("{key}.url"), url.as_str())],
        (None, Some(list)) if !list.is_empty() => list
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("{key}.targets[{i}]"), t.as_str()))
            .collect(),
        _ => {
            c.error(
                at,
                key,
                "expected url (one target) or targets (a list of one or more), not both",
            );
            return None;
        }
    };
    let mut scheme: Option<Scheme> = None;
    let mut authorities = Vec::new();
    for (field, url) in &urls {
        let Some((s, authority)) = parse_upstream_url(url, field, at, c) else {
            continue;
        };
        if scheme.as_ref().is_some_and(|first| *first != s) {
            c.error(
                at,
                field.clone(),
                "every target of an upstream uses the same scheme",
            );
        }
        if authorities.contains(&authority) {
            c.error(at, field.clone(), format!("{authority} is listed twice"));
        }
        scheme.get_or_insert(s);
        authorities.push(authority);
    }
    let host = match u.host.as_deref() {
        None | Some("preserve") => HostRewrite::Preserve,
        Some("target") => HostRewrite::Target,
        Some(fixed) => match HeaderValue::from_str(fixed) {
            Ok(v) if !fixed.is_empty() && fixed.parse::<http::uri::Authority>().is_ok() => {
                HostRewrite::Fixed(v)
            }
            _ => {
                c.error(
                    at,
                    format!("{key}.host"),
                    format!("expected preserve, target or a host[:port], found {fixed:?}"),
                );
                HostRewrite::Preserve
            }
        },
    };
    let health_check = u.health_check.as_ref().and_then(|h| {
        let path = (h.path.starts_with('/'))
            .then(|| PathAndQuery::from_str(&h.path).ok())
            .flatten();
        if path.is_none() {
            c.error(
                at,
                format!("{key}.health_check.path"),
                format!("expected a path such as /healthz, found {:?}", h.path),
            );
        }
        Some(HealthCheck {
            path: path?,
            interval: h.interval.map_or(Duration::from_secs(5), |v| v.0),
            timeout: h.timeout.map_or(Duration::from_secs(2), |v| v.0),
        })
    });
    let settings = UpstreamSettings {
        connect_timeout: u.connect_timeout.map_or(d.connect_timeout, |v| v.0),
        response_timeout: u.response_timeout.map_or(d.response_timeout, |v| v.0),
        pool_idle_timeout: u.pool_idle_timeout.map_or(d.pool_idle_timeout, |v| v.0),
        pool_max_idle_per_host: u.pool_max_idle_per_host.unwrap_or(d.pool_max_idle_per_host),
        balance: u.balance.unwrap_or_default(),
        retries: u.retries.unwrap_or(d.retries),
        eject_after: u.eject_after.unwrap_or(d.eject_after),
        eject_for: u.eject_for.map_or(d.eject_for, |v| v.0),
        host,
        http2: u.http2,
        health_check,
        max_requests: u.max_requests.unwrap_or(d.max_requests),
        max_connections_per_target: u
            .max_connections_per_target
            .unwrap_or(d.max_connections_per_target),
        max_pending: u.max_pending.unwrap_or(d.max_pending),
    };
    for (field, value) in [
        ("max_requests", settings.max_requests),
        (
            "max_connections_per_target",
            settings.max_connections_per_target,
        ),
    ] {
        if value == 0 {
            c.error(
                at,
                format!("{key}.{field}"),
                "expected a number greater than 0",
            );
        }
    }
    let https = scheme.as_ref() == Some(&Scheme::HTTPS);
    if u.tls.is_some() && !https && scheme.is_some() {
        c.error(at, format!("{key}.tls"), "tls settings need https targets");
    }
    let tls_raw = u.tls.as_ref();
    let identity = match tls_raw.map(|t| (&t.client_certificate, &t.client_key)) {
        Some((Some(cert), Some(key_file))) => Some((
            resolve(base, cert.as_str()),
            resolve(base, key_file.as_str()),
        )),
        Some((None, None)) | None => None,
        Some(_) => {
            c.error(
                at,
                format!("{key}.tls"),
                "client_certificate and client_key go together",
            );
            None
        }
    };
    let ca = tls_raw
        .and_then(|t| t.ca_file.as_ref())
        .map(|f| resolve(base, f.as_str()));
    let tls = match tls::client_config(
        ca.as_deref(),
        identity.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
    ) {
        Ok(t) => t,
        Err(e) => {
            c.error(at, format!("{key}.tls"), e);
            return None;
        }
    };
    if c.found.len() > errors_before {
        return None;
    }
    Some(Upstream::new(name, scheme?, authorities, settings, tls))
}

fn parse_upstream_url(
    url: &str,
    key: &str,
    at: Option<&Location>,
    c: &mut Collector,
) -> Option<(Scheme, http::uri::Authority)> {
    let expected = "expected an http or https URL with host and port and no path, such as http://127.0.0.1:8080";
    let Ok(uri) = Uri::from_str(url) else {
        c.error(at, key, format!("{expected}, found {url:?}"));
        return None;
    };
    let scheme = match uri.scheme_str() {
        Some("http") => Scheme::HTTP,
        Some("https") => Scheme::HTTPS,
        _ => {
            c.error(at, key, format!("{expected}, found {url:?}"));
            return None;
        }
    };
    let path_ok = matches!(uri.path(), "" | "/") && uri.query().is_none();
    match (uri.authority(), path_ok) {
        (Some(a), true) if a.as_str().rsplit_once('@').is_none() => Some((scheme, a.clone())),
        _ => {
            c.error(at, key, format!("{expected}, found {url:?}"));
            None
        }
    }
}

fn compile_providers(
    raw: &[Spanned<RawProvider>],
    base: &Path,
    c: &mut Collector,
) -> Vec<Provider> {
    let mut out = Vec::new();
    let mut names = HashSet::new();
    let mut issuers = HashSet::new();
    for (i, spanned) in raw.iter().enumerate() {
        let at = Some(&spanned.referenced);
        let p = &spanned.value;
        let key = format!("providers[{i}]");
        let errors_before = c.found.len();
        if p.name.is_empty() {
            c.error(at, format!("{key}.name"), "expected a non-empty name");
        } else if !names.insert(p.name.clone()) {
            c.error(
                at,
                format!("{key}.name"),
                format!("provider name {:?} is used twice", p.name),
            );
        }
        if p.issuer.as_str().is_empty() {
            c.error(
                at,
                format!("{key}.issuer"),
                "expected the exact iss value of the tokens",
            );
        } else if !issuers.insert(p.issuer.0.clone()) {
            c.error(
                at,
                format!("{key}.issuer"),
                format!("issuer {:?} is configured twice", p.issuer.as_str()),
            );
        }
        let audiences = match &p.audiences {
            RawAudiences::List(list) if !list.is_empty() && !list.iter().any(String::is_empty) => {
                Some(list.clone())
            }
            RawAudiences::Keyword(word) if word == "none" => None,
            _ => {
                c.error(
                    at,
                    format!("{key}.audiences"),
                    "expected a list of one or more accepted aud values, or none for tokens without aud (then bind the client with clients)",
                );
                None
            }
        };
        let mut algorithms = Vec::new();
        for (j, name) in p.algorithms.iter().enumerate() {
            match name.parse::<Algorithm>() {
                Ok(alg) if !algorithms.contains(&alg) => algorithms.push(alg),
                Ok(_) => {}
                Err(_) => c.error(at, format!("{key}.algorithms[{j}]"), format!(
                    "expected one of RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 EdDSA HS256 HS384 HS512, found {name:?}"
                )),
            }
        }
        if p.algorithms.is_empty() {
            c.error(
                at,
                format!("{key}.algorithms"),
                "expected a list of one or more allowed algorithms",
            );
        }
        let leeway = p.leeway.map_or(DEFAULT_LEEWAY_SECS, |d| d.0.as_secs());
        if leeway > MAX_LEEWAY_SECS {
            c.error(
                at,
                format!("{key}.leeway"),
                format!("expected at most {MAX_LEEWAY_SECS}s"),
            );
        }
        let keys = compile_keys(p, &key, at, &algorithms, base, c);
        let remote = compile_remote(p, &key, at, &algorithms, base, c);
        if c.found.len() == errors_before && remote.is_none() {
            for alg in &algorithms {
                if !keys.iter().any(|k: &VerifyKey| k.fits(*alg)) {
                    c.warn(
                        at,
                        key.clone(),
                        format!("algorithm {alg:?} is allowed but no configured key can verify it"),
                    );
                }
            }
            if keys.is_empty() {
                c.error(
                    at,
                    key.clone(),
                    "expected at least one key source: jwks_uri, discovery, jwks_file, public_keys or hmac_secret",
                );
            }
        }
        out.push(Provider {
            name: p.name.as_str().into(),
            issuer: p.issuer.0.clone(),
            audiences,
            algorithms,
            keys: Arc::new(match remote {
                Some((fetcher, settings)) => {
                    ProviderKeys::with_remote(&p.name, keys, fetcher, settings)
                }
                None => ProviderKeys::local(keys),
            }),
            leeway,
            require_exp: p.require_exp.unwrap_or(true),
            types: compile_list(
                p.types.as_deref(),
                &format!("{key}.types"),
                "a typ value such as at+jwt",
                at,
                c,
            )
            .map(|list| {
                list.iter()
                    .map(|t| {
                        let t = t.to_ascii_lowercase();
                        t.strip_prefix("application/")
                            .map(str::to_string)
                            .unwrap_or(t)
                    })
                    .collect()
            }),
            clients: compile_list(
                p.clients.as_deref(),
                &format!("{key}.clients"),
                "a client id (azp or client_id)",
                at,
                c,
            ),
        });
    }
    out
}

/// An optional list that, when given, must hold one or more non-empty values.
fn compile_list(
    raw: Option<&[String]>,
    key: &str,
    what: &str,
    at: Option<&Location>,
    c: &mut Collector,
) -> Option<Vec<String>> {
    let list = raw?;
    if list.is_empty() || list.iter().any(|v| v.trim().is_empty()) {
        c.error(
            at,
            key,
            format!(
                "expected a list of one or more values, each {what}; omit the key to accept any"
            ),
        );
    }
    Some(list.to_vec())
}

/// The remote key source of a provider (`jwks_uri` or `discovery`), if it has one.
fn compile_remote(
    p: &RawProvider,
    key: &str,
    at: Option<&Location>,
    algorithms: &[Algorithm],
    base: &Path,
    c: &mut Collector,
) -> Option<(Fetcher, RemoteSettings)> {
    let source = match (&p.jwks_uri, p.discovery) {
        (Some(_), true) => {
            c.error(at, key, "expected jwks_uri or discovery: true, not both");
            return None;
        }
        (Some(uri), false) => RemoteSource::JwksUri(uri.0.clone()),
        (None, true) => RemoteSource::Discovery {
            issuer: p.issuer.0.clone(),
        },
        (None, false) => {
            if p.remote_keys.is_some() {
                c.error(
                    at,
                    format!("{key}.remote_keys"),
                    "remote_keys needs jwks_uri or discovery: true",
                );
            }
            return None;
        }
    };
    let raw = p.remote_keys.as_ref();
    let d = RemoteSettings::default();
    let pick = |v: Option<&super::values::Duration>, default| v.map_or(default, |d| d.0);
    let settings = RemoteSettings {
        fetch_timeout: pick(raw.and_then(|r| r.fetch_timeout.as_ref()), d.fetch_timeout),
        min_refresh: pick(raw.and_then(|r| r.min_refresh.as_ref()), d.min_refresh),
        max_refresh: pick(raw.and_then(|r| r.max_refresh.as_ref()), d.max_refresh),
        max_stale: pick(raw.and_then(|r| r.max_stale.as_ref()), d.max_stale),
        unknown_kid_cooldown: pick(
            raw.and_then(|r| r.unknown_kid_cooldown.as_ref()),
            d.unknown_kid_cooldown,
        ),
        unknown_kid_burst: raw
            .and_then(|r| r.unknown_kid_burst)
            .unwrap_or(d.unknown_kid_burst),
        unknown_kid_refill: pick(
            raw.and_then(|r| r.unknown_kid_refill.as_ref()),
            d.unknown_kid_refill,
        ),
        fail_fast: raw.is_some_and(|r| r.fail_fast),
    };
    let k = format!("{key}.remote_keys");
    if settings.fetch_timeout.is_zero() {
        c.error(
            at,
            format!("{k}.fetch_timeout"),
            "expected a duration above 0",
        );
    }
    if settings.min_refresh < std::time::Duration::from_secs(1) {
        c.error(at, format!("{k}.min_refresh"), "expected at least 1s");
    }
    if settings.unknown_kid_burst > 100 {
        c.error(
            at,
            format!("{k}.unknown_kid_burst"),
            "expected at most 100 (0 turns unknown-kid fetches off)",
        );
    }
    if settings.unknown_kid_refill < std::time::Duration::from_millis(100) {
        c.error(
            at,
            format!("{k}.unknown_kid_refill"),
            "expected at least 100ms",
        );
    }
    if settings.max_refresh < settings.min_refresh {
        c.error(
            at,
            format!("{k}.max_refresh"),
            "expected at least min_refresh",
        );
    }
    let allow_http = raw.is_some_and(|r| r.allow_http);
    let url = match &source {
        RemoteSource::JwksUri(uri) => uri.clone(),
        RemoteSource::Discovery { issuer } => super::super::keys::remote::discovery_url(issuer),
    };
    let field = if p.discovery {
        format!("{key}.issuer")
    } else {
        format!("{key}.jwks_uri")
    };
    match Uri::from_str(&url) {
        Ok(uri) if uri.scheme_str() == Some("https") && uri.host().is_some() => {}
        Ok(uri) if uri.scheme_str() == Some("http") && uri.host().is_some() && allow_http => {}
        Ok(uri) if uri.scheme_str() == Some("http") && uri.host().is_some() => {
            c.error(at, field, format!("{url:?} is plain http: keys must come over https (or set remote_keys.allow_http: true)"));
            return None;
        }
        _ => {
            c.error(at, field, format!("expected an https URL, found {url:?}"));
            return None;
        }
    }
    let ca_pem = match raw.and_then(|r| r.ca_file.as_ref()) {
        None => None,
        Some(file) => {
            let path = resolve(base, file.as_str());
            match std::fs::read(&path) {
                Ok(bytes) => Some(bytes),
                Err(e) => {
                    c.error(
                        at,
                        format!("{k}.ca_file"),
                        format!("cannot read {}: {e}", path.display()),
                    );
                    return None;
                }
            }
        }
    };
    match Fetcher::new(source, algorithms.to_vec(), &settings, ca_pem.as_deref()) {
        Ok(fetcher) => Some((fetcher, settings)),
        Err(e) => {
            c.error(at, k, e);
            None
        }
    }
}

fn compile_keys(
    p: &RawProvider,
    key: &str,
    at: Option<&Location>,
    algorithms: &[Algorithm],
    base: &Path,
    c: &mut Collector,
) -> Vec<VerifyKey> {
    let mut keys = Vec::new();
    if let Some(file) = &p.jwks_file {
        let path = resolve(base, file.as_str());
        match std::fs::read(&path) {
            Err(e) => c.error(
                at,
                format!("{key}.jwks_file"),
                format!("cannot read {}: {e}", path.display()),
            ),
            Ok(bytes) => match jwks::parse(&bytes, algorithms, true) {
                Err(e) => c.error(
                    at,
                    format!("{key}.jwks_file"),
                    format!("{}: {e}", path.display()),
                ),
                Ok(parsed) => {
                    for why in parsed.skipped {
                        c.warn(at, format!("{key}.jwks_file"), format!("skipped {why}"));
                    }
                    if parsed.keys.is_empty() {
                        c.error(
                            at,
                            format!("{key}.jwks_file"),
                            format!("{}: no usable key", path.display()),
                        );
                    }
                    keys.extend(parsed.keys);
                }
            },
        }
    }
    for (j, pk) in p.public_keys.iter().enumerate() {
        let alg = match pk.algorithm.as_deref().map(str::parse::<Algorithm>) {
            None => None,
            Some(Ok(alg)) => Some(alg),
            Some(Err(_)) => {
                c.error(
                    at,
                    format!("{key}.public_keys[{j}].algorithm"),
                    "expected an algorithm name such as RS256",
                );
                continue;
            }
        };
        match source::load_pem_public_key(&resolve(base, pk.file.as_str()), pk.kid.clone(), alg) {
            Ok(k) => keys.push(k),
            Err(e) => c.error(at, format!("{key}.public_keys[{j}].file"), e),
        }
    }
    if let Some(secret) = &p.hmac_secret {
        let k = format!("{key}.hmac_secret");
        let bytes = match (&secret.env, &secret.file) {
            (Some(var), None) => std::env::var(var)
                .map(String::into_bytes)
                .map_err(|_| format!("environment variable {var} is not set")),
            (None, Some(file)) => {
                let path = resolve(base, file.as_str());
                std::fs::read(&path)
                    .map(|mut b| {
                        while b.last().is_some_and(|x| *x == b'\n' || *x == b'\r') {
                            b.pop();
                        }
                        b
                    })
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))
            }
            _ => Err("expected exactly one of env or file".to_string()),
        };
        let bytes = bytes.and_then(|b| {
            if secret.base64 {
                let text = String::from_utf8(b)
                    .map_err(|_| "the secret is not base64 text".to_string())?;
                base64::engine::general_purpose::STANDARD
                    .decode(text.trim())
                    .or_else(|_| {
                        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text.trim())
                    })
                    .map_err(|_| "base64: true, but the secret is not base64".to_string())
            } else {
                Ok(b)
            }
        });
        match bytes.and_then(|b| source::hmac_key(&b, secret.kid.clone())) {
            Ok(k) => keys.push(k),
            Err(e) => c.error(at, k, e),
        }
    }
    keys
}

/// Compiles the routes of the main file and of each rule file, in that order.
struct RouteCompiler<'a> {
    upstreams: &'a HashMap<String, usize>,
    upstream_list: &'a [Arc<Upstream>],
    providers: &'a [Provider],
    default_case_sensitive: bool,
    default_max_body_bytes: Option<u64>,
    paths: PathOptions,
    /// Route name → where it was first declared.
    names: HashMap<String, (PathBuf, u64)>,
    out: Vec<Route>,
}

impl RouteCompiler<'_> {
    fn compile_file(&mut self, file: &Path, raw: &[Spanned<RawRoute>], c: &mut Collector) {
        let file: Arc<Path> = Arc::from(file);
        for (i, spanned) in raw.iter().enumerate() {
            c.rule = Some(spanned.value.name.clone());
            if let Some(route) = self.compile_route(&file, i, spanned, c) {
                self.out.push(route);
            }
            c.rule = None;
        }
    }

    fn compile_route(
        &mut self,
        file: &Arc<Path>,
        i: usize,
        spanned: &Spanned<RawRoute>,
        c: &mut Collector,
    ) -> Option<Route> {
        let at = Some(&spanned.referenced);
        let r = &spanned.value;
        let key = format!("routes[{i}]");
        let line = spanned.referenced.line();
        if r.name.is_empty() {
            c.error(at, format!("{key}.name"), "expected a non-empty name");
        } else if let Some((first_file, first_line)) = self.names.get(&r.name) {
            c.error(
                at,
                format!("{key}.name"),
                format!(
                    "route name {:?} is already used at {}:{first_line}; every route needs its own name",
                    r.name,
                    first_file.display()
                ),
            );
        } else {
            self.names
                .insert(r.name.clone(), (file.to_path_buf(), line));
        }
        let hosts = compile_hosts(r.host.as_ref(), &key, at, c);
        let path = match (&r.path, &r.prefix) {
            (Some(p), None) => check_route_path(p, &self.paths, &format!("{key}.path"), at, c)
                .and_then(|p| {
                    PathMatcher::path(p)
                        .map_err(|e| c.error(at, format!("{key}.path"), e))
                        .ok()
                }),
            (None, Some(p)) => {
                if p.contains(['{', '}']) {
                    c.error(
                        at,
                        format!("{key}.prefix"),
                        "a prefix takes no parameters; use path: /a/{id}/{*rest} for a template",
                    );
                    None
                } else {
                    check_route_path(p, &self.paths, &format!("{key}.prefix"), at, c)
                        .map(PathMatcher::prefix)
                }
            }
            _ => {
                c.error(
                    at,
                    key.clone(),
                    "expected exactly one of path (exact or template such as /users/{id}) or prefix",
                );
                None
            }
        };
        let methods = compile_methods(r.methods.as_deref(), &key, at, c);
        let deny = r.policy == Some(RawPolicy::Deny);
        let upstream = match (&r.upstream, deny) {
            (Some(name), _) => {
                let found = self.upstreams.get(name).copied();
                if found.is_none() {
                    let mut known: Vec<_> = self.upstreams.keys().map(String::as_str).collect();
                    known.sort_unstable();
                    c.error(
                        at,
                        format!("{key}.upstream"),
                        format!("no upstream named {name:?} (known: {})", known.join(", ")),
                    );
                }
                found.map(Some)
            }
            (None, true) => Some(None),
            (None, false) => {
                c.error(
                    at,
                    format!("{key}.upstream"),
                    "expected the name of an upstream (only policy: deny routes have none)",
                );
                None
            }
        };
        if deny && r.upstream.is_some() {
            c.error(
                at,
                format!("{key}.upstream"),
                "a policy: deny route forwards nothing: remove upstream",
            );
        }
        if r.deny_status.is_some() && !deny {
            c.error(
                at,
                format!("{key}.deny_status"),
                "deny_status needs policy: deny",
            );
        }
        let params = path
            .as_ref()
            .map(PathMatcher::param_names)
            .unwrap_or_default();
        let policy = compile_policy(r, &key, at, &params, c);
        let needs_token = !matches!(policy, Some(Policy::Public | Policy::Deny(_)));
        if needs_token && self.providers.is_empty() {
            c.error(
                at,
                format!("{key}.policy"),
                "this route checks tokens, but no providers are configured",
            );
        }
        let allowed = r.providers.as_ref().map(|list| {
            list.iter()
                .enumerate()
                .filter_map(|(j, name)| {
                    let found = self.providers.iter().position(|p| &*p.name == name);
                    if found.is_none() {
                        c.error(
                            at,
                            format!("{key}.providers[{j}]"),
                            format!("no provider named {name:?}"),
                        );
                    }
                    found
                })
                .collect::<Vec<_>>()
        });
        let claim_headers = compile_claim_headers(&r.claim_headers, &key, at, c);
        if matches!(policy, Some(Policy::Public)) && !claim_headers.is_empty() {
            c.error(
                at,
                format!("{key}.claim_headers"),
                "a public route has no claims to put into headers",
            );
        }
        for (field, value) in [
            ("token_query_param", &r.token_query_param),
            ("token_cookie", &r.token_cookie),
        ] {
            if value.as_deref().is_some_and(|v| {
                v.is_empty()
                    || !v
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && !b"=;&,".contains(&b))
            }) {
                c.error(
                    at,
                    format!("{key}.{field}"),
                    "expected a parameter or cookie name",
                );
            }
        }
        for (field, value) in [
            ("strip_prefix", &r.strip_prefix),
            ("add_prefix", &r.add_prefix),
        ] {
            let Some(p) = value else { continue };
            let normal = crate::routes::path::normalize(p, &PathOptions::default())
                .is_ok_and(|n| n == p.as_str());
            if !normal || p.len() < 2 || p.contains(['{', '}', '?', '#']) {
                c.error(
                    at,
                    format!("{key}.{field}"),
                    format!(
                        "expected a path such as /api (normalised, no parameters), found {p:?}"
                    ),
                );
            }
        }
        if let (Some(strip), Some(PathMatcher::Prefix(prefix) | PathMatcher::Exact(prefix))) =
            (&r.strip_prefix, &path)
        {
            let strip = strip.trim_end_matches('/');
            let covered = crate::routes::path::strip_segments(prefix, strip, true).is_some();
            if !covered {
                c.error(
                    at,
                    format!("{key}.strip_prefix"),
                    format!("{strip:?} is not a leading part of the route's path {prefix:?}, so it would not always apply"),
                );
            }
        }
        for (j, protocol) in r.upgrades.iter().enumerate() {
            let token = !protocol.is_empty()
                && protocol
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !token {
                c.error(
                    at,
                    format!("{key}.upgrades[{j}]"),
                    format!("expected a protocol name such as websocket, found {protocol:?}"),
                );
            }
        }
        let http2_upstream = upstream
            .flatten()
            .and_then(|i| self.upstream_list.get(i))
            .is_some_and(|u| u.settings.http2);
        if !r.upgrades.is_empty() && http2_upstream {
            c.error(
                at,
                format!("{key}.upgrades"),
                "upgrades need an HTTP/1.1 upstream; this route's upstream has http2: true",
            );
        }
        if r.max_body_bytes == Some(0) {
            c.error(
                at,
                format!("{key}.max_body_bytes"),
                "expected a number greater than 0 (omit for no limit)",
            );
        }
        if r.close_at_token_expiry && r.upgrades.is_empty() {
            c.error(
                at,
                format!("{key}.close_at_token_expiry"),
                "close_at_token_expiry applies to upgraded connections: list upgrades too",
            );
        }
        let (path, upstream, policy) = (path?, upstream?, policy?);
        let mut bound_headers = Vec::new();
        if let Policy::Authenticated(Some(condition)) = &policy {
            condition.bound_headers(&mut bound_headers);
        }
        Some(Route {
            name: r.name.as_str().into(),
            hosts,
            path,
            case_sensitive: r.case_sensitive.unwrap_or(self.default_case_sensitive),
            methods,
            upstream,
            policy,
            providers: allowed,
            claim_headers,
            bound_headers,
            strip_authorization: r.strip_authorization,
            token_sources: TokenSources {
                query_param: r.token_query_param.clone(),
                cookie: r.token_cookie.clone(),
            },
            max_body_bytes: r.max_body_bytes.or(self.default_max_body_bytes),
            upgrades: r.upgrades.iter().map(|u| u.to_ascii_lowercase()).collect(),
            close_at_token_expiry: r.close_at_token_expiry,
            strip_prefix: r
                .strip_prefix
                .as_deref()
                .map(|p| p.trim_end_matches('/').to_string()),
            add_prefix: r
                .add_prefix
                .as_deref()
                .map(|p| p.trim_end_matches('/').to_string()),
            origin: RuleOrigin {
                file: file.clone(),
                line,
                column: spanned.referenced.column(),
                index: i,
            },
        })
    }
}

fn compile_hosts(
    raw: Option<&StringOrList>,
    key: &str,
    at: Option<&Location>,
    c: &mut Collector,
) -> HostSet {
    let list: Vec<&str> = match raw {
        None => return HostSet::default(),
        Some(StringOrList::One(h)) => vec![h.as_str()],
        Some(StringOrList::Many(list)) => list.iter().map(String::as_str).collect(),
    };
    if list.is_empty() {
        c.error(
            at,
            format!("{key}.host"),
            "expected a host or a list of hosts, or no host key for any host",
        );
    }
    let mut out = Vec::new();
    for host in list {
        match HostPattern::parse(host) {
            Ok(p) => out.push(p),
            Err(e) => c.error(at, format!("{key}.host"), e),
        }
    }
    HostSet(out)
}

fn check_route_path<'p>(
    p: &'p str,
    options: &PathOptions,
    key: &str,
    at: Option<&Location>,
    c: &mut Collector,
) -> Option<&'p str> {
    match crate::routes::path::normalize(p, options) {
        Ok(n) if n == p => Some(p),
        Ok(n) => {
            c.error(
                at,
                key,
                format!(
                    "requests are matched in normal form, so {p:?} can never match; write {n:?}"
                ),
            );
            None
        }
        Err(problem) => {
            c.error(
                at,
                key,
                format!("{p:?} can never match a request: {problem}"),
            );
            None
        }
    }
}

fn compile_methods(
    raw: Option<&[String]>,
    key: &str,
    at: Option<&Location>,
    c: &mut Collector,
) -> MethodSet {
    let Some(list) = raw else {
        return MethodSet(None);
    };
    if list.is_empty() {
        c.error(
            at,
            format!("{key}.methods"),
            "expected a list of methods, or no methods key for any method",
        );
    }
    if list.iter().any(|m| m == "ANY") {
        if list.len() > 1 {
            c.error(at, format!("{key}.methods"), "ANY stands alone");
        }
        return MethodSet(None);
    }
    let mut methods = Vec::new();
    for (j, m) in list.iter().enumerate() {
        let valid = !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase());
        match Method::from_bytes(m.as_bytes()) {
            Ok(method) if valid => methods.push(method),
            _ => c.error(
                at,
                format!("{key}.methods[{j}]"),
                format!("expected an upper-case method such as GET or POST, or ANY; found {m:?}"),
            ),
        }
    }
    // Most frameworks answer HEAD with the GET handler, so a rule for GET judges HEAD too.
    if methods.contains(&Method::GET) && !methods.contains(&Method::HEAD) {
        methods.push(Method::HEAD);
    }
    MethodSet(Some(methods))
}

fn compile_policy(
    r: &RawRoute,
    key: &str,
    at: Option<&Location>,
    params: &[&str],
    c: &mut Collector,
) -> Option<Policy> {
    let kind = r.policy.unwrap_or(RawPolicy::Authenticated);
    match (kind, &r.require) {
        (RawPolicy::Public, None) => {
            if r.providers.is_some() || r.token_query_param.is_some() || r.token_cookie.is_some() {
                c.error(at, key.to_string(), "a public route reads no token: remove providers, token_query_param and token_cookie");
            }
            Some(Policy::Public)
        }
        (RawPolicy::Deny, None) => {
            if r.providers.is_some()
                || r.token_query_param.is_some()
                || r.token_cookie.is_some()
                || !r.claim_headers.is_empty()
                || r.strip_authorization
                || !r.upgrades.is_empty()
            {
                c.error(at, key.to_string(), "a policy: deny route reads no token and forwards nothing: remove providers, token_query_param, token_cookie, claim_headers, strip_authorization and upgrades");
            }
            match r.deny_status {
                None | Some(403) => Some(Policy::Deny(DenyAs::Forbidden)),
                Some(404) => Some(Policy::Deny(DenyAs::NotFound)),
                Some(other) => {
                    c.error(
                        at,
                        format!("{key}.deny_status"),
                        format!("expected 403 or 404, found {other}"),
                    );
                    None
                }
            }
        }
        (RawPolicy::Optional, None) => Some(Policy::Optional),
        (RawPolicy::Authenticated, None) => Some(Policy::Authenticated(None)),
        (RawPolicy::Authenticated, Some(cond)) => {
            compile_condition(cond, &format!("{key}.require"), params, c)
                .map(|c| Policy::Authenticated(Some(c)))
        }
        (_, Some(cond)) => {
            c.error(
                Some(&cond.referenced),
                format!("{key}.require"),
                "require needs policy: authenticated (the default)",
            );
            None
        }
    }
}

const OPERATORS: &str =
    "equals, in, contains, contains_any, contains_all, scope, exists, regex, gt, gte, lt, lte";

fn compile_condition(
    spanned: &Spanned<RawCondition>,
    key: &str,
    params: &[&str],
    c: &mut Collector,
) -> Option<Condition> {
    let at = Some(&spanned.referenced);
    let raw = &spanned.value;
    let combinators = raw.all.is_some() as u8 + raw.any.is_some() as u8 + raw.not.is_some() as u8;
    let operators: Vec<&str> = [
        ("equals", raw.equals.is_some()),
        ("in", raw.in_.is_some()),
        ("one_of", raw.one_of.is_some()),
        ("contains", raw.contains.is_some()),
        ("contains_any", raw.contains_any.is_some()),
        ("contains_all", raw.contains_all.is_some()),
        ("scope", raw.scope.is_some()),
        ("exists", raw.exists.is_some()),
        ("regex", raw.regex.is_some()),
        ("gt", raw.gt.is_some()),
        ("gte", raw.gte.is_some()),
        ("lt", raw.lt.is_some()),
        ("lte", raw.lte.is_some()),
    ]
    .iter()
    .filter(|(_, present)| *present)
    .map(|(name, _)| *name)
    .collect();
    if combinators > 0 {
        if combinators > 1 || !operators.is_empty() || raw.claim.is_some() {
            c.error(
                at,
                key,
                "all, any and not each stand alone: put the claim tests inside them",
            );
            return None;
        }
        if let Some(inner) = &raw.not {
            return compile_condition(inner, &format!("{key}.not"), params, c)
                .map(|inner| Condition::Not(Box::new(inner)));
        }
        let (name, list) = match (&raw.all, &raw.any) {
            (Some(list), _) => ("all", list),
            (_, Some(list)) => ("any", list),
            _ => return None,
        };
        if list.is_empty() {
            c.error(
                at,
                format!("{key}.{name}"),
                "expected one or more conditions",
            );
            return None;
        }
        let parts: Vec<_> = list
            .iter()
            .enumerate()
            .map(|(i, item)| compile_condition(item, &format!("{key}.{name}[{i}]"), params, c))
            .collect();
        let parts: Option<Vec<_>> = parts.into_iter().collect();
        return parts.map(|p| {
            if name == "all" {
                Condition::All(p)
            } else {
                Condition::Any(p)
            }
        });
    }
    let Some(claim) = &raw.claim else {
        c.error(
            at,
            key,
            format!("expected claim with one of {OPERATORS}, or all/any/not"),
        );
        return None;
    };
    let path = match ClaimPath::parse(claim) {
        Ok(p) => p,
        Err(e) => {
            c.error(at, format!("{key}.claim"), e);
            return None;
        }
    };
    let [field] = operators[..] else {
        let found = if operators.is_empty() {
            "none".to_string()
        } else {
            operators.join(", ")
        };
        c.error(
            at,
            key,
            format!("expected exactly one of {OPERATORS} beside claim, found {found}"),
        );
        return None;
    };
    let field_key = format!("{key}.{field}");
    let mut scalar = |v: &Value, c: &mut Collector| -> bool {
        let ok = matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_));
        if !ok {
            let hint = if v.is_array() {
                " (for a list, use in, contains_any or contains_all)"
            } else if v.is_object() {
                " (or {param: NAME} / {header: NAME} for equals and contains)"
            } else {
                ""
            };
            c.error(
                at,
                field_key.clone(),
                format!("expected a string, number or boolean{hint}"),
            );
        }
        ok
    };
    let list = |values: &Vec<Value>,
                c: &mut Collector,
                scalar: &mut dyn FnMut(&Value, &mut Collector) -> bool| {
        if values.is_empty() {
            c.error(
                at,
                format!("{key}.{field}"),
                "expected a list of one or more values",
            );
            return None;
        }
        // Every value is checked, so each wrong one gets its own error.
        let ok = values.iter().filter(|v| !scalar(v, c)).count() == 0;
        ok.then(|| values.clone())
    };
    let test = match field {
        "equals" | "contains" => {
            let value = raw.equals.as_ref().or(raw.contains.as_ref())?;
            let operand = match value {
                Value::Object(map) => {
                    compile_binding(map, &format!("{key}.{field}"), at, params, c)
                }
                v => scalar(v, c).then(|| Operand::Value(v.clone())),
            };
            operand.map(|o| {
                if field == "equals" {
                    ClaimTest::Equals(o)
                } else {
                    ClaimTest::Contains(o)
                }
            })
        }
        "in" | "one_of" => {
            list(raw.in_.as_ref().or(raw.one_of.as_ref())?, c, &mut scalar).map(ClaimTest::In)
        }
        "contains_any" => {
            list(raw.contains_any.as_ref()?, c, &mut scalar).map(ClaimTest::ContainsAny)
        }
        "contains_all" => {
            list(raw.contains_all.as_ref()?, c, &mut scalar).map(ClaimTest::ContainsAll)
        }
        "scope" => {
            let scopes: Vec<String> = match raw.scope.as_ref()? {
                StringOrList::One(s) => s.split_whitespace().map(str::to_string).collect(),
                StringOrList::Many(list) => list.clone(),
            };
            if scopes.is_empty()
                || scopes
                    .iter()
                    .any(|s| s.is_empty() || s.contains(char::is_whitespace))
            {
                c.error(
                    at,
                    format!("{key}.scope"),
                    "expected one or more scope names without spaces",
                );
                None
            } else {
                Some(ClaimTest::Scope(scopes))
            }
        }
        "exists" => raw.exists.map(ClaimTest::Exists),
        "regex" => match Pattern::new(raw.regex.as_deref()?) {
            Ok(p) => Some(ClaimTest::Regex(p)),
            Err(e) => {
                c.error(at, format!("{key}.regex"), e);
                None
            }
        },
        _ => {
            let (op, n) = match field {
                "gt" => (Comparison::Greater, raw.gt.as_ref()),
                "gte" => (Comparison::GreaterOrEqual, raw.gte.as_ref()),
                "lt" => (Comparison::Less, raw.lt.as_ref()),
                _ => (Comparison::LessOrEqual, raw.lte.as_ref()),
            };
            n.map(|n| ClaimTest::Compare(op, n.clone()))
        }
    };
    test.map(|test| Condition::Claim { path, test })
}

/// `{param: id}` (a parameter of the route's path template) or `{header: X-Tenant}`.
fn compile_binding(
    map: &serde_json::Map<String, Value>,
    key: &str,
    at: Option<&Location>,
    params: &[&str],
    c: &mut Collector,
) -> Option<Operand> {
    let expected = "expected {param: NAME} (a parameter of this route's path) or {header: NAME}";
    if map.len() != 1 {
        c.error(at, key, expected);
        return None;
    }
    match map.iter().next() {
        Some((kind, Value::String(name))) if kind == "param" => {
            match params.iter().position(|p| p == name) {
                Some(index) => Some(Operand::Param {
                    name: name.clone(),
                    index,
                }),
                None => {
                    let known = if params.is_empty() {
                        "this route's path has no parameters; write path: /users/{id}".to_string()
                    } else {
                        format!("known: {}", params.join(", "))
                    };
                    c.error(
                        at,
                        format!("{key}.param"),
                        format!("no path parameter {{{name}}} ({known})"),
                    );
                    None
                }
            }
        }
        Some((kind, Value::String(name))) if kind == "header" => match HeaderName::from_str(name) {
            Ok(h) => Some(Operand::Header(h)),
            Err(_) => {
                c.error(
                    at,
                    format!("{key}.header"),
                    format!("{name:?} is not a valid header name"),
                );
                None
            }
        },
        _ => {
            c.error(at, key, expected);
            None
        }
    }
}

fn compile_claim_headers(
    raw: &BTreeMap<String, String>,
    key: &str,
    at: Option<&Location>,
    c: &mut Collector,
) -> Vec<ClaimHeader> {
    let mut out = Vec::new();
    for (header, claim) in raw {
        let field = format!("{key}.claim_headers.{header}");
        let name = match HeaderName::from_str(header) {
            Ok(n) => n,
            Err(_) => {
                c.error(at, field, format!("{header:?} is not a valid header name"));
                continue;
            }
        };
        if is_reserved_for_injection(&name) {
            c.error(
                at,
                field,
                format!(
                    "{header} is managed by the gateway or by HTTP itself and cannot carry a claim"
                ),
            );
            continue;
        }
        match ClaimPath::parse(claim) {
            Ok(path) => out.push(ClaimHeader { name, claim: path }),
            Err(e) => c.error(at, field, e),
        }
    }
    out
}
