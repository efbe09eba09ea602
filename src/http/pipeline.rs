//! Steps 3–9 as one function, `authorize`, and step 10 as another, `dispatch`. The gateway runs
//! both; `portcullis explain` runs `authorize` alone with an observer that records what each
//! step saw, so there is one sequence of decisions, not two.
//!
//! What the upstream receives is what was checked: the claim policy reads the headers after
//! they were cleaned for forwarding, the path matched is the path forwarded, and the only
//! credential forwarded is the token that was verified.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use http::request::Parts;
use http::uri::PathAndQuery;
use http::{HeaderValue, Response};
use http_body_util::Either;
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;

use super::ProxyBody;
use super::limits;
use super::target;
use crate::error::{RequestError, TokenError, UpstreamError};
use crate::proxy::client::UpstreamBody;
use crate::proxy::{forward, forwarded, headers, upgrade};
use crate::routes::policy::{DenyAs, Policy, RequestFacts, Trace};
use crate::routes::{Candidate, Miss, Route};
use crate::state::Snapshot;
use crate::token::Claims;
use crate::token::Verified;
use crate::token::cache::TokenCache;
use crate::token::extract::{self, Presented};
use crate::token::verify::{self, unix_now};

/// The connection a request came on, as far as authorization cares.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub ip: IpAddr,
    pub tls: bool,
}

/// How the token step decides.
#[derive(Debug, Clone)]
pub enum TokenCheck<'a> {
    /// Verify what the request presents, through the verified-token cache when one is given.
    Verify(Option<&'a TokenCache>),
    /// Take these claims as verified by an accepted provider (`explain --claims`).
    Assume(Arc<Claims>),
}

/// What the token step found, for an observer.
#[derive(Debug)]
pub enum TokenSeen<'v> {
    /// The route is public: no token is read.
    NotRead,
    /// No token, and the route allows anonymous requests.
    Anonymous,
    /// No token on a route that needs one.
    Missing,
    /// Claims were given instead of a token.
    Assumed,
    Verified(&'v Verified),
    Refused(TokenError),
}

/// Watches `authorize` (besides the claim conditions, through `Trace`). Every method has an
/// empty default, so `()` costs nothing on the request path.
pub trait Observer<'s>: Trace {
    /// Whether every route is scored and reported to `candidate` (explain), instead of the
    /// indexed lookup.
    fn wants_candidates(&self) -> bool {
        false
    }
    fn target(&mut self, _host: Option<&str>, _path: &str) {}
    fn candidate(&mut self, _route: &'s Route, _candidate: Candidate) {}
    fn route(&mut self, _route: &'s Route) {}
    fn token(&mut self, _seen: TokenSeen<'_>) {}
    /// How long verification took (cache lookup included), whatever its result.
    fn verify_took(&mut self, _took: std::time::Duration) {}
}

impl Observer<'_> for () {}

/// A request that may go upstream, with everything dispatch needs.
#[derive(Debug)]
pub struct Authorized<'s> {
    pub route: &'s Route,
    /// Method, version and the headers as they will be forwarded.
    pub parts: Parts,
    /// Path (normalised, rewritten as the route says) and query sent upstream.
    pub path_and_query: PathAndQuery,
    /// The `Content-Length` the client declared, read before any header was touched.
    pub declared_length: Option<u64>,
    /// The protocol an allowed `Upgrade` switches to.
    pub upgrade: Option<HeaderValue>,
    /// Unix seconds from which the verified token is refused (for tunnels that close then).
    pub token_refuse_from: Option<f64>,
    /// The client's address as believed (trusted proxies applied), for local endpoints.
    pub client: IpAddr,
    /// A local endpoint's verified token (logout denies it).
    pub local_token: Option<Arc<Claims>>,
}

/// Steps 3–9: limits, target, route, token, claim policy and header rewrite. Nothing is sent
/// anywhere; the result is a request the route allows, or the reason it does not.
pub async fn authorize<'s, O: Observer<'s>>(
    snapshot: &'s Snapshot,
    mut parts: Parts,
    peer: Peer,
    request_id: HeaderValue,
    check: TokenCheck<'_>,
    observer: &mut O,
) -> Result<Authorized<'s>, RequestError> {
    // Step 3: request limits. Methods are case-sensitive (RFC 9110 §9.1): `delete` is not
    // `DELETE`, and frameworks that upper-case it would run a handler no rule matched.
    limits::check_head(&parts.uri, snapshot.max_uri_bytes)?;
    if !is_upper_case_token(parts.method.as_str()) {
        return Err(RequestError::BadMethod);
    }
    // HTTP/1 counts fields while parsing; HTTP/2 only bounds their bytes.
    if parts.headers.len() > snapshot.max_headers {
        return Err(RequestError::TooManyHeaders);
    }
    let declared_length = limits::declared_length(&parts.headers);

    // Step 3½–4: host and normalised path, read once; then the route (default deny).
    let (route, path, host_header) = {
        let target = target::read(&parts.uri, &parts.headers, &snapshot.paths)?;
        observer.target(target.host, &target.path);
        let found = if observer.wants_candidates() {
            snapshot
                .routes
                .find_traced(&parts.method, target.host, &target.path, |r, c| {
                    observer.candidate(r, c)
                })
        } else {
            snapshot
                .routes
                .find(&parts.method, target.host, &target.path)
        };
        (found.map_err(miss_error)?, target.path, target.host_header)
    };
    observer.route(route);
    // TRACE echoes the request back, the identity headers the gateway adds included: only a
    // route that lists it by name takes it.
    if parts.method == http::Method::TRACE && !route.methods.names(&http::Method::TRACE) {
        return Err(RequestError::MethodNotAllowed);
    }

    // Steps 5–7: extract, screen and verify the token, unless the route is public or denies.
    let (claims, refuse_from, credentials) = match &route.policy {
        Policy::Deny(DenyAs::Forbidden) => return Err(RequestError::RuleDenied),
        Policy::Deny(DenyAs::NotFound) => return Err(RequestError::NoRoute),
        Policy::Public if route.local.is_some() => {
            // Answered here (the issuer): it reads the request as sent, its cookie included.
            observer.token(TokenSeen::NotRead);
            // A route naming providers (logout, with revocation on) acts on the token it is
            // shown: verified like any, so only a token that checks is acted on.
            let local_token = match (&route.providers, check) {
                (Some(allowed), TokenCheck::Verify(cache)) => {
                    match extract::extract(&parts.headers, None, &route.token_sources) {
                        Ok(Presented::Token(token, _)) => verify::verify(
                            token,
                            &snapshot.providers,
                            cache,
                            Some(allowed),
                            snapshot.max_token_bytes,
                        )
                        .await
                        .ok()
                        .map(|v| v.claims),
                        _ => None,
                    }
                }
                _ => None,
            };
            let path_and_query = parts
                .uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/"));
            return Ok(Authorized {
                route,
                client: snapshot.trusted_proxies.client(peer.ip, &parts.headers),
                parts,
                path_and_query,
                declared_length,
                upgrade: None,
                token_refuse_from: None,
                local_token,
            });
        }
        Policy::Public => {
            observer.token(TokenSeen::NotRead);
            (None, None, None)
        }
        policy => {
            let presented =
                extract::extract(&parts.headers, parts.uri.query(), &route.token_sources)
                    .map_err(RequestError::InvalidRequest)?;
            let (claims, refuse_from) = match (presented, check) {
                (_, TokenCheck::Assume(claims)) => {
                    observer.token(TokenSeen::Assumed);
                    (Some(claims), None)
                }
                (Presented::UnsupportedScheme, _) => {
                    observer.token(TokenSeen::Refused(TokenError::UnsupportedScheme));
                    return Err(TokenError::UnsupportedScheme.into());
                }
                (Presented::Nothing, _) if matches!(policy, Policy::Optional) => {
                    observer.token(TokenSeen::Anonymous);
                    (None, None)
                }
                (Presented::Nothing, _) => {
                    observer.token(TokenSeen::Missing);
                    return Err(RequestError::MissingToken);
                }
                (Presented::Token(token, _), TokenCheck::Verify(cache)) => {
                    let started = std::time::Instant::now();
                    let result = verify::verify(
                        token,
                        &snapshot.providers,
                        cache,
                        route.providers.as_deref(),
                        snapshot.max_token_bytes,
                    )
                    .await;
                    observer.verify_took(started.elapsed());
                    // Step 7½: the issuer's own tokens against its denylist (when it keeps one).
                    let result = result.and_then(|verified| match &snapshot.issuer {
                        Some(issuer) => issuer
                            .check_revocation(verified.provider, &verified.claims)
                            .map(|()| verified),
                        None => Ok(verified),
                    });
                    match result {
                        Ok(verified) => {
                            observer.token(TokenSeen::Verified(&verified));
                            (Some(verified.claims), Some(verified.refuse_from))
                        }
                        Err(e) => {
                            observer.token(TokenSeen::Refused(e));
                            return Err(e.into());
                        }
                    }
                }
            };
            (
                claims,
                refuse_from,
                Some(headers::credentials_plan(&parts.headers, route, presented)),
            )
        }
    };

    // Step 9a, before any rule reads a header: clean the headers for forwarding, so the policy
    // judges exactly the headers the upstream will get.
    let trusted = snapshot.trusted_proxies.contains(peer.ip);
    let upgrade = upgrade::requested(parts.version, &parts.headers, &route.upgrades);
    headers::sanitize_request(&mut parts.headers, route, &snapshot.header_rules, trusted)?;
    if let Some(issuer) = &snapshot.issuer {
        // The refresh cookie is the issuer's alone: no upstream ever sees it.
        crate::issuer::strip_cookie(&mut parts.headers, &issuer.spec.cookie_name);
    }
    if let Some(plan) = credentials {
        plan.apply(&mut parts.headers);
    }

    // Step 8: claim policy, on the cleaned headers.
    if let (Policy::Authenticated(Some(condition)), Some(claims)) = (&route.policy, &claims) {
        let facts = RequestFacts {
            path: &path,
            matcher: &route.path,
            headers: &parts.headers,
        };
        condition
            .evaluate_traced(claims, &facts, observer, 0)
            .map_err(RequestError::Denied)?;
    }
    if let (Some(max), Some(len)) = (route.max_body_bytes, declared_length)
        && len > max
    {
        return Err(RequestError::BodyTooLarge);
    }

    // Step 9c: claim headers, forwarding headers, request id; an allowed upgrade keeps its two
    // hop-by-hop headers.
    let strip_query = route
        .token_sources
        .query_param
        .as_deref()
        .filter(|_| route.strip_authorization);
    let path_and_query = forwarded_path(&parts.uri, path, route, strip_query)?;
    let ctx = headers::ForwardContext {
        hop: forwarded::Hop {
            peer: peer.ip,
            trusted,
            tls: peer.tls,
            host: host_header,
        },
        request_id,
    };
    headers::inject(&mut parts.headers, route, claims.as_deref(), ctx);
    if let Some(protocol) = &upgrade {
        headers::restore_upgrade(&mut parts.headers, protocol.clone());
    }
    Ok(Authorized {
        route,
        parts,
        path_and_query,
        declared_length,
        upgrade,
        token_refuse_from: refuse_from.filter(|_| route.close_at_token_expiry),
        client: peer.ip,
        local_token: None,
    })
}

/// What a tunnel needs from the connection it came on.
#[derive(Debug)]
pub struct TunnelContext {
    /// The client connection's slot under `max_connections`; the tunnel holds it.
    pub slot: Option<tokio::sync::OwnedSemaphorePermit>,
    pub idle_timeout: std::time::Duration,
}

/// Step 10: forward the authorized request upstream, bodies streamed and counted against the
/// route's limit; an upgrade the upstream accepts correctly becomes a tunnel.
pub async fn dispatch(
    snapshot: &Snapshot,
    authorized: Authorized<'_>,
    body: Incoming,
    tunnel: impl FnOnce() -> TunnelContext,
) -> Result<Response<ProxyBody>, RequestError> {
    let Authorized {
        route,
        mut parts,
        path_and_query,
        declared_length,
        upgrade,
        token_refuse_from,
        client,
        local_token,
    } = authorized;
    if let (Some(endpoint), Some(issuer)) = (route.local, snapshot.issuer.as_deref()) {
        let body = limits::limit_body(declared_length, body, route.max_body_bytes)?;
        let reply = issuer
            .serve(endpoint, &parts, body, client, local_token.as_deref())
            .await;
        return Ok(reply.map(Either::Right));
    }
    let client_upgrade = upgrade
        .as_ref()
        .and_then(|_| parts.extensions.remove::<OnUpgrade>());
    let body = limits::limit_body(declared_length, body, route.max_body_bytes)?;
    let Some(upstream) = route.upstream.and_then(|i| snapshot.upstreams.get(i)) else {
        // Only deny routes have no upstream, and authorize never lets them through.
        return Err(RequestError::RuleDenied);
    };
    // Circuit breaking: a slot under the upstream's max_requests, held until the response
    // body ends.
    let slot = upstream
        .try_request_slot()
        .ok_or(UpstreamError::Overloaded)?;
    let request_key = upgrade
        .as_ref()
        .and_then(|_| parts.headers.get(http::header::SEC_WEBSOCKET_KEY).cloned());
    let mut response =
        // Boxed: hyper keeps a box the size of the whole request future for every open client
        // connection, idle or not, and the upstream exchange is most of that size.
        Box::pin(forward::forward(upstream, http::Request::from_parts(parts, body), path_and_query))
            .await?;
    let switched = response.status() == http::StatusCode::SWITCHING_PROTOCOLS;
    match (upgrade, client_upgrade) {
        (Some(protocol), Some(client)) if switched => {
            // Join only what was asked for: the same protocol and, for WebSocket, the accept
            // key that proves the upstream read this handshake (RFC 6455 §4.2.2).
            if !upgrade::accepts(response.headers(), &protocol, request_key.as_ref()) {
                return Err(UpstreamError::BadUpgrade.into());
            }
            headers::rewrite_response(response.headers_mut());
            let context = tunnel();
            let deadline = token_refuse_from
                .map(|t| std::time::Duration::from_secs_f64((t - unix_now()).clamp(0.0, 1e9)));
            // The connection's slot moves to the tunnel.
            upgrade::join(
                client,
                &mut response,
                context.slot,
                context.idle_timeout,
                deadline,
            );
            headers::restore_upgrade(response.headers_mut(), protocol);
        }
        // A 101 nobody asked for cannot be relayed: the client connection stays HTTP.
        _ if switched => return Err(UpstreamError::BadUpgrade.into()),
        _ => headers::rewrite_response(response.headers_mut()),
    }
    if let Some(issuer) = &snapshot.issuer {
        crate::issuer::drop_set_cookie(response.headers_mut(), &issuer.spec.cookie_name);
    }
    Ok(response.map(|body| Either::Left(UpstreamBody::new(body, slot))))
}

/// The error for a request no route takes.
pub fn miss_error(miss: Miss) -> RequestError {
    match miss {
        Miss::NoRoute => RequestError::NoRoute,
        Miss::MethodNotAllowed => RequestError::MethodNotAllowed,
    }
}

/// A method as the rules name them: letters upper-case (digits and the other token characters
/// are fine). hyper has already checked that it is a token.
fn is_upper_case_token(method: &str) -> bool {
    !method.bytes().any(|b| b.is_ascii_lowercase())
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
        .and_then(|p| crate::routes::path::strip_segments(path, p, route.case_sensitive))
        .unwrap_or(path);
    let rest = if rest.is_empty() { "/" } else { rest };
    match route.add_prefix.as_deref() {
        Some(prefix) if rest == "/" => Cow::Owned(format!("{prefix}/")),
        Some(prefix) => Cow::Owned(format!("{prefix}{rest}")),
        None => Cow::Owned(rest.to_string()),
    }
}

/// The path and query sent upstream: the normalised path (rewritten as the route says) and the
/// query as received, less the token parameter when the route strips the token.
fn forwarded_path(
    uri: &http::Uri,
    normalized: Cow<'_, str>,
    route: &Route,
    strip_param: Option<&str>,
) -> Result<PathAndQuery, RequestError> {
    let invalid = |_| RequestError::AmbiguousPath("path cannot be forwarded");
    let normalized = match upstream_path(route, &normalized) {
        Cow::Borrowed(_) => normalized,
        Cow::Owned(rewritten) => Cow::Owned(rewritten),
    };
    let query = match (uri.query(), strip_param) {
        (Some(q), Some(name)) => extract::without_query_param(q, name),
        (q, _) => q.map(Cow::Borrowed),
    };
    let query_unchanged = match &query {
        Some(q) => matches!(q, Cow::Borrowed(_)),
        None => uri.query().is_none(),
    };
    match (normalized, query) {
        (Cow::Borrowed(_), _) if query_unchanged => match uri.path_and_query() {
            Some(pq) => Ok(pq.clone()),
            None => Ok(PathAndQuery::from_static("/")),
        },
        (p, None) => PathAndQuery::try_from(p.into_owned()).map_err(invalid),
        (p, Some(q)) => PathAndQuery::try_from(format!("{p}?{q}")).map_err(invalid),
    }
}
