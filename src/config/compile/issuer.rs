//! `issuer:` → `IssuerSpec`, its provider `self` (so the gateway verifies its own tokens like
//! anyone's) and its routes (public, answered locally).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use jsonwebtoken::Algorithm;

use super::{resolve, source_file};
use crate::config::diagnostic::Collector;
use crate::config::raw::RawIssuer;
use crate::issuer::refresh::RefreshKey;
use crate::issuer::signing::{self, SigningKey};
use crate::issuer::store::StoreSpec;
use crate::issuer::throttle::UserThrottle;
use crate::issuer::{Endpoint, IssuerSpec, cookie, users};
use crate::keys::jwks;
use crate::keys::store::KeysSpec;
use crate::metrics::RouteStats;
use crate::routes::matcher::{HostSet, MethodSet, PathMatcher};
use crate::routes::policy::Policy;
use crate::routes::{Route, RuleOrigin};
use crate::token::extract::TokenSources;
use crate::token::verify::Provider;

/// The name of the provider that verifies the issuer's own tokens.
pub const SELF_PROVIDER: &str = "self";

const MIN_REFRESH_KEY: usize = 32;

/// The issuer's parts, when `issuer:` is present and valid.
pub(super) struct Compiled {
    pub spec: IssuerSpec,
    pub provider: Provider<KeysSpec>,
    pub routes: Vec<Route>,
}

fn bounded(
    value: Option<crate::config::values::Duration>,
    default: Duration,
    (min, max): (Duration, Duration),
    key: &str,
    c: &mut Collector,
) -> Duration {
    let d = value.map_or(default, |d| d.0);
    if d < min || d > max {
        c.error(
            None,
            key,
            format!(
                "expected {} to {}, found {}",
                humantime::format_duration(min),
                humantime::format_duration(max),
                humantime::format_duration(d)
            ),
        );
    }
    d
}

/// `scheme://host[:port]` of an issuer URL, or why it is not one.
fn origin_of(issuer: &str) -> Result<(String, bool), String> {
    let uri: http::Uri = issuer.parse().map_err(|e| format!("not a URL: {e}"))?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err("expected an absolute URL such as https://auth.example.com".into());
    };
    let loopback = matches!(authority.host(), "localhost" | "127.0.0.1" | "[::1]");
    if scheme != "https" && !(scheme == "http" && loopback) {
        return Err("expected https:// (http:// only for localhost)".into());
    }
    if issuer.contains('?') || issuer.contains('#') {
        return Err("an issuer has no query or fragment".into());
    }
    let has_path = !matches!(uri.path(), "" | "/");
    Ok((format!("{scheme}://{authority}"), has_path))
}

/// Reads `path`, or makes it with `make` (mode 0600) when it does not exist.
fn read_or_generate(
    path: &Path,
    make: impl FnOnce() -> Result<Vec<u8>, String>,
) -> Result<Vec<u8>, String> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let bytes = make()?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            use std::io::Write;
            options
                .open(path)
                .and_then(|mut f| f.write_all(&bytes))
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            tracing::info!(file = %path.display(), "issuer: generated");
            Ok(bytes)
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

pub(super) fn compile_issuer(raw: &RawIssuer, base: &Path, c: &mut Collector) -> Option<Compiled> {
    let before = c.found.len();
    let issuer = raw.issuer.as_str().to_string();
    let origin = match origin_of(&issuer) {
        Ok((origin, has_path)) => {
            if has_path {
                c.warn(None, "issuer.issuer", "a bare origin (no path) is the recommended issuer: clients derive the metadata URL from it");
            }
            origin
        }
        Err(e) => {
            c.error(None, "issuer.issuer", e);
            String::new()
        }
    };
    let audiences: Vec<String> = raw
        .audiences
        .iter()
        .map(|a| a.as_str().to_string())
        .collect();
    if audiences.is_empty() || audiences.iter().any(String::is_empty) {
        c.error(
            None,
            "issuer.audiences",
            "expected at least one non-empty audience",
        );
    }
    let data_dir = resolve(base, raw.data_dir.as_ref().map_or("data", |d| d.as_str()));
    let store = match raw.store.as_ref().map(|s| s.as_str()) {
        None | Some("sqlite") => StoreSpec::Sqlite(data_dir.join("issuer.sqlite")),
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            StoreSpec::Postgres(url.to_string())
        }
        Some(other) => {
            c.error(
                None,
                "issuer.store",
                format!(
                    "expected sqlite or a postgres:// URL, found {:?}",
                    crate::issuer::store::postgres::redact(other)
                ),
            );
            StoreSpec::Sqlite(data_dir.join("issuer.sqlite"))
        }
    };

    // Signing keys: from files, or one generated for a single node.
    let mut keys = Vec::new();
    if raw.signing_keys.is_empty() {
        if store.is_shared() {
            c.error(None, "issuer.signing_keys", "replicas sharing a store must share their signing keys: list PEM files here (a generated key is for a single node with the SQLite store)");
        } else {
            let path = data_dir.join("signing-key.pem");
            c.source(&path);
            match read_or_generate(&path, || {
                signing::generate_es256_pem().map(String::into_bytes)
            })
            .and_then(|pem| SigningKey::from_pem(&pem, None))
            {
                Ok(key) => keys.push(key),
                Err(e) => c.error(None, "issuer.data_dir", e),
            }
        }
    }
    for (i, k) in raw.signing_keys.iter().enumerate() {
        let key = format!("issuer.signing_keys[{i}]");
        let path = source_file(base, k.file.as_str(), c);
        match std::fs::read(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
            .and_then(|pem| SigningKey::from_pem(&pem, k.kid.as_ref().map(|t| t.as_str())))
        {
            Ok(signing_key) => {
                if keys
                    .iter()
                    .any(|other: &SigningKey| other.kid == signing_key.kid)
                {
                    c.error(
                        None,
                        format!("{key}.kid"),
                        format!("kid {:?} is used twice", signing_key.kid),
                    );
                }
                keys.push(signing_key);
            }
            Err(e) => c.error(None, format!("{key}.file"), e),
        }
    }

    // The refresh MAC key.
    let secret = match &raw.refresh_key_file {
        Some(file) => {
            let path = source_file(base, file.as_str(), c);
            std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))
        }
        None if store.is_shared() => Err("replicas sharing a store must share the refresh key: set refresh_key_file (32 or more random bytes)".into()),
        None => {
            let path = data_dir.join("refresh.key");
            c.source(&path);
            read_or_generate(&path, || {
                crate::issuer::refresh::random_text(32).map(String::into_bytes).ok_or_else(|| "no randomness".to_string())
            })
        }
    };
    let refresh_key = match secret {
        Ok(bytes) if bytes.len() >= MIN_REFRESH_KEY => Some(RefreshKey::new(&bytes)),
        Ok(bytes) => {
            c.error(
                None,
                "issuer.refresh_key_file",
                format!(
                    "expected at least {MIN_REFRESH_KEY} bytes, found {}",
                    bytes.len()
                ),
            );
            None
        }
        Err(e) => {
            c.error(None, "issuer.refresh_key_file", e);
            None
        }
    };

    // Users.
    let users_path = source_file(base, raw.users_file.as_str(), c);
    let users = match std::fs::read_to_string(&users_path) {
        Ok(text) => {
            let (users, findings) = users::parse(&text);
            for (key, message) in findings.errors {
                c.error(
                    None,
                    format!("issuer.users_file: {}: {key}", users_path.display()),
                    message,
                );
            }
            for (key, message) in findings.warnings {
                c.warn(
                    None,
                    format!("issuer.users_file: {}: {key}", users_path.display()),
                    message,
                );
            }
            users
        }
        Err(e) => {
            c.error(
                None,
                "issuer.users_file",
                format!("cannot read {}: {e}", users_path.display()),
            );
            users::Users::default()
        }
    };

    let minute = Duration::from_secs(60);
    let hour = 60 * minute;
    let access_ttl = bounded(
        raw.access_token_ttl,
        10 * minute,
        (minute, hour),
        "issuer.access_token_ttl",
        c,
    );
    let refresh_idle = bounded(
        raw.refresh_idle_ttl,
        hour,
        (minute, 90 * 24 * hour),
        "issuer.refresh_idle_ttl",
        c,
    );
    let refresh_absolute = bounded(
        raw.refresh_absolute_ttl,
        8 * hour,
        (minute, 90 * 24 * hour),
        "issuer.refresh_absolute_ttl",
        c,
    );
    let grace = bounded(
        raw.grace,
        Duration::from_secs(10),
        (Duration::ZERO, minute),
        "issuer.grace",
        c,
    );
    let publish_ahead = bounded(
        raw.publish_ahead,
        hour,
        (Duration::ZERO, 30 * 24 * hour),
        "issuer.publish_ahead",
        c,
    );
    let window = bounded(
        raw.login_throttle.window,
        15 * minute,
        (Duration::from_secs(1), 24 * hour),
        "issuer.login_throttle.window",
        c,
    );
    let max_delay = bounded(
        raw.login_throttle.max_delay,
        15 * minute,
        (Duration::from_secs(1), 24 * hour),
        "issuer.login_throttle.max_delay",
        c,
    );
    let cookie_name = raw
        .cookie_name
        .as_ref()
        .map_or(cookie::DEFAULT_NAME, |n| n.as_str())
        .to_string();
    let token_char = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if !cookie_name.starts_with("__Host-") || !cookie_name.bytes().all(token_char) {
        c.error(None, "issuer.cookie_name", "expected a cookie name starting with __Host- (the browser then refuses it over HTTP, from a subdomain, or with a Domain)");
    }
    let csrf_header = match HeaderName::try_from(
        raw.csrf_header
            .as_ref()
            .map_or("x-portcullis-csrf", |h| h.as_str()),
    ) {
        Ok(h) => h,
        Err(_) => {
            c.error(None, "issuer.csrf_header", "expected a header name");
            HeaderName::from_static("x-portcullis-csrf")
        }
    };
    let mut allowed_origins = Vec::new();
    for (i, o) in raw.allowed_origins.iter().enumerate() {
        match origin_of(o.as_str()) {
            Ok((origin, false)) if origin == o.as_str().trim_end_matches('/') => {
                allowed_origins.push(origin)
            }
            _ => c.error(
                None,
                format!("issuer.allowed_origins[{i}]"),
                "expected an origin: https://host[:port], no path",
            ),
        }
    }
    let per_minute = raw.client_rate.per_minute.unwrap_or(20);
    let burst = raw.client_rate.burst.unwrap_or(10);
    if !(1..=100_000).contains(&per_minute) || !(1..=100_000).contains(&burst) {
        c.error(
            None,
            "issuer.client_rate",
            "per_minute and burst are 1–100000",
        );
    }
    let failures = raw.login_throttle.failures.unwrap_or(5);
    if !(1..=1000).contains(&failures) {
        c.error(None, "issuer.login_throttle.failures", "expected 1–1000");
    }
    let revocation_on = raw.revocation.enabled.unwrap_or(false);
    let sync_every = bounded(
        raw.revocation.sync_every,
        Duration::from_secs(5),
        (Duration::from_secs(1), 5 * minute),
        "issuer.revocation.sync_every",
        c,
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let hashing_permits = raw.hashing.concurrency.unwrap_or(cores);
    if hashing_permits == 0 || hashing_permits > 256 {
        c.error(None, "issuer.hashing.concurrency", "expected 1–256");
    }

    if c.found.len() > before {
        return None;
    }
    let refresh_key = refresh_key?;

    // The provider that verifies these tokens: the public keys, as a local JWKS.
    let document =
        serde_json::json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()})
            .to_string();
    let algorithms: Vec<Algorithm> = {
        let mut a: Vec<Algorithm> = keys.iter().map(|k| k.alg).collect();
        a.dedup();
        a
    };
    let local = match jwks::parse(document.as_bytes(), &algorithms, false) {
        Ok(parsed) => parsed.keys,
        Err(e) => {
            c.error(None, "issuer.signing_keys", e);
            return None;
        }
    };
    let mut fingerprint = [0u8; 32];
    fingerprint.copy_from_slice(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, document.as_bytes()).as_ref(),
    );
    let provider = Provider {
        name: SELF_PROVIDER.into(),
        issuer: issuer.clone(),
        audiences: Some(audiences.clone()),
        algorithms,
        keys: KeysSpec {
            local,
            fingerprint,
            remote: None,
        },
        leeway: super::DEFAULT_LEEWAY_SECS,
        require_exp: true,
        types: Some(vec!["at+jwt".into()]),
        clients: None,
    };
    let sign_in_page = raw.sign_in_page.unwrap_or(true);
    let file: Arc<Path> = Arc::from(c.file.as_path());
    let routes = Endpoint::ALL
        .iter()
        .filter(|(e, ..)| sign_in_page || *e != Endpoint::SignInPage)
        .enumerate()
        .filter_map(|(index, (endpoint, method, path, name))| {
            Some(Route {
                name: (*name).into(),
                hosts: HostSet(Vec::new()),
                path: PathMatcher::path(path).ok()?,
                case_sensitive: true,
                methods: MethodSet(Some(vec![method.clone()])),
                upstream: None,
                local: Some(*endpoint),
                policy: Policy::Public,
                providers: None,
                claim_headers: Vec::new(),
                bound_headers: Vec::new(),
                strip_authorization: false,
                token_sources: TokenSources::default(),
                max_body_bytes: Some(crate::issuer::MAX_BODY as u64),
                strip_prefix: None,
                add_prefix: None,
                upgrades: Vec::new(),
                close_at_token_expiry: false,
                origin: RuleOrigin {
                    file: file.clone(),
                    line: 0,
                    column: 0,
                    index,
                },
                stats: RouteStats::new(),
            })
        })
        .collect();
    Some(Compiled {
        spec: IssuerSpec {
            issuer,
            origin,
            audiences,
            client_id: raw
                .client_id
                .as_ref()
                .map_or("portcullis", |t| t.as_str())
                .to_string(),
            store,
            keys,
            refresh_key,
            users,
            access_ttl,
            refresh_idle,
            refresh_absolute,
            grace,
            publish_ahead,
            cookie_name,
            allowed_origins,
            csrf_header,
            sign_in_page,
            throttle: UserThrottle {
                free: failures,
                window,
                max_delay,
            },
            client_rate: crate::issuer::store::Bucket { per_minute, burst },
            hashing_permits,
            hashing_queue: raw.hashing.queue.unwrap_or(16),
            revocation: revocation_on.then_some(sync_every),
            provider: usize::MAX,
        },
        provider,
        routes,
    })
}
