//! The service layer: every write to channels, keys, tokens and users, and the
//! refresh of the router and the relay's caches it needs, in one function each.
//! `/api` handlers (and so the console, which calls `/api`) only parse, call one
//! of these, and shape the answer. Also what the relay serves from: the token
//! cache and the router's key specs.

pub mod channels;
pub mod fallbacks;
pub mod keys;
pub mod models;
pub mod routing;
pub mod sync;
pub mod token_cache;
pub mod tokens;
pub mod users;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::config::MAX_LIMIT;
use crate::error::ApiError;

/// A row as it was before a write and as the write left it (for the audit log).
#[derive(Clone, Debug)]
pub struct Changed<T> {
    /// Before the write.
    pub before: T,
    /// After it.
    pub after: T,
}

/// Whether something may be used: the one status a client sets.
#[derive(Serialize, Deserialize, ToSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// In use.
    Enabled,
    /// Switched off.
    Disabled,
}

impl Status {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Enabled => "enabled",
            Status::Disabled => "disabled",
        }
    }
}

/// A limit as given to the API, checked (0 = none).
pub fn parse_limit(value: u64, param: &'static str) -> Result<i64, ApiError> {
    if value > MAX_LIMIT {
        return Err(ApiError::invalid(
            param,
            format!("{param} must be at most {MAX_LIMIT}"),
        ));
    }
    Ok(value as i64)
}

/// Serde helper for PATCH bodies: tells an absent field (outer `None`) from
/// an explicit `null` (`Some(None)`, which clears or resets).
pub fn present<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
}
