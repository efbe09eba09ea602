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

use crate::http::limits::RequestBody;

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
}

/// The connections of one target.
#[derive(Debug)]
pub struct Pool {
    shards: Box<[Mutex<Shard>]>,
    /// Idle HTTP/1.1 connections kept per shard.
    max_idle_per_shard: usize,
    idle_timeout: Duration,
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
    /// `idle_timeout`.
    pub fn new(max_idle: usize, idle_timeout: Duration) -> Pool {
        let shards = std::thread::available_parallelism().map_or(1, |n| n.get());
        Pool {
            shards: (0..shards).map(|_| Mutex::default()).collect(),
            max_idle_per_shard: max_idle.div_ceil(shards),
            idle_timeout,
        }
    }

    /// The calling thread's shard, locked.
    fn shard(&self) -> MutexGuard<'_, Shard> {
        lock(&self.shards[thread_slot() % self.shards.len()])
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
        // Boxed: opening a connection is rare, and its future is large; inline, it would make
        // every request's future (moved into place on each request) that large too.
        Box::pin(self.send_on_new_h1(connector, address, request)).await
    }

    async fn send_on_new_h1(
        self: &Arc<Self>,
        connector: &Connector,
        address: &Uri,
        request: Request<RequestBody>,
    ) -> Result<Response<Incoming>, SendError> {
        let Some(io) = connect(connector, address).await else {
            return Err(SendError::Connect(Box::new(request)));
        };
        let Ok((mut sender, connection)) = http1::Builder::new().handshake(io).await else {
            return Err(SendError::Connect(Box::new(request)));
        };
        tokio::spawn(connection.with_upgrades());
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
        let mut shard = self.shard();
        while let Some(idle) = shard.idle.pop() {
            if idle.since.elapsed() < self.idle_timeout && idle.sender.is_ready() {
                return Some(idle.sender);
            }
        }
        None
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
