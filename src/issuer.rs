//! The issuer (off by default).
pub mod cookie;
pub mod csrf;
pub mod password;
pub mod refresh;
pub mod signing;
pub mod store;
pub mod throttle;
