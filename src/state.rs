//! The compiled config the request path reads: one immutable `Snapshot` behind one `ArcSwap`,
//! loaded once per request, so a request never mixes two configs.
//!
//! The config compiles to a `Plan`: the same struct holding the *specs* of upstreams and key
//! stores (plain data). `Plan::go_live` turns a plan into a snapshot by attaching the
//! live upstreams and key stores it holds for those specs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::issuer::Issuer;
use crate::keys::store::{KeysSpec, ProviderKeys};
use crate::metrics::{Gauge, Histogram, RouteStats};
use crate::proxy::client::{Upstream, UpstreamSpec};
use crate::proxy::forwarded::TrustedProxies;
use crate::proxy::headers::HeaderRules;
use crate::resources::{ResourceError, Resources};
use crate::routes::RouteTable;
use crate::routes::path::PathOptions;
use crate::token::cache::TokenCache;
use crate::token::verify::{Provider, Providers};

/// Everything a request needs, compiled once per config. `U` and `K` are the upstreams and the
/// providers' keys: live (`Snapshot`) or as specs (`Plan`).
#[derive(Debug)]
pub struct Snapshot<U = Arc<Upstream>, K = Arc<ProviderKeys>> {
    pub routes: RouteTable,
    /// How request paths are normalised before matching (`paths:`).
    pub paths: PathOptions,
    pub providers: Providers<K>,
    pub upstreams: Vec<U>,
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
    /// The built-in issuer, when `issuer:` is configured (its store attached by `go_live`).
    pub issuer: Option<Arc<Issuer>>,
}

/// The compiled config as data: what `check` reads and a reload compares.
pub type Plan = Snapshot<UpstreamSpec, KeysSpec>;

impl<U, K> Snapshot<U, K> {
    /// The same config with each upstream and each provider's keys replaced by what `upstream`
    /// and `keys` make of them; the first error stops it.
    pub fn attach<V, L, E>(
        self,
        upstream: impl FnMut(U) -> Result<V, E>,
        mut keys: impl FnMut(&str, K) -> Result<L, E>,
    ) -> Result<Snapshot<V, L>, E> {
        let providers = self
            .providers
            .into_list()
            .into_iter()
            .map(|p| p.try_map_keys(&mut keys))
            .collect::<Result<Vec<Provider<L>>, E>>()?;
        Ok(Snapshot {
            routes: self.routes,
            paths: self.paths,
            providers: Providers::new(providers),
            upstreams: self
                .upstreams
                .into_iter()
                .map(upstream)
                .collect::<Result<_, E>>()?,
            realm: self.realm,
            trusted_proxies: self.trusted_proxies,
            max_uri_bytes: self.max_uri_bytes,
            max_headers: self.max_headers,
            header_rules: self.header_rules,
            max_token_bytes: self.max_token_bytes,
            access_log: self.access_log,
            token_cache: self.token_cache,
            issuer: self.issuer,
        })
    }
}

impl Plan {
    /// The live snapshot of this plan, its upstreams and key stores taken from `resources`
    /// (reused when their spec is unchanged, else made, new remote keys fetched once). Only
    /// when all of that succeeded are they installed, and those this plan does not name
    /// stopped; on error `resources` is as it was.
    pub async fn go_live(self, resources: &Resources) -> Result<Snapshot, ResourceError> {
        let staging = std::cell::RefCell::new(resources.stage());
        let snapshot = self.attach(
            |spec| staging.borrow_mut().upstream(spec),
            |name, spec| Ok(staging.borrow_mut().keys(name, spec)),
        )?;
        let mut staging = staging.into_inner();
        let mut snapshot = snapshot;
        for (name, stats) in snapshot.routes.stats_mut() {
            *stats = staging.route_stats(name, stats);
        }
        staging.load().await?;
        if let Some(issuer) = &snapshot.issuer {
            let (store, denylist) = staging.store(&issuer.spec.store)?;
            let hasher =
                staging.hasher((issuer.spec.hashing_permits, issuer.spec.hashing_queue))?;
            issuer.attach(store, denylist, hasher).await;
        }
        let upstreams: Vec<&str> = snapshot.upstreams.iter().map(|u| &*u.spec.name).collect();
        let providers: Vec<&str> = snapshot.providers.list().iter().map(|p| &*p.name).collect();
        let routes: Vec<&str> = snapshot.routes.routes().iter().map(|r| &*r.name).collect();
        staging.install(&upstreams, &providers, &routes);
        Ok(snapshot)
    }
}

/// State shared by every connection of a running gateway.
#[derive(Debug)]
pub struct AppState {
    pub snapshot: ArcSwap<Snapshot>,
    /// The live upstreams and key stores the snapshot points into.
    pub resources: Resources,
    /// A tunnel on which no byte moves for this long is closed (`server.idle_timeout`).
    pub tunnel_idle_timeout: Duration,
    /// Set when shutdown begins: the gateway is no longer ready.
    draining: AtomicBool,
    /// Requests no route matched.
    pub unmatched: Arc<RouteStats>,
    /// Client connections open now, plain and TLS.
    pub connections: [Arc<Gauge>; 2],
    /// Client connections by protocol (HTTP/1.x, HTTP/2), known from their first request.
    pub protocols: [Arc<Gauge>; 2],
    /// How long refused token checks took (no provider to count them under).
    pub refused_verify_duration: Histogram,
}

impl AppState {
    pub fn new(snapshot: Snapshot, resources: Resources, tunnel_idle_timeout: Duration) -> Self {
        AppState {
            snapshot: ArcSwap::from_pointee(snapshot),
            resources,
            tunnel_idle_timeout,
            draining: AtomicBool::new(false),
            unmatched: RouteStats::new(),
            connections: [Arc::default(), Arc::default()],
            protocols: [Arc::default(), Arc::default()],
            refused_verify_duration: Histogram::default(),
        }
    }

    /// Marks the gateway as shutting down (`/readyz` answers 503 from now on).
    pub fn begin_drain(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}
