//! Connection idle tracking: a wrapper around the client connection that notes when bytes
//! last moved, so the connection task can close connections idle for `idle_timeout`.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

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
