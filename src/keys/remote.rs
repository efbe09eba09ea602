//! Fetching a provider's keys over HTTP(S): a `jwks_uri`, or OIDC discovery of it. Bounded in
//! time and size; the response's `Cache-Control: max-age` says how long the keys are fresh.

use std::sync::OnceLock;
use std::time::Duration;

use http::header::{ACCEPT, CACHE_CONTROL};
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use thiserror::Error;

use super::VerifyKey;
use super::jwks;

/// Largest JWKS or discovery document accepted.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// Where the keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteSource {
    /// A JWKS URL.
    JwksUri(String),
    /// `<issuer>/.well-known/openid-configuration`, whose `issuer` must equal the configured
    /// one and whose `jwks_uri` is then used.
    Discovery { issuer: String },
}

/// Refresh policy of a remote key set, with defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteSettings {
    /// Whole-request timeout of one fetch (default 5 s).
    pub fetch_timeout: Duration,
    /// Shortest freshness, whatever `max-age` says (default 5 min).
    pub min_refresh: Duration,
    /// Longest freshness, and the freshness when no `max-age` is sent (default 24 h).
    pub max_refresh: Duration,
    /// How long the last good keys keep being used while refreshes fail (default 24 h).
    pub max_stale: Duration,
    /// How long a `kid` that a fresh fetch did not find is refused without fetching again
    /// (default 30 s).
    pub unknown_kid_cooldown: Duration,
    /// Fetches that tokens with never-seen kids may cause back to back (default 3)…
    pub unknown_kid_burst: u32,
    /// …and one more per this interval (default 10 s).
    pub unknown_kid_refill: Duration,
    /// Refuse to start when the first fetch fails (default false: start, answer
    /// `keys_unavailable`, keep retrying).
    pub fail_fast: bool,
}

impl Default for RemoteSettings {
    fn default() -> Self {
        RemoteSettings {
            fetch_timeout: Duration::from_secs(5),
            min_refresh: Duration::from_secs(300),
            max_refresh: Duration::from_secs(24 * 3600),
            max_stale: Duration::from_secs(24 * 3600),
            unknown_kid_cooldown: Duration::from_secs(30),
            unknown_kid_burst: 3,
            unknown_kid_refill: Duration::from_secs(10),
            fail_fast: false,
        }
    }
}

/// Why a fetch brought no keys.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FetchError {
    #[error("request to {url} failed: {reason}")]
    Transport { url: String, reason: String },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: the document is larger than {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge { url: String },
    #[error("{url}: {reason}")]
    Invalid { url: String, reason: String },
    #[error("{url}: discovery names issuer {found:?}, not the configured {expected:?}")]
    IssuerMismatch {
        url: String,
        found: String,
        expected: String,
    },
    #[error("{url}: no usable key in the JWKS")]
    NoUsableKeys { url: String },
}

/// One successful fetch.
#[derive(Debug)]
pub struct Fetched {
    pub jwks_uri: String,
    pub keys: Vec<VerifyKey>,
    pub skipped: Vec<String>,
    /// SHA-256 of the JWKS document: an unchanged document is not a new key set.
    pub digest: [u8; 32],
    /// `max-age` of the response, if it sent one.
    pub max_age: Option<Duration>,
}

/// Fetches keys for one provider.
#[derive(Debug, Clone)]
pub struct Fetcher {
    pub source: RemoteSource,
    algorithms: Vec<Algorithm>,
    fetch_timeout: Duration,
    ca_pem: Option<Vec<u8>>,
    /// Built at the first fetch, so a store that never fetches (`explain` without a token)
    /// makes no client.
    client: OnceLock<Result<reqwest::Client, String>>,
}

/// What the config says of a remote key source: plain data, compared on reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSpec {
    pub source: RemoteSource,
    pub algorithms: Vec<Algorithm>,
    pub settings: RemoteSettings,
    /// Trust only this CA (PEM) instead of the system roots.
    pub ca_pem: Option<Vec<u8>>,
}

impl RemoteSpec {
    /// Checks what would make the fetcher's client fail to build (the CA file).
    pub fn check(&self) -> Result<(), String> {
        match &self.ca_pem {
            None => Ok(()),
            Some(pem) => {
                let certs = reqwest::Certificate::from_pem_bundle(pem)
                    .map_err(|e| format!("ca_file: {e}"))?;
                if certs.is_empty() {
                    return Err("ca_file holds no certificate".into());
                }
                Ok(())
            }
        }
    }
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

impl Fetcher {
    pub fn new(spec: &RemoteSpec) -> Fetcher {
        Fetcher {
            source: spec.source.clone(),
            algorithms: spec.algorithms.clone(),
            fetch_timeout: spec.settings.fetch_timeout,
            ca_pem: spec.ca_pem.clone(),
            client: OnceLock::new(),
        }
    }

    fn client(&self) -> Result<&reqwest::Client, String> {
        let built = self.client.get_or_init(|| {
            let mut builder = reqwest::Client::builder()
                .timeout(self.fetch_timeout)
                .connect_timeout(self.fetch_timeout)
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
                .no_proxy();
            if let Some(pem) = &self.ca_pem {
                let certs = reqwest::Certificate::from_pem_bundle(pem)
                    .map_err(|e| format!("ca_file: {e}"))?;
                builder = builder.tls_certs_only(certs);
            }
            builder
                .build()
                .map_err(|e| format!("cannot build the HTTP client: {e}"))
        });
        built.as_ref().map_err(Clone::clone)
    }

    /// Finds the JWKS URL: the configured one, the one remembered from an earlier discovery,
    /// or a new discovery.
    pub async fn jwks_uri(&self, remembered: Option<&str>) -> Result<String, FetchError> {
        match (&self.source, remembered) {
            (RemoteSource::JwksUri(uri), _) => Ok(uri.clone()),
            (RemoteSource::Discovery { .. }, Some(uri)) => Ok(uri.to_string()),
            (RemoteSource::Discovery { issuer }, None) => self.discover(issuer).await,
        }
    }

    async fn discover(&self, issuer: &str) -> Result<String, FetchError> {
        let url = discovery_url(issuer);
        let (body, _) = self.get(&url).await?;
        let doc: Discovery = serde_json::from_slice(&body).map_err(|e| FetchError::Invalid {
            url: url.clone(),
            reason: format!("not an OpenID configuration: {e}"),
        })?;
        if doc.issuer != issuer {
            return Err(FetchError::IssuerMismatch {
                url,
                found: doc.issuer,
                expected: issuer.to_string(),
            });
        }
        let scheme_ok = doc.jwks_uri.starts_with("https://")
            || (doc.jwks_uri.starts_with("http://") && issuer.starts_with("http://"));
        if !scheme_ok {
            return Err(FetchError::Invalid {
                url,
                reason: format!("jwks_uri {:?} is not https", doc.jwks_uri),
            });
        }
        Ok(doc.jwks_uri)
    }

    /// Fetches and parses the JWKS at `uri`.
    pub async fn fetch(&self, uri: &str) -> Result<Fetched, FetchError> {
        let (body, max_age) = self.get(uri).await?;
        let parsed =
            jwks::parse(&body, &self.algorithms, false).map_err(|reason| FetchError::Invalid {
                url: uri.to_string(),
                reason,
            })?;
        if parsed.keys.is_empty() {
            return Err(FetchError::NoUsableKeys {
                url: uri.to_string(),
            });
        }
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &body);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest.as_ref());
        Ok(Fetched {
            jwks_uri: uri.to_string(),
            keys: parsed.keys,
            skipped: parsed.skipped,
            digest: bytes,
            max_age,
        })
    }

    async fn get(&self, url: &str) -> Result<(Vec<u8>, Option<Duration>), FetchError> {
        let transport = |e: reqwest::Error| FetchError::Transport {
            url: url.to_string(),
            reason: error_chain(&e),
        };
        let client = self.client().map_err(|reason| FetchError::Transport {
            url: url.to_string(),
            reason,
        })?;
        let mut response = client
            .get(url)
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(transport)?;
        if !response.status().is_success() {
            return Err(FetchError::Status {
                url: url.to_string(),
                status: response.status().as_u16(),
            });
        }
        let max_age = response
            .headers()
            .get(CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(max_age);
        if response
            .content_length()
            .is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64)
        {
            return Err(FetchError::TooLarge {
                url: url.to_string(),
            });
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(FetchError::TooLarge {
                    url: url.to_string(),
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, max_age))
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// `<issuer>/.well-known/openid-configuration` (OpenID Connect Discovery §4).
pub fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// The freshness a `Cache-Control` value grants: `max-age=N`, or zero for `no-cache` /
/// `no-store`; `None` when it says nothing about it.
pub fn max_age(cache_control: &str) -> Option<Duration> {
    let mut found = None;
    for directive in cache_control.split(',') {
        let directive = directive.trim();
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(Duration::ZERO);
        }
        if let Some(value) = lower.strip_prefix("max-age=") {
            found = value
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    found
}

/// How long a fetched key set is fresh: `max-age` clamped to `[min_refresh, max_refresh]`.
pub fn freshness(max_age: Option<Duration>, settings: &RemoteSettings) -> Duration {
    max_age.unwrap_or(settings.max_refresh).clamp(
        settings.min_refresh,
        settings.max_refresh.max(settings.min_refresh),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_table() {
        let cases: &[(&str, Option<u64>)] = &[
            ("max-age=300", Some(300)),
            ("public, max-age=86400, must-revalidate", Some(86400)),
            ("Max-Age=60", Some(60)),
            ("no-cache", Some(0)),
            ("private, no-store", Some(0)),
            ("public", None),
            ("max-age=abc", None),
            ("", None),
        ];
        for (header, want) in cases {
            assert_eq!(max_age(header), want.map(Duration::from_secs), "{header}");
        }
    }

    #[test]
    fn freshness_is_clamped() {
        let s = RemoteSettings::default();
        assert_eq!(freshness(Some(Duration::from_secs(10)), &s), s.min_refresh);
        assert_eq!(
            freshness(Some(Duration::from_secs(3600)), &s),
            Duration::from_secs(3600)
        );
        assert_eq!(
            freshness(Some(Duration::from_secs(10 * 86400)), &s),
            s.max_refresh
        );
        assert_eq!(freshness(None, &s), s.max_refresh);
    }

    #[test]
    fn discovery_url_table() {
        assert_eq!(
            discovery_url("https://id.example"),
            "https://id.example/.well-known/openid-configuration"
        );
        assert_eq!(
            discovery_url("https://id.example/"),
            "https://id.example/.well-known/openid-configuration"
        );
        assert_eq!(
            discovery_url("https://id.example/realms/main"),
            "https://id.example/realms/main/.well-known/openid-configuration"
        );
    }
}
