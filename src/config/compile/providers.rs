//! `providers:`: issuers, audiences, algorithms, leeway and their key sources.

use std::collections::HashSet;
use std::path::Path;
use std::str::FromStr;

use base64::Engine;
use http::Uri;
use jsonwebtoken::Algorithm;
use serde_saphyr::{Location, Spanned};

use super::source_file;
use crate::config::diagnostic::Collector;
use crate::config::raw::{RawAudiences, RawProvider};
use crate::keys::remote::{RemoteSettings, RemoteSource, RemoteSpec};
use crate::keys::store::KeysSpec;
use crate::keys::{VerifyKey, jwks, source};
use crate::token::verify::Provider;

/// Default clock-skew leeway, in seconds.
pub const DEFAULT_LEEWAY_SECS: u64 = 30;
/// Largest leeway accepted, in seconds.
const MAX_LEEWAY_SECS: u64 = 600;

pub(super) fn compile_providers(
    raw: &[Spanned<RawProvider>],
    base: &Path,
    c: &mut Collector,
) -> Vec<Provider<KeysSpec>> {
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
        let (keys, fingerprint) = compile_keys(p, &key, at, &algorithms, base, c);
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
            keys: KeysSpec {
                local: keys,
                fingerprint,
                remote,
            },
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
) -> Option<RemoteSpec> {
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
    let pick = |v: Option<&crate::config::values::Duration>, default| v.map_or(default, |d| d.0);
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
        RemoteSource::Discovery { issuer } => crate::keys::remote::discovery_url(issuer),
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
            let path = source_file(base, file.as_str(), c);
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
    let spec = RemoteSpec {
        source,
        algorithms: algorithms.to_vec(),
        settings,
        ca_pem,
    };
    match spec.check() {
        Ok(()) => Some(spec),
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
) -> (Vec<VerifyKey>, [u8; 32]) {
    let mut keys = Vec::new();
    // What the keys are made of, so a reload can tell whether they changed.
    let mut sources = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut feed = |part: &[u8]| {
        sources.update(&(part.len() as u64).to_be_bytes());
        sources.update(part);
    };
    feed(format!("{algorithms:?}").as_bytes());
    if let Some(file) = &p.jwks_file {
        let path = source_file(base, file.as_str(), c);
        match std::fs::read(&path) {
            Err(e) => c.error(
                at,
                format!("{key}.jwks_file"),
                format!("cannot read {}: {e}", path.display()),
            ),
            Ok(bytes) => match jwks::parse(&bytes, algorithms, true).inspect(|_| feed(&bytes)) {
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
        let path = source_file(base, pk.file.as_str(), c);
        match source::load_pem_public_key(&path, pk.kid.clone(), alg) {
            Ok(k) => {
                feed(&std::fs::read(&path).unwrap_or_default());
                feed(format!("{:?} {alg:?}", pk.kid).as_bytes());
                keys.push(k)
            }
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
                let path = source_file(base, file.as_str(), c);
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
        match bytes.and_then(|b| {
            feed(&b);
            feed(format!("{:?}", secret.kid).as_bytes());
            source::hmac_key(&b, secret.kid.clone())
        }) {
            Ok(k) => keys.push(k),
            Err(e) => c.error(at, k, e),
        }
    }
    let mut fingerprint = [0u8; 32];
    fingerprint.copy_from_slice(sources.finish().as_ref());
    (keys, fingerprint)
}
