//! The `sk-` token extractor: deny by default, answered from the in-memory cache.

use std::future::{ready, Ready};
use std::sync::Arc;

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpRequest};
use chrono::Utc;

use super::client_ip::client_ip;
use super::error::RelayError;
use crate::catalog::token_cache::{OwnerInfo, TokenInfo};
use crate::state::AppState;

/// The token a `/v1` request was made with, checked.
#[derive(Clone, Debug)]
pub struct RelayAuth {
    /// The token.
    pub token: Arc<TokenInfo>,
    /// Its owner: group (prices and channel access depend on it) and limits.
    pub owner: OwnerInfo,
}

impl FromRequest for RelayAuth {
    type Error = RelayError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

/// Check the request's token: `Authorization: Bearer sk-…`, or `x-api-key: sk-…`
/// as Anthropic's clients send it.
pub fn authenticate(req: &HttpRequest) -> Result<RelayAuth, RelayError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .expect("AppState is registered");
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")));
    let api_key = || req.headers().get("x-api-key").and_then(|v| v.to_str().ok());
    let key = bearer
        .or_else(api_key)
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or(RelayError::MissingToken)?;
    let token = state
        .tokens
        .find(key)
        .ok_or_else(|| RelayError::InvalidToken("invalid API key: no such token".into()))?;
    if !token.enabled {
        return Err(RelayError::InvalidToken(format!(
            "token '{}' is disabled",
            token.name
        )));
    }
    let owner = state.tokens.owner(token.user_id);
    if !owner.enabled {
        return Err(RelayError::InvalidToken(format!(
            "the account owning token '{}' is disabled",
            token.name
        )));
    }
    let ip = client_ip(req, &state.settings.relay.trusted_proxies);
    if !token.allows_ip(ip) {
        return Err(RelayError::Forbidden(format!(
            "token '{}' may not be used from {}",
            token.name,
            ip.map_or("an unknown address".into(), |ip| ip.to_string())
        )));
    }
    if token.expires_at.is_some_and(|at| at <= Utc::now()) {
        return Err(RelayError::InvalidToken(format!(
            "token '{}' has expired",
            token.name
        )));
    }
    Ok(RelayAuth { token, owner })
}
