//! The pooled upstream client, one per configured upstream, with its timeouts.

use std::sync::Arc;
use std::time::Duration;

use http::uri::{Authority, Scheme};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::http::limits::RequestBody;

/// Timeouts and pool sizes of one upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamSettings {
    /// TCP connect timeout (default 5 s).
    pub connect_timeout: Duration,
    /// Time allowed from sending the request to receiving the response head (default 30 s).
    pub response_timeout: Duration,
    /// How long an idle pooled connection is kept (default 90 s).
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per upstream host (default 256).
    pub pool_max_idle_per_host: usize,
}

impl Default for UpstreamSettings {
    fn default() -> Self {
        UpstreamSettings {
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(30),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 256,
        }
    }
}

/// A named upstream: where requests go and the pooled client that takes them there.
#[derive(Debug)]
pub struct Upstream {
    pub name: Arc<str>,
    pub scheme: Scheme,
    pub authority: Authority,
    pub settings: UpstreamSettings,
    pub client: Client<HttpConnector, RequestBody>,
}

impl Upstream {
    /// Builds the upstream and its connection pool (no connection is opened yet).
    pub fn new(
        name: &str,
        scheme: Scheme,
        authority: Authority,
        settings: UpstreamSettings,
    ) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(settings.connect_timeout));
        connector.set_nodelay(true);
        connector.enforce_http(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(settings.pool_idle_timeout)
            .pool_max_idle_per_host(settings.pool_max_idle_per_host)
            .build(connector);
        Upstream {
            name: name.into(),
            scheme,
            authority,
            settings,
            client,
        }
    }
}
