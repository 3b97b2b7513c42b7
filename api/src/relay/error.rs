//! `RelayError`: every way a `/v1` request can fail, turned into the OpenAI
//! error shape `{"error":{"message","type","code"}}` in exactly one place.

use std::time::Duration;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};

use sluice_actors::budget::Binding;

use crate::error::ErrorBody;

/// A `/v1` failure.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The path exists, but not for this method.
    #[error("{method} is not allowed here; this path takes {allow}")]
    MethodNotAllowed {
        /// The method asked for.
        method: String,
        /// The methods the path takes, as the `Allow` header lists them.
        allow: String,
    },
    /// No `Authorization: Bearer sk-…` header.
    #[error("no API key given: send it as 'Authorization: Bearer sk-…'")]
    MissingToken,
    /// The token is unknown, disabled or expired.
    #[error("{0}")]
    InvalidToken(String),
    /// The token may not be used from this address.
    #[error("{0}")]
    Forbidden(String),
    /// The user's or the token's quota is used up.
    #[error("{reason}")]
    InsufficientQuota {
        /// Model requested.
        model: String,
        /// Whose quota, and how short it is.
        reason: String,
    },
    /// The body is not valid JSON, or lacks what the endpoint needs.
    #[error("{0}")]
    BadRequest(String),
    /// The body is over the size limit.
    #[error("request body is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body did not arrive in time.
    #[error("{0}")]
    BodyTimeout(String),
    /// The token may not use this model.
    #[error("this token may not use model '{model}'; allowed: {allowed}")]
    ModelNotAllowed {
        /// Model requested.
        model: String,
        /// Models the token may use.
        allowed: String,
    },
    /// No channel serves this model.
    #[error("model '{model}' is not served here; available: {available}")]
    ModelNotFound {
        /// Model requested.
        model: String,
        /// Models served.
        available: String,
    },
    /// Waited the bound for a key with room.
    #[error("all keys for model '{model}' are at their rate limit; waited {waited_secs} s. Retry after {retry_after_secs} s")]
    WaitExceeded {
        /// Model requested.
        model: String,
        /// Seconds waited.
        waited_secs: u64,
        /// Seconds until a key should have room.
        retry_after_secs: u64,
    },
    /// The caller's own limit (the token's or the account's) held the request
    /// until its wait bound.
    #[error("{limit}; waited {waited_secs} s. Retry after {retry_after_secs} s")]
    TenantLimit {
        /// Model requested.
        model: String,
        /// Which limit, in words.
        limit: String,
        /// Seconds waited.
        waited_secs: u64,
        /// Seconds until it has room.
        retry_after_secs: u64,
    },
    /// Every key tried failed; names the last provider error.
    #[error("every upstream attempt for model '{model}' failed ({attempts} tried); last error: {last}")]
    UpstreamFailed {
        /// Model requested.
        model: String,
        /// Attempts made.
        attempts: u32,
        /// The last provider error.
        last: String,
    },
    /// No usable key serves the model now (all disabled).
    #[error("no usable key for model '{model}': {reason}")]
    NoKeys {
        /// Model requested.
        model: String,
        /// Why.
        reason: String,
    },
    /// The gateway is shutting down.
    #[error("the gateway is shutting down; retry shortly")]
    ShuttingDown,
    /// No such route under `/v1`.
    #[error("{0}")]
    NotFound(String),
}

impl RelayError {
    /// Turn a router wait error into the client's error.
    pub fn wait_exceeded(model: &str, waited: Duration, retry_after: Duration) -> Self {
        RelayError::WaitExceeded {
            model: model.to_string(),
            waited_secs: waited.as_secs(),
            retry_after_secs: retry_after.as_secs_f64().ceil().max(1.0) as u64,
        }
    }

    /// A tenant limit's 429: `whose` names the token or the account.
    pub fn tenant_limit(
        model: &str,
        whose: String,
        binding: Binding,
        window: Duration,
        waited: Duration,
        retry_after: Duration,
    ) -> Self {
        let per = if window == Duration::from_secs(60) {
            "a minute".to_string()
        } else {
            format!("per {} s", window.as_secs())
        };
        let limit = match binding {
            Binding::Requests(n) => format!("{n} requests {per}"),
            Binding::Tokens(n) => format!("{n} tokens {per}"),
            Binding::Concurrency(n) => format!("{n} requests at once"),
            Binding::Cooldown => "its limits".to_string(),
        };
        RelayError::TenantLimit {
            model: model.to_string(),
            limit: format!("{whose} is at its limit of {limit}"),
            waited_secs: waited.as_secs(),
            retry_after_secs: retry_after.as_secs_f64().ceil().max(1.0) as u64,
        }
    }

    /// The model the error is about when it is one Sluice serves; `None` when
    /// the client named no model or one that is not served (a metrics label
    /// must not take whatever a client sends).
    pub fn served_model(&self) -> Option<&str> {
        match self {
            RelayError::InsufficientQuota { model, .. }
            | RelayError::ModelNotAllowed { model, .. }
            | RelayError::WaitExceeded { model, .. }
            | RelayError::TenantLimit { model, .. }
            | RelayError::UpstreamFailed { model, .. }
            | RelayError::NoKeys { model, .. } => Some(model),
            _ => None,
        }
    }

    fn kind_and_code(&self) -> (&'static str, &'static str) {
        match self {
            RelayError::MissingToken | RelayError::InvalidToken(_) => {
                ("invalid_request_error", "invalid_api_key")
            }
            RelayError::BadRequest(_) => ("invalid_request_error", "invalid_request"),
            RelayError::Forbidden(_) => ("permission_error", "ip_not_allowed"),
            RelayError::InsufficientQuota { .. } => ("insufficient_quota", "insufficient_quota"),
            RelayError::TooLarge { .. } => ("invalid_request_error", "request_too_large"),
            RelayError::BodyTimeout(_) => ("invalid_request_error", "request_timeout"),
            RelayError::ModelNotAllowed { .. } => ("permission_error", "model_not_allowed"),
            RelayError::ModelNotFound { .. } => ("invalid_request_error", "model_not_found"),
            RelayError::WaitExceeded { .. } | RelayError::TenantLimit { .. } => {
                ("rate_limit_error", "rate_limit_exceeded")
            }
            RelayError::UpstreamFailed { .. } => ("upstream_error", "upstream_failed"),
            RelayError::NoKeys { .. } => ("upstream_error", "no_available_key"),
            RelayError::ShuttingDown => ("server_error", "shutting_down"),
            RelayError::NotFound(_) => ("invalid_request_error", "unknown_url"),
            RelayError::MethodNotAllowed { .. } => ("invalid_request_error", "method_not_allowed"),
        }
    }
}

impl ResponseError for RelayError {
    fn status_code(&self) -> StatusCode {
        match self {
            RelayError::MissingToken | RelayError::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            RelayError::BadRequest(_) => StatusCode::BAD_REQUEST,
            RelayError::Forbidden(_) => StatusCode::FORBIDDEN,
            // OpenAI answers an exhausted quota with 429 `insufficient_quota`.
            RelayError::InsufficientQuota { .. } => StatusCode::TOO_MANY_REQUESTS,
            RelayError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            RelayError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            RelayError::ModelNotAllowed { .. } => StatusCode::FORBIDDEN,
            RelayError::ModelNotFound { .. } | RelayError::NotFound(_) => StatusCode::NOT_FOUND,
            RelayError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            RelayError::WaitExceeded { .. } | RelayError::TenantLimit { .. } => StatusCode::TOO_MANY_REQUESTS,
            RelayError::UpstreamFailed { .. } => StatusCode::BAD_GATEWAY,
            RelayError::NoKeys { .. } | RelayError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (kind, code) = self.kind_and_code();
        let mut res = HttpResponse::build(self.status_code());
        if let RelayError::WaitExceeded { retry_after_secs, .. }
        | RelayError::TenantLimit { retry_after_secs, .. } = self
        {
            res.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
        }
        if let RelayError::MethodNotAllowed { allow, .. } = self {
            res.insert_header((header::ALLOW, allow.as_str()));
        }
        ErrorBody::new(self.to_string(), kind, code, None).respond(res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    #[test]
    fn wait_exceeded_is_an_openai_429_with_retry_after() {
        let err = RelayError::wait_exceeded("m", Duration::from_secs(90), Duration::from_millis(6200));
        let res = err.error_response();
        assert_eq!(res.status(), 429);
        assert_eq!(res.headers().get("retry-after").unwrap(), "7");
        let body = res.into_body().try_into_bytes().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "rate_limit_exceeded");
        assert!(v["error"]["message"].as_str().unwrap().contains("model 'm'"));
    }
}
