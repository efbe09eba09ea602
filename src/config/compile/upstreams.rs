//! `upstreams:`: targets, timeouts, pooling, balancing, health checks and TLS material.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use http::uri::{PathAndQuery, Scheme};
use http::{HeaderValue, Uri};
use serde_saphyr::{Location, Spanned};

use super::source_file;
use crate::config::diagnostic::Collector;
use crate::config::raw::RawUpstream;
use crate::proxy::client::{HealthCheck, HostRewrite, UpstreamSettings, UpstreamSpec};
use crate::tls::ClientMaterial;

pub(super) fn compile_upstreams(
    raw: &BTreeMap<String, Spanned<RawUpstream>>,
    base: &Path,
    c: &mut Collector,
) -> (Vec<UpstreamSpec>, HashMap<String, usize>) {
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
        out.extend(built);
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
) -> Option<UpstreamSpec> {
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
            source_file(base, cert.as_str(), c),
            source_file(base, key_file.as_str(), c),
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
        .map(|f| source_file(base, f.as_str(), c));
    let tls = match ClientMaterial::read(
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
    Some(UpstreamSpec {
        name: name.into(),
        scheme: scheme?,
        authorities,
        settings,
        tls,
    })
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
