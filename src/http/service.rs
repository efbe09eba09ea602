//! The request path in code: one step per call into the module that owns it; errors travel by
//! `?` to `handle`, which turns them into responses in one place.

use std::borrow::Cow;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::uri::PathAndQuery;
use http::{HeaderValue, Request, Response};
use http_body_util::Either;
use hyper::body::Incoming;
use tokio::sync::OwnedSemaphorePermit;
use tracing::info;

use super::ProxyBody;
use super::limits;
use super::respond;
use super::target::{self, Target};
use crate::error::RequestError;
use crate::proxy::{forward, forwarded, headers, upgrade};
use crate::routes::policy::{Policy, RequestFacts};
use crate::routes::{Miss, Route};
use crate::state::{AppState, Snapshot};
use crate::token::{extract, verify};

/// What a connection tells each of its requests.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub remote: SocketAddr,
    pub tls: bool,
    /// The connection's slot under `max_connections`; an upgrade moves it to its tunnel.
    pub slot: Arc<ConnectionSlot>,
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

/// What the access line reports besides method, path and status.
#[derive(Debug, Default)]
struct Outcome {
    route: Option<Arc<str>>,
    subject: Option<String>,
}

/// Serves one request: runs the pipeline, maps any error to its response, logs one line.
pub async fn handle(
    state: Arc<AppState>,
    conn: ConnInfo,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let started = Instant::now();
    // Step 3: one config snapshot for the whole request; its id, kept or made.
    let snapshot = state.snapshot.load_full();
    let request_id = forwarded::request_id(request.headers());
    let method = request.method().clone();
    let logged = snapshot.access_log.then(|| {
        let client = snapshot
            .trusted_proxies
            .client(conn.remote.ip(), request.headers());
        (request.uri().path().to_string(), client)
    });
    let mut outcome = Outcome::default();
    let (mut response, reason) = match pipeline(
        &state,
        &snapshot,
        &conn,
        request,
        request_id.clone(),
        &mut outcome,
    )
    .await
    {
        Ok(response) => (response, "allowed"),
        Err(err) => {
            let rejection = respond::rejection(&err);
            (respond::render(&rejection, &snapshot.realm), rejection.code)
        }
    };
    if let Some((path, client)) = logged {
        info!(
            target: "access",
            client = %client,
            request_id = request_id.to_str().unwrap_or("-"),
            method = %method,
            path = %path,
            route = outcome.route.as_deref().unwrap_or("-"),
            status = response.status().as_u16(),
            reason,
            subject = outcome.subject.as_deref().unwrap_or("-"),
            latency_us = started.elapsed().as_micros() as u64,
        );
    }
    response
        .headers_mut()
        .insert(forwarded::X_REQUEST_ID, request_id);
    Ok(response)
}

async fn pipeline(
    state: &AppState,
    snapshot: &Snapshot,
    conn: &ConnInfo,
    request: Request<Incoming>,
    request_id: HeaderValue,
    outcome: &mut Outcome,
) -> Result<Response<ProxyBody>, RequestError> {
    // Step 3: the request target's length (framing was settled by the HTTP parser).
    limits::check_head(request.uri(), snapshot.max_uri_bytes)?;

    // Step 3½: the host and the normalised path, read once; both are matched and forwarded.
    let target = target::read(request.uri(), request.headers(), &snapshot.paths)?;

    // Step 4: route match; no match is denied and nothing is forwarded.
    let route = snapshot
        .routes
        .find(request.method(), target.host, &target.path)
        .map_err(miss_error)?;
    outcome.route = Some(route.name.clone());

    // Steps 5–7: extract, screen and verify the token, unless the route is public.
    let verified = match &route.policy {
        Policy::Public => None,
        policy => {
            let presented = extract::extract(
                request.headers(),
                request.uri().query(),
                &route.token_sources,
            )
            .map_err(|e| RequestError::InvalidRequest(e.describe()))?;
            match presented {
                None if matches!(policy, Policy::Optional) => None,
                None => return Err(RequestError::MissingToken),
                Some(token) => Some(
                    verify::verify(
                        token,
                        &snapshot.providers,
                        snapshot.token_cache.as_ref(),
                        route.providers.as_deref(),
                        snapshot.max_token_bytes,
                    )
                    .await?,
                ),
            }
        }
    };
    if snapshot.access_log {
        outcome.subject = verified
            .as_ref()
            .and_then(|v| v.claims.get("sub"))
            .and_then(|s| s.as_str())
            .map(str::to_string);
    }

    // Step 8: claim policy.
    if let (Policy::Authenticated(Some(condition)), Some(v)) = (&route.policy, &verified) {
        let facts = RequestFacts {
            path: &target.path,
            matcher: &route.path,
            headers: request.headers(),
        };
        condition
            .evaluate(&v.claims, &facts)
            .map_err(|d| RequestError::Denied(d.code()))?;
    }

    // Step 9: header rewrite; an upgrade the route allows keeps its two hop-by-hop headers.
    let Target {
        host_header, path, ..
    } = target;
    let path_and_query = forwarded_path(request.uri(), path, route)?;
    let mut request = request;
    let upgrade = upgrade::requested(&request, &route.upgrades)
        .map(|protocol| (protocol, hyper::upgrade::on(&mut request)));
    let (mut parts, body) = request.into_parts();
    let peer = conn.remote.ip();
    let ctx = headers::ForwardContext {
        hop: forwarded::Hop {
            peer,
            trusted: snapshot.trusted_proxies.contains(peer),
            tls: conn.tls,
            host: host_header,
        },
        request_id,
    };
    headers::rewrite_request(
        &mut parts.headers,
        route,
        snapshot.routes.identity_headers(),
        verified.as_ref().map(|v| &*v.claims),
        ctx,
    );
    if let Some((protocol, _)) = &upgrade {
        headers::restore_upgrade(&mut parts.headers, protocol.clone());
    }

    // Step 10: forward, bodies streamed.
    let body = limits::limit_body(&parts.headers, body, route.max_body_bytes)?;
    let upstream = &snapshot.upstreams[route.upstream];
    let mut response =
        // Boxed: hyper keeps a box the size of the whole request future for every open client
        // connection, idle or not, and the upstream exchange is most of that size.
        Box::pin(forward::forward(upstream, Request::from_parts(parts, body), path_and_query))
            .await?;
    headers::rewrite_response(response.headers_mut());
    if let Some((protocol, client)) = upgrade
        && response.status() == http::StatusCode::SWITCHING_PROTOCOLS
    {
        // The connection's slot moves to the tunnel.
        upgrade::join(
            client,
            &mut response,
            conn.slot.take(),
            state.tunnel_idle_timeout,
        );
        headers::restore_upgrade(response.headers_mut(), protocol);
    }
    Ok(response.map(Either::Left))
}

/// The error for a request no route takes.
pub fn miss_error(miss: Miss) -> RequestError {
    match miss {
        Miss::NoRoute => RequestError::NoRoute,
        Miss::MethodNotAllowed => RequestError::MethodNotAllowed,
    }
}

/// The path the upstream receives for a matched path: `strip_prefix` removed, `add_prefix`
/// put in front (the route's own rewrite; without one, the matched path itself).
pub fn upstream_path<'p>(route: &Route, path: &'p str) -> Cow<'p, str> {
    if route.strip_prefix.is_none() && route.add_prefix.is_none() {
        return Cow::Borrowed(path);
    }
    let rest = route
        .strip_prefix
        .as_deref()
        .and_then(|p| strip_segments(path, p, route.case_sensitive))
        .unwrap_or(path);
    let rest = if rest.is_empty() { "/" } else { rest };
    match route.add_prefix.as_deref() {
        Some(prefix) if rest == "/" => Cow::Owned(format!("{prefix}/")),
        Some(prefix) => Cow::Owned(format!("{prefix}{rest}")),
        None => Cow::Owned(rest.to_string()),
    }
}

/// `path` without `prefix` when `prefix` is a whole-segment prefix of it.
fn strip_segments<'p>(path: &'p str, prefix: &str, case_sensitive: bool) -> Option<&'p str> {
    let head = path.get(..prefix.len())?;
    let same = if case_sensitive {
        head == prefix
    } else {
        head.eq_ignore_ascii_case(prefix)
    };
    let rest = &path[prefix.len()..];
    (same && (rest.is_empty() || rest.starts_with('/'))).then_some(rest)
}

/// The path and query sent upstream: the normalised path (rewritten as the route says) and the
/// query as received.
fn forwarded_path(
    uri: &http::Uri,
    normalized: Cow<'_, str>,
    route: &Route,
) -> Result<PathAndQuery, RequestError> {
    let invalid = |_| RequestError::AmbiguousPath("path cannot be forwarded");
    let normalized = match upstream_path(route, &normalized) {
        Cow::Borrowed(_) => normalized,
        Cow::Owned(rewritten) => Cow::Owned(rewritten),
    };
    match (normalized, uri.query()) {
        (Cow::Borrowed(_), _) => match uri.path_and_query() {
            Some(pq) => Ok(pq.clone()),
            None => Ok(PathAndQuery::from_static("/")),
        },
        (Cow::Owned(p), None) => PathAndQuery::try_from(p).map_err(invalid),
        (Cow::Owned(p), Some(q)) => PathAndQuery::try_from(format!("{p}?{q}")).map_err(invalid),
    }
}
