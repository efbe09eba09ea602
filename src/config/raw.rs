//! A serde mirror of the YAML file. Unknown keys are errors; only `compile.rs` reads these types.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::values::{Duration, Text};
use crate::proxy::client::Balance;
use crate::routes::path::{
    DotSegments, EmptySegments, EncodedSlash, PathParameters, WindowsSegments,
};

/// The whole file.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(
    title = "Portcullis config",
    description = "The gateway's config file (see the README's configuration reference)."
)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[schemars(with = "Vec<RawListener>")]
    pub listeners: Vec<Spanned<RawListener>>,
    #[serde(default)]
    pub server: RawServer,
    #[schemars(with = "BTreeMap<String, RawUpstream>")]
    pub upstreams: BTreeMap<String, Spanned<RawUpstream>>,
    #[serde(default)]
    #[schemars(with = "Vec<RawProvider>")]
    pub providers: Vec<Spanned<RawProvider>>,
    #[serde(default)]
    pub paths: RawPaths,
    /// Files, directories (every `*.yaml`/`*.yml` in it) or globs of rule files, relative to
    /// this file; their routes follow this file's, in the order listed, each expansion sorted
    /// by file name.
    #[serde(default)]
    #[schemars(with = "Vec<Text>")]
    pub rule_files: Vec<Spanned<Text>>,
    #[serde(default)]
    #[schemars(with = "Vec<RawRoute>")]
    pub routes: Vec<Spanned<RawRoute>>,
    /// The admin listener (health, readiness, reload, effective config).
    pub admin: Option<RawAdmin>,
    /// How config changes are picked up.
    #[serde(default)]
    pub reload: RawReload,
    /// The built-in token issuer (login, refresh, logout, published keys); absent: off.
    pub issuer: Option<RawIssuer>,
}

/// `issuer:`: Portcullis hands out access tokens and refresh cookies itself.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawIssuer {
    /// `iss` of every token: the bare origin clients reach the gateway at
    /// (`https://auth.example.com`).
    pub issuer: Text,
    /// `aud` of every token (at least one).
    pub audiences: Vec<Text>,
    /// The user file (usernames, argon2id hashes, claims), relative to this file.
    pub users_file: Text,
    /// `sqlite` (default: a file in `data_dir`, one node) or a `postgres://` URL (replicas).
    pub store: Option<Text>,
    /// Where the SQLite file and generated keys live (default `data`, relative to this file).
    pub data_dir: Option<Text>,
    /// PKCS#8 PEM signing keys (ES256 or EdDSA); absent: one generated in `data_dir` (SQLite
    /// only).
    #[serde(default)]
    pub signing_keys: Vec<RawSigningKey>,
    /// A file of at least 32 bytes refresh tokens are MAC'd with; absent: generated in
    /// `data_dir` (SQLite only).
    pub refresh_key_file: Option<Text>,
    /// Access-token lifetime (default 10m, at most 1h).
    pub access_token_ttl: Option<Duration>,
    /// A refresh family unused this long ends (default 1h).
    pub refresh_idle_ttl: Option<Duration>,
    /// A refresh family ends this long after login whatever happens (default 8h, at most 90d).
    pub refresh_absolute_ttl: Option<Duration>,
    /// The previous refresh token still gets the current successor this long (default 10s,
    /// at most 60s).
    pub grace: Option<Duration>,
    /// A new signing key is published this long before it signs (default 1h).
    pub publish_ahead: Option<Duration>,
    /// The refresh cookie's name; must start with `__Host-` (default
    /// `__Host-portcullis-refresh`).
    pub cookie_name: Option<Text>,
    /// Origins besides the issuer's own allowed to POST to the endpoints.
    #[serde(default)]
    pub allowed_origins: Vec<Text>,
    /// The request header the POST endpoints require with value `1` (default
    /// `X-Portcullis-CSRF`).
    pub csrf_header: Option<Text>,
    /// Serve the sign-in page at `GET /auth/login` (default true).
    pub sign_in_page: Option<bool>,
    /// `client_id` of the access tokens (RFC 9068; default `portcullis`).
    pub client_id: Option<Text>,
    #[serde(default)]
    pub login_throttle: RawLoginThrottle,
    #[serde(default)]
    pub client_rate: RawClientRate,
    #[serde(default)]
    pub hashing: RawHashing,
    #[serde(default)]
    pub revocation: RawRevocation,
}

/// One signing key.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSigningKey {
    pub file: Text,
    /// Default: the key's RFC 7638 thumbprint.
    pub kid: Option<Text>,
}

/// Per-username failure handling.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLoginThrottle {
    /// Failures before delays start (default 5).
    pub failures: Option<i64>,
    /// Failures are forgotten this long after the last one (default 15m).
    pub window: Option<Duration>,
    /// The longest delay (default 15m).
    pub max_delay: Option<Duration>,
}

/// Login attempts per client address (a token bucket).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawClientRate {
    /// Default 20.
    pub per_minute: Option<i64>,
    /// Default 10.
    pub burst: Option<i64>,
}

/// Password hashing concurrency.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHashing {
    /// Hashes at once (default: the number of cores).
    pub concurrency: Option<usize>,
    /// Logins waiting beyond those (default 16); more: 503.
    pub queue: Option<usize>,
}

/// Access-token revocation (off by default).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRevocation {
    /// Refuse the issuer's access tokens whose `jti` was revoked (at logout); one in-memory
    /// lookup per request with such a token (default false).
    pub enabled: Option<bool>,
    /// How often the denylist is read from the store, so every replica refuses a token
    /// revoked on another within this long (default 5s, 1s–5m).
    pub sync_every: Option<crate::config::values::Duration>,
}

/// `admin:`; absent: on, at 127.0.0.1:9901.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub enabled: Option<bool>,
    pub address: Option<Text>,
    /// A file holding the bearer token every admin request must carry.
    pub token_file: Option<Text>,
}

/// `reload:`; every field has a default.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawReload {
    /// Reload when a config, rule, key or certificate file changes (default true).
    pub watch: Option<bool>,
    /// How long changes must settle before a reload (default 2s).
    pub debounce: Option<Duration>,
}

/// A rule file: routes only.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(
    title = "Portcullis rule file",
    description = "A rule file: routes only, listed by rule_files in the config."
)]
#[serde(deny_unknown_fields)]
pub struct RawRuleFile {
    #[serde(default)]
    #[schemars(with = "Vec<RawRoute>")]
    pub routes: Vec<Spanned<RawRoute>>,
}

/// How request paths are normalised before matching; see `routes::path`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPaths {
    pub dot_segments: Option<DotSegments>,
    pub empty_segments: Option<EmptySegments>,
    pub encoded_slash: Option<EncodedSlash>,
    pub path_parameters: Option<PathParameters>,
    pub windows_segments: Option<WindowsSegments>,
    pub case_sensitive: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    pub address: Text,
    pub tls: Option<RawTls>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub certificate: Text,
    pub private_key: Text,
}

/// Process-wide settings; every field has a default.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub realm: Option<String>,
    pub workers: Option<usize>,
    pub max_token_bytes: Option<usize>,
    pub max_uri_bytes: Option<usize>,
    pub max_body_bytes: Option<u64>,
    pub max_header_bytes: Option<usize>,
    pub max_headers: Option<usize>,
    pub max_connections: Option<usize>,
    pub header_read_timeout: Option<Duration>,
    pub tls_handshake_timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    pub h2_max_concurrent_streams: Option<u32>,
    pub h2_stream_window: Option<u32>,
    pub h2_connection_window: Option<u32>,
    pub max_connections_per_ip: Option<usize>,
    pub h2_max_pending_resets: Option<usize>,
    pub h2_max_error_resets: Option<usize>,
    pub shutdown_timeout: Option<Duration>,
    pub access_log: Option<bool>,
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Extra headers removed from requests of peers outside `trusted_proxies`, besides the
    /// built-in look-alike forwarding headers.
    #[serde(default)]
    pub spoofable_headers: Vec<String>,
    pub token_cache: Option<RawTokenCache>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTokenCache {
    pub max_entries: Option<u64>,
    pub max_memory_mib: Option<u64>,
    pub max_ttl: Option<Duration>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    /// One target; or `targets` for several.
    pub url: Option<Text>,
    pub targets: Option<Vec<Text>>,
    pub balance: Option<Balance>,
    pub connect_timeout: Option<Duration>,
    pub response_timeout: Option<Duration>,
    pub pool_idle_timeout: Option<Duration>,
    pub pool_max_idle_per_host: Option<usize>,
    pub max_requests: Option<usize>,
    pub max_connections_per_target: Option<usize>,
    pub max_pending: Option<usize>,
    pub retries: Option<u32>,
    pub eject_after: Option<u32>,
    pub eject_for: Option<Duration>,
    /// `preserve` (default), `target`, or a fixed host value.
    pub host: Option<String>,
    #[serde(default)]
    pub http2: bool,
    pub tls: Option<RawUpstreamTls>,
    pub health_check: Option<RawHealthCheck>,
}

/// TLS settings of https targets.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawUpstreamTls {
    pub ca_file: Option<Text>,
    pub client_certificate: Option<Text>,
    pub client_key: Option<Text>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHealthCheck {
    pub path: String,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    pub name: String,
    pub issuer: Text,
    /// A list of accepted `aud` values, or `none` (not checked; see `clients`).
    pub audiences: RawAudiences,
    pub algorithms: Vec<String>,
    pub jwks_file: Option<Text>,
    pub jwks_uri: Option<Text>,
    #[serde(default)]
    pub discovery: bool,
    pub remote_keys: Option<RawRemoteKeys>,
    #[serde(default)]
    pub public_keys: Vec<RawPublicKey>,
    pub hmac_secret: Option<RawSecret>,
    pub leeway: Option<Duration>,
    pub require_exp: Option<bool>,
    /// Accepted header `typ` values (e.g. `[at+jwt]`, RFC 9068 §4); unset: any.
    pub types: Option<Vec<String>>,
    /// Accepted clients (`azp`, else `client_id`); unset: not checked.
    pub clients: Option<Vec<String>>,
}

/// `audiences: [a, b]`, or `audiences: none` for access tokens that carry no `aud`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawAudiences {
    List(Vec<String>),
    Keyword(String),
}

/// How keys fetched from `jwks_uri` or discovery are fetched and refreshed.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRemoteKeys {
    pub ca_file: Option<Text>,
    #[serde(default)]
    pub allow_http: bool,
    pub fetch_timeout: Option<Duration>,
    pub min_refresh: Option<Duration>,
    pub max_refresh: Option<Duration>,
    pub max_stale: Option<Duration>,
    pub unknown_kid_cooldown: Option<Duration>,
    pub unknown_kid_burst: Option<u32>,
    pub unknown_kid_refill: Option<Duration>,
    #[serde(default)]
    pub fail_fast: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPublicKey {
    pub file: Text,
    pub kid: Option<String>,
    pub algorithm: Option<String>,
}

/// An HMAC secret: from an environment variable or a file, as text or base64.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSecret {
    pub env: Option<String>,
    pub file: Option<Text>,
    pub kid: Option<String>,
    #[serde(default)]
    pub base64: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: String,
    pub host: Option<StringOrList>,
    pub path: Option<String>,
    pub prefix: Option<String>,
    pub methods: Option<Vec<String>>,
    pub case_sensitive: Option<bool>,
    /// Required, except on `policy: deny` routes.
    pub upstream: Option<String>,
    pub policy: Option<RawPolicy>,
    /// Status of a `policy: deny` route: 403 (default) or 404.
    pub deny_status: Option<u16>,
    pub providers: Option<Vec<String>>,
    #[schemars(with = "Option<RawCondition>")]
    pub require: Option<Spanned<RawCondition>>,
    #[serde(default)]
    pub claim_headers: BTreeMap<String, String>,
    #[serde(default)]
    pub strip_authorization: bool,
    pub token_query_param: Option<String>,
    pub token_cookie: Option<String>,
    pub max_body_bytes: Option<u64>,
    #[serde(default)]
    pub upgrades: Vec<String>,
    /// Close an upgraded connection when the token that opened it expires.
    #[serde(default)]
    pub close_at_token_expiry: bool,
    /// Removed from the start of the path before forwarding.
    pub strip_prefix: Option<String>,
    /// Put in front of the path before forwarding (after `strip_prefix`).
    pub add_prefix: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawPolicy {
    Public,
    Optional,
    Authenticated,
    Deny,
}

/// One claim condition: a combinator (`all`, `any`, `not`) or one claim with exactly one
/// operator. `equals` and `contains` also take `{param: NAME}` or `{header: NAME}`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCondition {
    #[schemars(with = "Option<Vec<RawCondition>>")]
    pub all: Option<Vec<Spanned<RawCondition>>>,
    #[schemars(with = "Option<Vec<RawCondition>>")]
    pub any: Option<Vec<Spanned<RawCondition>>>,
    #[schemars(with = "Option<Box<RawCondition>>")]
    pub not: Option<Box<Spanned<RawCondition>>>,
    pub claim: Option<String>,
    pub equals: Option<serde_json::Value>,
    #[serde(rename = "in")]
    pub in_: Option<Vec<serde_json::Value>>,
    pub one_of: Option<Vec<serde_json::Value>>,
    pub contains: Option<serde_json::Value>,
    pub contains_any: Option<Vec<serde_json::Value>>,
    pub contains_all: Option<Vec<serde_json::Value>>,
    pub scope: Option<StringOrList>,
    pub exists: Option<bool>,
    pub regex: Option<String>,
    pub gt: Option<serde_json::Number>,
    pub gte: Option<serde_json::Number>,
    pub lt: Option<serde_json::Number>,
    pub lte: Option<serde_json::Number>,
}

/// `scope: "a b"` or `scope: [a, b]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum StringOrList {
    One(String),
    Many(Vec<String>),
}
