//! The upstream client, one per configured upstream: its targets (each with its connection
//! pool), how one is picked, which are ejected after connect failures, and its timeouts.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use tracing::warn;

use super::body::RequestBody;
use super::pool::{Connector, Pool, SendError};
use crate::error::UpstreamError;
use crate::metrics::Counter;
use crate::tls::ClientMaterial;

/// How a target is chosen for each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Each healthy target in turn (default).
    #[default]
    RoundRobin,
    /// The healthy target with the fewest requests waiting for a response head.
    LeastOutstanding,
}

/// The `Host` header the upstream receives.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum HostRewrite {
    /// The client's (default).
    #[default]
    Preserve,
    /// The chosen target's `host:port`.
    Target,
    /// This value.
    Fixed(HeaderValue),
}

/// An active health check: `GET path` on every target each `interval`; a 2xx within
/// `timeout` is healthy, anything else ejects the target until a check passes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub path: PathAndQuery,
    pub interval: Duration,
    pub timeout: Duration,
}

/// Timeouts, pool, balancing and health settings of one upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSettings {
    /// TCP connect timeout (default 5 s).
    pub connect_timeout: Duration,
    /// Time allowed from sending the request to receiving the response head (default 30 s).
    pub response_timeout: Duration,
    /// How long an idle pooled connection is kept (default 90 s).
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per target (default 256).
    pub pool_max_idle_per_host: usize,
    pub balance: Balance,
    /// Extra attempts, each on another target, after a connect failure of an idempotent
    /// request without a body (default 1).
    pub retries: u32,
    /// Consecutive connect failures that eject a target (default 3; 0 turns ejection off).
    pub eject_after: u32,
    /// How long an ejected target is skipped (default 10 s).
    pub eject_for: Duration,
    pub host: HostRewrite,
    /// Speak HTTP/2 to the targets (prior knowledge on http, ALPN on https); default HTTP/1.1.
    pub http2: bool,
    pub health_check: Option<HealthCheck>,
    /// Requests in flight to the upstream (sent, response not yet read to its end); more are
    /// answered 503 `upstream_overloaded` (default 1024).
    pub max_requests: usize,
    /// Open connections per target (default 1024).
    pub max_connections_per_target: usize,
    /// Requests that may wait for a connection when a target has `max_connections_per_target`
    /// open and none is idle; more are answered 503 (default 256).
    pub max_pending: usize,
}

impl Default for UpstreamSettings {
    fn default() -> Self {
        UpstreamSettings {
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(30),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 256,
            balance: Balance::RoundRobin,
            retries: 1,
            eject_after: 3,
            eject_for: Duration::from_secs(10),
            host: HostRewrite::Preserve,
            http2: false,
            health_check: None,
            max_requests: 1024,
            max_connections_per_target: 1024,
            max_pending: 256,
        }
    }
}

/// One address of an upstream, with its load and health.
#[derive(Debug)]
pub struct Target {
    pub authority: Authority,
    /// `host:port` as a `Host` value.
    pub host: HeaderValue,
    /// `scheme://host:port/`: where the connector connects.
    address: Uri,
    pub pool: Arc<Pool>,
    outstanding: AtomicUsize,
    failures: AtomicU32,
    /// Milliseconds since the upstream's epoch until which the target is skipped.
    ejected_until: AtomicU64,
}

/// What the config says of an upstream: plain data, compared on reload (an unchanged spec
/// keeps its live `Upstream`, pools included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSpec {
    pub name: Arc<str>,
    pub scheme: Scheme,
    pub authorities: Vec<Authority>,
    pub settings: UpstreamSettings,
    pub tls: ClientMaterial,
}

impl UpstreamSpec {
    /// `http://a:1, http://b:2`.
    pub fn describe_targets(&self) -> String {
        let targets: Vec<String> = self
            .authorities
            .iter()
            .map(|a| format!("{}://{a}", self.scheme))
            .collect();
        targets.join(", ")
    }
}

/// A named upstream: its targets, their pools and the connector that reaches them.
pub struct Upstream {
    pub spec: UpstreamSpec,
    pub targets: Vec<Target>,
    /// TLS client settings, built at creation; the connector is built from them at first use
    /// (an upstream that never sends, as under `explain`, makes no client).
    tls: rustls::ClientConfig,
    connector: OnceLock<Connector>,
    next: AtomicUsize,
    epoch: Instant,
    /// Requests in flight, against `max_requests`; shared with the response bodies that hold
    /// a slot.
    in_flight: Arc<AtomicUsize>,
    /// What its requests came to, for the metrics.
    pub stats: UpstreamStats,
}

/// Outcomes of an upstream's requests (`OUTCOMES` order), and target ejections.
#[derive(Debug, Default)]
pub struct UpstreamStats {
    pub outcomes: [Counter; OUTCOMES.len()],
    pub ejections: Counter,
}

impl UpstreamStats {
    /// Counts a response by its status class.
    pub fn response(&self, status: u16) {
        self.outcomes[crate::metrics::status_class(status)].inc();
    }

    /// Counts a failed exchange by its kind.
    pub fn failure(&self, error: UpstreamError) {
        let outcome = match error {
            UpstreamError::Connect => 5,
            UpstreamError::Timeout => 6,
            UpstreamError::Protocol => 7,
            UpstreamError::BadUpgrade => 8,
            UpstreamError::Overloaded => 9,
        };
        self.outcomes[outcome].inc();
    }
}

/// How an upstream request ended: a response by status class, or the kind of failure.
pub const OUTCOMES: [&str; 10] = [
    "1xx",
    "2xx",
    "3xx",
    "4xx",
    "5xx",
    "connect_error",
    "timeout",
    "protocol_error",
    "bad_upgrade",
    "overloaded",
];

/// One request's place under its upstream's `max_requests`, given back when dropped (when the
/// response body ends, or the exchange fails).
#[derive(Debug)]
pub struct RequestSlot(Arc<AtomicUsize>);

impl Drop for RequestSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An upstream response body that holds its request's slot until it ends.
#[derive(Debug)]
pub struct UpstreamBody {
    body: Incoming,
    _slot: RequestSlot,
}

impl UpstreamBody {
    pub fn new(body: Incoming, slot: RequestSlot) -> Self {
        UpstreamBody { body, _slot: slot }
    }
}

impl hyper::body::Body for UpstreamBody {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// Counts a request as outstanding on its target until dropped.
#[derive(Debug)]
pub struct InFlight<'u>(&'u Target);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("spec", &self.spec)
            .field("targets", &self.targets)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// Builds the upstream and its (empty) connection pools: no connection is opened, no
    /// client made, no task started.
    pub fn new(spec: UpstreamSpec) -> Result<Self, String> {
        let tls = spec.tls.client_config()?;
        let settings = &spec.settings;
        let scheme = &spec.scheme;
        let targets = spec
            .authorities
            .iter()
            .cloned()
            .map(|authority| Target {
                host: HeaderValue::from_str(authority.as_str())
                    .unwrap_or(HeaderValue::from_static("localhost")),
                address: Uri::builder()
                    .scheme(scheme.clone())
                    .authority(authority.clone())
                    .path_and_query("/")
                    .build()
                    .unwrap_or_default(),
                pool: Arc::new(Pool::new(
                    settings.pool_max_idle_per_host,
                    settings.pool_idle_timeout,
                    settings.max_connections_per_target,
                    settings.max_pending,
                    settings.connect_timeout,
                )),
                authority,
                outstanding: AtomicUsize::new(0),
                failures: AtomicU32::new(0),
                ejected_until: AtomicU64::new(0),
            })
            .collect();
        Ok(Upstream {
            spec,
            targets,
            tls,
            connector: OnceLock::new(),
            next: AtomicUsize::new(0),
            epoch: Instant::now(),
            in_flight: Arc::new(AtomicUsize::new(0)),
            stats: UpstreamStats::default(),
        })
    }

    /// The connector, built at the first request: ALPN offers exactly the protocol the client
    /// will speak.
    fn connector(&self) -> &Connector {
        self.connector.get_or_init(|| {
            let mut http = HttpConnector::new();
            http.set_connect_timeout(Some(self.spec.settings.connect_timeout));
            http.set_nodelay(true);
            http.enforce_http(false);
            let builder = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(self.tls.clone())
                .https_or_http();
            if self.spec.settings.http2 {
                builder.enable_http2().wrap_connector(http)
            } else {
                builder.enable_http1().wrap_connector(http)
            }
        })
    }

    /// A place for one more request under `max_requests`, or `None` when the upstream is full
    /// (circuit breaking: the excess is refused at once instead of queueing without bound).
    pub fn try_request_slot(&self) -> Option<RequestSlot> {
        let before = self.in_flight.fetch_add(1, Ordering::AcqRel);
        let slot = RequestSlot(self.in_flight.clone());
        (before < self.spec.settings.max_requests).then_some(slot)
    }

    /// Requests in flight now.
    pub fn requests_in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Sends `request` to target `i` over its pool. HTTP/1.1 requests carry an origin-form URI
    /// and a `Host` header, HTTP/2 ones an absolute URI.
    pub async fn send(
        &self,
        i: usize,
        request: Request<RequestBody>,
    ) -> Result<Response<Incoming>, SendError> {
        let target = &self.targets[i];
        target
            .pool
            .send(
                self.connector(),
                &target.address,
                self.spec.settings.http2,
                request,
            )
            .await
    }

    /// Closes idle pooled connections once they pass `pool_idle_timeout`, until `stop`.
    pub async fn close_idle_connections(
        self: Arc<Self>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let every = (self.spec.settings.pool_idle_timeout / 4)
            .clamp(Duration::from_millis(100), Duration::from_secs(15));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            for target in &self.targets {
                target.pool.close_expired();
            }
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn is_ejected(&self, target: &Target, now: u64) -> bool {
        target.ejected_until.load(Ordering::Relaxed) > now
    }

    /// Picks a target, avoiding `avoid` (the one that just failed) and ejected ones; when every
    /// target is ejected, all are candidates again (better to try than to refuse everything).
    pub fn pick(&self, avoid: Option<usize>) -> usize {
        let n = self.targets.len();
        if n == 1 {
            return 0;
        }
        let now = self.now_ms();
        let usable = |i: usize| Some(i) != avoid && !self.is_ejected(&self.targets[i], now);
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut candidates = (0..n).map(|k| (start + k) % n);
        let chosen = match self.spec.settings.balance {
            Balance::RoundRobin => candidates.find(|&i| usable(i)),
            Balance::LeastOutstanding => candidates
                .filter(|&i| usable(i))
                .min_by_key(|&i| self.targets[i].outstanding.load(Ordering::Relaxed)),
        };
        chosen.unwrap_or_else(|| {
            (0..n)
                .map(|k| (start + k) % n)
                .find(|&i| Some(i) != avoid)
                .unwrap_or(start % n)
        })
    }

    /// Marks a request as started on target `i`.
    pub fn begin(&self, i: usize) -> InFlight<'_> {
        let target = &self.targets[i];
        target.outstanding.fetch_add(1, Ordering::Relaxed);
        InFlight(target)
    }

    /// Records that target `i` answered: its failure count starts over.
    pub fn succeeded(&self, i: usize) {
        self.targets[i].failures.store(0, Ordering::Relaxed);
    }

    /// Records a connect failure of target `i`; ejects it after `eject_after` in a row.
    pub fn failed(&self, i: usize) {
        let target = &self.targets[i];
        let failures = target.failures.fetch_add(1, Ordering::Relaxed) + 1;
        let limit = self.spec.settings.eject_after;
        if limit > 0 && failures >= limit {
            let until = self.now_ms() + self.spec.settings.eject_for.as_millis() as u64;
            target.ejected_until.store(until, Ordering::Relaxed);
            target.failures.store(0, Ordering::Relaxed);
            self.stats.ejections.inc();
            warn!(upstream = %self.spec.name, target = %target.authority, failures, eject_for = ?self.spec.settings.eject_for, "target ejected after connect failures");
        }
    }

    /// Sets a target's health from an active check.
    pub fn set_health(&self, i: usize, healthy: bool) {
        let target = &self.targets[i];
        let was_ejected = self.is_ejected(target, self.now_ms());
        if healthy {
            target.ejected_until.store(0, Ordering::Relaxed);
            target.failures.store(0, Ordering::Relaxed);
        } else {
            target.ejected_until.store(u64::MAX, Ordering::Relaxed);
            if !was_ejected {
                self.stats.ejections.inc();
                warn!(upstream = %self.spec.name, target = %target.authority, "target failed its health check");
            }
        }
    }

    /// Runs the active health check (if configured) until `stop` turns true.
    pub async fn run_health_checks(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let Some(check) = self.spec.settings.health_check.clone() else {
            return;
        };
        let mut tick = tokio::time::interval(check.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            for i in 0..self.targets.len() {
                let healthy = self.probe(i, &check).await;
                self.set_health(i, healthy);
            }
        }
    }

    async fn probe(&self, i: usize, check: &HealthCheck) -> bool {
        let target = &self.targets[i];
        let mut request = Request::new(RequestBody::Empty);
        if self.spec.settings.http2 {
            let uri = Uri::builder()
                .scheme(self.spec.scheme.clone())
                .authority(target.authority.clone())
                .path_and_query(check.path.clone())
                .build();
            let Ok(uri) = uri else { return false };
            *request.uri_mut() = uri;
            *request.version_mut() = http::Version::HTTP_2;
        } else {
            *request.uri_mut() = Uri::from(check.path.clone());
        }
        request
            .headers_mut()
            .insert(http::header::HOST, target.host.clone());
        match tokio::time::timeout(check.timeout, self.send(i, request)).await {
            Ok(Ok(response)) => response.status().is_success(),
            _ => false,
        }
    }

    /// Whether target `i` is currently skipped.
    pub fn ejected(&self, i: usize) -> bool {
        self.is_ejected(&self.targets[i], self.now_ms())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(n: usize, balance: Balance) -> Upstream {
        crate::tls::install_crypto_provider();
        let authorities = (0..n)
            .map(|i| format!("127.0.0.1:{}", 9000 + i).parse().unwrap())
            .collect();
        let settings = UpstreamSettings {
            balance,
            eject_after: 2,
            ..UpstreamSettings::default()
        };
        Upstream::new(UpstreamSpec {
            name: "u".into(),
            scheme: Scheme::HTTP,
            authorities,
            settings,
            tls: ClientMaterial::default(),
        })
        .unwrap()
    }

    #[tokio::test]
    async fn round_robin_skips_ejected_targets() {
        let u = upstream(3, Balance::RoundRobin);
        let picks: Vec<usize> = (0..6).map(|_| u.pick(None)).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        u.failed(1);
        assert!(!u.ejected(1), "one failure does not eject");
        u.failed(1);
        assert!(u.ejected(1));
        let picks: Vec<usize> = (0..4).map(|_| u.pick(None)).collect();
        assert!(!picks.contains(&1), "{picks:?}");
        assert_ne!(u.pick(Some(0)), 0);
        u.set_health(1, true);
        assert!(!u.ejected(1));
        // Everything ejected: every target is a candidate again, rather than refusing.
        for i in 0..3 {
            u.set_health(i, false);
        }
        let picks: std::collections::HashSet<usize> = (0..6).map(|_| u.pick(None)).collect();
        assert_eq!(picks.len(), 3, "{picks:?}");
        assert!(picks.iter().all(|&i| i < 3));
    }

    #[tokio::test]
    async fn least_outstanding_prefers_idle_targets() {
        let u = upstream(3, Balance::LeastOutstanding);
        let busy0 = u.begin(0);
        let busy1 = u.begin(1);
        let _busy1b = u.begin(1);
        assert_eq!(u.pick(None), 2);
        drop(busy0);
        let _busy2 = u.begin(2);
        assert_eq!(u.pick(None), 0);
        drop(busy1);
        assert_ne!(u.pick(None), 1, "target 1 still has one outstanding");
    }
}
