//! Accounts and sessions for `/api`: passwords, JWTs, the caller extractor,
//! login throttling and the root account's first password.

pub mod bootstrap;
pub mod context;
pub mod cookies;
pub mod jwt;
pub mod limiter;
pub mod links;
pub mod mail;
pub mod password;
pub mod reset;
pub mod sessions;

pub use context::{AuthContext, PendingAuth, Role};
