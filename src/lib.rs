//! Portcullis: a TLS-terminating reverse proxy that verifies `Authorization: Bearer` JWTs and
//! enforces per-route claim rules before anything reaches the backend.
//!
//! The request path, one module per step:
//!
//! ```text
//!  1 accept: connection cap                              server.rs
//!  2 TLS handshake with deadline, ALPN h2 / http/1.1     tls.rs, server.rs
//!  3 HTTP parse with limits; one config snapshot          server.rs, state.rs
//!    path normalised once (matched = forwarded)          routes/path.rs
//!  4 route match: method + path; no match → 404          routes.rs, routes/matcher.rs
//!  5 token extract: one Authorization, Bearer scheme     token/extract.rs
//!  6 cheap screen: size, two dots, alg, crit, jwk/jku    token/screen.rs
//!  7 verify: provider by iss, key by kid, claims          token/verify.rs, keys.rs
//!  8 claim policy → allow, or 403 insufficient_scope     routes/policy.rs
//!  9 header rewrite: hop-by-hop out, claims + X-Fwd in   proxy/headers.rs
//! 10 forward on the pooled client, bodies streamed       proxy/forward.rs, proxy/client.rs
//! 11 every error → one response; one access line          http/respond.rs, http/service.rs
//! ```
//!
//! A `public` route skips steps 5–8.

#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]

pub mod config;
pub mod demo;
pub mod error;
pub mod explain;
pub mod http;
pub mod keys;
pub mod proxy;
pub mod routes;
pub mod server;
pub mod state;
pub mod tls;
pub mod token;
