//! What the request path and the live resources count: atomics only, so recording takes no
//! lock (a request adds to a few counters of its route); the admin listener reads them at
//! scrape time and renders the Prometheus text (`admin/metrics.rs`). Imports nothing of the
//! crate: every layer may record.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the duration histograms, in seconds.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A histogram of durations: a counter per bucket, the count and the sum.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; DURATION_BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        if let Some(i) = DURATION_BUCKETS.iter().position(|b| seconds <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Sum in seconds, count, and the cumulative count at each bucket bound.
    pub fn read(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut cumulative = 0;
        let buckets = DURATION_BUCKETS
            .iter()
            .zip(&self.buckets)
            .map(|(bound, n)| {
                cumulative += n.load(Ordering::Relaxed);
                (*bound, cumulative)
            })
            .collect();
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        (sum, self.count.load(Ordering::Relaxed), buckets)
    }
}

/// `read` (GET, HEAD, OPTIONS), `write` (POST, PUT, PATCH, DELETE), `other`.
pub const METHOD_CLASSES: [&str; 3] = ["read", "write", "other"];

pub fn method_class(method: &http::Method) -> usize {
    use http::Method as M;
    match *method {
        M::GET | M::HEAD | M::OPTIONS => 0,
        M::POST | M::PUT | M::PATCH | M::DELETE => 1,
        _ => 2,
    }
}

/// `1xx` … `5xx`.
pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

pub fn status_class(status: u16) -> usize {
    usize::from(status / 100).clamp(1, 5) - 1
}

/// Decisions counted apart per route: every reason code and `allowed` (`http::respond`
/// checks at compile time that they fit).
pub const DECISIONS: usize = 52;

/// One route's requests, by method class, status class and decision, and their durations.
/// Held by the registry under the route's name, so counts survive a reload that keeps it.
#[derive(Debug)]
pub struct RouteStats {
    /// How many decisions (reason codes, `allowed` among them) are counted apart.
    decisions: usize,
    counts: Box<[AtomicU64]>,
    pub duration: Histogram,
}

impl RouteStats {
    pub fn new() -> Arc<Self> {
        RouteStats::with_decisions(DECISIONS)
    }

    fn with_decisions(decisions: usize) -> Arc<Self> {
        let slots = decisions * METHOD_CLASSES.len() * STATUS_CLASSES.len();
        Arc::new(RouteStats {
            decisions,
            counts: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            duration: Histogram::default(),
        })
    }

    /// Counts one request: its method class, response status, decision (below `decisions`;
    /// others are not counted) and duration.
    pub fn record(&self, method: usize, status: u16, decision: usize, took: Duration) {
        let slot = (decision * METHOD_CLASSES.len() + method) * STATUS_CLASSES.len()
            + status_class(status);
        if decision < self.decisions
            && let Some(counter) = self.counts.get(slot)
        {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        self.duration.observe(took);
    }

    /// Every non-zero count as (method class, status class, decision, count).
    pub fn counts(&self) -> impl Iterator<Item = (usize, usize, usize, u64)> + '_ {
        self.counts.iter().enumerate().filter_map(|(slot, n)| {
            let n = n.load(Ordering::Relaxed);
            let status = slot % STATUS_CLASSES.len();
            let method = (slot / STATUS_CLASSES.len()) % METHOD_CLASSES.len();
            let decision = slot / (STATUS_CLASSES.len() * METHOD_CLASSES.len());
            (n > 0).then_some((method, status, decision, n))
        })
    }
}

/// A counter that is only ever added to.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (open connections).
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    /// Adds one until the returned guard drops.
    pub fn hold(self: &Arc<Self>) -> GaugeHold {
        self.0.fetch_add(1, Ordering::Relaxed);
        GaugeHold(self.clone())
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One unit of a `Gauge`, given back when dropped.
#[derive(Debug)]
pub struct GaugeHold(Arc<Gauge>);

impl Drop for GaugeHold {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_stats_count_each_slot_apart() {
        let stats = RouteStats::with_decisions(3);
        let ms = Duration::from_millis(1);
        stats.record(0, 200, 2, ms);
        stats.record(0, 200, 2, ms);
        stats.record(1, 403, 0, ms);
        stats.record(2, 503, 1, Duration::from_secs(10));
        stats.record(0, 200, 3, ms); // past `decisions`: not counted apart
        let mut counts: Vec<_> = stats.counts().collect();
        counts.sort_unstable();
        assert_eq!(counts, [(0, 1, 2, 2), (1, 3, 0, 1), (2, 4, 1, 1)]);
        let (sum, count, buckets) = stats.duration.read();
        assert_eq!(count, 5);
        assert!((sum - 10.004).abs() < 1e-9, "{sum}");
        // 1 ms falls in the 0.001 bucket; 10 s in none (only +Inf, which is `count`).
        assert_eq!(buckets[0], (0.0005, 0));
        assert_eq!(buckets[1], (0.001, 4));
        assert_eq!(buckets.last(), Some(&(2.5, 4)));
    }

    #[test]
    fn classes_table() {
        assert_eq!(
            [100, 204, 301, 404, 502, 99, 600].map(status_class),
            [0, 1, 2, 3, 4, 0, 4]
        );
        assert_eq!(
            [
                http::Method::GET,
                http::Method::DELETE,
                http::Method::CONNECT
            ]
            .map(|m| method_class(&m)),
            [0, 1, 2]
        );
    }

    #[test]
    fn a_gauge_counts_what_is_held() {
        let gauge = Arc::new(Gauge::default());
        let a = gauge.hold();
        let b = gauge.hold();
        assert_eq!(gauge.get(), 2);
        drop(a);
        assert_eq!(gauge.get(), 1);
        drop(b);
        assert_eq!(gauge.get(), 0);
    }
}
