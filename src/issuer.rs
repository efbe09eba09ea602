//! The issuer (off by default).
pub mod store;
