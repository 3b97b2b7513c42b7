//! Errors on `/v1/messages*` in Anthropic's shape,
//! `{"type":"error","error":{"type","message"}}`, with the status the OpenAI
//! routes give for the same failure.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::relay::error::RelayError;
use crate::relay::forward::snippet;

/// The error body Anthropic's clients read.
#[derive(Serialize, ToSchema, Debug)]
pub struct AnthropicErrorBody {
    /// Always `error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What went wrong.
    pub error: AnthropicErrorDetail,
}

/// The inside of [`AnthropicErrorBody`].
#[derive(Serialize, ToSchema, Debug)]
pub struct AnthropicErrorDetail {
    /// `invalid_request_error`, `authentication_error`, `permission_error`,
    /// `not_found_error`, `request_too_large`, `rate_limit_error`, `api_error`
    /// or `overloaded_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What happened and what to do.
    pub message: String,
}

impl AnthropicErrorBody {
    fn new(status: StatusCode, message: String) -> Self {
        AnthropicErrorBody {
            kind: "error".into(),
            error: AnthropicErrorDetail {
                kind: kind(status).into(),
                message,
            },
        }
    }
}

/// Anthropic's error type for a status.
fn kind(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// A `/v1` failure on an Anthropic route.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct AnthropicError(#[from] pub RelayError);

impl ResponseError for AnthropicError {
    fn status_code(&self) -> StatusCode {
        self.0.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let message = match &self.0 {
            RelayError::MissingToken => {
                "no API key given: send it as 'x-api-key: sk-…' or 'Authorization: Bearer sk-…'".into()
            }
            other => other.to_string(),
        };
        let mut res = HttpResponse::build(status);
        // The same Retry-After and Allow the OpenAI shape carries.
        let openai = self.0.error_response();
        for name in [header::RETRY_AFTER, header::ALLOW] {
            if let Some(value) = openai.headers().get(&name) {
                res.insert_header((name, value.clone()));
            }
        }
        res.json(AnthropicErrorBody::new(status, message))
    }
}

/// An error answer in Anthropic's shape (for refusals made before the route runs).
pub fn respond(status: StatusCode, message: String) -> HttpResponse {
    HttpResponse::build(status).json(AnthropicErrorBody::new(status, message))
}

/// A provider's refusal (an OpenAI-shaped or any other body) in Anthropic's shape.
pub fn from_provider(status: u16, body: &[u8]) -> Bytes {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let said = json.as_ref().and_then(|j| {
        ["/error/message", "/message", "/detail", "/title"]
            .iter()
            .find_map(|p| j.pointer(p).and_then(Value::as_str))
            .map(String::from)
    });
    let message = format!(
        "the provider refused the request ({status}): {}",
        said.unwrap_or_else(|| snippet(body))
    );
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let body = serde_json::to_vec(&AnthropicErrorBody::new(status, message)).expect("serialises");
    Bytes::from(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;
    use std::time::Duration;

    fn body(res: HttpResponse) -> Value {
        serde_json::from_slice(&res.into_body().try_into_bytes().unwrap()).unwrap()
    }

    #[test]
    fn relay_errors_keep_their_status_in_anthropics_shape() {
        let wait = RelayError::wait_exceeded("m", Duration::from_secs(90), Duration::from_secs(3));
        let res = AnthropicError(wait).error_response();
        assert_eq!(res.status(), 429);
        assert_eq!(res.headers().get("retry-after").unwrap(), "3");
        let v = body(res);
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "rate_limit_error");
        for (err, status, kind) in [
            (RelayError::MissingToken, 401, "authentication_error"),
            (RelayError::BadRequest("x".into()), 400, "invalid_request_error"),
            (RelayError::TooLarge { limit: 1 }, 413, "request_too_large"),
            (RelayError::ShuttingDown, 503, "overloaded_error"),
        ] {
            let res = AnthropicError(err).error_response();
            assert_eq!(res.status(), status);
            assert_eq!(body(res)["error"]["type"], kind);
        }
        let v: Value = serde_json::from_slice(&from_provider(
            400,
            br#"{"error":{"message":"context too long","type":"invalid_request_error"}}"#,
        ))
        .unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .ends_with("context too long"));
    }
}
