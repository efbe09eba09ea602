//! Steps 9–10: rewrite headers and forward on the pooled client, bodies streamed both ways;
//! upgraded connections (WebSocket) joined after authorization.

pub mod body;
pub mod client;
pub mod forward;
pub mod forwarded;
pub mod headers;
pub mod pool;
pub mod upgrade;
