//! One request served: `pipeline::authorize` (steps 3–9), `pipeline::dispatch` (step 10), and
//! errors turned into responses in one place (step 11), with one access line.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use http::{Request, Response};
use hyper::body::Incoming;
use serde_json::Value;
use tracing::info;

use super::ProxyBody;
use super::limits;
use super::pipeline::{Observer, Peer, TokenCheck, TokenSeen, TunnelContext, authorize, dispatch};
use super::respond;
use crate::conn::ConnInfo;
use crate::error::Denial;
use crate::error::RequestError;
use crate::metrics;
use crate::proxy::forwarded;
use crate::routes::Route;
use crate::routes::policy::{Condition, Trace};
use crate::state::{AppState, Snapshot};

/// Longest path an access line carries, in bytes; longer ones are cut and marked.
const MAX_LOGGED_PATH: usize = 512;

/// The path as logged: at most `MAX_LOGGED_PATH` bytes (a request target is visible ASCII, so
/// no escaping is needed beyond what the log format does), never the query string.
fn loggable_path(path: &str) -> String {
    match path.get(..MAX_LOGGED_PATH) {
        Some(head) if path.len() > MAX_LOGGED_PATH => format!("{head}...[{} bytes]", path.len()),
        _ => path.to_string(),
    }
}

/// What the access line and the metrics report besides method, path and status; filled in by
/// `authorize`.
#[derive(Debug, Default)]
struct Outcome<'s> {
    /// Whether the subject is wanted (the access log is on).
    log_subject: bool,
    route: Option<&'s Route>,
    subject: Option<String>,
    /// The provider of the accepted token.
    provider: Option<usize>,
    /// How long the token check took, when there was one.
    verify_took: Option<std::time::Duration>,
}

impl Trace for Outcome<'_> {
    #[inline]
    fn begin(&mut self, _: usize, _: &Condition) -> usize {
        0
    }
    #[inline]
    fn end(&mut self, _: usize, _: Result<(), Denial>, _: Option<&Value>, _: Option<&str>) {}
}

impl<'s> Observer<'s> for Outcome<'s> {
    fn route(&mut self, route: &'s Route) {
        self.route = Some(route);
    }

    fn verify_took(&mut self, took: std::time::Duration) {
        self.verify_took = Some(took);
    }

    fn token(&mut self, seen: TokenSeen<'_>) {
        if let TokenSeen::Verified(v) = &seen {
            self.provider = Some(v.provider);
        }
        if let (true, TokenSeen::Verified(v)) = (self.log_subject, seen) {
            self.subject = v
                .claims
                .get("sub")
                .and_then(|s| s.as_str())
                .map(str::to_string);
        }
    }
}

/// Serves one request: authorizes it, dispatches it, maps any error to its response, logs one
/// line.
pub async fn handle(
    state: Arc<AppState>,
    conn: ConnInfo,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let started = Instant::now();
    let _serving = conn.streams.begin();
    conn.protocol.get_or_init(|| {
        let h2 = request.version() == http::Version::HTTP_2;
        state.protocols[usize::from(h2)].hold()
    });
    // Step 3: one config snapshot for the whole request; its id, kept or made.
    let snapshot = state.snapshot.load_full();
    let request_id = forwarded::request_id(request.headers());
    let method = request.method().clone();
    let logged = snapshot.access_log.then(|| {
        let client = snapshot
            .trusted_proxies
            .client(conn.remote.ip(), request.headers());
        (loggable_path(request.uri().path()), client)
    });
    let mut outcome = Outcome {
        log_subject: snapshot.access_log,
        ..Outcome::default()
    };
    let (parts, body) = request.into_parts();
    let peer = Peer {
        ip: conn.remote.ip(),
        tls: conn.tls,
    };
    let cache = TokenCheck::Verify(snapshot.token_cache.as_ref());
    let framed = limits::check_framing(parts.version, &parts.headers);
    let authorized = match framed {
        Ok(()) => {
            authorize(
                &snapshot,
                parts,
                peer,
                request_id.clone(),
                cache,
                &mut outcome,
            )
            .await
        }
        Err(e) => Err(e),
    };
    let result = match authorized {
        Ok(authorized) => {
            dispatch(&snapshot, authorized, body, || TunnelContext {
                slot: conn.slot.take(),
                idle_timeout: state.tunnel_idle_timeout,
            })
            .await
        }
        Err(err) => Err(err),
    };
    // Step 11: the response, and what it is counted as.
    let upstream = outcome
        .route
        .and_then(|r| r.upstream)
        .and_then(|i| snapshot.upstreams.get(i));
    let (mut response, reason, decision) = match result {
        Ok(response) => {
            if let Some(upstream) = upstream {
                upstream.stats.response(response.status().as_u16());
            }
            (response, "allowed", 0)
        }
        Err(err) => {
            if let (Some(upstream), RequestError::Upstream(e)) = (upstream, &err) {
                upstream.stats.failure(*e);
            }
            let rejection = respond::rejection(&err);
            (
                respond::render(&rejection, &snapshot.realm),
                rejection.code.as_str(),
                rejection.code.decision(),
            )
        }
    };
    let took = started.elapsed();
    record(
        &state,
        &snapshot,
        &outcome,
        &method,
        response.status().as_u16(),
        decision,
        took,
    );
    if let Some((path, client)) = logged {
        info!(
            target: "access",
            client = %client,
            request_id = request_id.to_str().unwrap_or("-"),
            method = %method,
            path = %path,
            route = outcome.route.map_or("-", |r| &*r.name),
            status = response.status().as_u16(),
            reason,
            subject = outcome.subject.as_deref().unwrap_or("-"),
            upstream = upstream.map_or("-", |u| &*u.spec.name),
            // The response body's length when it is known up front (streamed bodies: none).
            bytes = hyper::body::Body::size_hint(response.body()).exact(),
            latency_us = took.as_micros() as u64,
        );
    }
    response
        .headers_mut()
        .insert(forwarded::X_REQUEST_ID, request_id);
    Ok(response)
}

/// Counts the request into its route's stats (or the unmatched ones) and the token check into
/// its provider's (or the refused ones).
fn record(
    state: &AppState,
    snapshot: &Snapshot,
    outcome: &Outcome<'_>,
    method: &http::Method,
    status: u16,
    decision: usize,
    took: std::time::Duration,
) {
    let provider = outcome
        .provider
        .and_then(|i| snapshot.providers.list().get(i));
    match (provider, outcome.verify_took) {
        (Some(provider), took) => {
            provider.keys.verified.inc();
            if let Some(took) = took {
                provider.keys.verify_duration.observe(took);
            }
        }
        (None, Some(took)) => state.refused_verify_duration.observe(took),
        (None, None) => {}
    }
    let stats = outcome.route.map_or(&state.unmatched, |r| &r.stats);
    stats.record(metrics::method_class(method), status, decision, took);
}
