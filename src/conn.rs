//! One client connection as its requests see it: its address, TLS, its slot under the
//! connection cap, and idle tracking (a wrapper that notes when bytes last moved, requests in
//! flight, connections per address) so the connection task can close connections idle for
//! `idle_timeout`. Imports only `metrics` (which imports nothing): server, http and proxy
//! all use it.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::OwnedSemaphorePermit;

/// What a connection tells each of its requests.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub remote: SocketAddr,
    pub tls: bool,
    /// The connection's slot under `max_connections`; an upgrade moves it to its tunnel.
    pub slot: Arc<ConnectionSlot>,
    /// The requests the connection is serving (for idleness that PINGs cannot hide).
    pub streams: Arc<Streams>,
    /// Counts the connection under its protocol from its first request until it ends.
    pub protocol: Arc<std::sync::OnceLock<crate::metrics::GaugeHold>>,
}

/// A connection's permit under the connection cap, held until the connection ends — or, when
/// the connection is upgraded, until its tunnel ends.
#[derive(Debug)]
pub struct ConnectionSlot(std::sync::Mutex<Option<OwnedSemaphorePermit>>);

impl ConnectionSlot {
    pub fn new(permit: OwnedSemaphorePermit) -> Self {
        ConnectionSlot(std::sync::Mutex::new(Some(permit)))
    }

    /// Takes the permit (once); the connection no longer holds it.
    pub fn take(&self) -> Option<OwnedSemaphorePermit> {
        self.0.lock().ok()?.take()
    }
}

/// When a connection last read or wrote a byte.
#[derive(Debug, Clone)]
pub struct Activity {
    start: Instant,
    /// Milliseconds since `start` of the last byte; 0: none since `since_ms`.
    last_ms: Arc<AtomicU64>,
    /// Milliseconds since `start` when the current wait for a first byte began.
    since_ms: Arc<AtomicU64>,
}

impl Activity {
    pub fn new() -> Self {
        Activity {
            start: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
            since_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Starts waiting for a first byte again (after the TLS handshake, whose bytes do not
    /// count as a request).
    pub fn restart(&self) {
        let now = self.start.elapsed().as_millis() as u64;
        self.since_ms.store(now, Ordering::Relaxed);
        self.last_ms.store(0, Ordering::Relaxed);
    }

    fn touch(&self) {
        // 0 means "nothing yet", so a byte in the first millisecond counts as 1.
        let now = (self.start.elapsed().as_millis() as u64).max(1);
        self.last_ms.store(now, Ordering::Relaxed);
    }

    /// Whether any byte has moved yet.
    pub fn started(&self) -> bool {
        self.last_ms.load(Ordering::Relaxed) > 0
    }

    /// Time since the connection was accepted, or since `restart`.
    pub fn age(&self) -> Duration {
        let now = self.start.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.since_ms.load(Ordering::Relaxed)))
    }

    /// How long no byte has moved.
    pub fn idle_for(&self) -> Duration {
        let now = self.start.elapsed().as_millis() as u64;
        let last = self
            .last_ms
            .load(Ordering::Relaxed)
            .max(self.since_ms.load(Ordering::Relaxed));
        Duration::from_millis(now.saturating_sub(last))
    }
}

/// The requests a connection is serving: an HTTP/2 connection that only sends PING or
/// SETTINGS frames moves bytes but serves nothing, and is idle all the same. A request costs
/// two counter updates and no clock read; the connection's periodic check does the timing.
#[derive(Debug, Default)]
pub struct Streams {
    open: std::sync::atomic::AtomicUsize,
    /// Requests started so far.
    started: AtomicU64,
}

/// One request being served; ends when dropped.
#[derive(Debug)]
pub struct Serving<'s>(&'s Streams);

impl Drop for Serving<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Streams {
    pub fn new() -> Self {
        Streams::default()
    }

    /// Marks a request as being served until the guard is dropped.
    pub fn begin(&self) -> Serving<'_> {
        self.open.fetch_add(1, Ordering::Relaxed);
        self.started.fetch_add(1, Ordering::Relaxed);
        Serving(self)
    }

    /// A mark that changes whenever a request starts, or `None` while one is open.
    pub fn quiet_mark(&self) -> Option<u64> {
        (self.open.load(Ordering::Relaxed) == 0).then(|| self.started.load(Ordering::Relaxed))
    }
}

/// Measures, from periodic looks at `Streams::quiet_mark`, how long a connection has served
/// nothing.
#[derive(Debug)]
pub struct QuietSince {
    mark: Option<u64>,
    since: Instant,
}

impl QuietSince {
    pub fn new() -> Self {
        QuietSince {
            mark: Some(0),
            since: Instant::now(),
        }
    }

    /// Looks at the connection now; returns how long it has served no request.
    pub fn look(&mut self, streams: &Streams) -> Duration {
        let mark = streams.quiet_mark();
        if mark.is_none() || mark != self.mark {
            self.mark = mark;
            self.since = Instant::now();
        }
        self.since.elapsed()
    }
}

impl Default for QuietSince {
    fn default() -> Self {
        QuietSince::new()
    }
}

/// Open connections per client address (`max_connections_per_ip`). Touched once per accepted
/// connection, never per request.
#[derive(Debug)]
pub struct PerAddress {
    open: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
    max: usize,
}

/// One connection's place under its address's cap.
#[derive(Debug)]
pub struct AddressSlot {
    owner: Arc<PerAddress>,
    ip: std::net::IpAddr,
}

impl PerAddress {
    pub fn new(max: usize) -> Self {
        PerAddress {
            open: std::sync::Mutex::default(),
            max,
        }
    }

    /// A place for one more connection from `ip`, or `None` when it has `max` open.
    pub fn try_take(self: &Arc<Self>, ip: std::net::IpAddr) -> Option<AddressSlot> {
        let ip = ip.to_canonical();
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(ip).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            owner: self.clone(),
            ip,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.owner.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

impl Default for Activity {
    fn default() -> Self {
        Activity::new()
    }
}

/// An I/O stream that reports its activity.
#[derive(Debug)]
pub struct Tracked<T> {
    inner: T,
    activity: Activity,
}

impl<T> Tracked<T> {
    pub fn new(inner: T, activity: Activity) -> Self {
        Tracked { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
