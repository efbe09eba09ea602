//! Steps 1–2: bind, accept under a connection cap, TLS handshake with a deadline, serve HTTP/1.1
//! and HTTP/2 with limits, and shut down gracefully.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use std::collections::HashMap;

use crate::admin::Admin;
use crate::config::{Config, Role, ServerSettings};
use crate::conn::{self, ConnInfo, ConnectionSlot};
use crate::http::service::handle;
use crate::reload::{Reloader, Started};
use crate::resources::{ResourceError, Resources};
use crate::state::AppState;
use crate::tls::CertResolver;

/// Failures while starting the gateway (binding, TLS material, resources, crypto self-test).
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot start a worker thread: {0}")]
    Worker(#[source] std::io::Error),
    #[error("cannot bind listener {address}: {source}")]
    Bind {
        address: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the JWT crypto self-test failed: {0}")]
    CryptoSelfTest(&'static str),
    #[error(transparent)]
    Resources(#[from] crate::resources::ResourceError),
    #[error("listener {address}: TLS: {reason}")]
    Tls {
        address: std::net::SocketAddr,
        reason: String,
    },
    #[error("cannot build the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// A started gateway: its bound addresses and a handle to stop it.
#[derive(Debug)]
pub struct RunningGateway {
    addresses: Vec<SocketAddr>,
    admin: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    /// The state every connection reads; a reload swaps its snapshot.
    pub state: Arc<AppState>,
    /// Reloads the config (SIGHUP, the admin listener and the file watch use it).
    pub reloader: Arc<Reloader>,
}

impl RunningGateway {
    /// The bound proxy addresses, in listener order (useful with port 0).
    pub fn addresses(&self) -> &[SocketAddr] {
        &self.addresses
    }

    /// The bound admin address, when the admin listener is on.
    pub fn admin_address(&self) -> Option<SocketAddr> {
        self.admin
    }

    /// Stops accepting, lets in-flight requests finish up to the shutdown timeout, and returns.
    /// `/readyz` answers 503 from the start; the admin listener serves until the drain is over.
    pub async fn shutdown(self) {
        self.state.begin_drain();
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    /// Makes `config` current: its plan is made live through the registry (unchanged
    /// upstreams and key stores are kept, new ones start, removed ones stop) and swapped in
    /// whole. Listeners and `server:` settings stay as they were started. On error nothing
    /// changes. (`reloader` does the same from the config file, with every check.)
    pub async fn apply(&self, config: Config) -> Result<(), ResourceError> {
        let snapshot = config.plan.go_live(&self.state.resources).await?;
        self.state.snapshot.store(Arc::new(snapshot));
        Ok(())
    }

    /// Runs until SIGTERM or SIGINT, then shuts down gracefully.
    pub async fn run_until_signal(self) {
        wait_for_signal().await;
        info!("shutdown signal received; draining connections");
        self.shutdown().await;
        info!("stopped");
    }
}

/// Binds every listener of `config` and starts serving: on the calling runtime and on
/// `workers - 1` threads with a single-threaded runtime each (a worker serves its connections
/// from accept to close, with no scheduler shared with the others).
pub async fn start(config: Config) -> Result<RunningGateway, StartupError> {
    start_with(config, HashMap::new()).await
}

/// `start`, with `vars` seen by `${VAR}` substitution when the config is reloaded.
pub async fn start_with(
    config: Config,
    vars: HashMap<String, String>,
) -> Result<RunningGateway, StartupError> {
    crate::tls::install_crypto_provider();
    crate::keys::source::crypto_self_test().map_err(StartupError::CryptoSelfTest)?;
    let workers = config
        .server
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    // Step 1: one listening socket per proxy listener and worker; with several workers they
    // share the port (SO_REUSEPORT) and the kernel spreads new connections over them. The
    // admin listener has one socket, on the main runtime.
    let mut sockets: Vec<Vec<(StdListener, Option<TlsAcceptor>)>> =
        (0..workers).map(|_| Vec::new()).collect();
    let mut addresses = Vec::new();
    let mut admin_socket = None;
    let mut certs = Vec::new();
    for spec in &config.listeners {
        let bind_error = |source| StartupError::Bind {
            address: spec.address,
            source,
        };
        if spec.role == Role::Admin {
            let socket = listen(spec.address, false).map_err(bind_error)?;
            let address = socket.local_addr().map_err(bind_error)?;
            info!(%address, "admin listening");
            admin_socket = Some((socket, address));
            certs.push(None);
            continue;
        }
        let resolver = match &spec.tls {
            None => None,
            Some(material) => Some(Arc::new(CertResolver::new(
                material
                    .certified_key()
                    .map_err(|reason| StartupError::Tls {
                        address: spec.address,
                        reason,
                    })?,
            ))),
        };
        let tls = resolver
            .clone()
            .map(|r| TlsAcceptor::from(crate::tls::server_config(r)));
        certs.push(resolver);
        let first = listen(spec.address, workers > 1).map_err(bind_error)?;
        let address = first.local_addr().map_err(bind_error)?;
        sockets[0].push((first, tls.clone()));
        for worker in sockets.iter_mut().skip(1) {
            worker.push((listen(address, true).map_err(bind_error)?, tls.clone()));
        }
        info!(%address, tls = spec.tls.is_some(), workers, "listening");
        addresses.push(address);
    }
    let (stop, stopped) = watch::channel(false);
    let started = Started::of(&config);
    let resources = Resources::new();
    let snapshot = config.plan.go_live(&resources).await?;
    let settings = Arc::new(config.server);
    let state = Arc::new(AppState::new(snapshot, resources, settings.idle_timeout));
    let reloader = Arc::new(Reloader::new(started, vars, state.clone(), certs));
    // One permit per open client connection or upgraded tunnel, across all workers: the cap,
    // and what shutdown waits for.
    let limit = Arc::new(Semaphore::new(settings.max_connections));
    let accept = AcceptLoop {
        tls: None,
        service: Service::Proxy,
        state: state.clone(),
        settings: settings.clone(),
        limit: limit.clone(),
        stopped: stopped.clone(),
        per_ip: settings
            .max_connections_per_ip
            .map(|max| Arc::new(conn::PerAddress::new(max))),
    };
    // Workers keep their runtimes (and so their connections) until the drain is over.
    let (drained, drain_over) = watch::channel(false);
    let admin_address = admin_socket.as_ref().map(|(_, a)| *a);
    if let Some((socket, _)) = admin_socket {
        // Outside the connection cap, and serving until the drain is over: `/readyz` says 503
        // while the proxy listeners drain.
        let admin = AcceptLoop {
            service: Service::Admin(Arc::new(Admin::new(state.clone(), reloader.clone()))),
            limit: Arc::new(Semaphore::new(ADMIN_CONNECTIONS)),
            stopped: drain_over.clone(),
            per_ip: None,
            ..accept.clone()
        };
        drop(admin.spawn_all(vec![(socket, None)]));
    }
    spawn_reload_triggers(&reloader, &stopped);
    let mut sockets = sockets.into_iter();
    let own = sockets.next().unwrap_or_default();
    let mut threads = Vec::new();
    for (number, worker_sockets) in sockets.enumerate() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(StartupError::Worker)?;
        let accept = accept.clone();
        let mut drain_over = drain_over.clone();
        let thread = std::thread::Builder::new()
            .name(format!("portcullis-worker-{}", number + 1))
            .spawn(move || {
                runtime.block_on(async move {
                    for l in accept.spawn_all(worker_sockets) {
                        let _ = l.await;
                    }
                    let _ = drain_over.wait_for(|over| *over).await;
                });
            })
            .map_err(StartupError::Worker)?;
        threads.push(thread);
    }
    let loops = accept.spawn_all(own);
    let shutdown_timeout = settings.shutdown_timeout;
    let all = u32::try_from(settings.max_connections).unwrap_or(u32::MAX);
    let state_at_stop = state.clone();
    let task = tokio::spawn(async move {
        let mut stopped = stopped;
        until_stopped(&mut stopped).await;
        for l in loops {
            let _ = l.await;
        }
        // Every connection has been asked to finish; they are all gone when every permit is
        // back.
        if tokio::time::timeout(shutdown_timeout, limit.acquire_many(all))
            .await
            .is_err()
        {
            warn!(timeout = ?shutdown_timeout, "shutdown timeout reached; closing remaining connections");
        }
        let _ = drained.send(true);
        state_at_stop.resources.clear();
        let _ = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
    });
    Ok(RunningGateway {
        addresses,
        admin: admin_address,
        stop,
        task,
        state,
        reloader,
    })
}

/// A listening socket for `address` (backlog 1024), sharing its port with the other workers'
/// when `share_port`. Not yet tied to a runtime: each worker registers its own.
fn listen(address: SocketAddr, share_port: bool) -> std::io::Result<StdListener> {
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    #[cfg(unix)]
    if share_port {
        socket.set_reuseport(true)?;
    }
    socket.bind(address)?;
    socket.listen(1024)?.into_std()
}

/// Most admin connections open at once (outside the proxy connection cap).
const ADMIN_CONNECTIONS: usize = 64;

/// What a listener serves.
#[derive(Clone)]
enum Service {
    Proxy,
    Admin(Arc<Admin>),
}

/// SIGHUP and (with `reload.watch`) file changes reload the config, until stop.
fn spawn_reload_triggers(reloader: &Arc<Reloader>, stopped: &watch::Receiver<bool>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(mut hangups) => {
                let reloader = reloader.clone();
                let mut stopped = stopped.clone();
                tokio::spawn(async move {
                    loop {
                        tokio::select! {
                            got = hangups.recv() => if got.is_none() { return },
                            _ = until_stopped(&mut stopped) => return,
                        }
                        let _ = reloader.reload("SIGHUP").await;
                    }
                });
            }
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGHUP; reload through the admin listener")
            }
        }
    }
    let settings = reloader.reload_settings();
    if settings.watch {
        tokio::spawn(crate::reload::watch::run(
            reloader.clone(),
            settings.debounce,
            stopped.clone(),
        ));
    }
}

/// What every accept loop of every worker shares.
#[derive(Clone)]
struct AcceptLoop {
    tls: Option<TlsAcceptor>,
    service: Service,
    state: Arc<AppState>,
    settings: Arc<ServerSettings>,
    limit: Arc<Semaphore>,
    stopped: watch::Receiver<bool>,
    /// Connections per client address, when `max_connections_per_ip` is set.
    per_ip: Option<Arc<conn::PerAddress>>,
}

impl AcceptLoop {
    /// Starts one accept loop per socket on the current runtime.
    fn spawn_all(&self, sockets: Vec<(StdListener, Option<TlsAcceptor>)>) -> Vec<JoinHandle<()>> {
        sockets
            .into_iter()
            .map(|(socket, tls)| {
                let accept = AcceptLoop {
                    tls,
                    ..self.clone()
                };
                tokio::spawn(accept.run(socket))
            })
            .collect()
    }

    async fn run(mut self, socket: StdListener) {
        let listener = match TcpListener::from_std(socket) {
            Ok(listener) => listener,
            Err(e) => {
                warn!(error = %e, "cannot register a listening socket");
                return;
            }
        };
        let builder = Arc::new(http_builder(&self.settings));
        loop {
            let (stream, remote) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and similar: back off briefly, keep serving.
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = until_stopped(&mut self.stopped) => return,
            };
            // Step 1: at most `max_connections` served at once, over all workers. Taken after
            // the accept, so that no permit sits idle in a loop that has nothing to accept: a
            // loop holds at most one accepted connection while it waits, the rest wait in the
            // kernel's queue.
            let permit = tokio::select! {
                permit = self.limit.clone().acquire_owned() => match permit { Ok(p) => p, Err(_) => return },
                _ = until_stopped(&mut self.stopped) => return,
            };
            // One address may not take every slot: past its own cap, a connection is closed at
            // once (checked at accept, never per request).
            let address_slot = match &self.per_ip {
                Some(per_ip) => match per_ip.try_take(remote.ip()) {
                    Some(slot) => Some(slot),
                    None => {
                        debug!(client = %remote, "connection refused: max_connections_per_ip");
                        continue;
                    }
                },
                None => None,
            };
            let _ = stream.set_nodelay(true);
            let connection = Connection {
                _address_slot: address_slot,
                slot: Arc::new(ConnectionSlot::new(permit)),
                remote,
                tls: self.tls.clone(),
                settings: self.settings.clone(),
                builder: builder.clone(),
                state: self.state.clone(),
                service: self.service.clone(),
                stopped: self.stopped.clone(),
            };
            tokio::spawn(connection.serve(stream));
        }
    }
}

/// One client connection and what serving it needs.
struct Connection {
    /// Its place under `max_connections_per_ip`, if set.
    _address_slot: Option<conn::AddressSlot>,
    /// Its permit under `max_connections`, released when the last holder drops it.
    slot: Arc<ConnectionSlot>,
    remote: SocketAddr,
    tls: Option<TlsAcceptor>,
    settings: Arc<ServerSettings>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    state: Arc<AppState>,
    service: Service,
    stopped: watch::Receiver<bool>,
}

impl Connection {
    async fn serve(self, stream: TcpStream) {
        let _open = matches!(self.service, Service::Proxy)
            .then(|| self.state.connections[usize::from(self.tls.is_some())].hold());
        let activity = conn::Activity::new();
        let stream = conn::Tracked::new(stream, activity.clone());
        match self.tls.clone() {
            None => self.serve_http(stream, activity).await,
            // Boxed: inline, the TLS variant would make every plain connection's task as large.
            Some(acceptor) => Box::pin(self.serve_tls(acceptor, stream, activity)).await,
        }
    }

    async fn serve_tls(
        self,
        acceptor: TlsAcceptor,
        stream: conn::Tracked<TcpStream>,
        activity: conn::Activity,
    ) {
        // Step 2: the handshake gets a deadline of its own.
        let deadline = self.settings.tls_handshake_timeout;
        match tokio::time::timeout(deadline, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => {
                activity.restart();
                self.serve_http(tls, activity).await
            }
            Ok(Err(e)) => debug!(client = %self.remote, error = %e, "TLS handshake failed"),
            Err(_) => debug!(client = %self.remote, "TLS handshake timed out"),
        }
    }

    /// Serves HTTP until the client leaves; on shutdown, or after `idle_timeout` without a
    /// byte in either direction, asks the connection to finish what is in flight and close. A
    /// client that sends nothing within `header_read_timeout` is dropped (the HTTP/1 vs HTTP/2
    /// detection would otherwise wait for its first bytes without a deadline).
    async fn serve_http<I>(self, io: I, activity: conn::Activity)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let streams = Arc::new(conn::Streams::new());
        let conn_info = ConnInfo {
            remote: self.remote,
            tls: self.tls.is_some(),
            slot: self.slot.clone(),
            streams: streams.clone(),
            protocol: Arc::default(),
        };
        let state = self.state.clone();
        let role = self.service.clone();
        let service = service_fn(move |request| {
            let state = state.clone();
            let conn_info = conn_info.clone();
            let role = role.clone();
            async move {
                match role {
                    Service::Proxy => handle(state, conn_info, request).await,
                    Service::Admin(admin) => crate::admin::handle(admin, request).await,
                }
            }
        });
        let conn = self
            .builder
            .serve_connection_with_upgrades(TokioIo::new(io), service);
        tokio::pin!(conn);
        let idle_timeout = self.settings.idle_timeout;
        let first_bytes = self.settings.header_read_timeout;
        let every = (idle_timeout.min(first_bytes) / 4).max(Duration::from_millis(50));
        let mut check = tokio::time::interval(every);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stopped = self.stopped.clone();
        let mut closing = false;
        let mut quiet = conn::QuietSince::new();
        let result = loop {
            // Biased: the connection is polled before the deadline checks, so a starved worker
            // that wakes up late reads the bytes already waiting before it judges the
            // connection silent or idle (it used to drop such clients unanswered under load).
            tokio::select! {
                biased;
                result = conn.as_mut() => break result,
                _ = until_stopped(&mut stopped), if !closing => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                _ = check.tick(), if !closing => {
                    if !activity.started() && activity.age() >= first_bytes {
                        debug!(client = %self.remote, "no request within the header read timeout");
                        return;
                    }
                    // No byte moved, or (HTTP/2 PINGs and SETTINGS move bytes) no request was
                    // served for idle_timeout.
                    if activity.idle_for() >= idle_timeout || quiet.look(&streams) >= idle_timeout {
                        debug!(client = %self.remote, "closing idle connection");
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
        };
        if let Err(e) = result {
            debug!(client = %self.remote, error = %e, "connection ended with an error");
        }
    }
}

/// HTTP/1.1 and HTTP/2 settings: header size and count limits, header read timeout, stream cap.
fn http_builder(settings: &ServerSettings) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .max_buf_size(settings.max_header_bytes.max(8192))
        .max_headers(settings.max_headers)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(settings.h2_max_concurrent_streams)
        // Fixed, bounded flow-control windows: a client (or a stalled upstream behind it) can
        // make the gateway buffer at most this much per stream and per connection.
        .adaptive_window(false)
        .initial_stream_window_size(settings.h2_stream_window)
        .initial_connection_window_size(settings.h2_connection_window)
        // Rapid-reset (CVE-2023-44487) and error-reset floods: a client that makes the server
        // reset more streams than this is sent GOAWAY.
        .max_pending_accept_reset_streams(Some(settings.h2_max_pending_resets))
        .max_local_error_reset_streams(Some(settings.h2_max_error_resets));
    builder
}

/// Resolves once a stop has been requested (or the sender is gone).
async fn until_stopped(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await.map(|_| ());
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
