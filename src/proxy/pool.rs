//! Step 10's connections: one target's pool of upstream connections. HTTP/1.1 connections
//! carry one request at a time and come back to the pool once their response has been read to
//! the end; an HTTP/2 connection is shared by the requests of its shard. The pool is split
//! into shards, one per worker thread, each behind its own mutex, so no lock is shared by all
//! requests (a thread only ever takes its own shard's lock, so it is uncontended).
//!
//! A request handed to a pooled connection that turns out to be closing (the upstream closed
//! it while idle) comes back unsent and is tried on the next idle connection or a new one; a
//! request that was written is never sent again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::{TrySendError, http1, http2};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tower_service::Service;

use super::body::RequestBody;
use crate::metrics::Counter;

/// Opens TCP (and TLS for https) connections to targets.
pub type Connector = HttpsConnector<HttpConnector>;

/// Why a request got no response.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be opened (TCP, TLS or the HTTP/2 preface): nothing was sent, and
    /// here is the request back, to try elsewhere.
    Connect(Box<Request<RequestBody>>),
    /// The exchange failed after the request was handed to a connection.
    Request(hyper::Error),
    /// The target has `max_connections_per_target` open, none came free in time, or too many
    /// requests already wait for one: nothing was sent.
    Overloaded,
}

/// The connections of one target.
#[derive(Debug)]
pub struct Pool {
    shards: Box<[Mutex<Shard>]>,
    /// Woken when a connection of the shard comes back idle.
    returned: Box<[tokio::sync::Notify]>,
    /// Idle HTTP/1.1 connections kept per shard.
    max_idle_per_shard: usize,
    idle_timeout: Duration,
    /// HTTP/1.1 connections open to the target, against `max_open`.
    open: Arc<AtomicUsize>,
    max_open: usize,
    /// Requests waiting for a connection, against `max_pending`.
    pending: AtomicUsize,
    max_pending: usize,
    /// Longest a request waits for a connection to come free.
    max_wait: Duration,
    /// Connections opened to the target (HTTP/1.1 and HTTP/2), and requests sent on an idle
    /// pooled HTTP/1.1 connection, for the metrics.
    pub connects: Counter,
    pub reuses: Counter,
}

/// One open HTTP/1.1 connection, counted until its task ends.
struct OpenConnection(Arc<AtomicUsize>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One request waiting for a connection.
struct Waiting<'p>(&'p AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[derive(Debug, Default)]
struct Shard {
    /// Newest last.
    idle: Vec<Idle>,
    shared: Option<http2::SendRequest<RequestBody>>,
}

#[derive(Debug)]
struct Idle {
    sender: http1::SendRequest<RequestBody>,
    since: Instant,
}

/// The calling thread's shard number, drawn once per thread.
fn thread_slot() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    SLOT.with(|slot| *slot)
}

impl Pool {
    /// A pool keeping at most `max_idle` idle connections (spread over the shards), each at most
    /// `idle_timeout`; at most `max_open` HTTP/1.1 connections, with at most `max_pending`
    /// requests waiting up to `max_wait` for one to come free.
    pub fn new(
        max_idle: usize,
        idle_timeout: Duration,
        max_open: usize,
        max_pending: usize,
        max_wait: Duration,
    ) -> Pool {
        let shards = std::thread::available_parallelism().map_or(1, |n| n.get());
        Pool {
            shards: (0..shards).map(|_| Mutex::default()).collect(),
            returned: (0..shards).map(|_| tokio::sync::Notify::new()).collect(),
            max_idle_per_shard: max_idle.div_ceil(shards),
            idle_timeout,
            open: Arc::new(AtomicUsize::new(0)),
            max_open: max_open.max(1),
            pending: AtomicUsize::new(0),
            max_pending,
            max_wait,
            connects: Counter::default(),
            reuses: Counter::default(),
        }
    }

    fn shard_index(&self) -> usize {
        thread_slot() % self.shards.len()
    }

    /// The calling thread's shard, locked.
    fn shard(&self) -> MutexGuard<'_, Shard> {
        lock(&self.shards[self.shard_index()])
    }

    /// HTTP/1.1 connections open now.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// A place for one more connection under `max_open`.
    fn try_open(&self) -> Option<OpenConnection> {
        let before = self.open.fetch_add(1, Ordering::AcqRel);
        let counted = OpenConnection(self.open.clone());
        (before < self.max_open).then_some(counted)
    }

    /// Sends `request` over a pooled or new connection to `address` (scheme and authority of
    /// the target). HTTP/1.1 requests must carry an origin-form URI and a `Host` header;
    /// HTTP/2 ones an absolute URI.
    pub async fn send(
        self: &Arc<Self>,
        connector: &Connector,
        address: &Uri,
        http2: bool,
        request: Request<RequestBody>,
    ) -> Result<Response<Incoming>, SendError> {
        if http2 {
            self.send_h2(connector, address, request).await
        } else {
            self.send_h1(connector, address, request).await
        }
    }

    async fn send_h1(
        self: &Arc<Self>,
        connector: &Connector,
        address: &Uri,
        mut request: Request<RequestBody>,
    ) -> Result<Response<Incoming>, SendError> {
        let mut waiting = None;
        let deadline = tokio::time::Instant::now() + self.max_wait;
        loop {
            while let Some(mut sender) = self.take_idle() {
                match sender.try_send_request(request).await {
                    Ok(response) => {
                        self.recycle(sender);
                        return Ok(response);
                    }
                    // Closing under us before the request left: try the next one.
                    Err(failed) => request = unsent(failed)?,
                }
            }
            if let Some(counted) = self.try_open() {
                // Boxed: opening a connection is rare, and its future is large; inline, it
                // would make every request's future (moved into place on each request) that
                // large too.
                return Box::pin(self.send_on_new_h1(connector, address, request, counted)).await;
            }
            // At the connection cap: another thread's idle connection, else wait for one to
            // come back, boundedly.
            if let Some(mut sender) = self.take_idle_anywhere() {
                match sender.try_send_request(request).await {
                    Ok(response) => {
                        self.recycle(sender);
                        return Ok(response);
                    }
                    Err(failed) => {
                        request = unsent(failed)?;
                        continue;
                    }
                }
            }
            if waiting.is_none() {
                if self.pending.fetch_add(1, Ordering::AcqRel) >= self.max_pending {
                    self.pending.fetch_sub(1, Ordering::AcqRel);
                    return Err(SendError::Overloaded);
                }
                waiting = Some(Waiting(&self.pending));
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(SendError::Overloaded);
            }
            // A connection of this shard coming back wakes the wait; one closing elsewhere
            // frees a place under the cap, which the next look sees.
            let look_again = (deadline - now).min(Duration::from_millis(20));
            let returned = &self.returned[self.shard_index()];
            let _ = tokio::time::timeout(look_again, returned.notified()).await;
        }
    }

    async fn send_on_new_h1(
        self: &Arc<Self>,
        connector: &Connector,
        address: &Uri,
        request: Request<RequestBody>,
        counted: OpenConnection,
    ) -> Result<Response<Incoming>, SendError> {
        let Some(io) = connect(connector, address).await else {
            return Err(SendError::Connect(Box::new(request)));
        };
        self.connects.inc();
        let Ok((mut sender, connection)) = http1::Builder::new().handshake(io).await else {
            return Err(SendError::Connect(Box::new(request)));
        };
        tokio::spawn(async move {
            let _ = connection.with_upgrades().await;
            drop(counted);
        });
        let response = sender
            .send_request(request)
            .await
            .map_err(SendError::Request)?;
        self.recycle(sender);
        Ok(response)
    }

    async fn send_h2(
        &self,
        connector: &Connector,
        address: &Uri,
        mut request: Request<RequestBody>,
    ) -> Result<Response<Incoming>, SendError> {
        let shared = self.shard().shared.clone();
        if let Some(mut sender) = shared.filter(|s| !s.is_closed()) {
            match sender.try_send_request(request).await {
                Ok(response) => return Ok(response),
                Err(failed) => request = unsent(failed)?,
            }
        }
        Box::pin(self.send_on_new_h2(connector, address, request)).await
    }

    async fn send_on_new_h2(
        &self,
        connector: &Connector,
        address: &Uri,
        request: Request<RequestBody>,
    ) -> Result<Response<Incoming>, SendError> {
        let Some(io) = connect(connector, address).await else {
            return Err(SendError::Connect(Box::new(request)));
        };
        self.connects.inc();
        let handshake = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(io)
            .await;
        let Ok((mut sender, connection)) = handshake else {
            return Err(SendError::Connect(Box::new(request)));
        };
        tokio::spawn(connection);
        self.shard().shared = Some(sender.clone());
        sender
            .send_request(request)
            .await
            .map_err(SendError::Request)
    }

    /// The newest idle connection that is still usable, dropping stale ones.
    fn take_idle(&self) -> Option<http1::SendRequest<RequestBody>> {
        self.take_idle_from(&mut self.shard())
    }

    fn take_idle_from(&self, shard: &mut Shard) -> Option<http1::SendRequest<RequestBody>> {
        while let Some(idle) = shard.idle.pop() {
            if idle.since.elapsed() < self.idle_timeout && idle.sender.is_ready() {
                self.reuses.inc();
                return Some(idle.sender);
            }
        }
        None
    }

    /// At the connection cap only: an idle connection of any shard (the cap counts the
    /// connections of every thread, so one idle elsewhere is the one that can serve).
    fn take_idle_anywhere(&self) -> Option<http1::SendRequest<RequestBody>> {
        self.shards
            .iter()
            .find_map(|shard| self.take_idle_from(&mut lock(shard)))
    }

    /// Puts the connection back once its exchange is over (response read to the end and request
    /// sent); a connection that closes or is upgraded instead just ends.
    fn recycle(self: &Arc<Self>, mut sender: http1::SendRequest<RequestBody>) {
        if self.max_idle_per_shard == 0 {
            return;
        }
        let pool = Arc::downgrade(self);
        tokio::spawn(async move {
            if sender.ready().await.is_err() {
                return;
            }
            if let Some(pool) = pool.upgrade() {
                let mut shard = pool.shard();
                if shard.idle.len() < pool.max_idle_per_shard {
                    shard.idle.push(Idle {
                        sender,
                        since: Instant::now(),
                    });
                    drop(shard);
                    pool.returned[pool.shard_index()].notify_one();
                }
            }
        });
    }

    /// Closes idle connections older than the idle timeout, and HTTP/2 ones that ended.
    pub fn close_expired(&self) {
        for shard in &self.shards {
            let mut shard = lock(shard);
            shard.idle.retain(|idle| {
                idle.since.elapsed() < self.idle_timeout && !idle.sender.is_closed()
            });
            if shard.shared.as_ref().is_some_and(|s| s.is_closed()) {
                shard.shared = None;
            }
        }
    }
}

/// The request back from a connection that closed before sending it; an error if it was sent.
fn unsent(
    mut failed: TrySendError<Request<RequestBody>>,
) -> Result<Request<RequestBody>, SendError> {
    failed
        .take_message()
        .ok_or_else(|| SendError::Request(failed.into_error()))
}

/// Locks a shard. A panic while holding one cannot leave it inconsistent (a Vec and an
/// Option), so a poisoned lock is used as it is.
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A connection as the connector opens it: TCP, with TLS for https targets.
type Stream = hyper_rustls::MaybeHttpsStream<hyper_util::rt::TokioIo<tokio::net::TcpStream>>;

async fn connect(connector: &Connector, address: &Uri) -> Option<Stream> {
    let mut connector = connector.clone();
    connector
        .call(address.clone())
        .await
        .inspect_err(|error| tracing::debug!(%address, error, "upstream connect failed"))
        .ok()
}
