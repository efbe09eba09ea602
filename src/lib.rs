//! Portcullis: a TLS-terminating reverse proxy that verifies `Authorization: Bearer` JWTs and
//! enforces per-route claim rules before anything reaches the backend.
//!
//! The request path, one module per step:
//!
//! ```text
//!  1 accept: connection cap, idle / first-byte deadlines server.rs, conn.rs
//!  2 TLS handshake with deadline, ALPN h2 / http/1.1     tls.rs, server.rs
//!  3 HTTP parse with limits; snapshot; id               server.rs, state.rs, http/service.rs
//!    authorize (http/pipeline.rs), steps 3–9:
//!  3 URI length, method case, header count               http/limits.rs
//!    host and path read once (matched = forwarded)       http/target.rs, routes/path.rs
//!  4 route match: host + path + method, most specific    routes.rs, routes/matcher.rs
//!  5 token extract: one Authorization, Bearer scheme     token/extract.rs
//!  6 cheap screen: size, two dots, alg, crit, jwk/jku    token/screen.rs
//!  7 verify: provider by iss, key by kid, claims          token/verify.rs, keys.rs
//!  9a header cleaning: hop-by-hop, spoofed, credentials  proxy/headers.rs
//!  8 claim policy (claims, path params, clean headers)   routes/policy.rs
//!  9c claim headers, Forwarded, request id               proxy/headers.rs, proxy/forwarded.rs
//!    dispatch (http/pipeline.rs), step 10:
//! 10 forward to a healthy target, body limit, retries    proxy/forward.rs, proxy/client.rs,
//!                                                        proxy/pool.rs, proxy/body.rs
//!    upgrades (WebSocket) joined after a right 101       proxy/upgrade.rs
//! 11 every error → one response; one access line          http/respond.rs, http/service.rs
//! ```
//!
//! The issuer's endpoints (`/auth/*`, `/.well-known/*`) are routes too: public, and answered
//! at step 10 by `issuer::Issuer::serve` instead of an upstream (issuer.rs lists its steps).
//!
//! `portcullis explain` (explain.rs) runs `authorize` with an observer that records each step.
//!
//! A `public` route skips steps 5–8; a `deny` route stops at 4.
//!
//! # Layers
//!
//! Each layer imports only from the layers below it; nothing points back up, and no files
//! import each other in a circle.
//!
//! ```text
//!  main.rs, cli.rs          the binary edge
//!  server.rs, explain.rs    sockets, workers, shutdown; the explain report
//!  http/, config/           one request (authorize, dispatch, respond); config file → Plan
//!  state.rs                 Plan and Snapshot (the compiled config), AppState
//!  resources.rs             live upstreams and key stores by spec (knows no snapshot)
//!  proxy/                   header rewrite, forwarding, pools, bodies, upgrades
//!  routes/                  route table, pure matchers, claim policy
//!  token/                   extract, screen, verify, verified-token cache
//!  issuer/                  login, refresh, logout, keys; its store (SQLite, PostgreSQL)
//!  keys/, conn.rs, tls.rs,  key sets and sources; one connection's info and idleness; TLS
//!  percent.rs, error.rs     material; percent-decoding; the error enums (import no layer)
//! ```

#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]
// No panic reachable from input: outside tests, unwrap/expect/panic are refused by clippy; the
// few invariants that remain say why in an `#[allow]` next to them.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod admin;
pub mod config;
pub mod conn;
pub mod demo;
pub mod error;
pub mod explain;
pub mod http;
pub mod issuer;
pub mod keys;
pub mod metrics;
pub mod percent;
pub mod proxy;
pub mod reload;
pub mod resources;
pub mod routes;
pub mod server;
pub mod state;
pub mod tls;
pub mod token;
