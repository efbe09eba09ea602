//! Steps 5–7 of the request path: find the bearer token, screen it before any crypto, verify it
//! (or find it in the verified-token cache).

pub mod cache;
pub mod claims;
pub mod extract;
pub mod screen;
pub mod verify;

pub use claims::{ClaimPath, Claims, Verified};
