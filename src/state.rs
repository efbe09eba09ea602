//! The compiled config the request path reads: one immutable `Snapshot` behind one `ArcSwap`,
//! loaded once per request, so a request never mixes two configs.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::proxy::client::Upstream;
use crate::proxy::forwarded::TrustedProxies;
use crate::proxy::headers::HeaderRules;
use crate::routes::RouteTable;
use crate::routes::path::PathOptions;
use crate::token::cache::TokenCache;
use crate::token::verify::Providers;

/// Everything a request needs, compiled once per config.
#[derive(Debug)]
pub struct Snapshot {
    pub routes: RouteTable,
    /// How request paths are normalised before matching (`paths:`).
    pub paths: PathOptions,
    pub providers: Providers,
    pub upstreams: Vec<Arc<Upstream>>,
    /// `realm` of `WWW-Authenticate` (default `portcullis`).
    pub realm: Arc<str>,
    /// Peers whose forwarding headers are believed (`server.trusted_proxies`).
    pub trusted_proxies: TrustedProxies,
    /// Longest request target accepted, in bytes (default 8192); longer: 414.
    pub max_uri_bytes: usize,
    /// Most header fields a request may have (default 100), HTTP/2 included; more: 431.
    pub max_headers: usize,
    /// Headers the rewrite removes (identity copies, look-alike forwarding headers).
    pub header_rules: HeaderRules,
    /// Largest token accepted, in bytes (default 8192).
    pub max_token_bytes: usize,
    /// Whether each request is logged at info level on target `access` (default true).
    pub access_log: bool,
    /// Verified tokens of this config; `None` when turned off.
    pub token_cache: Option<TokenCache>,
}

/// State shared by every connection of a running gateway.
#[derive(Debug)]
pub struct AppState {
    pub snapshot: ArcSwap<Snapshot>,
    /// A tunnel on which no byte moves for this long is closed (`server.idle_timeout`).
    pub tunnel_idle_timeout: Duration,
}

impl AppState {
    pub fn new(snapshot: Snapshot, tunnel_idle_timeout: Duration) -> Self {
        AppState {
            snapshot: ArcSwap::from_pointee(snapshot),
            tunnel_idle_timeout,
        }
    }
}
