//! The one error body every surface writes, `{"error":{"message","type","code","param"}}`
//! (OpenAI's shape), and `ApiError`, every way an `/api` call can fail, turned into
//! that body in one place. `/v1` maps its own `RelayError` onto the same body.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, HttpResponseBuilder, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

/// The error shape every `/api` and `/v1` failure has.
#[derive(Serialize, ToSchema, Debug)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Serialize, ToSchema, Debug)]
pub struct ErrorDetail {
    /// What happened and what to do.
    pub message: String,
    /// Error family, such as `invalid_request_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Machine-readable code, such as `not_found`.
    pub code: String,
    /// The request field the error is about, when it is about one.
    pub param: Option<String>,
}

impl ErrorBody {
    /// An error body.
    pub fn new(message: impl Into<String>, kind: &str, code: &str, param: Option<&str>) -> Self {
        ErrorBody {
            error: ErrorDetail {
                message: message.into(),
                kind: kind.into(),
                code: code.into(),
                param: param.map(String::from),
            },
        }
    }

    /// Write it as the body of `res`.
    pub fn respond(self, mut res: HttpResponseBuilder) -> HttpResponse {
        res.json(self)
    }
}

/// An `/api` failure.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No valid credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// The account must change its password before anything else.
    #[error("change your password first: POST /api/auth/password")]
    PasswordChangeRequired,
    /// No such thing (or not yours).
    #[error("{0}")]
    NotFound(String),
    /// The input is invalid; nothing was changed.
    #[error("{0}")]
    BadRequest(String),
    /// One field of the input is invalid; nothing was changed.
    #[error("{message}")]
    Invalid {
        /// The field, as the request names it.
        param: &'static str,
        /// What is wrong with it and what is accepted.
        message: String,
    },
    /// The change conflicts with what exists.
    #[error("{0}")]
    Conflict(String),
    /// A name or address another row already has (409, naming the field, so a
    /// form can show it there).
    #[error("{message}")]
    Taken {
        /// The field.
        param: &'static str,
        /// Which value, and what to do.
        message: String,
    },
    /// Well-formed and within the document's limits, but not acceptable now
    /// (an expiry already past, a date the database cannot store).
    #[error("{message}")]
    Unprocessable {
        /// The field it is about.
        param: &'static str,
        /// What is wrong and what to do.
        message: String,
    },
    /// It existed, and cannot be used any more (a spent or expired link).
    #[error("{0}")]
    Gone(String),
    /// The password given to confirm a change is not the account's.
    #[error("{param} is wrong")]
    WrongPassword {
        /// The field it came in.
        param: &'static str,
    },
    /// The path exists, but not for this method.
    #[error("{method} is not allowed here; this path takes {allow}")]
    MethodNotAllowed {
        /// The method asked for.
        method: String,
        /// The methods the path takes, as the `Allow` header lists them.
        allow: String,
    },
    /// Too many attempts.
    #[error("too many attempts; retry in {retry_after_secs} s")]
    TooManyRequests {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// Mail is not configured.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an outage; details are logged, not sent.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// A field of the input is invalid.
    pub fn invalid(param: &'static str, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            param,
            message: message.into(),
        }
    }

    /// Not found, naming what.
    pub fn not_found(what: impl std::fmt::Display) -> Self {
        ApiError::NotFound(format!("{what} not found"))
    }

    fn kind_and_code(&self) -> (&'static str, &'static str) {
        match self {
            ApiError::Unauthorized(_) => ("authentication_error", "unauthorized"),
            ApiError::Forbidden(_) => ("permission_error", "forbidden"),
            ApiError::PasswordChangeRequired => ("permission_error", "password_change_required"),
            ApiError::NotFound(_) => ("invalid_request_error", "not_found"),
            ApiError::BadRequest(_) | ApiError::Invalid { .. } => {
                ("invalid_request_error", "invalid_request")
            }
            ApiError::Conflict(_) | ApiError::Taken { .. } => ("invalid_request_error", "conflict"),
            ApiError::Unprocessable { .. } => ("invalid_request_error", "unprocessable"),
            ApiError::Gone(_) => ("invalid_request_error", "gone"),
            ApiError::WrongPassword { .. } => ("permission_error", "wrong_password"),
            ApiError::MethodNotAllowed { .. } => ("invalid_request_error", "method_not_allowed"),
            ApiError::TooManyRequests { .. } => ("rate_limit_error", "too_many_requests"),
            ApiError::Unavailable(_) => ("server_error", "unavailable"),
            ApiError::Internal(_) => ("server_error", "internal_error"),
        }
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(e: sea_orm::DbErr) -> Self {
        ApiError::Internal(e.into())
    }
}

impl From<crate::config::InvalidField> for ApiError {
    fn from(e: crate::config::InvalidField) -> Self {
        if e.relational {
            ApiError::Unprocessable {
                param: e.param,
                message: e.message,
            }
        } else {
            ApiError::Invalid {
                param: e.param,
                message: e.message,
            }
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError::Internal(e)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::PasswordChangeRequired => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) | ApiError::Invalid { .. } => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) | ApiError::Taken { .. } => StatusCode::CONFLICT,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::WrongPassword { .. } => StatusCode::FORBIDDEN,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(e) = self {
            tracing::error!(error = format!("{e:#}"), "internal error in /api");
        }
        let (kind, code) = self.kind_and_code();
        let mut res = HttpResponse::build(self.status_code());
        if let ApiError::TooManyRequests { retry_after_secs } = self {
            res.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
        }
        if let ApiError::MethodNotAllowed { allow, .. } = self {
            res.insert_header((header::ALLOW, allow.as_str()));
        }
        if matches!(self, ApiError::Unauthorized(_)) {
            res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        let param = match self {
            ApiError::Invalid { param, .. }
            | ApiError::Unprocessable { param, .. }
            | ApiError::Taken { param, .. }
            | ApiError::WrongPassword { param } => Some(*param),
            _ => None,
        };
        ErrorBody::new(self.to_string(), kind, code, param).respond(res)
    }
}

/// Largest `/api` request body (bytes).
pub const API_BODY_BYTES: usize = 1024 * 1024;

/// Error handlers for actix's JSON, query and path extractors, so malformed
/// input gets the same error shape.
pub fn json_config() -> actix_web::web::JsonConfig {
    actix_web::web::JsonConfig::default()
        .limit(API_BODY_BYTES)
        .error_handler(|e, _| ApiError::BadRequest(format!("invalid JSON body: {e}")).into())
}

/// See [`json_config`].
pub fn query_config() -> actix_web::web::QueryConfig {
    actix_web::web::QueryConfig::default()
        .error_handler(|e, _| ApiError::BadRequest(format!("invalid query string: {e}")).into())
}

/// See [`json_config`].
pub fn path_config() -> actix_web::web::PathConfig {
    actix_web::web::PathConfig::default()
        .error_handler(|e, _| ApiError::BadRequest(format!("invalid path parameter: {e}")).into())
}
