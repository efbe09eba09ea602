//! The admin listener: for operators and orchestrators, never on a proxy port.
//!
//! - `GET /healthz`: the process serves (200).
//! - `GET /readyz`: 200 when the config is loaded and every provider has usable keys (a
//!   remote provider after its first good fetch, until its keys pass `max_stale`); a failed
//!   refresh after that does not flip readiness, or an IdP outage would pull every replica out
//!   of the load balancer at once. 503 from the moment shutdown begins.
//! - `POST /reload`: reload the config now (as SIGHUP does); 200 applied or unchanged, 422
//!   refused with every diagnostic.
//! - `GET /metrics`: Prometheus metrics, text format 0.0.4 (`admin/metrics.rs`).
//! - `GET /config`: the config in force: its file, digest, when it was applied, each source
//!   file's digest (never a key's content) and the main file's text.
//!
//! With `admin.token_file`, every request must carry `Authorization: Bearer <token>`.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{ALLOW, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use serde_json::json;

use crate::http::ProxyBody;
use crate::reload::{Outcome, ReloadError, Reloader};
use crate::state::AppState;

pub mod metrics;

/// What the admin endpoints read and do.
#[derive(Debug)]
pub struct Admin {
    pub state: Arc<AppState>,
    pub reloader: Arc<Reloader>,
    registry: prometheus_client::registry::Registry,
}

impl Admin {
    pub fn new(state: Arc<AppState>, reloader: Arc<Reloader>) -> Self {
        let registry = metrics::registry(state.clone(), reloader.clone());
        Admin {
            state,
            reloader,
            registry,
        }
    }
}

/// Serves one admin request.
pub async fn handle<B>(
    admin: Arc<Admin>,
    request: Request<B>,
) -> Result<Response<ProxyBody>, Infallible> {
    if !authorized(&admin, &request) {
        let mut response = reply(
            StatusCode::UNAUTHORIZED,
            &json!({"error": "this admin listener needs its bearer token"}),
        );
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"portcullis-admin\""),
        );
        return Ok(response);
    }
    let method = request.method();
    let read = method == Method::GET || method == Method::HEAD;
    let response = match (request.uri().path(), read, method == Method::POST) {
        ("/healthz", true, _) => reply(StatusCode::OK, &json!({"status": "ok"})),
        ("/readyz", true, _) => readiness(&admin.state).await,
        ("/config", true, _) => config(&admin.reloader).await,
        ("/metrics", true, _) => {
            let mut response = Response::new(Either::Right(Full::new(Bytes::from(
                metrics::render(&admin.registry),
            ))));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(metrics::CONTENT_TYPE),
            );
            response
        }
        ("/reload", _, true) => reload(&admin.reloader).await,
        ("/healthz" | "/readyz" | "/config" | "/metrics", false, _) => not_allowed("GET, HEAD"),
        ("/reload", _, false) => not_allowed("POST"),
        _ => reply(
            StatusCode::NOT_FOUND,
            &json!({"error": "no such admin endpoint", "endpoints": ["/healthz", "/readyz", "/metrics", "/config", "/reload"]}),
        ),
    };
    Ok(response)
}

/// Whether the request carries the admin token, when one is configured (compared in
/// constant time).
fn authorized<B>(admin: &Admin, request: &Request<B>) -> bool {
    let Some(token) = admin.reloader.admin_token() else {
        return true;
    };
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    aws_lc_rs::constant_time::verify_slices_are_equal(presented.as_bytes(), token.as_bytes())
        .is_ok()
}

/// Why the gateway is not ready, or nothing when it is.
pub async fn not_ready(state: &AppState) -> Vec<String> {
    let mut reasons = Vec::new();
    if state.is_draining() {
        reasons.push("shutting down".to_string());
    }
    let snapshot = state.snapshot.load();
    for provider in snapshot.providers.list() {
        if provider.keys.snapshot().set.is_empty() {
            reasons.push(format!("provider {}: no usable keys", provider.name));
        }
    }
    let issuer = snapshot.issuer.clone();
    drop(snapshot);
    if let Some(issuer) = issuer {
        let reachable = match issuer.store() {
            Some(store) => tokio::time::timeout(STORE_PING, store.ping())
                .await
                .is_ok_and(|r| r.is_ok()),
            None => false,
        };
        if !reachable {
            reasons.push(format!(
                "issuer store {} unreachable",
                issuer.spec.store.redacted()
            ));
        }
    }
    reasons
}

/// How long `/readyz` waits for the issuer's store.
const STORE_PING: std::time::Duration = std::time::Duration::from_secs(2);

async fn readiness(state: &AppState) -> Response<ProxyBody> {
    let reasons = not_ready(state).await;
    if reasons.is_empty() {
        reply(StatusCode::OK, &json!({"ready": true}))
    } else {
        reply(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"ready": false, "reasons": reasons}),
        )
    }
}

async fn config(reloader: &Reloader) -> Response<ProxyBody> {
    let loaded = reloader.current().await;
    let sources: Vec<_> = loaded
        .sources
        .iter()
        .map(|path| {
            json!({
                "path": path.display().to_string(),
                "sha256": crate::reload::fingerprint(std::slice::from_ref(path)),
            })
        })
        .collect();
    let text = std::fs::read_to_string(reloader.path()).unwrap_or_default();
    let stats = &reloader.stats;
    use std::sync::atomic::Ordering::Relaxed;
    reply(
        StatusCode::OK,
        &json!({
            "file": reloader.path().display().to_string(),
            "sha256": loaded.sha256,
            "applied_at": loaded.applied_at,
            "sources": sources,
            "reloads": {
                "applied": stats.applied.load(Relaxed),
                "unchanged": stats.unchanged.load(Relaxed),
                "failed": stats.failed.load(Relaxed),
            },
            "text": text,
        }),
    )
}

async fn reload(reloader: &Reloader) -> Response<ProxyBody> {
    match reloader.reload("admin").await {
        Ok(Outcome::Applied { sha256 }) => reply(
            StatusCode::OK,
            &json!({"result": "applied", "sha256": sha256}),
        ),
        Ok(Outcome::Unchanged { sha256 }) => reply(
            StatusCode::OK,
            &json!({"result": "unchanged", "sha256": sha256}),
        ),
        Err(ReloadError::Invalid(errors)) => {
            let errors: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
            reply(
                StatusCode::UNPROCESSABLE_ENTITY,
                &json!({"result": "refused", "errors": errors}),
            )
        }
        Err(e @ ReloadError::Resources(_)) => reply(
            StatusCode::UNPROCESSABLE_ENTITY,
            &json!({"result": "refused", "errors": [e.to_string()]}),
        ),
    }
}

fn not_allowed(allow: &'static str) -> Response<ProxyBody> {
    let mut response = reply(
        StatusCode::METHOD_NOT_ALLOWED,
        &json!({"error": "method not allowed", "allow": allow}),
    );
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

fn reply(status: StatusCode, body: &serde_json::Value) -> Response<ProxyBody> {
    let mut text = body.to_string();
    text.push('\n');
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(text))));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
