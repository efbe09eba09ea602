//! Steps 3–11 on one request: the request target (`target.rs`), the pipeline shared with
//! `explain` (`pipeline.rs`), serving one request (`service.rs`) and every synthetic response
//! (`respond.rs`).

pub mod limits;
pub mod pipeline;
pub mod respond;
pub mod service;
pub mod target;

use bytes::Bytes;
use http_body_util::{Either, Full};

use crate::proxy::client::UpstreamBody;

/// A response body: streamed from the upstream (holding its slot under the upstream's
/// `max_requests` until it ends), or one the gateway wrote itself.
pub type ProxyBody = Either<UpstreamBody, Full<Bytes>>;
