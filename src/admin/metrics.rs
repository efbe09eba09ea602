//! `GET /metrics`: the Prometheus text view of what the gateway counted. Read
//! at scrape time from the live snapshot, the registry and the reloader — the request path
//! only adds to atomics (`crate::metrics`). Labels come from bounded sets only: route,
//! upstream and provider *names* from the config, method and status classes, reason codes.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::http::respond::Reason;
use crate::metrics::{METHOD_CLASSES, RouteStats, STATUS_CLASSES};
use crate::proxy::client::{OUTCOMES, Upstream};
use crate::reload::Reloader;
use crate::state::{AppState, Snapshot};

/// The registry of one gateway: everything is read through `Live`.
pub fn registry(state: Arc<AppState>, reloader: Arc<Reloader>) -> Registry {
    let mut registry = Registry::with_prefix("portcullis");
    registry.register_collector(Box::new(Live { state, reloader }));
    registry
}

/// The content type of `render`'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders `registry` in the Prometheus text format (0.0.4), which every scraper and
/// `promtool check metrics` read.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, registry);
    out
}

/// A metric with one value per upstream: name, help, type, and how to read the value.
type PerUpstream = (&'static str, &'static str, MetricType, fn(&Upstream) -> u64);

/// Reads the live gateway at each scrape.
#[derive(Debug)]
struct Live {
    state: Arc<AppState>,
    reloader: Arc<Reloader>,
}

/// The decision a route-stats slot stands for.
fn decision_name(decision: usize) -> &'static str {
    match decision.checked_sub(1) {
        None => "allowed",
        Some(i) => Reason::ALL.get(i).map_or("other", |r| r.as_str()),
    }
}

/// One metric: its descriptor, then each labelled value `each` encodes.
fn family(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    kind: MetricType,
    each: impl FnOnce(&mut MetricEncoder) -> Result<(), std::fmt::Error>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, unit, kind)?;
    each(&mut metric)
}

fn counter<L: prometheus_client::encoding::EncodeLabelSet>(
    metric: &mut MetricEncoder,
    labels: &L,
    value: u64,
) -> Result<(), std::fmt::Error> {
    metric
        .encode_family(labels)?
        .encode_counter::<NoLabelSet, _, u64>(&value, None)
}

fn gauge<L: prometheus_client::encoding::EncodeLabelSet, V>(
    metric: &mut MetricEncoder,
    labels: &L,
    value: V,
) -> Result<(), std::fmt::Error>
where
    V: prometheus_client::encoding::EncodeGaugeValue,
{
    metric.encode_family(labels)?.encode_gauge(&value)
}

impl Collector for Live {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snapshot = self.state.snapshot.load();
        self.requests(&mut e, &snapshot)?;
        self.tokens(&mut e, &snapshot)?;
        self.upstreams(&mut e, &snapshot)?;
        self.connections(&mut e, &snapshot)?;
        issuer(&mut e, &snapshot)?;
        self.config(&mut e)
    }
}

/// The issuer's events (only when `issuer:` is configured; counted since the config in force
/// was applied).
fn issuer(e: &mut DescriptorEncoder, snapshot: &Snapshot) -> Result<(), std::fmt::Error> {
    let Some(issuer) = snapshot.issuer.as_deref() else {
        return Ok(());
    };
    family(
        e,
        "issuer_events",
        "Issuer events: logins (succeeded, failed, throttled), refreshes (refreshed, grace, reuse_detected, refused), logouts, refusals (csrf, client rate, hashing at capacity, store unavailable).",
        None,
        MetricType::Counter,
        |m| {
            for event in crate::issuer::Event::ALL {
                counter(m, &[("event", event.as_str())], issuer.count(event))?;
            }
            Ok(())
        },
    )
}

impl Live {
    /// Requests by route, and their durations.
    fn requests(
        &self,
        e: &mut DescriptorEncoder,
        snapshot: &Snapshot,
    ) -> Result<(), std::fmt::Error> {
        let routes: Vec<(&str, &RouteStats)> = snapshot
            .routes
            .routes()
            .iter()
            .map(|r| (&*r.name, &*r.stats))
            .chain([("", &*self.state.unmatched)])
            .collect();

        family(
            e,
            "requests",
            "Requests answered, by route (empty: none matched), method class, status class and decision (allowed or the reason code).",
            None,
            MetricType::Counter,
            |m| {
                for (route, stats) in &routes {
                    for (method, status, decision, n) in stats.counts() {
                        let labels = [
                            ("route", *route),
                            ("method", METHOD_CLASSES[method]),
                            ("status", STATUS_CLASSES[status]),
                            ("reason", decision_name(decision)),
                        ];
                        counter(m, &labels, n)?;
                    }
                }
                Ok(())
            },
        )?;
        family(
            e,
            "request_duration",
            "Time from request head to response head, by route.",
            Some(&Unit::Seconds),
            MetricType::Histogram,
            |m| {
                for (route, stats) in &routes {
                    let (sum, count, buckets) = stats.duration.read();
                    m.encode_family(&[("route", *route)])?
                        .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
                }
                Ok(())
            },
        )?;

        Ok(())
    }

    /// Token checks, key sets and the verified-token cache.
    fn tokens(
        &self,
        e: &mut DescriptorEncoder,
        snapshot: &Snapshot,
    ) -> Result<(), std::fmt::Error> {
        let providers = snapshot.providers.list();
        family(
            e,
            "tokens_accepted",
            "Tokens that passed verification (fresh or from the verified-token cache), by provider.",
            None,
            MetricType::Counter,
            |m| {
                for p in providers {
                    counter(m, &[("provider", &*p.name)], p.keys.verified.get())?;
                }
                Ok(())
            },
        )?;
        family(
            e,
            "jwks_fetches",
            "Fetches of remote key sets, by provider and result.",
            None,
            MetricType::Counter,
            |m| {
                for p in providers {
                    if let Some(stats) = p.keys.fetch_stats() {
                        counter(
                            m,
                            &[("provider", &*p.name), ("result", "ok")],
                            stats.succeeded.get(),
                        )?;
                        counter(
                            m,
                            &[("provider", &*p.name), ("result", "error")],
                            stats.failed.get(),
                        )?;
                    }
                }
                Ok(())
            },
        )?;
        family(
            e,
            "jwks_last_success_timestamp",
            "When a remote key set was last fetched successfully (0: never).",
            Some(&Unit::Seconds),
            MetricType::Gauge,
            |m| {
                for p in providers {
                    if let Some(stats) = p.keys.fetch_stats() {
                        gauge(
                            m,
                            &[("provider", &*p.name)],
                            stats.last_success.load(Ordering::Relaxed),
                        )?;
                    }
                }
                Ok(())
            },
        )?;
        family(
            e,
            "keys",
            "Verification keys usable now, by provider.",
            None,
            MetricType::Gauge,
            |m| {
                for p in providers {
                    gauge(
                        m,
                        &[("provider", &*p.name)],
                        p.keys.snapshot().set.keys().len() as u64,
                    )?;
                }
                Ok(())
            },
        )?;

        if let Some(cache) = &snapshot.token_cache {
            family(
                e,
                "token_cache_lookups",
                "Verified-token cache lookups since the config was applied, by result.",
                None,
                MetricType::Counter,
                |m| {
                    counter(m, &[("result", "hit")], cache.hits.get())?;
                    counter(m, &[("result", "miss")], cache.misses.get())
                },
            )?;
            family(
                e,
                "token_cache_evictions",
                "Verified tokens pushed out of the cache by its size bounds.",
                None,
                MetricType::Counter,
                |m| m.encode_counter::<NoLabelSet, _, u64>(&cache.evictions.get(), None),
            )?;
            family(
                e,
                "token_cache_entries",
                "Tokens in the verified-token cache.",
                None,
                MetricType::Gauge,
                |m| m.encode_gauge(&cache.entry_count()),
            )?;
        }

        Ok(())
    }

    /// Upstream requests, connections and ejections.
    fn upstreams(
        &self,
        e: &mut DescriptorEncoder,
        snapshot: &Snapshot,
    ) -> Result<(), std::fmt::Error> {
        family(
            e,
            "upstream_requests",
            "Requests sent upstream, by upstream and outcome (response status class, or the failure).",
            None,
            MetricType::Counter,
            |m| {
                for u in &snapshot.upstreams {
                    for (outcome, n) in OUTCOMES.iter().zip(&u.stats.outcomes) {
                        if n.get() > 0 {
                            counter(
                                m,
                                &[("upstream", &*u.spec.name), ("outcome", *outcome)],
                                n.get(),
                            )?;
                        }
                    }
                }
                Ok(())
            },
        )?;
        let per_upstream: [PerUpstream; 4] = [
            (
                "upstream_requests_in_flight",
                "Requests sent upstream whose response has not been read to its end.",
                MetricType::Gauge,
                |u| u.requests_in_flight() as u64,
            ),
            (
                "upstream_connections_opened",
                "Connections opened to an upstream's targets.",
                MetricType::Counter,
                |u| u.targets.iter().map(|t| t.pool.connects.get()).sum(),
            ),
            (
                "upstream_connections_reused",
                "Requests sent on an idle pooled connection (HTTP/1.1).",
                MetricType::Counter,
                |u| u.targets.iter().map(|t| t.pool.reuses.get()).sum(),
            ),
            (
                "upstream_ejections",
                "Targets taken out of rotation (connect failures or a failed health check), by upstream.",
                MetricType::Counter,
                |u| u.stats.ejections.get(),
            ),
        ];
        for (name, help, kind, value) in per_upstream {
            family(e, name, help, None, kind, |m| {
                for u in &snapshot.upstreams {
                    let labels = [("upstream", &*u.spec.name)];
                    match kind {
                        MetricType::Gauge => gauge(m, &labels, value(u))?,
                        _ => counter(m, &labels, value(u))?,
                    }
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Client connections, and how long token checks take.
    fn connections(
        &self,
        e: &mut DescriptorEncoder,
        snapshot: &Snapshot,
    ) -> Result<(), std::fmt::Error> {
        let providers = snapshot.providers.list();
        family(
            e,
            "connections",
            "Client connections open now, by transport.",
            None,
            MetricType::Gauge,
            |m| {
                gauge(m, &[("transport", "http")], self.state.connections[0].get())?;
                gauge(
                    m,
                    &[("transport", "https")],
                    self.state.connections[1].get(),
                )
            },
        )?;
        family(
            e,
            "connections_by_protocol",
            "Client connections open now, by protocol (from their first request).",
            None,
            MetricType::Gauge,
            |m| {
                gauge(m, &[("protocol", "http1")], self.state.protocols[0].get())?;
                gauge(m, &[("protocol", "h2")], self.state.protocols[1].get())
            },
        )?;
        family(
            e,
            "token_verification_duration",
            "Time to check a token (cache lookup included), by provider (empty: refused, no provider known) and result.",
            Some(&Unit::Seconds),
            MetricType::Histogram,
            |m| {
                for p in providers {
                    let (sum, count, buckets) = p.keys.verify_duration.read();
                    m.encode_family(&[("provider", &*p.name), ("result", "valid")])?
                        .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
                }
                let (sum, count, buckets) = self.state.refused_verify_duration.read();
                m.encode_family(&[("provider", ""), ("result", "invalid")])?
                    .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
            },
        )?;

        Ok(())
    }

    /// Reloads, the config in force and the build.
    fn config(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = &self.reloader.stats;
        family(
            e,
            "config_reloads",
            "Reloads, by result (applied, unchanged: every file as it was, failed: the running config kept).",
            None,
            MetricType::Counter,
            |m| {
                counter(
                    m,
                    &[("result", "applied")],
                    stats.applied.load(Ordering::Relaxed),
                )?;
                counter(
                    m,
                    &[("result", "unchanged")],
                    stats.unchanged.load(Ordering::Relaxed),
                )?;
                counter(
                    m,
                    &[("result", "failed")],
                    stats.failed.load(Ordering::Relaxed),
                )
            },
        )?;
        let loaded = self.reloader.current_now();
        family(
            e,
            "config_last_applied_timestamp",
            "When the config in force was applied.",
            Some(&Unit::Seconds),
            MetricType::Gauge,
            |m| m.encode_gauge(&loaded.as_ref().map_or(0.0, |l| l.applied_at)),
        )?;
        family(
            e,
            "config",
            "The config in force: its SHA-256 over every source file (drift between replicas shows).",
            None,
            MetricType::Info,
            |m| {
                let sha256 = loaded.as_ref().map_or("", |l| l.sha256.as_str());
                m.encode_info(&[("sha256", sha256)])
            },
        )?;
        family(
            e,
            "build",
            "The running build.",
            None,
            MetricType::Info,
            |m| m.encode_info(&[("version", env!("CARGO_PKG_VERSION"))]),
        )?;
        Ok(())
    }
}
